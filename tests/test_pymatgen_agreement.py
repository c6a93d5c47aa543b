"""Agreement with pymatgen's XRDCalculator: every peak at 2θ within 1e-6°, scaled intensity within 1e-4.

Every tenth row of data/mp20-subset.csv (122 structures); benchmarks/validate_pymatgen.py runs all 1,213.
"""

import numpy as np
import pytest
import torch
from conftest import mp20_rows, structure_from_cif
from pymatgen.analysis.diffraction.xrd import XRDCalculator

from xrdnb import BENCHMARK_NAMES, XRDSettings, crystal_from_structure, load_structure
from xrdnb.peaks import peak_table

ROWS = mp20_rows(every=10)


def compare(structure, wavelength=1.54184, two_theta_max=90.0):
    reference = XRDCalculator(wavelength=wavelength).get_pattern(structure, two_theta_range=(0, two_theta_max))
    ours = peak_table(
        crystal_from_structure(structure), XRDSettings(wavelength=wavelength, two_theta_max=two_theta_max)
    )
    assert len(ours) == len(reference.x)
    x, y = ours.two_theta.to_numpy(), ours.intensity_scaled.to_numpy()
    j = np.abs(x[None, :] - np.asarray(reference.x)[:, None]).argmin(axis=1)
    return np.abs(x[j] - reference.x).max(), np.abs(y[j] - reference.y).max()


def test_sample_covers_at_least_100_structures():
    assert len(ROWS) >= 100


@pytest.mark.parametrize("row", ROWS, ids=[r["material_id"] for r in ROWS])
def test_mp20_structure_matches_pymatgen(row):
    d_two_theta, d_intensity = compare(structure_from_cif(row["cif"]))
    assert d_two_theta <= 1e-6
    assert d_intensity <= 1e-4


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_benchmark_structure_matches_pymatgen(name):
    d_two_theta, d_intensity = compare(load_structure(name))
    assert d_two_theta <= 1e-6 and d_intensity <= 1e-4


@pytest.mark.parametrize("wavelength,two_theta_max", [(0.71073, 60.0), (2.291, 120.0)])
def test_other_wavelengths_and_ranges(wavelength, two_theta_max):
    d_two_theta, d_intensity = compare(load_structure("LiCSN"), wavelength, two_theta_max)
    assert d_two_theta <= 1e-6 and d_intensity <= 1e-4


def test_partial_occupancy_matches_pymatgen(mixed_structure):
    d_two_theta, d_intensity = compare(mixed_structure)
    assert d_two_theta <= 1e-6 and d_intensity <= 1e-4


def test_debye_waller_matches_pymatgen(mixed_structure):
    factors = {"Fe": 0.3, "Ni": 0.5, "O": 0.8}
    reference = XRDCalculator(wavelength=1.54184, debye_waller_factors=factors).get_pattern(mixed_structure)
    ours = peak_table(crystal_from_structure(mixed_structure), XRDSettings(debye_waller=factors))
    np.testing.assert_allclose(ours.two_theta, reference.x, atol=1e-6)
    np.testing.assert_allclose(ours.intensity_scaled, reference.y, atol=1e-4)


def test_float32_is_close_to_float64():
    structure = load_structure("NdAl2Cu4")
    p64 = peak_table(crystal_from_structure(structure))
    p32 = peak_table(crystal_from_structure(structure, dtype=torch.float32))
    strong = p64.intensity_scaled > 1.0
    matched = np.abs(p32.two_theta.to_numpy()[None, :] - p64.two_theta.to_numpy()[strong][:, None]).min(axis=1)
    assert matched.max() < 1e-3
