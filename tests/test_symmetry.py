"""Symmetry projectors 𝒫 of SI §1.3 (xrdnb.symmetry)."""

import numpy as np
import pytest
import torch

from xrdnb import BENCHMARK_NAMES, CRYSTAL_FAMILIES, crystal_family, load_structure
from xrdnb.symmetry import TIED_PARAMETERS, canonical_family, free_parameters, is_in_family, project_lattice
from xrdnb.vocabulary import LATTICE_NAMES


def reference_projection(params, family):
    """SI §1.3 written out row by row in plain Python (independent of the implementation)."""
    out = []
    for a, b, c, al, be, ga in np.asarray(params, dtype=np.float64).reshape(-1, 6):
        if family == "cubic":
            m = (a + b + c) / 3
            row = [m, m, m, 90, 90, 90]
        elif family == "hexagonal":
            m = (a + b) / 2
            row = [m, m, c, 90, 90, 120]
        elif family == "tetragonal":
            m = (a + b) / 2
            row = [m, m, c, 90, 90, 90]
        elif family == "orthorhombic":
            row = [a, b, c, 90, 90, 90]
        elif family == "monoclinic":
            row = [a, b, c, 90, be, 90]
        elif family == "triclinic":
            row = [a, b, c, al, be, ga]
        else:
            raise AssertionError(family)
        out.append(row)
    return np.array(out).reshape(np.shape(params))


def random_lattices(shape=(64,), dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = 3.0 + 7.0 * torch.rand(*shape, 3, generator=g, dtype=dtype)
    angles = 70.0 + 40.0 * torch.rand(*shape, 3, generator=g, dtype=dtype)
    return torch.cat([lengths, angles], dim=-1)


def in_family_lattices(family, n=32, seed=1):
    """Random lattices built directly in the family (not via the projector)."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(3, 10, (3, n))
    beta = rng.uniform(95, 120, n)
    al, ga = rng.uniform(70, 110, (2, n))
    r, h = np.full(n, 90.0), np.full(n, 120.0)
    cols = {
        "cubic": (a, a, a, r, r, r),
        "hexagonal": (a, a, c, r, r, h),
        "tetragonal": (a, a, c, r, r, r),
        "orthorhombic": (a, b, c, r, r, r),
        "monoclinic": (a, b, c, r, beta, r),
        "triclinic": (a, b, c, al, beta, ga),
    }[family]
    return torch.tensor(np.stack(cols, axis=-1))


@pytest.mark.parametrize("family", CRYSTAL_FAMILIES)
def test_matches_si_formula(family):
    x = random_lattices()
    np.testing.assert_allclose(
        project_lattice(x, family).numpy(), reference_projection(x.numpy(), family), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("family", CRYSTAL_FAMILIES)
def test_idempotent(family):
    x = random_lattices()
    once = project_lattice(x, family)
    torch.testing.assert_close(project_lattice(once, family), once, rtol=0, atol=1e-12)
    assert is_in_family(once, family).all()


@pytest.mark.parametrize("family", CRYSTAL_FAMILIES)
def test_fixes_random_lattices_in_family(family):
    x = in_family_lattices(family)
    torch.testing.assert_close(project_lattice(x, family), x, rtol=0, atol=1e-12)
    assert is_in_family(x, family).all()


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_fixes_benchmark_lattices(name):
    structure = load_structure(name)
    family = crystal_family(structure)
    x = torch.tensor(structure.lattice.parameters, dtype=torch.float64)
    torch.testing.assert_close(project_lattice(x, family), x, rtol=0, atol=1e-6)
    assert bool(is_in_family(x, family))
    assert bool(is_in_family(x, "triclinic"))


def test_family_hierarchy_on_benchmarks():
    """Higher-symmetry lattices are fixed points of the lower-symmetry projectors, not of higher ones."""
    lower = {
        "cubic": ("tetragonal", "orthorhombic", "monoclinic", "triclinic"),
        "hexagonal": ("triclinic",),  # γ = 120°: not orthorhombic or monoclinic
        "tetragonal": ("orthorhombic", "monoclinic", "triclinic"),
        "orthorhombic": ("monoclinic", "triclinic"),
        "monoclinic": ("triclinic",),
        "triclinic": (),
    }
    for name in BENCHMARK_NAMES:
        structure = load_structure(name)
        x = torch.tensor(structure.lattice.parameters, dtype=torch.float64)
        own = crystal_family(structure)
        for family in CRYSTAL_FAMILIES:
            expected = family == own or family in lower[own]
            assert bool(is_in_family(x, family)) == expected, (name, family)


@pytest.mark.parametrize("family", CRYSTAL_FAMILIES)
def test_gradcheck(family):
    x = random_lattices((3,), seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: project_lattice(t, family), (x,))


def test_gradient_flows_through_mean():
    x = random_lattices((1,), seed=3).requires_grad_(True)
    project_lattice(x, "cubic")[..., 0].sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0, 0, 0]], dtype=torch.float64))
    x.grad = None
    project_lattice(x, "monoclinic")[..., 4].sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0, 0, 0, 0, 1.0, 0]], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (4, 1, 2)])
@pytest.mark.parametrize("family", CRYSTAL_FAMILIES)
def test_batch_shapes(shape, family):
    x = random_lattices(shape, seed=4)
    y = project_lattice(x, family)
    assert y.shape == x.shape
    assert is_in_family(y, family).shape == shape
    flat = project_lattice(x.reshape(-1, 6), family).reshape(x.shape)
    torch.testing.assert_close(y, flat, rtol=0, atol=0)


@pytest.mark.parametrize("family", CRYSTAL_FAMILIES)
def test_dtype_and_no_inplace(family):
    x = random_lattices((7,), dtype=torch.float32, seed=5)
    before = x.clone()
    y = project_lattice(x, family)
    assert y.dtype == torch.float32 and y.device == x.device
    assert y.data_ptr() != x.data_ptr()
    torch.testing.assert_close(x, before, rtol=0, atol=0)


def test_unknown_family_and_bad_shape():
    with pytest.raises(ValueError, match="cubic.*triclinic"):
        project_lattice(random_lattices((2,)), "rhombic")
    with pytest.raises(ValueError, match="unknown crystal family"):
        free_parameters("quasicrystal")
    with pytest.raises(ValueError, match="unknown crystal family"):
        is_in_family(random_lattices((2,)), "")
    with pytest.raises(ValueError, match="last dimension 6"):
        project_lattice(torch.ones(3, 5), "cubic")


def test_trigonal_alias():
    x = random_lattices()
    torch.testing.assert_close(project_lattice(x, "trigonal"), project_lattice(x, "hexagonal"), rtol=0, atol=0)
    assert canonical_family("trigonal") == "hexagonal"
    assert canonical_family("Cubic") == "cubic"
    assert free_parameters("trigonal") == ("a", "c")


def test_free_parameters():
    assert free_parameters("cubic") == ("a",)
    assert free_parameters("hexagonal") == ("a", "c")
    assert free_parameters("tetragonal") == ("a", "c")
    assert free_parameters("orthorhombic") == ("a", "b", "c")
    assert free_parameters("monoclinic") == ("a", "b", "c", "beta")
    assert free_parameters("triclinic") == ("a", "b", "c", "alpha", "beta", "gamma")


def test_free_parameters_are_the_untouched_ones():
    """Lengths always pass through 𝒫 (possibly averaged); of the angles only the free ones do."""
    names = ("a", "b", "c", "alpha", "beta", "gamma")
    for family in CRYSTAL_FAMILIES:
        x = in_family_lattices(family, n=4)
        for i, name in enumerate(names):
            bumped = x.clone()
            bumped[..., i] += 0.5
            changed = not torch.allclose(project_lattice(bumped, family), x)
            assert changed == (i < 3 or name in free_parameters(family)), (family, name)


def test_is_in_family_tolerance_and_nan():
    x = torch.tensor([[5.0, 5.0, 5.0, 90.0, 90.0, 90.0]], dtype=torch.float64)
    assert is_in_family(x, "cubic").item()
    assert is_in_family(x + torch.tensor([0, 0, 0, 1e-8, 0, 0]), "cubic").item()
    assert not is_in_family(x + torch.tensor([0, 0, 0, 1e-3, 0, 0]), "cubic").item()
    assert is_in_family(x + torch.tensor([0, 0, 0, 1e-3, 0, 0]), "cubic", atol=1e-2).item()
    assert not is_in_family(torch.full((1, 6), float("nan")), "triclinic").item()


@pytest.mark.parametrize("family", CRYSTAL_FAMILIES)
def test_tied_parameters_move_along_the_symmetry_axis(family):
    free = free_parameters(family)
    tied = TIED_PARAMETERS.get(family, {})
    assert set(tied) <= set(free)  # only free parameters have partners
    start = project_lattice(random_lattices((8,)), family)
    for name in free:
        partners = tied.get(name, (name,))
        assert name in partners
        moved = start.clone()
        for p in partners:
            moved[:, LATTICE_NAMES.index(p)] += 0.3 if p in ("a", "b", "c") else 1.5
        assert is_in_family(moved, family).all(), (family, name)
        if len(partners) < len(free) or family == "cubic":  # moving only ``name`` leaves the family
            alone = start.clone()
            alone[:, LATTICE_NAMES.index(name)] += 0.3 if name in ("a", "b", "c") else 1.5
            assert is_in_family(alone, family).all() == (len(partners) == 1), (family, name)
