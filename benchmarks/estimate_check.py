"""How good is ``xrdnb sweep --estimate``? Its prediction against the finished cells of a real run.

For every finished task of a sweep folder (a cell, or a batch of cells in a batched stage) it
prints the estimate's predicted seconds (:func:`xrdnb.estimate.estimate_sweep`, step costs
measured now, on this machine) beside the seconds the task took (its cells' ``seconds``),
with the steps the estimate expected and those the copies took:

    python benchmarks/estimate_check.py results/reference --profile paper [--tasks 4]

Run it on a quiet machine (it measures step costs, and ``uptime`` is printed): the actual
seconds were measured while the run had the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pandas as pd

from xrdnb import sweep as sw
from xrdnb.estimate import estimate_sweep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--tasks", type=int, default=4, help="compare this many finished tasks per stage (default 4)")
    args = parser.parse_args(argv)
    spec = sw.PROFILES[args.profile]
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    lines = []
    for name, cells in spec.stages(args.results):
        if not cells:
            continue
        batching = sw.stage_batching(name, cells, "cpu")
        units = batching.units(cells)
        done = [u for u in units if all(sw.is_finished(args.results, c) for c in u)][: args.tasks]
        for unit in done:
            rows = sw.load_results(args.results, unit)
            predicted = estimate_sweep(unit, batch_cells=batching.batched, batch_copies=batching.max_copies)
            lines.append(
                dict(
                    stage=name,
                    task=f"{unit[0].structure} {unit[0].noise_type}, {len(unit)} cells, {len(rows)} copies",
                    expected_steps=round(float(predicted["copy_steps"].sum() / predicted["n_copies"].sum())),
                    steps=round(float(rows["steps"].mean())),
                    slowest_copy=int(rows["steps"].max()),
                    predicted_s=round(float(predicted["seconds"].sum()), 1),
                    actual_s=round(float(rows.groupby("cell_id")["seconds"].first().sum()), 1),
                )
            )
    if not lines:
        print(f"no finished task in {args.results}", file=sys.stderr)
        return 1
    table = pd.DataFrame(lines)
    table["actual / predicted"] = (table["actual_s"] / table["predicted_s"]).round(2)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
