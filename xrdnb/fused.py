"""Fused elementwise kernels: :func:`torch.compile` where it works, the same function eagerly where not.

The simulator's hot loop evaluates a few window functions on ``(peaks, window)`` arrays
(:mod:`xrdnb.peak_shapes`). Written as tensor expressions they take some twenty passes over
memory in eager PyTorch; compiled (TorchInductor: a C++/OpenMP loop on CPUs, Triton on GPUs)
they take one, about four times faster on a CPU. The compiled kernels are elementwise, so
each value does not depend on where in the array it sits or how many peaks there are: a
cell's rows are the same whether it runs alone or batched with others.

:func:`fused` wraps a function so that the first call compiles it (about 5–10 s per process
and dtype; TorchInductor caches the generated code on disk). Where compiling fails (no C++
compiler, an unsupported platform) it warns once and runs the function eagerly from then on;
the results agree to float rounding (the tests compare both). ``XRDNB_COMPILE=0`` in the
environment turns compilation off (e.g. to debug, or where a first-call delay matters more
than speed); it is read at each call, so it can be set in a running session.

>>> import torch
>>> square_plus_one = fused(lambda x: x * x + 1.0)
>>> square_plus_one(torch.tensor([1.0, 2.0])).tolist()
[2.0, 5.0]
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["fused", "compile_enabled"]

ENV = "XRDNB_COMPILE"
"""Environment variable that turns compilation off when set to ``0`` (or ``false``, ``no``, ``off``)."""


def compile_enabled() -> bool:
    """Whether :func:`fused` functions compile (``XRDNB_COMPILE`` is not ``0``/``false``/``no``/``off``)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def fused(fn: Callable[..., Any] | None = None, *, eager_rows: int | None = None) -> Any:
    """``fn`` compiled with ``torch.compile(dynamic=True)`` on first use, or ``fn`` itself.

    Inputs with no element run eagerly (a compiled graph would be specialised to size 0).
    A failure to compile falls back to ``fn`` for the rest of the process, with one warning.
    ``eager_rows``: when running eagerly, call ``fn`` on blocks of that many rows of the
    tensor arguments (those with the first argument's leading size) and concatenate the
    outputs along dim 0, so that an elementwise ``fn``'s temporaries stay in cache.
    Use as ``@fused`` or ``@fused(eager_rows=1024)``.
    """
    if fn is None:
        return functools.partial(fused, eager_rows=eager_rows)
    compiled: dict[str, Any] = {}

    def eager(*args, **kwargs):
        n = getattr(args[0], "shape", (0,))[0] if args else 0
        if eager_rows is None or n <= eager_rows:
            return fn(*args, **kwargs)
        import torch

        blocks = []
        for i in range(0, n, eager_rows):
            part = [a[i : i + eager_rows] if getattr(a, "shape", ())[:1] == (n,) else a for a in args]
            blocks.append(fn(*part, **kwargs))
        if isinstance(blocks[0], tuple):
            return tuple(torch.cat(outputs) for outputs in zip(*blocks, strict=True))
        return torch.cat(blocks)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not compile_enabled() or compiled.get("failed") or any(getattr(a, "numel", lambda: 1)() == 0 for a in args):
            return eager(*args, **kwargs)
        if "fn" not in compiled:
            import torch

            compiled["fn"] = torch.compile(fn, dynamic=True)
        try:
            return compiled["fn"](*args, **kwargs)
        except Exception as exc:  # no compiler, unsupported platform: the eager function is exact too
            compiled["failed"] = True
            first_line = (str(exc).splitlines() or [""])[0][:200]
            warnings.warn(
                f"xrdnb: torch.compile of {fn.__name__} failed ({type(exc).__name__}: {first_line}); "
                f"running it eagerly (slower, same results to float rounding). Set {ENV}=0 to skip the attempt.",
                RuntimeWarning,
                stacklevel=2,
            )
            return eager(*args, **kwargs)

    call.eager = eager  # type: ignore[attr-defined]
    return call
