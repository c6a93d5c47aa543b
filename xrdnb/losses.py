r"""XRD similarity metrics and the losses of the gradient-descent study (SI §1.4).

Every metric compares a batch of patterns ``p`` of shape ``(B, P)`` with a target ``q`` of
shape ``(P,)`` (one target for the whole batch) or ``(B, P)`` and returns ``(B,)``. They
are pure, differentiable functions of the tensors, on any device, in float32 or float64.
The simulator normalises patterns to a maximum of 1; nothing here relies on it.

Similarities (higher = more alike), for one pattern pair with ``P`` grid points:

.. math::
    \cos(p, q) = \frac{\sum_i p_i q_i}{\lVert p\rVert\,\lVert q\rVert}, \qquad
    \mathrm{MSE}(p, q) = \frac{1}{P}\sum_i (p_i - q_i)^2,

    S_\mathrm{ent}(p, q) = 1 - \frac{2\,H\big(\tfrac{p' + q'}{2}\big) - H(p') - H(q')}{\ln 4},

    p' = \frac{p}{\sum_i p_i},\ q' = \frac{q}{\sum_i q_i},\
    H(x) = -\sum_i x_i \ln x_i,

    S_\mathrm{cc}(p, q) = \frac{c_{pq}}{\sqrt{c_{pp}\,c_{qq}}}, \qquad
    c_{fg} = \sum_r w(r) \sum_i f_i\, g_{i+r},

    w(r) = \max\Big(0, 1 - \frac{|r|}{\ell}\Big),\ \ell = \frac{l}{\delta},

with ``p`` and ``q`` sampled on a 2θ grid of spacing ``δ = step``, lags ``r`` in grid points
and the triangle's half width ``l = half_width`` in degrees of 2θ.

* :func:`cosine_similarity` — the usual cosine; scale invariant, in [0, 1] for
  non-negative patterns.
* :func:`mean_squared_error` — mean over the ``P`` grid points; *not* scale invariant.
* :func:`entropy_similarity` — the (unweighted) spectral entropy similarity of
  Li et al., Nature Methods 18, 1524 (2021): one minus the Jensen–Shannon divergence of
  the sum-normalised patterns in units of ``ln 4``, hence in [0, 1] and 1 for identical
  patterns. (Li et al.'s extra intensity re-weighting of low-entropy mass spectra is not
  applied.)
* :func:`cross_correlation` — the weighted cross-correlation of de Gelder, Wehrens &
  Hageman, J. Comput. Chem. 22, 273 (2001), with a triangle weight of half width
  ``half_width`` degrees of 2θ (default 1°) on a grid of spacing ``step`` degrees
  (default 0.01°, the SI's). It credits peaks that are shifted by less than the half
  width; with ``half_width <= step`` only the zero lag remains and it is the cosine.

The study minimises the losses (SI §1.4) in :data:`LOSSES`: ``−cos``, ``MSE``,
``−S_ent`` and ``−S_cc``. :data:`SIMILARITIES` holds the same four metrics oriented as
similarities (higher = more alike); for the MSE that is ``−MSE``, so that all four point
the same way. :func:`loss_function` and :func:`similarity_function` look them up by name
and bind keyword arguments (``half_width``, ``step`` of the cross-correlation).

For the MSE loss only, the SI clips the reflections to Miller indices
``|h|, |k|, |l| <= 6`` "for numerical stability". That is a simulator setting,
``XRDSettings(hkl_max=6)``, not part of the loss; :func:`simulator_overrides` returns it
(:data:`SETTINGS_FOR_LOSS`) for a loss name.

>>> import torch
>>> from xrdnb.losses import all_similarities, loss_function
>>> q = torch.tensor([0.0, 0.2, 1.0, 0.3, 0.0, 0.5], dtype=torch.float64)
>>> p = torch.stack([q, q.roll(1)])  # (B=2, P=6): the target and a copy shifted by one point
>>> sims = all_similarities(p, q, half_width=0.03, step=0.01)  # ℓ = 3 grid points
>>> {name: round(float(value[1]), 3) for name, value in sims.items()}  # the shifted copy
{'cosine': 0.362, 'mse': -0.293, 'entropy': 0.448, 'cross_correlation': 0.903}
>>> loss_function("cosine")(p, q)
tensor([-1.0000, -0.3623], dtype=torch.float64)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping

import torch

from .peak_shapes import _fft_size
from .vocabulary import LOSS_NAMES

__all__ = [
    "LOSS_NAMES",
    "LOSSES",
    "SIMILARITIES",
    "SETTINGS_FOR_LOSS",
    "cosine_similarity",
    "mean_squared_error",
    "entropy_similarity",
    "cross_correlation",
    "triangle_weights",
    "cosine_loss",
    "mse_loss",
    "entropy_loss",
    "cross_correlation_loss",
    "negative_mean_squared_error",
    "loss_function",
    "similarity_function",
    "all_similarities",
    "simulator_overrides",
]

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LN4 = math.log(4.0)


def _pair(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes and bring ``q`` to the dtype of ``p``; ``q`` stays ``(P,)`` or ``(B, P)``."""
    if p.ndim != 2:
        raise ValueError(f"p must have shape (B, P), got {tuple(p.shape)}")
    if q.ndim not in (1, 2) or q.shape[-1] != p.shape[-1]:
        raise ValueError(f"q must have shape (P,) or (B, P) with P = {p.shape[-1]}, got {tuple(q.shape)}")
    if q.ndim == 2 and q.shape[0] not in (1, p.shape[0]):
        raise ValueError(f"q has batch size {q.shape[0]}, p has {p.shape[0]}")
    if not p.is_floating_point():
        raise TypeError(f"p must be a floating-point tensor, got {p.dtype}")
    return p, q.to(dtype=p.dtype)


def _tiny(x: torch.Tensor) -> float:
    return torch.finfo(x.dtype).tiny


def cosine_similarity(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Cosine similarity ``Σ p q / (‖p‖ ‖q‖)``.

    Parameters
    ----------
    p
        ``(B, P)`` patterns.
    q
        ``(P,)`` or ``(B, P)`` target(s).

    Returns
    -------
    ``(B,)`` similarity; 1 for proportional patterns, in [0, 1] for non-negative ones,
    0 if either pattern is zero.

    Examples
    --------
    >>> import torch
    >>> cosine_similarity(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([2.0, 0.0]))
    tensor([1.0000, 0.7071])
    """
    p, q = _pair(p, q)
    dot = (p * q).sum(-1)
    norms = (p * p).sum(-1) * (q * q).sum(-1)
    return dot / torch.sqrt(norms.clamp_min(_tiny(p)))


def mean_squared_error(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean squared error ``(1/P) Σ (p − q)²`` over the ``P`` grid points.

    Parameters
    ----------
    p
        ``(B, P)`` patterns.
    q
        ``(P,)`` or ``(B, P)`` target(s).

    Returns
    -------
    ``(B,)`` error, 0 for identical patterns; it depends on the scale of the patterns.

    Examples
    --------
    >>> import torch
    >>> mean_squared_error(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1.0, 0.0]))
    tensor([0., 1.])
    """
    p, q = _pair(p, q)
    return ((p - q) ** 2).mean(-1)


def _sum_normalize(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp_min(0.0)
    return x / x.sum(-1, keepdim=True).clamp_min(_tiny(x))


def _entropy(x: torch.Tensor) -> torch.Tensor:
    """Shannon entropy ``−Σ x ln x`` (nats) over the last axis with ``0 ln 0 = 0``.

    The gradient of a zero entry is taken as 0 (the true one, ``−ln x − 1``, diverges).
    """
    safe = torch.where(x > 0, x, torch.ones_like(x))
    return -(x * torch.log(safe)).sum(-1)


def entropy_similarity(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Spectral entropy similarity of Li et al. (2021) on sum-normalised patterns.

    ``1 − (2 H((p' + q')/2) − H(p') − H(q')) / ln 4`` with ``p' = p / Σ p``,
    ``q' = q / Σ q`` and the Shannon entropy ``H(x) = −Σ x ln x`` (natural log).

    Negative entries (float noise of the simulator) are clamped to 0 before the
    normalisation, and ``0 ln 0 = 0`` with a zero gradient for that entry, so exact zeros
    give finite values and gradients. An all-zero pattern is treated as ``p' = 0``.

    Parameters
    ----------
    p
        ``(B, P)`` patterns.
    q
        ``(P,)`` or ``(B, P)`` target(s).

    Returns
    -------
    ``(B,)`` similarity in [0, 1] (up to round-off): 1 for proportional patterns,
    0 for patterns with disjoint support. Scale invariant in ``p`` and ``q``.

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([1.0, 1.0, 0.0, 0.0])
    >>> entropy_similarity(torch.tensor([[2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]]), q)
    tensor([1.0000, 0.0000, 0.6887])
    """
    p, q = _pair(p, q)
    p_n, q_n = _sum_normalize(p), _sum_normalize(q)
    mixed = _entropy(0.5 * (p_n + q_n))
    return 1.0 - (2.0 * mixed - _entropy(p_n) - _entropy(q_n)) / LN4


def _half_width_points(half_width: float, step: float) -> float:
    """``ℓ = half_width / step`` in grid points, snapped to an integer within round-off."""
    if not (half_width > 0 and step > 0):
        raise ValueError(f"half_width and step must be positive, got {half_width}, {step}")
    ell = half_width / step
    if abs(ell - round(ell)) <= 1e-9 * max(1.0, ell):
        ell = float(round(ell))
    return ell


def triangle_weights(
    half_width: float = 1.0,
    step: float = 0.01,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Triangle weight ``w(r) = max(0, 1 − |r|/ℓ)``, ``ℓ = half_width/step``, at its non-zero lags.

    A ratio within round-off of an integer counts as that integer (``0.3/0.1`` → 3).

    Parameters
    ----------
    half_width
        half width of the triangle, degrees of 2θ.
    step
        grid spacing, degrees of 2θ.
    dtype, device
        of the result.

    Returns
    -------
    ``(2L + 1,)`` weights for the lags ``r = −L … L``, where ``L = ⌈ℓ⌉ − 1`` is the
    largest lag with a non-zero weight; ``w(0) = 1``.

    Examples
    --------
    >>> triangle_weights(0.04, 0.01).tolist()  # ℓ = 4: lags −3 … 3
    [0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25]
    """
    ell = _half_width_points(half_width, step)
    n_lags = max(0, math.ceil(ell) - 1)
    r = torch.arange(-n_lags, n_lags + 1, dtype=dtype, device=device)
    return (1.0 - r.abs() / ell).clamp_min(0.0)


def _smooth(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(w * x)_i = Σ_r w(r) x_{i+r}`` over the last axis, zero outside the pattern.

    Linear (non-circular) correlation by zero-padded real FFTs, ``O(P log P)`` whatever
    the window; FFTs are not subject to the TF32 rounding that cuDNN convolutions use by
    default for float32 on recent GPUs.
    """
    n_points = x.shape[-1]
    n_lags = (weights.shape[0] - 1) // 2
    if n_lags >= n_points:  # lags beyond P − 1 never pair two grid points
        weights = weights[n_lags - (n_points - 1) : n_lags + n_points]
        n_lags = n_points - 1
    if n_lags == 0:
        return weights[0] * x
    n_fft = _fft_size(n_points + n_lags)
    kernel = torch.zeros(n_fft, dtype=x.dtype, device=x.device)
    kernel[: n_lags + 1] = weights[n_lags:]  # r = 0 … L
    kernel[n_fft - n_lags :] = weights[:n_lags]  # r = −L … −1, wrapped
    # w is symmetric, so correlation and convolution coincide
    spectrum = torch.fft.rfft(x, n=n_fft) * torch.fft.rfft(kernel)
    return torch.fft.irfft(spectrum, n=n_fft)[..., :n_points]


def cross_correlation(p: torch.Tensor, q: torch.Tensor, half_width: float = 1.0, step: float = 0.01) -> torch.Tensor:
    """Weighted cross-correlation of de Gelder et al. (2001) with a triangle weight.

    ``S = c_pq / sqrt(c_pp c_qq)`` with ``c_fg = Σ_r w(r) Σ_i f_i g_{i+r}`` and
    ``w(r) = max(0, 1 − |r|/ℓ)``, ``ℓ = half_width/step`` grid points
    (:func:`triangle_weights`); sums run over the pattern only (no wrap-around). Computed
    as ``c_fg = Σ_i f_i (w * g)_i`` with one FFT convolution per pattern.

    Parameters
    ----------
    p
        ``(B, P)`` patterns on a 2θ grid of spacing ``step``.
    q
        ``(P,)`` or ``(B, P)`` target(s) on the same grid.
    half_width
        half width ``l`` of the triangle weight, degrees of 2θ (default 1°).
    step
        grid spacing, degrees of 2θ (default 0.01°, the SI's grid).

    Returns
    -------
    ``(B,)`` similarity; 1 for proportional patterns, in [0, 1] for non-negative ones,
    symmetric in ``p`` and ``q``, scale invariant. With ``half_width <= step`` it equals
    :func:`cosine_similarity`.

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    >>> p = torch.stack([q, q.roll(1), q.roll(3)])  # shifted by 0, 1 and 3 points
    >>> cross_correlation(p, q, half_width=0.02, step=0.01)  # ℓ = 2: w(±1) = 1/2
    tensor([1.0000, 0.5000, 0.0000], dtype=torch.float64)
    """
    p, q = _pair(p, q)
    weights = triangle_weights(half_width, step, dtype=p.dtype, device=p.device)
    wp, wq = _smooth(p, weights), _smooth(q, weights)
    c_pq = (p * wq).sum(-1)
    c_pp = (p * wp).sum(-1)
    c_qq = (q * wq).sum(-1)
    return c_pq / torch.sqrt((c_pp * c_qq).clamp_min(_tiny(p)))


def cosine_loss(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Loss ``−cos(p, q)``, ``(B,)``; see :func:`cosine_similarity`."""
    return -cosine_similarity(p, q)


def mse_loss(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Loss ``MSE(p, q)``, ``(B,)``; see :func:`mean_squared_error`."""
    return mean_squared_error(p, q)


def negative_mean_squared_error(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Similarity ``−MSE(p, q)``, ``(B,)``: the MSE oriented so that higher is more alike."""
    return -mean_squared_error(p, q)


def entropy_loss(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Loss ``−S_ent(p, q)``, ``(B,)``; see :func:`entropy_similarity`."""
    return -entropy_similarity(p, q)


def cross_correlation_loss(
    p: torch.Tensor, q: torch.Tensor, half_width: float = 1.0, step: float = 0.01
) -> torch.Tensor:
    """Loss ``−S_cc(p, q)``, ``(B,)``; see :func:`cross_correlation`."""
    return -cross_correlation(p, q, half_width=half_width, step=step)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "cosine": cosine_loss,
    "mse": mse_loss,
    "entropy": entropy_loss,
    "cross_correlation": cross_correlation_loss,
}
"""Loss name → ``f(p, q) -> (B,)`` to minimise: ``−cos``, ``MSE``, ``−S_ent``, ``−S_cc``."""

SIMILARITIES: dict[str, Callable[..., torch.Tensor]] = {
    "cosine": cosine_similarity,
    "mse": negative_mean_squared_error,
    "entropy": entropy_similarity,
    "cross_correlation": cross_correlation,
}
"""Loss name → ``f(p, q) -> (B,)``, higher = more alike: ``cos``, ``−MSE``, ``S_ent``, ``S_cc``.

``−MSE`` (not the MSE) so that all four point the same way; each is minus its loss.
"""

SETTINGS_FOR_LOSS: dict[str, dict[str, object]] = {"mse": {"hkl_max": 6}}
"""Loss name → :class:`~xrdnb.pattern.XRDSettings` overrides the SI uses with that loss.

Only the MSE has one: reflections clipped to ``|h|, |k|, |l| <= 6`` "for numerical
stability" (SI). Losses not listed use the default settings.
"""


def _lookup(table: Mapping[str, Callable[..., torch.Tensor]], name: str, kind: str) -> Callable[..., torch.Tensor]:
    try:
        return table[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(key) for key in table)
        raise ValueError(f"unknown {kind} {name!r}; valid names are {valid}") from None


def _bind(function: Callable[..., torch.Tensor], kwargs: dict) -> Metric:
    if not kwargs:
        return function
    # raise TypeError now, not at the first call, for a keyword the metric does not take
    inspect.signature(function).bind(None, None, **kwargs)

    def bound(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return function(p, q, **kwargs)

    bound.__name__ = function.__name__
    bound.__doc__ = function.__doc__
    return bound


def loss_function(name: str, **kwargs) -> Metric:
    """The loss ``name`` of :data:`LOSSES` as ``f(p, q) -> (B,)``, with ``kwargs`` bound.

    Parameters
    ----------
    name
        one of ``"cosine"``, ``"mse"``, ``"entropy"``, ``"cross_correlation"``.
    **kwargs
        keyword arguments of the metric, e.g. ``half_width`` and ``step`` of
        :func:`cross_correlation`.

    Returns
    -------
    ``f(p, q) -> (B,)``
        the loss; lower is better.

    Raises
    ------
    ValueError
        for an unknown name; the message lists the valid ones.
    TypeError
        for a keyword argument the metric does not take.

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([0.0, 1.0, 0.0, 0.0])
    >>> loss_function("cross_correlation", half_width=0.02, step=0.01)(q.roll(1)[None], q)
    tensor([-0.5000])
    >>> loss_function("L1")
    Traceback (most recent call last):
    ...
    ValueError: unknown loss 'L1'; valid names are 'cosine', 'mse', 'entropy', 'cross_correlation'
    """
    return _bind(_lookup(LOSSES, name, "loss"), kwargs)


def similarity_function(name: str, **kwargs) -> Metric:
    """The similarity ``name`` of :data:`SIMILARITIES` as ``f(p, q) -> (B,)``, with ``kwargs`` bound.

    Parameters
    ----------
    name
        one of ``"cosine"``, ``"mse"`` (gives ``−MSE``), ``"entropy"``,
        ``"cross_correlation"``.
    **kwargs
        keyword arguments of the metric, e.g. ``half_width`` of :func:`cross_correlation`.

    Returns
    -------
    ``f(p, q) -> (B,)``
        the similarity; higher is more alike. It is minus the loss of that name.

    Raises
    ------
    ValueError
        for an unknown name; the message lists the valid ones.
    TypeError
        for a keyword argument the metric does not take.

    Examples
    --------
    >>> import torch
    >>> similarity_function("mse")(torch.tensor([[0.0, 1.0]]), torch.tensor([1.0, 1.0]))
    tensor([-0.5000])
    """
    return _bind(_lookup(SIMILARITIES, name, "similarity"), kwargs)


def all_similarities(
    p: torch.Tensor, q: torch.Tensor, half_width: float = 1.0, step: float = 0.01
) -> dict[str, torch.Tensor]:
    """All four :data:`SIMILARITIES` of ``p`` against ``q`` (``"mse"`` gives ``−MSE``).

    Parameters
    ----------
    p
        ``(B, P)`` patterns.
    q
        ``(P,)`` or ``(B, P)`` target(s).
    half_width, step
        of :func:`cross_correlation` (degrees of 2θ).

    Returns
    -------
    Name → ``(B,)`` similarity, in the order of :data:`~xrdnb.vocabulary.LOSS_NAMES`.
    """
    options = {"cross_correlation": {"half_width": half_width, "step": step}}
    return {name: SIMILARITIES[name](p, q, **options.get(name, {})) for name in LOSS_NAMES}


def simulator_overrides(loss_name: str) -> dict[str, object]:
    """Simulator settings the SI pairs with a loss: ``{"hkl_max": 6}`` for ``"mse"``, else ``{}``.

    Apply them with ``dataclasses.replace(settings, **simulator_overrides(name))``.

    Parameters
    ----------
    loss_name
        one of :data:`~xrdnb.vocabulary.LOSS_NAMES`.

    Returns
    -------
    A new dict of :class:`~xrdnb.pattern.XRDSettings` field overrides.

    Raises
    ------
    ValueError
        for an unknown name; the message lists the valid ones.

    Examples
    --------
    >>> import dataclasses
    >>> from xrdnb.pattern import XRDSettings
    >>> dataclasses.replace(XRDSettings(), **simulator_overrides("mse")).hkl_max
    6
    >>> simulator_overrides("cosine")
    {}
    """
    _lookup(LOSSES, loss_name, "loss")
    return dict(SETTINGS_FOR_LOSS.get(loss_name, {}))
