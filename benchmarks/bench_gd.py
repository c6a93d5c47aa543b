"""Gradient-descent throughput: dense versus fast renderer, and the wall time of the book profile.

Workload (issue "The optimization study"): 16 lattice-distorted copies (σ = 0.05) of
NdAl2Cu4, lattice mode, cosine loss, Adam, float32, on the CPU; steps per second of the
batched engine with the dense and with the fast renderer, measured in the same run.
With ``--book-profile`` it also runs the whole ``book`` sweep into a temporary folder
(``--workers`` processes) and prints its wall time. Read ratios, not seconds.

    python benchmarks/bench_gd.py [--dense-steps 3] [--fast-steps 40] [--book-profile] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace


def steps_per_second(method: str, n_steps: int) -> float:
    import torch

    import xrdnb
    from xrdnb.distortions import distort
    from xrdnb.optimize import GDConfig, gd_step, init_state

    truth = xrdnb.crystal_from_structure(xrdnb.load_structure("NdAl2Cu4"))
    start = distort(truth, "lattice", 0.05, 16, seed=0).to(dtype=torch.float32)
    config = GDConfig(lr=5e-3, max_steps=10**6, settings=replace(xrdnb.DEFAULT_SETTINGS, method=method), record_every=0)
    target = xrdnb.simulate_pattern(truth.to(dtype=torch.float32), config.simulator_settings())[0]
    state = init_state(start, target, config)
    gd_step(state, target, config)  # warm-up
    begin = time.perf_counter()
    for _ in range(n_steps):
        gd_step(state, target, config)
    return n_steps / (time.perf_counter() - begin)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense-steps", type=int, default=3)
    parser.add_argument("--fast-steps", type=int, default=40)
    parser.add_argument("--book-profile", action="store_true", help="also time the whole book sweep (~10 min)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    dense = steps_per_second("dense", args.dense_steps)
    fast = steps_per_second("fast", args.fast_steps)
    print("GD, NdAl2Cu4, 16 copies, lattice mode, cosine loss, Adam, float32")
    print(f"  dense renderer: {dense:8.3f} steps/s")
    print(f"  fast renderer:  {fast:8.3f} steps/s")
    print(f"  ratio fast / dense: {fast / dense:.1f}x")
    if args.book_profile:
        from xrdnb.sweep import PROFILES, run_sweep

        cells = PROFILES["book"].cells()
        with tempfile.TemporaryDirectory() as folder:
            begin = time.perf_counter()
            rows = run_sweep(cells, folder, workers=args.workers, progress=False)
            wall = time.perf_counter() - begin
        print(f"book profile: {len(cells)} cells, {len(rows)} rows, {args.workers} workers: {wall:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
