"""Does XRD similarity track structural similarity? SI Tables S1 and S2 from sweep results.

The SI of Segal et al. (Tables S1 and S2) gives, for each noise type and level, the Pearson
and Spearman correlation between the AMD (structural similarity) and each XRD similarity
metric over the structures that gradient descent ended at. This module computes the same
quantities from the tidy rows of :func:`xrdnb.sweep.run_sweep`. It also gives the mutual
information, hierarchical bootstrap confidence intervals, the same numbers for the
distorted *starting* structures, the paper's values and a check of the SI's three
qualitative claims.

**Convention** (study-facts, a choice). Each cell correlates

.. math:: x = -d_\\mathrm{AMD}(\\text{end structure}, \\text{ground truth}), \\qquad
          y = s(\\text{end pattern}, \\text{ground-truth pattern})

over all structures and copies at one noise type and level. ``d_AMD`` is the L∞ distance
between AMD vectors (Å), and ``s`` is the similarity *of that column's metric*. The cosine
column uses ``similarity_cosine`` of the unconstrained cosine runs, the MSE column uses
``similarity_mse`` (= −MSE) of the MSE runs, and so on. The last column uses
``similarity_cosine`` of the constrained cosine runs. A positive value means "the closer
the structure, the higher the XRD similarity".

**Layout.** :data:`SI_INDEX` × :data:`SI_COLUMNS` (10 × 5), as in the SI. Cells that
cannot be computed are NaN, and a ``reason`` says why. The coordinate rows of the
constrained column are such cells, because the projector acts on the lattice only. The
paper's tables are :data:`PAPER_TABLE_S1` and :data:`PAPER_TABLE_S2` (NaN where the SI
has no number). Their ``*_TEXT`` twins keep the SI's own marks: ``""`` for a blank cell
and ``"-"`` for a dash.

Everything above the "sensitivity runs" section is a pure function of the rows. The
functions in that section read saved end structures or run extra gradient descent.

>>> PAPER_TABLE_S1.loc[("Lattice", 0.01), "Cosine Similarity"]
np.float64(0.76)
>>> paper_mark(PAPER_TABLE_S1_TEXT, ("Coordinates", 0.001), "Cross Correlation")
'blank'
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .vocabulary import NOISE_LABELS, NOISE_LEVELS

__all__ = [
    "SI_COLUMNS",
    "SI_INDEX",
    "COLUMN_RUNS",
    "PAPER_TABLE_S1",
    "PAPER_TABLE_S2",
    "PAPER_TABLE_S1_TEXT",
    "PAPER_TABLE_S2_TEXT",
    "PAPER_TABLES",
    "PAPER_TABLES_TEXT",
    "NOISE_LABELS",
    "SI_LEVELS",
    "paper_mark",
    "Correlation",
    "correlations",
    "bootstrap_ci",
    "select_learning_rates",
    "correlation_cells",
    "si_layout",
    "correlation_table",
    "compare_with_paper",
    "format_comparison",
    "evaluate_claims",
    "final_structures",
    "amd_distances_for_k",
    "run_cells_with_units",
]

# --------------------------------------------------------------------------- layout

SI_LEVELS = NOISE_LEVELS
"""Noise levels of the SI tables (the study's levels, :data:`xrdnb.vocabulary.NOISE_LEVELS`)."""

SI_INDEX = pd.MultiIndex.from_tuples(
    [(NOISE_LABELS[t], lv) for t in ("lattice", "coordinates") for lv in SI_LEVELS[t]],
    names=["Noise Type", "Noise Level"],
)
"""Rows of Tables S1/S2, pairs of (``"Lattice"`` or ``"Coordinates"``, level).

:meta hide-value:
"""

SI_COLUMNS = (
    "Cosine Similarity",
    "MSE",
    "Entropy Similarity",
    "Cross Correlation",
    "Cosine Similarity + Constraints",
)
"""Columns of Tables S1/S2, in the SI's order."""

COLUMN_RUNS = {
    "Cosine Similarity": ("cosine", False),
    "MSE": ("mse", False),
    "Entropy Similarity": ("entropy", False),
    "Cross Correlation": ("cross_correlation", False),
    "Cosine Similarity + Constraints": ("cosine", True),
}
"""Which runs feed each column, as ``(loss, constrained)``; the similarity is ``similarity_<loss>``."""

_NOT_RUN = "not run: the symmetry projector acts on the lattice only"


def _paper_table(rows: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, index=SI_INDEX, columns=list(SI_COLUMNS))


PAPER_TABLE_S1_TEXT = _paper_table(
    [
        ["0.76", "0.59", "0.31", "0.58", "0.79"],
        ["0.43", "0.4", "0.53", "0.32", "0.83"],
        ["0.36", "0.27", "0.39", "0.29", "0.76"],
        ["0.16", "0.1", "0.23", "0.22", "0.72"],
        ["0.05", "0.1", "0.13", "0.13", "0.65"],
        ["-0.64", "0.23", "-0.6", "", "-"],
        ["-0.72", "0.27", "-0.55", "", "-"],
        ["-0.64", "0.46", "-0.64", "-0.82", "-"],
        ["-0.02", "0.51", "-0.27", "-0.18", "-"],
        ["0.52", "0.48", "0.43", "0.41", "-"],
    ]
)
"""SI Table S1 (Pearson) as printed, with ``""`` for a blank cell and ``"-"`` for a dash.

:meta hide-value:
"""

PAPER_TABLE_S2_TEXT = _paper_table(
    [
        ["0.93", "0.61", "0.65", "0.61", "0.65"],
        ["0.47", "0.43", "0.58", "0.35", "0.89"],
        ["0.39", "0.29", "0.39", "0.26", "0.77"],
        ["0.18", "0.1", "0.25", "0.2", "0.67"],
        ["0.3", "0.13", "0.12", "0.13", "0.55"],
        ["-0.67", "0.74", "-0.64", "", "-"],
        ["-0.64", "0.78", "-0.51", "", "-"],
        ["-0.55", "0.84", "-0.62", "-0.79", "-"],
        ["-0.06", "0.63", "-0.46", "-0.27", "-"],
        ["0.5", "0.52", "0.28", "0.26", "-"],
    ]
)
"""SI Table S2 (Spearman) as printed, with ``""`` for a blank cell and ``"-"`` for a dash.

:meta hide-value:
"""


def _numeric(text: pd.DataFrame) -> pd.DataFrame:
    return text.apply(lambda col: pd.to_numeric(col.where(~col.isin(["", "-"])), errors="raise")).astype(float)


PAPER_TABLE_S1 = _numeric(PAPER_TABLE_S1_TEXT)
"""SI Table S1, Pearson correlation between AMD and XRD similarity (NaN where the SI has a blank or a dash).

:meta hide-value:
"""

PAPER_TABLE_S2 = _numeric(PAPER_TABLE_S2_TEXT)
"""SI Table S2, Spearman correlation between AMD and XRD similarity (NaN where the SI has a blank or a dash).

:meta hide-value:
"""

PAPER_TABLES = {"pearson": PAPER_TABLE_S1, "spearman": PAPER_TABLE_S2}
"""The paper's tables by method, ``"pearson"`` (S1) and ``"spearman"`` (S2).

:meta hide-value:
"""

PAPER_TABLES_TEXT = {"pearson": PAPER_TABLE_S1_TEXT, "spearman": PAPER_TABLE_S2_TEXT}
"""The paper's tables as printed, by method.

:meta hide-value:
"""


def paper_mark(text: pd.DataFrame, row: tuple[str, float], column: str) -> str:
    """What the SI prints in a cell: ``"value"``, ``"blank"`` or ``"dash"``.

    Parameters
    ----------
    text
        :data:`PAPER_TABLE_S1_TEXT` or :data:`PAPER_TABLE_S2_TEXT`.
    row
        ``(noise type label, level)``, e.g. ``("Lattice", 0.05)``.
    column
        one of :data:`SI_COLUMNS`.

    Examples
    --------
    >>> paper_mark(PAPER_TABLE_S2_TEXT, ("Coordinates", 0.1), "Cosine Similarity + Constraints")
    'dash'
    >>> paper_mark(PAPER_TABLE_S2_TEXT, ("Lattice", 0.2), "MSE")
    'value'
    """
    value = text.loc[row, column]
    return {"": "blank", "-": "dash"}.get(value, "value")


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Correlation:
    """Association between two samples (see :func:`correlations`).

    Attributes
    ----------
    pearson
        Pearson's r (NaN when undefined).
    spearman
        Spearman's ρ, the Pearson correlation of the average ranks (NaN when undefined).
    mutual_information
        k-nearest-neighbour estimate of the mutual information, in nats (NaN when undefined).
    n
        number of finite pairs used.
    reason
        why the values are NaN (empty when they are defined).
    """

    pearson: float
    spearman: float
    mutual_information: float
    n: int
    reason: str = ""


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _standardize(v: np.ndarray) -> np.ndarray:
    """(v − mean) / std in float64; centring first keeps tiny spreads around large values exact enough."""
    centred = v - v.mean()
    return centred / np.sqrt(np.mean(centred**2))


def _undefined_reason(x: np.ndarray, y: np.ndarray) -> str:
    if x.size < 3:
        return f"fewer than 3 samples (n = {x.size})"
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return "both columns are constant"
    if np.ptp(x) == 0:
        return "x is constant"
    if np.ptp(y) == 0:
        return "y is constant"
    return ""


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xs, ys = _standardize(x), _standardize(y)
    return float(np.clip(np.mean(xs * ys), -1.0, 1.0))


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v, method="average")


def correlations(x, y, *, mi_neighbors: int = 3, random_state: int = 0) -> Correlation:
    """Pearson, Spearman and mutual information of paired samples, NaN with a reason when undefined.

    Non-finite pairs (e.g. the NaN metrics of an invalid end lattice) are dropped first.
    With fewer than 3 pairs, or with a constant column, every value is NaN and
    ``reason`` says why; nothing is raised and nothing is warned.

    Parameters
    ----------
    x, y
        paired samples (same length).
    mi_neighbors
        ``n_neighbors`` of scikit-learn's ``mutual_info_regression`` (its default, 3).
    random_state
        seed of the tiny jitter that scikit-learn adds to break ties (fixed for
        reproducibility).

    Returns
    -------
    Correlation

    Notes
    -----
    The mutual information is the Kraskov–Stögbauer–Grassberger k-NN estimate
    (scikit-learn's ``mutual_info_regression``; nats, clipped at 0). Both samples are
    standardized first. MI does not depend on scale, and scikit-learn's tie-breaking jitter
    is proportional to the mean absolute value, so it would swamp a small spread around a
    large mean (e.g. similarities of 0.999999…) if the data were not centred.

    Examples
    --------
    >>> c = correlations([1, 2, 3, 4, 5], [3, 5, 7, 9, 11])
    >>> round(c.pearson, 12), round(c.spearman, 12), c.n
    (1.0, 1.0, 5)
    >>> correlations([1, 2, 3], [4, 4, 4]).reason
    'y is constant'
    >>> correlations([1, 2], [2, 1]).reason
    'fewer than 3 samples (n = 2)'
    """
    x, y = _finite_pairs(x, y)
    reason = _undefined_reason(x, y)
    if reason:
        return Correlation(math.nan, math.nan, math.nan, int(x.size), reason)
    pearson = _pearson(x, y)
    spearman = _pearson(_ranks(x), _ranks(y))
    if x.size <= mi_neighbors:
        return Correlation(
            pearson, spearman, math.nan, int(x.size), f"mutual information needs more than {mi_neighbors} samples"
        )
    from sklearn.feature_selection import mutual_info_regression

    mi = mutual_info_regression(
        _standardize(x).reshape(-1, 1), _standardize(y), n_neighbors=mi_neighbors, random_state=random_state
    )[0]
    return Correlation(pearson, spearman, float(mi), int(x.size), "")


def _hierarchical_indices(
    codes: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(n_bootstrap, L)`` and a validity mask: groups, then members within groups."""
    n_groups = int(codes.max()) + 1
    members = [np.flatnonzero(codes == g) for g in range(n_groups)]
    sizes = np.array([m.size for m in members])
    width = int(sizes.max())
    padded = np.zeros((n_groups, width), dtype=np.int64)
    for g, m in enumerate(members):
        padded[g, : m.size] = m
    chosen = rng.integers(0, n_groups, size=(n_bootstrap, n_groups))  # structures, with replacement
    chosen_sizes = sizes[chosen][..., None]  # (B, G, 1)
    within = np.floor(rng.random((n_bootstrap, n_groups, width)) * chosen_sizes).astype(np.int64)  # copies
    index = padded[chosen[..., None], within]
    mask = np.arange(width) < chosen_sizes
    return index.reshape(n_bootstrap, -1), mask.reshape(n_bootstrap, -1)


def _masked_pearson(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of ``x``, ``y`` ``(B, L)`` over the entries where ``mask``; NaN if constant."""
    w = mask.astype(np.float64)
    n = w.sum(axis=1)
    mx = (w * x).sum(axis=1) / n
    my = (w * y).sum(axis=1) / n
    dx = (x - mx[:, None]) * w
    dy = (y - my[:, None]) * w
    sxx, syy, sxy = (dx * dx).sum(axis=1), (dy * dy).sum(axis=1), (dx * dy).sum(axis=1)
    constant = np.zeros(x.shape[0], dtype=bool)
    for v in (x, y):
        hi = np.where(mask, v, -np.inf).max(axis=1)
        lo = np.where(mask, v, np.inf).min(axis=1)
        constant |= hi == lo
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    r = np.clip(r, -1.0, 1.0)
    r[constant | (n < 3)] = np.nan
    return r


def bootstrap_ci(
    x,
    y,
    groups=None,
    *,
    method: str = "pearson",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a correlation, resampling groups, then members.

    Each replicate draws as many groups (structures) as there are, with replacement, and
    then, within each drawn group, as many members (copies) as it has, with replacement.
    The result is the two-level (hierarchical) bootstrap. Copies of one structure are not
    independent, and this accounts for it. A replicate whose resampled x or y is constant
    is left out. The interval is NaN when fewer than half of the replicates are usable.

    Parameters
    ----------
    x, y
        paired samples; non-finite pairs are dropped.
    groups
        group label of each pair (e.g. the structure name); None: one group, i.e. the
        ordinary bootstrap of pairs.
    method
        ``"pearson"`` or ``"spearman"``.
    n_bootstrap
        number of replicates.
    confidence
        coverage of the interval (0.95: the 2.5 and 97.5 percentiles).
    seed
        seed of ``numpy.random.default_rng``; the same seed gives the same interval.

    Returns
    -------
    tuple of float
        ``(lo, hi)``; ``(nan, nan)`` when undefined.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=60); y = x + rng.normal(size=60); g = np.repeat(np.arange(10), 6)
    >>> lo, hi = bootstrap_ci(x, y, g, seed=3)
    >>> lo < correlations(x, y).pearson < hi
    True
    >>> bootstrap_ci(x, y, g, seed=3) == (lo, hi)
    True
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    labels = np.zeros(x.size, dtype=np.int64) if groups is None else np.asarray(groups).ravel()
    if labels.size != x.size or y.size != x.size:
        raise ValueError("x, y and groups must have the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, labels = x[keep], y[keep], labels[keep]
    if n_bootstrap < 1 or _undefined_reason(x, y):
        return (math.nan, math.nan)
    codes = pd.factorize(labels)[0]
    rng = np.random.default_rng(seed)
    index, mask = _hierarchical_indices(codes, int(n_bootstrap), rng)
    xs, ys = _standardize(x)[index], _standardize(y)[index]
    if method == "spearman":
        from scipy.stats import rankdata

        # masked entries get +inf: they rank above every real value, so the real ranks are unchanged
        xs = rankdata(np.where(mask, xs, np.inf), axis=1, method="average")
        ys = rankdata(np.where(mask, ys, np.inf), axis=1, method="average")
    stats = _masked_pearson(xs, ys, mask)
    stats = stats[np.isfinite(stats)]
    if stats.size < 0.5 * n_bootstrap:
        return (math.nan, math.nan)
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return (float(lo), float(hi))


# --------------------------------------------------------------------------- tables


def select_learning_rates(
    rows: pd.DataFrame, lattice: float | None = None, coordinates: float | None = None
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Keep one learning rate per noise type (the tables are per learning rate).

    Parameters
    ----------
    rows
        sweep rows (:func:`xrdnb.sweep.run_sweep`).
    lattice, coordinates
        the learning rate to keep for that noise type. None keeps the only one present.
        When several are present, it keeps the one with the highest structure-match rate
        over all of that noise type's runs (ties: the smaller rate).

    Returns
    -------
    tuple
        ``(rows, {noise_type: lr})``.

    Examples
    --------
    >>> rows = pd.DataFrame({"noise_type": ["lattice"] * 4, "lr": [1e-3, 1e-3, 1e-2, 1e-2],
    ...                      "match": [True, False, True, True]})
    >>> select_learning_rates(rows)[1]
    {'lattice': 0.01}
    """
    chosen: dict[str, float] = {}
    keep = pd.Series(False, index=rows.index)
    for noise_type, wanted in (("lattice", lattice), ("coordinates", coordinates)):
        sub = rows[rows["noise_type"] == noise_type]
        if sub.empty:
            continue
        lrs = sorted(sub["lr"].unique())
        if wanted is not None:
            matches = [lr for lr in lrs if np.isclose(lr, wanted)]
            if not matches:
                raise ValueError(
                    f"no {noise_type} runs with lr = {wanted:g}; available: {', '.join(f'{v:g}' for v in lrs)}"
                )
            lr = matches[0]
        elif len(lrs) == 1:
            lr = lrs[0]
        else:
            rates = sub.groupby("lr")["match"].mean()
            lr = float(rates[rates == rates.max()].index.min())
        chosen[noise_type] = float(lr)
        keep |= (rows["noise_type"] == noise_type) & np.isclose(rows["lr"], lr)
    return rows[keep], chosen


def _level_key(level: float) -> float:
    return round(float(level), 9)


def correlation_cells(
    rows: pd.DataFrame,
    *,
    stage: str = "final",
    amd_column: str | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    mi_neighbors: int = 3,
    columns: Sequence[str] = SI_COLUMNS,
) -> pd.DataFrame:
    """Every cell of the SI layout with its correlations, CIs and mutual information (long format).

    Parameters
    ----------
    rows
        tidy sweep rows with at least ``structure``, ``noise_type``, ``noise_level``,
        ``loss``, ``constrained``, ``amd_distance`` and ``similarity_<metric>`` (with a
        ``start_`` prefix for ``stage="start"``).
    stage
        ``"final"``: the structures where gradient descent ended (the SI's tables);
        ``"start"``: the distorted starting structures.
    amd_column
        use this column as the AMD distance instead (e.g. one recomputed with another k).
    n_bootstrap
        bootstrap replicates for the CIs (0: no CIs); see :func:`bootstrap_ci`.
    confidence
        coverage of the CIs.
    seed
        seed of the bootstrap; every cell uses the same one.
    mi_neighbors
        k of the mutual-information estimator.
    columns
        which of :data:`SI_COLUMNS` to compute.

    Returns
    -------
    pandas.DataFrame
        one row per (noise type, level, column) of the layout: ``noise_type``,
        ``noise_level``, ``row`` (the SI index tuple), ``column``, ``n``, ``n_structures``,
        ``n_dropped`` (non-finite pairs), ``pearson``, ``pearson_lo``, ``pearson_hi``,
        ``spearman``, ``spearman_lo``, ``spearman_hi``, ``mutual_information``,
        ``reason``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> d = rng.uniform(0.01, 1, 40)
    >>> rows = pd.DataFrame({"structure": np.repeat(list("ABCDEFGHIJ"), 4), "noise_type": "lattice",
    ...     "noise_level": 0.05, "loss": "cosine", "constrained": False,
    ...     "amd_distance": d, "similarity_cosine": 1 - d + rng.normal(0, 0.05, 40)})
    >>> cells = correlation_cells(rows, n_bootstrap=200)
    >>> cells = cells.set_index(["noise_type", "noise_level", "column"])
    >>> cell = cells.loc[("lattice", 0.05, "Cosine Similarity")]
    >>> bool(cell.pearson > 0.9), int(cell.n), int(cell.n_structures)
    (True, 40, 10)
    >>> cells.loc[("lattice", 0.05, "MSE"), "reason"]
    'no runs'
    """
    if stage not in ("final", "start"):
        raise ValueError(f"stage must be 'final' or 'start', got {stage!r}")
    prefix = "" if stage == "final" else "start_"
    x_column = amd_column or f"{prefix}amd_distance"
    levels = rows["noise_level"].map(_level_key) if len(rows) else pd.Series(dtype=float)
    out = []
    for label, level in SI_INDEX:
        noise_type = "lattice" if label == "Lattice" else "coordinates"
        at_level = rows[(rows["noise_type"] == noise_type) & (levels == _level_key(level))] if len(rows) else rows
        for column in columns:
            loss, constrained = COLUMN_RUNS[column]
            record = dict(
                noise_type=noise_type,
                noise_level=level,
                row=(label, level),
                column=column,
                n=0,
                n_structures=0,
                n_dropped=0,
                pearson=math.nan,
                pearson_lo=math.nan,
                pearson_hi=math.nan,
                spearman=math.nan,
                spearman_lo=math.nan,
                spearman_hi=math.nan,
                mutual_information=math.nan,
                reason="",
            )
            if constrained and noise_type == "coordinates":
                record["reason"] = _NOT_RUN
                out.append(record)
                continue
            sub = (
                at_level[(at_level["loss"] == loss) & (at_level["constrained"].astype(bool) == constrained)]
                if len(at_level)
                else at_level
            )
            if sub.empty:
                record["reason"] = "no runs"
                out.append(record)
                continue
            x = -sub[x_column].to_numpy(dtype=np.float64)
            y = sub[f"{prefix}similarity_{loss}"].to_numpy(dtype=np.float64)
            finite = np.isfinite(x) & np.isfinite(y)
            corr = correlations(x, y, mi_neighbors=mi_neighbors)
            record.update(
                n=corr.n,
                n_structures=int(sub.loc[finite, "structure"].nunique()),
                n_dropped=int((~finite).sum()),
                pearson=corr.pearson,
                spearman=corr.spearman,
                mutual_information=corr.mutual_information,
                reason=corr.reason,
            )
            if n_bootstrap and not corr.reason:
                for method in ("pearson", "spearman"):
                    lo, hi = bootstrap_ci(
                        x,
                        y,
                        sub["structure"].to_numpy(),
                        method=method,
                        n_bootstrap=n_bootstrap,
                        confidence=confidence,
                        seed=seed,
                    )
                    record[f"{method}_lo"], record[f"{method}_hi"] = lo, hi
            out.append(record)
    return pd.DataFrame(out)


def si_layout(cells: pd.DataFrame, value: str) -> pd.DataFrame:
    """One column of :func:`correlation_cells` arranged as the SI's 10 × 5 table.

    Parameters
    ----------
    cells
        output of :func:`correlation_cells`.
    value
        the column to arrange, e.g. ``"pearson"``, ``"spearman_lo"``,
        ``"mutual_information"``, ``"n"`` or ``"reason"``.

    Returns
    -------
    pandas.DataFrame
        index :data:`SI_INDEX`, columns :data:`SI_COLUMNS` (those present in ``cells``).
    """
    table = cells.pivot(index="row", columns="column", values=value)
    table = table.reindex(index=list(SI_INDEX), columns=[c for c in SI_COLUMNS if c in set(cells["column"])])
    table.index = SI_INDEX
    table.columns.name = None
    return table


def correlation_table(rows: pd.DataFrame, method: str = "pearson", stage: str = "final", **kwargs) -> pd.DataFrame:
    """The SI's 10 × 5 table of one correlation (Table S1: ``"pearson"``, S2: ``"spearman"``).

    Parameters
    ----------
    rows
        tidy sweep rows.
    method
        ``"pearson"``, ``"spearman"`` or ``"mutual_information"``.
    stage
        ``"final"`` or ``"start"`` (see :func:`correlation_cells`).
    **kwargs
        passed to :func:`correlation_cells` (``n_bootstrap`` defaults to 0 here).

    Returns
    -------
    pandas.DataFrame
        index :data:`SI_INDEX`, columns :data:`SI_COLUMNS`; NaN where undefined.

    Examples
    --------
    >>> table = correlation_table(pd.DataFrame(columns=["structure", "noise_type", "noise_level", "loss",
    ...     "constrained", "amd_distance", "similarity_cosine"]))
    >>> table.shape, list(table.index.unique(0)), table.columns[-1]
    ((10, 5), ['Lattice', 'Coordinates'], 'Cosine Similarity + Constraints')
    """
    if method not in ("pearson", "spearman", "mutual_information"):
        raise ValueError(f"method must be 'pearson', 'spearman' or 'mutual_information', got {method!r}")
    kwargs.setdefault("n_bootstrap", 0)
    return si_layout(correlation_cells(rows, stage=stage, **kwargs), method)


def compare_with_paper(cells: pd.DataFrame, method: str = "pearson") -> pd.DataFrame:
    """Our value, CI and the paper's value per cell, with an agreement status.

    Parameters
    ----------
    cells
        output of :func:`correlation_cells` (stage ``"final"``).
    method
        ``"pearson"`` (Table S1) or ``"spearman"`` (Table S2).

    Returns
    -------
    pandas.DataFrame
        ``cells``' identifying columns plus ``ours``, ``lo``, ``hi``, ``paper``,
        ``paper_mark`` (``"value"``, ``"blank"`` or ``"dash"``), ``difference``
        (ours − paper) and ``status``: ``"paper inside CI"``, ``"same sign, outside CI"``,
        ``"opposite sign"``, ``"no paper value"`` or ``"not computed"``.
    """
    paper, text = PAPER_TABLES[method], PAPER_TABLES_TEXT[method]
    out = cells[["noise_type", "noise_level", "row", "column", "n", "reason"]].copy()
    out["ours"] = cells[method].to_numpy()
    out["lo"] = cells[f"{method}_lo"].to_numpy()
    out["hi"] = cells[f"{method}_hi"].to_numpy()
    out["paper"] = [paper.loc[r, c] for r, c in zip(cells["row"], cells["column"])]
    out["paper_mark"] = [paper_mark(text, r, c) for r, c in zip(cells["row"], cells["column"])]
    out["difference"] = out["ours"] - out["paper"]

    def status(rec) -> str:
        if not np.isfinite(rec.ours):
            return "not computed"
        if not np.isfinite(rec.paper):
            return "no paper value"
        if np.isfinite(rec.lo) and rec.lo <= rec.paper <= rec.hi:
            return "paper inside CI"
        if np.sign(rec.ours) == np.sign(rec.paper):
            return "same sign, outside CI"
        return "opposite sign"

    out["status"] = [status(rec) for rec in out.itertuples()]
    return out


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if np.isfinite(value) else "n/a"


def format_comparison(cells: pd.DataFrame, method: str = "pearson", digits: int = 2) -> pd.DataFrame:
    """The SI's 10 × 5 table with ``"ours [lo, hi] · paper"`` in every cell.

    A blank SI cell reads ``"blank in SI"``, and an SI dash reads ``"-"``. An undefined
    value of ours reads ``"n/a"``. A cell that was not run (the coordinate rows of the
    constrained column) reads ``"not run"``.

    Parameters
    ----------
    cells
        output of :func:`correlation_cells` (stage ``"final"``).
    method
        ``"pearson"`` (Table S1) or ``"spearman"`` (Table S2).
    digits
        decimals shown.

    Returns
    -------
    pandas.DataFrame
        strings, index :data:`SI_INDEX`, columns :data:`SI_COLUMNS`.

    Examples
    --------
    >>> rows = pd.DataFrame({"structure": list("ABCDE"), "noise_type": "lattice", "noise_level": 0.01,
    ...     "loss": "cosine", "constrained": False, "amd_distance": [0.1, 0.2, 0.3, 0.4, 0.5],
    ...     "similarity_cosine": [0.9, 0.8, 0.7, 0.65, 0.3]})
    >>> table = format_comparison(correlation_cells(rows, n_bootstrap=0))
    >>> table.loc[("Lattice", 0.01), "Cosine Similarity"]
    '0.94 [n/a] · 0.76'
    >>> table.loc[("Coordinates", 0.001), "Cross Correlation"]
    'n/a · blank in SI'
    >>> table.loc[("Coordinates", 0.1), "Cosine Similarity + Constraints"]
    'not run · -'
    """
    comparison = compare_with_paper(cells, method)

    def text(rec) -> str:
        if rec.reason == _NOT_RUN:
            ours = "not run"
        elif not np.isfinite(rec.ours):
            ours = "n/a"
        elif np.isfinite(rec.lo):
            ours = f"{_fmt(rec.ours, digits)} [{_fmt(rec.lo, digits)}, {_fmt(rec.hi, digits)}]"
        else:
            ours = f"{_fmt(rec.ours, digits)} [n/a]"
        paper = {"blank": "blank in SI", "dash": "-"}.get(rec.paper_mark) or f"{rec.paper:g}"
        return f"{ours} · {paper}"

    comparison = comparison.assign(text=[text(rec) for rec in comparison.itertuples()])
    return si_layout(comparison, "text")


# --------------------------------------------------------------------------- claims


def _get(table: pd.DataFrame | None, label: str, level: float, column: str) -> float:
    if table is None:
        return math.nan
    return float(table.loc[(label, level), column])


def evaluate_claims(
    table: pd.DataFrame, lo: pd.DataFrame | None = None, hi: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Check the paper's three qualitative claims on one correlation table.

    1. The unconstrained cosine correlation falls from lattice noise 0.01 to 0.2.
    2. The constrained column is at least the unconstrained cosine column at every lattice
       level ≥ 0.05.
    3. The coordinate-noise correlations of cosine and entropy similarity are negative at
       the three smallest levels (0.001, 0.005, 0.01).

    Each claim is judged on the point estimates. The verdict is ``"holds"``,
    ``"does not hold"`` or ``"undetermined"`` (a needed value is NaN). With CIs, the
    ``strength`` column also says whether the claim still holds when the CIs are
    considered. For claim 1 that means the CI at 0.2 lies wholly below the one at 0.01.
    For claim 2, each constrained lower bound is at least the unconstrained upper bound.
    For claim 3, every upper bound is below 0.

    Parameters
    ----------
    table
        a 10 × 5 table in the SI layout (:func:`si_layout`, :data:`PAPER_TABLE_S1`, ...).
    lo, hi
        the CI bounds in the same layout (optional).

    Returns
    -------
    pandas.DataFrame
        one row per claim: ``claim``, ``verdict``, ``strength``, ``evidence`` (the numbers).

    Examples
    --------
    >>> evaluate_claims(PAPER_TABLE_S1)["verdict"].tolist()
    ['holds', 'holds', 'holds']
    >>> evaluate_claims(PAPER_TABLE_S2)["verdict"].tolist()
    ['holds', 'holds', 'holds']
    """
    cos, con, ent = "Cosine Similarity", "Cosine Similarity + Constraints", "Entropy Similarity"
    results = []

    def verdict(flags: list[bool], values: list[float]) -> str:
        if not all(np.isfinite(values)):
            return "undetermined"
        return "holds" if all(flags) else "does not hold"

    # (i)
    series = [_get(table, "Lattice", lv, cos) for lv in SI_LEVELS["lattice"]]
    first, last = series[0], series[-1]
    v = verdict([last < first], [first, last])
    lo_first, hi_last = _get(lo, "Lattice", 0.01, cos), _get(hi, "Lattice", 0.2, cos)
    strength = ""
    if v == "holds" and np.isfinite(lo_first) and np.isfinite(hi_last):
        strength = "CIs separated" if hi_last < lo_first else "CIs overlap"
    steps = sum(b < a for a, b in zip(series, series[1:]))
    evidence = (
        f"lattice cosine: {', '.join(_fmt(s, 2) for s in series)} at levels 0.01…0.2 "
        f"(0.2 − 0.01 = {_fmt(last - first, 2)}; falls in {steps} of 4 steps)"
    )
    results.append(
        dict(
            claim="(i) unconstrained cosine correlation falls from lattice 0.01 to 0.2",
            verdict=v,
            strength=strength,
            evidence=evidence,
        )
    )

    # (ii)
    levels = [lv for lv in SI_LEVELS["lattice"] if lv >= 0.05]
    pairs = [(_get(table, "Lattice", lv, con), _get(table, "Lattice", lv, cos)) for lv in levels]
    flat = [p for pair in pairs for p in pair]
    v = verdict([c >= u for c, u in pairs], flat)
    strength = ""
    if v == "holds" and lo is not None and hi is not None:
        sep = [_get(lo, "Lattice", lv, con) >= _get(hi, "Lattice", lv, cos) for lv in levels]
        strength = f"CIs separated at {sum(sep)} of {len(levels)} levels"
    evidence = "; ".join(f"{lv:g}: {_fmt(c, 2)} vs {_fmt(u, 2)}" for lv, (c, u) in zip(levels, pairs))
    n_ok = sum(c >= u for c, u in pairs)
    results.append(
        dict(
            claim="(ii) constrained ≥ unconstrained cosine at every lattice level ≥ 0.05",
            verdict=v,
            strength=strength,
            evidence=f"constrained vs unconstrained: {evidence} ({n_ok} of {len(levels)} levels)",
        )
    )

    # (iii)
    levels = SI_LEVELS["coordinates"][:3]
    values = {(col, lv): _get(table, "Coordinates", lv, col) for col in (cos, ent) for lv in levels}
    v = verdict([val < 0 for val in values.values()], list(values.values()))
    strength = ""
    if v == "holds" and hi is not None:
        neg = [_get(hi, "Coordinates", lv, col) < 0 for (col, lv) in values]
        strength = f"CI below 0 in {sum(neg)} of {len(values)} cells"
    evidence = "; ".join(
        f"{'cosine' if col == cos else 'entropy'}: " + ", ".join(_fmt(values[(col, lv)], 2) for lv in levels)
        for col in (cos, ent)
    )
    n_neg = sum(val < 0 for val in values.values())
    results.append(
        dict(
            claim="(iii) coordinate-noise cosine and entropy correlations are negative at levels 0.001, 0.005, 0.01",
            verdict=v,
            strength=strength,
            evidence=f"{evidence} at 0.001, 0.005, 0.01 ({n_neg} of {len(values)} negative)",
        )
    )
    return pd.DataFrame(results)


# --------------------------------------------------------------------------- sensitivity runs


def final_structures(rows: pd.DataFrame, results: str | os.PathLike) -> list:
    """The structures where gradient descent ended, one pymatgen ``Structure`` per row.

    Lattice runs are rebuilt from ``final_a`` … ``final_gamma`` and the ground-truth
    coordinates. Coordinate runs are rebuilt from the ground-truth lattice and the last
    recorded fractional coordinates (``params[-1]`` of the cell's trajectory file
    ``<results>/cells/<cell_id>.npz``; the last record is the final state). The fixed part
    (coordinates or lattice) is rounded to the row's ``dtype``, as in the optimisation, so
    the structures are exactly those that were evaluated.

    Parameters
    ----------
    rows
        sweep rows with ``cell_id``, ``structure``, ``noise_type``, ``copy``, the
        ``final_*`` lattice columns and (optionally; default float64) ``dtype``.
    results
        the sweep's results folder.

    Returns
    -------
    list
        pymatgen structures in the order of ``rows``.
    """
    import torch

    from .crystal import crystal_from_structure
    from .evaluate import LATTICE_NAMES
    from .structures import load_structure

    truths: dict[tuple[str, str], object] = {}
    trajectories: dict[str, np.ndarray] = {}
    out = []
    for rec in rows.itertuples(index=False):
        dtype = str(getattr(rec, "dtype", "float64"))
        if (rec.structure, dtype) not in truths:
            # the optimisation ran in ``dtype``: round the fixed part of the crystal the same way
            truth = crystal_from_structure(load_structure(rec.structure), dtype=getattr(torch, dtype))
            truths[(rec.structure, dtype)] = truth.to(dtype=torch.float64)
        truth = truths[(rec.structure, dtype)]
        if rec.noise_type == "lattice":
            lattice = torch.tensor([[getattr(rec, f"final_{n}") for n in LATTICE_NAMES]], dtype=torch.float64)
            crystal = truth.with_lattice(lattice)
        else:
            if rec.cell_id not in trajectories:
                with np.load(Path(results) / "cells" / f"{rec.cell_id}.npz") as data:
                    trajectories[rec.cell_id] = data["params"][-1]
            coords = torch.as_tensor(trajectories[rec.cell_id][int(rec.copy)], dtype=torch.float64).unsqueeze(0)
            crystal = truth.with_frac_coords(coords)
        out.append(crystal.to_structures()[0])
    return out


def amd_distances_for_k(structures: Sequence, references: Sequence, ks: Iterable[int] = (50, 100, 200)) -> pd.DataFrame:
    """L∞ AMD distances (Å) of each structure to its reference for several k at once.

    The AMD vector with k entries is the first k entries of the vector with more, because
    the i-th entry averages the i-th nearest-neighbour distances. It is therefore computed
    once, with the largest k. Invalid structures (e.g. degenerate cells) get NaN.

    Parameters
    ----------
    structures
        pymatgen structures.
    references
        the ground truth of each structure (same length; repeated objects are computed once).
    ks
        the k values.

    Returns
    -------
    pandas.DataFrame
        one column ``amd_k<k>`` per k, one row per structure.
    """
    from .evaluate import amd_vector

    ks = sorted({int(k) for k in ks})
    k_max = ks[-1]
    cache: dict[int, np.ndarray] = {}
    values = np.full((len(structures), len(ks)), np.nan)
    for i, (structure, reference) in enumerate(zip(structures, references)):
        if id(reference) not in cache:
            cache[id(reference)] = amd_vector(reference, k_max)
        ref = cache[id(reference)]
        try:
            vec = amd_vector(structure, k_max)
        except Exception:
            continue
        for j, k in enumerate(ks):
            values[i, j] = np.abs(vec[:k] - ref[:k]).max()
    return pd.DataFrame(values, columns=[f"amd_k{k}" for k in ks])


def _run_cell_with_units(cell, units: str, device: str = "cpu") -> pd.DataFrame:
    """One sweep cell (:func:`xrdnb.sweep.run_cell`) with coordinate noise in ``units``."""
    from .sweep import run_cell

    rows, _ = run_cell(cell, units=units, device=device)
    rows["units"] = units
    return rows


def run_cells_with_units(
    cells: Sequence,
    results: str | os.PathLike,
    units: str = "fractional",
    *,
    workers: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """Re-run sweep cells with coordinate noise in other units; resumable, like the sweep.

    Each cell goes through the sweep's pipeline (distort, gradient descent, evaluation)
    with ``distort(..., units=units)``, and its rows are written to
    ``<results>/sensitivity/units-<units>/<cell_id>.csv``. Cells already there are read
    back, not re-run.

    Parameters
    ----------
    cells
        :class:`xrdnb.sweep.Cell` objects (normally coordinate-noise cells).
    results
        the sweep's results folder.
    units
        ``"fractional"`` or ``"angstrom"`` (see :func:`xrdnb.distortions.distort_coordinates`).
    workers
        0: run in this process; N > 0: N single-threaded local processes.
    device
        where each cell's gradient descent runs (see :func:`xrdnb.device.resolve_device`).

    Returns
    -------
    pandas.DataFrame
        the rows of all ``cells`` (columns as in the sweep, plus ``units``).
    """
    from .distortions import COORDINATE_UNITS
    from .device import resolve_device

    if units not in COORDINATE_UNITS:
        raise ValueError(f"unknown units {units!r}; valid: {COORDINATE_UNITS}")
    device = resolve_device(device)
    folder = Path(results) / "sensitivity" / f"units-{units}"
    folder.mkdir(parents=True, exist_ok=True)
    pending = [c for c in cells if not (folder / f"{c.cell_id}.csv").exists()]

    def write(cell, rows: pd.DataFrame) -> None:
        tmp = folder / f"{cell.cell_id}.csv.tmp"
        rows.to_csv(tmp, index=False)
        os.replace(tmp, folder / f"{cell.cell_id}.csv")

    if pending and workers:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_cell_with_units, cell, units, device): cell for cell in pending}
            for future, cell in futures.items():
                write(cell, future.result())
    else:
        for cell in pending:
            write(cell, _run_cell_with_units(cell, units, device))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = [pd.read_csv(folder / f"{c.cell_id}.csv") for c in cells]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
