"""Fused elementwise kernels, built ahead of time once per machine, with an eager fallback.

The simulator's hot loop evaluates a few window functions on ``(peaks, window)`` arrays
(:mod:`xrdnb.peak_shapes`). Written as tensor expressions they take some twenty passes over
memory in eager PyTorch; compiled into one loop they take one, about twice as fast for the
whole near field on a CPU. :func:`fused` compiles a function with AOTInductor
(``torch.export.export``, then ``torch._inductor.aoti_compile_and_package``) into a
shared library, once per machine, dtype and function source, and keeps it in
``$XDG_CACHE_HOME/xrdnb/kernels`` (``~/.cache/xrdnb/kernels``). A process then loads it in
milliseconds, so short runs and many worker processes pay nothing; the first use on a new
machine builds it (about 20 s per kernel and dtype; processes that need it at the same time
wait for one build). Shapes are dynamic, so one kernel serves every grid and batch.

The kernels are elementwise, so a value does not depend on where in the array it sits or
how many peaks share the call: a cell's rows are the same whether it runs alone or batched.
CUDA tensors, inputs with a dimension below 2, ``XRDNB_COMPILE=0`` in the environment, and
any failure to build (no C++ compiler, an unsupported platform; one warning) run the
function eagerly instead, in blocks of ``eager_rows`` rows so that the temporaries stay in
cache. The two agree to float rounding (``tests/test_fused.py``).

>>> import torch
>>> @fused(dims=(("n",),), example=lambda dtype, device: (torch.ones(4, dtype=dtype, device=device),))
... def square_plus_one(x):
...     return x * x + 1.0
>>> square_plus_one(torch.tensor([1.0, 2.0])).tolist()
[2.0, 5.0]
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["fused", "compile_enabled", "kernel_dir"]

ENV = "XRDNB_COMPILE"
"""Environment variable that turns the built kernels off when set to ``0`` (or ``false``, ``no``, ``off``)."""


def compile_enabled() -> bool:
    """Whether :func:`fused` functions use built kernels (``XRDNB_COMPILE`` is not ``0``/``false``/``no``/``off``)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def kernel_dir() -> Path:
    """Where built kernels are kept: ``$XDG_CACHE_HOME/xrdnb/kernels`` (default ``~/.cache``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "xrdnb" / "kernels"


def _kernel_path(fn: Callable, dtype: torch.dtype) -> Path:
    """The library of ``fn`` for ``dtype`` on this machine: named by source, torch and CPU capability."""
    key = "\n".join(
        [
            inspect.getsource(fn),
            torch.__version__,
            torch.backends.cpu.get_cpu_capability(),
            os.uname().machine if hasattr(os, "uname") else "",
            str(dtype),
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return kernel_dir() / f"{fn.__module__}.{fn.__name__}-{str(dtype).removeprefix('torch.')}-{digest}.pt2"


def _build(fn: Callable, dims: Sequence[tuple[str, ...]], example: Callable, dtype: torch.dtype, path: Path) -> None:
    """Export ``fn`` with dynamic ``dims`` and compile it to ``path`` (atomically, under a lock)."""
    from filelock import FileLock  # a dependency of torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():  # another process built it while this one waited
            return
        import torch._inductor

        class Module(torch.nn.Module):
            def forward(self, *args):
                return fn(*args)

        named: dict[str, Any] = {}
        shapes = tuple(
            {i: named.setdefault(name, torch.export.Dim(name, min=2)) for i, name in enumerate(names)} or None
            for names in dims
        )
        with warnings.catch_warnings():  # torch's own deprecation notices from inside export
            warnings.simplefilter("ignore", FutureWarning)
            exported = torch.export.export(Module(), example(dtype, "cpu"), dynamic_shapes=(shapes,))  # forward(*args)
        partial = path.with_suffix(f".{os.getpid()}.partial.pt2")
        torch._inductor.aoti_compile_and_package(exported, package_path=str(partial))
        os.replace(partial, path)


def fused(*, dims: Sequence[tuple[str, ...]], example: Callable, eager_rows: int | None = None) -> Callable:
    """Decorator: run the function as a kernel built ahead of time (see the module docstring).

    Parameters
    ----------
    dims
        one tuple per positional argument naming its dimensions (all dynamic, each at least
        2; equal names are equal sizes); ``()`` for a 0-d tensor.
    example
        ``example(dtype, device)`` returns example arguments for the export.
    eager_rows
        when running eagerly, call the function on blocks of that many rows of the
        arguments that have the first argument's leading size, concatenating the outputs
        along dim 0 (for elementwise functions); None: one call.
    """

    def wrap(fn: Callable) -> Callable:
        runners: dict[torch.dtype, Any] = {}
        failed: list[bool] = []

        def eager(*args):
            n = args[0].shape[0] if args and args[0].dim() else 0
            if eager_rows is None or n <= eager_rows:
                return fn(*args)
            blocks = [
                fn(*[a[i : i + eager_rows] if a.dim() and a.shape[0] == n else a for a in args])
                for i in range(0, n, eager_rows)
            ]
            if isinstance(blocks[0], tuple):
                return tuple(torch.cat(outputs) for outputs in zip(*blocks, strict=True))
            return torch.cat(blocks)

        def runner(dtype: torch.dtype):
            if dtype not in runners:
                path = _kernel_path(fn, dtype)
                if not path.exists():
                    _build(fn, dims, example, dtype, path)
                runners[dtype] = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
            return runners[dtype]

        @functools.wraps(fn)
        def call(*args):
            if (
                failed
                or not compile_enabled()
                or args[0].device.type != "cpu"
                or any(a.dim() and min(a.shape) < 2 for a in args)
            ):
                return eager(*args)
            try:
                run = runner(args[0].dtype)
            except Exception as exc:  # no compiler, unsupported platform: the eager function is exact too
                failed.append(True)
                first_line = (str(exc).splitlines() or [""])[0][:200]
                warnings.warn(
                    f"xrdnb: building the kernel {fn.__name__} failed ({type(exc).__name__}: {first_line}); "
                    f"running it eagerly (slower, same results to float rounding). Set {ENV}=0 to skip the attempt.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return eager(*args)
            outputs = run.run([a.contiguous() for a in args])
            return tuple(outputs) if len(outputs) > 1 else outputs[0]

        call.eager = eager  # type: ignore[attr-defined]
        return call

    return wrap
