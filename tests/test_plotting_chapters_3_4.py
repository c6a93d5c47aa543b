"""The figures of chapters 3 and 4 (xrdnb.plotting): what each draws, checked on small golden inputs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from xrdnb import plotting  # noqa: E402
from xrdnb.landscape import Cut, Slice  # noqa: E402
from xrdnb.landscape_tables import Landscape  # noqa: E402

CENTER = torch.tensor([4.0, 4.0, 6.0, 90.0, 90.0, 120.0], dtype=torch.float64)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _double_well(channels=None):
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    values = torch.exp(-4 * (x[:, None] ** 2 + x[None, :] ** 2)) + 0.5 * torch.exp(
        -8 * ((x[:, None] - 1) ** 2 + (x[None, :] - 1) ** 2)
    )
    if channels:
        values = torch.stack([values, 1 - (1 - values) ** 2], dim=-1)
    axes = torch.linspace(3.2, 4.8, 5, dtype=torch.float64), torch.linspace(4.8, 7.2, 5, dtype=torch.float64)
    return Landscape("U2Ti", "U2Ti", "hexagonal", Slice(("a", "c"), *axes, values, CENTER, channels))


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_mark_minima_dots_the_minima_of_the_loss():
    land = _double_well()
    fig, ax = plt.subplots()
    plotting.mark_minima(ax, land.grid, land.grid.values)
    (line,) = ax.lines
    assert sorted(zip(line.get_xdata(), line.get_ydata(), strict=True)) == [(4.0, 6.0)]  # not the corner (edge)


def test_slice_panels_title_each_slice_with_its_roughness():
    slices = {k: _double_well() for k in range(3)}
    fig = plotting.slice_panels(slices, label="cosine", ncols=2)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 3 and not fig.axes[3].get_visible()
    assert panels[0].get_title().startswith("a–c: 1 minima, basin ")
    assert any(ax.get_ylabel() == "cosine" for ax in fig.axes)  # the shared colour bar


def _end_rows():
    lattices = [[4.0, 4.0, 6.0, 90, 90, 120], [4.4, 4.0, 6.6, 90, 90, 120], [3.6, 3.6, 5.0, 90, 90, 120]]
    rows = pd.DataFrame(lattices, columns=[f"final_{p}" for p in ("a", "b", "c", "alpha", "beta", "gamma")])
    return rows.assign(constrained=[False, False, True], match=[True, False, True])


def test_slices_with_end_points_overlay_only_where_there_are_points():
    slices = {"U2Ti": _double_well(), "BPO4": _double_well()}
    fig = plotting.slices_with_end_points(slices, {"U2Ti": _end_rows()}, label="cos")
    first, second = (ax for ax in fig.axes if ax.get_title())
    assert len(second.collections) == 1  # the heat map only
    heat, *points = first.collections
    labels = [c.get_label() for c in points]
    assert labels == ["unconstrained GD, match", "unconstrained GD, no match", "constrained GD, match"]
    assert np.ravel(points[1].get_offsets()).tolist() == pytest.approx([4.4, 6.6])
    assert points[1].get_facecolor()[0].tolist() == [0.0, 0.0, 0.0, 1.0]  # black: no match
    assert first.get_title() == "U2Ti (hexagonal), a–c: 1 minima, basin 0.88"


def _cuts():
    x = torch.linspace(3.2, 4.8, 5, dtype=torch.float64)
    wavy = torch.tensor([0.6, 0.2, 1.0, 0.2, 0.6], dtype=torch.float64)
    cut = Cut("a", "cubic", x, torch.stack([wavy, wavy], -1), CENTER, ("cosine", "mse"))
    return {("Au2S", "a"): Landscape("Au2S", "Au2S", "cubic", cut)}


def test_axis_cut_panels_draw_the_cut_against_its_change_and_dot_its_minima():
    assert plotting.axis_cut_panels(_cuts(), "angle") is None
    fig = plotting.axis_cut_panels(_cuts(), "length")
    (ax,) = _visible(fig)
    curve, minima = ax.lines[:2]
    assert curve.get_xdata().tolist() == pytest.approx([-20, -10, 0, 10, 20])
    assert minima.get_xdata().tolist() == pytest.approx([0])  # the edges are not counted
    assert ax.get_title() == "Au2S (cubic)" and ax.get_ylabel() == "cosine similarity"


def test_similarity_slices_one_panel_per_channel():
    land = _double_well(channels=("cosine", "entropy"))
    fig = plotting.similarity_slices(land)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [t.split(":")[0] for t in titles] == ["cosine", "entropy"]
    fig = plotting.similarity_slices(land, losses=["cosine", "entropy", "cosine"])
    assert sum(not ax.get_visible() for ax in fig.axes) == 1  # 2 × 2, the fourth panel unused


def test_figures_fit_the_text_column():
    """At the chapters' 110 dpi no figure is more than 917 px wide (shown at >= 75 % in the 688 px column)."""
    slices = {k: _double_well() for k in range(15)}
    figures = [
        plotting.slice_panels(slices, label="cosine"),
        plotting.slices_with_end_points({"U2Ti": _double_well(), "BPO4": _double_well()}, {}, label="cos"),
        plotting.axis_cut_panels({(f"S{k}", "a"): v for k in range(10) for v in _cuts().values()}, "length"),
        plotting.similarity_slices(_double_well(channels=("cosine", "entropy"))),
        plotting.similarity_vs_distance(_rows()),
        plotting.lattice_errors(_rows()),
    ]
    for fig in figures:
        fig.canvas.draw()
        assert fig.get_size_inches()[0] <= 8.3
        assert fig.get_tightbbox().width <= 8.3  # inches: the tight box, what the inline backend saves
    assert len([ax for ax in figures[0].axes if ax.get_title()]) == 15
    assert figures[0].axes[0].get_position().x0 < figures[0].axes[2].get_position().x0  # 3 per row
    assert figures[0].axes[2].get_position().y0 != figures[0].axes[3].get_position().y0


def _rows():
    out = []
    for kind in ("lattice", "coordinates"):
        for run, constrained in (("cosine", False), ("cosine + constraints", True)):
            if kind == "coordinates" and constrained:
                continue
            for copy, (match, valid) in enumerate([(True, True), (False, True), (False, False)]):
                out.append(
                    {"noise_type": kind, "run": run, "constrained": constrained, "match": match, "valid": valid}
                    | {"amd_distance": 0.1 * (copy + 1), "similarity_cosine": 0.5 + 0.1 * copy}
                    | {"start_max_length_error_rel": 0.05, "max_length_error_rel": 0.01 * copy}
                    | {"start_max_angle_error": 2.0, "max_angle_error": 1.0}
                )
    return pd.DataFrame(out)


def test_similarity_vs_distance_one_panel_per_noise_type_and_run():
    fig = plotting.similarity_vs_distance(_rows(), 0.9, ncols=2)
    axes = np.array(fig.axes).reshape(2, 2)  # three panels in rows of two: no constrained coordinate runs
    assert [ax.get_title() for ax in axes.flat[:3]] == [
        "lattice: cosine", "lattice: cosine + constraints", "coordinates: cosine",
    ]  # fmt: skip
    assert not axes[1, 1].get_visible()
    match, no_match = axes[0, 0].collections
    assert match.get_label() == "match (1)" and no_match.get_label() == "no match (1)"  # the invalid copy is left out
    assert np.ravel(no_match.get_offsets()).tolist() == pytest.approx([0.2, 0.6])
    assert axes[0, 0].get_ylabel() and not axes[0, 1].get_ylabel()  # the first panel of each row
    assert fig.get_size_inches()[0] <= plotting.FIGURE_WIDTH


def test_lattice_errors_start_against_end_with_a_floor():
    fig = plotting.lattice_errors(_rows())
    lengths, angles = fig.axes
    cosine = lengths.collections[0]
    assert cosine.get_label() == "cosine"
    assert np.ravel(cosine.get_offsets()).tolist() == pytest.approx([5.0, 1e-3, 5.0, 1.0, 5.0, 2.0])
    assert angles.collections[0].get_offsets()[0].tolist() == pytest.approx([2.0, 1.0])


def test_lattice_change_bars_are_per_cent_changes():
    fig, ax = plt.subplots()
    truth = [4.0, 4.0, 6.0, 90.0, 90.0, 120.0]
    plotting.lattice_change_bars(ax, [4.4, 4.0, 5.4, 90.0, 99.0, 120.0], truth)
    assert [p.get_height() for p in ax.patches] == pytest.approx([10, 0, -10, 0, 10, 0])
    assert [t.get_text() for t in ax.texts][:2] == ["4.40 Å", "4.00 Å"] and ax.texts[4].get_text() == "99.00°"
    assert ax.get_ylim() == (-16.0, 16.0)


def test_fig_s4_has_three_panels_per_case():
    import xrdnb

    truth = xrdnb.crystal_from_structure(xrdnb.load_structure("Au2S"))
    bigger = truth.with_lattice(truth.lattice * torch.tensor([1.05, 1.05, 1.05, 1, 1, 1], dtype=truth.lattice.dtype))
    crystals = {"ground truth": truth, "GD, cosine loss": bigger}
    patterns = {name: xrdnb.simulate_pattern(c)[0] for name, c in crystals.items()}
    table = pd.DataFrame({"cosine similarity": [1.0, 0.25], "structure match": ["yes", "no"]}, index=list(crystals))
    fig = plotting.fig_s4(table, crystals, patterns, n_labelled_peaks=2)
    assert len(fig.axes) == 6
    strongest = xrdnb.peaks.peak_table(truth).nlargest(2, "intensity_scaled")
    assert [t.get_text() for t in fig.axes[1].texts] == [f"{p.h} {p.k} {p.l}" for p in strongest.itertuples()]
    assert fig.axes[0].get_title() == "ground truth"
    assert fig.axes[4].get_title() == "cosine similarity 0.25 · no match"
    assert [p.get_height() for p in fig.axes[3].patches][:3] == pytest.approx([5, 5, 5])


def test_hkl_label_puts_bars_over_negative_indices():
    assert plotting.hkl_label((1, -1, 2)) == "1 1\u0304 2"


def test_loss_curve_grid_rows_per_panel_columns_per_run():
    trajectory = {"steps": np.arange(3), "loss": np.array([[1.0, 2.0], [0.5, 1.0], [0.25, 0.5]])}
    curves = {("lattice", 0.1): {"cosine": trajectory, "MSE": trajectory}, ("coordinates", 0.05): {"MSE": trajectory}}
    fig = plotting.loss_curve_grid(curves, ncols=2)
    axes = np.array(fig.axes).reshape(2, 2)  # three panels in rows of two
    assert axes[0, 0].get_title() == "lattice 0.1: cosine" and axes[1, 0].get_title() == "coordinates 0.05 Å: MSE"
    assert not axes[1, 1].get_visible()
    assert axes[0, 1].get_yscale() == "log" and axes[0, 0].get_yscale() == "linear"
    assert axes[0, 1].get_ylabel() == "loss (MSE)" and axes[0, 0].get_ylabel() == "loss (−cosine)"
    assert len(axes[0, 0].lines) == 2  # one line per copy
    assert axes[0, 0].get_legend() and axes[1, 0].get_legend() and not axes[0, 1].get_legend()  # copies named once


def test_energy_slices_figure_two_per_row_one_legend():
    land = _double_well().grid
    cases = {("U2Ti", "a", "c"): (land, land), ("U2Ti", "c", "gamma"): (land, land), ("X", "a", "b"): (land, land)}
    truths = pd.DataFrame({"structure": ["U2Ti", "X"], "relaxed_a": 4.0, "relaxed_b": 4.0, "relaxed_c": 6.0})
    truths = truths.assign(relaxed_gamma=120.0)
    fig = plotting.energy_slices_figure(cases, truths, title="energy")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["U2Ti, a–c", "U2Ti, c–γ", "X, a–b"]
    assert panels[0].get_position().y0 == panels[1].get_position().y0 > panels[2].get_position().y0
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "ground truth",
        "CHGNet-relaxed lattice",
        "slice minimum",
    ]
    assert fig.get_suptitle() == "energy" and fig.get_size_inches()[0] <= 8.3


def test_minima_by_resolution_one_panel_per_loss_one_line_per_landscape():
    counts = {"Au2S": {"cosine": [4, 16, 60], "mse": [2, 2, 2]}, "SrTe": {"cosine": [0, 3, 3], "mse": [1, 1, 1]}}
    rows = [
        {"structure": name, "axis": "a–c", "loss": loss, "grid": n, "minima": m}
        for name, by_loss in counts.items()
        for loss, ms in by_loss.items()
        for n, m in zip((9, 17, 33), ms, strict=True)
    ]
    fig = plotting.minima_by_resolution(pd.DataFrame(rows))
    panels = _visible(fig)
    assert [ax.get_title() for ax in panels] == ["cosine", "MSE"]
    au, srte, guide = panels[0].lines
    assert au.get_xdata().tolist() == [9, 17, 33] and au.get_ydata().tolist() == [4, 16, 60]
    assert srte.get_xdata().tolist() == [17, 33]  # a count of 0 has no place on a log axis
    assert guide.get_ydata().tolist() == pytest.approx([60 * (9 / 33) ** 2, 60 * (17 / 33) ** 2, 60])
    assert panels[0].get_xscale() == "log" and panels[0].get_yscale() == "log"
    assert [t.get_text() for t in fig.legends[0].get_texts()][:2] == ["Au2S a–c", "SrTe a–c"]
    assert [ax.get_xlabel() for ax in panels] == ["grid points per axis"] * 2
    three = plotting.minima_by_resolution(pd.DataFrame(rows + [r | {"loss": "entropy"} for r in rows[:3]]))
    assert [ax.get_xlabel() != "" for ax in _visible(three)] == [False, True, True]  # under the lowest of each column
