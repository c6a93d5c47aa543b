"""The comparison sweep of chapter 8: the study's copies, every method at equal budget, resumable."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xrdnb import search_sweep as ss
from xrdnb import search_tuning as tuning
from xrdnb import sweep as sw


def test_a_search_cell_starts_from_the_sweeps_copies_and_names_its_settings():
    cell = ss.SearchCell("U2Ti", 0.1, "multistart", True, n_copies=3, hyper=json.dumps({"restarts": 2}))
    same = sw.prepare_cell(cell.sweep_cell())[2]
    gd = sw.prepare_cell(sw.Cell("U2Ti", "lattice", 0.1, "mse", True, 1e-3, 0, n_copies=3))[2]
    assert np.array_equal(same.lattice.numpy(), gd.lattice.numpy())  # loss and lr do not change the copies
    other = ss.SearchCell("U2Ti", 0.1, "multistart", True, n_copies=3, hyper=json.dumps({"restarts": 3}))
    assert cell.cell_id != other.cell_id and cell.cell_id.startswith("U2Ti_lat0.1_multistart_c_")
    with pytest.raises(ValueError, match="unknown search method 'annealing'"):
        ss.SearchCell("U2Ti", 0.1, "annealing", False)
    assert ss.PROFILES["book"].hyper_of("hybrid") == ss.DEFAULT_HYPER["hybrid"]
    assert ss.SearchSpec(("U2Ti",), (0.1,), ("hybrid",), hyper={"hybrid": {"weight": 2.0}}).hyper_of("hybrid") == {
        "weight": 2.0
    }


def test_the_smoke_comparison_runs_resumes_and_tabulates(tmp_path):
    spec = ss.PROFILES["smoke"]
    rows = ss.run_search_sweep(spec, tmp_path, progress=False)
    assert len(rows) == sum(c.n_copies for c in spec.cells())
    assert (rows["evaluations"] <= rows["budget"]).all() and (rows["energy_evaluations"] == 0).all()
    for column in ("match", "start_match", "max_length_error_rel", "final_a", "start_gamma", "final_loss", "seconds"):
        assert column in rows, column
    again = ss.run_search_sweep(spec, tmp_path, progress=False)  # finished cells are read back, not rerun
    pd.testing.assert_frame_equal(again, rows)
    table = ss.recovery_table(rows, n_bootstrap=50)
    assert set(table["method"]) == set(spec.methods) and set(table["constrained"]) == {False, True}
    assert ((table["match lo"] <= table["match (%)"]) & (table["match (%)"] <= table["match hi"])).all()
    assert (table["evaluations"] <= spec.budget).all()
    assert ss.recovery_table(pd.DataFrame()).empty


def test_the_chapter_figures_draw_every_method(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xrdnb import landscape_tables as lt
    from xrdnb import plotting

    rows = ss.run_search_sweep(ss.PROFILES["smoke"], tmp_path, progress=False)
    table = ss.recovery_table(rows, n_bootstrap=20)
    fig = plotting.recovery_vs_cost(table)
    assert len(fig.axes[0].texts) == len(table)  # one labelled point per method and constraint
    landscape = lt.pair_slices("U2Ti", pairs=[("a", "c")], n=5)[("a", "c")]
    by_method = {m: rows[rows.method == m] for m in ss.PROFILES["smoke"].methods}
    fig = plotting.search_end_points(landscape, by_method, label="cosine similarity")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert titles == ["gradient descent", "multistart"]
    plt.close("all")


def test_the_comparison_is_sized_from_a_measured_run(tmp_path):
    rows = ss.run_search_sweep(ss.PROFILES["smoke"], tmp_path, progress=False)
    size = ss.comparison_size(ss.PROFILES["paper"], rows).set_index("method")
    paper = ss.PROFILES["paper"]
    per_method = len(paper.structures) * len(paper.noise_levels) * len(paper.constrained)
    assert size.loc["gradient_descent", "cells"] == per_method
    assert size.loc["gradient_descent", "evaluations"] == per_method * paper.n_copies * paper.budget
    assert size.loc["gradient_descent", "CPU hours"] > 0 and np.isnan(size.loc["hybrid", "CPU hours"])  # not measured
    assert size.loc["all", "cells"] == len(paper.cells())


def test_hyper_parameters_are_chosen_by_the_written_rule_on_a_separate_seed(tmp_path):
    spec = ss.PROFILES["smoke"]
    with pytest.raises(ValueError, match="tuning seed 0 is one of the comparison's seeds"):
        tuning.tuning_cells(spec, "multistart", {"restarts": [1, 2]}, seed=0)
    cells = tuning.tuning_cells(spec, "multistart", {"restarts": [1, 2], "spread": [0.02]}, seed=1)
    assert len(cells) == 2 * len(spec.constrained) and {c.seed for c in cells} == {1}
    assert {json.loads(c.hyper)["restarts"] for c in cells} == {1, 2}

    def rows(hyper, recovered, match, evaluations):
        return {
            "method": "m",
            "constrained": False,
            "hyper": hyper,
            "noise_type": "lattice",
            "match": match,
            "max_length_error_rel": 0.0 if recovered else 0.5,
            "max_angle_error": 0.0,
            "evaluations": evaluations,
        }

    table = pd.DataFrame([rows("a", False, True, 10), rows("b", True, True, 90), rows("c", True, True, 50)])
    assert tuning.choose_hyper(table).loc[0, "hyper"] == "c"  # recovered first, then the cheaper
    tie = pd.DataFrame([rows("a", True, True, 10), rows("b", True, True, 10)])
    assert tuning.choose_hyper(tie).loc[0, "hyper"] == "a"  # a full tie goes to the first listed
    tuned, chosen = tuning.tune(spec, {"multistart": {"restarts": [1, 2]}}, tmp_path, progress=False)
    assert set(chosen["method"]) == {"multistart"} and len(chosen) == len(spec.constrained)
    assert tuned.hyper_of("multistart")["restarts"] in (1, 2) and tuned.seeds == spec.seeds


def test_the_larger_budget_goes_to_the_most_promising_methods_at_ten_times_every_budget():
    import pandas as pd

    from xrdnb.search_sweep import SearchSpec, larger_budget

    spec = SearchSpec(
        ("U2Ti",),
        (0.1, 0.2),
        ("gradient_descent", "multistart", "basin_hopping"),
        budget=50,
        budgets=(("U2Ti", 0.1, False, 40), ("U2Ti", 0.2, True, 70)),
    )
    table = pd.DataFrame(
        {
            "method": ["gradient_descent", "multistart", "basin_hopping"] * 2,
            "recovered (%)": [10.0, 60.0, 40.0, 30.0, 20.0, 40.0],
        }
    )
    big = larger_budget(spec, table)
    assert big.methods == ("multistart", "basin_hopping")  # means 40 and 40: the spec's order breaks the tie
    assert [c.budget for c in big.cells() if not c.constrained] == [400, 400, 500, 500]
    assert {c.budget for c in big.cells() if c.constrained and c.noise_level == 0.2} == {700}
    assert larger_budget(spec, table, n=1, scale=2).methods == ("multistart",)
    with pytest.raises(ValueError, match="need n >= 1"):
        larger_budget(spec, table, n=0)


def test_budget_multiples_are_relative_to_gradient_descent_on_the_same_copies():
    import pandas as pd

    from xrdnb.search_sweep import budget_multiple

    rows = pd.DataFrame(
        {
            "structure": ["A", "A", "A", "B", "B"],
            "noise_level": [0.1] * 5,
            "seed": [0] * 5,
            "constrained": [False] * 5,
            "method": ["gradient_descent", "multistart", "multistart", "multistart", "gradient_descent"],
            "budget": [40, 40, 400, 70, 70],
        }
    )
    assert budget_multiple(rows).tolist() == [1.0, 1.0, 10.0, 1.0, 1.0]
    assert budget_multiple(rows[rows["structure"] == "A"].iloc[1:]).isna().all()  # no GD cell to compare with
