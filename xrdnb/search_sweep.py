"""The comparison of chapter 8: every search of :mod:`xrdnb.search` on the study's copies, at equal budget.

A :class:`SearchCell` is one method (with its hyper-parameters), free or constrained to the
crystal family, on the ``n_copies`` lattice-noise copies of the sweep cell of the same
structure, level, seed and draws (:func:`xrdnb.sweep.prepare_cell`: the very copies gradient
descent starts from in chapter 4). Each copy may use ``budget`` pattern evaluations. A
:class:`SearchSpec` expands a grid of them; :data:`PROFILES` are the chapter's ``smoke``,
``book`` and ``paper`` grids. Cells are written as they finish (:mod:`xrdnb.store`: atomic,
claimed, resumable after an interruption) to ``<results>/search/<cell id>.csv``.

Row contract (one row per copy): the cell's fields (``hyper`` as JSON), ``cell_id``,
``family``, ``copy``, ``evaluations``, ``energy_evaluations``, ``final_loss``, ``seconds``
(the cell's wall time), the columns of :func:`xrdnb.evaluate.evaluate_copies` of the end
point (``match``, ``max_length_error_rel``, ``max_angle_error``, ``amd_distance``, the
similarities) and of the start (prefixed ``start_``), and ``start_<p>``/``final_<p>`` for the
six lattice parameters. :func:`recovery_table` turns them into the chapter's table.

>>> [len(PROFILES[p].cells()) for p in ("smoke", "book")]
[4, 36]
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import store
from .vocabulary import BENCHMARK_NAMES, SEARCH_METHODS

__all__ = [
    "DEFAULT_HYPER",
    "SearchCell",
    "SearchSpec",
    "PROFILES",
    "cell_path",
    "is_finished",
    "run_search_cell",
    "run_search_sweep",
    "load_search_results",
    "finished_rows",
    "budget_multiple",
    "recovery_table",
    "at_reference_protocol",
    "larger_budget",
    "comparison_size",
]

DEFAULT_HYPER: dict[str, dict[str, Any]] = {
    "gradient_descent": {},
    "multistart": {"restarts": 4, "spread": 0.05},
    "width_annealing": {"widths": [1.0, 0.5, 0.2, 0.0]},
    "differential_evolution": {"population": 5, "length_span": 0.25, "angle_span": 10.0, "search_fraction": 0.5},
    "basin_hopping": {"hops": 4, "step_size": 0.05, "temperature": 0.01},
    "hybrid": {"weight": 0.5},
}
"""Each method's hyper-parameters unless a spec states others (the chapter prints them)."""


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(asdict(obj), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class SearchCell:
    """One method on the copies of one (structure, lattice level, seed), free or constrained.

    Attributes
    ----------
    structure, noise_level, seed, n_copies, draws
        which copies (those of the gradient-descent sweep cell with these values).
    method
        a name of :data:`xrdnb.search.METHODS`.
    constrained
        project onto the ground truth's crystal family.
    budget
        pattern evaluations per copy.
    hyper
        the method's hyper-parameters, as JSON (sorted keys).
    loss, lr, tol, patience, dtype
        the loss and the GD the method builds on.
    """

    structure: str
    noise_level: float
    method: str
    constrained: bool
    seed: int = 0
    n_copies: int = 16
    budget: int = 1000
    hyper: str = "{}"
    loss: str = "cosine"
    lr: float = 5e-3
    tol: float = 1e-4
    patience: int = 1000
    dtype: str = "float32"
    draws: str = "independent"

    def __post_init__(self):
        """Refuse an unknown method or a budget below 1 (ValueError)."""
        if self.method not in SEARCH_METHODS:
            raise ValueError(f"unknown search method {self.method!r}; valid: {', '.join(SEARCH_METHODS)}")
        if self.budget < 1 or self.n_copies < 1:
            raise ValueError(f"need budget >= 1 and n_copies >= 1, got {self.budget}, {self.n_copies}")

    @property
    def cell_id(self) -> str:
        """The cell's stable identifier, a readable prefix plus a hash of every field."""
        tag = "c" if self.constrained else "u"
        return f"{Path(self.structure).stem}_lat{self.noise_level:g}_{self.method}_{tag}_{_digest(self)}"

    def sweep_cell(self):
        """The gradient-descent :class:`~xrdnb.sweep.Cell` whose copies this cell starts from."""
        from .sweep import Cell

        return Cell(
            self.structure,
            "lattice",
            self.noise_level,
            self.loss,
            False,
            self.lr,
            self.seed,
            self.n_copies,
            dtype=self.dtype,
            draws=self.draws,
        )


def _copies_key(structure: str, level: float, constrained: bool) -> tuple[str, float, bool]:
    """Which copies and setting a budget or rate belongs to: structure, level (to 1e-6), free or constrained."""
    return structure, round(float(level), 6), bool(constrained)


@dataclass(frozen=True)
class SearchSpec:
    """A grid of :class:`SearchCell` (:meth:`cells`): structures × levels × methods × free/constrained × seeds.

    ``budget`` and ``lr`` hold for every cell unless ``budgets`` (``(structure, level, constrained,
    evaluations)``) or ``lrs`` (``(constrained, lr)``) name another for its copies
    (:func:`xrdnb.search_sweep.at_reference_protocol`).
    """

    structures: tuple[str, ...]
    noise_levels: tuple[float, ...]
    methods: tuple[str, ...]
    constrained: tuple[bool, ...] = (False, True)
    seeds: tuple[int, ...] = (0,)
    n_copies: int = 16
    budget: int = 1000
    hyper: dict[str, dict[str, Any]] = field(default_factory=dict)
    lr: float = 5e-3
    tol: float = 1e-4
    patience: int = 1000
    budgets: tuple[tuple[str, float, bool, int], ...] = ()
    lrs: tuple[tuple[bool, float], ...] = ()

    def hyper_of(self, method: str) -> dict[str, Any]:
        """The hyper-parameters of ``method``: :data:`DEFAULT_HYPER` updated by the spec's."""
        return {**DEFAULT_HYPER.get(method, {}), **self.hyper.get(method, {})}

    def cells(self) -> list[SearchCell]:
        """Expand the grid in a fixed order (structure, level, method, free then constrained, seed)."""
        budgets = {_copies_key(s, lv, c): int(n) for s, lv, c, n in self.budgets}
        lrs = {bool(c): float(lr) for c, lr in self.lrs}
        return [
            SearchCell(
                structure,
                float(level),
                method,
                constrained,
                seed,
                self.n_copies,
                budgets.get(_copies_key(structure, level, constrained), self.budget),
                json.dumps(self.hyper_of(method), sort_keys=True),
                lr=lrs.get(bool(constrained), self.lr),
                tol=self.tol,
                patience=self.patience,
            )
            for structure in self.structures
            for level in self.noise_levels
            for method in self.methods
            for constrained in self.constrained
            for seed in self.seeds
        ]


PROFILES: dict[str, SearchSpec] = {
    "smoke": SearchSpec(
        ("U2Ti",), (0.05,), ("gradient_descent", "multistart"), n_copies=1, budget=40, patience=20, tol=1e-5
    ),
    "book": SearchSpec(
        ("U2Ti", "Au2S", "BPO4"),
        (0.1,),
        SEARCH_METHODS,
        n_copies=2,
        budget=120,
        patience=40,
        tol=1e-5,
    ),
    "paper": SearchSpec(
        BENCHMARK_NAMES,
        (0.1, 0.2),
        SEARCH_METHODS,
        n_copies=16,
        budget=3000,
    ),
}
"""Named grids. ``book``: three structures at lattice noise 0.1, two copies and 120 evaluations
per copy, so that chapter 8 builds in CI (a demonstration of the pipeline, not a test of the
methods); ``smoke``: a few seconds; ``paper``: the issue's scope, all ten structures at 0.1 and
0.2, 16 copies, and a budget of the order SI-protocol GD uses per copy (its median steps at
these levels in the reference run set the final one)."""


def cell_path(results: str | os.PathLike, cell: SearchCell) -> Path:
    """Where a finished cell's rows live (``<results>/search/<cell id>.csv``)."""
    return Path(results) / "search" / f"{cell.cell_id}.csv"


def is_finished(results: str | os.PathLike, cell: SearchCell) -> bool:
    """Whether ``cell`` has a complete result (header and one row per copy)."""
    return store.is_complete(cell_path(results, cell), cell.n_copies)


def run_search_cell(cell: SearchCell, device: str = "cpu") -> pd.DataFrame:
    """Run one cell on one thread; its rows (the module's row contract)."""
    import torch

    from . import search
    from .evaluate import evaluate_copies
    from .pattern import simulate_pattern
    from .sweep import _one_thread, prepare_cell
    from .vocabulary import LATTICE_NAMES

    started = time.perf_counter()
    family, truth, start, config = prepare_cell(cell.sweep_cell())
    dtype = getattr(torch, cell.dtype)
    truth_x, start_x = truth.to(dtype=dtype, device=device), start.to(dtype=dtype, device=device)
    config = replace(
        config,
        constrained=cell.constrained,
        family=family if cell.constrained else None,
        tol=cell.tol,
        patience=cell.patience,
        record_every=0,
    )
    hyper = json.loads(cell.hyper)
    if "widths" in hyper:
        hyper["widths"] = tuple(hyper["widths"])
    with _one_thread():
        target = simulate_pattern(truth_x, config.simulator_settings())[0]
        result = getattr(search, cell.method)(start_x, target, config, cell.budget, seed=cell.seed, **hyper)
    end = evaluate_copies(result.crystal.to(dtype=torch.float64, device="cpu"), truth)
    begin = evaluate_copies(start, truth)
    rows = pd.DataFrame({k: [v] * cell.n_copies for k, v in asdict(cell).items()})
    rows.insert(0, "cell_id", cell.cell_id)
    rows["noise_type"] = "lattice"
    rows["family"] = family
    rows["copy"] = np.arange(cell.n_copies)
    rows["evaluations"] = result.evaluations.cpu().numpy()
    rows["energy_evaluations"] = result.energy_evaluations.cpu().numpy()
    rows["final_loss"] = result.loss.double().cpu().numpy()
    for col in end.columns.drop("copy"):
        rows[col] = end[col].to_numpy()
        rows[f"start_{col}"] = begin[col].to_numpy()
    for i, name in enumerate(LATTICE_NAMES):
        rows[f"start_{name}"] = start.lattice[:, i].double().numpy()
        rows[f"final_{name}"] = result.crystal.lattice[:, i].double().cpu().numpy()
    rows["seconds"] = time.perf_counter() - started
    return rows


def _in_worker(cell: SearchCell, device: str = "cpu") -> pd.DataFrame:
    return run_search_cell(cell, device)


def at_reference_protocol(spec: SearchSpec, reference, *, budget_scale: int = 1) -> SearchSpec:
    """``spec`` on the terms of SI-protocol gradient descent in a shipped result set (issue scope: equal budget).

    ``reference`` is a :class:`xrdnb.result_sets.ResultSet` whose evaluation stage holds the
    cosine lattice cells of ``spec``'s structures and levels (seed 0, ``spec.n_copies`` copies):
    the same copies as the search cells. Each (structure, level, free or constrained) gets as its
    budget the pattern evaluations that GD used there, the mean steps per copy rounded up, times
    ``budget_scale`` (10 for the issue's larger budget), and the GD inside every method uses the
    learning rates that run chose for free and constrained cosine. Raises ValueError, naming what
    is missing, while the reference run lacks any of those cells.
    """
    import math

    selection = reference.selection()
    rows = selection.rows if selection is not None else pd.DataFrame()
    cosine = (
        rows[(rows["noise_type"] == "lattice") & (rows["loss"] == "cosine") & rows["seed"].isin(spec.seeds)]
        if len(rows)
        else rows
    )
    means = {}
    if len(cosine):
        steps = cosine.groupby(["structure", "noise_level", "constrained"])["steps"].mean()
        means = {_copies_key(*key): float(value) for key, value in steps.items()}
    budgets, missing = [], []
    for structure in spec.structures:
        for level in spec.noise_levels:
            for constrained in spec.constrained:
                key = _copies_key(structure, level, constrained)
                if key not in means:
                    missing.append(f"{structure} σ {level:g} {'constrained' if constrained else 'free'}")
                    continue
                budgets.append((structure, float(level), bool(constrained), budget_scale * math.ceil(means[key])))
    if missing:
        raise ValueError(
            f"the reference run has no evaluated cosine cells for {len(missing)} search cells "
            f"(e.g. {', '.join(missing[:3])}): {reference.coverage_text()}"
        )
    lrs = tuple(sorted({(bool(c), float(lr)) for c, lr in zip(cosine["constrained"], cosine["lr"], strict=True)}))
    return replace(spec, budgets=tuple(budgets), lrs=lrs)


def run_search_sweep(
    cells: SearchSpec | Sequence[SearchCell],
    results: str | os.PathLike,
    *,
    workers: int | str = 0,
    scheduler: str | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> pd.DataFrame:
    """Run every unfinished cell (resumable, one writer per cell) and return all rows of ``cells``.

    ``workers``, ``scheduler`` and ``device`` are those of :func:`xrdnb.relax_sweep.run_relax_sweep`
    (local workers start as fresh interpreters, as CHGNet needs). A cell that fails is reported
    after the others ran (RuntimeError naming it); the others are saved.
    """
    from tqdm.auto import tqdm

    from .workers import resolve_workers, run_claimed

    results = Path(results)
    cell_list = cells.cells() if isinstance(cells, SearchSpec) else list(cells)
    store.check_writable(results / "search")
    pending = [c for c in cell_list if not is_finished(results, c)]
    bar = tqdm(total=len(cell_list), initial=len(cell_list) - len(pending), desc="search cells", disable=not progress)
    n_workers = resolve_workers(workers, len(pending)) if device == "cpu" else 0
    try:
        errors = run_claimed(
            _in_worker,
            [(c, device) for c in pending],
            path=lambda cell: cell_path(results, cell),
            is_done=lambda cell: is_finished(results, cell),
            write=lambda cell, rows: store.write_cell(cell_path(results, cell), rows),
            on_done=lambda: bar.update(1),
            who="xrdnb search",
            workers=n_workers,
            scheduler=scheduler,
            start_method="spawn" if n_workers else None,
        )
    finally:
        bar.close()
    if errors:
        raise RuntimeError(
            f"{len(errors)} search cells failed (the others are saved; re-run to retry):\n"
            + "\n".join(f"  {k}: {v}" for k, v in errors.items())
        )
    return load_search_results(results, cell_list)


def load_search_results(results: str | os.PathLike, cells: Sequence[SearchCell]) -> pd.DataFrame:
    """Rows of the finished ``cells``, in their order."""
    return _read_cells([cell_path(results, c) for c in cells if is_finished(results, c)])


def finished_rows(results: str | os.PathLike) -> pd.DataFrame:
    """Rows of every finished search cell under ``<results>/search``, whatever grid it belongs to, by cell id.

    A cell's CSV appears only when whole (:func:`xrdnb.store.write_cell`), so every CSV there is a
    finished cell: a result set packs them all (the comparison and its larger budget alike).
    """
    return _read_cells(sorted((Path(results) / "search").glob("*.csv")))


def _read_cells(paths: Sequence[Path]) -> pd.DataFrame:
    """The rows of these cell CSVs, in order (empty without any)."""
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()


def budget_multiple(rows: pd.DataFrame) -> pd.Series:
    """Each row's budget as a multiple of plain gradient descent's on the same copies (1 or 10 in a comparison).

    The reference is the ``gradient_descent`` cell of the same structure, level, seed and free or
    constrained setting (its budget is the equal budget); NaN where there is none.
    """
    keys = ["structure", "noise_level", "seed", "constrained"]
    gd = rows[rows["method"] == "gradient_descent"].groupby(keys)["budget"].min().rename("gd_budget")
    merged = rows[keys + ["budget"]].join(gd, on=keys)
    return (merged["budget"] / merged["gd_budget"]).rename("budget ×")


def recovery_table(rows: pd.DataFrame, *, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0):
    """Per method, free or constrained, and level: match and recovered rates (%) with intervals, and cost.

    Rates are means over copies with hierarchical bootstrap intervals (structures, then
    copies: :func:`xrdnb.statistics.bootstrap_means`); cost is the mean pattern and energy
    evaluations per copy and the mean wall time per copy (s). "Recovered" is
    :func:`xrdnb.selection.recovered` against the DFT ground truth.
    """
    from .selection import recovered
    from .statistics import bootstrap_means

    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(recovered=recovered(rows).to_numpy())
    tail = 50.0 * (1.0 - confidence)
    lines = []
    for (method, constrained, level), part in rows.groupby(["method", "constrained", "noise_level"], sort=False):
        line: dict[str, Any] = {"method": method, "constrained": bool(constrained), "σ": level, "copies": len(part)}
        for value in ("match", "recovered"):
            x = part[value].astype(float).to_numpy()
            reps = bootstrap_means(x, part["structure"].to_numpy(), n_bootstrap=n_bootstrap, seed=seed)
            lo, hi = np.nanpercentile(reps, [tail, 100 - tail]) if np.isfinite(reps).any() else (np.nan, np.nan)
            line[f"{value} (%)"] = 100 * x.mean()
            line[f"{value} lo"], line[f"{value} hi"] = 100 * lo, 100 * hi
        line["evaluations"] = part["evaluations"].mean()
        line["energy evaluations"] = part["energy_evaluations"].mean()
        line["seconds per copy"] = (part.groupby("cell_id")["seconds"].first() / part.groupby("cell_id").size()).mean()
        lines.append(line)
    return pd.DataFrame(lines)


def larger_budget(spec: SearchSpec, table: pd.DataFrame, *, n: int = 2, scale: int = 10) -> SearchSpec:
    """``spec`` for the ``n`` most promising methods of a finished comparison at ``scale`` × its budgets.

    The most promising are those with the highest recovered rate of :func:`recovery_table`
    ``table``, averaged over its levels and free/constrained rows (ties: the order of
    ``spec.methods``). Every cell budget, the common one and those of ``budgets``, is multiplied.
    """
    if n < 1 or scale < 1:
        raise ValueError(f"need n >= 1 and scale >= 1, got {n}, {scale}")
    rates = table.groupby("method", sort=False)["recovered (%)"].mean().reindex(list(spec.methods))
    ranked = sorted(spec.methods, key=lambda m: (-rates.fillna(-1.0)[m], spec.methods.index(m)))
    return replace(
        spec,
        methods=tuple(ranked[:n]),
        budget=spec.budget * scale,
        budgets=tuple((s, lv, c, b * scale) for s, lv, c, b in spec.budgets),
    )


def comparison_size(spec: SearchSpec, measured: pd.DataFrame) -> pd.DataFrame:
    """What ``spec`` will cost, per method, at the wall time per pattern evaluation of ``measured`` rows.

    ``measured`` are rows of a finished (smaller) comparison on this machine; each method's
    cost per evaluation is its cells' summed wall time over their copies' evaluations. Returns
    per method: cells, copies, pattern evaluations (``budget`` × copies, an upper bound: a
    method may stop early), seconds per evaluation and CPU hours (one core per cell), with a
    total row. Methods without measured rows get NaN.
    """
    cells = spec.cells()
    lines = []
    for method in spec.methods:
        part = [c for c in cells if c.method == method]
        copies = sum(c.n_copies for c in part)
        evaluations = sum(c.n_copies * c.budget for c in part)
        rows = measured[measured["method"] == method] if len(measured) else measured
        per_cell = rows.groupby("cell_id").agg(seconds=("seconds", "first"), evaluations=("evaluations", "sum"))
        rate = float(per_cell["seconds"].sum() / per_cell["evaluations"].sum()) if len(per_cell) else np.nan
        lines.append(
            {
                "method": method,
                "cells": len(part),
                "copies": copies,
                "evaluations": evaluations,
                "seconds per evaluation": rate,
                "CPU hours": evaluations * rate / 3600.0,
            }
        )
    table = pd.DataFrame(lines)
    total = {"method": "all", **table[["cells", "copies", "evaluations", "CPU hours"]].sum(min_count=1).to_dict()}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)
