"""Sweeps: grid expansion, atomic per-cell results, resume after a kill, Dask execution."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_xrdnb, staged_spec

from xrdnb import sweep as sw

SMOKE = sw.PROFILES["smoke"]


def rows_of(folder):
    rows = sw.load_results(folder, SMOKE.cells())
    return rows.drop(columns=["seconds"]).sort_values(["cell_id", "copy"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    sw.run_sweep(SMOKE, folder, progress=False)
    return rows_of(folder)


def test_grid_expansion():
    book = sw.PROFILES["book"].cells()
    assert len(book) == 10 * 5 * (4 + 1) + 10 * 5 * 4  # lattice: 4 losses + constrained cosine
    assert len({c.cell_id for c in book}) == len(book)
    constrained = [c for c in book if c.constrained]
    assert {c.loss for c in constrained} == {"cosine"} and {c.noise_type for c in constrained} == {"lattice"}
    paper = sw.PROFILES["paper"]
    assert paper.n_copies == 16 and paper.max_steps == 30_000 and paper.patience == 1000 and paper.tol == 1e-4


def test_rows_are_tidy(reference):
    cells = SMOKE.cells()
    assert len(reference) == len(cells) * SMOKE.n_copies
    for column in (
        "structure",
        "noise_type",
        "noise_level",
        "loss",
        "constrained",
        "lr",
        "seed",
        "ltol",
        "amd_k",
        "match",
        "similarity_cosine",
        "start_similarity_cosine",
        "final_a",
        "true_a",
        "stop_reason",
    ):
        assert column in reference.columns
    assert set(reference.stop_reason) <= {"converged", "max_steps", "invalid_lattice"}


def test_killed_sweep_resumes_to_identical_rows(tmp_path, reference):
    cmd = [sys.executable, "-m", "xrdnb.cli", "sweep", "--profile", "smoke", "--results", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells_dir = tmp_path / "cells"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cells_dir.glob("*.csv"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(cells_dir.glob("*.csv")))
    assert 3 <= done_before < len(SMOKE.cells())
    resumed = sw.run_sweep(SMOKE, tmp_path, progress=False)
    assert len(list(cells_dir.glob("*.csv"))) == len(SMOKE.cells())
    counts = resumed.groupby("cell_id").size()
    assert (counts == SMOKE.n_copies).all() and len(counts) == len(SMOKE.cells())
    pd.testing.assert_frame_equal(rows_of(tmp_path), reference)


def test_rerun_skips_finished_cells(tmp_path, reference):
    sw.run_sweep(SMOKE.cells()[:2], tmp_path, progress=False)
    first = sw.cell_path(tmp_path, SMOKE.cells()[0])
    stamp = first.stat().st_mtime_ns
    sw.run_sweep(SMOKE.cells()[:2], tmp_path, progress=False)
    assert first.stat().st_mtime_ns == stamp


def test_local_workers_and_dask_cluster_give_same_rows(tmp_path, reference):
    from dask.distributed import LocalCluster

    sw.run_sweep(SMOKE, tmp_path / "workers", workers=2, progress=False)
    pd.testing.assert_frame_equal(rows_of(tmp_path / "workers"), reference)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sw.run_sweep(SMOKE, tmp_path / "cluster", scheduler=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(rows_of(tmp_path / "cluster"), reference)


def test_config_file_and_errors(tmp_path):
    config = tmp_path / "sweep.yml"
    config.write_text(
        "structures: [SrTe]\nlattice_levels: [0.05]\ncoordinate_levels: []\n"
        "losses: [cosine]\nn_copies: 2\nmax_steps: 3\n"
    )
    out = run_xrdnb("sweep", "--config", str(config), "--results", str(tmp_path / "r"), "--quiet", check=True)
    assert "2 cells, 4 rows" in out.stdout
    with pytest.raises(ValueError, match="unknown sweep settings"):
        sw.SweepSpec.from_dict({"structures": ["SrTe"], "lattice_levels": [], "coordinate_levels": [], "speed": 3})
    bad = subprocess.run(
        [sys.executable, "-m", "xrdnb.cli", "sweep", "--profile", "huge"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown profile" in bad.stderr


def test_device_is_checked_before_any_cell_runs(tmp_path):
    from xrdnb.device import resolve_device

    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == "cpu"
    assert resolve_device("auto") == resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("banana")
    with pytest.raises(ValueError, match="runs on 'cpu' or 'cuda'"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            sw.run_sweep(SMOKE, tmp_path / "r", device="cuda", progress=False)
        assert not (tmp_path / "r" / "cells").exists()  # nothing ran, nothing written
        bad = subprocess.run(
            [sys.executable, "-m", "xrdnb.cli", "sweep", "--device", "cuda", "--results", str(tmp_path / "cli")],
            capture_output=True,
            text=True,
        )
        assert bad.returncode == 2 and "sees no CUDA GPU" in bad.stderr


def test_rows_record_the_device(reference):
    assert set(reference["device"]) == {"cpu"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_cells_agree_with_cpu(tmp_path, reference):
    """The same copies (drawn on the CPU) optimised on the GPU end where the CPU run ends."""
    sw.run_sweep(SMOKE, tmp_path / "gpu", device="cuda", progress=False)
    gpu = rows_of(tmp_path / "gpu")
    assert set(gpu["device"]) == {"cuda"}
    for column in ("start_a", "true_a", "noise_level"):
        np.testing.assert_array_equal(gpu[column], reference[column])
    np.testing.assert_allclose(gpu["final_a"], reference["final_a"], rtol=1e-4)
    np.testing.assert_allclose(gpu["final_loss"], reference["final_loss"], rtol=1e-3, atol=1e-5)


def test_batched_cells_give_the_per_cell_rows(tmp_path, reference):
    """The batched engine (one program for all cells of a structure and noise type, the GPU
    path) on the CPU: same cells, copies, stopping decisions and matches as the per-cell
    run, and the same numbers to rounding (float32, 15 steps)."""
    sw.run_sweep(SMOKE, tmp_path / "batched", batch_cells=True, progress=False)
    batched = rows_of(tmp_path / "batched")
    assert list(batched.columns) == list(reference.columns)
    floats = [c for c in reference.columns if reference[c].dtype.kind == "f"]
    exact = [c for c in reference.columns if c not in floats]
    pd.testing.assert_frame_equal(batched[exact], reference[exact])
    pd.testing.assert_frame_equal(batched[floats], reference[floats], rtol=1e-5, atol=1e-7)


def test_batched_cells_on_workers_and_in_process_agree(tmp_path):
    cells = SMOKE.cells()[:4]
    sw.run_sweep(cells, tmp_path / "here", batch_cells=True, progress=False)
    sw.run_sweep(cells, tmp_path / "workers", batch_cells=True, workers=2, progress=False)
    here = sw.load_results(tmp_path / "here", cells).drop(columns="seconds")
    there = sw.load_results(tmp_path / "workers", cells).drop(columns="seconds")
    pd.testing.assert_frame_equal(here, there)


def test_batch_groups_keep_structure_noise_type_and_size():
    cells = sw.PROFILES["book"].cells()
    groups = sw.batch_groups(cells, max_copies=12)
    assert sorted(c.cell_id for g in groups for c in g) == sorted(c.cell_id for c in cells)
    for group in groups:
        assert len({(c.structure, c.noise_type, c.dtype) for c in group}) == 1
        assert sum(c.n_copies for c in group) <= 12
    with pytest.raises(ValueError, match="one structure"):
        sw.run_cells_batched([cells[0], cells[-1]])


def test_default_workers_is_one_per_core(tmp_path):
    from xrdnb.workers import available_cores, resolve_workers

    assert resolve_workers("auto", 100) == (available_cores() if available_cores() > 1 else 0)
    assert resolve_workers("auto", 1) == 0  # one cell: in this process
    assert resolve_workers(3, 1) == 3 and resolve_workers("2", 5) == 2 and resolve_workers(0, 5) == 0
    for bad in (-1, "-1", "two", 1.5, True):
        with pytest.raises(ValueError, match="whole number"):
            resolve_workers(bad, 4)
    out = subprocess.run(
        [sys.executable, "-m", "xrdnb.cli", "sweep", "--profile", "smoke", "--workers", "-1", "--list"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "whole number" in out.stderr and "Traceback" not in out.stderr


def test_two_sweeps_on_one_folder_share_the_work(tmp_path):
    """Two `xrdnb sweep` processes at once on one results folder, twice: every cell once, only its
    own rows, no claim or temporary file left, and a third run finds nothing to do."""
    folder = tmp_path / "shared"
    cmd = [
        sys.executable,
        "-m",
        "xrdnb.cli",
        "sweep",
        "--profile",
        "smoke",
        "--results",
        str(folder),
        "--quiet",
        "--workers",
        "0",
    ]
    for _ in range(2):
        procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
    cells = SMOKE.cells()
    for cell in cells:
        rows = pd.read_csv(sw.cell_path(folder, cell))
        assert len(rows) == cell.n_copies and set(rows["cell_id"]) == {cell.cell_id}
    leftovers = [p.name for p in (folder / "cells").iterdir() if p.suffix not in (".csv", ".npz")]
    assert leftovers == []
    stamps = {p.name: p.stat().st_mtime_ns for p in (folder / "cells").iterdir()}
    out = subprocess.run([*cmd, "--list"], capture_output=True, text=True, check=True).stdout
    assert out.count("done") == len(cells) and "todo" not in out
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "cells").iterdir()} == stamps


def test_incomplete_result_files_are_recomputed(tmp_path, reference):
    cells = SMOKE.cells()[:2]
    sw.run_sweep(cells, tmp_path, progress=False)
    empty, truncated = (sw.cell_path(tmp_path, c) for c in cells)
    empty.write_text("")
    truncated.write_text("".join(truncated.read_text().splitlines(keepends=True)[:-1]))
    assert not sw.is_finished(tmp_path, cells[0]) and not sw.is_finished(tmp_path, cells[1])
    assert sw.load_results(tmp_path, cells).empty
    rows = sw.run_sweep(cells, tmp_path, progress=False)
    assert len(rows) == 2 * SMOKE.n_copies and sw.is_finished(tmp_path, cells[0])


def test_a_live_claim_is_respected_and_a_dead_one_taken_over(tmp_path):
    import json
    import socket

    cell = SMOKE.cells()[0]
    claim = sw.cell_path(tmp_path, cell).with_suffix(".claim")
    claim.parent.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        token = sw._process_token(sleeper.pid)
        claim.write_text(json.dumps({"host": socket.gethostname(), "pid": sleeper.pid, "token": token}))
        assert not sw._claim(tmp_path, cell)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sw._claim(tmp_path, cell)  # its process is gone: stale
    assert json.loads(claim.read_text())["pid"] == os.getpid()


def test_a_two_stage_sweep_runs_its_selection_first_then_only_the_chosen_rate(tmp_path):
    spec = staged_spec()
    rows = sw.run_stages(spec, tmp_path, progress=False)
    selection, evaluation = rows[rows.seed == 1], rows[rows.seed == 0]
    assert sorted(selection.lr) == [1e-3, 1e-2] and len(evaluation) == 2
    from xrdnb.selection import choose_learning_rates

    assert evaluation.lr.unique().tolist() == choose_learning_rates(selection).lr.tolist()
    # resumable like any sweep: a second run computes nothing and returns the same rows
    again = sw.run_stages(spec, tmp_path, progress=False)
    key = ["cell_id", "copy"]
    pd.testing.assert_frame_equal(
        again.sort_values(key).reset_index(drop=True), rows.sort_values(key).reset_index(drop=True)
    )
    # the command lists the evaluation as pending until the selection has run
    config = tmp_path / "staged.yml"
    from dataclasses import asdict

    import yaml

    config.write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()}))
    listed = run_xrdnb("sweep", "--config", str(config), "--results", str(tmp_path / "fresh"), "--list")
    assert listed.returncode == 0, listed.stderr
    assert "# evaluation: after the selection" in listed.stdout and listed.stdout.count("todo") == 2


def test_batch_groups_are_balanced_so_no_batch_is_a_small_remainder():
    cells = [
        sw.Cell("U2Ti", "lattice", 0.05, "cosine", False, lr, 1, n_copies=1) for lr in np.linspace(1e-4, 1e-2, 100)
    ]
    sizes = [sum(c.n_copies for c in g) for g in sw.batch_groups(cells, max_copies=32)]
    assert sizes == [25, 25, 25, 25]
    assert [len(g) for g in sw.batch_groups(cells, max_copies=128)] == [100]
    sixteen = [sw.Cell("U2Ti", "lattice", lv, "cosine", False, 1e-3, 0) for lv in (0.01, 0.05, 0.1)]
    assert [len(g) for g in sw.batch_groups(sixteen, max_copies=40)] == [2, 1]  # never above the limit


def test_stage_batching_is_one_rule_for_every_stage_and_device():
    one_copy = [sw.Cell("U2Ti", "lattice", 0.05, "cosine", False, lr, 1, n_copies=1) for lr in (1e-3, 1e-2)]
    sixteen = [sw.Cell("U2Ti", "lattice", 0.05, "cosine", False, 1e-3, 0)]
    plan = sw.stage_batching
    assert plan("selection", one_copy, "cpu") == sw.Batching(True, sw.CPU_BATCH_COPIES)
    assert plan("selection", one_copy + sixteen, "cpu").batched is False  # a 16-copy cell runs on its own
    assert plan("evaluation", one_copy, "cpu").batched is False
    assert plan(None, sixteen, "cuda") == sw.Batching(True, sw.CUDA_BATCH_COPIES)
    assert plan("evaluation", sixteen, "cuda:1", scheduler="tcp://host:8786").batched is False
    assert plan("selection", one_copy, "cpu", batch_cells=False, batch_copies=8) == sw.Batching(False, 8)
    assert plan("selection", [], "cpu").batched is False
    assert plan("selection", one_copy, "cpu").units(one_copy) == [one_copy]
    assert plan("evaluation", one_copy, "cpu").units(one_copy) == [[c] for c in one_copy]


def test_a_resumed_batched_sweep_forms_the_batches_of_an_uninterrupted_one(tmp_path):
    import shutil

    cells = [
        sw.Cell("U2Ti", "lattice", 0.05, loss, False, lr, 1, n_copies=1, max_steps=8, patience=4, record_every=4)
        for loss in ("cosine", "mse")
        for lr in (1e-3, 1e-2, 3e-2)
    ]
    whole = sw.run_sweep(cells, tmp_path / "whole", progress=False, batch_cells=True)
    resumed_dir = tmp_path / "resumed" / "cells"
    resumed_dir.mkdir(parents=True)
    for cell in cells[:2]:  # two cells finished before an interruption
        for suffix in (".csv", ".npz"):
            shutil.copy(sw.cell_path(tmp_path / "whole", cell).with_suffix(suffix), resumed_dir)
    resumed = sw.run_sweep(cells, tmp_path / "resumed", progress=False, batch_cells=True)
    key = ["cell_id", "copy"]
    columns = [c for c in whole.columns if c != "seconds"]
    pd.testing.assert_frame_equal(
        resumed[columns].sort_values(key).reset_index(drop=True), whole[columns].sort_values(key).reset_index(drop=True)
    )
