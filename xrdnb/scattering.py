r"""Atomic form factors, structure factors and the Lorentz–polarization factor.

Form factors use pymatgen's parametrisation and its own coefficient file
(``pymatgen/analysis/diffraction/atomic_scattering_params.json``, loaded from the
installed package, never retyped):

.. math:: f(s) = Z - 41.78214\, s^2 \sum_i a_i \exp(-b_i s^2), \qquad s = \sin\theta/\lambda = |g|/2 .

An optional isotropic Debye–Waller factor ``B`` (Å²) per element multiplies the
amplitude by :math:`\exp(-B s^2)`. The structure factor of reflection ``h`` sums over
sites ``n`` and the elements ``e`` that occupy them with occupancy ``o_{ne}``:

.. math:: F(\mathbf h) = \sum_n \Big(\sum_e o_{ne} f_e(s)\Big) \exp(2\pi i\, \mathbf h\cdot\mathbf x_n),
          \qquad I = |F|^2 .

The Lorentz–polarization factor for an unpolarised beam without monochromator is

.. math:: LP(\theta) = \frac{1 + \cos^2 2\theta}{\sin^2\theta \cos\theta} .
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources

import torch

__all__ = [
    "FORM_FACTOR_CONSTANT",
    "scattering_coefficients",
    "has_scattering_factors",
    "form_factor_table",
    "atomic_form_factors",
    "phase_sums",
    "structure_factor_intensity",
    "intensity_from_phase_sums",
    "lorentz_polarization",
]

FORM_FACTOR_CONSTANT = 41.78214
"""Constant of pymatgen's form-factor parametrisation (Å², see module docstring)."""


@lru_cache(maxsize=1)
def _coefficients() -> dict[str, list[list[float]]]:
    path = resources.files("pymatgen.analysis.diffraction").joinpath("atomic_scattering_params.json")
    return json.loads(path.read_text())


def has_scattering_factors(symbol: str) -> bool:
    """Whether pymatgen's table has form-factor coefficients for ``symbol``."""
    return symbol in _coefficients()


def scattering_coefficients(symbol: str) -> list[list[float]]:
    """The ``[a_i, b_i]`` pairs for element ``symbol`` from pymatgen's table.

    Raises ``KeyError`` with the element's name when it has none.
    """
    try:
        return _coefficients()[symbol]
    except KeyError:
        raise KeyError(f"no X-ray scattering factors for element {symbol!r}") from None


def form_factor_table(
    elements: Sequence[str],
    debye_waller: Mapping[str, float] | None = None,
    *,
    dtype=torch.float64,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensors for :func:`atomic_form_factors`: ``Z (S,)``, ``coeffs (S, M, 2)``, ``B (S,)``."""
    from pymatgen.core.periodic_table import Element

    coeffs = [scattering_coefficients(e) for e in elements]
    n_terms = max(len(c) for c in coeffs)
    padded = [c + [[0.0, 0.0]] * (n_terms - len(c)) for c in coeffs]
    z = [Element(e).Z for e in elements]
    dw = [float((debye_waller or {}).get(e, 0.0)) for e in elements]
    kw = dict(dtype=dtype, device=device)
    return torch.tensor(z, **kw), torch.tensor(padded, **kw), torch.tensor(dw, **kw)


def atomic_form_factors(
    s2: torch.Tensor, z: torch.Tensor, coeffs: torch.Tensor, b_factor: torch.Tensor
) -> torch.Tensor:
    """Form factors ``f_e(s)`` (electrons) including the Debye–Waller damping.

    Parameters
    ----------
    s2
        ``(..., K)`` values of ``s² = (sinθ/λ)²`` (Å⁻²).
    z, coeffs, b_factor
        ``(S,)``, ``(S, M, 2)``, ``(S,)`` from :func:`form_factor_table`.

    Returns
    -------
    ``(..., S, K)`` tensor.
    """
    s2e = s2.unsqueeze(-2).unsqueeze(-1)  # (..., 1, K, 1)
    a = coeffs[:, None, :, 0]  # (S, 1, M)
    b = coeffs[:, None, :, 1]
    gauss = (a * torch.exp(-b * s2e)).sum(-1)  # (..., S, K)
    f = z[:, None] - FORM_FACTOR_CONSTANT * s2.unsqueeze(-2) * gauss
    return f * torch.exp(-b_factor[:, None] * s2.unsqueeze(-2))


def phase_sums(
    frac_coords: torch.Tensor, hkl: torch.Tensor, occupancy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Occupancy-weighted phase sums per element, ``Σ_n o_ns cos(2π h·x_n)`` and ``Σ_n o_ns sin(2π h·x_n)``.

    They depend on the coordinates and the Miller indices only, not on the lattice, so a
    lattice-only optimisation computes them once (:mod:`xrdnb.optimize`).

    Parameters
    ----------
    frac_coords
        ``(B, N, 3)`` fractional coordinates of the sites.
    hkl
        ``(K, 3)`` Miller indices.
    occupancy
        ``(N, S)`` occupancy of element ``e`` on site ``n`` (0 where absent).

    Returns
    -------
    ``(cos_sum, sin_sum)``, each ``(B, S, K)``.
    """
    h = hkl.to(dtype=frac_coords.dtype, device=frac_coords.device).T.unsqueeze(0)  # (1, 3, K)
    x = frac_coords.unsqueeze(-1)  # (B, N, 3, 1)
    # written out elementwise (no matrix products), so that every entry is computed the
    # same way whatever the batch and the reflection set
    phase = (2.0 * math.pi) * (x[:, :, 0] * h[:, 0] + x[:, :, 1] * h[:, 1] + x[:, :, 2] * h[:, 2])  # (B, N, K)
    occ = occupancy.to(dtype=frac_coords.dtype).T.unsqueeze(-1)  # (S, N, 1)
    cos, sin = torch.cos(phase), torch.sin(phase)
    return torch.stack([(o * cos).sum(1) for o in occ], dim=1), torch.stack([(o * sin).sum(1) for o in occ], dim=1)


def structure_factor_intensity(
    frac_coords: torch.Tensor,
    hkl: torch.Tensor,
    occupancy: torch.Tensor,
    form_factors: torch.Tensor,
) -> torch.Tensor:
    """``|F(h)|²`` for a batch: shape ``(B, K)`` (electrons²).

    ``frac_coords`` ``(B, N, 3)``, ``hkl`` ``(K, 3)`` and ``occupancy`` ``(N, S)`` as in
    :func:`phase_sums`; ``form_factors`` ``(B, S, K)`` from :func:`atomic_form_factors`.
    """
    return intensity_from_phase_sums(form_factors, phase_sums(frac_coords, hkl, occupancy))


def intensity_from_phase_sums(form_factors: torch.Tensor, sums: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``|F(h)|² = (Σ_e f_e C_e)² + (Σ_e f_e S_e)²``, ``(B, K)``.

    From ``form_factors`` ``(B, S, K)`` and the ``(cos, sin)`` sums of :func:`phase_sums`.
    """
    cos_sum, sin_sum = sums
    real = (form_factors * cos_sum).sum(-2)
    imag = (form_factors * sin_sum).sum(-2)
    return real * real + imag * imag


def lorentz_polarization(theta: torch.Tensor) -> torch.Tensor:
    """``(1 + cos² 2θ) / (sin² θ · cos θ)`` for Bragg angles θ in radians."""
    return (1.0 + torch.cos(2.0 * theta) ** 2) / (torch.sin(theta) ** 2 * torch.cos(theta))
