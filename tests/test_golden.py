"""Golden numbers for bcc W (a = 3.1653 Å, Cu Kα 1.54184 Å), independent of pymatgen's calculator."""

import pytest
import torch

from xrdnb import Crystal, XRDSettings, compute_reflections, simulate_pattern
from xrdnb.peaks import peak_table


def tungsten(dtype=torch.float64):
    lattice = torch.tensor([[3.1653, 3.1653, 3.1653, 90.0, 90.0, 90.0]], dtype=dtype)
    coords = torch.tensor([[[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]], dtype=dtype)
    return Crystal(lattice, coords, torch.ones(2, 1, dtype=dtype), ("W",))


def test_first_peak_position_and_intensity():
    table = peak_table(tungsten())
    first = table.iloc[0]
    assert (first.h, first.k, first.l) == (1, 1, 0)
    assert first.multiplicity == 12
    assert first.two_theta == pytest.approx(40.294828554672264, rel=1e-10)
    assert first.intensity == pytest.approx(2414237.5633093244, rel=1e-10)
    assert first.intensity_scaled == 100.0


def test_debye_waller_damps_amplitude():
    settings = XRDSettings(debye_waller={"W": 0.1526})
    first = peak_table(tungsten(), settings).iloc[0]
    assert first.intensity == pytest.approx(2377745.2296686, rel=1e-10)


def test_bcc_extinctions_are_zero():
    refl = compute_reflections(tungsten())
    hkl = refl.hkl
    odd = (hkl.sum(dim=1) % 2) != 0
    assert odd.any()
    assert refl.intensity[0, odd].abs().max() < 1e-18 * refl.intensity.max()


def test_pattern_shape_grid_and_normalisation():
    settings = XRDSettings()
    assert settings.n_points == 9000
    grid = settings.grid()
    assert grid[0] == 0.0 and grid[-1] == pytest.approx(89.99)
    pattern = simulate_pattern(tungsten(), settings)
    assert pattern.shape == (1, 9000)
    assert pattern.max() == 1.0
    peak_bin = int(pattern.argmax())
    assert grid[peak_bin] == pytest.approx(40.29, abs=0.01)


def test_pseudo_voigt_height_and_halfwidth():
    from xrdnb.peak_shapes import caglioti_fwhm, pseudo_voigt

    h = caglioti_fwhm(torch.tensor(40.0, dtype=torch.float64), 0.1, 0.01, 0.1)
    tan = torch.tan(torch.deg2rad(torch.tensor(20.0, dtype=torch.float64)))
    assert h**2 == pytest.approx(float(0.1 * tan**2 + 0.01 * tan + 0.1), rel=1e-14)
    assert float(pseudo_voigt(torch.tensor(0.0, dtype=torch.float64), h, 0.1)) == pytest.approx(1.0)
    assert float(pseudo_voigt(h / 2, h, 0.1)) == pytest.approx(0.5, rel=1e-12)
