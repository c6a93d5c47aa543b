"""Sensitivity checks of the correlation tables: the end structures of a sweep and AMD distances for several k.

The units check (coordinate noise in fractional units instead of Å) is an ordinary sweep of
cells with ``units="fractional"`` (:class:`xrdnb.sweep.Cell`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = ["final_structures", "amd_distances_for_k"]


def final_structures(rows: pd.DataFrame, results: str | os.PathLike) -> list:
    """The structures where gradient descent ended, one pymatgen ``Structure`` per row.

    Lattice runs are rebuilt from ``final_a`` … ``final_gamma`` and the ground-truth
    coordinates. Coordinate runs are rebuilt from the ground-truth lattice and the last
    recorded fractional coordinates (``params[-1]`` of the cell's trajectory file
    ``<results>/cells/<cell_id>.npz``; the last record is the final state). The fixed part
    (coordinates or lattice) is rounded to the row's ``dtype``, as in the optimisation, so
    the structures are exactly those that were evaluated.

    Parameters
    ----------
    rows
        sweep rows with ``cell_id``, ``structure``, ``noise_type``, ``copy``, the
        ``final_*`` lattice columns and (optionally; default float64) ``dtype``.
    results
        the sweep's results folder.

    Returns
    -------
    list
        pymatgen structures in the order of ``rows``.
    """
    import torch

    from .crystal import crystal_from_structure
    from .evaluate import LATTICE_NAMES
    from .structures import load_structure

    truths: dict[tuple[str, str], object] = {}
    trajectories: dict[str, np.ndarray] = {}
    out = []
    for rec in rows.itertuples(index=False):
        dtype = str(getattr(rec, "dtype", "float64"))
        if (rec.structure, dtype) not in truths:
            # the optimisation ran in ``dtype``: round the fixed part of the crystal the same way
            truth = crystal_from_structure(load_structure(rec.structure), dtype=getattr(torch, dtype))
            truths[(rec.structure, dtype)] = truth.to(dtype=torch.float64)
        truth = truths[(rec.structure, dtype)]
        if rec.noise_type == "lattice":
            lattice = torch.tensor([[getattr(rec, f"final_{n}") for n in LATTICE_NAMES]], dtype=torch.float64)
            crystal = truth.with_lattice(lattice)
        else:
            if rec.cell_id not in trajectories:
                with np.load(Path(results) / "cells" / f"{rec.cell_id}.npz") as data:
                    trajectories[rec.cell_id] = data["params"][-1]
            coords = torch.as_tensor(trajectories[rec.cell_id][int(rec.copy)], dtype=torch.float64).unsqueeze(0)
            crystal = truth.with_frac_coords(coords)
        out.append(crystal.to_structures()[0])
    return out


def amd_distances_for_k(structures: Sequence, references: Sequence, ks: Iterable[int] = (50, 100, 200)) -> pd.DataFrame:
    """L∞ AMD distances (Å) of each structure to its reference for several k at once.

    The AMD vector with k entries is the first k entries of the vector with more, because
    the i-th entry averages the i-th nearest-neighbour distances. It is therefore computed
    once, with the largest k. Invalid structures (e.g. degenerate cells) get NaN.

    Parameters
    ----------
    structures
        pymatgen structures.
    references
        the ground truth of each structure (same length; repeated objects are computed once).
    ks
        the k values.

    Returns
    -------
    pandas.DataFrame
        one column ``amd_k<k>`` per k, one row per structure.
    """
    from .evaluate import amd_vector

    ks = sorted({int(k) for k in ks})
    k_max = ks[-1]
    cache: dict[int, np.ndarray] = {}
    values = np.full((len(structures), len(ks)), np.nan)
    for i, (structure, reference) in enumerate(zip(structures, references)):
        if id(reference) not in cache:
            cache[id(reference)] = amd_vector(reference, k_max)
        ref = cache[id(reference)]
        try:
            vec = amd_vector(structure, k_max)
        except Exception:
            continue
        for j, k in enumerate(ks):
            values[i, j] = np.abs(vec[:k] - ref[:k]).max()
    return pd.DataFrame(values, columns=[f"amd_k{k}" for k in ks])
