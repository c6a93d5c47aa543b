r"""SI Tables S1 and S2 from sweep rows: the layout, the paper's values and the comparison with them.

The SI of Segal et al. (Tables S1 and S2) gives, for each noise type and level, the Pearson
and Spearman correlation between the AMD (structural similarity) and each XRD similarity
metric over the structures that gradient descent ended at. :func:`correlation_cells` computes
the same quantities from the tidy rows of :func:`xrdnb.sweep.run_sweep` (with the mutual
information and hierarchical bootstrap intervals of :mod:`xrdnb.statistics`), also for the
distorted *starting* structures; :func:`compare_with_paper` sets them beside the paper's values.

**Convention** (a choice of this project, book/study-protocol.md). Each cell correlates

.. math::
    x = -d_\mathrm{AMD}(\text{end structure}, \text{ground truth}),

    y = s(\text{end pattern}, \text{ground-truth pattern})

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
has no number), read from ``xrdnb/data/paper_table_s1.csv`` and ``paper_table_s2.csv``.
Their ``*_TEXT`` twins keep the SI's own marks: ``""`` for a blank cell and ``"-"`` for a dash.

>>> PAPER_TABLE_S1.loc[("Lattice", 0.01), "Cosine Similarity"]
np.float64(0.76)
>>> paper_mark(PAPER_TABLE_S1_TEXT, ("Coordinates", 0.001), "Cross Correlation")
'blank'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import resources

import numpy as np
import pandas as pd

from .statistics import bootstrap_ci, correlations
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
    "paper_mark",
    "correlation_cells",
    "si_layout",
    "correlation_table",
    "compare_with_paper",
    "format_comparison",
]

SI_INDEX = pd.MultiIndex.from_tuples(
    [(NOISE_LABELS[t], lv) for t in ("lattice", "coordinates") for lv in NOISE_LEVELS[t]],
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


def _read_paper_table(name: str) -> pd.DataFrame:
    """A table of ``xrdnb/data`` as printed: strings, index :data:`SI_INDEX`, columns :data:`SI_COLUMNS`."""
    with (resources.files("xrdnb") / "data" / name).open() as handle:
        text = pd.read_csv(handle, dtype=str, keep_default_na=False)
    keys = list(zip(text.pop("Noise Type"), text.pop("Noise Level").astype(float), strict=True))
    if keys != list(SI_INDEX) or tuple(text.columns) != SI_COLUMNS:
        raise ValueError(f"xrdnb/data/{name} does not have the SI layout")
    text.index = SI_INDEX
    return text


def _numeric(text: pd.DataFrame) -> pd.DataFrame:
    return text.apply(lambda col: pd.to_numeric(col.where(~col.isin(["", "-"])), errors="raise")).astype(float)


PAPER_TABLE_S1_TEXT = _read_paper_table("paper_table_s1.csv")
"""SI Table S1 (Pearson) as printed, with ``""`` for a blank cell and ``"-"`` for a dash.

:meta hide-value:
"""

PAPER_TABLE_S2_TEXT = _read_paper_table("paper_table_s2.csv")
"""SI Table S2 (Spearman) as printed, with ``""`` for a blank cell and ``"-"`` for a dash.

:meta hide-value:
"""

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
        bootstrap replicates for the CIs (0: no CIs); see :func:`~xrdnb.statistics.bootstrap_ci`.
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
    out["paper"] = [paper.loc[r, c] for r, c in zip(cells["row"], cells["column"], strict=True)]
    out["paper_mark"] = [paper_mark(text, r, c) for r, c in zip(cells["row"], cells["column"], strict=True)]
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
