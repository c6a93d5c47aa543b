"""The figure functions of chapters 1 and 2 in xrdnb.plotting: artists, limits and labels they draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

import xrdnb
from xrdnb import plotting
from xrdnb.pattern import DEFAULT_SETTINGS

GRID = np.linspace(0.0, 89.99, 9000)


@pytest.fixture
def ax():
    fig, axis = plt.subplots()
    yield axis
    plt.close(fig)


def _peak(centre, width=0.2):
    return np.exp(-(((GRID - centre) / width) ** 2))


def test_plot_form_factors(ax):
    s = torch.linspace(0, 0.46, 50)
    f = torch.stack([5 - s, 8 - 2 * s])
    lines = plotting.plot_form_factors(ax, s, f, ["B", "O"], [5, 8], s_reflections=torch.tensor([0.1, 0.2]), title="t")
    assert len(lines) == 3 and ax.get_xlim() == pytest.approx((0, 0.46))
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["B (Z = 5)", "O (Z = 8)"]
    assert ax.get_ylabel() == "f(s) (electrons)" and ax.get_title() == "t"


def test_plot_lorentz_polarization(ax):
    tt = torch.linspace(2, 90, 20)
    line = plotting.plot_lorentz_polarization(ax, tt, 1 / tt)
    assert len(line.get_xdata()) == 20 and ax.get_yscale() == "log" and ax.get_ylabel() == "LP(θ)"


def test_plot_peak_profiles():
    fig, (a, b) = plt.subplots(1, 2)
    x = torch.linspace(-10, 10, 201)
    curves = {"G": torch.exp(-(x**2)), "L": 1 / (1 + x**2)}
    out = plotting.plot_peak_profiles(a, b, x, curves, fwhm=0.5, window=1.0)
    assert len(out["linear"]) == len(out["log"]) == 2 and len(out["window"]) == 2
    assert a.get_xlim() == pytest.approx((-2.0, 2.0)) and b.get_ylim() == pytest.approx((1e-6, 2))
    assert [line.get_xdata()[0] for line in out["window"]] == [-1.0, 1.0]
    plt.close(fig)


def test_plot_caglioti_width(ax):
    tt = torch.linspace(0, 90, 91)
    line, right = plotting.plot_caglioti_width(ax, tt, 0.3 + tt / 900, 0.01, title="c")
    assert len(line.get_xdata()) == 91 and ax.get_xlim() == (0, 90)
    assert right.get_ylabel().startswith("grid points per FWHM") and ax.get_title() == "c"


def test_plot_difference(ax):
    line = plotting.plot_difference(ax, GRID, 1e-6 * _peak(30), ylabel="d", title="t")
    assert len(line.get_ydata()) == 9000 and ax.get_xlim() == (0.0, 89.99) and ax.get_ylabel() == "d"


def test_plot_pymatgen_comparison():
    fig, axes = plt.subplots(3, 1)
    ours = pd.DataFrame({"two_theta": [20.0, 30.0], "intensity_scaled": [100.0, 50.0]})
    detail = {
        "ours": ours,
        "x_pm": np.array([20.0, 30.0]),
        "y_pm": np.array([100.0, 50.0]),
        "ours_pattern": _peak(20),
        "pm_pattern": _peak(20),
    }
    out = plotting.plot_pymatgen_comparison(axes, GRID, detail)
    assert len(out["sticks"]) == 2 and len(out["patterns"]) == 2
    assert np.allclose(out["difference"].get_ydata(), 0)
    assert [ax.get_title() for ax in axes[:2]] == ["peak lists", "broadened patterns"]
    assert axes[0].get_ylim()[0] < -40  # xrdnb's sticks are mirrored below the axis
    plt.close(fig)


def test_plot_variants_window_and_highlight(ax):
    lines = plotting.plot_variants(
        ax, GRID, {"a": _peak(30), "b": _peak(30.1)}, centre=30, half_width=1.0, highlight="b"
    )
    assert len(lines) == 2
    assert lines[0].get_xdata().min() > 29 and lines[0].get_xdata().max() < 31
    assert lines[1].get_linewidth() > lines[0].get_linewidth() and lines[1].get_color() == "k"


def test_plot_setting_variants(ax):
    lines = plotting.plot_setting_variants(
        ax, GRID, {0.0: _peak(30), 0.1: _peak(30)}, symbol="η", si_value=0.1, centre=30
    )
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["η = 0", "η = 0.1 (SI)"] and len(lines) == 2 and ax.get_title() == "vary η, peak at 30.00°"


def test_setting_panels():
    fig, axes = plt.subplots(2, 3)
    lam = {"CuKa": 1.54184, "CuKa1": 1.54056, "MoKa": 0.71}
    pattern = torch.tensor(_peak(30))
    study = {
        p: {"patterns": {v: pattern for v in values}}
        for p, values in {
            "U": [0.0, 0.1],
            "V": [0.01],
            "W": [0.1, 0.5],
            "eta": [0.1],
            "wavelength": list(lam.values()),
        }.items()
    }
    out = plotting.setting_panels(
        axes.flat,
        GRID,
        study,
        dict(U=60, V=60, W=30, eta=30),
        DEFAULT_SETTINGS,
        lam,
        zoom_centre=30,
        zoom_label="the peak",
    )
    assert [len(lines) for lines in out] == [2, 1, 2, 1, 3, 2]
    assert axes.flat[5].get_title() == "CuKa vs CuKa1 at the peak"
    plt.close(fig)


def test_plot_stacked(ax):
    lines = plotting.plot_stacked(ax, GRID, {"1": _peak(20), "2": _peak(40)}, offset=1.1, base=_peak(30))
    assert len(lines) == 3
    assert max(lines[2].get_ydata()) == pytest.approx(1 + 2 * 1.1) and ax.get_ylim()[1] > 3.2
    assert lines[0].get_color() == "k" and ax.get_legend() is not None and not ax.texts
    ax.clear()
    lines = plotting.plot_stacked(ax, GRID, {"1": _peak(20)}, base=_peak(30), inline=True)
    assert ax.get_legend() is None and [(t.get_text(), t.get_color()) for t in ax.texts] == [
        ("ground truth", "k"),
        ("1", "C0"),
    ]


def test_plot_pattern_derivative():
    fig, axes = plt.subplots(3, 1)
    y = _peak(30)
    dy = np.gradient(y)
    out = plotting.plot_pattern_derivative(axes, GRID, y, dy, dy, centre=30.0, step=1e-5)
    assert len(out["derivative"]) == 2 and len(out["zoom"]) == 3
    assert out["zoom"][0].get_xdata().min() > 28.5 and axes[1].get_ylabel() == "∂x/∂a (Å⁻¹)"
    plt.close(fig)


def test_plot_lattice_changes(ax):
    rng = np.random.default_rng(0)
    changes = pd.DataFrame(rng.normal(size=(20, 6)), columns=["a", "b", "c", "α", "β", "γ"]).assign(
        σ=[0.01] * 10 + [0.1] * 10
    )
    out = plotting.plot_lattice_changes(ax, changes, [0.01, 0.1])
    assert len(out) == 6 and all(len(bp["boxes"]) == 2 for bp in out)
    assert ax.get_yscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["0.01", "0.1"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c", "α", "β", "γ"]


def test_plot_displacements(ax):
    displacements = pd.DataFrame({"σ": [0.01] * 3 + [0.1] * 3, "|Δr| (Å)": [0.01, 0.02, 0.03, 0.1, 0.2, 0.3]})
    means = plotting.plot_displacements(ax, displacements, [0.01, 0.1])
    assert means == pytest.approx([0.02, 0.2]) and len(ax.get_legend().get_texts()) == 2
    assert ax.get_xlabel() == "coordinate noise σ (Å)"


@pytest.mark.parametrize(
    ("metric", "noise", "scale", "ylabel"),
    [
        ("cosine", "lattice", "linear", "cosine similarity"),
        ("cosine", "coordinates", "log", "1 − cosine similarity"),
        ("mse", "lattice", "log", "MSE (patterns with max = 1)"),
    ],
)
def test_plot_similarity_boxes(ax, metric, noise, scale, ylabel):
    values = [np.array([0.9, 0.8, 0.7]), np.array([0.5, 0.4, 0.3])]
    if metric == "mse":
        values = [-v for v in values]
    bp = plotting.plot_similarity_boxes(ax, values, [0.01, 0.1], metric=metric, noise_type=noise)
    assert len(bp["boxes"]) == 2 and ax.get_yscale() == scale and ax.get_ylabel() == ylabel


def test_plot_noise_overlay():
    fig, (a, b) = plt.subplots(1, 2)
    patterns = {"σ = 0.1": _peak(31), "σ = 0.2": _peak(32)}
    out = plotting.plot_noise_overlay(a, b, GRID, _peak(30), patterns, zoom_centre=30.0)
    assert len(out["stacked"]) == 3 and len(out["side"]) == 3
    assert out["side"][0].get_color() == "k" and out["side"][1].get_xdata().min() > 27
    assert b.get_legend() is None and a.get_legend() is None  # inline labels name the colours
    assert [t.get_text() for t in a.texts] == ["ground truth", "σ = 0.1", "σ = 0.2"]
    a.clear(), b.clear()
    out = plotting.plot_noise_overlay(a, b, GRID, _peak(30), patterns)
    assert len(out["side"]) == 2 and b.get_title() == "difference to the ground truth"
    assert np.allclose(out["side"][0].get_ydata(), _peak(31) - _peak(30))
    plt.close(fig)


def test_draw_crystal_gallery():
    crystal = xrdnb.crystal_from_structure(xrdnb.load_structure("U2Ti"))
    fig, axes = plt.subplots(1, 3, subplot_kw={"projection": "3d"})
    out = plotting.draw_crystal_gallery(axes, {"U2Ti": crystal, "U2Ti again": crystal}, fontsize=7.5)
    assert len(out) == 2 and out[0]["edges"] and not axes[2].get_visible() and axes[1].get_visible()
    assert axes[0].title.get_fontsize() == 8.5 and axes[0].xaxis.label.get_fontsize() == 7.5
    assert all(t.get_fontsize() == 7.5 for t in axes[0].get_legend().get_texts())
    plt.close(fig)
