"""Evaluation of optimised copies against their ground truth.

For every copy: pymatgen's ``StructureMatcher`` verdict (tolerances recorded with the
result; note that the default matcher rescales volume, so a match can coexist with low XRD
similarity, SI Fig. S4), the AMD distance (average minimum distances, package
``average-minimum-distance``, k = 100, L∞/Chebyshev), all four XRD similarities to the
ground-truth pattern, and the lattice-parameter errors. Pymatgen and ``amd`` appear only here.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from .crystal import Crystal
from .lattice import is_valid_lattice
from .losses import all_similarities
from .pattern import DEFAULT_SETTINGS, XRDSettings, simulate_pattern
from .vocabulary import LATTICE_NAMES

__all__ = ["MatcherTolerances", "structures_match", "amd_vector", "amd_distances", "evaluate_copies", "LATTICE_NAMES"]


@dataclass(frozen=True)
class MatcherTolerances:
    """``StructureMatcher`` settings, pymatgen's defaults (which the study uses).

    ``ltol`` fractional length tolerance, ``stol`` site tolerance (in units of the average
    free length per atom), ``angle_tol`` degrees; ``primitive_cell`` reduces both structures
    to primitive cells first, ``scale`` rescales their volumes to each other,
    ``attempt_supercell`` tries supercell matches.

    With ``primitive_cell=True`` a centred cell whose atoms were displaced independently has no
    smaller primitive cell any more, and the matcher reports no match even for small
    displacements (e.g. SrTe, Fm-3m, at 0.1 Å); ``primitive_cell=False`` compares the cells
    as given.
    """

    ltol: float = 0.2
    stol: float = 0.3
    angle_tol: float = 5.0
    primitive_cell: bool = True
    scale: bool = True
    attempt_supercell: bool = False


def structures_match(structures, reference, tolerances: MatcherTolerances = MatcherTolerances()) -> np.ndarray:
    """Boolean per structure: whether ``StructureMatcher`` (with ``tolerances``) matches it to ``reference``."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(**asdict(tolerances))  # the fields are StructureMatcher's keyword arguments
    _clear_reduction_cache(StructureMatcher)
    out = []
    for s in structures:
        try:
            out.append(bool(matcher.fit(s, reference)))
        except Exception:  # degenerate cells make the matcher's reduction fail: not a match
            out.append(False)
    return np.array(out, dtype=bool)


def _clear_reduction_cache(matcher_class) -> None:
    """Empty pymatgen's cache of reduced structures before a batch of fits.

    Its key hashes the species and fractional coordinates but not the lattice, so the
    copies of a lattice-mode cell (same coordinates, other lattices) all collide, and every
    look-up compares the new structure with each cached copy: 80 % of the matcher's time
    for 16 copies of NdAl2Cu4. Clearing it first leaves the reference cached after its
    first fit and each copy reduced once. The cache is a private detail of pymatgen; where
    it is missing nothing is done.
    """
    cached = getattr(matcher_class, "_get_reduced_istructure", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


def amd_vector(structure, k: int = 100) -> np.ndarray:
    """AMD invariant ``(k,)`` (Å) of a pymatgen structure."""
    import amd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        periodic_set = amd.periodicset_from_pymatgen_structure(structure)
    return np.asarray(amd.AMD(periodic_set, k), dtype=np.float64)


def amd_distances(structures, reference, k: int = 100) -> np.ndarray:
    """L∞ (Chebyshev) distance (Å) between the AMD of each structure and that of ``reference``."""
    ref = amd_vector(reference, k)
    return np.array([np.abs(amd_vector(s, k) - ref).max() for s in structures])


def evaluate_copies(
    final: Crystal,
    truth: Crystal,
    *,
    settings: XRDSettings = DEFAULT_SETTINGS,
    tolerances: MatcherTolerances = MatcherTolerances(),
    amd_k: int = 100,
    half_width: float = 1.0,
) -> pd.DataFrame:
    """One row per copy of ``final`` compared with copy 0 of ``truth``.

    Columns: ``copy``, ``valid``, ``match`` and the matcher tolerances, ``amd_distance``
    (Å) and ``amd_k``, ``similarity_<metric>`` for cosine, mse (−MSE), entropy and
    cross_correlation (against the ground-truth pattern, on ``settings``),
    ``error_<a|b|c|alpha|beta|gamma>`` (final − truth), ``max_length_error_rel`` and
    ``max_angle_error`` (degrees). Invalid lattices get ``match`` False and NaN metrics.
    """
    truth = truth.select(0).to(dtype=torch.float64, device="cpu")
    final = final.detach().to(dtype=torch.float64, device="cpu")
    valid = is_valid_lattice(final.lattice).numpy()
    n = final.batch_size
    reference = truth.to_structures()[0]
    rows = pd.DataFrame({"copy": np.arange(n), "valid": valid})
    match = np.zeros(n, dtype=bool)
    amd_dist = np.full(n, np.nan)
    sims = {name: np.full(n, np.nan) for name in ("cosine", "mse", "entropy", "cross_correlation")}
    index = np.flatnonzero(valid)
    if len(index):
        sub = final.select(torch.as_tensor(index))
        structures = sub.to_structures()
        match[index] = structures_match(structures, reference, tolerances)
        amd_dist[index] = amd_distances(structures, reference, amd_k)
        with torch.no_grad():
            target = simulate_pattern(truth, settings)[0]
            values = all_similarities(
                simulate_pattern(sub, settings), target, half_width=half_width, step=settings.two_theta_step
            )
        for name, value in values.items():
            sims[name][index] = value.numpy()
    rows["match"] = match
    rows["ltol"], rows["stol"], rows["angle_tol"] = tolerances.ltol, tolerances.stol, tolerances.angle_tol
    rows["primitive_cell"], rows["scale"] = tolerances.primitive_cell, tolerances.scale
    rows["attempt_supercell"] = tolerances.attempt_supercell
    rows["amd_distance"] = amd_dist
    rows["amd_k"] = amd_k
    for name, column in sims.items():
        rows[f"similarity_{name}"] = column
    errors = (final.lattice - truth.lattice).numpy()
    for i, name in enumerate(LATTICE_NAMES):
        rows[f"error_{name}"] = errors[:, i]
    rows["max_length_error_rel"] = np.abs(errors[:, :3] / truth.lattice[:, :3].numpy()).max(axis=1)
    rows["max_angle_error"] = np.abs(errors[:, 3:]).max(axis=1)
    return rows
