"""Gradient checks in float64: the pattern with respect to lattice parameters and fractional coordinates."""

import pytest
import torch

from xrdnb import XRDSettings, crystal_from_structure, simulate_pattern
from xrdnb.pattern import reflections_for

# a coarser grid keeps gradcheck quick; the fast path keeps its window and tail series
SETTINGS = XRDSettings(two_theta_min=10.0, two_theta_max=70.0, two_theta_step=0.02)


@pytest.fixture
def crystal(mixed_structure):
    return crystal_from_structure(mixed_structure, batch_size=2)


@pytest.mark.parametrize("method", ["dense", "fast"])
def test_gradcheck_lattice(crystal, method):
    reflections = reflections_for(crystal, SETTINGS, margin=0.05)
    weights = torch.rand(SETTINGS.n_points, dtype=torch.float64)
    lattice = crystal.lattice.clone()
    lattice[1] += torch.tensor([0.03, -0.02, 0.01, 0.4, -0.3, 0.2], dtype=torch.float64)

    def f(lat):
        return simulate_pattern(crystal.with_lattice(lat), SETTINGS, reflections=reflections, method=method) * weights

    assert torch.autograd.gradcheck(f, (lattice.requires_grad_(True),), eps=1e-6, atol=1e-7, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("method", ["dense", "fast"])
def test_gradcheck_fractional_coordinates(crystal, method):
    reflections = reflections_for(crystal, SETTINGS)
    coords = crystal.frac_coords.clone()
    coords[1] += 0.01 * torch.randn_like(coords[1])

    def f(xyz):
        return simulate_pattern(crystal.with_frac_coords(xyz), SETTINGS, reflections=reflections, method=method)

    assert torch.autograd.gradcheck(f, (coords.requires_grad_(True),), eps=1e-6, atol=1e-7, rtol=1e-4, fast_mode=True)


def test_gradcheck_full_jacobian_small_grid(crystal):
    """Full (not randomly projected) Jacobian on a short grid, both renderers."""
    settings = XRDSettings(two_theta_min=25.0, two_theta_max=45.0, two_theta_step=0.05)
    reflections = reflections_for(crystal, settings)
    for method in ("dense", "fast"):

        def f(lat):
            return simulate_pattern(crystal.with_lattice(lat), settings, reflections=reflections, method=method)  # noqa: B023 (called in this iteration)

        lattice = crystal.lattice[:1].clone().requires_grad_(True)
        assert torch.autograd.gradcheck(f, (lattice,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_masked_reflections_give_finite_gradients(crystal):
    """A superset with reflections beyond 2θ_max (masked) must not leak NaN into gradients."""
    reflections = reflections_for(crystal, XRDSettings(), margin=0.5)
    lattice = crystal.lattice.clone().requires_grad_(True)
    pattern = simulate_pattern(crystal.with_lattice(lattice), reflections=reflections)
    (grad,) = torch.autograd.grad(pattern.sum(), lattice)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
