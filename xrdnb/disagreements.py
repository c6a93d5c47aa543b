"""Why a cell of Tables S1/S2 disagrees with the paper: the likely explanation, by a rule, and its test.

:func:`xrdnb.tables.compare_with_paper` marks the cells where the paper's value lies outside our
interval. Such a cell is either noise or a consequence of a choice the paper leaves open. This
module names the candidates (:data:`EXPLANATIONS`, the project's documented choices), picks the
most likely one per cell by a written rule (:data:`RULE`, :func:`likely_explanation`), and tests
it where an alternative run exists: the same cell computed under the other choice
(:func:`explain`). An explanation *accounts for* a cell when the paper's value lies inside the
alternative's interval, *moves toward* the paper when it only narrows the gap, and otherwise
*does not explain* it.

>>> cell = {"noise_type": "coordinates", "column": "Cosine Similarity"}
>>> likely_explanation(cell, column_share=0.2, others_share=0.1, at_protocol=True)
'noise_units'
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = [
    "EXPLANATIONS",
    "RULE",
    "DISAGREE",
    "likely_explanation",
    "judge_alternative",
    "explain",
    "amd_k_alternatives",
    "units_alternatives",
    "EXPLANATION_LABELS",
    "OUTCOMES",
    "outcome_counts",
    "display_table",
]

EXPLANATIONS = {
    "protocol": "the run's protocol: fewer copies or steps than the SI's (a run not at the paper's protocol)",
    "noise_units": "the unit of the coordinate noise, which the SI does not give (Å here; fractional the alternative)",
    "loss_definition": "the definition of this column's similarity where the SI is terse (MSE clipping, entropy, "
    "cross-correlation half-width)",
    "amd_k": "the number of AMD neighbours k, which the SI does not give (100 here)",
}
"""The candidate explanations of a disagreeing cell by key, each a choice of the project where the paper is silent."""

RULE = (
    "a cell disagrees when the paper's value lies outside our interval (same or opposite sign). Its likely explanation "
    "is, in this order: the protocol, when the run is not at the paper's protocol; the noise unit, for a coordinate-"
    "noise cell; the similarity's definition, when its column disagrees at half or more of its noise type's levels "
    "while the other columns disagree at fewer than half; otherwise the AMD k, the one choice that enters every cell. "
    "The test recomputes the cell under the alternative: it accounts for the cell when the paper's value lies inside "
    "the alternative's interval, moves toward it when |alternative − paper| < |ours − paper|, and otherwise does not "
    "explain it"
)
"""The written rule of :func:`likely_explanation` and :func:`judge_alternative`."""

EXPLANATION_LABELS = {
    "protocol": "protocol",
    "noise_units": "noise unit",
    "loss_definition": "similarity's definition",
    "amd_k": "AMD k",
}
"""Short names of :data:`EXPLANATIONS` for tables."""

OUTCOMES = ("accounts for it", "moves toward the paper", "does not explain it", "not tested")
"""What a test can say about a disagreeing cell, best first (:func:`judge_alternative`)."""

DISAGREE = ("same sign, outside CI", "opposite sign")
"""The statuses of :func:`xrdnb.tables.compare_with_paper` that count as a disagreement."""

_KEY = ["noise_type", "noise_level", "row", "column"]


def likely_explanation(cell: Mapping, *, column_share: float, others_share: float, at_protocol: bool) -> str:
    """The key of :data:`EXPLANATIONS` that :data:`RULE` picks for one disagreeing cell.

    ``cell`` has ``noise_type``; ``column_share`` is the share of its column's cells of the same
    noise type that disagree, ``others_share`` that of the other columns.
    """
    if not at_protocol:
        return "protocol"
    if cell["noise_type"] == "coordinates":
        return "noise_units"
    if column_share >= 0.5 and others_share < 0.5:
        return "loss_definition"
    return "amd_k"


def judge_alternative(ours: float, paper: float, alternative: Mapping | None) -> str:
    """What an alternative cell (``value``, ``lo``, ``hi``) says about a disagreement, by :data:`RULE`."""
    if alternative is None or not np.isfinite(alternative["value"]):
        return "not tested"
    value, lo, hi = (float(alternative[k]) for k in ("value", "lo", "hi"))
    if np.isfinite(lo) and lo <= paper <= hi:
        return "accounts for it"
    if abs(value - paper) < abs(ours - paper):
        return "moves toward the paper"
    return "does not explain it"


def explain(
    cells: pd.DataFrame,
    method: str = "pearson",
    *,
    at_protocol: bool,
    alternatives: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
) -> pd.DataFrame:
    """Every disagreeing cell of ``cells`` with its likely explanation and the test of it.

    Parameters
    ----------
    cells
        :func:`xrdnb.tables.correlation_cells` of a run (stage ``"final"``).
    method
        ``"pearson"`` (Table S1) or ``"spearman"`` (Table S2).
    at_protocol
        whether the run is at the paper's protocol (:func:`xrdnb.sweep.at_paper_protocol`).
    alternatives
        per explanation key, ``{label: cells}`` of the same cells computed under the alternative
        choice (e.g. ``{"amd_k": {"k = 50": ..., "k = 200": ...}, "protocol": {"reference run": ...}}``);
        an explanation without alternatives, or a cell they do not cover, is "not tested".

    Returns
    -------
    pandas.DataFrame
        one row per disagreeing cell: ``noise_type``, ``noise_level``, ``row``, ``column``,
        ``ours``, ``lo``, ``hi``, ``paper``, ``status``, ``explanation`` (key of :data:`EXPLANATIONS`),
        ``test`` (the alternatives' values, ``label: value [lo, hi]``) and ``outcome`` (the best of
        :func:`judge_alternative` over the alternatives: accounts for it, moves toward the paper, does
        not explain it, not tested).
    """
    from .tables import compare_with_paper

    comparison = compare_with_paper(cells, method)
    judged = comparison[np.isfinite(comparison["paper"]) & np.isfinite(comparison["ours"])]
    bad = judged["status"].isin(DISAGREE)
    alternatives = alternatives or {}
    lookup = {key: {label: alt.set_index(_KEY) for label, alt in alts.items()} for key, alts in alternatives.items()}
    out = []
    for rec in judged[bad].itertuples(index=False):
        same_type = judged["noise_type"] == rec.noise_type
        in_column = same_type & (judged["column"] == rec.column)
        key = likely_explanation(
            rec._asdict(),
            column_share=float(bad[in_column].mean()),
            others_share=float(bad[same_type & ~in_column].mean()) if (same_type & ~in_column).any() else 0.0,
            at_protocol=at_protocol,
        )
        tests, outcomes = [], []
        for label, alt in lookup.get(key, {}).items():
            index = (rec.noise_type, rec.noise_level, rec.row, rec.column)
            found = alt.loc[[index]].iloc[0] if index in alt.index else None
            values = None
            if found is not None:
                values = {"value": found[method], "lo": found[f"{method}_lo"], "hi": found[f"{method}_hi"]}
                tests.append(f"{label}: {values['value']:.2f} [{values['lo']:.2f}, {values['hi']:.2f}]")
            outcomes.append(judge_alternative(rec.ours, rec.paper, values))
        best = min(outcomes, key=OUTCOMES.index) if outcomes else "not tested"
        out.append(
            {k: getattr(rec, k) for k in (*_KEY, "ours", "lo", "hi", "paper", "status")}
            | {"explanation": key, "test": "; ".join(tests) or "—", "outcome": best}
        )
    columns = [*_KEY, "ours", "lo", "hi", "paper", "status", "explanation", "test", "outcome"]
    return pd.DataFrame(out, columns=columns)


def amd_k_alternatives(k_rows: pd.DataFrame, ks, *, used: int = 100, **options) -> dict[str, pd.DataFrame]:
    """The cosine cells recomputed with every AMD k of ``ks`` but ``used``, for :func:`explain`'s ``amd_k``.

    ``k_rows`` are :func:`xrdnb.sensitivity.amd_k_rows`; ``options`` go to
    :func:`xrdnb.tables.correlation_cells` (``n_bootstrap``, ``confidence``, ``seed``, ``mi_neighbors``).
    """
    from .tables import correlation_cells

    columns = ["Cosine Similarity", "Cosine Similarity + Constraints"]
    if k_rows.empty:
        return {}
    return {
        f"k = {k}": correlation_cells(k_rows, amd_column=f"amd_k{k}", columns=columns, **options)
        for k in sorted({int(k) for k in ks} - {used})
    }


def units_alternatives(alt_rows: pd.DataFrame, units: str, **options) -> dict[str, pd.DataFrame]:
    """The cosine coordinate cells rerun with the noise in ``units``, for :func:`explain`'s ``noise_units``.

    ``alt_rows`` are :func:`xrdnb.sensitivity.units_rows`; ``options`` as in :func:`amd_k_alternatives`.
    """
    from .tables import correlation_cells

    if alt_rows.empty:
        return {}
    return {f"{units} units": correlation_cells(alt_rows, columns=["Cosine Similarity"], **options)}


def outcome_counts(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Disagreeing cells per likely explanation and outcome, one block of rows per table of :func:`explain`.

    ``tables`` maps a name (e.g. ``"Pearson (Table S1)"``) to an :func:`explain` table. Rows
    (table, explanation label), columns :data:`OUTCOMES` (counts, zeros included).
    """
    blocks = {}
    for name, table in tables.items():
        counts = pd.crosstab(table["explanation"], table["outcome"]) if len(table) else pd.DataFrame()
        counts = counts.reindex(index=list(EXPLANATION_LABELS), columns=list(OUTCOMES), fill_value=0).fillna(0)
        blocks[name] = counts.astype(int).rename(index=EXPLANATION_LABELS).loc[lambda t: t.sum(axis=1) > 0]
    out = pd.concat(blocks, names=["table", "likely explanation"]) if blocks else pd.DataFrame()
    return out.rename_axis(columns=None)


def display_table(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """An :func:`explain` table for a page: one row per cell, ours and the paper's value stacked, tests on lines.

    Index (noise type, σ, column); columns ``ours [CI] · paper`` (HTML line breaks), ``likely
    explanation``, ``test`` and ``outcome``.
    """
    from .correlation_report import ci_text, stacked_cell

    def ours(rec) -> str:
        return stacked_cell(f"{ci_text(rec.ours, rec.lo, rec.hi, digits)} · {rec.paper:.{digits}f}")

    out = pd.DataFrame(
        {
            "ours [CI] · paper": [ours(rec) for rec in table.itertuples()],
            "likely explanation": table["explanation"].map(EXPLANATION_LABELS).to_numpy(),
            "test": table["test"].str.replace("; ", "<br>").to_numpy(),
            "outcome": table["outcome"].to_numpy(),
        },
        index=pd.MultiIndex.from_arrays(
            [table["noise_type"], table["noise_level"].map("{:g}".format), table["column"]],
            names=["noise", "σ", "column"],
        ),
    )
    return out
