"""Measure how many steps copies take under the SI's stopping rule; write xrdnb/data/stopping_statistics.csv.

Runs (or resumes) the sweep of ``tools/stopping_statistics.yml`` — cells at the
paper's protocol (at most 30,000 Adam steps, stop when the loss moves by less than 1e-4
over 1,000 steps, 16 copies) — and writes the per-rule statistics of
:func:`xrdnb.estimate.measure_stopping` with a header naming the command, commit,
machine, date and cells. ``xrdnb sweep --estimate`` reads that file. Long (about an hour
on one core); resumable like any sweep.

    python tools/stopping_statistics.py [--results results/stopping] [--workers auto] [--write-partial]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "xrdnb" / "data" / "stopping_statistics.csv"


def main(argv=None) -> int:
    from xrdnb.estimate import measure_stopping
    from xrdnb.sweep import SweepSpec, load_results, run_sweep

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results/stopping"))
    parser.add_argument("--workers", default="auto")
    parser.add_argument(
        "--write-partial", action="store_true", help="write the statistics of the finished cells, run nothing"
    )
    parser.add_argument(
        "--note", default="", help="a line for the header (e.g. where and with which commit the cells ran)"
    )
    args = parser.parse_args(argv)
    spec = SweepSpec.from_dict(yaml.safe_load((HERE / "stopping_statistics.yml").read_text()))
    cells = spec.cells()
    if args.write_partial:
        rows = load_results(args.results, cells)
    else:
        rows = run_sweep(cells, args.results, workers=args.workers, progress=True)
    done = rows["cell_id"].nunique() if len(rows) else 0
    table = measure_stopping(rows)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    header = [
        "# Steps per copy under the SI stopping rule, measured by xrdnb.estimate.measure_stopping on the sweep",
        "# tools/stopping_statistics.yml (python tools/stopping_statistics.py)",
        f"# {done} of {len(cells)} cells; commit {commit or 'unknown'}; "
        f"{platform.machine()} {platform.processor() or ''},"
        f" Python {platform.python_version()}; {datetime.date.today().isoformat()}",
    ] + ([f"# {args.note}"] if args.note else [])
    OUT.write_text("\n".join(header) + "\n" + table.to_csv(index=False, float_format="%.6g"))
    print(f"{done} of {len(cells)} cells -> {OUT}")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
