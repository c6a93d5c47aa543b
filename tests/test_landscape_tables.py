"""The study's landscapes and roughness tables (xrdnb.landscape_tables): golden values on small grids."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from xrdnb import landscape_tables as lt
from xrdnb.landscape import Cut, Slice

CENTER = torch.tensor([4.0, 4.0, 6.0, 90.0, 90.0, 120.0], dtype=torch.float64)


def _slice(values, names=("a", "c")):
    n1, n2 = values.shape[:2]
    return Slice(
        tuple(names), torch.linspace(3.2, 4.8, n1, dtype=torch.float64), torch.linspace(4.8, 7.2, n2), values, CENTER
    )


def _double_well():
    """cos-like similarity with its global maximum at the centre and a second, lower peak in a corner."""
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    bump = torch.exp(-4 * (x[:, None] ** 2 + x[None, :] ** 2))
    corner = 0.5 * torch.exp(-8 * ((x[:, None] - 1) ** 2 + (x[None, :] - 1) ** 2))
    return bump + corner


def test_labels():
    assert lt.slice_label(("a", "gamma")) == "a–γ"
    assert lt.slice_label((0, 4)) == "a–β"
    assert (
        lt.span_text(0.1, 5) == "±10 % in lengths, ±5° in angles, other parameters and coordinates at the ground truth"
    )


def test_slice_table_counts_minima_and_the_runner_up():
    table = lt.slice_table({"x": _slice(_double_well())})
    line = table.iloc[0]
    assert line["structure"] is None and line["slice"] == "a–c"
    assert line["similarity at ground truth"] == pytest.approx(1.0)
    assert line["global max at ground truth"]
    assert line["minima"] == 1  # the centre; the corner peak is a minimum of the loss on the edge, not counted
    assert 0 < line["basin fraction"] < 1
    # the runner-up is the corner peak, 0.5 plus the tail of the central bump there, exp(-4 * 2)
    assert line["max similarity elsewhere"] == pytest.approx(0.5 + math.exp(-8.0))


def test_slice_table_of_landscapes_names_the_structure_and_ignores_nan():
    values = _double_well()
    values[0, 0] = float("nan")
    land = lt.Landscape("U2Ti", "U2Ti", "hexagonal", _slice(values))
    line = lt.slice_table({("a", "c"): land}).iloc[0]
    assert line["structure"] == "U2Ti" and line["global max at ground truth"]


def _cut(values, name="a", family="cubic"):
    centre = float(CENTER["abc".index(name)])
    x = torch.linspace(0.8 * centre, 1.2 * centre, len(values), dtype=torch.float64)
    return Cut(name, family, x, values, CENTER, channels=("cosine", "mse"))


def test_roughness_table_and_pivot():
    single = torch.tensor([0.1, 0.3, 0.5, 1.0, 0.5, 0.3, 0.1], dtype=torch.float64)  # one maximum: convex loss
    wavy = torch.tensor([0.2, 0.6, 0.2, 1.0, 0.2, 0.6, 0.2], dtype=torch.float64)  # three interior maxima
    cuts = {
        ("Au2S", "a"): lt.Landscape("Au2S", "Au2S", "cubic", _cut(torch.stack([single, wavy], dim=-1))),
        ("BPO4", "c"): lt.Landscape("BPO4", "BPO4", "tetragonal", _cut(torch.stack([wavy, single], -1), "c", None)),
    }
    table = lt.roughness_table(cuts, losses=("cosine", "mse"))
    assert table[["structure", "axis", "loss", "minima"]].values.tolist() == [
        ["Au2S", "a\u0304 (= a = b = c)", "cosine", 1],
        ["Au2S", "a\u0304 (= a = b = c)", "mse", 3],
        ["BPO4", "c", "cosine", 3],
        ["BPO4", "c", "mse", 1],
    ]
    assert table["basin fraction"].tolist() == pytest.approx([1.0, 3 / 7, 3 / 7, 1.0])
    wide = lt.roughness_pivot(table, losses=("cosine", "mse"))
    assert list(wide.columns) == [("minima", "cosine"), ("minima", "MSE")] + [
        ("basin fraction", "cosine"),
        ("basin fraction", "MSE"),
    ]
    assert wide.loc[("BPO4", "tetragonal", "c"), ("minima", "cosine")] == 3


def test_relative_axis_is_per_cent_for_lengths_and_degrees_for_angles():
    assert lt.relative_axis(_cut(torch.zeros(5, 2))).tolist() == pytest.approx([-20, -10, 0, 10, 20])
    angle = Cut("gamma", None, torch.tensor([110.0, 120.0, 130.0]), torch.zeros(3), CENTER)
    assert lt.relative_axis(angle).tolist() == [-10.0, 0.0, 10.0]


def test_end_points_on_slice_and_overlay_table():
    sl = _slice(torch.zeros(5, 5))
    final = {"final_a": [4.4, 6.0], "final_b": [4.0, 4.8], "final_c": [6.6, 6.0]}
    rest = {"final_alpha": 90.0, "final_beta": 90.0, "final_gamma": 120.0}
    rows = pd.DataFrame(final | rest | {"structure": "U2Ti", "run": "cosine", "noise_level": 0.1})
    rows = rows.assign(match=[True, False], similarity_cosine=[0.9, 0.3], constrained=False)
    points = lt.end_points_on_slice(rows, sl, length_span=0.2, angle_span=20.0)
    assert points["x"].tolist() == pytest.approx([4.4, 6.0]) and points["y"].tolist() == pytest.approx([6.6, 6.0])
    # b is off the plane: 0 and 0.8 Å, in units of 20 % of 4 Å
    assert points["off_plane"].tolist() == pytest.approx([0.0, 1.0])
    assert points["inside"].tolist() == [True, False]
    table = lt.overlay_table(points)
    assert table.iloc[0].to_dict() == {
        "structure": "U2Ti",
        "run": "cosine",
        "lattice noise σ": 0.1,
        "end points": 2,
        "match": 1,
        "median cos at end": pytest.approx(0.6),
        "inside the slice": 1,
        "median off-plane distance (Δ)": pytest.approx(0.5),
    }
    assert lt.end_points_on_slice(rows.iloc[:0], sl).empty


def test_the_studys_landscapes_of_a_real_structure():
    slices = lt.pair_slices("U2Ti", pairs=[("a", "c")], n=3)
    land = slices[("a", "c")]
    assert (land.structure, land.formula, land.family) == ("U2Ti", "U2Ti", "hexagonal")
    assert land.grid.values.shape == (3, 3) and float(land.grid.values[1, 1]) == pytest.approx(1.0)
    assert len(lt.pair_slices("U2Ti", n=2)) == 15
    cuts = lt.axis_cuts(["Au2S"], n=3, losses=("cosine", "mse"))
    assert list(cuts) == [("Au2S", "a")] and cuts[("Au2S", "a")].grid.label == "a\u0304 (= a = b = c)"
    assert cuts[("Au2S", "a")].grid.channel("cosine")[1] == pytest.approx(1.0)
    rough = lt.loss_slices(["Au2S"], ("a", "c"), n=3)
    assert rough["Au2S"].grid.channels == ("cosine", "mse", "entropy", "cross_correlation")
    values = rough["Au2S"].grid.values[1, 1].numpy()
    assert np.allclose(values, [1.0, 0.0, 1.0, 1.0])  # every similarity is perfect at the ground truth (−MSE 0)


def test_docstring_examples():
    import doctest

    assert doctest.testmod(lt).failed == 0


def test_roughness_medians_are_per_loss_with_display_names():
    table = pd.DataFrame(
        {"loss": ["cosine", "cross_correlation", "cosine"], "minima": [1, 4, 3], "basin fraction": [1.0, 0.2, 0.5]}
    )
    medians = lt.roughness_medians(table)
    assert medians.index.tolist() == ["cosine", "cross-correlation"]
    assert medians.loc["cosine"].tolist() == [2.0, 0.75]
    assert medians.columns.tolist() == ["median minima", "median basin fraction"]


def test_roughness_tables_one_table_per_number_with_display_names():
    table = pd.DataFrame(
        {"structure": ["Au2S"] * 4 + ["SrTe"] * 4, "family": "cubic", "axis": "a–c"}
        | {"loss": ["cosine", "mse", "entropy", "cross_correlation"] * 2}
        | {"minima": [3, 2, 2, 1, 5, 4, 4, 2], "basin fraction": [0.2, 0.3, 0.4, 0.9, 0.1, 0.1, 0.2, 0.5]}
    )
    tables = lt.roughness_tables(table, index=["structure", "family"])
    assert list(tables) == list(lt.ROUGHNESS_COLUMNS) == list(lt.ROUGHNESS_MEANING) == list(lt.ROUGHNESS_FORMATS)
    minima = tables["minima"]
    assert minima.columns.tolist() == ["cosine", "MSE", "entropy", "cross-correlation"]
    assert minima.index.names == ["structure", "family"] and minima.columns.name is None
    assert minima.loc[("SrTe", "cubic")].tolist() == [5, 4, 4, 2]
    assert tables["basin fraction"].loc[("Au2S", "cubic"), "cross-correlation"] == pytest.approx(0.9)


# --------------------------------------------------------------------------- resolution and convergence


def _wells_and_noise(n=17):
    """Two channels on an n × n a–c slice: two broad wells of the loss (resolved), and white noise (not)."""
    x = torch.linspace(-1, 1, n, dtype=torch.float64)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    wells = torch.exp(-20 * (X**2 + Y**2)) + 0.5 * torch.exp(-20 * ((X - 0.5) ** 2 + (Y + 0.5) ** 2))
    noise = torch.rand(n, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    noise[n // 2, n // 2] = 2.0  # the ground truth is the best point
    axes = torch.linspace(3.2, 4.8, n, dtype=torch.float64), torch.linspace(100, 140, n, dtype=torch.float64)
    sl = Slice(("a", "gamma"), *axes, torch.stack([wells, noise], -1), CENTER, ("cosine", "mse"))
    return {"U2Ti": lt.Landscape("U2Ti", "U2Ti", "hexagonal", sl)}


def test_grid_steps_in_per_cent_and_degrees():
    sl = _wells_and_noise()["U2Ti"].grid
    assert lt.grid_steps(sl) == pytest.approx((2.5, 2.5))  # 40 % and 40° in 16 steps
    assert lt.grid_steps(_cut(torch.zeros(5, 2))) == pytest.approx((10.0,))


def test_resolution_table_and_convergence_summary():
    table = lt.resolution_table(_wells_and_noise(), [5, 9, 17], losses=("cosine", "mse"))
    assert table.columns.tolist() == ["structure", "family", "axis", "loss", "grid", *lt.RESOLUTION_COLUMNS]
    assert table["grid"].tolist() == [5, 9, 17, 5, 9, 17]
    wells = table[table.loss == "cosine"]
    assert wells["minima"].tolist() == [1, 2, 2]  # on the 5-grid every interior point neighbours the centre
    # 17-grid: 15 interior cells of 2.5 % (°) = 3.75 units of 10 per axis
    assert wells["minima density"].iloc[-1] == pytest.approx(2 / 3.75**2)
    summary = lt.convergence_summary(table)
    cos, mse = summary.to_dict("records")
    assert (cos["loss"], cos["grids"], cos["minima"], cos["minima converged"]) == ("cosine", "5, 9, 17", 2.0, True)
    assert cos["growth exponent"] == 0.0 and cos["basin fraction converged"]
    assert cos["basin fraction"] == pytest.approx(table["basin fraction"].iloc[2])
    assert not mse["minima converged"] and math.isnan(mse["minima"])  # noise: the count follows the grid
    assert mse["growth exponent"] > 1
    assert mse["minima density"] == pytest.approx(table["minima density"].iloc[-1])
    # the display: the count where it converged, else the density and its growth
    text = lt.convergence_display(summary, losses=("cosine", "mse"))
    assert text.columns.tolist() == ["cosine", "MSE"] and text.index.tolist() == [("U2Ti", "hexagonal")]
    assert text.iloc[0, 0] == "2"
    assert text.iloc[0, 1] == f"ρ {mse['minima density']:.2g}, p {mse['growth exponent']:.1f}"
    basin = lt.convergence_display(summary, "basin fraction", losses=("cosine", "mse"))
    assert basin.iloc[0, 0] == f"{cos['basin fraction']:.2f}"
    counts = lt.convergence_counts(summary, losses=("cosine", "mse"))
    assert counts.loc["cosine"].tolist() == [1, 1, 1, 2.0, 0.0] and counts.loc["MSE", "minima converged"] == 0
    assert math.isnan(counts.loc["MSE", "median converged minima"])
    wide = lt.resolution_pivot(table, losses=("cosine", "mse"))
    assert list(wide.columns) == [("cosine", 5), ("cosine", 9), ("cosine", 17), ("MSE", 5), ("MSE", 9), ("MSE", 17)]
    assert wide.loc[("U2Ti", "hexagonal"), ("cosine", 9)] == 2


def test_resolution_table_of_single_channel_slices_names_the_similarity():
    sl = _wells_and_noise()["U2Ti"].grid
    single = {"x": lt.Landscape("U2Ti", "U2Ti", "hexagonal", Slice(sl.names, sl.x, sl.y, sl.channel("cosine"), CENTER))}
    table = lt.resolution_table(single, [9, 17], losses=("cosine",))
    assert table["loss"].tolist() == ["cosine", "cosine"] and table["minima"].tolist() == [2, 2]


def test_convergence_needs_nested_grids_and_two_of_them():
    lands = _wells_and_noise()
    with pytest.raises(ValueError, match="not nested"):
        lt.resolution_table(lands, [7, 17], losses=("cosine",))
    with pytest.raises(ValueError, match="odd sizes"):
        lt.resolution_table(lands, [8, 17], losses=("cosine",))
    one = lt.resolution_table(lands, [17], losses=("cosine",))
    with pytest.raises(ValueError, match="at least 2 grids"):
        lt.convergence_summary(one)
    with pytest.raises(ValueError, match="measure"):
        lt.convergence_display(lt.convergence_summary(lt.resolution_table(lands, [9, 17], ("cosine",))), "density")


def test_energy_resolution_table_puts_the_energy_beside_the_cosine():
    from xrdnb import relax_tables as rt

    x = torch.linspace(-1, 1, 13, dtype=torch.float64)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    axes = torch.linspace(3.2, 4.8, 13, dtype=torch.float64), torch.linspace(4.8, 7.2, 13, dtype=torch.float64)
    energy = Slice(("a", "c"), *axes, -3.0 + (X - 1 / 3) ** 2 + Y**2, CENTER)  # eV/atom; minimum two steps off centre
    cosine = Slice(("a", "c"), *axes, torch.cos(6 * X) * torch.cos(6 * Y), CENTER)
    truths = pd.DataFrame({"structure": ["U2Ti"], "relaxed_a": [float(axes[0][8])], "relaxed_c": [6.0]})
    table = rt.energy_resolution_table({("U2Ti", "a", "c"): (energy, cosine)}, truths, [5, 7, 13])
    assert table.columns.tolist() == ["structure", "axis", "loss", "grid", *lt.RESOLUTION_COLUMNS]
    assert table["loss"].tolist() == [rt.ENERGY_LOSS] * 3 + ["cosine"] * 3
    energy_rows = table[table.loss == rt.ENERGY_LOSS]
    assert energy_rows["minima"].tolist() == [1, 1, 1] and energy_rows["basin fraction"].tolist() == [1.0] * 3
    summary = lt.convergence_summary(table, index=["structure", "axis", "loss"])
    assert summary["minima converged"].tolist()[0] and summary["basin fraction converged"].tolist()[0]
    text = lt.convergence_display(summary, index=["structure", "axis"], losses=[rt.ENERGY_LOSS, "cosine"])
    assert text.columns.tolist() == ["CHGNet energy", "cosine"] and text.iloc[0, 0] == "1"
