"""xrdnb.comparisons: the checks of chapter 1 on one small benchmark structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import xrdnb
from xrdnb import comparisons
from xrdnb.pattern import DEFAULT_SETTINGS

pytest.importorskip("pymatgen")


@pytest.fixture(scope="module")
def srte():
    structure = xrdnb.load_structure("SrTe")
    return structure, xrdnb.crystal_from_structure(structure)


def test_site_table(srte):
    _, crystal = srte
    table = comparisons.site_table(crystal)
    assert list(table.columns) == ["species", "x", "y", "z"] and len(table) == crystal.n_sites
    assert set(table.species) == {"Sr", "Te"}


def test_friedel_check(srte):
    _, crystal = srte
    check = comparisons.friedel_check(crystal)
    assert check["n_all"] == 2 * check["n_half"] and check["weight"] == 2
    assert check["asymmetry"] < 1e-10 and check["total_difference"] < 1e-10


def test_tail_fractions():
    grid = DEFAULT_SETTINGS.grid()
    tails = comparisons.tail_fractions(grid, 45.0, torch.tensor(0.3), 0.1, beyond=1.0)
    assert tails["Gaussian"] < 1e-12 < tails["pseudo-Voigt"] < tails["Lorentzian"] < 0.2


def test_broaden_sticks_is_a_normalised_pseudo_voigt():
    y = comparisons.broaden_sticks(np.array([30.0]), np.array([7.0]), DEFAULT_SETTINGS)
    assert y.shape == (DEFAULT_SETTINGS.n_points,) and y.max() == pytest.approx(1.0)
    assert np.argmax(y) == 3000


def test_compare_with_pymatgen(srte):
    structure, _ = srte
    row, detail = comparisons.compare_with_pymatgen(structure)
    assert row["peaks (xrdnb)"] == row["peaks (pymatgen)"] and row["multiplicities equal"]
    assert row["max |Δ2θ| (°)"] < 1e-6 and row["max |ΔI| (of 100)"] < 1e-3
    assert row["pattern max |Δ|, dense"] < 1e-3 and detail["pm_pattern"].shape == detail["ours_pattern"].shape
    other = {
        **row,
        "peaks (pymatgen)": row["peaks (pymatgen)"] - 1,
        "max |Δ2θ| (°)": np.nan,
        "multiplicities equal": False,
    }
    styler = comparisons.pymatgen_display(pd.DataFrame([row, other]), "caption")
    html = styler.to_html()
    assert styler.data.shape == (2, 8) and "13 / 13" in html and "13 / 12" in html and "nan" not in html
    assert "— : peak counts differ" in styler.caption and "—" in html and ">no<" in html and "e−14" in html
    assert comparisons.pymatgen_display(pd.DataFrame([row]), "c").caption == "c"  # no note without a NaN


def test_renderer_and_timing_tables(srte):
    _, crystal = srte
    table, differences = comparisons.renderer_table(["SrTe"])
    assert list(table.structure) == ["SrTe"] and table["max |dense − fast|"].iloc[0] < 1e-4
    assert differences["SrTe"].shape == (DEFAULT_SETTINGS.n_points,)
    batch = xrdnb.distortions.distort_lattice(crystal, sigma=0.05, n_copies=2, seed=0)
    timing = comparisons.timing_table(batch, xrdnb.simulate_pattern(crystal), repeats=1)
    assert list(timing.renderer) == ["dense", "fast"] and (timing.iloc[:, 1] > 0).all()
    assert timing["speed-up"].iloc[0] == pytest.approx(1.0)


def test_setting_variants(srte):
    _, crystal = srte
    out = comparisons.setting_variants(crystal, DEFAULT_SETTINGS, "eta", [0.1, 0.5, 2.0])
    assert set(out["patterns"]) == {0.1, 0.5} and 2.0 in out["skipped"]
    assert out["cosine"][0.1] == pytest.approx(1.0) and out["cosine"][0.5] < 1.0


def test_lattice_derivative_agrees_with_finite_differences(srte):
    _, crystal = srte
    out = comparisons.lattice_derivative(crystal, index=0, step=1e-5)
    assert out["jvp"].shape == (DEFAULT_SETTINGS.n_points,) and out["value"] == pytest.approx(
        float(crystal.lattice[0, 0])
    )
    errors = out["errors"].iloc[:, -1]
    assert out["errors"].columns[-1] == "max |Δ| / max |∂x/∂a|" and (errors[:2] < 1e-4).all()


def test_metric_checks(srte):
    structure, crystal = srte
    m = comparisons.metric_checks(crystal.lattice[0], structure)
    assert m["volume"] == pytest.approx(m["volume_pymatgen"]) == pytest.approx(m["volume_matrix"])
    assert m["identity_error"] < 1e-12 and np.allclose(m["reciprocal"], m["reciprocal_pymatgen"])


def test_setting_table(srte):
    _, crystal = srte
    study = {"eta": comparisons.setting_variants(crystal, DEFAULT_SETTINGS, "eta", [0.1, 0.5])}
    study["wavelength"] = comparisons.setting_variants(crystal, DEFAULT_SETTINGS, "wavelength", [1.54184])
    table = comparisons.setting_table(study, {"eta": "η"}, {"wavelength": {1.54184: "CuKa"}})
    assert list(table.setting) == ["η", "η", "wavelength"] and list(table.value) == ["0.1", "0.5", "CuKa"]
    assert table.iloc[0, 2] == pytest.approx(1.0)
