"""xrdnb.estimate and xrdnb sweep --estimate: the plan of a sweep before it runs."""

from dataclasses import replace

import pandas as pd
import pytest
from conftest import run_xrdnb

from xrdnb import estimate as est
from xrdnb import sweep as sw


def test_shipped_statistics_cover_the_si_rule():
    table = est.stopping_statistics()
    si = table[(table.patience == 1000) & (table.tol == 1e-4) & (table.max_steps == 30_000)]
    assert set(si.noise_type) == {"lattice", "coordinates"}
    assert (si.mean_steps >= 1000).all() and (si.mean_max_steps >= si.mean_steps).all()
    assert ((si.share_budget >= 0) & (si.share_budget <= 1)).all()
    from importlib import resources

    header = resources.files("xrdnb").joinpath("data/stopping_statistics.csv").read_text().splitlines()[:3]
    assert "tools/stopping_statistics.py" in " ".join(header) and "commit" in header[2]


def test_measure_stopping_from_rows():
    rows = pd.DataFrame(
        {
            "cell_id": ["a"] * 3 + ["b"] * 3,
            "noise_type": "lattice",
            "loss": "cosine",
            "constrained": False,
            "patience": 1000,
            "tol": 1e-4,
            "max_steps": 30_000,
            "steps": [1000, 2000, 3000, 1000, 1000, 30_000],
            "stop_reason": ["converged"] * 5 + ["max_steps"],
        }
    )
    table = est.measure_stopping(rows)
    assert len(table) == 1
    row = table.iloc[0]
    assert row.cells == 2 and row.copies == 6
    assert row.mean_steps == pytest.approx((2000 + 32_000 / 3) / 2)
    assert row.mean_max_steps == pytest.approx((3000 + 30_000) / 2)
    assert row.share_budget == pytest.approx(1 / 6)


def test_expected_steps_use_the_measured_rule_or_the_budget():
    stats = est.stopping_statistics()
    paper_cell = sw.PROFILES["paper"].cells()[0]
    mean, slowest, source = est._expected_steps(paper_cell, stats)
    assert source.startswith("measured") and 1000 <= mean <= slowest <= 30_000
    smoke_cell = sw.PROFILES["smoke"].cells()[0]
    assert est._expected_steps(smoke_cell, stats) == (15.0, 15.0, "budget")
    no_stop = replace(paper_cell, tol=0.0)
    assert est._expected_steps(no_stop, stats)[2] == "budget"


def test_makespan_schedules_in_order():
    assert est._makespan([4, 1, 1, 1, 1], 2) == 4
    assert est._makespan([1, 1, 1, 1], 1) == 4
    assert est._makespan([], 3) == 0


def test_estimate_of_a_small_sweep_matches_its_budget():
    cells = sw.PROFILES["smoke"].cells()[:2]
    table = est.estimate_sweep(cells, calibration_steps=2)
    assert list(table.cell_id) == [c.cell_id for c in cells]
    assert (table.copy_steps == 15 * 2).all() and (table.seconds > 0).all() and (table.seconds_per_copy_step > 0).all()
    summary = est.summarize_estimate(table, workers=2)
    assert list(summary.noise_type) == ["lattice", "all"]
    assert summary.iloc[-1].cells == 2 and summary.iloc[-1].wall_hours <= summary.iloc[-1].cpu_hours
    batched = est.estimate_sweep(cells, calibration_steps=2, batch_cells=True)
    assert batched.task.nunique() == 1 and batched.seconds.sum() > 0
    assert "ms/copy-step" in est.format_estimate(summary, 2)


def test_cli_estimate_prints_the_plan_and_runs_nothing(tmp_path):
    args = ["--structures", "U2Ti", "--results", str(tmp_path), "--estimate", "--quiet"]
    out = run_xrdnb("sweep", "--profile", "smoke", *args, check=True)
    assert "wall h" in out.stdout and "lattice" in out.stdout and "coordinates" in out.stdout
    assert not list(tmp_path.glob("cells/*.csv"))
