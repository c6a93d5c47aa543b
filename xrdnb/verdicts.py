r"""Verdicts on the paper's three claims by stated rules, with bootstrap uncertainties.

:mod:`xrdnb.claims` states the three qualitative claims of SI Tables S1 and S2 and checks them
on point estimates. Here each claim has a written rule (:data:`RULES`) evaluated on sweep rows,
with intervals from the hierarchical bootstrap of :func:`xrdnb.statistics.bootstrap_replicates`
(structures, then copies within them). The correlation of a table cell is that of the SI: of
:math:`-\mathrm{AMD}` distance to the ground truth with the XRD similarity of the cell's loss,
over every structure and copy at one noise level (:func:`xrdnb.tables.correlation_cells`).

A verdict says how the rule's outcome compares with the paper's claim: ``"agrees"``,
``"partly"``, ``"disagrees"``, ``"inconclusive"`` (the intervals decide neither way) or
``"not computed"`` (cells missing). Every interval is a percentile interval of ``confidence``.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> def cells(level, slope, n=40):
...     d = rng.uniform(0.01, 1, n)
...     return pd.DataFrame({"structure": np.repeat(list("ABCDEFGHIJ"), n // 10), "copy": np.tile(range(n // 10), 10),
...         "seed": 0, "noise_type": "lattice", "noise_level": level, "loss": "cosine", "constrained": False,
...         "amd_distance": d, "similarity_cosine": 1 - slope * d + rng.normal(0, 0.05, n)})
>>> rows = pd.concat([cells(lv, 1.0 - 4 * lv) for lv in (0.01, 0.05, 0.1, 0.15, 0.2)])
>>> judge_claims(rows, n_bootstrap=200).set_index("claim").loc["(i)", "verdict"]
'agrees'
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .statistics import bootstrap_replicates, correlations
from .vocabulary import NOISE_LEVELS

__all__ = [
    "RULES",
    "VERDICTS",
    "VERDICT_COLOURS",
    "judge_claims",
    "judge_by_stage",
    "verdict_table",
    "styled_verdicts",
]

VERDICTS = ("agrees", "partly", "disagrees", "inconclusive", "not computed")
"""How a rule's outcome compares with the paper's claim."""

VERDICT_COLOURS = {
    "agrees": "#d9f2d9",
    "partly": "#fff2cc",
    "disagrees": "#f8d0d0",
    "inconclusive": "#eeeeee",
    "not computed": "#ffffff",
}
"""Background colour of each verdict in the chapters' tables."""

STAGES = {"final": "end of GD", "start": "distorted start"}
"""The structures a verdict is about, as the tables label them."""

RULES = {
    "(i)": (
        "The unconstrained cosine correlation falls from lattice noise 0.01 to 0.2 when the Spearman rank "
        "correlation ρ of level and correlation over the five levels is negative with a bootstrap interval "
        "below 0 (each level resampled on its own: the levels' copies are independent draws). Interval below "
        "0: agrees; above 0: disagrees; containing 0: inconclusive."
    ),
    "(ii)": (
        "At every lattice level ≥ 0.05, the constrained cosine correlation is at least the unconstrained one: "
        "the paired bootstrap interval of the difference (constrained − unconstrained, the same copies "
        "resampled together) lies above 0 (the level supports the claim), below 0 (contradicts) or contains 0 "
        "(consistent). Every level supports: agrees; one contradicts: disagrees; some support and none "
        "contradicts: partly; none supports or contradicts: inconclusive."
    ),
    "(iii)": (
        "The coordinate-noise correlations of cosine and of entropy similarity are negative at the three "
        "smallest levels (0.001, 0.005, 0.01): a cell whose interval lies below 0 supports the claim, above 0 "
        "contradicts it. All six support: agrees; one contradicts: disagrees; some support and none "
        "contradicts: partly; otherwise inconclusive."
    ),
}
"""The written rule of each claim, as the chapters print it."""

_PAIR_KEYS = ["structure", "noise_level", "seed", "copy"]


def _run(rows: pd.DataFrame, noise_type: str, level: float, loss: str, constrained: bool) -> pd.DataFrame:
    keep = (
        (rows["noise_type"] == noise_type)
        & np.isclose(rows["noise_level"].astype(float), level)
        & (rows["loss"] == loss)
        & (rows["constrained"].astype(bool) == constrained)
    )
    return rows[keep]


def _xy(sub: pd.DataFrame, loss: str, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    return (
        -sub[f"{prefix}amd_distance"].to_numpy(dtype=np.float64),
        sub[f"{prefix}similarity_{loss}"].to_numpy(dtype=np.float64),
    )


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size < 10:
        return (math.nan, math.nan)
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _side(lo: float, hi: float) -> str:
    """``"supports"`` (interval above 0), ``"contradicts"`` (below 0), ``"consistent"`` or ``"not computed"``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "not computed"
    return "supports" if lo > 0 else "contradicts" if hi < 0 else "consistent"


def _verdict(side: str) -> str:
    """The verdict of a claim decided by one interval (:func:`_side`)."""
    return {"supports": "agrees", "contradicts": "disagrees", "consistent": "inconclusive"}.get(side, side)


def _aggregate(sides: list[str]) -> str:
    if not sides or "not computed" in sides:
        return "not computed"
    if "contradicts" in sides:
        return "disagrees"
    if all(s == "supports" for s in sides):
        return "agrees"
    return "partly" if "supports" in sides else "inconclusive"


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.2f}"


def judge_claims(
    rows: pd.DataFrame,
    *,
    method: str = "pearson",
    stage: str = "final",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """The three claims judged by :data:`RULES` on sweep ``rows``.

    Parameters
    ----------
    rows
        tidy sweep rows (one learning rate per run, e.g. :attr:`xrdnb.selection.Selection.rows`)
        with ``structure``, ``copy``, ``seed``, ``noise_type``, ``noise_level``, ``loss``,
        ``constrained``, ``amd_distance`` and ``similarity_<loss>`` (``start_`` prefixed for
        ``stage="start"``).
    method
        the correlation of the cells: ``"pearson"`` (Table S1) or ``"spearman"`` (Table S2).
    stage
        ``"final"`` (the end points of gradient descent) or ``"start"`` (the distorted copies).
    n_bootstrap, confidence, seed
        replicates, coverage and seed of the intervals (every cell uses ``seed``, offset per
        level for claim (i), whose levels are resampled independently).

    Returns
    -------
    pandas.DataFrame
        one row per claim: ``claim``, ``verdict`` (:data:`VERDICTS`), ``statistic`` and its
        ``lo``/``hi`` (claim (i): ρ; claims (ii), (iii): the smallest margin, i.e. the least
        favourable level's difference or the largest correlation), ``evidence`` (per level, as
        text) and ``rule``.
    """
    if stage not in ("final", "start"):
        raise ValueError(f"stage must be 'final' or 'start', got {stage!r}")
    prefix = "" if stage == "final" else "start_"
    out = []

    # (i) a falling trend over the lattice levels
    levels = list(NOISE_LEVELS["lattice"])
    points, replicates = [], []
    for i, level in enumerate(levels):
        sub = _run(rows, "lattice", level, "cosine", False)
        x, y = _xy(sub, "cosine", prefix)
        points.append(getattr(correlations(x, y), method) if len(sub) else math.nan)
        replicates.append(
            bootstrap_replicates(
                x, y, sub["structure"].to_numpy(), method=method, n_bootstrap=n_bootstrap, seed=seed + i
            )
            if len(sub)
            else np.full(n_bootstrap, math.nan)
        )
    from scipy.stats import spearmanr

    if all(np.isfinite(points)):
        rho = float(spearmanr(levels, points).statistic)
        table = np.stack(replicates, axis=1)  # (B, levels)
        ok = np.isfinite(table).all(axis=1) & (np.ptp(table, axis=1) > 0)
        rhos = np.array([spearmanr(levels, r).statistic for r in table[ok]]) if ok.any() else np.array([])
        lo, hi = _interval(rhos, confidence)
        side = _side(-hi, -lo)  # a negative ρ supports "falls"
        verdict = _verdict(side)
    else:
        rho, lo, hi, verdict = math.nan, math.nan, math.nan, "not computed"
    out.append(
        dict(
            claim="(i)",
            verdict=verdict,
            statistic=rho,
            lo=lo,
            hi=hi,
            evidence=f"unconstrained cosine {method} at lattice {', '.join(f'{lv:g}' for lv in levels)}: "
            f"{', '.join(_fmt(p) for p in points)}; Spearman ρ(level, value) = {_fmt(rho)} [{_fmt(lo)}, {_fmt(hi)}]",
            rule=RULES["(i)"],
        )
    )

    # (ii) constrained at least unconstrained, paired per copy
    sides, texts, margins = [], [], []
    for level in [lv for lv in NOISE_LEVELS["lattice"] if lv >= 0.05]:
        free = _run(rows, "lattice", level, "cosine", False)
        fixed = _run(rows, "lattice", level, "cosine", True)
        both = free.merge(fixed, on=_PAIR_KEYS, suffixes=("_u", "_c"))
        if both.empty:
            sides.append("not computed")
            texts.append(f"{level:g}: no paired copies")
            continue
        xu, yu = -both[f"{prefix}amd_distance_u"].to_numpy(float), both[f"{prefix}similarity_cosine_u"].to_numpy(float)
        xc, yc = -both[f"{prefix}amd_distance_c"].to_numpy(float), both[f"{prefix}similarity_cosine_c"].to_numpy(float)
        diff = getattr(correlations(xc, yc), method) - getattr(correlations(xu, yu), method)
        reps = bootstrap_replicates(
            xu, yu, both["structure"].to_numpy(), method=method, n_bootstrap=n_bootstrap, seed=seed, paired=(xc, yc)
        )
        lo_, hi_ = _interval(reps, confidence)
        sides.append(_side(lo_, hi_))
        margins.append((diff, lo_, hi_))
        texts.append(f"{level:g}: {_fmt(diff)} [{_fmt(lo_)}, {_fmt(hi_)}] ({sides[-1]})")
    worst = min(margins, key=lambda m: m[1] if np.isfinite(m[1]) else -math.inf) if margins else (math.nan,) * 3
    out.append(_claim_row("(ii)", sides, worst, f"constrained − unconstrained cosine {method}: " + "; ".join(texts)))

    # (iii) negative coordinate-noise correlations at the three smallest levels
    sides, texts, highs = [], [], []
    for loss in ("cosine", "entropy"):
        for level in NOISE_LEVELS["coordinates"][:3]:
            sub = _run(rows, "coordinates", level, loss, False)
            if sub.empty:
                sides.append("not computed")
                texts.append(f"{loss} {level:g}: no runs")
                continue
            x, y = _xy(sub, loss, prefix)
            value = getattr(correlations(x, y), method)
            reps = bootstrap_replicates(
                x, y, sub["structure"].to_numpy(), method=method, n_bootstrap=n_bootstrap, seed=seed
            )
            lo_, hi_ = _interval(reps, confidence)
            side = _side(-hi_, -lo_)  # below 0 supports "negative"
            sides.append(side)
            highs.append((value, lo_, hi_))
            texts.append(f"{loss} {level:g}: {_fmt(value)} [{_fmt(lo_)}, {_fmt(hi_)}] ({side})")
    worst = max(highs, key=lambda m: m[2] if np.isfinite(m[2]) else math.inf) if highs else (math.nan,) * 3
    out.append(_claim_row("(iii)", sides, worst, f"coordinate-noise {method}: " + "; ".join(texts)))
    return pd.DataFrame(out)


def _claim_row(claim: str, sides: list[str], worst: tuple, evidence: str) -> dict:
    """A row of :func:`judge_claims` for a claim decided cell by cell (:func:`_aggregate` of ``sides``)."""
    statistic, lo, hi = worst
    return dict(
        claim=claim, verdict=_aggregate(sides), statistic=statistic, lo=lo, hi=hi, evidence=evidence, rule=RULES[claim]
    )


def judge_by_stage(
    rows: pd.DataFrame,
    methods: tuple[str, ...] = ("pearson", "spearman"),
    stages: tuple[str, ...] = ("final", "start"),
    **options,
) -> dict[tuple[str, str], pd.DataFrame]:
    """:func:`judge_claims` for every ``(method, stage)``; ``options`` go to it (``n_bootstrap``, ...)."""
    return {(m, st): judge_claims(rows, method=m, stage=st, **options) for m in methods for st in stages}


def verdict_table(judged: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """Claims × ``(method, stage)`` of :func:`judge_by_stage`: the verdict with its statistic and interval.

    >>> table = pd.DataFrame({"claim": ["(i)"], "verdict": ["agrees"], "statistic": [-0.9], "lo": [-1.0], "hi": [-0.7]})
    >>> verdict_table({("pearson", "final"): table}).iloc[0, 0]
    'agrees: -0.90 [-1.00, -0.70]'
    """
    columns = {}
    for (method, stage), table in judged.items():
        label = (f"{method.capitalize()} (Table S{1 if method == 'pearson' else 2})", STAGES.get(stage, stage))
        columns[label] = [
            f"{r.verdict}: {_fmt(r.statistic)} [{_fmt(r.lo)}, {_fmt(r.hi)}]"
            if r.verdict != "not computed"
            else r.verdict
            for r in table.itertuples()
        ]
    first = next(iter(judged.values()))
    out = pd.DataFrame(columns, index=pd.Index(first["claim"], name="claim"))
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["correlation", "structures"])
    return out


def styled_verdicts(table: pd.DataFrame, caption: str):
    """:func:`verdict_table` as a ``Styler``, each cell coloured by its verdict (:data:`VERDICT_COLOURS`)."""
    return table.style.set_caption(caption).map(
        lambda v: f"background-color: {VERDICT_COLOURS.get(str(v).split(':')[0], '#ffffff')}"
    )
