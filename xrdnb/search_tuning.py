"""Hyper-parameters of chapter 8's searches, tuned on copies the comparison does not report.

Each method's hyper-parameters are chosen on the copies of a separate seed (:func:`tuning_cells`:
every combination of a grid, :data:`TUNING_GRIDS`) by a written rule (:data:`TUNING_RULE`,
:func:`choose_hyper`); :func:`tune` runs those cells (resumable, :func:`xrdnb.search_sweep.run_search_sweep`)
and returns the comparison's :class:`~xrdnb.search_sweep.SearchSpec` with the choice.

>>> from xrdnb.search_sweep import PROFILES
>>> len(tuning_cells(PROFILES["smoke"], "multistart", {"restarts": [1, 2]}))
4
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from .search_sweep import SearchCell, SearchSpec, run_search_sweep

__all__ = ["TUNING_RULE", "TUNING_GRIDS", "tuning_cells", "choose_hyper", "tune"]

TUNING_RULE = (
    "for each method and free/constrained setting, the hyper-parameters whose copies of the tuning seed (which the "
    "comparison does not report) reach the highest recovered rate; ties go to the higher match rate, then to the "
    "fewer pattern evaluations, then to the first setting listed"
)
"""How :func:`choose_hyper` picks a method's hyper-parameters."""


TUNING_GRIDS: dict[str, dict[str, list[Any]]] = {
    "multistart": {"restarts": [2, 4, 8], "spread": [0.02, 0.05]},
    "width_annealing": {"widths": [[1.0, 0.5, 0.2, 0.0], [2.0, 1.0, 0.5, 0.0]]},
    "differential_evolution": {"population": [5, 10], "length_span": [0.15, 0.25]},
    "basin_hopping": {"hops": [4, 8], "step_size": [0.02, 0.05]},
    "hybrid": {"weight": [0.1, 0.5, 2.0]},
}
"""The hyper-parameters chapter 8 tunes (``tune_hyper``), each method over every combination of its grid."""


def tuning_cells(spec: SearchSpec, method: str, grid: dict[str, Sequence[Any]], seed: int = 1) -> list[SearchCell]:
    """The cells that tune ``method`` over ``grid`` (every combination) on the copies of ``seed``.

    ``seed`` must not be one of ``spec.seeds``: hyper-parameters chosen on the reported copies
    would flatter the comparison (ValueError).
    """
    import itertools

    if seed in spec.seeds:
        raise ValueError(f"the tuning seed {seed} is one of the comparison's seeds {spec.seeds}: choose another")
    names = sorted(grid)
    cells = []
    for values in itertools.product(*(grid[n] for n in names)):
        hyper = {**spec.hyper_of(method), **dict(zip(names, values, strict=True))}
        tuned = replace(spec, methods=(method,), seeds=(seed,), hyper={method: hyper})
        cells += tuned.cells()
    return cells


def choose_hyper(rows: pd.DataFrame) -> pd.DataFrame:
    """Apply :data:`TUNING_RULE` to tuning rows; one row per (method, constrained) with the chosen ``hyper``.

    ``rows`` are :func:`xrdnb.search_sweep.run_search_cell` rows of :func:`tuning_cells`; the result also has
    each candidate's rates and mean evaluations in ``candidates`` (JSON text per setting).
    """
    from .selection import recovered

    rows = rows.assign(recovered=recovered(rows).to_numpy())
    scores = (
        rows.groupby(["method", "constrained", "hyper"], sort=False)
        .agg(recovered=("recovered", "mean"), match=("match", "mean"), evaluations=("evaluations", "mean"))
        .reset_index()
    )
    scores["order"] = np.arange(len(scores))
    out = []
    for (method, constrained), part in scores.groupby(["method", "constrained"], sort=False):
        best = part.sort_values(
            ["recovered", "match", "evaluations", "order"], ascending=[False, False, True, True]
        ).iloc[0]
        out.append(
            {
                "method": method,
                "constrained": bool(constrained),
                "hyper": best["hyper"],
                "recovered": best["recovered"],
                "match": best["match"],
                "candidates": len(part),
            }
        )
    return pd.DataFrame(out)


def tune(
    spec: SearchSpec,
    grids: dict[str, dict[str, Sequence[Any]]],
    results: str | os.PathLike,
    *,
    seed: int = 1,
    **run: Any,
) -> tuple[SearchSpec, pd.DataFrame]:
    """Tune each method of ``spec`` that ``grids`` names on the copies of ``seed``; ``spec`` with the choice.

    Runs :func:`tuning_cells` for every method (resumable, like :func:`xrdnb.search_sweep.run_search_sweep`,
    whose ``run`` options apply), chooses by :data:`TUNING_RULE` and returns the tuned spec
    and the choice table. A method tuned differently free and constrained keeps the free
    choice in the spec (one ``hyper`` per method) and the table shows both.
    """
    grids = {m: g for m, g in grids.items() if m in spec.methods}  # only the methods the comparison runs
    cells = [c for method, grid in grids.items() for c in tuning_cells(spec, method, grid, seed)]
    rows = run_search_sweep(cells, results, **run)
    chosen = choose_hyper(rows)
    free = chosen[~chosen["constrained"]].set_index("method")["hyper"]
    fallback = chosen.drop_duplicates("method").set_index("method")["hyper"]
    hyper = {**spec.hyper, **{m: json.loads(free.get(m, fallback[m])) for m in chosen["method"].unique()}}
    return replace(spec, hyper=hyper), chosen
