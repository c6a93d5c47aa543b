"""Landscape slices: batched evaluation versus one structure at a time, on the same grid.

Workload (issue "Loss landscapes and the energy baseline"): an ``n × n`` cosine-similarity
slice of one benchmark structure over two lattice parameters (±20 % in lengths, ±20° in
angles), evaluated with :func:`xrdnb.landscape.evaluate_lattices` twice in the same run —
``chunk_size`` grid points per simulator batch, and ``chunk_size=1`` — and checked to give
the same values. Prints both wall times and their ratio (target ≥ 10×). Read ratios, not
seconds: the machine may be shared. ``--value energy`` times a CHGNet energy slice instead
(:func:`xrdnb.relax.energy_fn`, ``chunk`` structures per CHGNet batch against batches of one).

    python benchmarks/bench_landscape.py [--structure U2Ti] [--pair a c] [--n 15] [--chunk 64]
                                         [--dtype float64] [--threads 0] [--device cpu]
                                         [--value cosine|energy]
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structure", default="U2Ti")
    parser.add_argument("--pair", nargs=2, default=["a", "c"], metavar=("P1", "P2"))
    parser.add_argument("--n", type=int, default=15, help="grid points per axis")
    parser.add_argument("--chunk", type=int, default=64, help="grid points per batch in the batched run")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave the default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--value", default="cosine", choices=["cosine", "energy"], help="what the slice shows")
    args = parser.parse_args(argv)

    import torch

    import xrdnb
    from xrdnb import landscape as ls

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    truth = xrdnb.crystal_from_structure(xrdnb.load_structure(args.structure), dtype=dtype, device=args.device)
    centre = truth.lattice[0]
    axes = [ls.parameter_axis(centre, p, args.n) for p in args.pair]
    lattices = ls.slice_lattices(centre, args.pair, axes)
    if args.value == "energy":
        from xrdnb import relax

        model = relax.load_model(args.device)
        value_fns = {
            chunk: relax.energy_fn(device=args.device, batch_size=chunk, model=model) for chunk in (args.chunk, 1)
        }
    else:
        value_fns = dict.fromkeys((args.chunk, 1), ls.xrd_similarity_fn(truth, "cosine"))

    for chunk, value_fn in value_fns.items():  # warm-up
        ls.evaluate_lattices(truth, lattices[:2, :2], value_fn, chunk_size=min(chunk, 4))
    timings = {}
    values = {}
    for label, chunk in (("batched", args.chunk), ("one at a time", 1)):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        begin = time.perf_counter()
        values[label] = ls.evaluate_lattices(truth, lattices, value_fns[chunk], chunk_size=chunk)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        timings[label] = time.perf_counter() - begin

    n_points = args.n * args.n
    diff = float((values["batched"] - values["one at a time"]).abs().nan_to_num().max())
    print(
        f"{args.value} slice of {args.structure} over {args.pair[0]}–{args.pair[1]}, "
        f"{args.n}×{args.n} = {n_points} grid points, "
        f"{args.dtype}, {args.device}, {torch.get_num_threads()} threads"
    )
    for label, seconds in timings.items():
        chunk = args.chunk if label == "batched" else 1
        print(
            f"  {label:14s} (chunk {chunk:3d}): {seconds:8.2f} s  ({1e3 * seconds / n_points:6.2f} ms per grid point)"
        )
    print(f"  max |batched − one at a time| = {diff:.1e}")
    print(f"  ratio one-at-a-time / batched: {timings['one at a time'] / timings['batched']:.1f}x (target >= 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
