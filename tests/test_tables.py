"""Correlation tables of SI Tables S1/S2: statistics, layout, paper values, claims, sensitivity checks."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xrdnb import sensitivity, statistics, tables
from xrdnb.claims import evaluate_claims
from xrdnb.statistics import bootstrap_ci, correlations
from xrdnb.tables import (
    COLUMN_RUNS,
    PAPER_TABLE_S1,
    PAPER_TABLE_S1_TEXT,
    PAPER_TABLE_S2,
    PAPER_TABLE_S2_TEXT,
    SI_COLUMNS,
    SI_INDEX,
    compare_with_paper,
    correlation_cells,
    correlation_table,
    format_comparison,
    paper_mark,
    si_layout,
)
from xrdnb.vocabulary import NOISE_LEVELS


@pytest.fixture(autouse=True)
def no_warnings():
    """Degenerate input must not make numpy, scipy or scikit-learn warn (runtime and user warnings are errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("error", UserWarning)
        yield


def gaussian_mi(rho: float) -> float:
    return -0.5 * math.log(1 - rho**2)


# --------------------------------------------------------------------------- correlations


def test_linear_relations():
    x = np.linspace(-3, 5, 50)
    up = correlations(x, 2 * x + 1)
    down = correlations(x, -x)
    assert up.pearson == pytest.approx(1.0, abs=1e-12) and up.spearman == pytest.approx(1.0, abs=1e-12)
    assert down.pearson == pytest.approx(-1.0, abs=1e-12) and down.spearman == pytest.approx(-1.0, abs=1e-12)
    assert up.n == 50 and up.reason == ""


def test_monotone_nonlinear_spearman_one_pearson_less():
    x = np.linspace(0, 1, 200)
    c = correlations(x, np.exp(8 * x))
    assert c.spearman == pytest.approx(1.0, abs=1e-12)
    assert c.pearson < 0.9


def test_independent_samples_are_uncorrelated():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=4000), rng.normal(size=4000)
    c = correlations(x, y)
    assert abs(c.pearson) < 0.05 and abs(c.spearman) < 0.05
    assert c.mutual_information < 0.02


def test_agrees_with_scipy_including_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=80).astype(float)
    y = x + rng.integers(0, 4, size=80)
    c = correlations(x, y)
    assert c.pearson == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert c.spearman == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mutual_information_of_gaussians(rho):
    rng = np.random.default_rng(1)
    xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=3000)
    c = correlations(xy[:, 0], xy[:, 1])
    assert c.mutual_information == pytest.approx(gaussian_mi(rho), abs=0.05)
    assert c.pearson == pytest.approx(rho, abs=0.05)


def test_mutual_information_of_deterministic_nonmonotone_relation():
    x = np.random.default_rng(2).uniform(-1, 1, 1000)
    c = correlations(x, x**2)
    assert abs(c.pearson) < 0.1  # no linear relation ...
    assert c.mutual_information > 1.0  # ... but y is a function of x


def test_mutual_information_ignores_offset_and_scale():
    """Similarities like 0.99999999x must not drown in scikit-learn's tie-breaking jitter."""
    rng = np.random.default_rng(4)
    xy = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], size=500)
    plain = correlations(xy[:, 0], xy[:, 1])
    tiny = correlations(1e-3 * xy[:, 0] + 7.0, 1.0 + 1e-9 * xy[:, 1])
    assert tiny.mutual_information == pytest.approx(plain.mutual_information, abs=1e-6)
    assert tiny.pearson == pytest.approx(plain.pearson, abs=1e-5)


def test_mutual_information_is_deterministic():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=100), rng.normal(size=100)
    assert correlations(x, y).mutual_information == correlations(x, y).mutual_information


@pytest.mark.parametrize(
    "x, y, reason",
    [
        ([1, 2, 3, 4], [5, 5, 5, 5], "y is constant"),
        ([2, 2, 2, 2], [1, 2, 3, 4], "x is constant"),
        ([2, 2, 2], [1, 1, 1], "both columns are constant"),
        ([1, 2], [3, 4], "fewer than 3 samples (n = 2)"),
        ([], [], "fewer than 3 samples (n = 0)"),
        ([1, np.nan, 3, 4], [1, 2, np.inf, 0], "fewer than 3 samples (n = 2)"),
    ],
)
def test_undefined_cases_give_nan_and_a_reason(x, y, reason):
    c = correlations(x, y)
    assert math.isnan(c.pearson) and math.isnan(c.spearman) and math.isnan(c.mutual_information)
    assert c.reason == reason


def test_non_finite_pairs_are_dropped():
    c = correlations([1, 2, np.nan, 3, 4], [2, 4, 5, 6, np.nan])
    assert c.n == 3 and c.pearson == pytest.approx(1.0)


def test_mutual_information_needs_more_samples_than_neighbours():
    c = correlations([1, 2, 3], [1, 3, 2])
    assert np.isfinite(c.pearson) and math.isnan(c.mutual_information)
    assert "more than 3 samples" in c.reason


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        correlations([1, 2, 3], [1, 2])


# --------------------------------------------------------------------------- bootstrap


def clustered(seed=0, n_groups=10, per_group=4, noise=0.5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n_groups * per_group)
    y = x + noise * rng.normal(size=x.size)
    return x, y, np.repeat(np.arange(n_groups), per_group)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_bootstrap_contains_estimate_and_is_deterministic(method):
    x, y, g = clustered()
    estimate = getattr(correlations(x, y), method)
    lo, hi = bootstrap_ci(x, y, g, method=method, n_bootstrap=500, seed=11)
    assert lo < estimate < hi and hi - lo < 0.7
    assert bootstrap_ci(x, y, g, method=method, n_bootstrap=500, seed=11) == (lo, hi)
    assert bootstrap_ci(x, y, g, method=method, n_bootstrap=500, seed=12) != (lo, hi)


def test_bootstrap_hierarchical_is_wider_for_clustered_data():
    """With a shared per-structure effect, resampling structures widens the interval."""
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(8), 10)
    effect = rng.normal(size=8)[groups]
    x = effect + 0.3 * rng.normal(size=groups.size)
    y = effect + 0.3 * rng.normal(size=groups.size)
    lo_h, hi_h = bootstrap_ci(x, y, groups, n_bootstrap=1000, seed=0)
    lo_p, hi_p = bootstrap_ci(x, y, None, n_bootstrap=1000, seed=0)
    assert hi_h - lo_h > 1.5 * (hi_p - lo_p)


def test_hierarchical_indices_resample_structures_then_copies():
    codes = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])  # unequal numbers of copies
    index, mask = statistics._hierarchical_indices(codes, 200, np.random.default_rng(0))
    sizes = np.bincount(codes)
    width = sizes.max()
    for row, keep in zip(index, mask):
        blocks = row.reshape(3, width)[:, :], keep.reshape(3, width)
        for block, valid in zip(*blocks):
            members = block[valid]
            group = codes[members[0]]
            assert (codes[members] == group).all() and members.size == sizes[group]


def test_bootstrap_spearman_with_unequal_groups_matches_reference():
    """The vectorised masked Spearman equals scipy on each replicate."""
    rng = np.random.default_rng(9)
    codes = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3])
    x, y = rng.normal(size=codes.size), rng.normal(size=codes.size)
    index, mask = statistics._hierarchical_indices(codes, 50, np.random.default_rng(1))
    expected = []
    for row, keep in zip(index, mask):
        xs, ys = x[row[keep]], y[row[keep]]
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            expected.append(np.nan)
        else:
            expected.append(stats.spearmanr(xs, ys).statistic)
    xs = stats.rankdata(np.where(mask, x[index], np.inf), axis=1)
    ys = stats.rankdata(np.where(mask, y[index], np.inf), axis=1)
    got = statistics._masked_pearson(xs, ys, mask)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_bootstrap_undefined():
    assert all(math.isnan(v) for v in bootstrap_ci([1, 2, 3], [4, 4, 4]))
    assert all(math.isnan(v) for v in bootstrap_ci([1, 2], [1, 2]))
    with pytest.raises(ValueError):
        bootstrap_ci([1, 2, 3], [1, 2, 3], method="kendall")


# --------------------------------------------------------------------------- tables


def synthetic_rows(seed=0, n_structures=10, n_copies=4, prefix=""):
    """Sweep-like rows for every SI cell; per column a known relation between AMD and similarity."""
    rng = np.random.default_rng(seed)
    frames = []
    for noise_type, levels in NOISE_LEVELS.items():
        for level in levels:
            for _column, (loss, constrained) in COLUMN_RUNS.items():
                if constrained and noise_type == "coordinates":
                    continue
                n = n_structures * n_copies
                d = rng.uniform(0.01, 1.0, n)
                frames.append(
                    pd.DataFrame(
                        {
                            "structure": np.repeat([f"S{i}" for i in range(n_structures)], n_copies),
                            "copy": np.tile(np.arange(n_copies), n_structures),
                            "noise_type": noise_type,
                            "noise_level": level,
                            "loss": loss,
                            "constrained": constrained,
                            "lr": 1e-2 if noise_type == "lattice" else 1e-3,
                            f"{prefix}amd_distance": d,
                            # similarity falls as the AMD distance grows: positive correlation with -AMD
                            f"{prefix}similarity_{loss}": 1.0 - d + 0.05 * rng.normal(size=n),
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)


def test_table_layout():
    table = correlation_table(synthetic_rows(), "pearson")
    assert table.shape == (10, 5)
    assert (
        list(table.columns)
        == list(SI_COLUMNS)
        == ["Cosine Similarity", "MSE", "Entropy Similarity", "Cross Correlation", "Cosine Similarity + Constraints"]
    )
    assert table.index.equals(SI_INDEX)
    assert table.index.names == ["Noise Type", "Noise Level"]
    assert list(table.index) == [("Lattice", lv) for lv in (0.01, 0.05, 0.1, 0.15, 0.2)] + [
        ("Coordinates", lv) for lv in (0.001, 0.005, 0.01, 0.05, 0.1)
    ]
    assert table.loc["Coordinates", "Cosine Similarity + Constraints"].isna().all()
    assert table.loc["Lattice"].notna().all().all()
    assert (table.loc["Lattice"] > 0.9).all().all()


def test_sign_convention():
    """Smaller AMD distance together with higher similarity gives a positive correlation."""
    rows = synthetic_rows()
    assert (correlation_table(rows, "pearson").loc["Lattice"] > 0).all().all()
    assert (correlation_table(rows, "spearman").loc["Lattice"] > 0).all().all()
    flipped = rows.assign(amd_distance=-rows["amd_distance"] + 2)  # now larger distance ↔ higher similarity
    assert (correlation_table(flipped, "pearson").loc["Lattice"] < 0).all().all()


def test_each_column_uses_its_own_metric_and_runs():
    rows = synthetic_rows()
    # scramble the cosine similarity of the *constrained* runs only
    constrained = rows["constrained"]
    rows.loc[constrained, "similarity_cosine"] = np.random.default_rng(0).permutation(
        rows.loc[constrained, "similarity_cosine"].to_numpy()
    )
    table = correlation_table(rows)
    assert (table.loc["Lattice", "Cosine Similarity"] > 0.9).all()
    assert (table.loc["Lattice", "Cosine Similarity + Constraints"].abs() < 0.5).all()


def test_start_stage_uses_start_columns():
    rows = synthetic_rows(prefix="start_")
    rows["amd_distance"] = 1.0  # end structures: constant, so the final table is undefined
    for loss in ("cosine", "mse", "entropy", "cross_correlation"):
        rows[f"similarity_{loss}"] = 0.5
    assert correlation_table(rows, stage="start").loc["Lattice"].gt(0.9).all().all()
    cells = correlation_cells(rows, n_bootstrap=0)
    assert cells["pearson"].isna().all()
    assert set(cells["reason"]) == {"both columns are constant", tables._NOT_RUN}


def test_cells_report_counts_ci_and_missing_runs():
    rows = synthetic_rows()
    rows.loc[0, "similarity_cosine"] = np.nan  # an invalid end lattice
    rows = rows[~((rows["loss"] == "mse") & (rows["noise_level"] == 0.2))]
    cells = correlation_cells(rows, n_bootstrap=200).set_index(["noise_type", "noise_level", "column"])
    first = cells.loc[("lattice", 0.01, "Cosine Similarity")]
    assert first.n == 39 and first.n_dropped == 1 and first.n_structures == 10
    assert first.pearson_lo < first.pearson < first.pearson_hi
    assert first.spearman_lo < first.spearman < first.spearman_hi
    assert np.isfinite(first.mutual_information) and first.mutual_information > 0.5
    assert cells.loc[("lattice", 0.2, "MSE"), "reason"] == "no runs"
    assert cells.loc[("coordinates", 0.1, "Cosine Similarity + Constraints"), "reason"].startswith("not run")


def test_paper_tables_exact():
    assert PAPER_TABLE_S1.shape == PAPER_TABLE_S2.shape == (10, 5)
    assert PAPER_TABLE_S1.loc[("Lattice", 0.01)].tolist() == [0.76, 0.59, 0.31, 0.58, 0.79]
    assert PAPER_TABLE_S1.loc[("Coordinates", 0.01)].tolist()[:4] == [-0.64, 0.46, -0.64, -0.82]
    assert PAPER_TABLE_S2.loc[("Lattice", 0.2)].tolist() == [0.3, 0.13, 0.12, 0.13, 0.55]
    assert PAPER_TABLE_S2.loc[("Coordinates", 0.1)].tolist()[:4] == [0.5, 0.52, 0.28, 0.26]
    for text, numbers in ((PAPER_TABLE_S1_TEXT, PAPER_TABLE_S1), (PAPER_TABLE_S2_TEXT, PAPER_TABLE_S2)):
        assert numbers.isna().sum().sum() == 7  # 2 blank + 5 dashes
        marks = [paper_mark(text, r, c) for r in SI_INDEX for c in SI_COLUMNS]
        assert marks.count("blank") == 2 and marks.count("dash") == 5
        assert paper_mark(text, ("Coordinates", 0.005), "Cross Correlation") == "blank"
        assert paper_mark(text, ("Coordinates", 0.01), "Cross Correlation") == "value"


def test_formatted_table_keeps_blank_cells_blank():
    cells = correlation_cells(synthetic_rows(), n_bootstrap=100)
    for method, paper in (("pearson", PAPER_TABLE_S1), ("spearman", PAPER_TABLE_S2)):
        table = format_comparison(cells, method)
        assert table.shape == (10, 5) and table.index.equals(SI_INDEX) and list(table.columns) == list(SI_COLUMNS)
        for lv in (0.001, 0.005):
            assert table.loc[("Coordinates", lv), "Cross Correlation"].endswith("· blank in SI")
        assert table.loc["Coordinates", "Cosine Similarity + Constraints"].eq("not run · -").all()
        cell = table.loc[("Lattice", 0.05), "MSE"]
        ours, lo, hi = cells.set_index(["noise_type", "noise_level", "column"]).loc[
            ("lattice", 0.05, "MSE"), [method, f"{method}_lo", f"{method}_hi"]
        ]
        assert cell == f"{ours:.2f} [{lo:.2f}, {hi:.2f}] · {paper.loc[('Lattice', 0.05), 'MSE']:g}"


def test_compare_with_paper_status():
    cells = correlation_cells(synthetic_rows(), n_bootstrap=100)
    comparison = compare_with_paper(cells, "pearson").set_index(["noise_type", "noise_level", "column"])
    assert comparison.loc[("coordinates", 0.001, "Cross Correlation"), "status"] == "no paper value"
    assert comparison.loc[("coordinates", 0.001, "Cross Correlation"), "paper_mark"] == "blank"
    assert comparison.loc[("coordinates", 0.001, "Cosine Similarity"), "status"] == "opposite sign"  # paper −0.64
    assert comparison.loc[("lattice", 0.2, "Cosine Similarity"), "status"] == "same sign, outside CI"  # paper 0.05
    assert comparison.loc[("coordinates", 0.1, "Cosine Similarity + Constraints"), "status"] == "not computed"
    assert set(comparison["status"]) <= {
        "paper inside CI",
        "same sign, outside CI",
        "opposite sign",
        "no paper value",
        "not computed",
    }


def test_si_layout_of_any_value():
    cells = correlation_cells(synthetic_rows(), n_bootstrap=0)
    n = si_layout(cells, "n")
    assert n.shape == (10, 5) and n.loc[("Lattice", 0.1), "MSE"] == 40


# --------------------------------------------------------------------------- claims


def test_claims_hold_on_the_paper_tables():
    for table in (PAPER_TABLE_S1, PAPER_TABLE_S2):
        claims = evaluate_claims(table)
        assert claims["verdict"].tolist() == ["holds", "holds", "holds"]
        assert claims["claim"].str.startswith(("(i)", "(ii)", "(iii)")).all()


def test_claims_fail_and_undetermined():
    table = PAPER_TABLE_S1.copy()
    table.loc[("Lattice", 0.2), "Cosine Similarity"] = 0.9  # rises
    table.loc[("Lattice", 0.1), "Cosine Similarity + Constraints"] = 0.1  # below unconstrained 0.36
    table.loc[("Coordinates", 0.005), "Entropy Similarity"] = 0.2  # positive
    claims = evaluate_claims(table)
    assert claims["verdict"].tolist() == ["does not hold"] * 3
    assert "4 of 5 negative" not in claims.loc[2, "evidence"] and "5 of 6 negative" in claims.loc[2, "evidence"]
    table.loc[("Lattice", 0.01), "Cosine Similarity"] = np.nan
    assert evaluate_claims(table).loc[0, "verdict"] == "undetermined"


def test_claims_strength_uses_cis():
    table = PAPER_TABLE_S1
    claims = evaluate_claims(table, lo=table - 0.05, hi=table + 0.05)
    assert claims.loc[0, "strength"] == "CIs separated"
    assert claims.loc[1, "strength"] == "CIs separated at 4 of 4 levels"
    assert claims.loc[2, "strength"] == "CI below 0 in 6 of 6 cells"
    wide = evaluate_claims(table, lo=table - 1, hi=table + 1)
    assert wide.loc[0, "strength"] == "CIs overlap"


def test_claims_on_a_computed_table():
    cells = correlation_cells(synthetic_rows(), n_bootstrap=0)
    claims = evaluate_claims(si_layout(cells, "pearson"))
    assert claims.loc[2, "verdict"] == "does not hold"  # synthetic coordinate correlations are positive


# --------------------------------------------------------------------------- helpers


def test_amd_prefix_property_and_final_structures(tmp_path):
    """AMD distances for several k from one computation; end structures rebuilt from rows and npz."""
    import torch

    from xrdnb import crystal_from_structure, load_structure
    from xrdnb.evaluate import amd_distances

    truth = crystal_from_structure(load_structure("Au2S"))
    coords = truth.frac_coords.repeat(2, 1, 1) + torch.tensor(0.01) * torch.arange(2.0).view(2, 1, 1)
    (tmp_path / "cells").mkdir()
    np.savez(
        tmp_path / "cells" / "coo.npz", params=np.stack([truth.frac_coords.repeat(2, 1, 1).numpy(), coords.numpy()])
    )
    a = float(truth.lattice[0, 0])
    rows = pd.DataFrame(
        {
            "cell_id": ["lat", "coo", "coo"],
            "structure": "Au2S",
            "noise_type": ["lattice", "coordinates", "coordinates"],
            "copy": [0, 0, 1],
            "final_a": [a * 1.01, a, a],
            "final_b": a,
            "final_c": a,
            "final_alpha": [91.0, 90, 90],
            "final_beta": 90.0,
            "final_gamma": 90.0,
        }
    )
    structures = sensitivity.final_structures(rows, tmp_path)
    assert structures[0].lattice.a == pytest.approx(a * 1.01) and structures[0].lattice.alpha == pytest.approx(91.0)
    np.testing.assert_allclose(structures[2].frac_coords, coords[1].numpy() % 1.0, atol=1e-12)
    reference = truth.to_structures()[0]
    table = sensitivity.amd_distances_for_k(structures, [reference] * 3, ks=(20, 50))
    assert list(table.columns) == ["amd_k20", "amd_k50"]
    np.testing.assert_allclose(table["amd_k20"], amd_distances(structures, reference, k=20), rtol=1e-12)
    np.testing.assert_allclose(table["amd_k50"], amd_distances(structures, reference, k=50), rtol=1e-12)
    assert table.loc[1, "amd_k50"] == pytest.approx(0.0, abs=1e-9)  # copy 0 is the ground truth


def test_the_units_check_is_an_ordinary_sweep(tmp_path):
    """Cells with fractional coordinate noise: their own ids and files, larger distortions, read back, not re-run."""
    from dataclasses import replace

    from xrdnb.sweep import Cell, cell_path, run_sweep

    cell = Cell(
        "U2Ti", "coordinates", 0.01, "cosine", False, 1e-4, 0, n_copies=2, max_steps=2, patience=5, record_every=1
    )
    frac_cell = replace(cell, units="fractional")
    assert frac_cell.cell_id != cell.cell_id
    ang, frac = (run_sweep([c], tmp_path, progress=False) for c in (cell, frac_cell))
    assert (frac["units"] == "fractional").all() and (ang["units"] == "angstrom").all()
    assert (frac["start_amd_distance"] > ang["start_amd_distance"]).all()  # U2Ti: a ≈ 4.8 Å, so σ·a > σ
    stamp = cell_path(tmp_path, frac_cell).stat().st_mtime_ns
    again = run_sweep([frac_cell], tmp_path, progress=False)
    pd.testing.assert_frame_equal(again, frac)
    assert cell_path(tmp_path, frac_cell).stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="units"):
        run_sweep([replace(cell, units="nm")], tmp_path / "elsewhere", progress=False)


# --------------------------------------------------------------------------- display tables, claims text, checks

from xrdnb import claims as claims_module  # noqa: E402
from xrdnb.correlation_report import (  # noqa: E402
    AGREEMENT_COLOURS,
    agreement_counts,
    agreement_summary,
    amd_start_to_end,
    ci_text,
    mi_constraint_text,
    mi_table,
    own_table,
    readable_index,
    run_record,
    styled_change,
    styled_comparison,
)


def paper_cells(lo_offset=0.1):
    """Cells whose Pearson/Spearman values are the paper's own, with a CI of ± ``lo_offset`` around them."""
    cells = correlation_cells(synthetic_rows(), n_bootstrap=0)
    for method, paper in (("pearson", PAPER_TABLE_S1), ("spearman", PAPER_TABLE_S2)):
        values = np.array([paper.loc[r, c] for r, c in zip(cells["row"], cells["column"])])
        computed = np.isfinite(cells[method].to_numpy())
        values = np.where(computed & ~np.isfinite(values), 0.5, values)  # a value of ours where the SI is blank
        values = np.where(computed, values, np.nan)
        cells[method], cells[f"{method}_lo"], cells[f"{method}_hi"] = values, values - lo_offset, values + lo_offset
    return cells


def test_readable_index_and_ci_text():
    table = readable_index(pd.DataFrame({"x": [1, 2]}, index=SI_INDEX[[0, 5]]))
    assert table.index.tolist() == [("Lattice", "0.01"), ("Coordinates", "0.001")]
    assert table.index.names == ["Noise Type", "Noise Level"]
    assert ci_text(0.123, -0.5, 0.75) == "0.12 [-0.50, 0.75]"
    assert ci_text(0.123, math.nan, 0.5, digits=3) == "0.123"
    assert ci_text(math.nan) == "n/a"


def test_own_and_mi_tables():
    rows = synthetic_rows()
    rows = rows[~((rows["loss"] == "mse") & (rows["noise_level"] == 0.2))]
    cells = correlation_cells(rows, n_bootstrap=50)
    table = own_table(cells, "spearman", digits=3)
    one = cells.set_index(["noise_type", "noise_level", "column"]).loc[("lattice", 0.05, "Entropy Similarity")]
    assert table.loc[("Lattice", "0.05"), "Entropy Similarity"] == (
        f"{one.spearman:.3f} [{one.spearman_lo:.3f}, {one.spearman_hi:.3f}]"
    )
    assert table.loc[("Lattice", "0.2"), "MSE"] == "n/a"  # no runs
    assert table.loc["Coordinates", "Cosine Similarity + Constraints"].eq("not run").all()
    mi = mi_table(cells)
    assert mi.loc[("Lattice", "0.05"), "Entropy Similarity"] == f"{one.mutual_information:.2f}"
    assert mi.loc[("Lattice", "0.2"), "MSE"] == "n/a"
    assert mi.loc["Coordinates", "Cosine Similarity + Constraints"].eq("not run").all()


def test_agreement_counts_and_summary_on_the_papers_own_values():
    cells = paper_cells()
    counts, both = agreement_counts(cells, "pearson")
    assert list(counts.index) == list(AGREEMENT_COLOURS)
    # 50 cells: 5 not run (constrained, coordinates), 2 blank in the SI, the other 43 equal the paper's value
    assert counts.to_dict() == {
        "paper inside CI": 43,
        "same sign, outside CI": 0,
        "opposite sign": 0,
        "no paper value": 2,
        "not computed": 5,
    }
    assert len(both) == 43
    summary = agreement_summary(cells)
    assert list(summary.index) == ["Pearson (Table S1)", "Spearman (Table S2)"]
    assert summary.loc["Pearson (Table S1)", "cells with both values"] == 43
    assert summary.loc["Spearman (Table S2)", "mean |ours − paper|"] == pytest.approx(0.0, abs=1e-12)
    assert summary.loc["Pearson (Table S1)", "correlation of ours with paper (over cells)"] == pytest.approx(1.0)
    shifted = paper_cells(lo_offset=0.0)
    shifted[["pearson", "pearson_lo", "pearson_hi"]] *= -1  # every value and CI of ours of the other sign
    counts, _ = agreement_counts(shifted, "pearson")
    assert counts["opposite sign"] == 43 - int((PAPER_TABLE_S1 == 0).sum().sum())


def test_styled_tables_colour_by_status():
    cells = paper_cells()
    html = styled_comparison(cells, "pearson", caption="my caption").to_html()
    assert "my caption" in html and AGREEMENT_COLOURS["paper inside CI"] in html
    assert "0.76<br>[0.66, 0.86]<br>paper 0.76" in html  # three lines per cell, to fit a page column
    start = cells.assign(pearson=cells["pearson"] - 0.25)
    change = styled_change({"final": cells, "start": start}, caption="change").data
    assert change.loc[("Lattice", "0.01"), "MSE"] == pytest.approx(0.25)


def test_amd_start_to_end_and_mi_constraint_text():
    rows = pd.DataFrame(
        {
            "noise_type": ["coordinates"] * 4 + ["lattice"],
            "noise_level": [0.01, 0.01, 0.1, 0.1, 0.01],
            "loss": ["cosine", "cosine", "cosine", "mse", "cosine"],
            "constrained": False,
            "start_amd_distance": [0.1, 0.3, 0.5, 9.0, 9.0],
            "amd_distance": [0.05, 0.15, 0.7, 9.0, 9.0],
        }
    )
    table = amd_start_to_end(rows)
    assert table.to_dict("index") == {
        0.01: {"start_amd_distance": 0.2, "amd_distance": 0.1, "further": False},
        0.1: {"start_amd_distance": 0.5, "amd_distance": 0.7, "further": True},
    }
    cells = correlation_cells(synthetic_rows(), n_bootstrap=0)
    mi = cells["mutual_information"].to_numpy().copy()
    cos = (cells["column"] == "Cosine Similarity").to_numpy()
    con = (cells["column"] == "Cosine Similarity + Constraints").to_numpy()
    lattice = (cells["noise_type"] == "lattice").to_numpy()
    mi[cos & lattice], mi[con & lattice] = [0.1, 0.2, 0.3, 0.4, 0.5], [0.2, 0.1, 0.4, 0.5, np.nan]
    text = mi_constraint_text(cells.assign(mutual_information=mi))
    assert text == (
        "constrained vs unconstrained cosine MI, lattice levels: 0.01: 0.20 vs 0.10; 0.05: 0.10 vs 0.20; "
        "0.1: 0.40 vs 0.30; 0.15: 0.50 vs 0.40; 0.2: n/a vs 0.50 -> constrained higher at 3 of 4 levels"
    )


def test_run_record_adds_the_amd_setting_and_invalid_lattices():
    class Study:
        rows = pd.DataFrame({"amd_k": [100, 100, 100], "valid": [True, False, True]})

        def record(self):
            return pd.Series({"profile": "smoke"}, name="value")

    record = run_record(Study())
    assert list(record.columns) == ["value"]
    assert record["value"].to_dict() == {
        "profile": "smoke",
        "AMD": "k = 100, L∞ (Chebyshev)",
        "invalid end lattices (dropped)": 1,
    }


def test_claims_by_stage_verdicts_report_and_summary():
    cells = paper_cells()
    start = cells.assign(pearson=-cells["pearson"], spearman=-cells["spearman"])
    found = claims_module.claims_by_stage({"final": cells, "start": start})
    assert set(found) == {(m, s) for m in ("pearson", "spearman") for s in ("final", "start", "paper")}
    verdicts = claims_module.verdict_table(found)
    assert list(verdicts.index) == ["(i)", "(ii)", "(iii)"]
    assert verdicts[("Pearson (Table S1)", "ours, end of GD")].tolist() == ["holds"] * 3
    assert verdicts[("Spearman (Table S2)", "paper's numbers")].tolist() == ["holds"] * 3
    assert verdicts[("Pearson (Table S1)", "ours, start")].tolist() == ["does not hold"] * 3
    html = claims_module.styled_verdicts(verdicts, "verdicts").to_html()
    assert AGREEMENT_COLOURS["paper inside CI"] in html and AGREEMENT_COLOURS["opposite sign"] in html
    # with CIs of ± 0.1 around the paper's values: 0.76 vs 0.05 separate, 0.79 vs 0.76 at 0.01 do not matter
    assert found[("pearson", "final")].loc[0, "strength"] == "CIs separated"
    report = claims_module.claims_report(found)
    assert report.splitlines()[0].startswith("(i) unconstrained cosine")
    assert "  pearson  ours:  HOLDS (CIs separated)" in report
    rows = pd.DataFrame(
        {
            "noise_type": "coordinates",
            "noise_level": 0.01,
            "loss": "cosine",
            "constrained": False,
            "start_amd_distance": [0.1],
            "amd_distance": [0.2],
        }
    )
    judged = {
        (m, stage): pd.DataFrame({"claim": ["(i)", "(ii)", "(iii)"], "verdict": verdict, "evidence": "numbers"})
        for m in ("pearson", "spearman")
        for stage, verdict in (("final", "agrees"), ("start", "disagrees"))
    }
    text = claims_module.summary(judged, cells, rows, run="profile 'x'", note="not at the paper's protocol")
    lines = text.splitlines()
    assert lines[:2] == ["run: profile 'x'", "not at the paper's protocol"]
    assert "(ii): Pearson agrees, Spearman agrees" in lines and "    Spearman: numbers" in lines
    assert (
        "Pearson (Table S1): paper inside our CI in 43 of 43 cells, opposite sign in 0; mean |ours − paper| 0.00"
        in lines
    )
    assert "coordinate noise, cosine runs, median AMD distance start → end (Å): 0.01: 0.1 → 0.2 (further)" in lines
    assert lines[-1] == (
        "Spearman (Table S2), distorted starting structures: (i) disagrees, (ii) disagrees, (iii) disagrees"
    )


def test_amd_k_table_and_spread():
    rows = synthetic_rows()
    rows = rows[rows["loss"] == "cosine"].reset_index(drop=True)
    rows["amd_k50"] = rows["amd_distance"]
    rows["amd_k100"] = rows["amd_distance"][::-1].to_numpy()  # scrambled: no relation left
    table = sensitivity.amd_k_table(rows, [100, 50])
    assert list(table.columns) == [
        (method, run, k)
        for method in ("Pearson", "Spearman")
        for run in ("cosine", "cosine + constraints")
        for k in ("k = 50", "k = 100")
    ]
    expected = correlation_table(rows, "spearman", amd_column="amd_k100")
    assert table[("Spearman", "cosine", "k = 100")].tolist() == pytest.approx(
        expected["Cosine Similarity"].tolist(), nan_ok=True
    )
    assert (table[("Pearson", "cosine", "k = 50")] > 0.9).all()
    assert table.index.tolist()[0] == ("Lattice", "0.01")
    spread = sensitivity.amd_k_spread(table)
    diff = (table.xs("k = 50", axis=1, level=2) - table.xs("k = 100", axis=1, level=2)).abs().max().max()
    assert spread == pytest.approx(diff)


def test_amd_k_check():
    rows = pd.DataFrame({"amd_distance": [1.0, 2.0], "amd_k100": [1.0, 2.002]})
    assert sensitivity.amd_k_check(rows) == pytest.approx(1e-3)
    assert math.isnan(sensitivity.amd_k_check(rows, k=50))


def test_units_cells_keep_the_analysed_coordinate_cells_of_one_loss():
    from xrdnb.sweep import PROFILES, with_overrides

    spec = with_overrides(PROFILES["smoke"], coordinate_levels=(0.001, 0.01, 0.1), coordinate_lrs=(1e-4, 1e-3))
    analysed = [c for c in spec.cells() if c.lr in (5e-3, 1e-4)]  # one learning rate per noise type
    rows = pd.DataFrame({"cell_id": [c.cell_id for c in analysed]})
    picked = sensitivity.units_cells(spec.cells(), rows, structures=["BPO4"], levels=[0.001, 0.01])
    assert [(c.structure, c.noise_level, c.loss, c.lr) for c in picked] == [
        ("BPO4", 0.001, "cosine", 1e-4),
        ("BPO4", 0.01, "cosine", 1e-4),
    ]
    assert sensitivity.units_cells(spec.cells(), rows, levels=[0.05]) == []


def test_units_rows_are_a_sweep_of_the_replaced_cells(tmp_path):
    from dataclasses import replace

    from xrdnb.sweep import Cell, load_results

    cell = Cell(
        "U2Ti", "coordinates", 0.01, "cosine", False, 1e-4, 0, n_copies=2, max_steps=2, patience=5, record_every=1
    )
    rows = sensitivity.units_rows([cell], tmp_path, "fractional")
    assert (rows["units"] == "fractional").all() and len(rows) == 2
    assert set(rows["cell_id"]) == {replace(cell, units="fractional").cell_id} != {cell.cell_id}
    pd.testing.assert_frame_equal(rows, load_results(tmp_path, [replace(cell, units="fractional")]))
    assert sensitivity.units_rows([], tmp_path, "fractional").empty


def unit_rows(relation, levels=(0.001, 0.01), seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for level in levels:
        d = rng.uniform(0.01, 1.0, 20)
        frames.append(
            pd.DataFrame(
                {
                    "structure": np.repeat([f"S{i}" for i in range(5)], 4),
                    "noise_type": "coordinates",
                    "noise_level": level,
                    "loss": "cosine",
                    "constrained": False,
                    "amd_distance": d,
                    "start_amd_distance": 2 * d,
                    "similarity_cosine": relation * d,
                    "match": np.arange(20) < 5,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_units_table_and_claim():
    base, alt = unit_rows(-1.0), unit_rows(+1.0)
    table = sensitivity.units_table(base, alt, "fractional", [0.001, 0.01, 0.05], n_bootstrap=0)
    assert table.index.tolist() == [(u, lv) for u in ("Å", "fractional") for lv in ("0.001", "0.01", "0.05")]
    assert table.loc[("Å", "0.001"), "Pearson"] == "1.00" and table.loc[("fractional", "0.001"), "Pearson"] == "-1.00"
    assert table.loc[("Å", "0.05"), "Spearman"] == "n/a"  # no runs at 0.05
    assert table.loc[("Å", "0.01"), "match rate"] == "25%" and table.loc[("Å", "0.05"), "match rate"] == "–"
    median = base.loc[base["noise_level"] == 0.01, "amd_distance"].median()
    assert table.loc[("Å", "0.01"), "median AMD start → end (Å)"] == f"{2 * median:.3g} → {median:.3g}"
    assert table.loc[("fractional", "0.01"), ["paper Pearson", "paper Spearman"]].tolist() == ["-0.64", "-0.55"]
    assert sensitivity.units_claim(alt, "fractional") == (
        "claim (iii), cosine part, with fractional units: Pearson -1.00, -1.00, Spearman -1.00, -1.00 "
        "at 0.001, 0.01 -> all negative"
    )
    assert sensitivity.units_claim(base, "Å").endswith("-> not all negative")
    assert "no runs" in sensitivity.units_claim(unit_rows(1.0, levels=(0.1,)), "fractional")


def test_correlation_scatter_panels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xrdnb.plotting import correlation_scatter

    rows = synthetic_rows(n_structures=3, n_copies=2)
    rows = rows[rows["noise_level"].isin([0.01, 0.1])]
    cells = correlation_cells(rows, n_bootstrap=0)
    fig = correlation_scatter(rows, cells, "lattice", caption="run X")
    try:
        axes = fig.axes
        assert len(axes) == 5 * 2  # five SI columns × two levels
        r = cells.set_index(["noise_type", "noise_level", "column"]).loc[
            ("lattice", 0.01, "Cosine Similarity"), "pearson"
        ]
        assert axes[0].get_title() == f"σ = 0.01\nr = {r:.2f} (paper 0.76)"
        assert axes[0].yaxis_inverted() and axes[0].get_xscale() == "log"
        assert "run X" in fig._suptitle.get_text()
        assert len(axes[0].collections) == 3  # one scatter per structure
    finally:
        plt.close(fig)
    assert correlation_scatter(rows[rows["noise_type"] == "lattice"], cells, "coordinates") is None
