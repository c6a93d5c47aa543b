"""Invariances of the normalised pattern (float64, 1e-8): cell choice, atom order, supercells, Friedel pairs."""

import numpy as np
import pytest
import torch
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from xrdnb import (
    BENCHMARK_NAMES,
    XRDSettings,
    crystal_from_structure,
    enumerate_reflections,
    load_structure,
    simulate_pattern,
)

TOL = 1e-8


def pattern_of(structure, method="auto", settings=XRDSettings()):
    return simulate_pattern(crystal_from_structure(structure), settings, method=method)[0]


@pytest.mark.parametrize("name", ["SrTe", "NaInS2", "BPO4", "BaTiO3"])
@pytest.mark.parametrize("method", ["dense", "fast"])
def test_primitive_cell_gives_same_pattern(name, method):
    conventional = load_structure(name)
    primitive = SpacegroupAnalyzer(conventional, symprec=0.1).get_primitive_standard_structure()
    assert len(primitive) < len(conventional)
    diff = (pattern_of(conventional, method) - pattern_of(primitive, method)).abs().max()
    assert diff < TOL


@pytest.mark.parametrize("name", ["LiCSN", "Gd4B3C4"])
def test_reduced_cell_gives_same_pattern(name):
    structure = load_structure(name)
    reduced = structure.get_reduced_structure("niggli")
    other = structure.copy()
    other.make_supercell([[1, 1, 0], [0, 1, 0], [0, 0, 1]])  # same volume, another cell choice
    base = pattern_of(structure)
    assert (base - pattern_of(reduced)).abs().max() < TOL
    assert (base - pattern_of(other)).abs().max() < TOL


@pytest.mark.parametrize("name", ["Na3MnCoNiO6", "NdAl2Cu4"])
def test_atom_order_does_not_matter(name):
    structure = load_structure(name)
    order = np.random.default_rng(1).permutation(len(structure))
    permuted = structure.from_sites([structure[i] for i in order])
    assert (pattern_of(structure) - pattern_of(permuted)).abs().max() < TOL


@pytest.mark.parametrize("name", ["U2Ti", "Au2S", "Gd4B3C4"])
@pytest.mark.parametrize("method", ["dense", "fast"])
def test_supercell_gives_same_pattern(name, method):
    structure = load_structure(name)
    assert (pattern_of(structure, method) - pattern_of(structure * (2, 1, 1), method)).abs().max() < TOL


def test_partial_occupancy_supercell(mixed_structure):
    assert (pattern_of(mixed_structure) - pattern_of(mixed_structure * (1, 2, 1))).abs().max() < TOL


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_friedel_halving_is_exact(name):
    crystal = crystal_from_structure(load_structure(name))
    settings = XRDSettings()
    half = enumerate_reflections(crystal.lattice, settings.g_max)
    full = enumerate_reflections(crystal.lattice, settings.g_max, friedel=False)
    assert len(full) == 2 * len(half)
    p_half = simulate_pattern(crystal, settings, reflections=half)
    p_full = simulate_pattern(crystal, settings, reflections=full)
    assert (p_half - p_full).abs().max() < TOL


def test_translation_of_origin_does_not_matter():
    structure = load_structure("LiCSN")
    shifted = structure.copy()
    shifted.translate_sites(list(range(len(shifted))), [0.137, -0.25, 0.61], frac_coords=True)
    assert (pattern_of(structure) - pattern_of(shifted)).abs().max() < TOL


def test_batch_copies_are_independent():
    crystal = crystal_from_structure(load_structure("BPO4"), batch_size=3)
    lattice = crystal.lattice.clone()
    lattice[1, 0] *= 1.02
    batch = simulate_pattern(crystal.with_lattice(lattice))
    single = simulate_pattern(crystal.with_lattice(lattice[1:2]))
    assert torch.equal(batch[0], batch[2])
    assert (batch[1] - single[0]).abs().max() < 1e-12
