r"""Lattice geometry from the six lattice parameters.

Every function takes lattice parameters ``(..., 6)`` = ``(a, b, c, alpha, beta, gamma)``
with lengths in Å and angles in degrees, and works on any leading batch shape, device
and floating dtype. Everything is differentiable.

The real-space metric tensor is

.. math:: G = \begin{pmatrix} a^2 & ab\cos\gamma & ac\cos\beta \\
                               ab\cos\gamma & b^2 & bc\cos\alpha \\
                               ac\cos\beta & bc\cos\alpha & c^2 \end{pmatrix},

the cell volume is :math:`V = \sqrt{\det G}`, and the crystallographic reciprocal
metric (no factor 2π) is :math:`G^* = G^{-1}`, so that a reciprocal-lattice vector
:math:`\mathbf g = h\mathbf a^* + k\mathbf b^* + l\mathbf c^*` has
:math:`|\mathbf g|^2 = \mathbf h^\top G^* \mathbf h = 1/d_{hkl}^2`.
"""

from __future__ import annotations

import torch

__all__ = [
    "metric_tensor",
    "volume_squared",
    "cell_volume",
    "reciprocal_metric_tensor",
    "lattice_matrix",
    "lattice_parameters_from_matrix",
    "is_valid_lattice",
]


def _split(lattice: torch.Tensor):
    if lattice.shape[-1] != 6:
        raise ValueError(f"lattice parameters must have last dimension 6, got shape {tuple(lattice.shape)}")
    a, b, c = lattice[..., 0], lattice[..., 1], lattice[..., 2]
    angles = torch.deg2rad(lattice[..., 3:6])
    cos = torch.cos(angles)
    return a, b, c, cos[..., 0], cos[..., 1], cos[..., 2]


def metric_tensor(lattice: torch.Tensor) -> torch.Tensor:
    """Real-space metric tensor ``G`` (Å²), shape ``(..., 3, 3)``."""
    a, b, c, ca, cb, cg = _split(lattice)
    row0 = torch.stack([a * a, a * b * cg, a * c * cb], dim=-1)
    row1 = torch.stack([a * b * cg, b * b, b * c * ca], dim=-1)
    row2 = torch.stack([a * c * cb, b * c * ca, c * c], dim=-1)
    return torch.stack([row0, row1, row2], dim=-2)


def volume_squared(lattice: torch.Tensor) -> torch.Tensor:
    """``det G = V²`` (Å⁶), shape ``(...)``; non-positive for angle sets with no real cell."""
    a, b, c, ca, cb, cg = _split(lattice)
    return (a * b * c) ** 2 * (1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg)


def cell_volume(lattice: torch.Tensor) -> torch.Tensor:
    """Cell volume ``V`` (Å³), shape ``(...)``."""
    return torch.sqrt(volume_squared(lattice))


def reciprocal_metric_tensor(lattice: torch.Tensor) -> torch.Tensor:
    """Crystallographic reciprocal metric ``G* = G⁻¹`` (Å⁻²), shape ``(..., 3, 3)``.

    Written as the adjugate over the determinant, which is exact, cheap and smooth.
    """
    g = metric_tensor(lattice)
    g00, g01, g02 = g[..., 0, 0], g[..., 0, 1], g[..., 0, 2]
    g11, g12, g22 = g[..., 1, 1], g[..., 1, 2], g[..., 2, 2]
    c00 = g11 * g22 - g12 * g12
    c01 = g02 * g12 - g01 * g22
    c02 = g01 * g12 - g02 * g11
    c11 = g00 * g22 - g02 * g02
    c12 = g01 * g02 - g00 * g12
    c22 = g00 * g11 - g01 * g01
    det = g00 * c00 + g01 * c01 + g02 * c02
    adj = torch.stack(
        [
            torch.stack([c00, c01, c02], dim=-1),
            torch.stack([c01, c11, c12], dim=-1),
            torch.stack([c02, c12, c22], dim=-1),
        ],
        dim=-2,
    )
    return adj / det[..., None, None]


def lattice_matrix(lattice: torch.Tensor) -> torch.Tensor:
    """Row-vector cell matrix ``(..., 3, 3)`` (Å) in pymatgen's ``Lattice.from_parameters`` setting.

    Rows are the lattice vectors a, b, c; ``c`` lies along z and ``a`` in the xz plane,
    so Cartesian coordinates are ``frac @ lattice_matrix``.
    """
    a, b, c = lattice[..., 0], lattice[..., 1], lattice[..., 2]
    alpha, beta, gamma = (torch.deg2rad(lattice[..., i]) for i in (3, 4, 5))
    val = (torch.cos(alpha) * torch.cos(beta) - torch.cos(gamma)) / (torch.sin(alpha) * torch.sin(beta))
    val = val.clamp(-1.0, 1.0)
    gamma_star = torch.arccos(val)
    zero = torch.zeros_like(a)
    va = torch.stack([a * torch.sin(beta), zero, a * torch.cos(beta)], dim=-1)
    vb = torch.stack(
        [
            -b * torch.sin(alpha) * torch.cos(gamma_star),
            b * torch.sin(alpha) * torch.sin(gamma_star),
            b * torch.cos(alpha),
        ],
        dim=-1,
    )
    vc = torch.stack([zero, zero, c], dim=-1)
    return torch.stack([va, vb, vc], dim=-2)


def lattice_parameters_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """Lattice parameters ``(..., 6)`` of row-vector cell matrices ``(..., 3, 3)``."""
    lengths = torch.linalg.vector_norm(matrix, dim=-1)

    def angle(i, j):
        cos = (matrix[..., i, :] * matrix[..., j, :]).sum(-1) / (lengths[..., i] * lengths[..., j])
        return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))

    return torch.cat([lengths, torch.stack([angle(1, 2), angle(0, 2), angle(0, 1)], dim=-1)], dim=-1)


def is_valid_lattice(lattice: torch.Tensor, min_volume_fraction: float = 1e-6) -> torch.Tensor:
    """Boolean mask ``(...)``: finite parameters, positive lengths, angles in (0°, 180°) and a real cell.

    A cell is real when ``det G > 0``; ``min_volume_fraction`` rejects cells whose
    volume is below that fraction of ``a·b·c`` (numerically flat cells).
    """
    finite = torch.isfinite(lattice).all(dim=-1)
    lengths_ok = (lattice[..., :3] > 0).all(dim=-1)
    angles_ok = ((lattice[..., 3:] > 0) & (lattice[..., 3:] < 180)).all(dim=-1)
    safe = torch.where(finite[..., None], lattice, torch.ones_like(lattice))
    abc = safe[..., 0] * safe[..., 1] * safe[..., 2]
    vol_ok = volume_squared(safe) > (min_volume_fraction * abc) ** 2
    return finite & lengths_ok & angles_ok & vol_ok
