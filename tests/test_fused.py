"""The fused window kernels: compiled and eager agree, rows do not depend on the batch, fallbacks work."""

from __future__ import annotations

import warnings

import pytest
import torch

from xrdnb import fused as fused_module
from xrdnb.fused import compile_enabled, fused
from xrdnb.peak_shapes import _window_functions, _window_values

HALF, STEP, ETA = 93, 0.01, 0.1
R_OUTER = 2.0 * 0.458
R_INNER = R_OUTER - 0.75 * 0.458


def _peaks(n: int, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g, dtype=torch.float64) * 9000
    centre = torch.round(u).to(torch.int64)
    intensity = torch.rand(n, generator=g, dtype=torch.float64)
    fwhm = 0.316 + 0.142 * torch.rand(n, generator=g, dtype=torch.float64)
    return u.to(dtype), intensity.to(dtype), fwhm.to(dtype), centre


def _args(n, dtype=torch.float32):
    offsets = torch.arange(-HALF, HALF + 1, dtype=dtype) * STEP
    return (*_peaks(n, dtype), offsets, *(torch.tensor(v, dtype=dtype) for v in (STEP, ETA, R_INNER, R_OUTER)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_window_functions_agree_with_eager(dtype):
    args = _args(3000, dtype)
    values, derivatives = _window_functions(*args)
    eager_values, eager_derivatives = _window_functions.eager(*args)
    assert values.shape == (3000, 2 * HALF + 1) and derivatives.shape == (3000, 3, 2 * HALF + 1)
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(values, eager_values, rtol=0, atol=tol)
    torch.testing.assert_close(derivatives, eager_derivatives, rtol=0, atol=tol * 1e3)
    torch.testing.assert_close(_window_values(*args), eager_values, rtol=0, atol=tol)
    # the values are the first row of the derivatives, times the intensity
    torch.testing.assert_close(values, derivatives[:, 0] * args[1].unsqueeze(-1), rtol=0, atol=tol)


def test_a_peak_gets_the_same_bits_whatever_the_batch():
    """Elementwise kernels: a cell's rows do not depend on how many peaks share the call."""
    args = _args(1001)
    values, derivatives = _window_functions(*args)
    for lo, hi in ((3, 1001), (0, 17), (500, 533), (1000, 1001)):
        part = tuple(a[lo:hi] for a in args[:4]) + args[4:]  # the peaks; the window and constants stay
        v, d = _window_functions(*part)
        assert torch.equal(v, values[lo:hi]) and torch.equal(d, derivatives[lo:hi])


def test_eager_blocks_equal_one_eager_call(monkeypatch):
    monkeypatch.setenv("XRDNB_COMPILE", "0")
    args = _args(2500, torch.float64)
    raw = _window_functions.__wrapped__  # the function itself (functools.wraps)
    values, derivatives = raw(*args)
    by_blocks = fused(dims=((),), example=None, eager_rows=700)(raw)
    blocked_values, blocked_derivatives = by_blocks(*args)
    assert torch.equal(blocked_values, values) and torch.equal(blocked_derivatives, derivatives)


def _one_d(dtype, device):
    return (torch.ones(4, dtype=dtype, device=device),)


def test_compile_switch_reads_the_environment(monkeypatch):
    monkeypatch.setenv("XRDNB_COMPILE", "off")
    assert not compile_enabled()

    def built(*args, **kwargs):
        raise AssertionError("nothing is built with XRDNB_COMPILE=off")

    monkeypatch.setattr(fused_module, "_build", built)
    calls = []

    def spy(x):
        calls.append(x.shape)
        return x + 1

    f = fused(dims=(("n",),), example=_one_d)(spy)
    assert f(torch.ones(3)).tolist() == [2.0, 2.0, 2.0] and calls == [(3,)]  # ran eagerly, once
    monkeypatch.setenv("XRDNB_COMPILE", "1")
    assert compile_enabled()


def test_a_failed_build_warns_once_and_runs_eagerly(monkeypatch, tmp_path):
    monkeypatch.setenv("XRDNB_COMPILE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no kernel built yet
    assert fused_module.kernel_dir() == tmp_path / "xrdnb" / "kernels"

    def broken_build(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nsecond line")

    monkeypatch.setattr(fused_module, "_build", broken_build)

    def double(x):
        return 2 * x

    f = fused(dims=(("n",),), example=_one_d)(double)
    with pytest.warns(RuntimeWarning, match="building the kernel double failed .*no C\\+\\+ compiler found"):
        assert f(torch.ones(2)).tolist() == [2.0, 2.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(torch.ones(2)).tolist() == [2.0, 2.0]  # no second warning, no second attempt


def test_small_inputs_and_cuda_run_eagerly(monkeypatch):
    monkeypatch.setattr(fused_module, "compile_enabled", lambda: True)
    for n in (0, 1):  # the kernels are built for dimensions >= 2
        values = _window_values(*_args(n))
        assert values.shape == (n, 2 * HALF + 1)
        torch.testing.assert_close(values, _window_values.eager(*_args(n)), rtol=0, atol=0)


def test_a_kernel_is_named_by_its_source_dtype_and_machine():
    path32 = fused_module._kernel_path(_window_functions.__wrapped__, torch.float32)
    path64 = fused_module._kernel_path(_window_functions.__wrapped__, torch.float64)
    other = fused_module._kernel_path(_window_values.__wrapped__, torch.float32)
    assert len({path32, path64, other}) == 3
    assert path32.name.startswith("xrdnb.peak_shapes._window_functions-float32-") and path32.suffix == ".pt2"
