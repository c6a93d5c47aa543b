"""Lattice and coordinate distortions (xrdnb.distortions)."""

import numpy as np
import pytest
import torch

from xrdnb import BENCHMARK_NAMES, crystal_family, crystal_from_structure, load_structure
from xrdnb.distortions import (
    NOISE_LEVELS,
    coordinate_noise,
    distort,
    distort_coordinates,
    distort_lattice,
    lattice_noise,
)
from xrdnb.lattice import lattice_matrix, metric_tensor
from xrdnb.symmetry import is_in_family, project_lattice


@pytest.fixture(scope="module")
def bpo4():
    return crystal_from_structure(load_structure("BPO4"))


def test_noise_levels():
    assert NOISE_LEVELS == {
        "lattice": (0.01, 0.05, 0.1, 0.15, 0.2),
        "coordinates": (0.001, 0.005, 0.01, 0.05, 0.1),
    }


@pytest.mark.parametrize("noise_type", ["lattice", "coordinates"])
def test_determinism_and_shapes(bpo4, noise_type):
    sigma = NOISE_LEVELS[noise_type][2]
    first = distort(bpo4, noise_type, sigma, n_copies=8, seed=7)
    torch.manual_seed(123)  # torch's RNG plays no part
    second = distort(bpo4, noise_type, sigma, n_copies=8, seed=7)
    other = distort(bpo4, noise_type, sigma, n_copies=8, seed=8)
    assert first.lattice.shape == (8, 6) and first.frac_coords.shape == (8, bpo4.n_sites, 3)
    assert first.elements == bpo4.elements and torch.equal(first.occupancy, bpo4.occupancy)
    assert torch.equal(first.lattice, second.lattice) and torch.equal(first.frac_coords, second.frac_coords)
    changed = first.lattice if noise_type == "lattice" else first.frac_coords
    assert not torch.allclose(changed, other.lattice if noise_type == "lattice" else other.frac_coords)
    # copies differ from each other
    assert not torch.allclose(changed[0], changed[1])
    # prefix property: the first k copies do not depend on n_copies
    few = distort(bpo4, noise_type, sigma, n_copies=3, seed=7)
    assert torch.equal(few.lattice, first.lattice[:3]) and torch.equal(few.frac_coords, first.frac_coords[:3])
    assert len(first.to_structures()) == 8


def test_lattice_distortion_keeps_coordinates(bpo4):
    out = distort_lattice(bpo4, 0.1, n_copies=5, seed=0)
    assert torch.equal(out.frac_coords, bpo4.frac_coords[:1].expand(5, -1, -1))
    assert not torch.allclose(out.lattice, bpo4.lattice.expand(5, -1))


def test_coordinate_distortion_keeps_lattice(bpo4):
    out = distort_coordinates(bpo4, 0.05, n_copies=5, seed=0)
    assert torch.equal(out.lattice, bpo4.lattice.expand(5, -1))
    assert ((out.frac_coords >= 0) & (out.frac_coords < 1)).all()
    assert not torch.allclose(out.frac_coords, bpo4.frac_coords.expand(5, -1, -1))


def test_only_copy_zero_is_used(bpo4):
    batch = bpo4.repeat(3)
    batch = batch.with_lattice(batch.lattice + torch.tensor([[0.0] * 6, [0.3] * 6, [0.6] * 6], dtype=torch.float64))
    for noise_type in ("lattice", "coordinates"):
        a = distort(batch, noise_type, 0.05, 4, seed=1)
        b = distort(bpo4, noise_type, 0.05, 4, seed=1)
        assert torch.equal(a.lattice, b.lattice) and torch.equal(a.frac_coords, b.frac_coords)


def test_zero_sigma_is_identity(bpo4):
    lat = distort_lattice(bpo4, 0.0, 2, seed=3)
    torch.testing.assert_close(lat.lattice, bpo4.lattice.expand(2, -1), rtol=0, atol=1e-10)
    crd = distort_coordinates(bpo4, 0.0, 2, seed=3)
    torch.testing.assert_close(crd.frac_coords, bpo4.frac_coords.expand(2, -1, -1) % 1.0, rtol=0, atol=1e-12)


def test_coordinate_noise_statistics(bpo4):
    sigma, n = 0.1, 2000
    out = distort_coordinates(bpo4, sigma, n_copies=n, seed=11)
    d = out.frac_coords - bpo4.frac_coords  # (n, N, 3) fractional
    d = d - torch.round(d)  # minimum image
    cart = d @ lattice_matrix(bpo4.lattice[0])  # Å
    flat = cart.reshape(-1, 3)
    assert flat.shape[0] == n * bpo4.n_sites
    std = flat.std(dim=0)
    assert torch.allclose(std, torch.full_like(std, sigma), rtol=0.03), std
    assert flat.mean(dim=0).abs().max() < 0.03 * sigma * 3
    # components uncorrelated
    corr = torch.corrcoef(flat.T)
    assert (corr - torch.eye(3, dtype=corr.dtype)).abs().max() < 0.03


def test_coordinate_noise_is_the_documented_draw(bpo4):
    out = distort_coordinates(bpo4, 0.01, n_copies=4, seed=5)
    draws = np.random.default_rng(5).standard_normal((4, bpo4.n_sites, 3))
    np.testing.assert_array_equal(coordinate_noise(4, bpo4.n_sites, 5), draws)
    frac = bpo4.frac_coords[0].numpy() + 0.01 * draws @ np.linalg.inv(lattice_matrix(bpo4.lattice[0]).numpy())
    np.testing.assert_allclose(out.frac_coords.numpy(), frac % 1.0, rtol=0, atol=1e-12)


def test_lattice_noise_statistics_and_metric(bpo4):
    sigma, n = 0.1, 4000
    out = distort_lattice(bpo4, sigma, n_copies=n, seed=21)
    e = torch.as_tensor(lattice_noise(n, 21))
    np.testing.assert_array_equal(e.numpy(), np.random.default_rng(21).standard_normal((n, 3, 3)))
    L = lattice_matrix(bpo4.lattice[0])
    L_new = L @ (torch.eye(3, dtype=torch.float64) + sigma * e)
    # the returned parameters are those of L' = L (I + σE): compare rotation-invariant metrics
    torch.testing.assert_close(metric_tensor(out.lattice), L_new @ L_new.transpose(-1, -2), rtol=1e-10, atol=1e-10)
    z = (torch.linalg.inv(L) @ L_new - torch.eye(3, dtype=torch.float64)) / sigma
    assert z.mean().abs() < 0.02
    assert abs(z.std().item() - 1.0) < 0.02
    per_entry_std = z.reshape(n, 9).std(dim=0)
    assert ((per_entry_std - 1).abs() < 0.06).all(), per_entry_std


def test_bpo4_lattice_change_is_a_few_percent(bpo4):
    out = distort_lattice(bpo4, 0.1, n_copies=64, seed=0)
    rel = (out.lattice[:, :3] - bpo4.lattice[:, :3]).abs() / bpo4.lattice[:, :3]
    median = rel.median().item()
    assert 0.01 < median < 0.15, median
    assert (out.lattice[:, 3:] - 90.0).abs().median() > 1.0  # angles move by degrees


@pytest.mark.parametrize("name", [n for n in BENCHMARK_NAMES if n != "Gd4B3C4"])
def test_distortion_breaks_symmetry_and_projection_restores(name):
    structure = load_structure(name)
    family = crystal_family(structure)
    truth = crystal_from_structure(structure)
    assert is_in_family(truth.lattice, family).all()
    out = distort_lattice(truth, 0.1, n_copies=16, seed=2)
    assert not is_in_family(out.lattice, family).any()
    assert is_in_family(project_lattice(out.lattice, family), family).all()


@pytest.mark.parametrize("noise_type", ["lattice", "coordinates"])
def test_dtype_preserved(bpo4, noise_type):
    single = bpo4.to(dtype=torch.float32)
    out = distort(single, noise_type, 0.05, 6, seed=4)
    ref = distort(bpo4, noise_type, 0.05, 6, seed=4)
    assert out.lattice.dtype == out.frac_coords.dtype == torch.float32
    torch.testing.assert_close(out.lattice, ref.lattice.float())
    assert ((out.frac_coords >= 0) & (out.frac_coords < 1)).all()
    assert not out.lattice.requires_grad


def test_invalid_arguments(bpo4):
    with pytest.raises(ValueError, match="noise type"):
        distort(bpo4, "strain", 0.1, 4, seed=0)
    for noise_type in ("lattice", "coordinates"):
        with pytest.raises(ValueError, match="sigma"):
            distort(bpo4, noise_type, -0.1, 4, seed=0)
        with pytest.raises(ValueError, match="n_copies"):
            distort(bpo4, noise_type, 0.1, 0, seed=0)
        with pytest.raises(ValueError, match="sigma"):
            distort(bpo4, noise_type, float("nan"), 4, seed=0)


def test_the_study_draws_are_independent_across_structures_and_levels():
    """Issue: the same seed gave the same four strains to all ten structures (copy 0 alike in six)."""
    from xrdnb.distortions import lattice_noise, study_seed
    from xrdnb.sweep import Cell, prepare_cell

    draws = {
        (name, level): lattice_noise(4, study_seed(0, name, "lattice", level))
        for name in ("BPO4", "U2Ti", "Au2S")
        for level in (0.05, 0.1)
    }
    values = list(draws.values())
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            assert not np.allclose(a, b)
    # reproducible, and the noise type enters as well
    assert np.array_equal(draws[("BPO4", 0.1)], lattice_noise(4, study_seed(0, "BPO4", "lattice", 0.1)))
    assert not np.allclose(draws[("BPO4", 0.1)], lattice_noise(4, study_seed(0, "BPO4", "coordinates", 0.1)))
    # a CIF path draws as its stem; paired keeps the seed (common random numbers across levels)
    assert np.array_equal(lattice_noise(2, study_seed(0, "/data/BPO4.cif", "lattice", 0.1)), draws[("BPO4", 0.1)][:2])
    assert study_seed(7, "BPO4", "lattice", 0.1, draws="paired") == 7
    with pytest.raises(ValueError, match="unknown draws"):
        study_seed(0, "BPO4", "lattice", 0.1, draws="shared")
    # the sweep's copies follow the cell's draws: paired cells at two levels are proportional strains
    paired = [
        prepare_cell(Cell("BPO4", "lattice", s, "cosine", False, 1e-3, 0, n_copies=2, draws="paired"))[2]
        for s in (0.05, 0.1)
    ]
    free = [prepare_cell(Cell("BPO4", "lattice", s, "cosine", False, 1e-3, 0, n_copies=2))[2] for s in (0.05, 0.1)]
    truth = prepare_cell(Cell("BPO4", "lattice", 0.05, "cosine", False, 1e-3, 0, n_copies=2))[1].lattice[0, :3]
    rel = [(c.lattice[:, :3] / truth - 1).numpy() for c in paired]
    assert np.corrcoef(rel[0].ravel(), rel[1].ravel())[0, 1] > 0.99
    assert not np.allclose(free[0].lattice.numpy(), paired[0].lattice.numpy())
    with pytest.raises(ValueError, match="cell draws must be one of"):
        Cell("BPO4", "lattice", 0.1, "cosine", False, 1e-3, 0, draws="shared")
