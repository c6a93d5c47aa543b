"""What a sweep will cost before it runs: steps, copy-steps and wall time.

:func:`estimate_sweep` predicts, for every cell of a sweep,

* the **steps per copy**: a copy stops at the first check of the SI rule (every
  ``patience`` steps) at which its loss moved less than ``tol``, or at the budget. For the
  rules in :func:`stopping_statistics` (measured at the paper's protocol and shipped in
  ``xrdnb/data/stopping_statistics.csv``) the mean steps per copy and the mean steps of the
  cell's slowest copy are taken from those measurements, by noise type (and loss where it
  was measured); for any other rule the budget ``max_steps`` is assumed (an upper bound);
* the **cost of a step** on this machine, measured now: a few gradient-descent steps of
  the cell's structure, noise type and loss at two batch sizes, fitted as
  ``a + b · (running copies)`` seconds, on one thread as the sweep runs them;
* the **cell time** ``a · (steps of its slowest copy) + b · (copy-steps) + overhead``,
  the overhead (distortion, evaluation with the structure matcher) measured once;

and :func:`summarize_estimate` adds the cells up per noise type and schedules them over
``workers`` processes in the sweep's order (each free worker takes the next cell). The
same numbers are printed by ``xrdnb sweep --profile NAME --estimate``.

>>> from xrdnb.estimate import stopping_statistics
>>> sorted(stopping_statistics()["noise_type"].unique())
['coordinates', 'lattice']
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "stopping_statistics",
    "measure_stopping",
    "step_cost",
    "estimate_sweep",
    "summarize_estimate",
    "format_estimate",
]

RULE = ["patience", "tol", "max_steps"]
"""Columns that define a stopping rule."""


@functools.lru_cache(maxsize=1)
def _shipped_statistics() -> pd.DataFrame:
    with resources.files("xrdnb").joinpath("data/stopping_statistics.csv").open() as handle:
        return pd.read_csv(handle, comment="#")


def stopping_statistics() -> pd.DataFrame:
    """The shipped stopping statistics: one row per (noise type, loss, constrained, rule).

    Columns ``noise_type``, ``loss``, ``constrained``, ``patience``, ``tol``, ``max_steps``,
    ``cells``, ``copies``, ``mean_steps`` (per copy), ``mean_max_steps`` (the slowest copy of
    a cell), ``share_budget`` (copies stopped by the budget, not the rule). The file's
    header names the sweep that measured them (:func:`measure_stopping`).
    """
    return _shipped_statistics().copy()


def measure_stopping(rows: pd.DataFrame) -> pd.DataFrame:
    """Stopping statistics (the columns of :func:`stopping_statistics`) of sweep result rows."""
    keys = ["noise_type", "loss", "constrained", *RULE]
    per_cell = (
        rows.groupby(["cell_id", *keys], sort=True)
        .agg(
            mean_steps=("steps", "mean"),
            max_steps_cell=("steps", "max"),
            copies=("steps", "size"),
            budget=("stop_reason", lambda r: int((r == "max_steps").sum())),
        )
        .reset_index()
    )
    out = (
        per_cell.groupby(keys, sort=True)
        .agg(
            cells=("cell_id", "size"),
            copies=("copies", "sum"),
            mean_steps=("mean_steps", "mean"),
            mean_max_steps=("max_steps_cell", "mean"),
            budget=("budget", "sum"),
        )
        .reset_index()
    )
    out["share_budget"] = out.pop("budget") / out["copies"]
    return out


def _expected_steps(cell, statistics: pd.DataFrame) -> tuple[float, float, str]:
    """(mean steps per copy, mean steps of the slowest copy, source) for ``cell``."""
    same_rule = statistics[
        (statistics["patience"] == cell.patience)
        & np.isclose(statistics["tol"], cell.tol)
        & (statistics["max_steps"] == cell.max_steps)
        & (statistics["noise_type"] == cell.noise_type)
    ]
    if cell.tol <= 0 or same_rule.empty:
        return float(cell.max_steps), float(cell.max_steps), "budget"
    exact = same_rule[(same_rule["loss"] == cell.loss) & (same_rule["constrained"] == cell.constrained)]
    chosen, source = (exact, "measured") if len(exact) else (same_rule, "measured on other losses")
    weights = chosen["cells"].to_numpy(float)
    mean = float(np.average(chosen["mean_steps"], weights=weights))
    slowest = float(np.average(chosen["mean_max_steps"], weights=weights))
    return min(mean, cell.max_steps), min(slowest, cell.max_steps), source


def step_cost(
    cell, *, steps: int = 3, batches: tuple[int, int] | None = None, device: str = "cpu", blocks: int = 3
) -> tuple[float, float]:
    """Seconds per gradient-descent step of ``cell`` as ``(a, b)``: ``a + b · copies``.

    Measured on one thread at two batch sizes (default: the cell's copies and a quarter of
    them): after one warm-up step, ``blocks`` blocks of ``steps`` steps, of which the median
    block counts (a busy or throttled machine moves single timings by tens of per cent).
    """
    import torch

    from .optimize import gd_step, init_state
    from .pattern import simulate_pattern
    from .sweep import _one_thread, prepare_cell

    big = cell.n_copies
    small = max(1, big // 4)
    batches = batches or (big, small)
    timings = []
    dtype = getattr(torch, cell.dtype)
    with _one_thread():
        for batch in batches:
            _, truth, start, config = prepare_cell(replace(cell, n_copies=batch))
            config = replace(config, max_steps=10**9, record_every=0)
            target = simulate_pattern(truth.to(dtype=dtype, device=device), config.simulator_settings())[0]
            state = init_state(start.to(dtype=dtype, device=device), target, config)
            gd_step(state, target, config)  # warm-up
            block_times = []
            for _ in range(max(1, blocks)):
                begin = time.perf_counter()
                for _ in range(steps):
                    gd_step(state, target, config)
                block_times.append((time.perf_counter() - begin) / steps)
            timings.append(float(np.median(block_times)))
    (n1, n2), (t1, t2) = batches, timings
    if n1 == n2:
        return 0.0, t1 / n1
    b = max((t1 - t2) / (n1 - n2), 0.0)
    a = max(t1 - b * n1, 0.0)
    return a, b


def _cell_overhead(cell) -> float:
    """Seconds a cell spends outside its steps (distortion, evaluation): one measured run."""
    from .sweep import run_cell

    probe = replace(cell, max_steps=1, patience=1, tol=0.0)
    run_cell(probe)  # warm-up (imports, caches)
    begin = time.perf_counter()
    run_cell(probe)
    return time.perf_counter() - begin


def estimate_sweep(
    cells: Sequence,
    *,
    calibration_steps: int = 3,
    progress: bool = False,
    batch_cells: bool = False,
    batch_copies: int = 128,
) -> pd.DataFrame:
    """One row per cell: expected steps, copy-steps and seconds, measured on this machine.

    Columns: ``cell_id``, ``task`` (the unit a worker runs: the cell, or its batched group),
    ``structure``, ``noise_type``, ``loss``, ``constrained``, ``n_copies``, ``mean_steps``,
    ``max_steps_cell``, ``steps_source``, ``copy_steps``, ``seconds_per_copy_step``,
    ``seconds``. Step costs are measured once per (structure, noise type, loss,
    constrained, copies, dtype). With ``batch_cells`` the cells of each group of
    :func:`xrdnb.sweep.batch_groups` run as one batch whose step cost ``a + b · copies`` is
    measured at the group's size (once per structure, noise type, first loss and size): the
    batch pays ``a`` for its slowest copy's steps and ``b`` per copy-step; its time is spread
    over its cells in proportion to their copy-steps.
    """
    from tqdm.auto import tqdm

    statistics = stopping_statistics()
    costs: dict[tuple, tuple[float, float]] = {}
    keys = [(c.structure, c.noise_type, c.loss, c.constrained, c.n_copies, c.dtype) for c in cells]
    first: dict[tuple, Any] = {}
    for key, cell in zip(keys, cells, strict=True):
        first.setdefault(key, cell)
    for key, cell in tqdm(first.items(), desc="measuring step costs", disable=not progress):
        costs[key] = step_cost(cell, steps=calibration_steps)
    overhead = _cell_overhead(cells[0]) if len(cells) else 0.0
    out = []
    for key, cell in zip(keys, cells, strict=True):
        mean, slowest, source = _expected_steps(cell, statistics)
        a, b = costs[key]
        copy_steps = mean * cell.n_copies
        seconds = a * slowest + b * copy_steps + overhead
        out.append(
            dict(
                cell_id=cell.cell_id,
                task=cell.cell_id,
                structure=cell.structure,
                noise_type=cell.noise_type,
                loss=cell.loss,
                constrained=cell.constrained,
                n_copies=cell.n_copies,
                mean_steps=mean,
                max_steps_cell=slowest,
                steps_source=source,
                copy_steps=copy_steps,
                seconds_per_copy_step=(seconds - overhead) / max(copy_steps, 1.0),
                seconds=seconds,
                a=a,
                b=b,
            )
        )
    table = pd.DataFrame(out)
    if batch_cells and len(table):
        from .sweep import batch_groups

        position = {cell.cell_id: i for i, cell in enumerate(cells)}
        group_costs: dict[tuple, tuple[float, float]] = {}
        for number, group in enumerate(batch_groups(cells, max_copies=batch_copies)):
            rows = [position[c.cell_id] for c in group]
            part = table.iloc[rows]
            # a step of the whole batch, measured at the batch's size (the cost per copy is not
            # linear in the copies: it stops falling at 16-64 and rises beyond)
            size = int(part["n_copies"].sum())
            key = (group[0].structure, group[0].noise_type, group[0].loss, group[0].constrained, size, group[0].dtype)
            if key not in group_costs:
                group_costs[key] = step_cost(replace(group[0], n_copies=size), steps=calibration_steps)
            a, b = group_costs[key]
            total = float(a * part["max_steps_cell"].max() + b * part["copy_steps"].sum() + overhead * len(rows))
            share = part["copy_steps"] / part["copy_steps"].sum()
            table.loc[table.index[rows], "seconds"] = (total * share).to_numpy()
            table.loc[table.index[rows], "task"] = f"batch {number}"
            per = (table.loc[table.index[rows], "seconds"] - overhead) / part["copy_steps"].clip(lower=1.0)
            table.loc[table.index[rows], "seconds_per_copy_step"] = per.to_numpy()
    return table.drop(columns=["a", "b"])


def _makespan(seconds: Sequence[float], workers: int) -> float:
    """Wall time of cells taken in order by the first free of ``workers`` processes."""
    free = [0.0] * max(1, workers)
    for s in seconds:
        i = int(np.argmin(free))
        free[i] += s
    return max(free) if len(seconds) else 0.0


def summarize_estimate(estimate: pd.DataFrame, workers: int) -> pd.DataFrame:
    """Per noise type (and stage) and in total: cells, copies, steps per copy, copy-steps, CPU and wall hours.

    With a ``stage`` column (two-stage sweeps, :meth:`xrdnb.sweep.SweepSpec.stages`) a stage
    starts when the one before it has finished, so the total wall time is the sum of the
    stages' wall times; the rows are named ``"<stage> · <noise type>"``.
    """
    staged = "stage" in estimate and estimate["stage"].nunique() > 1
    keys = ["stage", "noise_type"] if staged else ["noise_type"]

    def wall(part: pd.DataFrame) -> float:
        stages = part.groupby("stage", sort=False) if staged else [(None, part)]
        return (
            sum(_makespan(p.groupby("task", sort=False)["seconds"].sum().tolist(), workers) for _, p in stages) / 3600
        )

    groups = []
    parts = [(" · ".join(map(str, k)) if staged else k[0], p) for k, p in estimate.groupby(keys, sort=False)]
    for name, part in parts + [("all", estimate)]:
        groups.append(
            dict(
                noise_type=name,
                cells=len(part),
                copies=int(part["n_copies"].sum()),
                mean_steps_per_copy=float(part["copy_steps"].sum() / max(part["n_copies"].sum(), 1)),
                copy_steps=float(part["copy_steps"].sum()),
                ms_per_copy_step=1e3
                * float((part["seconds_per_copy_step"] * part["copy_steps"]).sum() / max(part["copy_steps"].sum(), 1)),
                cpu_hours=float(part["seconds"].sum() / 3600),
                wall_hours=wall(part),
                steps_from="; ".join(sorted(part["steps_source"].unique())),
            )
        )
    return pd.DataFrame(groups)


def format_estimate(summary: pd.DataFrame, workers: int) -> str:
    """The summary as the text ``xrdnb sweep --estimate`` prints."""
    width = max(12, *(len(str(n)) + 2 for n in summary["noise_type"]))
    lines = [
        f"{'noise type':<{width}}{'cells':>7}{'copies':>8}{'steps/copy':>12}{'copy-steps':>13}{'ms/copy-step':>14}"
        f"{'CPU h':>8}{f'wall h ({workers} w)':>15}  steps from"
    ]
    for row in summary.itertuples():
        lines.append(
            f"{row.noise_type:<{width}}{row.cells:>7}{row.copies:>8}{row.mean_steps_per_copy:>12.0f}{row.copy_steps:>13.3g}"
            f"{row.ms_per_copy_step:>14.2f}{row.cpu_hours:>8.2f}{row.wall_hours:>15.2f}  {row.steps_from}"
        )
    return "\n".join(lines)
