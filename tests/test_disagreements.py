"""Disagreeing cells of Tables S1/S2: the likely explanation by the written rule, and the test of it."""

from __future__ import annotations

import math

import pandas as pd

from xrdnb import disagreements as dg
from xrdnb.tables import PAPER_TABLES, SI_COLUMNS

NOISE = {"Lattice": "lattice", "Coordinates": "coordinates"}


def _cells(shift=None, half_width=0.05, drop=()):
    """Cells equal to the paper's values (0 where it has none), moved by ``shift[(noise, level, column)]``."""
    shift = shift or {}
    out = []
    for label, level in PAPER_TABLES["pearson"].index:
        noise = NOISE[label]
        for column in SI_COLUMNS:
            if (noise, level, column) in drop:
                continue
            cell = {"noise_type": noise, "noise_level": level, "row": (label, level), "column": column}
            cell |= {"n": 160, "reason": ""}
            for method, paper in PAPER_TABLES.items():
                base = paper.loc[(label, level), column]
                value = (0.0 if math.isnan(base) else base) + shift.get((noise, level, column), 0.0)
                cell |= {method: value, f"{method}_lo": value - half_width, f"{method}_hi": value + half_width}
            out.append(cell)
    return pd.DataFrame(out)


def test_cells_that_agree_need_no_explanation():
    table = dg.explain(_cells(), at_protocol=True)
    assert table.empty and list(table.columns)[-3:] == ["explanation", "test", "outcome"]


def test_the_rule_picks_protocol_units_definition_or_amd_k():
    one = {("lattice", 0.1, "Cosine Similarity"): 0.3}
    assert dg.explain(_cells(one), at_protocol=False)["explanation"].tolist() == ["protocol"]
    assert dg.explain(_cells(one), at_protocol=True)["explanation"].tolist() == ["amd_k"]
    coordinate = {("coordinates", 0.05, "MSE"): -0.4}
    assert dg.explain(_cells(coordinate), "spearman", at_protocol=True)["explanation"].tolist() == ["noise_units"]
    column = {("lattice", level, "MSE"): 0.3 for level in (0.01, 0.05, 0.1, 0.15, 0.2)}
    table = dg.explain(_cells(column), at_protocol=True)
    assert len(table) == 5 and set(table["explanation"]) == {"loss_definition"} and set(table["column"]) == {"MSE"}
    assert set(table["status"]) <= set(dg.DISAGREE)
    everything = {("lattice", lv, c): 0.3 for lv in (0.01, 0.05, 0.1, 0.15, 0.2) for c in SI_COLUMNS}
    assert set(dg.explain(_cells(everything), at_protocol=True)["explanation"]) == {"amd_k"}


def test_the_test_accounts_for_moves_toward_or_does_not_explain_a_cell():
    key = ("lattice", 0.1, "Cosine Similarity")
    ours = _cells({key: 0.3})
    alternatives = {
        "amd_k": {
            "k = 50": _cells({key: 0.2}, half_width=0.01),
            "k = 200": _cells({key: 0.5}),
        }
    }
    row = dg.explain(ours, at_protocol=True, alternatives=alternatives).iloc[0]
    assert row["outcome"] == "moves toward the paper"
    assert row["test"] == "k = 50: 0.56 [0.55, 0.57]; k = 200: 0.86 [0.81, 0.91]"
    alternatives["amd_k"]["k = 20"] = _cells()
    assert dg.explain(ours, at_protocol=True, alternatives=alternatives).iloc[0]["outcome"] == "accounts for it"
    worse = {"amd_k": {"k = 200": _cells({key: 0.5})}}
    assert dg.explain(ours, at_protocol=True, alternatives=worse).iloc[0]["outcome"] == "does not explain it"
    missing = {"amd_k": {"k = 50": _cells(drop=[key])}}
    row = dg.explain(ours, at_protocol=True, alternatives=missing).iloc[0]
    assert row["outcome"] == "not tested" and row["test"] == "—"
    assert dg.explain(ours, at_protocol=True).iloc[0]["outcome"] == "not tested"


def test_judge_alternative_follows_the_rule():
    assert dg.judge_alternative(0.5, 0.1, {"value": 0.12, "lo": 0.05, "hi": 0.2}) == "accounts for it"
    assert dg.judge_alternative(0.5, 0.1, {"value": 0.3, "lo": 0.25, "hi": 0.35}) == "moves toward the paper"
    assert dg.judge_alternative(0.5, 0.1, {"value": -0.5, "lo": -0.6, "hi": -0.4}) == "does not explain it"
    assert dg.judge_alternative(0.5, 0.1, {"value": float("nan"), "lo": 0, "hi": 0}) == "not tested"
    assert dg.judge_alternative(0.5, 0.1, None) == "not tested"


def test_outcome_counts_and_the_page_table_keep_every_disagreeing_cell():
    key = ("lattice", 0.1, "Cosine Similarity")
    shifted = _cells({key: 0.3, ("coordinates", 0.05, "MSE"): -0.4})
    alternatives = {"amd_k": {"k = 50": _cells({key: 0.2}, half_width=0.01), "k = 200": _cells()}}
    table = dg.explain(shifted, at_protocol=True, alternatives=alternatives)
    counts = dg.outcome_counts({"S1": table, "S2": table.iloc[:0]})
    assert list(counts.columns) == list(dg.OUTCOMES) and counts.to_numpy().sum() == len(table) == 2
    assert counts.loc[("S1", "AMD k"), "accounts for it"] == 1 and counts.loc[("S1", "noise unit"), "not tested"] == 1
    page = dg.display_table(table).loc[("lattice", "0.1", "Cosine Similarity")]
    assert page["ours [CI] · paper"] == "0.66<br>[0.61, 0.71]<br>paper 0.36"
    assert page["test"].count("<br>") == 1
    page = dg.display_table(table)
    assert page["likely explanation"].tolist() == ["AMD k", "noise unit"]
