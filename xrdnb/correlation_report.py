"""The correlation tables as the book shows them: our values beside the paper's, agreement counts, styles.

:mod:`xrdnb.tables` computes the cells of Tables S1/S2; this module lays them out for reading
(text with intervals, colours by agreement, the mutual-information table, the run record).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .statistics import correlations
from .tables import _fmt, compare_with_paper, format_comparison, si_layout

__all__ = [
    "METHOD_LABELS",
    "AGREEMENT_COLOURS",
    "TABLE_STYLES",
    "readable_index",
    "ci_text",
    "own_table",
    "mi_table",
    "agreement_counts",
    "agreement_summary",
    "amd_start_to_end",
    "mi_constraint_text",
    "record_extras",
    "run_record",
    "style_table",
    "stacked_cell",
    "styled_comparison",
    "styled_change",
]


METHOD_LABELS = {"pearson": "Pearson (Table S1)", "spearman": "Spearman (Table S2)"}
"""Display names of the two correlations, with the SI table that reports each."""

AGREEMENT_COLOURS = {
    "paper inside CI": "#d6f0d6",
    "same sign, outside CI": "#fff0c2",
    "opposite sign": "#f6c9c9",
    "no paper value": "#ececec",
    "not computed": "#ececec",
}
"""Background colour of each :func:`~xrdnb.tables.compare_with_paper` status (green, yellow, red, grey, grey)."""

TABLE_STYLES = [
    {"selector": "td", "props": "white-space: nowrap; font-size: 0.85em; text-align: center;"},
    {"selector": "th", "props": "font-size: 0.85em;"},
    {"selector": "caption", "props": "caption-side: top; font-weight: bold;"},
]
"""CSS of the book's SI-layout tables (pandas ``Styler.set_table_styles``)."""


def readable_index(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its noise levels written as text (``0.01`` instead of ``0.010000``) for display.

    >>> from xrdnb.tables import SI_INDEX
    >>> readable_index(pd.DataFrame({"x": [1]}, index=SI_INDEX[:1])).index.tolist()
    [('Lattice', '0.01')]
    """
    out = table.copy()
    out.index = pd.MultiIndex.from_tuples([(t, f"{lv:g}") for t, lv in table.index], names=table.index.names)
    return out


def ci_text(value: float, lo: float = math.nan, hi: float = math.nan, digits: int = 2) -> str:
    """``"v [lo, hi]"``, ``"v"`` without a CI, ``"n/a"`` for an undefined value.

    >>> ci_text(0.5, 0.25, 0.75), ci_text(0.5), ci_text(math.nan, 0.1, 0.2)
    ('0.50 [0.25, 0.75]', '0.50', 'n/a')
    """
    if not np.isfinite(value):
        return "n/a"
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{value:.{digits}f}"


def _not_run(cells: pd.DataFrame) -> pd.DataFrame:
    return si_layout(cells, "reason").apply(lambda col: col.str.startswith("not run"))


def own_table(cells: pd.DataFrame, method: str = "pearson", digits: int = 2) -> pd.DataFrame:
    """Our values alone, ``"v [lo, hi]"`` per cell (no paper value), in the SI layout with readable levels.

    For the quantities the paper does not report, e.g. the correlations of the distorted
    starting structures. Cells that were not run read ``"not run"``, undefined ones ``"n/a"``.

    Parameters
    ----------
    cells
        output of :func:`~xrdnb.tables.correlation_cells`.
    method
        ``"pearson"`` or ``"spearman"``.
    digits
        decimals shown.
    """
    value, lo, hi = (si_layout(cells, f"{method}{part}") for part in ("", "_lo", "_hi"))
    out = pd.DataFrame(
        [[ci_text(value.loc[r, c], lo.loc[r, c], hi.loc[r, c], digits) for c in value.columns] for r in value.index],
        index=value.index,
        columns=value.columns,
    )
    return readable_index(out.mask(_not_run(cells), "not run"))


def mi_table(cells: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """The mutual information (nats) of every cell as text, ``"n/a"`` where undefined, ``"not run"`` where not run."""
    table = si_layout(cells, "mutual_information")
    text = table.map(lambda v: f"{v:.{digits}f}" if np.isfinite(v) else "n/a").astype(object)
    return readable_index(text.mask(_not_run(cells), "not run"))


def agreement_counts(cells: pd.DataFrame, method: str = "pearson") -> tuple[pd.Series, pd.DataFrame]:
    """How many cells have each agreement status, and the cells where both we and the paper have a value.

    Returns
    -------
    (pandas.Series, pandas.DataFrame)
        counts indexed by the statuses of :data:`AGREEMENT_COLOURS` (zeros included), and the
        rows of :func:`~xrdnb.tables.compare_with_paper` with a finite ``ours`` and ``paper``.
    """
    comparison = compare_with_paper(cells, method)
    counts = comparison["status"].value_counts().reindex(list(AGREEMENT_COLOURS), fill_value=0)
    both = comparison[np.isfinite(comparison["paper"]) & np.isfinite(comparison["ours"])]
    return counts, both


def agreement_summary(cells: pd.DataFrame, methods: Sequence[str] = ("pearson", "spearman")) -> pd.DataFrame:
    """How far our tables agree with the paper's, one row per method (:data:`METHOD_LABELS`).

    Columns: cells per status, cells with both values, mean ``|ours − paper|`` and the Pearson
    correlation of ours with the paper's values over those cells.
    """
    out = {}
    for method in methods:
        counts, both = agreement_counts(cells, method)
        out[METHOD_LABELS[method]] = {
            **{k: int(v) for k, v in counts.items()},
            "cells with both values": len(both),
            "mean |ours − paper|": both["difference"].abs().mean() if len(both) else math.nan,
            "correlation of ours with paper (over cells)": correlations(both["ours"], both["paper"]).pearson,
        }
    return pd.DataFrame(out).T


def amd_start_to_end(rows: pd.DataFrame, noise_type: str = "coordinates", loss: str = "cosine") -> pd.DataFrame:
    """Median AMD distance (Å) to the truth of the distorted starts and of the end structures, per level.

    Only the unconstrained runs of ``loss`` at ``noise_type``; columns ``start_amd_distance``,
    ``amd_distance`` and ``further`` (GD ended further from the truth than it started).
    """
    runs = rows[(rows["noise_type"] == noise_type) & (rows["loss"] == loss) & ~rows["constrained"].astype(bool)]
    med = runs.groupby("noise_level")[["start_amd_distance", "amd_distance"]].median()
    return med.assign(further=med["amd_distance"] > med["start_amd_distance"])


def mi_constraint_text(cells: pd.DataFrame) -> str:
    """Constrained against unconstrained cosine mutual information at every lattice level, as one line."""
    cos, con = "Cosine Similarity", "Cosine Similarity + Constraints"
    mi = si_layout(cells, "mutual_information").loc["Lattice", [cos, con]]
    both = mi.notna().all(axis=1)
    higher = int((mi.loc[both, con] > mi.loc[both, cos]).sum())
    levels = "; ".join(f"{lv:g}: {_fmt(r[con], 2)} vs {_fmt(r[cos], 2)}" for lv, r in mi.iterrows())
    return (
        f"constrained vs unconstrained cosine MI, lattice levels: {levels} "
        f"-> constrained higher at {higher} of {int(both.sum())} levels"
    )


def run_record(study) -> pd.DataFrame:
    """The run record of a :class:`xrdnb.runs.StudyRun`, as a one-column table, plus two lines of the correlations.

    The added lines are the AMD setting and the number of invalid end lattices, whose pairs
    the correlations drop.
    """
    extra = pd.Series(record_extras(study), dtype=object)
    return pd.concat([study.record().astype(object), extra]).to_frame("value")


def record_extras(study) -> dict[str, object]:
    """What the correlations add to a run's record: the AMD setting and the invalid end lattices they drop."""
    rows = study.rows
    return {
        "AMD": f"k = {int(rows['amd_k'].iloc[0])}, L∞ (Chebyshev)" if len(rows) else "n/a",
        "invalid end lattices (dropped)": int((~rows["valid"].astype(bool)).sum()) if len(rows) else 0,
    }


def style_table(table: pd.DataFrame, caption: str):
    """A pandas ``Styler`` with the book's table CSS (:data:`TABLE_STYLES`) and ``caption``."""
    return table.style.set_caption(caption).set_table_styles(TABLE_STYLES)


def stacked_cell(text: str) -> str:
    """A ``"ours [lo, hi] · paper"`` cell on three HTML lines: ours, ``[lo, hi]``, ``paper <value>``.

    >>> stacked_cell("0.89 [0.77, 0.97] · 0.76")
    '0.89<br>[0.77, 0.97]<br>paper 0.76'
    >>> stacked_cell("n/a · blank in SI")
    'n/a<br>paper: blank in SI'
    """
    ours, _, paper = text.partition(" · ")
    ours = ours.replace(" [", "<br>[", 1)
    if not paper:
        return ours
    return f"{ours}<br>paper {paper}" if paper[:1] in "-0123456789" else f"{ours}<br>paper: {paper}"


def styled_comparison(cells: pd.DataFrame, method: str = "pearson", digits: int = 2, caption: str = ""):
    """:func:`~xrdnb.tables.format_comparison` as a ``Styler``, cells coloured by status (:data:`AGREEMENT_COLOURS`).

    Each cell reads ours, its interval and the paper's value on three lines, so that the five
    columns fit a page column.
    """
    text = readable_index(format_comparison(cells, method, digits)).map(stacked_cell)
    status = si_layout(compare_with_paper(cells, method), "status")
    css = status.map(lambda s: f"background-color: {AGREEMENT_COLOURS[s]}").to_numpy()
    return style_table(text, caption).apply(lambda _: css, axis=None)


def styled_change(cells: dict[str, pd.DataFrame], method: str = "pearson", digits: int = 2, caption: str = ""):
    """End-of-GD minus start correlation of every cell as a ``Styler`` with a red–blue gradient over [−1, 1].

    ``cells`` maps ``"final"`` and ``"start"`` to :func:`~xrdnb.tables.correlation_cells` outputs.
    """
    change = si_layout(cells["final"], method) - si_layout(cells["start"], method)
    styler = style_table(readable_index(change), caption).format(precision=digits, na_rep="–")
    return styler.background_gradient(cmap="RdBu", vmin=-1, vmax=1)
