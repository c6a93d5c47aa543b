"""Peak lists: reflections merged by Bragg angle, as pymatgen's ``XRDCalculator`` reports them.

Reflections whose 2θ round to the same multiple of ``two_theta_tol`` (1e-5°, pymatgen's
``TWO_THETA_TOL``) are one peak; the peak's intensity is the sum, its multiplicity the
number of reflections (Friedel mates included), and its ``hkl`` and 2θ those of the first
reflection in pymatgen's order (smallest ``|g|``, then largest ``h``, ``k``, ``l``). Peaks weaker than
``intensity_tol`` of the strongest (1e-3 on a scale of 100) are dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .crystal import Crystal
from .pattern import DEFAULT_SETTINGS, XRDSettings, compute_reflections

__all__ = ["PEAK_COLUMNS", "peak_table"]

PEAK_COLUMNS = ["h", "k", "l", "two_theta", "d", "intensity", "intensity_scaled", "multiplicity"]


def peak_table(
    crystal: Crystal,
    settings: XRDSettings = DEFAULT_SETTINGS,
    *,
    index: int = 0,
    two_theta_tol: float = 1e-5,
    intensity_tol: float = 1e-3,
) -> pd.DataFrame:
    """Merged peak list of copy ``index`` of ``crystal``, sorted by 2θ.

    Columns: ``h, k, l`` (representative reflection), ``two_theta`` (degrees), ``d`` (Å),
    ``intensity`` (``Σ |F|²·LP``, electrons²), ``intensity_scaled`` (strongest = 100),
    ``multiplicity``. Computed in the crystal's dtype (use float64 for comparisons).
    """
    with torch.no_grad():
        refl = compute_reflections(crystal.select(index), settings)
    mask = refl.mask[0].cpu().numpy()
    hkl = refl.hkl.cpu().numpy()[mask]
    two_theta = refl.two_theta[0].cpu().numpy()[mask]
    d = refl.d[0].cpu().numpy()[mask]
    intensity = refl.intensity[0].cpu().numpy()[mask]
    if len(hkl) == 0:
        return pd.DataFrame(columns=PEAK_COLUMNS)
    key = np.round(two_theta / two_theta_tol).astype(np.int64)
    # pymatgen's order within a peak: by |g| (the peak keeps the smallest 2θ), then descending h, k, l
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], two_theta, key))
    key, hkl, two_theta, d, intensity = key[order], hkl[order], two_theta[order], d[order], intensity[order]
    first = np.r_[True, key[1:] != key[:-1]]
    group = np.cumsum(first) - 1
    total = np.bincount(group, weights=intensity)
    count = 2 * np.bincount(group)  # each kept reflection stands for a Friedel pair
    rep = np.flatnonzero(first)
    table = pd.DataFrame(
        {
            "h": hkl[rep, 0],
            "k": hkl[rep, 1],
            "l": hkl[rep, 2],
            "two_theta": two_theta[rep],
            "d": d[rep],
            "intensity": total,
            "intensity_scaled": 100.0 * total / total.max(),
            "multiplicity": count,
        }
    )
    return table[table.intensity_scaled > intensity_tol].reset_index(drop=True)
