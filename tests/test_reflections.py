"""Reflection enumeration: completeness, Friedel halving, Miller clip, and the coverage test for moving lattices."""

import numpy as np
import pytest
import torch

from xrdnb.reflections import covers, enumerate_reflections, g_squared


def brute_force(lattice, g_max, n=12):
    axes = np.arange(-n, n + 1)
    hkl = np.stack(np.meshgrid(axes, axes, axes, indexing="ij"), -1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    g2 = g_squared(torch.tensor(lattice, dtype=torch.float64)[None], torch.tensor(hkl))[0].numpy()
    return {tuple(h) for h in hkl[g2 <= g_max**2]}


def as_set(refl, friedel=True):
    out = {tuple(h) for h in refl.hkl.tolist()}
    return out | {tuple(-x for x in h) for h in out} if friedel else out


LATTICES = [
    [3.2, 3.2, 3.2, 90, 90, 90],
    [4.1, 5.2, 6.3, 81, 97, 109],
    [3.9, 3.9, 8.5, 90, 90, 120],
    [6.0, 3.0, 5.0, 90, 117, 90],
]


@pytest.mark.parametrize("lattice", LATTICES)
def test_enumeration_is_complete(lattice):
    g_max = 0.9
    refl = enumerate_reflections(torch.tensor(lattice), g_max)
    assert as_set(refl) == brute_force(lattice, g_max)
    full = enumerate_reflections(torch.tensor(lattice), g_max, friedel=False)
    assert as_set(full, friedel=False) == brute_force(lattice, g_max)
    assert (refl.weight == 2).all() and (full.weight == 1).all()


def test_miller_clip():
    refl = enumerate_reflections(torch.tensor([[12.0, 12.0, 12.0, 90.0, 90.0, 90.0]]), 0.9, hkl_max=6)
    assert refl.hkl.abs().max() == 6
    assert as_set(refl) == {h for h in brute_force([12, 12, 12, 90, 90, 90], 0.9, n=11) if max(map(abs, h)) <= 6}


@pytest.mark.parametrize("lattice", LATTICES)
def test_coverage_test_is_sound(lattice):
    g_max = 0.9
    reference = torch.tensor([lattice], dtype=torch.float64)
    refl = enumerate_reflections(reference, g_max, margin=0.1)
    rng = np.random.default_rng(0)
    verdicts = []
    for scale in (1.0, 1.03, 1.08, 1.2, 1.5):
        moved = reference.clone()
        moved[0, :3] *= torch.tensor(scale * (1 + 0.02 * rng.standard_normal(3)))
        moved[0, 3:] += torch.tensor(2.0 * rng.standard_normal(3))
        ok = bool(covers(refl, moved, g_max)[0])
        verdicts.append(ok)
        if ok:  # whenever it says "covered", every reflection in the sphere is there
            assert brute_force(moved[0].tolist(), g_max, n=16) <= as_set(refl)
    assert verdicts[0] and not verdicts[-1]


def test_coverage_handles_cubic_and_nan():
    refl = enumerate_reflections(torch.tensor([[4.0, 4.0, 4.0, 90.0, 90.0, 90.0]]), 0.9, margin=0.1)
    lattices = torch.tensor(
        [[4.0, 4.0, 4.0, 90.0, 90.0, 90.0], [4.0, 4.0, float("nan"), 90.0, 90.0, 90.0]], dtype=torch.float32
    )
    assert covers(refl, lattices, 0.9).tolist() == [True, False]
