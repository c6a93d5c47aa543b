"""Searches beyond gradient descent: each recovers a lightly distorted structure within its budget."""

from __future__ import annotations

import math

import pytest
import torch

import xrdnb
from xrdnb import search
from xrdnb.distortions import distort_lattice
from xrdnb.evaluate import evaluate_copies
from xrdnb.optimize import GDConfig
from xrdnb.structures import crystal_family, load_structure
from xrdnb.symmetry import project_lattice

METHODS = {  # hyper-parameters for light (3 %) distortions
    "multistart": {},
    "width_annealing": {},
    "differential_evolution": {"population": 5, "length_span": 0.1, "angle_span": 5.0},
    "basin_hopping": {},
    "hybrid": {"weight": 0.5},  # CHGNet energy per atom (eV) beside −cos
}


@pytest.fixture(scope="module")
def u2ti():
    structure = load_structure("U2Ti")
    truth = xrdnb.crystal_from_structure(structure).to(dtype=torch.float32)
    start = distort_lattice(truth, 0.03, n_copies=2, seed=3)
    config = GDConfig(lr=5e-3, patience=40, tol=1e-6, constrained=True, family=crystal_family(structure))
    return truth, start, xrdnb.simulate_pattern(truth)[0], config


@pytest.mark.parametrize("method", METHODS)
def test_every_search_recovers_a_lightly_distorted_structure_within_its_budget(u2ti, method):
    truth, start, target, config = u2ti
    budget = 240
    if method == "hybrid":  # a CHGNet call per step: the harder copy alone, and the energy pulls it in quickly
        start, budget = start.select([1]), 80
    result = getattr(search, method)(start, target, config, budget, seed=0, **METHODS[method])
    assert result.method == method and result.crystal.batch_size == start.batch_size
    assert (result.evaluations <= budget).all() and (result.evaluations > 0).all()
    assert (
        (result.energy_evaluations == result.evaluations) if method == "hybrid" else (result.energy_evaluations == 0)
    ).all()
    before = evaluate_copies(start, truth)
    after = evaluate_copies(result.crystal, truth)
    assert (before["max_length_error_rel"] > 0.01).all()  # the start is not recovered ...
    assert after["match"].all() and (after["max_length_error_rel"] < 0.01).all()  # ... the search recovers it
    assert (result.loss < search.pattern_losses(start, target, config)).all()
    lattice = result.crystal.lattice
    assert torch.allclose(project_lattice(lattice, config.family), lattice, atol=1e-4)  # in the crystal family


def test_degenerate_settings_are_plain_gradient_descent(u2ti):
    _, start, target, config = u2ti
    end, loss, steps = search.descend(start, target, config, 40)
    same = [
        search.multistart(start, target, config, 40, restarts=1),
        search.width_annealing(start, target, config, 40, widths=(0.0,)),
        search.basin_hopping(start, target, config, 40, hops=1),
    ]
    for result in same:
        assert torch.equal(result.crystal.lattice, end.lattice), result.method
        assert torch.equal(result.evaluations, steps) and torch.equal(result.loss, loss)


def test_gaussian_broadening_widens_a_peak_and_keeps_its_area():
    step = 0.01
    pattern = torch.zeros(2, 2001, dtype=torch.float64)
    pattern[:, 1000] = 1.0 / step
    wide = search.gaussian_broadening(pattern, 0.5, step)
    assert torch.allclose(wide.sum(-1) * step, torch.ones(2, dtype=torch.float64), atol=1e-9)
    above = (wide[0] >= wide[0].max() / 2).sum().item() * step
    assert above == pytest.approx(0.5, abs=2 * step)  # its FWHM is the kernel's
    assert search.gaussian_broadening(pattern, 0.0, step) is pattern
    x = pattern.clone().requires_grad_(True)
    search.gaussian_broadening(x, 0.3, step).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="fwhm >= 0"):
        search.gaussian_broadening(pattern, -1.0, step)


def test_budgets_and_settings_that_cannot_work_are_refused(u2ti):
    _, start, target, config = u2ti
    with pytest.raises(ValueError, match="budget >= 240"):
        search.differential_evolution(start, target, config, 100, population=10)
    with pytest.raises(ValueError, match="end at 0"):
        search.width_annealing(start, target, config, 100, widths=(1.0, 0.5))
    with pytest.raises(ValueError, match="below its least, 4"):
        search.multistart(start, target, config, 3, restarts=4)
    with pytest.raises(ValueError, match="temperature > 0"):
        search.basin_hopping(start, target, config, 100, temperature=0.0)


def test_an_invalid_lattice_has_an_infinite_loss(u2ti):
    truth, _, target, config = u2ti
    bad = truth.repeat(2).with_lattice(torch.tensor([[3.0, 3.0, 3.0, 90, 90, 90], [-1.0, 3.0, 3.0, 90, 90, 120]]))
    losses = search.pattern_losses(bad, target, config.__class__(loss="cosine"))
    assert math.isfinite(losses[0]) and losses[1] == math.inf


def test_the_hybrid_at_weight_zero_is_plain_gradient_descent(u2ti):
    _, start, target, config = u2ti
    end, loss, steps = search.descend(start, target, config, 40)
    result = search.hybrid(start, target, config, 40, weight=0.0, energy=lambda crystal: pytest.fail("no energy"))
    assert torch.equal(result.crystal.lattice, end.lattice) and torch.equal(result.evaluations, steps)
    assert (result.energy_evaluations == 0).all()


def test_the_hybrid_follows_the_energy_gradient_and_counts_its_calls(u2ti):
    truth, start, target, config = u2ti
    free = GDConfig(lr=5e-3, patience=40, tol=1e-6)  # unconstrained: the energy must pull the cell back

    def bowl(crystal):  # an energy whose minimum is the ground truth, with its exact gradient
        offset = crystal.lattice.double() - truth.lattice.double()
        return (offset**2).sum(-1), 2 * offset

    result = search.hybrid(start, target, free, 120, weight=1.0, energy=bowl)
    assert torch.equal(result.energy_evaluations, result.evaluations)  # one energy call per step and copy
    plain = search.descend(start, target, free, 120)[0]
    error = (result.crystal.lattice - truth.lattice).abs().max()
    assert error < (plain.lattice - truth.lattice).abs().max()
    with pytest.raises(ValueError, match="weight must be >= 0"):
        search.hybrid(start, target, free, 10, weight=-1.0)


def test_chgnet_energy_gradients_agree_with_finite_differences():
    from xrdnb.relax import chgnet_energies, energy_gradients

    truth = xrdnb.crystal_from_structure(load_structure("BPO4")).to(dtype=torch.float64)
    lattice = truth.lattice.clone()
    lattice[0, 0] *= 1.03
    lattice[0, 4] += 2.0  # strained and sheared, so no component vanishes by symmetry
    crystal = truth.with_lattice(lattice)
    energy, gradient = energy_gradients(crystal)
    assert energy.shape == (1,) and gradient.shape == (1, 6)
    for k, h in enumerate([1e-3] * 3 + [0.05] * 3):  # Å, then degrees
        up, down = lattice.clone(), lattice.clone()
        up[0, k] += h
        down[0, k] -= h
        pair = chgnet_energies(truth.repeat(2).with_lattice(torch.cat([up, down])).to_structures())
        assert float(gradient[0, k]) == pytest.approx((pair[0] - pair[1]) / (2 * h), abs=2e-3, rel=0.05)
