r"""Miller indices, reciprocal distances and Bragg angles.

A :class:`ReflectionSet` is a fixed list of Miller indices ``(K, 3)`` enumerated once;
the simulator evaluates its geometry for any lattice and masks the reflections that
lie outside the requested 2θ range. Enumerating a *superset* (the union over a batch of
lattices, with a margin) keeps the set valid while lattices move under optimization;
:func:`covers` tells whether a set is still complete for new lattices.

Bragg's law with the crystallographic reciprocal vector ``g`` (``|g| = 1/d``):

.. math:: \lambda = 2 d \sin\theta \;\Rightarrow\; \sin\theta = \lambda |g| / 2,
          \qquad s = \sin\theta/\lambda = |g|/2 .

Friedel pairs ``h`` and ``-h`` have equal intensity when the form factors are real
(no anomalous scattering), so by default only one of each pair is kept and counted
twice (``weight`` = 2): exact, and half the work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .lattice import cell_volume, metric_tensor, reciprocal_metric_tensor

__all__ = [
    "MAX_REFLECTIONS",
    "ReflectionSet",
    "g_max_for",
    "expected_reflections",
    "enumerate_reflections",
    "g_squared",
    "two_theta_from_g",
    "covers",
]


@dataclass(frozen=True)
class ReflectionSet:
    """Miller indices ``hkl`` ``(K, 3)`` (int64) and their multiplicity ``weight`` ``(K,)``.

    ``reference`` ``(R, 6)`` and ``radius`` (Å⁻¹) record what was enumerated: every
    ``h`` with ``|g| <= radius`` for any of the ``R`` reference lattices.
    """

    hkl: torch.Tensor
    weight: torch.Tensor
    reference: torch.Tensor
    radius: float

    def __len__(self) -> int:
        return int(self.hkl.shape[0])

    def to(self, device=None, dtype=None) -> ReflectionSet:
        """The same set on ``device``, its weights and reference lattice in ``dtype`` (indices stay integer)."""
        return ReflectionSet(
            self.hkl.to(device=device),
            self.weight.to(device=device, dtype=dtype),
            self.reference.to(device=device, dtype=dtype),
            self.radius,
        )


def g_max_for(wavelength: float, two_theta_max: float) -> float:
    """Largest ``|g|`` (Å⁻¹) that diffracts below ``two_theta_max`` (degrees)."""
    return 2.0 * math.sin(math.radians(two_theta_max) / 2.0) / wavelength


MAX_REFLECTIONS = 100_000
"""Default limit of :func:`enumerate_reflections` (the near field of one copy then takes ~75 MB per temporary
in float32); pass ``max_reflections`` (or set
``XRDSettings.max_reflections``) to allow more."""


def expected_reflections(lattice: torch.Tensor, g_max: float, *, friedel: bool = True) -> float:
    """About how many reflections lie within ``|g| <= g_max`` for the largest cell of ``lattice`` ``(..., 6)``.

    The reciprocal lattice has one point per ``1/V`` Å⁻³, so the sphere holds about
    ``(4π/3) g_max³ V`` of them (half with Friedel pairs merged).
    """
    volume = float(cell_volume(torch.as_tensor(lattice, dtype=torch.float64).reshape(-1, 6)).max())
    return (4.0 * math.pi / 3.0) * g_max**3 * volume / (2.0 if friedel else 1.0)


def enumerate_reflections(
    lattice: torch.Tensor,
    g_max: float,
    *,
    margin: float = 0.0,
    hkl_max: int | None = None,
    friedel: bool = True,
    max_reflections: int | None = MAX_REFLECTIONS,
) -> ReflectionSet:
    """All Miller indices with ``|g| <= g_max·(1 + margin)`` for any lattice in the batch.

    Parameters
    ----------
    lattice
        ``(6,)`` or ``(B, 6)`` lattice parameters (Å, degrees).
    g_max
        radius of the reciprocal sphere (Å⁻¹), see :func:`g_max_for`.
    margin
        relative enlargement of the sphere, for lattices that will move.
    hkl_max
        keep only ``|h|, |k|, |l| <= hkl_max`` (the SI's clip for the MSE loss).
    friedel
        keep one of each Friedel pair with weight 2 (exact for real form factors).
    max_reflections
        refuse (ValueError, before anything is enumerated) a set expected to hold more
        reflections than this (:func:`expected_reflections`; a large cell or a short
        wavelength), or whose search box exceeds 50 times as many indices; ``None`` for no
        limit. Default :data:`MAX_REFLECTIONS`.

    Examples
    --------
    >>> refl = enumerate_reflections(torch.tensor([3.1653, 3.1653, 3.1653, 90., 90., 90.]), 0.9)
    >>> len(refl)  # half of the 92 lattice points with 0 < |g| <= 0.9 Å⁻¹ (Friedel pairs merged)
    46
    """
    ref = torch.as_tensor(lattice).detach().to("cpu", torch.float64).reshape(-1, 6)
    radius = float(g_max) * (1.0 + margin)
    if not bool(torch.isfinite(ref).all()) or bool((ref[:, :3] <= 0).any()):
        raise ValueError("enumerate_reflections needs finite lattices with positive lengths (leave invalid copies out)")
    if len(ref) == 0:  # no lattice to enumerate for: an empty set
        empty = torch.zeros(0, 3, dtype=torch.int64)
        return ReflectionSet(hkl=empty, weight=torch.zeros(0, dtype=torch.float64), reference=ref, radius=radius)
    # |h| = |g . a| <= |g| |a|: the box bounded by radius * length holds the sphere.
    bounds = np.floor(radius * ref[:, :3].max(dim=0).values.numpy() + 1e-9).astype(int)
    if hkl_max is not None:
        bounds = np.minimum(bounds, int(hkl_max))
    if max_reflections is not None:
        expected = expected_reflections(ref, radius, friedel=friedel) if hkl_max is None else 0.0
        box = float(np.prod(2.0 * bounds + 1))
        if expected > max_reflections or box > 50.0 * max_reflections:
            volume = float(cell_volume(ref).max())
            raise ValueError(
                f"about {max(expected, box / 8):,.0f} reflections within |g| <= {radius:.3g} Å⁻¹ for a cell of "
                f"{volume:,.0f} Å³ (limit {max_reflections:,}): a larger cell or a shorter wavelength than the "
                f"simulator is sized for; pass max_reflections= (XRDSettings(max_reflections=...)) to allow it"
            )
    axes = [np.arange(-n, n + 1) for n in bounds]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    if friedel:
        h, k, ell = hkl.T
        positive = (h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (ell > 0))
        hkl = hkl[positive]
    gstar = reciprocal_metric_tensor(ref).numpy()  # (R, 3, 3)
    g2 = np.einsum("ki,rij,kj->rk", hkl, gstar, hkl)
    keep = (g2 <= radius**2 * (1 + 1e-12)).any(axis=0)
    hkl = hkl[keep]
    # order by |g| of the first reference lattice, then by descending h, k, l (pymatgen's order)
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], np.round(g2[0, keep], 12)))
    hkl = hkl[order]
    weight = np.full(len(hkl), 2.0 if friedel else 1.0)
    return ReflectionSet(
        hkl=torch.as_tensor(hkl, dtype=torch.int64),
        weight=torch.as_tensor(weight, dtype=torch.float64),
        reference=ref,
        radius=radius,
    )


def g_squared(lattice: torch.Tensor, hkl: torch.Tensor) -> torch.Tensor:
    """``|g|² = hᵀ G* h = 1/d²`` (Å⁻²) for lattices ``(B, 6)`` and indices ``(K, 3)``: shape ``(B, K)``.

    Written out term by term (elementwise, not as a matrix product), so that each entry is
    computed the same way whatever the batch and the other indices: a copy's pattern does
    not depend on what it is batched with.
    """
    gstar = reciprocal_metric_tensor(lattice)  # (B, 3, 3)
    h = hkl.to(dtype=lattice.dtype, device=lattice.device)
    h0, h1, h2 = h[:, 0], h[:, 1], h[:, 2]  # (K,)
    g = [[gstar[:, i, j].unsqueeze(-1) for j in range(3)] for i in range(3)]  # (B, 1)
    diagonal = g[0][0] * (h0 * h0) + g[1][1] * (h1 * h1) + g[2][2] * (h2 * h2)
    cross = g[0][1] * (h0 * h1) + g[0][2] * (h0 * h2) + g[1][2] * (h1 * h2)
    return diagonal + 2.0 * cross


def two_theta_from_g(g: torch.Tensor, wavelength: float) -> torch.Tensor:
    """Bragg angle 2θ (degrees) from ``|g|`` (Å⁻¹); requires ``λ|g|/2 <= 1``."""
    return torch.rad2deg(2.0 * torch.asin(wavelength * g / 2.0))


def covers(reflections: ReflectionSet, lattice: torch.Tensor, g_max: float) -> torch.Tensor:
    """Whether ``reflections`` hold every ``h`` with ``|g| <= g_max`` for each lattice ``(B, 6)``.

    For a reference lattice with reciprocal metric ``G*_r`` and a new lattice with metric
    ``G``, ``|g_r| <= |g| · sqrt(λ_max(G G*_r))``, so the set is complete when
    ``g_max · sqrt(λ_max) <= radius`` for at least one reference. Returns ``(B,)`` booleans.
    """
    lat = lattice.detach().to("cpu", torch.float64).reshape(-1, 6)
    finite = torch.isfinite(lat).all(dim=-1)
    g_new = metric_tensor(torch.where(finite[:, None], lat, torch.ones_like(lat)))  # (B, 3, 3)
    # λ_max(G G*_r) = λ_max(Cᵀ G C) with G*_r = C Cᵀ: a symmetric problem, solved robustly
    chol = torch.linalg.cholesky(reciprocal_metric_tensor(reflections.reference))  # (R, 3, 3)
    sym = torch.einsum("rji,bjk,rkl->bril", chol, g_new, chol)
    lam = torch.linalg.eigvalsh(sym).amax(dim=-1)  # (B, R)
    bounds = g_max * torch.sqrt(lam.clamp_min(0))
    return (bounds <= reflections.radius * (1 + 1e-12)).any(dim=-1) & finite
