"""xrdnb.losses against plain-numpy references, gradients, invariances and the name lookup."""

import dataclasses
import doctest
import math

import numpy as np
import pytest
import torch

import xrdnb.losses as losses
from xrdnb.losses import (
    LOSS_NAMES,
    LOSSES,
    SIMILARITIES,
    all_similarities,
    cosine_similarity,
    cross_correlation,
    entropy_similarity,
    loss_function,
    mean_squared_error,
    similarity_function,
    simulator_overrides,
    triangle_weights,
)

# ---------------------------------------------------------------- numpy references (one pair)


def ref_cosine(p, q):
    return float(np.dot(p, q) / (np.sqrt(np.dot(p, p)) * np.sqrt(np.dot(q, q))))


def ref_mse(p, q):
    return float(np.mean((p - q) ** 2))


def ref_entropy_similarity(p, q):
    def shannon(x):
        total = 0.0
        for value in x:
            if value > 0:
                total -= value * math.log(value)
        return total

    p = p / p.sum()
    q = q / q.sum()
    return 1.0 - (2.0 * shannon((p + q) / 2.0) - shannon(p) - shannon(q)) / math.log(4.0)


def ref_cross_correlation(p, q, half_width, step):
    ell = half_width / step
    n = len(p)

    def c(f, g):
        total = 0.0
        for r in range(-n + 1, n):
            w = max(0.0, 1.0 - abs(r) / ell)
            if w == 0.0:
                continue
            # Σ_i f_i g_{i+r} over the indices where both exist
            if r >= 0:
                total += w * float(np.dot(f[: n - r], g[r:]))
            else:
                total += w * float(np.dot(f[-r:], g[: n + r]))
        return total

    return c(p, q) / math.sqrt(c(p, p) * c(q, q))


def batched(reference, p, q, **kwargs):
    q = np.broadcast_to(q, p.shape)
    return np.array([reference(p[b], q[b], **kwargs) for b in range(p.shape[0])])


def random_patterns(shape, *, zeros: bool, seed: int):
    """Peaky non-negative patterns; with ``zeros`` about a third of the points are exactly 0."""
    rng = np.random.default_rng(seed)
    x = rng.random(shape) ** 4
    if zeros:
        x[rng.random(shape) < 0.35] = 0.0
    return x / x.max(axis=-1, keepdims=True)


CASES = [(1, 500, False), (3, 997, True), (4, 1500, False), (2, 2000, True)]


@pytest.mark.parametrize("batch, n_points, zeros", CASES)
@pytest.mark.parametrize("target_batched", [False, True])
def test_metrics_match_numpy_references(batch, n_points, zeros, target_batched):
    p = random_patterns((batch, n_points), zeros=zeros, seed=n_points)
    q = random_patterns((batch, n_points) if target_batched else (n_points,), zeros=zeros, seed=n_points + 1)
    tp, tq = torch.from_numpy(p), torch.from_numpy(q)
    checks = {
        "cosine": (cosine_similarity(tp, tq), batched(ref_cosine, p, q)),
        "mse": (mean_squared_error(tp, tq), batched(ref_mse, p, q)),
        "entropy": (entropy_similarity(tp, tq), batched(ref_entropy_similarity, p, q)),
    }
    for half_width in (1.0, 0.257):  # ℓ = 100 and a non-integer ℓ = 25.7 grid points
        checks[f"cc{half_width}"] = (
            cross_correlation(tp, tq, half_width=half_width, step=0.01),
            batched(ref_cross_correlation, p, q, half_width=half_width, step=0.01),
        )
    for name, (value, expected) in checks.items():
        assert value.shape == (batch,) and value.dtype == torch.float64, name
        np.testing.assert_allclose(value.numpy(), expected, rtol=0, atol=1e-10, err_msg=name)


def test_cross_correlation_other_step_and_window_wider_than_pattern():
    p = random_patterns((2, 40), zeros=True, seed=3)
    q = random_patterns((40,), zeros=False, seed=4)
    for half_width, step in [(0.3, 0.1), (0.75, 0.02), (5.0, 0.01)]:  # ℓ = 3, 37.5, 500 > P
        value = cross_correlation(torch.from_numpy(p), torch.from_numpy(q), half_width=half_width, step=step)
        expected = batched(ref_cross_correlation, p, q, half_width=half_width, step=step)
        np.testing.assert_allclose(value.numpy(), expected, rtol=0, atol=1e-12)


def test_triangle_weights():
    w = triangle_weights(1.0, 0.01)
    assert w.shape == (199,) and float(w[99]) == 1.0 and float(w.min()) > 0
    assert triangle_weights(0.3, 0.1).tolist() == pytest.approx([1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3])
    assert triangle_weights(0.01, 0.01).tolist() == [1.0]
    assert triangle_weights(0.004, 0.01).tolist() == [1.0]
    with pytest.raises(ValueError):
        triangle_weights(0.0, 0.01)


def test_cross_correlation_reduces_to_cosine_for_one_grid_step():
    p = torch.from_numpy(random_patterns((5, 800), zeros=True, seed=7))
    q = torch.from_numpy(random_patterns((800,), zeros=False, seed=8))
    cosine = cosine_similarity(p, q)
    for half_width in (0.01, 0.005):  # ℓ = 1 (w(±1) = 0) and ℓ < 1
        torch.testing.assert_close(
            cross_correlation(p, q, half_width=half_width, step=0.01), cosine, rtol=0, atol=1e-12
        )
    # a wider window credits near misses: never below the cosine for non-negative patterns
    assert bool((cross_correlation(p, q, half_width=0.1) >= cosine - 1e-12).all())


# ---------------------------------------------------------------- gradients

GRAD_KWARGS = {"cross_correlation": {"half_width": 0.1, "step": 0.01}}  # ℓ = 10 points


@pytest.fixture
def one_thread():
    """Tiny FFTs: intra-op threads only add overhead to gradcheck's hundreds of calls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradcheck(name, one_thread):
    loss = loss_function(name, **GRAD_KWARGS.get(name, {}))
    g = torch.Generator().manual_seed(11)
    # strictly positive p: at an exact zero the clamp / 0·log 0 make the loss one-sided
    p = (0.05 + torch.rand(3, 80, generator=g, dtype=torch.float64)).requires_grad_()
    q = torch.rand(80, generator=g, dtype=torch.float64)
    q[::7] = 0.0
    assert torch.autograd.gradcheck(lambda x: loss(x, q), (p,))
    q_batched = torch.rand(3, 80, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: loss(x, q_batched), (p,))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_finite_values_and_gradients_with_zeros(name):
    p = torch.from_numpy(random_patterns((4, 300), zeros=True, seed=21)).requires_grad_()
    q = torch.from_numpy(random_patterns((300,), zeros=True, seed=22))
    q[:50] = 0.0
    p.data[:, 250:] = 0.0
    value = LOSSES[name](p, q)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(p.grad).all()


def test_entropy_handles_negative_noise_and_disjoint_support():
    q = torch.tensor([1.0, 0.5, 0.0, 0.0], dtype=torch.float64)
    p = torch.tensor([[1.0, 0.5, -1e-12, 0.0], [0.0, 0.0, 0.3, 1.0]], dtype=torch.float64, requires_grad=True)
    value = entropy_similarity(p, q)
    value.sum().backward()
    torch.testing.assert_close(value.detach(), torch.tensor([1.0, 0.0], dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.isfinite(p.grad).all()


# ---------------------------------------------------------------- invariances and bounds


@pytest.fixture
def pair():
    p = torch.from_numpy(random_patterns((6, 700), zeros=True, seed=31))
    q = torch.from_numpy(random_patterns((700,), zeros=False, seed=32))
    return p, q


@pytest.mark.parametrize("name", ["cosine", "entropy", "cross_correlation"])
def test_scale_invariance(pair, name):
    p, q = pair
    f = SIMILARITIES[name]
    torch.testing.assert_close(f(3.7 * p, q), f(p, q), rtol=0, atol=1e-12)
    torch.testing.assert_close(f(p, 0.25 * q), f(p, q), rtol=0, atol=1e-12)


def test_mse_is_not_scale_invariant(pair):
    p, q = pair
    assert bool((mean_squared_error(3.7 * p, q) - mean_squared_error(p, q)).abs().min() > 1e-3)


def test_identity(pair):
    p, _ = pair
    for name in ("cosine", "entropy", "cross_correlation"):
        torch.testing.assert_close(SIMILARITIES[name](p, p), torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-12)
        torch.testing.assert_close(LOSSES[name](p, p), -torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-12)
    assert bool((mean_squared_error(p, p) == 0).all())


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_symmetry(pair, name):
    p, _ = pair
    q = torch.from_numpy(random_patterns((6, 700), zeros=False, seed=33))
    f = SIMILARITIES[name]
    torch.testing.assert_close(f(p, q), f(q, p), rtol=0, atol=1e-12)


def test_bounds(pair):
    p, q = pair
    for name in ("cosine", "entropy", "cross_correlation"):
        value = SIMILARITIES[name](p, q)
        assert bool(((value >= 0) & (value <= 1 + 1e-12)).all()), name
    assert bool((mean_squared_error(p, q) >= 0).all())


def test_losses_are_minus_similarities(pair):
    p, q = pair
    assert list(LOSSES) == list(SIMILARITIES) == list(LOSS_NAMES)
    for name in LOSS_NAMES:
        torch.testing.assert_close(LOSSES[name](p, q), -SIMILARITIES[name](p, q), rtol=0, atol=0)
    torch.testing.assert_close(LOSSES["mse"](p, q), mean_squared_error(p, q), rtol=0, atol=0)
    sims = all_similarities(p, q, half_width=0.2)
    assert list(sims) == list(LOSS_NAMES)
    torch.testing.assert_close(sims["cross_correlation"], cross_correlation(p, q, half_width=0.2))
    torch.testing.assert_close(sims["mse"], -mean_squared_error(p, q))


# ---------------------------------------------------------------- shapes, dtypes, names


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_target_broadcasting(pair, name):
    p, q = pair
    f = SIMILARITIES[name]
    expected = f(p, q)
    assert expected.shape == (6,)
    torch.testing.assert_close(f(p, q.expand(6, -1)), expected, rtol=0, atol=1e-13)
    torch.testing.assert_close(f(p, q[None]), expected, rtol=0, atol=1e-13)
    torch.testing.assert_close(f(p[2:3], q), expected[2:3], rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_float32(pair, name):
    p, q = pair
    f = SIMILARITIES[name]
    value = f(p.float(), q.float())
    assert value.dtype == torch.float32 and value.shape == (6,)
    torch.testing.assert_close(value.double(), f(p, q), rtol=0, atol=2e-5)
    # a float64 target is brought to the pattern's dtype
    assert f(p.float(), q).dtype == torch.float32


def test_shape_errors():
    p = torch.rand(2, 10)
    with pytest.raises(ValueError):
        cosine_similarity(p[0], p[0])
    with pytest.raises(ValueError):
        cosine_similarity(p, torch.rand(11))
    with pytest.raises(ValueError):
        cosine_similarity(p, torch.rand(3, 10))


def test_unknown_name_lists_valid_names():
    for lookup in (loss_function, similarity_function, simulator_overrides):
        with pytest.raises(ValueError) as info:
            lookup("l1")
        message = str(info.value)
        assert "'l1'" in message
        for name in LOSS_NAMES:
            assert repr(name) in message


def test_lookup_binds_keyword_arguments(pair):
    p, q = pair
    assert loss_function("cosine") is LOSSES["cosine"]
    narrow = similarity_function("cross_correlation", half_width=0.05)
    torch.testing.assert_close(narrow(p, q), cross_correlation(p, q, half_width=0.05), rtol=0, atol=0)
    assert not torch.allclose(narrow(p, q), cross_correlation(p, q))
    with pytest.raises(TypeError):
        loss_function("cosine", half_width=1.0)


def test_simulator_overrides():
    from xrdnb.pattern import XRDSettings

    assert simulator_overrides("mse") == {"hkl_max": 6}
    assert dataclasses.replace(XRDSettings(), **simulator_overrides("mse")).hkl_max == 6
    for name in ("cosine", "entropy", "cross_correlation"):
        assert simulator_overrides(name) == {}
    simulator_overrides("mse")["hkl_max"] = 99  # a copy: the table is not changed
    assert losses.SETTINGS_FOR_LOSS["mse"] == {"hkl_max": 6}


def test_fft_size():
    """The FFT length: the smallest even 2^a·3^b at or above n (the fast real-FFT sizes)."""
    assert losses._fft_size(18009) == 18432  # the SI grid's tail convolution: not the odd 18225
    for n in (1, 2, 7, 97, 1000, 9100, 9199, 18009):
        m = losses._fft_size(n)
        assert m >= n and m % 2 == 0 and _is_2_3_smooth(m)
        assert not any(j % 2 == 0 and _is_2_3_smooth(j) for j in range(n, m))


def _is_2_3_smooth(j):
    for prime in (2, 3):
        while j % prime == 0:
            j //= prime
    return j == 1


def test_doctests():
    result = doctest.testmod(losses, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
