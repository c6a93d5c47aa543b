"""Units of the coordinate noise (xrdnb.distortions, ``units=``)."""

import numpy as np
import pytest
import torch

from xrdnb import crystal_from_structure, load_structure
from xrdnb.distortions import COORDINATE_UNITS, coordinate_noise, distort, distort_coordinates
from xrdnb.lattice import lattice_matrix


@pytest.fixture(scope="module")
def bpo4():
    return crystal_from_structure(load_structure("BPO4"), dtype=torch.float64)


def _unwrapped(delta: torch.Tensor) -> torch.Tensor:
    return delta - torch.round(delta)  # nearest periodic image


def test_default_is_angstrom(bpo4):
    assert COORDINATE_UNITS == ("angstrom", "fractional")
    default = distort_coordinates(bpo4, 0.05, n_copies=3, seed=4)
    explicit = distort_coordinates(bpo4, 0.05, n_copies=3, seed=4, units="angstrom")
    assert torch.equal(default.frac_coords, explicit.frac_coords)
    assert torch.equal(distort(bpo4, "coordinates", 0.05, 3, 4).frac_coords, default.frac_coords)


def test_fractional_adds_the_unit_draws(bpo4):
    sigma = 0.01
    out = distort_coordinates(bpo4, sigma, n_copies=4, seed=2, units="fractional")
    expected = sigma * torch.as_tensor(coordinate_noise(4, bpo4.n_sites, 2))
    delta = _unwrapped(out.frac_coords - bpo4.frac_coords)
    assert torch.allclose(delta, expected, atol=1e-12)
    assert torch.equal(out.lattice, bpo4.lattice.repeat(4, 1))
    assert bool((out.frac_coords >= 0).all() and (out.frac_coords < 1).all())
    via_distort = distort(bpo4, "coordinates", sigma, 4, 2, units="fractional")
    assert torch.equal(via_distort.frac_coords, out.frac_coords)


def test_units_differ_by_the_cell(bpo4):
    """The Å displacement in fractional units is the fractional one mapped through L⁻¹."""
    sigma = 0.02
    ang = distort_coordinates(bpo4, sigma, n_copies=2, seed=9, units="angstrom")
    frac = distort_coordinates(bpo4, sigma, n_copies=2, seed=9, units="fractional")
    d_ang = _unwrapped(ang.frac_coords - bpo4.frac_coords)
    d_frac = _unwrapped(frac.frac_coords - bpo4.frac_coords)
    inv = torch.linalg.inv(lattice_matrix(bpo4.lattice[0]))
    assert torch.allclose(d_ang, d_frac @ inv, atol=1e-12)
    # Cartesian size: fractional noise moves sites by roughly σ times the cell lengths
    cart = (d_frac @ lattice_matrix(bpo4.lattice[0])).norm(dim=-1).mean()
    assert float(cart) > 5 * float((d_ang @ lattice_matrix(bpo4.lattice[0])).norm(dim=-1).mean())


def test_lattice_noise_ignores_units(bpo4):
    a = distort(bpo4, "lattice", 0.1, 2, 0)
    b = distort(bpo4, "lattice", 0.1, 2, 0, units="fractional")
    assert torch.equal(a.lattice, b.lattice)


@pytest.mark.parametrize("units", ["nm", "Angstrom", ""])
def test_unknown_units(bpo4, units):
    with pytest.raises(ValueError, match="units"):
        distort_coordinates(bpo4, 0.01, 2, 0, units=units)
    with pytest.raises(ValueError, match="units"):
        distort(bpo4, "lattice", 0.01, 2, 0, units=units)


def test_zero_sigma_is_identity(bpo4):
    out = distort_coordinates(bpo4, 0.0, n_copies=2, seed=0, units="fractional")
    delta = _unwrapped(out.frac_coords - bpo4.frac_coords).numpy()
    assert np.abs(delta).max() < 1e-12


def test_doctests():
    import doctest

    from xrdnb import distortions

    result = doctest.testmod(distortions)
    assert result.failed == 0 and result.attempted > 0
