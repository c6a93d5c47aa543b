"""Association between two samples: Pearson, Spearman, mutual information and a hierarchical bootstrap.

The SI's Tables S1/S2 correlate structural with XRD similarity over the structures and copies
of one noise type and level. :func:`correlations` gives the three measures of association with
a reason when they are undefined; :func:`bootstrap_ci` resamples structures, then copies within
them (copies of one structure are not independent), for a confidence interval. Resampling
structures as independent units is right for the study's draws, which are independent across
structures, noise types and levels (:func:`xrdnb.distortions.study_seed`).

>>> c = correlations([1, 2, 3, 4], [1, 3, 2, 4])
>>> round(c.pearson, 2), round(c.spearman, 2), c.n
(0.8, 0.8, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Correlation", "correlations", "bootstrap_ci", "bootstrap_replicates", "bootstrap_means"]


@dataclass(frozen=True)
class Correlation:
    """Association between two samples (see :func:`correlations`).

    Attributes
    ----------
    pearson
        Pearson's r (NaN when undefined).
    spearman
        Spearman's ρ, the Pearson correlation of the average ranks (NaN when undefined).
    mutual_information
        k-nearest-neighbour estimate of the mutual information, in nats (NaN when undefined).
    n
        number of finite pairs used.
    reason
        why the values are NaN (empty when they are defined).
    """

    pearson: float
    spearman: float
    mutual_information: float
    n: int
    reason: str = ""


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _standardize(v: np.ndarray) -> np.ndarray:
    """(v − mean) / std in float64; centring first keeps tiny spreads around large values exact enough."""
    centred = v - v.mean()
    return centred / np.sqrt(np.mean(centred**2))


def _undefined_reason(x: np.ndarray, y: np.ndarray) -> str:
    if x.size < 3:
        return f"fewer than 3 samples (n = {x.size})"
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return "both columns are constant"
    if np.ptp(x) == 0:
        return "x is constant"
    if np.ptp(y) == 0:
        return "y is constant"
    return ""


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xs, ys = _standardize(x), _standardize(y)
    return float(np.clip(np.mean(xs * ys), -1.0, 1.0))


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v, method="average")


def correlations(x, y, *, mi_neighbors: int = 3, random_state: int = 0) -> Correlation:
    """Pearson, Spearman and mutual information of paired samples, NaN with a reason when undefined.

    Non-finite pairs (e.g. the NaN metrics of an invalid end lattice) are dropped first.
    With fewer than 3 pairs, or with a constant column, every value is NaN and
    ``reason`` says why; nothing is raised and nothing is warned.

    Parameters
    ----------
    x, y
        paired samples (same length).
    mi_neighbors
        ``n_neighbors`` of scikit-learn's ``mutual_info_regression`` (its default, 3).
    random_state
        seed of the tiny jitter that scikit-learn adds to break ties (fixed for
        reproducibility).

    Returns
    -------
    Correlation

    Notes
    -----
    The mutual information is the Kraskov–Stögbauer–Grassberger k-NN estimate
    (scikit-learn's ``mutual_info_regression``; nats, clipped at 0). Both samples are
    standardized first. MI does not depend on scale, and scikit-learn's tie-breaking jitter
    is proportional to the mean absolute value, so it would swamp a small spread around a
    large mean (e.g. similarities of 0.999999…) if the data were not centred.

    Examples
    --------
    >>> c = correlations([1, 2, 3, 4, 5], [3, 5, 7, 9, 11])
    >>> round(c.pearson, 12), round(c.spearman, 12), c.n
    (1.0, 1.0, 5)
    >>> correlations([1, 2, 3], [4, 4, 4]).reason
    'y is constant'
    >>> correlations([1, 2], [2, 1]).reason
    'fewer than 3 samples (n = 2)'
    """
    x, y = _finite_pairs(x, y)
    reason = _undefined_reason(x, y)
    if reason:
        return Correlation(math.nan, math.nan, math.nan, int(x.size), reason)
    pearson = _pearson(x, y)
    spearman = _pearson(_ranks(x), _ranks(y))
    if x.size <= mi_neighbors:
        return Correlation(
            pearson, spearman, math.nan, int(x.size), f"mutual information needs more than {mi_neighbors} samples"
        )
    from sklearn.feature_selection import mutual_info_regression

    mi = mutual_info_regression(
        _standardize(x).reshape(-1, 1), _standardize(y), n_neighbors=mi_neighbors, random_state=random_state
    )[0]
    return Correlation(pearson, spearman, float(mi), int(x.size), "")


def _hierarchical_indices(
    codes: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(n_bootstrap, L)`` and a validity mask: groups, then members within groups."""
    n_groups = int(codes.max()) + 1
    members = [np.flatnonzero(codes == g) for g in range(n_groups)]
    sizes = np.array([m.size for m in members])
    width = int(sizes.max())
    padded = np.zeros((n_groups, width), dtype=np.int64)
    for g, m in enumerate(members):
        padded[g, : m.size] = m
    chosen = rng.integers(0, n_groups, size=(n_bootstrap, n_groups))  # structures, with replacement
    chosen_sizes = sizes[chosen][..., None]  # (B, G, 1)
    within = np.floor(rng.random((n_bootstrap, n_groups, width)) * chosen_sizes).astype(np.int64)  # copies
    index = padded[chosen[..., None], within]
    mask = np.arange(width) < chosen_sizes
    return index.reshape(n_bootstrap, -1), mask.reshape(n_bootstrap, -1)


def _masked_pearson(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of ``x``, ``y`` ``(B, L)`` over the entries where ``mask``; NaN if constant."""
    w = mask.astype(np.float64)
    n = w.sum(axis=1)
    mx = (w * x).sum(axis=1) / n
    my = (w * y).sum(axis=1) / n
    dx = (x - mx[:, None]) * w
    dy = (y - my[:, None]) * w
    sxx, syy, sxy = (dx * dx).sum(axis=1), (dy * dy).sum(axis=1), (dx * dy).sum(axis=1)
    constant = np.zeros(x.shape[0], dtype=bool)
    for v in (x, y):
        hi = np.where(mask, v, -np.inf).max(axis=1)
        lo = np.where(mask, v, np.inf).min(axis=1)
        constant |= hi == lo
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    r = np.clip(r, -1.0, 1.0)
    r[constant | (n < 3)] = np.nan
    return r


def bootstrap_ci(
    x,
    y,
    groups=None,
    *,
    method: str = "pearson",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a correlation, resampling groups, then members.

    Each replicate draws as many groups (structures) as there are, with replacement, and
    then, within each drawn group, as many members (copies) as it has, with replacement.
    The result is the two-level (hierarchical) bootstrap. Copies of one structure are not
    independent, and this accounts for it. A replicate whose resampled x or y is constant
    is left out. The interval is NaN when fewer than half of the replicates are usable.

    Parameters
    ----------
    x, y
        paired samples; non-finite pairs are dropped.
    groups
        group label of each pair (e.g. the structure name); None: one group, i.e. the
        ordinary bootstrap of pairs.
    method
        ``"pearson"`` or ``"spearman"``.
    n_bootstrap
        number of replicates.
    confidence
        coverage of the interval (0.95: the 2.5 and 97.5 percentiles).
    seed
        seed of ``numpy.random.default_rng``; the same seed gives the same interval.

    Returns
    -------
    tuple of float
        ``(lo, hi)``; ``(nan, nan)`` when undefined.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=60); y = x + rng.normal(size=60); g = np.repeat(np.arange(10), 6)
    >>> lo, hi = bootstrap_ci(x, y, g, seed=3)
    >>> lo < correlations(x, y).pearson < hi
    True
    >>> bootstrap_ci(x, y, g, seed=3) == (lo, hi)
    True
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    stats = bootstrap_replicates(x, y, groups, method=method, n_bootstrap=n_bootstrap, seed=seed)
    stats = stats[np.isfinite(stats)]
    if n_bootstrap < 1 or stats.size < 0.5 * n_bootstrap:
        return (math.nan, math.nan)
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return (float(lo), float(hi))


def _replicate_statistic(x, y, index, mask, method: str) -> np.ndarray:
    """Row-wise Pearson or Spearman of ``x[index]``, ``y[index]`` over ``mask`` (``(B,)``)."""
    xs, ys = _standardize(x)[index], _standardize(y)[index]
    if method == "spearman":
        from scipy.stats import rankdata

        # masked entries get +inf: they rank above every real value, so the real ranks are unchanged
        xs = rankdata(np.where(mask, xs, np.inf), axis=1, method="average")
        ys = rankdata(np.where(mask, ys, np.inf), axis=1, method="average")
    return _masked_pearson(xs, ys, mask)


def bootstrap_replicates(
    x,
    y,
    groups=None,
    *,
    method: str = "pearson",
    n_bootstrap: int = 1000,
    seed: int = 0,
    paired: tuple | None = None,
) -> np.ndarray:
    """The hierarchical bootstrap replicates of a correlation (those :func:`bootstrap_ci` summarises).

    Returns ``(n_bootstrap,)`` values, NaN for a replicate whose resampled x or y is constant
    (all NaN when the correlation is undefined or ``n_bootstrap`` < 1). With ``paired =
    (x2, y2)``, samples of the same units as ``x``, ``y`` (e.g. the constrained runs of the
    same copies), it returns the replicates of ``r(x2, y2) − r(x, y)``, both resampled with
    the same indices, so that the interval of a difference accounts for the pairing. Pairs
    that are not finite in all samples are dropped.

    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=60); g = np.repeat(np.arange(10), 6)
    >>> bootstrap_replicates(x, x + rng.normal(size=60), g, n_bootstrap=50).shape
    (50,)
    >>> bool(np.nanmax(np.abs(bootstrap_replicates(x, 2 * x, g, n_bootstrap=20, paired=(x, 3 * x)))) < 1e-12)
    True
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    samples = [np.asarray(v, dtype=np.float64).ravel() for v in (x, y, *(paired or ()))]
    x = samples[0]
    labels = np.zeros(x.size, dtype=np.int64) if groups is None else np.asarray(groups).ravel()
    if labels.size != x.size or any(v.size != x.size for v in samples):
        raise ValueError("x, y, the paired samples and groups must have the same length")
    keep = np.logical_and.reduce([np.isfinite(v) for v in samples])
    samples, labels = [v[keep] for v in samples], labels[keep]
    nan = np.full(max(int(n_bootstrap), 0), math.nan)
    if n_bootstrap < 1 or any(_undefined_reason(a, b) for a, b in zip(samples[::2], samples[1::2], strict=True)):
        return nan
    codes = pd.factorize(labels)[0]
    rng = np.random.default_rng(seed)
    index, mask = _hierarchical_indices(codes, int(n_bootstrap), rng)
    stats = _replicate_statistic(samples[0], samples[1], index, mask, method)
    if paired is not None:
        stats = _replicate_statistic(samples[2], samples[3], index, mask, method) - stats
    return stats


def bootstrap_means(
    values,
    groups=None,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    paired=None,
) -> np.ndarray:
    """Hierarchical bootstrap replicates ``(n_bootstrap,)`` of a mean (a rate, for 0/1 values).

    Resamples groups (structures), then members (copies) within them, as
    :func:`bootstrap_replicates` does for a correlation. With ``paired``, values of the same
    units under another treatment (the constrained run of the same copies), it returns the
    replicates of ``mean(paired) − mean(values)``, both resampled with the same indices.
    Non-finite pairs are dropped; all NaN when nothing is left or ``n_bootstrap`` < 1.

    >>> v = np.array([0, 1, 0, 1, 1, 1.0]); g = np.array([0, 0, 1, 1, 2, 2])
    >>> reps = bootstrap_means(v, g, n_bootstrap=400)
    >>> bool(0.3 < np.median(reps) < 0.9), reps.shape
    (True, (400,))
    >>> float(np.abs(bootstrap_means(v, g, n_bootstrap=50, paired=v + 0.5) - 0.5).max()) < 1e-12
    True
    """
    samples = [np.asarray(v, dtype=np.float64).ravel() for v in (values, *(() if paired is None else (paired,)))]
    labels = np.zeros(samples[0].size, dtype=np.int64) if groups is None else np.asarray(groups).ravel()
    if labels.size != samples[0].size or any(v.size != labels.size for v in samples):
        raise ValueError("values, the paired values and groups must have the same length")
    keep = np.logical_and.reduce([np.isfinite(v) for v in samples])
    samples, labels = [v[keep] for v in samples], labels[keep]
    if n_bootstrap < 1 or labels.size == 0:
        return np.full(max(int(n_bootstrap), 0), math.nan)
    codes = pd.factorize(labels)[0]
    index, mask = _hierarchical_indices(codes, int(n_bootstrap), np.random.default_rng(seed))
    w = mask.astype(np.float64)
    means = [(v[index] * w).sum(axis=1) / w.sum(axis=1) for v in samples]
    return means[1] - means[0] if paired is not None else means[0]
