"""CHGNet relaxation and energies (xrdnb.relax); one small structure, few steps."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

pytest.importorskip("chgnet")
pytest.importorskip("ase")

import xrdnb  # noqa: E402
from xrdnb import landscape as ls  # noqa: E402
from xrdnb import relax as rx  # noqa: E402
from xrdnb.distortions import distort  # noqa: E402


@pytest.fixture(scope="module")
def u2ti():
    return xrdnb.load_structure("U2Ti")


@pytest.fixture(scope="module")
def strained(u2ti):
    truth = xrdnb.crystal_from_structure(u2ti)
    return distort(truth, "lattice", 0.05, 1, seed=0).to_structures()[0]


def test_model_is_loaded_once_per_device():
    first = rx.load_model("cpu")
    assert rx.load_model("cpu") is first
    assert rx.load_model(torch.device("cpu")) is first
    if not torch.cuda.is_available():
        assert rx.load_model("auto") is first
        with pytest.raises(ValueError):
            rx.resolve_device("cuda")


def test_cell_relaxation_lowers_the_energy_and_converges(strained):
    result = rx.relax(strained, relax_cell=True, max_steps=200)
    assert result.converged and result.relax_cell
    assert result.fmax < rx.FMAX
    assert 0 < result.steps <= 200
    assert result.energies.shape == (result.steps + 1,)
    assert result.energies[-1] < result.energies[0]
    assert result.structure.lattice.parameters != pytest.approx(strained.lattice.parameters)


def test_step_limit_gives_not_converged(strained):
    short = rx.relax(strained, relax_cell=True, max_steps=2)
    assert not short.converged
    assert short.steps == 2 and short.energies.shape == (3,)
    assert short.fmax >= rx.FMAX
    none = rx.relax(strained, relax_cell=True, max_steps=0)
    assert none.steps == 0 and not none.converged and none.energies.shape == (1,)
    with pytest.raises(ValueError):
        rx.relax(strained, max_steps=-1)


def test_coordinate_relaxation_keeps_the_cell(u2ti):
    truth = xrdnb.crystal_from_structure(u2ti)
    rattled = distort(truth, "coordinates", 0.05, 1, seed=1).to_structures()[0]
    result = rx.relax(rattled, relax_cell=rx.relax_cell_for("coordinates"), max_steps=100)
    assert not result.relax_cell
    assert np.allclose(result.structure.lattice.matrix, rattled.lattice.matrix)
    assert result.energies[-1] < result.energies[0]
    assert result.converged and result.fmax < rx.FMAX


def test_symmetry_constraint_keeps_the_projected_family(u2ti, strained):
    from xrdnb.symmetry import project_lattice

    truth = xrdnb.crystal_from_structure(u2ti)
    copy = distort(truth, "lattice", 0.05, 1, seed=0)
    start = copy.with_lattice(project_lattice(copy.lattice, "hexagonal")).to_structures()[0]
    [result] = rx.relax_many([start], max_steps=200, symprec=0.01)
    assert result.space_group == "P6/mmm" and result.converged
    a, b, c, alpha, beta, gamma = result.structure.lattice.parameters
    assert a == pytest.approx(b, rel=1e-8) and (alpha, beta, gamma) == pytest.approx((90, 90, 120), abs=1e-6)
    reference = rx.relax(u2ti, max_steps=200)
    assert rx.lattice_deviation(result.structure, reference.structure) < 0.01
    # the unprojected copy has lost the symmetry that the constraint would keep
    assert rx.relax(strained, max_steps=0, symprec=0.01).space_group == "P-1"
    assert rx.relax(strained, max_steps=0).space_group is None
    for bad in (0.0, -0.01):
        with pytest.raises(ValueError, match="symprec"):
            rx.relax(strained, symprec=bad)


def test_batched_energies_match_single_predictions(u2ti, strained):
    batch = rx.chgnet_energies([u2ti, strained, u2ti], batch_size=2)
    single = [rx.chgnet_energies([s])[0] for s in (u2ti, strained)]
    assert batch.shape == (3,)
    assert batch[0] == pytest.approx(single[0], abs=1e-5) and batch[1] == pytest.approx(single[1], abs=1e-5)
    assert batch[2] == pytest.approx(batch[0], abs=1e-6)
    assert rx.chgnet_energies([]).shape == (0,)


def test_energy_slice_is_batched_and_finite(u2ti):
    truth = xrdnb.crystal_from_structure(u2ti)
    s = ls.lattice_slice(truth, ("a", "c"), rx.energy_fn(batch_size=16), n=3, chunk_size=9)
    assert s.values.shape == (3, 3) and torch.isfinite(s.values).all()
    assert float(s.values[1, 1]) == pytest.approx(rx.chgnet_energies([u2ti])[0], abs=1e-5)


def test_lattice_deviation_is_basis_independent(u2ti, strained):
    assert rx.lattice_deviation(u2ti, u2ti) == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < rx.lattice_deviation(strained, u2ti) < 0.1
    assert rx.relax_cell_for("lattice") and not rx.relax_cell_for("coordinates")


def test_doctests():
    result = doctest.testmod(rx, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_relax_many_on_workers_matches_in_process(u2ti):
    """relax_many's workers are those of xrdnb.workers.run_tasks; the results do not depend on them."""
    truth = xrdnb.crystal_from_structure(u2ti)
    starts = distort(truth, "lattice", 0.05, 2, seed=3).to_structures()
    here = rx.relax_many(starts, max_steps=20)
    there = rx.relax_many(starts, max_steps=20, workers=2)
    assert [r.steps for r in here] == [r.steps for r in there]
    assert all(np.allclose(a.energies, b.energies, rtol=0, atol=1e-9) for a, b in zip(here, there, strict=True))
