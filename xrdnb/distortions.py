r"""Distorted starting structures: lattice noise and coordinate noise, reproducible from a seed.

Each function takes copy 0 of a :class:`~xrdnb.crystal.Crystal` (the ground truth) and
returns a new batch of ``n_copies`` independently distorted copies of it. The noise
levels of the study are :data:`~xrdnb.vocabulary.NOISE_LEVELS`.

**Lattice noise** (a choice of this project, book/study-protocol.md, that implements the paper's "near-identity
random 3×3 matrix applied to the lattice"). With :math:`L` the row-vector cell matrix of
:func:`xrdnb.lattice.lattice_matrix` (pymatgen's setting, rows = lattice vectors a, b, c,
Cartesian = fractional · L),

.. math:: L' = L\,(I + \sigma E), \qquad E_{ij} \sim \mathcal N(0, 1)\ \text{i.i.d.},

one :math:`E` per copy. The distorted lattice parameters are those of :math:`L'`
(:func:`xrdnb.lattice.lattice_parameters_from_matrix`); the fractional coordinates are
unchanged, so the atoms follow the strained cell. ``σ`` is dimensionless. The strain is
generic: it breaks the family symmetry (use :func:`xrdnb.symmetry.project_lattice` to
restore it). At σ = 0.1 the lattice parameters change by a few per cent (SI Fig. S4:
3–10 % for BPO4).

**Coordinate noise** (a choice of this project, book/study-protocol.md). Every site is displaced by a Cartesian
vector with i.i.d. :math:`\mathcal N(0, \sigma^2)` components, σ in Å (the same
distribution as ``ase.Atoms.rattle(stdev=σ)``), in the Cartesian frame of
:func:`xrdnb.lattice.lattice_matrix`; the displacement is converted to fractional
coordinates with :math:`L^{-1}` and the result is wrapped into [0, 1). The lattice is
unchanged. Wrapping only changes the periodic image of a site, never the crystal or
its pattern; it keeps the coordinates in the usual range for the optimizer and for
pymatgen.

The paper does not say in which units its coordinate noise levels are. Pass
``units="fractional"`` to read σ as a standard deviation of each *fractional* coordinate
instead (the same unit draws, added directly to the fractional coordinates, so a site moves
by about σ·a Å along a); the default ``"angstrom"`` is the study's choice. Lattice noise is
dimensionless and ignores ``units``.

**Random numbers.** All draws come from ``numpy.random.default_rng(seed)`` in float64, so
a seed gives the same distortions on every platform, device and dtype, independently of
torch's global RNG. Each call creates its own generator and makes exactly one draw:

- lattice: ``rng.standard_normal((n_copies, 3, 3))``, i.e. copy by copy, each
  :math:`E` row by row (C order);
- coordinates: ``rng.standard_normal((n_copies, n_sites, 3))``, copy by copy, site by
  site, Cartesian x, y, z;

then scales by σ. The unit draws do not depend on σ, so one seed gives proportional
distortions at every noise level (common random numbers across levels), and the first
``k`` copies of a call with ``n_copies > k`` equal a call with ``n_copies = k``.

**The study's draws are independent** (:func:`study_seed`): a sweep cell does not pass its
seed here as it is but a seed derived from it, the structure, the noise type and the level,
so that no two structures get the same strains and the levels are independent samples (what
the bootstrap over structures and copies assumes). ``draws="paired"`` keeps the plain seed,
i.e. the proportional, common-random-numbers design across levels and structures; chapter 2
uses it to show one copy at every level. The
geometry is computed in float64 and the result cast to the input crystal's dtype and
device; the returned tensors are detached (a distortion is data, not part of a graph).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .crystal import Crystal
from .lattice import lattice_matrix, lattice_parameters_from_matrix
from .vocabulary import NOISE_LEVELS, NOISE_TYPES

__all__ = [
    "NOISE_LEVELS",
    "NOISE_TYPES",
    "lattice_noise",
    "coordinate_noise",
    "distort_lattice",
    "distort_coordinates",
    "distort",
    "study_seed",
    "COORDINATE_UNITS",
    "DRAWS",
]

COORDINATE_UNITS = ("angstrom", "fractional")
"""Units of the coordinate-noise σ, Cartesian Å (the default) or fractional coordinates."""


DRAWS = ("independent", "paired")
"""How a sweep cell's seed becomes its draws (:func:`study_seed`): derived per structure, noise type
and level (the study's choice), or the seed itself for every cell (common random numbers)."""


def study_seed(
    seed: int, structure: str, noise_type: str, level: float, draws: str = "independent"
) -> int | np.random.SeedSequence:
    """The seed of one sweep cell's draws, to pass to :func:`distort`.

    ``"independent"``: a :class:`numpy.random.SeedSequence` with entropy ``seed`` and a spawn
    key from the SHA-256 of ``[structure name, noise_type, level]`` (the name is the file stem
    of a CIF path), so every (structure, noise type, level) gets its own stream, the same on
    every machine. ``"paired"``: ``seed`` itself.

    >>> a = np.random.default_rng(study_seed(0, "BPO4", "lattice", 0.1)).standard_normal()
    >>> b = np.random.default_rng(study_seed(0, "BPO4", "lattice", 0.2)).standard_normal()
    >>> bool(a != b), study_seed(0, "BPO4", "lattice", 0.1, draws="paired")
    (True, 0)
    """
    if draws not in DRAWS:
        raise ValueError(f"unknown draws {draws!r}; valid: {', '.join(repr(d) for d in DRAWS)}")
    if draws == "paired":
        return int(seed)
    key = json.dumps([Path(structure).stem, noise_type, float(level)]).encode()
    words = np.frombuffer(hashlib.sha256(key).digest()[:16], dtype="<u4")
    return np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(int(w) for w in words))


def _check_units(units: str) -> None:
    if units not in COORDINATE_UNITS:
        raise ValueError(
            f"unknown coordinate-noise units {units!r}; valid: {', '.join(repr(u) for u in COORDINATE_UNITS)}"
        )


def _check(sigma: float, n_copies: int) -> None:
    if isinstance(n_copies, bool) or not isinstance(n_copies, (int, np.integer)):
        raise ValueError(f"n_copies must be an integer >= 1, got {n_copies!r}")
    if n_copies < 1:
        raise ValueError(f"n_copies must be >= 1, got {n_copies}")
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")


def lattice_noise(n_copies: int, seed: int | np.random.SeedSequence) -> np.ndarray:
    """The unit lattice-noise matrices ``E`` ``(n_copies, 3, 3)`` used by :func:`distort_lattice`.

    Parameters
    ----------
    n_copies
        number of copies (≥ 1).
    seed
        seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray
        float64 i.i.d. standard-normal entries; the distortion of copy ``k`` at level σ
        is ``I + σ E[k]``.
    """
    _check(0.0, n_copies)
    return np.random.default_rng(seed).standard_normal((int(n_copies), 3, 3))


def coordinate_noise(n_copies: int, n_sites: int, seed: int | np.random.SeedSequence) -> np.ndarray:
    """The unit Cartesian displacements ``(n_copies, n_sites, 3)`` used by :func:`distort_coordinates`.

    Parameters
    ----------
    n_copies
        number of copies (≥ 1).
    n_sites
        number of sites ``N``.
    seed
        seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray
        float64 i.i.d. standard-normal entries; the displacement (Å) of site ``n`` in
        copy ``k`` at level σ is ``σ D[k, n]``.
    """
    _check(0.0, n_copies)
    return np.random.default_rng(seed).standard_normal((int(n_copies), int(n_sites), 3))


def _ground_truth(crystal: Crystal) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy 0 as float64 ``(6,)`` lattice and ``(N, 3)`` coordinates, detached."""
    lattice = crystal.lattice[0].detach().to(torch.float64)
    coords = crystal.frac_coords[0].detach().to(torch.float64)
    return lattice, coords


def distort_lattice(crystal: Crystal, sigma: float, n_copies: int, seed: int | np.random.SeedSequence) -> Crystal:
    """``n_copies`` copies of ``crystal[0]`` with randomly strained lattices ``L' = L (I + σE)``.

    Parameters
    ----------
    crystal
        the ground truth; only copy 0 is used.
    sigma
        noise level σ ≥ 0 (dimensionless; the study's levels are
        ``NOISE_LEVELS["lattice"]``).
    n_copies
        batch size ``B`` of the result (≥ 1).
    seed
        seed of ``numpy.random.default_rng`` (draws: :func:`lattice_noise`).

    Returns
    -------
    Crystal
        ``B`` copies with distorted lattice parameters ``(B, 6)`` and the unchanged
        fractional coordinates of copy 0, in the input's dtype and device.

    Raises
    ------
    ValueError
        if ``sigma < 0`` or ``n_copies < 1``.

    Examples
    --------
    >>> from xrdnb import crystal_from_structure, load_structure
    >>> truth = crystal_from_structure(load_structure("BPO4"))
    >>> distort_lattice(truth, 0.1, n_copies=16, seed=0).lattice.shape
    torch.Size([16, 6])
    """
    _check(sigma, n_copies)
    lattice, coords = _ground_truth(crystal)
    noise = torch.as_tensor(lattice_noise(n_copies, seed), device=lattice.device)
    strain = torch.eye(3, dtype=torch.float64, device=lattice.device) + float(sigma) * noise
    distorted = lattice_parameters_from_matrix(lattice_matrix(lattice) @ strain)
    kw: dict[str, Any] = dict(dtype=crystal.dtype, device=crystal.device)
    return replace(
        crystal,
        lattice=distorted.to(**kw),
        frac_coords=coords.to(**kw).unsqueeze(0).repeat(int(n_copies), 1, 1),
    )


def distort_coordinates(
    crystal: Crystal, sigma: float, n_copies: int, seed: int | np.random.SeedSequence, units: str = "angstrom"
) -> Crystal:
    """``n_copies`` copies of ``crystal[0]`` with every site displaced by Gaussian noise of σ Å.

    Parameters
    ----------
    crystal
        the ground truth; only copy 0 is used.
    sigma
        standard deviation σ ≥ 0 (Å) of each Cartesian displacement component (the
        study's levels are ``NOISE_LEVELS["coordinates"]``).
    n_copies
        batch size ``B`` of the result (≥ 1).
    seed
        seed of ``numpy.random.default_rng`` (draws: :func:`coordinate_noise`).
    units
        ``"angstrom"`` (default): σ is the standard deviation of each Cartesian
        displacement component in Å; ``"fractional"``: σ is the standard deviation of
        each fractional-coordinate displacement (the same unit draws, not rotated or
        scaled by the cell).

    Returns
    -------
    Crystal
        ``B`` copies with the lattice of copy 0 and displaced fractional coordinates
        ``(B, N, 3)`` wrapped into [0, 1), in the input's dtype and device.

    Raises
    ------
    ValueError
        if ``sigma < 0``, ``n_copies < 1`` or ``units`` is unknown.

    Examples
    --------
    >>> from xrdnb import crystal_from_structure, load_structure
    >>> truth = crystal_from_structure(load_structure("BPO4"))
    >>> frac = distort_coordinates(truth, 0.01, n_copies=2, seed=0, units="fractional")
    >>> delta = frac.frac_coords - truth.frac_coords
    >>> float((delta - delta.round()).abs().max()) < 0.05  # nearest periodic image
    True
    """
    _check(sigma, n_copies)
    _check_units(units)
    lattice, coords = _ground_truth(crystal)
    noise = torch.as_tensor(coordinate_noise(n_copies, coords.shape[0], seed), device=lattice.device)
    if units == "fractional":
        frac = coords + float(sigma) * noise
    else:
        cartesian = float(sigma) * noise  # (B, N, 3) Å
        to_frac = torch.linalg.inv(lattice_matrix(lattice))  # x = f L  ->  f = x L⁻¹
        frac = coords + cartesian @ to_frac
    kw: dict[str, Any] = dict(dtype=crystal.dtype, device=crystal.device)
    frac = (frac - torch.floor(frac)).to(**kw)
    frac = torch.where(frac >= 1.0, torch.zeros_like(frac), frac)  # rounding (e.g. -1e-17 → 1.0)
    return replace(
        crystal,
        lattice=lattice.to(**kw).unsqueeze(0).repeat(int(n_copies), 1),
        frac_coords=frac,
    )


def distort(
    crystal: Crystal,
    noise_type: str,
    sigma: float,
    n_copies: int,
    seed: int | np.random.SeedSequence,
    units: str = "angstrom",
) -> Crystal:
    """Distort ``crystal[0]`` with the given noise type (:func:`distort_lattice` or :func:`distort_coordinates`).

    Parameters
    ----------
    crystal
        the ground truth; only copy 0 is used.
    noise_type
        ``"lattice"`` or ``"coordinates"``.
    sigma
        noise level σ ≥ 0 (dimensionless for lattice noise, Å for coordinate noise).
    n_copies
        batch size ``B`` of the result (≥ 1).
    seed
        seed of ``numpy.random.default_rng``.
    units
        units of σ for coordinate noise, ``"angstrom"`` (default) or ``"fractional"``
        (see :func:`distort_coordinates`); lattice noise ignores it.

    Returns
    -------
    Crystal
        ``B`` distorted copies.

    Raises
    ------
    ValueError
        for an unknown ``noise_type`` or ``units``, ``sigma < 0`` or ``n_copies < 1``.
    """
    _check_units(units)
    if noise_type == "lattice":
        return distort_lattice(crystal, sigma, n_copies, seed)
    if noise_type == "coordinates":
        return distort_coordinates(crystal, sigma, n_copies, seed, units=units)
    raise ValueError(f"unknown noise type {noise_type!r}; valid: {', '.join(repr(t) for t in NOISE_TYPES)}")
