"""Simulator speed: dense versus fast renderer, and pymatgen as an outside reference.

Workload (issue "Foundation"): forward + backward of the cosine loss for a batch of 16
lattice-distorted copies (σ = 0.05) of NdAl2Cu4 in float32 on the CPU, dense and fast
renderer; plus pymatgen's ``XRDCalculator`` with a numpy pseudo-Voigt broadening for the
same 16 patterns (forward only). Each case runs in its own subprocess so that its peak
resident memory is its own. Machines here are noisy: read the ratios, not the seconds.

    python benchmarks/bench_simulator.py [--repeats 5] [--batch 16] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _workload(batch: int, dtype_name: str):
    import torch

    import xrdnb

    torch.manual_seed(0)
    dtype = getattr(torch, dtype_name)
    crystal = xrdnb.crystal_from_structure(xrdnb.load_structure("NdAl2Cu4"), batch_size=batch, dtype=dtype)
    noise = torch.eye(3, dtype=torch.float64) + 0.05 * torch.randn(batch, 3, 3, dtype=torch.float64)
    matrix = xrdnb.lattice.lattice_matrix(crystal.lattice.double()) @ noise
    distorted = xrdnb.lattice.lattice_parameters_from_matrix(matrix).to(dtype)
    target = xrdnb.simulate_pattern(crystal.select(0))
    reflections = xrdnb.pattern.reflections_for(crystal.with_lattice(distorted))
    return torch, xrdnb, crystal, distorted, target, reflections


def run_case(case: str, repeats: int, batch: int, dtype_name: str) -> dict:
    if case == "pymatgen":
        return run_pymatgen(repeats, batch)
    torch, xrdnb, crystal, distorted, target, reflections = _workload(batch, dtype_name)
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        lattice = distorted.clone().requires_grad_(True)
        start = time.perf_counter()
        pattern = xrdnb.simulate_pattern(crystal.with_lattice(lattice), reflections=reflections, method=case)
        loss = -torch.nn.functional.cosine_similarity(pattern, target).sum()
        loss.backward()
        times.append(time.perf_counter() - start)
    return {"case": case, "seconds": min(times[1:]), "peak_rss_mb": _peak_rss_mb(), "reflections": len(reflections)}


def run_pymatgen(repeats: int, batch: int) -> dict:
    from _outside_reference import pymatgen_pattern_seconds

    torch, xrdnb, crystal, distorted, target, reflections = _workload(batch, "float64")
    structures = crystal.with_lattice(distorted.double()).to_structures()
    seconds = pymatgen_pattern_seconds(structures, xrdnb.DEFAULT_SETTINGS, repeats)
    return {"case": "pymatgen", "seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "reflections": None}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.repeats, args.batch, args.dtype)))
        return 0
    results = {}
    for case in ("dense", "fast", "pymatgen"):
        repeats = max(1, args.repeats // 2) if case == "dense" else args.repeats
        cmd = [
            sys.executable,
            __file__,
            "--case",
            case,
            "--repeats",
            str(repeats),
            "--batch",
            str(args.batch),
            "--dtype",
            args.dtype,
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[case] = json.loads(out.strip().splitlines()[-1])
    dense, fast, pmg = results["dense"], results["fast"], results["pymatgen"]
    print(
        f"NdAl2Cu4, batch {args.batch}, {args.dtype}, {fast['reflections']} reflections (Friedel-merged), "
        "best of repeats"
    )
    print(f"{'case':<34}{'seconds':>10}{'peak RSS (MB)':>16}")
    print(f"{'dense  forward+backward':<34}{dense['seconds']:>10.3f}{dense['peak_rss_mb']:>16.0f}")
    print(f"{'fast   forward+backward':<34}{fast['seconds']:>10.3f}{fast['peak_rss_mb']:>16.0f}")
    print(f"{'pymatgen + numpy pV (forward)':<34}{pmg['seconds']:>10.3f}{pmg['peak_rss_mb']:>16.0f}")
    ratio = dense["seconds"] / fast["seconds"]
    print(
        f"ratio dense / fast: {ratio:.1f}x (target >= 30x); "
        f"fast peak RSS {fast['peak_rss_mb']:.0f} MB (target <= 2048 MB)"
    )
    print(f"ratio pymatgen forward / fast forward+backward: {pmg['seconds'] / fast['seconds']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
