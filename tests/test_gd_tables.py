"""Tables of gradient-descent outcomes (xrdnb.gd_tables): golden values on small synthetic rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import xrdnb
from xrdnb import gd_tables as gt
from xrdnb.runs import run_study
from xrdnb.sweep import SweepSpec, cell_path
from xrdnb.vocabulary import LATTICE_NAMES


def _row(**values):
    base = dict(
        structure="U2Ti",
        noise_type="lattice",
        noise_level=0.1,
        seed=0,
        copy=0,
        loss="cosine",
        constrained=False,
        run="cosine",
        valid=True,
        match=True,
        start_match=False,
        similarity_cosine=0.9,
        start_similarity_cosine=0.5,
        max_length_error_rel=0.0,
        start_max_length_error_rel=0.05,
        max_angle_error=0.0,
        start_max_angle_error=3.0,
    )
    return base | values


@pytest.fixture
def rows():
    """Two copies at two lattice levels, three runs, and one coordinate copy."""
    out = []
    for level in (0.01, 0.1):
        for copy in (0, 1):
            start = dict(noise_level=level, copy=copy, start_match=copy == 0, start_similarity_cosine=0.5 + copy / 10)
            out.append(_row(**start, match=copy == 0, similarity_cosine=0.95, max_length_error_rel=0.02 * copy))
            out.append(_row(**start, loss="mse", run="MSE", match=False, similarity_cosine=0.7 + 0.25 * copy))
            out.append(_row(**start, constrained=True, run="cosine + constraints", similarity_cosine=0.8))
    out.append(
        _row(noise_type="coordinates", noise_level=0.05, match=False, start_match=True, max_angle_error=5.0)
        | dict(similarity_cosine=0.99, start_similarity_cosine=0.98)
    )
    return pd.DataFrame(out)


def test_run_order_follows_the_si_columns(rows):
    assert gt.run_order(rows) == ["cosine", "MSE", "cosine + constraints"]
    assert gt.run_order(rows.assign(run=["x"] + list(rows.run[1:]))) == ["cosine", "MSE", "cosine + constraints", "x"]


def test_distinct_starts_keeps_one_row_per_copy(rows):
    assert len(gt.distinct_starts(rows)) == 5


def test_match_table_has_the_si_layout(rows):
    table = gt.outcome_table(rows, "lattice", "match", copies=True)
    assert list(table.columns) == ["copies", gt.START, "cosine", "MSE", "cosine + constraints"]
    assert list(table.index) == ["0.01", "0.1"] and table.index.name == "lattice noise σ"
    assert table.loc["0.1"].tolist() == [2, 50.0, 50.0, 0.0, 100.0]
    coordinates = gt.outcome_table(rows, "coordinates", "match")
    assert list(coordinates.index) == ["0.05 Å"] and coordinates.loc["0.05 Å"].tolist() == [100.0, 0.0]


def test_recovered_and_similarity_tables(rows):
    recovered = gt.outcome_table(rows, "lattice", "recovered")
    # cosine: copy 0 matches within 1 %, copy 1 has a 2 % length error; starts are 5 % off
    assert recovered.loc["0.01"].tolist() == [0.0, 50.0, 0.0, 100.0]
    similarity = gt.outcome_table(rows, "lattice", "similarity_cosine")
    assert similarity.loc["0.1"].tolist() == pytest.approx([0.55, 0.95, 0.825, 0.8])
    # coordinate noise: the match alone decides
    assert gt.outcome_table(rows, "coordinates", "recovered").loc["0.05 Å"].tolist() == [100.0, 0.0]


def test_projected_column_comes_after_the_start(rows):
    projected = pd.DataFrame(
        {"noise_level": [0.01, 0.01, 0.1], "match": [True, False, True], "max_length_error_rel": 0.0}
        | {"max_angle_error": [0.0, 0.0, 2.0], "similarity_cosine": 0.6}
    )
    table = gt.outcome_table(rows, "lattice", "match", projected=projected)
    assert list(table.columns[:2]) == [gt.START, gt.PROJECTED]
    assert table[gt.PROJECTED].tolist() == [50.0, 100.0]
    assert gt.outcome_table(rows, "lattice", "recovered", projected=projected)[gt.PROJECTED].tolist() == [50.0, 0.0]
    assert gt.PROJECTED not in gt.outcome_table(rows, "coordinates", "match", projected=projected)
    pooled = gt.pooled_rates(rows, projected=projected)
    assert pooled.loc["match"].tolist() == pytest.approx([50.0, 200 / 3, 50.0, 0.0, 100.0])
    assert pooled.loc["recovered", "cosine"] == 50.0


def test_high_similarity_counts(rows):
    by_threshold = gt.mismatch_above_thresholds(rows, [0.6, 0.9])
    assert by_threshold.loc["> 0.9"].tolist() == ["2 of 4", "2 of 2", "0 of 0"]
    assert by_threshold.loc["> 0.6", "MSE"] == "4 of 4"
    counts = gt.high_similarity_counts(rows, 0.9)
    assert list(counts.index) == [("lattice", "cosine"), ("lattice", "MSE"), ("lattice", "cosine + constraints")] + [
        ("coordinates", "cosine")
    ]
    assert counts.loc[("lattice", "MSE")].tolist()[:4] == [4, 2, 2, 4]
    assert counts.loc[("lattice", "MSE"), "share of high-similarity end points without a match (%)"] == 100.0
    assert math.isnan(counts.loc[("lattice", "cosine + constraints"), counts.columns[-1]])
    headline = gt.wrong_but_similar(rows, 0.9)
    assert headline == {"end points": 8, "high": 6, "high_no_match": 4, "no_match": 6, "best_wrong": 0.95}


def test_lattice_error_medians_and_summary(rows):
    medians = gt.lattice_error_medians(rows)
    assert medians.loc["0.1", ("largest length error (%)", gt.START)] == pytest.approx(5.0)
    assert medians.loc["0.1", ("largest length error (%)", "cosine")] == pytest.approx(1.0)
    assert medians.loc["0.1", ("largest angle error (°)", gt.START)] == 3.0
    summary = gt.outcome_summary(rows)
    line = summary.loc[("lattice", "0.1", "MSE")]
    assert line.tolist() == pytest.approx([2, 0.55, 0.825, 50.0, 0.0])
    assert summary.index[-1] == ("coordinates", "0.05 Å", "cosine")  # lattice first, as in the SI tables


def test_nearest_level():
    assert gt.nearest_level([0.01, 0.05, 0.2], 0.1) == 0.05
    with pytest.raises(ValueError):
        gt.nearest_level([], 0.1)


def _example_rows():
    truth = xrdnb.crystal_from_structure(xrdnb.load_structure("Au2S")).lattice[0].tolist()
    out = []
    for copy, (start_match, match, cmatch, cos) in enumerate([(True, False, True, 0.9), (False, False, True, 0.3)]):
        for constrained in (False, True):
            lattice = {
                f"{p}_{n}": v * (1.02 if p == "final" and n in "abc" else 1.0)
                for n, v in zip(LATTICE_NAMES, truth, strict=True)
                for p in ("true", "start", "final")
            }
            out.append(
                _row(structure="Au2S", noise_level=0.05, copy=copy, constrained=constrained, **lattice)
                | dict(start_match=start_match, match=cmatch if constrained else match, similarity_cosine=cos)
            )
    return pd.DataFrame(out)


def test_pick_example_follows_the_papers_story():
    rows = _example_rows()
    example = gt.pick_example(rows, "Au2S", 0.1)
    assert (example.level, example.copy, example.seed) == (0.05, 1, 0)  # the story beats a higher cosine
    assert not example.unconstrained["constrained"] and example.constrained["constrained"]
    assert gt.pick_example(rows, "Au2S", 0.05, copy=0).copy == 0
    with pytest.raises(RuntimeError, match="no lattice runs of BPO4"):
        gt.pick_example(rows, "BPO4", 0.1)


def test_example_panels_rebuild_the_cells_from_the_rows():
    example = gt.pick_example(_example_rows(), "Au2S", 0.05)
    table, crystals, patterns = gt.example_panels(example)
    assert list(table.index) == ["ground truth", "distorted (σ = 0.05)", "GD, cosine loss", "GD, cosine + constraints"]
    assert table.loc["ground truth", "cosine similarity"] == pytest.approx(1.0)
    assert table.loc["distorted (σ = 0.05)", "cosine similarity"] == pytest.approx(1.0)  # the start is the truth here
    assert table.loc["GD, cosine loss", "cosine similarity"] < 0.99  # 2 % larger cell
    truth_volume = table.loc["ground truth", "V (Å³)"]
    assert table.loc["GD, cosine loss", "V (Å³)"] == pytest.approx(truth_volume * 1.02**3)
    assert table.loc["GD, cosine loss", "structure match"] == "no"
    assert set(crystals) == set(patterns) == set(table.index)
    assert float(patterns["ground truth"].max()) == pytest.approx(1.0)


def test_projected_starts_evaluate_the_projected_lattice_without_gd():
    truth = xrdnb.crystal_from_structure(xrdnb.load_structure("Au2S")).lattice[0]
    start = truth * torch.tensor([1.01, 0.99, 1.0, 1.0, 1.0, 1.0], dtype=truth.dtype)
    start[3] += 0.5
    row = _row(structure="Au2S", family="cubic", noise_level=0.01) | {
        f"start_{n}": float(v) for n, v in zip(LATTICE_NAMES, start, strict=True)
    }
    coordinate = _row(structure="Au2S", noise_type="coordinates", family="cubic")
    projected = gt.projected_starts(pd.DataFrame([row, row | {"run": "MSE"}, coordinate]))
    assert len(projected) == 1  # one distinct lattice start; coordinate rows are not projected
    line = projected.iloc[0]
    # the cubic projector averages a, b, c (back to the truth) and sets the angles to 90°
    assert bool(line["match"]) and line["max_length_error_rel"] == pytest.approx(0, abs=1e-12)
    assert line["max_angle_error"] == pytest.approx(0, abs=1e-12)
    assert line["similarity_cosine"] == pytest.approx(1.0)
    assert gt.projected_starts(pd.DataFrame([coordinate])).empty


def test_run_trajectories_read_the_analysed_cells(tmp_path):
    spec = SweepSpec(
        structures=("U2Ti",), lattice_levels=(0.01,), coordinate_levels=(0.01,), losses=("cosine",), n_copies=2
    )
    for cell in spec.cells():
        path = cell_path(tmp_path, cell)
        path.parent.mkdir(parents=True, exist_ok=True)
        loss = np.full((3, 2), -1.0 if cell.constrained else -0.5)
        np.savez_compressed(path.with_suffix(".npz"), steps=np.arange(3), loss=loss)
        rows = [
            _row(cell_id=cell.cell_id, noise_type=cell.noise_type, noise_level=cell.noise_level, lr=cell.lr)
            | dict(constrained=cell.constrained, copy=c, stop_reason="converged")
            for c in range(2)
        ]
        pd.DataFrame(rows).to_csv(path, index=False)
    study = run_study(spec, tmp_path, run_missing=False)
    curves = gt.run_trajectories(study, "U2Ti", "lattice", 0.01)
    assert list(curves) == ["cosine", "cosine + constraints"]
    assert curves["cosine + constraints"]["loss"].tolist() == [[-1.0, -1.0]] * 3
    assert list(gt.run_trajectories(study, "U2Ti", "coordinates", 0.01)) == ["cosine"]
    assert gt.run_trajectories(study, "U2Ti", "lattice", 0.2) == {}


def test_docstring_examples():
    import doctest

    assert doctest.testmod(gt, optionflags=doctest.ELLIPSIS).failed == 0
