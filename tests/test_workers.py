"""xrdnb.workers: one runner, one failure policy, in-process, on local processes (fork and forkserver)."""

import json
import os
import socket

import pytest
from conftest import XRDNB

from xrdnb.workers import run_tasks


def square_or_fail(x):
    if x == 3:
        raise ValueError("three is bad")
    return x * x


def die_on(x):
    if x == 2:
        os._exit(1)  # a worker killed mid-task
    return x


@pytest.mark.parametrize("workers, start_method", [(0, None), (2, None), (2, "fork"), (2, "spawn")])
def test_results_come_back_and_one_failure_costs_only_its_task(workers, start_method):
    results, errors = {}, {}
    run_tasks(
        square_or_fail,
        [(x,) for x in range(6)],
        on_result=lambda task, value: results.update({task[0]: value}),
        on_error=lambda task, exc: errors.update({task[0]: str(exc)}),
        workers=workers,
        start_method=start_method,
    )
    assert results == {0: 0, 1: 1, 2: 4, 4: 16, 5: 25}
    assert errors == {3: "three is bad"}


def test_without_on_error_the_exception_stops_the_run():
    with pytest.raises(ValueError, match="three"):
        run_tasks(square_or_fail, [(3,)], on_result=lambda task, value: None)


def test_a_dead_worker_fails_its_tasks_and_not_the_finished_ones():
    results, errors = {}, {}
    run_tasks(
        die_on,
        [(0,), (1,), (2,)],
        on_result=lambda task, value: results.update({task[0]: value}),
        on_error=lambda task, exc: errors.update({task[0]: str(exc)}),
        workers=1,
    )
    assert 2 in errors and "died" in errors[2]
    assert set(results) | set(errors) == {0, 1, 2}


def test_unknown_start_method_is_refused():
    with pytest.raises(ValueError, match="start method"):
        run_tasks(square_or_fail, [(1,)], on_result=lambda t, v: None, workers=1, start_method="teleport")


def test_workers_do_not_outlive_a_killed_sweep(tmp_path):
    """kill -9 of `xrdnb sweep` ends its worker processes too (nothing runs on unattended)."""
    import signal
    import subprocess
    import time

    cmd = [*XRDNB, "sweep", "--profile", "smoke", "--workers", "2", "--results", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    children = []
    while time.time() < deadline and len(children) < 2:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True).stdout
        children = [int(p) for p in out.split()]
        time.sleep(0.1)
    assert children, "the sweep started no workers"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    alive = children
    while alive and time.time() < deadline:
        alive = [p for p in alive if subprocess.run(["ps", "-p", str(p)], capture_output=True).returncode == 0]
        time.sleep(0.2)
    assert not alive, f"workers {alive} outlived the killed sweep"


class _Cell:
    def __init__(self, cell_id):
        self.cell_id = cell_id


def _square_or_fail(cell, x):
    if x < 0:
        raise ValueError("negative")
    return x * x


@pytest.mark.parametrize("workers", [0, 2])
def test_run_claimed_leaves_held_cells_to_their_run_reports_failures_and_releases_every_claim(tmp_path, workers):
    from xrdnb import store
    from xrdnb.workers import run_claimed

    cells = {name: _Cell(name) for name in ("a", "b", "held", "bad")}
    tasks = [(cells["a"], 2), (cells["b"], 3), (cells["held"], 4), (cells["bad"], -1)]
    path = lambda cell: tmp_path / f"{cell.cell_id}.csv"  # noqa: E731
    written, done = {}, []
    holder = {"host": socket.gethostname(), "pid": os.getppid(), "token": store.process_token(os.getppid())}
    (tmp_path / "held.claim").write_text(json.dumps(holder))  # another live run (the parent process) holds it
    errors = run_claimed(
        _square_or_fail,
        tasks,
        path=path,
        is_done=lambda cell: cell.cell_id in written,
        write=lambda cell, out: written.update({cell.cell_id: out}),
        on_done=lambda: done.append(1),
        workers=workers,
        start_method="spawn" if workers else None,
    )
    assert written == {"a": 4, "b": 9} and len(done) == 2
    assert errors == {"bad": "ValueError: negative"}
    assert [p.name for p in tmp_path.glob("*.claim")] == ["held.claim"]
