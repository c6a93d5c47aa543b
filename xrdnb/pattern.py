"""The powder pattern of SI §1.2, batched and differentiable.

lattice parameters → reciprocal metric → ``|g|`` of every reflection → ``d``, 2θ, ``s`` →
form factors → ``|F|²`` → Lorentz–polarization → pseudo-Voigt peaks with Caglioti widths
→ pattern on the 2θ grid → normalised to a maximum of 1.

>>> import xrdnb
>>> crystal = xrdnb.crystal_from_structure(xrdnb.load_structure("SrTe"), batch_size=2)
>>> pattern = xrdnb.simulate_pattern(crystal)
>>> tuple(pattern.shape), float(pattern.max())
((2, 9000), 1.0)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch

from .crystal import Crystal
from .lattice import is_valid_lattice
from .peak_shapes import caglioti_fwhm, render_dense, render_fast, window_half_width
from .reflections import MAX_REFLECTIONS, ReflectionSet, enumerate_reflections, g_max_for, g_squared
from .scattering import (
    atomic_form_factors,
    form_factor_table,
    intensity_from_phase_sums,
    lorentz_polarization,
    phase_sums,
)

__all__ = [
    "MAX_GRID_POINTS",
    "XRDSettings",
    "Reflections",
    "reflections_for",
    "compute_reflections",
    "render_pattern",
    "simulate_pattern",
]

Method = Literal["auto", "dense", "fast"]


@functools.lru_cache(maxsize=64)
def _fwhm_range(two_theta_min: float, two_theta_max: float, U: float, V: float, W: float) -> tuple[float, float]:
    tan = torch.tan(torch.deg2rad(torch.linspace(two_theta_min, two_theta_max, 2001, dtype=torch.float64)) / 2)
    h2 = U * tan * tan + V * tan + W
    return float(torch.sqrt(h2.min().clamp_min(0))), float(torch.sqrt(h2.max().clamp_min(0)))


MAX_GRID_POINTS = 10_000_000
"""Most 2θ points a pattern may have (the SI's grid has 9,000; 1e7 float64 points are 80 MB per copy)."""


@dataclass(frozen=True)
class XRDSettings:
    """Instrument and grid of the simulated pattern; the defaults are the SI's.

    Attributes
    ----------
    wavelength
        Å (Cu Kα, pymatgen's ``"CuKa"`` = 1.54184 Å).
    two_theta_min, two_theta_max, two_theta_step
        the grid ``x_i = min + i·step``, ``x_i < max``
        (degrees); the SI's 0–90° at 0.01° gives 9000 points.
    U, V, W
        Caglioti parameters (degrees²), ``H² = U tan²θ + V tanθ + W``.
    eta
        pseudo-Voigt mixing; weights the Gaussian (SI: 0.1, i.e. 90 % Lorentzian).
    hkl_max
        keep only ``|h|,|k|,|l| <= hkl_max`` (SI: 6 for the MSE loss); ``None`` keeps all.
    debye_waller
        isotropic ``B`` (Å²) per element symbol; amplitude × ``exp(−B s²)``.
    method
        ``"dense"`` (reference), ``"fast"`` (windowed + tail series) or ``"auto"``.
    max_reflections
        refuse to enumerate more reflections than this (a huge cell, a short wavelength;
        :func:`xrdnb.reflections.enumerate_reflections`); ``None`` for no limit.
    """

    wavelength: float = 1.54184
    two_theta_min: float = 0.0
    two_theta_max: float = 90.0
    two_theta_step: float = 0.01
    U: float = 0.1
    V: float = 0.01
    W: float = 0.1
    eta: float = 0.1
    hkl_max: int | None = None
    debye_waller: Mapping[str, float] = field(default_factory=dict)
    method: Method = "auto"
    max_reflections: int | None = MAX_REFLECTIONS

    def __post_init__(self):
        for name in ("wavelength", "two_theta_min", "two_theta_max", "two_theta_step", "U", "V", "W", "eta"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if not (self.wavelength > 0):
            raise ValueError(f"wavelength must be positive, got {self.wavelength}")
        if self.hkl_max is not None and self.hkl_max < 1:
            raise ValueError(f"hkl_max must be at least 1 (or None for no clip), got {self.hkl_max}")
        if not (0 <= self.two_theta_min < self.two_theta_max < 180):
            raise ValueError(
                f"need 0 <= two_theta_min < two_theta_max < 180, got {self.two_theta_min}, {self.two_theta_max}"
            )
        if not (self.two_theta_step > 0):
            raise ValueError(f"two_theta_step must be positive, got {self.two_theta_step}")
        points = (self.two_theta_max - self.two_theta_min) / self.two_theta_step
        if not points <= MAX_GRID_POINTS:
            raise ValueError(
                f"two_theta_step {self.two_theta_step:g} gives {points:.3g} grid points; at most {MAX_GRID_POINTS:,} "
                "(a pattern that would not fit in memory)"
            )
        if not (0.0 <= self.eta <= 1.0):
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        if self.method not in ("auto", "dense", "fast"):
            raise ValueError(f"method must be 'auto', 'dense' or 'fast', got {self.method!r}")
        if min(self.fwhm_range()) <= 0:
            raise ValueError(f"Caglioti U={self.U}, V={self.V}, W={self.W} give a non-positive width in the 2θ range")

    @property
    def n_points(self) -> int:
        """Number of grid points (9000 for the SI)."""
        return int(round((self.two_theta_max - self.two_theta_min) / self.two_theta_step))

    @property
    def g_max(self) -> float:
        """Radius of the reciprocal sphere (Å⁻¹) for ``two_theta_max``."""
        return g_max_for(self.wavelength, self.two_theta_max)

    def grid(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """2θ grid ``(P,)`` in degrees."""
        i = torch.arange(self.n_points, dtype=dtype, device=device)
        return self.two_theta_min + i * self.two_theta_step

    def fwhm_range(self) -> tuple[float, float]:
        """Smallest and largest Caglioti FWHM (degrees) on the 2θ range."""
        return _fwhm_range(self.two_theta_min, self.two_theta_max, self.U, self.V, self.W)

    def resolved_method(self) -> Method:
        """``"fast"`` unless its windows would cover a quarter of the grid or more."""
        if self.method != "auto":
            return self.method
        half = window_half_width(self.fwhm_range()[1], self.two_theta_step)
        return "fast" if 4 * (2 * half + 1) < self.n_points else "dense"


DEFAULT_SETTINGS = XRDSettings()


@dataclass(frozen=True)
class Reflections:
    """Per-reflection quantities for a batch, each ``(B, K)``.

    ``intensity`` is ``weight · |F|² · LP`` (zero where ``mask`` is False, i.e. outside the
    2θ range or for an invalid lattice); ``two_theta`` and ``fwhm`` are in degrees, ``d`` in Å.
    """

    hkl: torch.Tensor
    two_theta: torch.Tensor
    d: torch.Tensor
    intensity: torch.Tensor
    fwhm: torch.Tensor
    mask: torch.Tensor


def reflections_for(
    crystal: Crystal, settings: XRDSettings = DEFAULT_SETTINGS, *, margin: float = 0.0
) -> ReflectionSet:
    """Enumerate the reflections for every valid lattice of the batch (plus a relative ``margin``).

    Invalid lattices (non-finite, non-positive lengths, no real cell) are left out: their
    copies get a flat pattern, and the others are unaffected. With no valid lattice the
    set is empty.
    """
    valid = is_valid_lattice(crystal.lattice.detach())
    return enumerate_reflections(
        crystal.lattice.detach()[valid],
        settings.g_max,
        margin=margin,
        hkl_max=settings.hkl_max,
        max_reflections=settings.max_reflections,
    )


def compute_reflections(
    crystal: Crystal,
    settings: XRDSettings = DEFAULT_SETTINGS,
    reflections: ReflectionSet | None = None,
    *,
    sums: tuple[torch.Tensor, torch.Tensor] | None = None,
    keep: torch.Tensor | None = None,
) -> Reflections:
    """Positions, intensities and widths of all reflections of ``reflections`` for the batch.

    ``sums`` are the structure-factor :func:`~xrdnb.scattering.phase_sums` of the batch's
    coordinates and ``reflections.hkl`` (each ``(B, S, K)``), when they are known (a
    lattice-only optimisation computes them once); otherwise they are computed here.
    ``keep`` ``(B, K)`` (boolean) leaves reflections out per copy, as if they were not in
    the set (e.g. the MSE loss's Miller-index clip for some copies of a batch).
    """
    if reflections is None:
        reflections = reflections_for(crystal, settings)
    dtype, device = crystal.dtype, crystal.device
    hkl = reflections.hkl.to(device)
    g2 = g_squared(crystal.lattice, hkl)  # (B, K)
    g_lo = g_max_for(settings.wavelength, settings.two_theta_min)
    valid = is_valid_lattice(crystal.lattice)
    mask = (g2 > 0) & (g2 <= settings.g_max**2) & (g2 >= g_lo**2) & valid[:, None] & torch.isfinite(g2)
    if keep is not None:
        mask &= keep
    # masked entries get a harmless |g| so that no NaN reaches the gradients
    safe_g2 = torch.where(mask, g2, torch.full_like(g2, (0.5 * settings.g_max) ** 2))
    g = torch.sqrt(safe_g2)
    s2 = safe_g2 / 4.0
    theta = torch.asin(settings.wavelength * g / 2.0)
    two_theta = torch.rad2deg(2.0 * theta)
    z, coeffs, b_factor = form_factor_table(crystal.elements, settings.debye_waller, dtype=dtype, device=device)
    f = atomic_form_factors(s2, z, coeffs, b_factor)  # (B, S, K)
    if sums is None:
        sums = phase_sums(crystal.frac_coords, hkl, crystal.occupancy)
    f_squared = intensity_from_phase_sums(f, sums)
    weight = reflections.weight.to(device=device, dtype=dtype)
    intensity = torch.where(mask, weight * f_squared * lorentz_polarization(theta), torch.zeros_like(g2))
    fwhm = caglioti_fwhm(two_theta, settings.U, settings.V, settings.W)
    return Reflections(hkl, two_theta, 1.0 / g, intensity, fwhm, mask)


def render_pattern(
    refl: Reflections, settings: XRDSettings = DEFAULT_SETTINGS, method: Method | None = None
) -> torch.Tensor:
    """Pseudo-Voigt pattern ``(B, P)`` (not normalised) of computed reflections."""
    method = settings.resolved_method() if method in (None, "auto") else method
    if method == "dense":
        grid = settings.grid(refl.two_theta.dtype, refl.two_theta.device)
        return render_dense(refl.two_theta, refl.intensity, refl.fwhm, grid, settings.eta)
    if method == "fast":
        fwhm_min, fwhm_max = settings.fwhm_range()
        return render_fast(
            refl.two_theta,
            refl.intensity,
            refl.fwhm,
            settings.two_theta_min,
            settings.two_theta_step,
            settings.n_points,
            settings.eta,
            fwhm_max,
            fwhm_min=fwhm_min,
        )
    raise ValueError(f"unknown method {method!r}")


def simulate_pattern(
    crystal: Crystal,
    settings: XRDSettings = DEFAULT_SETTINGS,
    *,
    reflections: ReflectionSet | None = None,
    normalize: bool = True,
    method: Method | None = None,
    sums: tuple[torch.Tensor, torch.Tensor] | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """The powder pattern ``(B, P)`` of every copy in ``crystal``.

    A copy with no reflection in the 2θ range (a cell too small for the wavelength) or
    with an invalid lattice (non-finite, non-positive lengths, no real cell) gets an
    all-zero pattern; the other copies of the batch are computed as without it. Only
    float32 and float64 are accepted (TypeError otherwise).

    Parameters
    ----------
    crystal
        batch of ``B`` copies; gradients flow to ``lattice`` and ``frac_coords``.
    settings
        instrument and grid (defaults: SI §1.2).
    reflections
        a fixed reflection set (e.g. a superset enumerated once for an
        optimisation); enumerated for the batch's lattices when omitted.
    normalize
        divide each pattern by its maximum (a choice of this project, book/study-protocol.md: max = 1 before any loss).
    method
        override ``settings.method``.
    sums, keep
        precomputed structure-factor phase sums for ``reflections``, and reflections to
        leave out per copy (see :func:`compute_reflections`).
    """
    if crystal.dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"the simulator runs in float32 or float64, not {crystal.dtype} (half precision cannot resolve the pattern)"
        )
    refl = compute_reflections(crystal, settings, reflections, sums=sums, keep=keep)
    pattern = render_pattern(refl, settings, method)
    if normalize:
        peak = pattern.amax(dim=-1, keepdim=True)
        pattern = pattern / torch.where(peak > 0, peak, torch.ones_like(peak))
    return pattern
