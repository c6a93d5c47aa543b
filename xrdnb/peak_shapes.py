r"""Peak shapes: Caglioti widths and pseudo-Voigt peaks rendered on a 2θ grid.

Following SI §1.2 literally, every reflection at :math:`2\theta_0` contributes
:math:`I\,pV(x)` with unit-height components and the same FWHM ``H`` for both:

.. math::
    pV(x) = \eta\, G(x) + (1-\eta)\, L(x),

    G(x) = \exp\!\Big[-\frac{4\ln 2\,(x-2\theta_0)^2}{H^2}\Big], \quad
    L(x) = \frac{1}{1 + 4(x-2\theta_0)^2/H^2},

    H^2(2\theta_0) = U\tan^2\theta_0 + V\tan\theta_0 + W \quad(\text{degrees}^2).

With the SI's ``η = 0.1`` the profile is 90 % Lorentzian.

Two renderers produce the same pattern ``(B, P)``:

* :func:`render_dense` — the reference: every peak on every grid point, ``O(B·K·P)``.
* :func:`render_fast` — exact pseudo-Voigt inside a window of ``±window·H_max`` around each
  peak (multiplied by a smooth taper φ), plus the Lorentzian tails outside it, which carry
  a few per cent of the area and cannot be dropped. Far from its centre a Lorentzian is a
  convergent series whose terms factorise into (peak weight) × (kernel of distance). With
  half-widths ``h = H/2`` and a reference ``h_0`` in the middle of the grid's widths,

  .. math:: L(d) = \frac{h^2}{d^2 + h^2}
            = \sum_{n\ge 0} h^2 (h_0^2 - h^2)^n \, \frac{1}{(d^2 + h_0^2)^{n+1}},

  which converges geometrically with ratio ``|h0² − h²| / (d² + h0²)`` (about 0.04 for the
  SI's Caglioti widths beyond the window: five terms for 1e-7). So the tails ``(1-φ)·L``
  are ``n_terms`` convolutions of weighted stick patterns with fixed kernels, done with
  FFTs whose kernel spectra are cached per grid. Sticks are spread onto the grid with cubic
  Lagrange weights (differentiable in the peak position); the kernels are smooth where they
  are non-zero,
  so this is accurate. Cost ``O(B·K·window) + O(B·P log P)``.
"""

from __future__ import annotations

import functools
import math

import torch

from .fused import fused

__all__ = [
    "caglioti_fwhm",
    "gaussian",
    "lorentzian",
    "pseudo_voigt",
    "window_half_width",
    "tail_terms",
    "render_dense",
    "render_fast",
]

FOUR_LN2 = 4.0 * math.log(2.0)

EAGER_ROWS = 1024
"""Peaks whose windows are evaluated at a time when the window functions run eagerly
(:mod:`xrdnb.fused`): about 1 MB of temporaries for the SI's windows, which stay in cache."""


def caglioti_fwhm(two_theta: torch.Tensor, U: float, V: float, W: float) -> torch.Tensor:
    """FWHM ``H`` (degrees) at 2θ (degrees): ``H² = U tan²θ + V tanθ + W``."""
    tan = torch.tan(torch.deg2rad(two_theta) / 2.0)
    return torch.sqrt(U * tan * tan + V * tan + W)


def gaussian(d: torch.Tensor, fwhm: torch.Tensor) -> torch.Tensor:
    """Unit-height Gaussian of full width at half maximum ``fwhm`` at offset ``d``."""
    return torch.exp(-FOUR_LN2 * (d / fwhm) ** 2)


def lorentzian(d: torch.Tensor, fwhm: torch.Tensor) -> torch.Tensor:
    """Unit-height Lorentzian of full width at half maximum ``fwhm`` at offset ``d``."""
    return 1.0 / (1.0 + 4.0 * (d / fwhm) ** 2)


def pseudo_voigt(d: torch.Tensor, fwhm: torch.Tensor, eta: float) -> torch.Tensor:
    """``η G(d) + (1 − η) L(d)``; ``η`` weights the Gaussian (SI §1.2)."""
    u = (d / fwhm) ** 2
    return eta * torch.exp(-FOUR_LN2 * u) + (1.0 - eta) / (1.0 + 4.0 * u)


def render_dense(
    two_theta: torch.Tensor,
    intensity: torch.Tensor,
    fwhm: torch.Tensor,
    grid: torch.Tensor,
    eta: float,
) -> torch.Tensor:
    """Reference renderer: ``Σ_k I_k pV(x − 2θ_k)`` on every grid point.

    Parameters
    ----------
    two_theta, intensity, fwhm
        ``(B, K)`` peak centres (degrees), intensities, FWHM (degrees).
    grid
        ``(P,)`` 2θ values (degrees).

    Returns
    -------
    ``(B, P)`` pattern.
    """
    d = grid - two_theta.unsqueeze(-1)  # (B, K, P)
    profile = pseudo_voigt(d, fwhm.unsqueeze(-1), eta)
    return torch.einsum("bk,bkp->bp", intensity, profile)


def window_half_width(fwhm_max: float, step: float, window: float = 2.0) -> int:
    """Half width ``M`` (grid points) of the exact window of :func:`render_fast`.

    One point more than ``window·fwhm_max/step``: the window is centred on the grid point
    nearest the peak, up to half a step away, and must reach ``window·fwhm_max`` on both sides.
    """
    return int(math.ceil(window * fwhm_max / step)) + 1


def tail_terms(
    window: float,
    taper: float,
    tol: float = 1e-7,
    *,
    h_sq_range: tuple[float, float] | None = None,
    fwhm_max: float | None = None,
) -> int:
    """Terms of the Lorentzian tail series for relative error ``tol`` beyond ``r = (window − taper)·H_max``.

    About ``h0² = (h_lo² + h_hi²)/2`` the series converges with ratio
    ``ρ = (h_hi² − h_lo²)/2 / (r² + h0²)`` for half-widths ``h = H/2`` with ``h²`` in
    ``h_sq_range = (h_lo², h_hi²)`` (degrees²). Without it the worst case ``h ∈ [0, H_max/2]``
    is assumed.
    """
    if h_sq_range is None or fwhm_max is None:
        ratio = 1.0 / (8.0 * (window - taper) ** 2)  # h_lo = 0, h0² ≤ h_hi²/2 at r = (window − taper)·2·h_hi
    else:
        h_lo, h_hi = h_sq_range
        r_sq = ((window - taper) * fwhm_max) ** 2
        ratio = 0.5 * (h_hi - h_lo) / (r_sq + 0.5 * (h_lo + h_hi))
    if ratio <= tol:
        return 1
    return max(1, int(math.ceil(math.log(tol) / math.log(ratio))))


def _taper(d_abs: torch.Tensor, r_inner: float, r_outer: float) -> torch.Tensor:
    """φ: 1 inside ``r_inner``, 0 outside ``r_outer``, ``1 − (10t³ − 15t⁴ + 6t⁵)`` in between.

    The quintic "smootherstep" is C² at both ends, so the far-field kernels have no kink
    for the stick interpolation to trip on.
    """
    t = ((d_abs - r_inner) / (r_outer - r_inner)).clamp(0.0, 1.0)
    return 1.0 - t * t * t * (10.0 + t * (6.0 * t - 15.0))


def _window_example(dtype, device):
    """Example inputs of the window functions (for :func:`xrdnb.fused.fused`'s ahead-of-time build)."""
    n, half, step = 4, 3, 0.01
    u = torch.linspace(10.2, 40.7, n, dtype=dtype, device=device)
    scalar = functools.partial(torch.tensor, dtype=dtype, device=device)
    return (
        u,
        torch.ones(n, dtype=dtype, device=device),
        torch.full((n,), 0.03, dtype=dtype, device=device),
        torch.round(u).to(torch.int64),
        torch.arange(-half, half + 1, dtype=dtype, device=device) * step,
        scalar(step),
        scalar(0.1),
        scalar(0.02),
        scalar(0.04),
    )


_WINDOW_DIMS = (("n",), ("n",), ("n",), ("n",), ("w",), (), (), (), ())
"""Dynamic dimensions of the window functions' inputs: ``n`` peaks, ``w = 2M+1`` window points."""


@fused(dims=_WINDOW_DIMS, example=_window_example, eager_rows=EAGER_ROWS)
def _window_values(u, intensity, fwhm, centre, offsets, step, eta, r_inner, r_outer):
    """``I [η G + (1−η) L φ]`` on the windows, ``(n, 2M+1)`` (one fused pass).

    ``u`` ``(n,)`` are the peaks' fractional grid indices, ``centre`` ``(n,)`` the grid
    points their windows are centred on, ``offsets`` ``(2M+1,)`` the window's grid offsets
    in degrees; ``step`` (degrees), ``eta``, ``r_inner``, ``r_outer`` are 0-d tensors. With
    ``d`` the distance to the peak and ``q = 4d²/H²``: ``L = 1/(1 + q)``, ``G = 2^(−q)``.
    """
    d = offsets - ((u - centre.to(u.dtype)) * step).unsqueeze(-1)  # (n, 2M+1)
    q = (d * (2.0 / fwhm).unsqueeze(-1)) ** 2
    t = ((d.abs() - r_inner) / (r_outer - r_inner)).clamp(0.0, 1.0)
    lor_taper = (1.0 - eta) / (q + 1.0) * (1.0 - t * t * t * (10.0 + t * (6.0 * t - 15.0)))
    return (lor_taper + eta * torch.exp2(-q)) * intensity.unsqueeze(-1)


@fused(dims=_WINDOW_DIMS, example=_window_example, eager_rows=EAGER_ROWS)
def _window_functions(u, intensity, fwhm, centre, offsets, step, eta, r_inner, r_outer):
    """``I P`` on the windows, ``(n, 2M+1)``, and the backward's window functions ``(n, 3, 2M+1)``.

    Inputs as for :func:`_window_values`. Rows of the second: ``P``; ``4s ∂P/∂s``;
    ``(2d/H²) ∂P/∂s + (1−η) L φ'(|d|) sign(d)``, so that ``∂/∂I = Σ g P``,
    ``∂/∂H = −I Σ g 4s∂P/∂s / (2H)`` and ``∂/∂u = −step I Σ g (…)``. With
    ``t = (|d| − r_inner)/(r_outer − r_inner)`` clamped to [0, 1],
    ``φ = 1 − (10t³ − 15t⁴ + 6t⁵)`` and ``φ' = −30 t² (1 − t)² / (r_outer − r_inner)``.
    """
    d = offsets - ((u - centre.to(u.dtype)) * step).unsqueeze(-1)  # (n, 2M+1)
    inv_h = (2.0 / fwhm).unsqueeze(-1)
    x = d * inv_h  # 2d/H
    q = x * x  # 4s
    lor = 1.0 / (q + 1.0)
    gauss = torch.exp2(-q)  # G = exp(−4 ln2 s) = 2^(−q)
    t = ((d.abs() - r_inner) / (r_outer - r_inner)).clamp(0.0, 1.0)
    lor_taper = (1.0 - eta) * lor * (1.0 - t * t * t * (10.0 + t * (6.0 * t - 15.0)))  # (1−η) L φ
    taper_slope = (t * (1.0 - t)) ** 2 * torch.sign(d) * (-30.0 * (1.0 - eta) / (r_outer - r_inner)) * lor
    base = lor_taper + eta * gauss
    ds = -FOUR_LN2 * eta * gauss - 4.0 * lor * lor_taper  # ∂P/∂s
    derivatives = torch.stack([base, ds * q, ds * x * (0.5 * inv_h) + taper_slope], dim=1)
    return base * intensity.unsqueeze(-1), derivatives


class _NearField(torch.autograd.Function):
    """``Σ_k I_k [η G(d) + (1−η) L(d) φ(d)]`` on each peak's window, with a hand-written backward.

    Works on a flat list of ``n`` peaks (``row`` says which pattern of the batch each
    belongs to), so that extinct and masked reflections cost nothing. With ``s = d²/H²``,
    ``d = (offset − (u − centre))·step`` and ``P = η G + (1−η) L φ``::

        ∂P/∂s = −4 ln2 η G − 4 (1−η) L² φ,
        ∂/∂I = P,   ∂/∂H = I ∂P/∂s (−2s/H),   ∂/∂u = −step · I (∂P/∂s · 2d/H² + (1−η) L φ').

    When the inputs need gradients, the forward evaluates the three window functions
    ``P``, ``∂P/∂s · 4s`` and ``∂P/∂s · 2d/H² + (1−η) L φ'`` while it has ``G``, ``L`` and
    ``φ`` at hand, and keeps them, ``(n, 3, 2M+1)``; the backward is then one gather of
    the output gradient on the windows and one weighted sum over each window. Under
    ``create_graph`` (double backward, e.g. forward-mode products), it instead recomputes
    everything from the inputs with differentiable operations (there the taper is evaluated
    only on the outer columns of the window, about 40 % of them for the SI's widths). The
    window functions are fused kernels (:mod:`xrdnb.fused`): one pass over the windows.
    """

    @staticmethod
    def _index(centre, row, half, n_points):
        """Flat index into the padded ``(n_rows, n_points + 2·pad)`` buffer, ``(n·(2M+1),)``."""
        pad = 2 * half + 1
        offsets = torch.arange(-half, half + 1, device=centre.device)
        start = row * (n_points + 2 * pad) + centre + pad
        return (start.unsqueeze(-1) + offsets).reshape(-1)

    @staticmethod
    def _outer_columns(half, step, r_inner) -> tuple[slice, ...]:
        """Window columns where φ may be below 1: those with ``(|offset| + ½)·step > r_inner``."""
        inner = int(math.floor(r_inner / step - 0.5))  # columns half−inner .. half+inner have φ = 1
        if inner < 0:
            return (slice(None),)
        cut = max(half - inner, 0)
        return (slice(0, cut), slice(2 * half + 1 - cut, 2 * half + 1)) if cut > 0 else ()

    @staticmethod
    def forward(ctx, u, intensity, fwhm, centre, row, n_rows, half, n_points, step, eta, r_inner, r_outer):
        offsets = torch.arange(-half, half + 1, device=u.device, dtype=u.dtype) * step
        scalars = [torch.tensor(v, dtype=u.dtype, device=u.device) for v in (step, eta, r_inner, r_outer)]
        if any(ctx.needs_input_grad[:3]):
            values, window_derivatives = _window_functions(u, intensity, fwhm, centre, offsets, *scalars)
        else:
            values, window_derivatives = _window_values(u, intensity, fwhm, centre, offsets, *scalars), None
        pad = 2 * half + 1
        padded = torch.zeros(n_rows * (n_points + 2 * pad), dtype=u.dtype, device=u.device)
        padded.index_add_(0, _NearField._index(centre, row, half, n_points), values.reshape(-1))
        ctx.save_for_backward(u, intensity, fwhm, centre, row, window_derivatives)
        ctx.constants = (half, n_points, step, eta, r_inner, r_outer)
        return padded.reshape(n_rows, -1)[:, pad : pad + n_points]

    @staticmethod
    def backward(ctx, grad_out):
        u, intensity, fwhm, centre, row, window_derivatives = ctx.saved_tensors
        half, n_points, step, eta, r_inner, r_outer = ctx.constants
        pad = 2 * half + 1
        # the output gradient on each peak's window, (n, 2M+1)
        windows = torch.nn.functional.pad(grad_out, (pad, pad)).unfold(1, 2 * half + 1, 1)
        g = windows[row, centre + pad - half]
        if window_derivatives is not None and not torch.is_grad_enabled():
            sums = torch.einsum("nw,ncw->nc", g, window_derivatives)  # (n, 3)
            grad_u = -step * intensity * sums[:, 2]
            grad_fwhm = -(0.5 / fwhm) * intensity * sums[:, 1]
            return grad_u, sums[:, 0], grad_fwhm, None, None, None, None, None, None, None, None, None
        # Under create_graph: differentiable in turn (forward-mode products such as
        # torch.autograd.functional.jvp differentiate this with respect to grad_out, and
        # second derivatives go through the recomputed window functions): no tensor that
        # multiplies g is modified in place after that product.
        offsets = torch.arange(-half, half + 1, device=u.device, dtype=u.dtype) * step
        d = offsets - ((u - centre.to(u.dtype)) * step).unsqueeze(-1)
        x = d * (2.0 / fwhm).unsqueeze(-1)  # 2d/H
        q = x * x  # 4s
        lor = (q + 1.0).reciprocal_()
        lor_taper = lor * (1.0 - eta)  # (1−η) L φ, φ applied on the outer columns below
        # Σ g (1−η) L φ'(|d|) sign(d), φ' = −30 t² (1 − t)² / (r_out − r_in), outer columns only
        taper_term = torch.zeros_like(u)
        for cols in _NearField._outer_columns(half, step, r_inner):
            t = ((d[:, cols].abs() - r_inner) / (r_outer - r_inner)).clamp_(0.0, 1.0)
            slope = (t * (1.0 - t)).square_().mul_(torch.sign(d[:, cols])).mul_(-30.0 / (r_outer - r_inner))
            taper_term += (g[:, cols] * (lor[:, cols] * slope)).sum(-1) * (1.0 - eta)
            lor_taper[:, cols] *= 1.0 - t * t * t * (10.0 + t * (6.0 * t - 15.0))
        gauss = torch.exp2(-q)
        grad_intensity = (g * (lor_taper + eta * gauss)).sum(-1)
        # ∂P/∂s = −4 ln2 η G − 4 L (1−η) L φ, with s = q/4 and 2d/H² = x/H
        g_ds = g * gauss.mul_(-FOUR_LN2 * eta).addcmul_(lor, lor_taper, value=-4.0)
        grad_fwhm = -(0.5 / fwhm) * intensity * (g_ds * q).sum(-1)
        grad_u = -step * intensity * ((g_ds * x).sum(-1) / fwhm + taper_term)
        return grad_u, grad_intensity, grad_fwhm, None, None, None, None, None, None, None, None, None


def render_fast(
    two_theta: torch.Tensor,
    intensity: torch.Tensor,
    fwhm: torch.Tensor,
    grid_start: float,
    step: float,
    n_points: int,
    eta: float,
    fwhm_max: float,
    *,
    window: float = 2.0,
    taper: float = 0.75,
    n_terms: int | None = None,
    fwhm_min: float | None = None,
) -> torch.Tensor:
    """Windowed pseudo-Voigt plus FFT-convolved Lorentzian tails (see module docstring).

    Parameters
    ----------
    two_theta, intensity, fwhm
        ``(B, K)`` peak centres (degrees), intensities, FWHM (degrees).
        Centres must be finite; give masked peaks zero intensity.
    grid_start, step, n_points
        the grid ``x_i = grid_start + i·step``, ``i < n_points``.
    fwhm_max
        upper bound (degrees) of every peak's FWHM; sets the window.
    window
        exact region ``|d| <= window·fwhm_max``. The Gaussian is evaluated on all of
        it (beyond ``2·H`` it is below ``η·1.5e-5``); the Lorentzian is multiplied by the
        taper φ, which falls from 1 to 0 over the outer ``taper·fwhm_max``.
    n_terms
        terms of the tail series; by default enough for a relative error of 1e-7
        where the series starts (see :func:`tail_terms`); ``0`` drops the tails.
    fwhm_min
        lower bound (degrees) of every peak's FWHM. With both bounds the series and its
        kernels are fixed by the grid and cached across calls; without it they follow
        the widths of the peaks drawn.

    Returns
    -------
    ``(B, P)`` pattern, matching :func:`render_dense` to ~1e-5 of the maximum.
    """
    if not 0 < taper < window:
        raise ValueError("need 0 < taper < window")
    batch, n_peaks = two_theta.shape
    dtype, device = two_theta.dtype, two_theta.device
    r_outer = window * fwhm_max
    r_inner = r_outer - taper * fwhm_max
    half = window_half_width(fwhm_max, step, window)

    # --- near field: exact Gaussian, tapered Lorentzian on 2M+1 grid points per peak ---
    u = (two_theta - grid_start) / step  # fractional grid index (B, K)
    # peaks whose window misses the grid entirely are parked just outside it
    centre = torch.round(u.detach()).clamp(-half - 1, n_points + half).to(torch.int64)
    if n_peaks == 0:  # no reflection in range (a tiny cell, a long wavelength): a flat pattern
        return torch.zeros(batch, n_points, dtype=dtype, device=device) + 0.0 * intensity.sum() + 0.0 * two_theta.sum()
    # only peaks that carry intensity: masked and extinct reflections are skipped. An
    # extinct reflection (e.g. h+k+l odd in I lattices) has |F|² ~ 1e-30 of the strongest
    # in float64 but ~1e-12 to 1e-10 in float32 (the rounding of its phase sum), so the cut
    # is relative to the dtype: 1e-14, or 1 % of the dtype's resolution where that is
    # larger (1.2e-9 in float32; a peak below it cannot change a float32 pattern, whose
    # maximum is resolved to 6e-8). NdAl2Cu4: a quarter of the float32 peaks go.
    level = intensity.detach().abs().amax(dim=-1, keepdim=True)
    cut = max(1e-14, 0.01 * torch.finfo(dtype).eps)
    row, col = torch.nonzero(intensity.detach().abs() > cut * level, as_tuple=True)
    pattern = _NearField.apply(
        u[row, col],
        intensity[row, col],
        fwhm[row, col],
        centre[row, col],
        row,
        batch,
        half,
        n_points,
        step,
        eta,
        r_inner,
        r_outer,
    )

    if (n_terms is not None and n_terms <= 0) or n_peaks == 0 or row.numel() == 0:
        return pattern

    # --- far field: Lorentzian tails (1 − φ) L as convolutions of weighted sticks ---
    # With h = H/2, L = h²/(d² + h²) = Σ_n h² (h0² − h²)ⁿ / (d² + h0²)ⁿ⁺¹ about a reference h0
    # in the middle of the peaks' widths: weights per peak, kernels per term.
    h_sq = (fwhm * fwhm) / 4.0
    if fwhm_min is not None:
        h_lo, h_hi = (fwhm_min / 2.0) ** 2, (fwhm_max / 2.0) ** 2
    else:  # from the peaks that are drawn
        live = h_sq.detach()[row, col]
        h_lo, h_hi = float(live.min()), float(live.max())
    h0_sq = 0.5 * (h_lo + h_hi)
    if n_terms is None:
        n_terms = tail_terms(window, taper, h_sq_range=(h_lo, h_hi), fwhm_max=fwhm_max)

    # Each drawn peak (the near field's flat list) is spread over the 4 grid points around
    # it with cubic Lagrange weights, so that Σ_j S_j K(x_i − x_j) interpolates
    # K(x_i − 2θ_k) to O(step⁴).
    u_live, h_sq_live = u[row, col], h_sq[row, col]
    lower = torch.floor(u_live.detach()).clamp(-1, n_points).to(torch.int64)
    f = (u_live - lower.to(dtype)).unsqueeze(-1)  # in [0, 1) for peaks on the grid, (n, 1)
    spread = torch.cat(
        [
            -f * (f - 1) * (f - 2) / 6,
            (f + 1) * (f - 1) * (f - 2) / 2,
            -(f + 1) * f * (f - 2) / 2,
            (f + 1) * f * (f - 1) / 6,
        ],
        dim=-1,
    )  # (n, 4) weights of grid points lower-1 .. lower+2
    # stick array index j + 2 covers j = -2 .. n_points + 2; row r's array starts at r·n_fft
    length = n_points + 5
    n_fft = _fft_size(2 * length - 1)  # no wrap-around for offsets |i' − j'| < length
    idx = ((row * n_fft + lower + 1).unsqueeze(-1) + torch.arange(4, device=device)).reshape(-1)  # (4n,)
    ratio = h0_sq - h_sq_live  # (n,)
    weights = [(1.0 - eta) * intensity[row, col] * h_sq_live]
    for _ in range(1, n_terms):
        weights.append(weights[-1] * ratio)
    values = (torch.stack(weights).unsqueeze(-1) * spread).reshape(n_terms, -1)  # (T, 4n)
    kernel_spectrum = _tail_kernel_spectrum(n_terms, length, n_fft, step, r_inner, r_outer, h0_sq, dtype, device)
    # stick index j' = j + 2, so grid point i sits at i' = i + 2
    return pattern + _TailConvolution.apply(values, idx, kernel_spectrum, batch, n_fft, 2, n_points)


class _TailConvolution(torch.autograd.Function):
    """``far_b = Σ_t (sticks_bt ⊛ k_t)[offset : offset + n_points]``, a linear map of the stick values.

    ``values`` ``(T, J)`` are scattered to flat positions ``idx`` ``(J,)`` of ``T`` stick
    arrays ``(B, n_fft)`` (position ``b·n_fft + i`` is point ``i`` of pattern ``b``), each
    convolved (circularly, by rFFT) with its kernel of spectrum ``K_t`` ``(T, n_fft//2 + 1)``,
    and the ``T`` results summed. The adjoint of a circular convolution is the correlation
    with the same kernel, i.e. multiplication by ``conj(K_t)``, so the backward is one rFFT
    of the padded output gradient per pattern and ``T`` inverse rFFTs, read back at
    ``idx``: as cheap as the forward, where autograd through ``rfft`` would run a full
    complex FFT of ``(T, B, n_fft)``. The backward is made of differentiable operations, so
    double backward (forward-mode products) works.
    """

    @staticmethod
    def forward(ctx, values, idx, kernel_spectrum, batch, n_fft, offset, n_points):
        n_terms = values.shape[0]
        # the sticks go straight into a zero-padded buffer of the FFT's length (no padded copy)
        sticks = torch.zeros(n_terms, batch * n_fft, dtype=values.dtype, device=values.device)
        sticks.scatter_add_(1, idx.expand(n_terms, -1), values)
        # a product and a sum over the terms; einsum would make this a batch of n_fft/2
        # tiny complex matmuls
        spectrum = torch.fft.rfft(sticks.reshape(n_terms, batch, n_fft)).mul_(kernel_spectrum.unsqueeze(1)).sum(dim=0)
        ctx.save_for_backward(idx, kernel_spectrum)
        ctx.constants = (batch, n_fft, offset, n_points)
        return torch.fft.irfft(spectrum, n=n_fft)[:, offset : offset + n_points]

    @staticmethod
    def backward(ctx, grad_far):
        idx, kernel_spectrum = ctx.saved_tensors
        batch, n_fft, offset, n_points = ctx.constants
        n_terms = kernel_spectrum.shape[0]
        padded = torch.nn.functional.pad(grad_far, (offset, n_fft - offset - n_points))
        spectrum = torch.fft.rfft(padded) * kernel_spectrum.conj().unsqueeze(1)  # (T, B, F)
        back = torch.fft.irfft(spectrum, n=n_fft).reshape(n_terms, -1)  # (T, B·n_fft)
        return back.gather(1, idx.expand(n_terms, -1)), None, None, None, None, None, None


def _fft_size(n: int) -> int:
    """Smallest ``2^a · 3^b >= n`` with ``a >= 1``.

    Even lengths made of twos and threes are the fast ones for real FFTs: pocketfft needs
    about half the time for 18432 = 2¹¹·3² as for the odd 18225 = 3⁶·5² (the SI grid's
    18009 points of convolution), and cuFFT likes them as well.
    """
    best: int | None = None
    p3 = 1
    while p3 < 2 * max(n, 1):
        size = 2 * p3
        while size < n:
            size *= 2
        best = size if best is None else min(best, size)
        p3 *= 3
    assert best is not None  # the loop runs at least once (p3 = 1 < 2)
    return best


@functools.lru_cache(maxsize=32)
def _tail_kernel_spectrum(
    n_terms: int, length: int, n_fft: int, step: float, r_inner: float, r_outer: float, h0_sq: float, dtype, device
) -> torch.Tensor:
    """RFFT of the kernels ``(1 − φ(d)) / (d² + h0²)ⁿ⁺¹``, ``n < n_terms``, ``(n_terms, n_fft//2 + 1)``.

    Cached: for a given grid and width range they are the same on every call.
    """
    m = torch.arange(-(length - 1), length, device=device, dtype=torch.float64)  # offsets i' − j' in grid steps
    dist = (m * step).abs()
    outside = 1.0 - _taper(dist, r_inner, r_outer)
    inv = 1.0 / (dist * dist + h0_sq)
    kernels = torch.stack([outside * inv ** (n + 1) for n in range(n_terms)])  # (n_terms, len(m))
    kernel_buf = torch.zeros(n_terms, n_fft, dtype=torch.float64, device=device)
    kernel_buf[:, m.to(torch.int64) % n_fft] = kernels
    return torch.fft.rfft(kernel_buf, n=n_fft).to(dtype=torch.complex64 if dtype == torch.float32 else torch.complex128)
