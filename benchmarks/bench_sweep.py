"""Sweep throughput: ``xrdnb sweep --config`` end to end, against pymatgen in the same run.

Workload (issue "Gradient descent fast enough for the paper's protocol"): structures
NdAl2Cu4 and BPO4, lattice noise 0.05, the cosine loss unconstrained and constrained
(4 cells), 16 copies, learning rate 1e-3, 300 steps with early stopping disabled
(``tol: 0``), float32, the command's default workers. The sweep's figure is
copy-steps per second of the whole command (start-up, distortion, evaluation and writing
included): ``cells × copies × steps / wall time``.

The outside reference, which does not change with this project, is pymatgen's
``XRDCalculator`` plus a numpy pseudo-Voigt broadening (every peak on every point of the
SI's 9000-point grid, Caglioti widths) of the same 16 distorted NdAl2Cu4 copies, in a
process of its own with one thread: patterns per second. The two are measured
interleaved (A, B, A, B, ...), each in a fresh process, and the ratio is
``sweep copy-steps/s ÷ reference patterns/s`` per round. The machine load (``uptime``)
is printed before every measurement: on a loaded 2-core machine ratios move by 5×.

    python benchmarks/bench_sweep.py [--rounds 2] [--workers N] [--steps 300] [--baseline REV]

``--baseline REV`` also runs the same command from a git worktree of revision ``REV``
(its own default workers) in each round, after the reference, and prints this checkout's
speed-up over it.

With ``--paper-structure NAME`` it measures instead the batched engine (the GPU path) on
the ``paper`` profile's cells of one structure, both stages (160 selection cells of one copy
and 45 reported cells of 16, :meth:`~xrdnb.sweep.SweepSpec.planned_stages`), ``--steps``
steps each with early stopping off, all advancing as batches on ``--device``, and projects
the wall time of the whole ``paper`` profile from its expected copy-steps (the shipped
stopping statistics, :mod:`xrdnb.estimate`):

    python benchmarks/bench_sweep.py --paper-structure NdAl2Cu4 --device cuda --steps 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOAD = {
    "structures": ["NdAl2Cu4", "BPO4"],
    "lattice_levels": [0.05],
    "coordinate_levels": [],
    "losses": ["cosine"],
    "constrained_losses": ["cosine"],
    "lattice_lrs": [1e-3],
    "n_copies": 16,
    "max_steps": 300,
    "tol": 0.0,  # early stopping disabled: |Δloss| < 0 never holds
    "record_every": 100,
    "dtype": "float32",
}

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def reference_patterns_per_second(repeats: int) -> float:
    """Pymatgen + numpy pseudo-Voigt on the 16 NdAl2Cu4 copies of the sweep's first cell (best of ``repeats``)."""
    from _outside_reference import pymatgen_pattern_seconds

    import xrdnb
    from xrdnb.distortions import distort

    truth = xrdnb.crystal_from_structure(xrdnb.load_structure("NdAl2Cu4"))
    structures = distort(truth, "lattice", 0.05, WORKLOAD["n_copies"], seed=0).to_structures()
    return len(structures) / pymatgen_pattern_seconds(structures, xrdnb.DEFAULT_SETTINGS, repeats)


def sweep_copy_steps_per_second(
    workers: int | None, steps: int, package: Path | None = None
) -> tuple[float, float, int]:
    """Run ``xrdnb sweep --config`` on the workload in a fresh folder; (copy-steps/s, wall s, rows).

    ``package``: a checkout whose ``xrdnb`` runs instead of the installed one (the baseline).
    """
    import yaml

    workload = {**WORKLOAD, "max_steps": steps}
    env = {**os.environ, **ONE_THREAD}
    if package is not None:
        env["PYTHONPATH"] = str(package)
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "bench.yml"
        config.write_text(yaml.safe_dump(workload))
        cmd = [
            sys.executable,
            "-m",
            "xrdnb.cli",
            "sweep",
            "--config",
            str(config),
            "--results",
            str(Path(folder) / "out"),
            "--quiet",
        ]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        begin = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, cwd=folder)
        wall = time.perf_counter() - begin
        import pandas as pd

        rows = pd.concat([pd.read_csv(p) for p in (Path(folder) / "out" / "cells").glob("*.csv")])
    n_cells = len(workload["structures"]) * len(workload["lattice_levels"]) * 2
    if len(rows) != n_cells * workload["n_copies"] or not (rows["steps"] == steps).all():
        raise RuntimeError(
            f"the sweep did not run {n_cells} cells of {workload['n_copies']} copies for {steps} steps each"
        )
    return n_cells * workload["n_copies"] * steps / wall, wall, len(rows)


def paper_structure(name: str, device: str, steps: int) -> int:
    """Copy-steps per second of the batched engine on the paper profile's cells of ``name``; projection."""
    from dataclasses import replace

    import torch

    from xrdnb.estimate import _expected_steps, stopping_statistics
    from xrdnb.optimize import run_batched_gradient_descent
    from xrdnb.sweep import PROFILES, _start, run_cells_batched, stage_batching

    # both stages: the selection cells (one copy at each candidate rate) and the reported cells (16 copies)
    paper = [c for _, part in PROFILES["paper"].planned_stages() for c in part]
    cells = [replace(c, max_steps=steps, tol=0.0, record_every=0) for c in paper if c.structure == name]
    print(
        f"paper profile, {name}: {len(cells)} cells, {sum(c.n_copies for c in cells)} copies, {steps} steps each "
        f"(early stopping off), batched on {device}"
    )
    print(
        f"torch {torch.__version__}, "
        f"device {torch.cuda.get_device_name() if device.startswith('cuda') else 'cpu'}; load: {_uptime()}"
    )
    run_cells_batched(cells[:2], device=device)  # warm-up, and one evaluation of end points
    groups = stage_batching(None, cells, device, batch_cells=True).units(cells)
    copy_steps, gd_seconds = 0, 0.0
    for group in groups:
        prepared = [_start(cell, "angstrom", device) for cell in group]
        starts = [p[2].to(dtype=p[4].dtype, device=device) for p in prepared]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        begin = time.perf_counter()
        results = run_batched_gradient_descent(
            starts, [p[4] for p in prepared], [p[3] for p in prepared], progress=False
        )
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        gd_seconds += time.perf_counter() - begin
        copy_steps += int(sum(int(r.steps.sum()) for r in results))
    begin = time.perf_counter()
    run_cells_batched(cells[:1], device=device)
    per_cell = time.perf_counter() - begin  # a whole one-cell run: set-up, steps, evaluation
    rate = copy_steps / gd_seconds
    stats = stopping_statistics()
    expected = sum(_expected_steps(c, stats)[0] * c.n_copies for c in paper)
    print(
        f"  {len(groups)} batches, {copy_steps} copy-steps of gradient descent in {gd_seconds:.1f} s: "
        f"{rate:,.0f} copy-steps/s"
    )
    print(f"  one cell end to end (set-up, {steps} steps, evaluation on the CPU): {per_cell:.2f} s")
    print(f"  paper profile: {len(paper)} cells, {expected:.3g} expected copy-steps (shipped stopping statistics)")
    print(
        f"  projected gradient descent of the whole paper profile at this rate: {expected / rate / 60:.1f} min"
        f" (+ the evaluation of {len(paper)} cells on the CPU)"
    )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved sweep/reference rounds (default 2)")
    parser.add_argument("--workers", type=int, help="pass --workers to the sweep (default: the command's own default)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="reference: best of this many passes over the 16 copies")
    parser.add_argument("--reference-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also time the sweep of git revision REV (e.g. the commit before a change), interleaved",
    )
    parser.add_argument(
        "--paper-structure", help="time the batched engine on the paper profile's cells of this structure"
    )
    parser.add_argument("--device", default="cpu", help="with --paper-structure: cpu, cuda, ...")
    args = parser.parse_args(argv)
    if args.paper_structure:
        return paper_structure(args.paper_structure, args.device, args.steps)
    if args.reference_only:
        print(json.dumps({"patterns_per_second": reference_patterns_per_second(args.repeats)}))
        return 0

    print("workload: NdAl2Cu4 + BPO4, lattice noise 0.05, cosine unconstrained + constrained (4 cells),")
    print(
        f"          16 copies, lr 1e-3, {args.steps} steps, early stopping off, float32; workers: "
        f"{args.workers if args.workers is not None else 'default'}"
    )
    baseline = None
    if args.baseline:
        baseline = Path(tempfile.mkdtemp(prefix="xrdnb-baseline-"))
        root = Path(__file__).resolve().parents[1]
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", "-q", str(baseline), args.baseline], check=True
        )
    ratios, base_ratios = [], []
    try:
        for round_ in range(1, args.rounds + 1):
            ratios.append(_round(round_, args, base_ratios, baseline))
    finally:
        if baseline is not None:
            subprocess.run(
                ["git", "-C", str(Path(__file__).resolve().parents[1]), "worktree", "remove", "--force", str(baseline)],
                check=False,
            )
    print(
        f"ratios: {', '.join(f'{r:.1f}' for r in ratios)}  "
        "(issue 11: 4x the ratio of the code before it, f382284: use --baseline f382284)"
    )
    if base_ratios:
        print(
            f"baseline {args.baseline} ratios: {', '.join(f'{r:.1f}' for r in base_ratios)}; "
            f"this checkout / baseline: {', '.join(f'{a / b:.2f}x' for a, b in zip(ratios, base_ratios, strict=True))}"
        )
    return 0


def _round(round_: int, args, base_ratios: list, baseline: Path | None) -> float:
    """One interleaved round: A this checkout's sweep, B the reference, C the baseline's sweep."""
    print(f"round {round_}  load: {_uptime()}")
    rate, wall, _ = sweep_copy_steps_per_second(args.workers, args.steps)
    print(f"  A sweep:     {rate:8.1f} copy-steps/s  ({wall:.1f} s wall)")
    print(f"round {round_}  load: {_uptime()}")
    out = subprocess.run(
        [sys.executable, __file__, "--reference-only", "--repeats", str(args.repeats)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **ONE_THREAD},
    ).stdout
    ref = json.loads(out.strip().splitlines()[-1])["patterns_per_second"]
    print(f"  B reference: {ref:8.2f} patterns/s (pymatgen XRDCalculator + numpy pseudo-Voigt, one thread)")
    print(f"  ratio sweep copy-steps/s / reference patterns/s: {rate / ref:.1f}")
    if baseline is not None:
        print(f"round {round_}  load: {_uptime()}")
        base, base_wall, _ = sweep_copy_steps_per_second(args.workers, args.steps, package=baseline)
        base_ratios.append(base / ref)
        print(
            f"  C baseline {args.baseline}: {base:8.1f} copy-steps/s ({base_wall:.1f} s wall), ratio {base / ref:.1f}"
        )
    return rate / ref


if __name__ == "__main__":
    sys.exit(main())
