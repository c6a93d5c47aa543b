"""Where independent tasks run: this process, local worker processes, or a Dask cluster.

One runner and one failure policy for the study's resumable experiments (sweep cells,
sensitivity runs): :func:`run_tasks` calls ``function(*task)`` for every task and hands
each result to ``on_result`` *in the calling process*, as tasks finish, so that the
caller writes its files itself (atomically, one writer). A task that raises is handed to
``on_error`` and the others go on; nothing is retried (a re-run of a resumable sweep
retries what is missing).

* ``workers=0``: in this process, in order.
* ``workers=N``: ``N`` local processes. By default they are forked from a
  *forkserver* that imported ``preload`` once, so they start in milliseconds with torch
  and pymatgen already imported, and they are safe to start from a process that has used
  threads (a Jupyter kernel, a torch computation). Where the platform has no forkserver
  (Windows) they are spawned. The command line, whose process has computed nothing yet,
  forks them directly (``start_method="fork"``), which saves the server's start-up.
* ``scheduler="tcp://host:8786"``: the tasks are submitted to that Dask cluster.

Each task should set its own thread count (the sweep's cells run on one intra-op
thread), so that results do not depend on where a task ran.

>>> from xrdnb.workers import run_tasks
>>> out = {}
>>> run_tasks(pow, [(2, 3), (3, 2)], on_result=lambda task, value: out.update({task: value}))
>>> out
{(2, 3): 8, (3, 2): 9}
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["START_METHODS", "available_cores", "resolve_workers", "run_tasks", "run_claimed"]

Task = tuple


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | str | None, n_tasks: int) -> int:
    """Worker processes for ``n_tasks`` tasks: ``"auto"``/``None`` → one per core, at most one per task.

    ``0`` (or a single task under ``"auto"``) means in-process. Raises ValueError for a
    negative count or an unknown word.
    """
    if workers is None or workers == "auto":
        count = min(available_cores(), n_tasks)
        return count if count > 1 else 0
    text = str(workers).strip()
    if isinstance(workers, bool) or not text.isdigit():
        raise ValueError(f"workers must be a whole number >= 0 or 'auto', got {workers!r}")
    return int(text)


START_METHODS = ("forkserver", "fork", "spawn")
"""How local workers start (start methods of the standard library's ``multiprocessing``)."""


def _context(start_method: str | None, preload: Sequence[str]):
    methods = multiprocessing.get_all_start_methods()
    method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
    if method not in START_METHODS or method not in methods:
        raise ValueError(
            f"start method {method!r} is not available here; choose from {[m for m in START_METHODS if m in methods]}"
        )
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(list(preload))  # read when the server starts (once per process)
    return context


def run_tasks(
    function: Callable[..., Any],
    tasks: Iterable[Task],
    *,
    on_result: Callable[[Task, Any], None],
    on_error: Callable[[Task, BaseException], None] | None = None,
    workers: int = 0,
    scheduler: str | None = None,
    preload: Sequence[str] = (),
    start_method: str | None = None,
) -> None:
    """Call ``function(*task)`` for each task; results go to ``on_result(task, result)`` here.

    Parameters
    ----------
    function
        a module-level function (it is pickled to the workers).
    tasks
        argument tuples.
    on_result
        called in this process, in the order tasks finish.
    on_error
        called with the task and its exception (default: re-raise, which stops the run
        after the tasks already finished were handed on). A worker process that dies
        (killed, out of memory) fails the tasks it had not returned.
    workers
        0: in this process; N > 0: N local processes.
    scheduler
        address of a running Dask scheduler; overrides ``workers``.
    preload
        modules the forkserver imports once for all local workers (e.g. ``("torch",)``).
    start_method
        ``"forkserver"`` (default where available, else ``"spawn"``), or ``"fork"``: the
        workers are copies of this process and start at once with everything it imported,
        which is safe only while it has run no multi-threaded computation (OpenMP keeps
        no state across a fork) and has not initialised CUDA: e.g. a fresh command-line
        process.
    """
    tasks = list(tasks)

    def failed(task, exc):
        if on_error is None:
            raise exc
        on_error(task, exc)

    if scheduler:
        _run_dask(function, tasks, scheduler, on_result, failed)
    elif workers and tasks:
        _run_local(function, tasks, int(workers), _context(start_method, preload), on_result, failed)
    else:
        for task in tasks:
            try:
                result = function(*task)
            except Exception as exc:  # one broken task must not cost the others
                failed(task, exc)
                continue
            on_result(task, result)


def run_claimed(
    function: Callable[..., Any],
    tasks: Sequence[Task],
    *,
    path: Callable[[Any], Any],
    is_done: Callable[[Any], bool],
    write: Callable[[Any, Any], None],
    on_done: Callable[[], None] = lambda: None,
    who: str = "xrdnb",
    **run: Any,
) -> dict[str, str]:
    """:func:`run_tasks` over the cells of a resumable experiment, one writer per cell.

    ``task[0]`` is a cell (with a ``cell_id``), ``path(cell)`` its result file, beside which
    :func:`xrdnb.store.claim` keeps the cell's claim; ``is_done(cell)`` says whether it is
    finished, ``write(cell, output)`` saves ``function(*task)`` here, as it comes, then
    ``on_done()`` (e.g. a progress bar). In this process (no ``workers``, no ``scheduler`` in
    ``run``) each cell is claimed as it starts, so cells that another run finished or holds
    meanwhile are skipped (and their claims kept); otherwise every cell is claimed first and those another run holds
    are left to it (one line on stderr, prefixed ``who``). Claims are released whatever
    happens. Returns ``{cell_id: error line}`` of the cells that failed; the others are saved.
    """
    import sys

    from . import store

    errors: dict[str, str] = {}

    def finished(task, output) -> None:
        if output is not None:
            write(task[0], output)
            on_done()
        store.release(path(task[0]))

    def failed(task, exc) -> None:
        errors[task[0].cell_id] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        store.release(path(task[0]))

    if not (run.get("workers") or run.get("scheduler")):

        def claimed(*task):
            if is_done(task[0]) or not store.claim(path(task[0])):
                return None  # finished meanwhile, or being computed by another run
            return function(*task)

        run_tasks(claimed, tasks, on_result=finished, on_error=failed, **run)
        return errors
    held = [t for t in tasks if store.claim(path(t[0]))]
    if len(held) < len(tasks):
        print(f"{who}: {len(tasks) - len(held)} cells are being computed by another run; left to it", file=sys.stderr)
    try:
        run_tasks(function, held, on_result=finished, on_error=failed, **run)
    finally:
        for task in held:
            if not is_done(task[0]):
                store.release(path(task[0]))
    return errors


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the process that started the pool ends.

    A worker blocked on its task queue would otherwise outlive a parent killed with
    ``kill -9`` (its siblings keep the queue open). On Linux the kernel sends SIGTERM
    when the worker's parent (the sweep, or its forkserver, which ends with the sweep)
    dies; elsewhere nothing is done.
    """
    import signal
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
    try:
        os.kill(parent, 0)
    except ProcessLookupError:  # the parent died before the signal was armed
        os._exit(1)


def _run_local(function, tasks, workers, context, on_result, failed) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)), mp_context=context, initializer=_die_with_parent, initargs=(os.getpid(),)
    )
    with pool:
        futures = {pool.submit(function, *task): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool:
                failed(task, RuntimeError("its worker process died (killed or out of memory)"))
                continue
            except Exception as exc:
                failed(task, exc)
                continue
            on_result(task, result)


def _run_dask(function, tasks, scheduler, on_result, failed) -> None:
    from dask.distributed import Client, as_completed

    client = Client(scheduler)
    try:
        futures = {client.submit(function, *task, pure=False): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                result = future.result()
            except Exception as exc:
                failed(task, exc)
                continue
            on_result(task, result)
    finally:
        client.close()
