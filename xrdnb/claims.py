"""The SI's three qualitative claims about Tables S1/S2, checked on a table in the SI layout.

>>> from xrdnb.tables import PAPER_TABLE_S1
>>> evaluate_claims(PAPER_TABLE_S1)["verdict"].tolist()
['holds', 'holds', 'holds']
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .correlation_report import AGREEMENT_COLOURS, METHOD_LABELS, agreement_counts, amd_start_to_end
from .tables import PAPER_TABLES, si_layout
from .vocabulary import NOISE_LEVELS

__all__ = [
    "STAGE_LABELS",
    "evaluate_claims",
    "claims_by_stage",
    "verdict_table",
    "styled_verdicts",
    "claims_report",
    "summary",
]


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if np.isfinite(value) else "n/a"


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
        a 10 × 5 table in the SI layout (:func:`~xrdnb.tables.si_layout`, :data:`~xrdnb.tables.PAPER_TABLE_S1`, ...).
    lo, hi
        the CI bounds in the same layout (optional).

    Returns
    -------
    pandas.DataFrame
        one row per claim: ``claim``, ``verdict``, ``strength``, ``evidence`` (the numbers).

    Examples
    --------
    >>> from xrdnb.tables import PAPER_TABLE_S1, PAPER_TABLE_S2
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
    series = [_get(table, "Lattice", lv, cos) for lv in NOISE_LEVELS["lattice"]]
    first, last = series[0], series[-1]
    v = verdict([last < first], [first, last])
    lo_first, hi_last = _get(lo, "Lattice", 0.01, cos), _get(hi, "Lattice", 0.2, cos)
    strength = ""
    if v == "holds" and np.isfinite(lo_first) and np.isfinite(hi_last):
        strength = "CIs separated" if hi_last < lo_first else "CIs overlap"
    steps = sum(b < a for a, b in zip(series, series[1:], strict=False))
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
    levels = [lv for lv in NOISE_LEVELS["lattice"] if lv >= 0.05]
    pairs = [(_get(table, "Lattice", lv, con), _get(table, "Lattice", lv, cos)) for lv in levels]
    flat = [p for pair in pairs for p in pair]
    v = verdict([c >= u for c, u in pairs], flat)
    strength = ""
    if v == "holds" and lo is not None and hi is not None:
        sep = [_get(lo, "Lattice", lv, con) >= _get(hi, "Lattice", lv, cos) for lv in levels]
        strength = f"CIs separated at {sum(sep)} of {len(levels)} levels"
    evidence = "; ".join(f"{lv:g}: {_fmt(c, 2)} vs {_fmt(u, 2)}" for lv, (c, u) in zip(levels, pairs, strict=True))
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
    levels = list(NOISE_LEVELS["coordinates"][:3])
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


STAGE_LABELS = {"final": "ours, end of GD", "start": "ours, start", "paper": "paper's numbers"}
"""What the claims are checked on (our end structures, our distorted starts, the paper's own tables)."""


def claims_by_stage(
    cells: dict[str, pd.DataFrame], methods: tuple[str, ...] = ("pearson", "spearman")
) -> dict[tuple[str, str], pd.DataFrame]:
    """:func:`evaluate_claims` on our tables (with CIs) and on the paper's, for each method.

    Parameters
    ----------
    cells
        stage (``"final"``, ``"start"``) → output of :func:`xrdnb.tables.correlation_cells`.
    methods
        ``"pearson"`` and/or ``"spearman"``.

    Returns
    -------
    dict
        ``(method, stage)`` → claims table, with stage ``"paper"`` for the paper's Tables S1/S2.
    """
    out = {}
    for method in methods:
        for stage, stage_cells in cells.items():
            table, lo, hi = (si_layout(stage_cells, f"{method}{part}") for part in ("", "_lo", "_hi"))
            out[(method, stage)] = evaluate_claims(table, lo, hi)
        out[(method, "paper")] = evaluate_claims(PAPER_TABLES[method])
    return out


def verdict_table(claims: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """The verdicts of :func:`claims_by_stage` side by side.

    One row per claim ("(i)" …), one column per (method, :data:`STAGE_LABELS`).

    Examples
    --------
    >>> from xrdnb.tables import PAPER_TABLE_S1
    >>> verdict_table({("pearson", "paper"): evaluate_claims(PAPER_TABLE_S1)}).to_dict("index")["(i)"]
    {('Pearson (Table S1)', "paper's numbers"): 'holds'}
    """
    first = next(iter(claims.values()))
    return pd.DataFrame(
        {(METHOD_LABELS[m], STAGE_LABELS[stage]): table["verdict"].to_numpy() for (m, stage), table in claims.items()},
        index=[c.split(" ", 1)[0] for c in first["claim"]],
    )


def styled_verdicts(verdicts: pd.DataFrame, caption: str):
    """:func:`verdict_table` as a ``Styler``: green for holds, red for does not hold, grey otherwise."""
    colour = {"holds": AGREEMENT_COLOURS["paper inside CI"], "does not hold": AGREEMENT_COLOURS["opposite sign"]}
    return verdicts.style.set_caption(caption).map(
        lambda v: f"background-color: {colour.get(v, AGREEMENT_COLOURS['not computed'])}"
    )


def claims_report(
    claims: dict[tuple[str, str], pd.DataFrame], methods: tuple[str, ...] = ("pearson", "spearman")
) -> str:
    """Each claim with our verdict, its strength and evidence, and the paper's, per method (text)."""
    lines = []
    for i, claim in enumerate(claims[(methods[0], "final")]["claim"]):
        lines.append(claim)
        for method in methods:
            ours, paper = claims[(method, "final")].loc[i], claims[(method, "paper")].loc[i]
            strength = f" ({ours.strength})" if ours.strength else ""
            lines.append(f"  {method:8s} ours:  {ours.verdict.upper()}{strength}")
            lines.append(f"           {ours.evidence}")
            lines.append(f"  {method:8s} paper: {paper.verdict} — {paper.evidence}")
        lines.append("")
    return "\n".join(lines)


def summary(
    judged: dict[tuple[str, str], pd.DataFrame], cells: pd.DataFrame, rows: pd.DataFrame, run: str = "", note: str = ""
) -> str:
    """The chapter's closing printout, as text.

    The run, every claim's verdicts by the rules of :mod:`xrdnb.verdicts` and their evidence,
    the agreement with the paper, how far GD moved the coordinate-noise cosine runs, and the
    verdicts on the distorted starts.

    Parameters
    ----------
    judged
        output of :func:`xrdnb.verdicts.judge_by_stage` (stages ``"final"`` and ``"start"``).
    cells
        :func:`xrdnb.tables.correlation_cells` at the end of GD.
    rows
        the analysed sweep rows.
    run
        which run made the numbers (:meth:`xrdnb.runs.StudyRun.caption`).
    note
        a line printed under the run (e.g. that the run is not at the paper's protocol).
    """
    lines = [f"run: {run}"] if run else []
    if note:
        lines.append(note)
    final = {m: judged[(m, "final")].set_index("claim") for m in ("pearson", "spearman")}
    for claim in final["pearson"].index:
        p, s = final["pearson"].loc[claim], final["spearman"].loc[claim]
        lines.append(f"{claim}: Pearson {p.verdict}, Spearman {s.verdict}")
        lines += [f"    Pearson:  {p.evidence}", f"    Spearman: {s.evidence}"]
    for method, label in METHOD_LABELS.items():
        counts, both = agreement_counts(cells, method)
        mean = _fmt(both["difference"].abs().mean(), 2) if len(both) else "n/a"
        lines.append(
            f"{label}: paper inside our CI in {counts['paper inside CI']} of {len(both)} cells, "
            f"opposite sign in {counts['opposite sign']}; mean |ours − paper| {mean}"
        )
    med = amd_start_to_end(rows)
    if len(med):
        lines.append(
            "coordinate noise, cosine runs, median AMD distance start → end (Å): "
            + "; ".join(
                f"{lv:g}: {r.start_amd_distance:.2g} → {r.amd_distance:.2g}{' (further)' if r.further else ''}"
                for lv, r in med.iterrows()
            )
        )
    for method, label in METHOD_LABELS.items():
        start = judged[(method, "start")]
        lines.append(
            f"{label}, distorted starting structures: "
            + ", ".join(f"{c} {v}" for c, v in zip(start["claim"], start["verdict"], strict=True))
        )
    return "\n".join(lines)
