"""Resumable sweeps of the optimisation study.

A :class:`SweepSpec` (structures × noise type × level × loss × constrained × learning rate
× seed) expands to :class:`Cell` s. One cell distorts ``n_copies`` copies of one structure
(:mod:`xrdnb.distortions`), runs batched gradient descent (:mod:`xrdnb.optimize`) and
evaluates start and end against the ground truth (:mod:`xrdnb.evaluate`). Its tidy rows —
one per copy, every configuration value a column — are written atomically to
``<results>/cells/<cell id>.csv`` (with the loss trajectories in ``<cell id>.npz``) as soon
as the cell finishes. Re-running a sweep skips finished cells, so an interrupted sweep
loses at most the cells in flight.

Cells run in this process by default, on ``workers`` local processes (``"auto"``: one per
core), or on any Dask cluster given its scheduler address (:mod:`xrdnb.workers`). Each
cell uses one thread, so its rows do not depend on where it ran; the workers compute and
return rows and this process writes them, so no shared file system is needed. ``device="cuda"``
runs the gradient descent of each cell on a GPU; the distorted copies are drawn on the CPU
either way (the same copies for a seed), and the ``device`` column records where a cell ran.

Named profiles (:data:`PROFILES`): ``smoke`` (seconds, for tests), ``book`` (the rendered
chapters, within the CI budget) and ``paper`` (the SI's scale).

>>> cells = PROFILES["smoke"].cells()
>>> len(cells), cells[0].structure
(10, 'U2Ti')
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import store
from .device import resolve_device
from .vocabulary import BENCHMARK_NAMES, NOISE_LEVELS

__all__ = [
    "Cell",
    "SweepSpec",
    "PROFILES",
    "prepare_cell",
    "run_cell",
    "run_cells_batched",
    "batch_groups",
    "stage_batching",
    "Batching",
    "CUDA_BATCH_COPIES",
    "CPU_BATCH_BELOW",
    "CPU_BATCH_COPIES",
    "check_sweep",
    "is_finished",
    "run_sweep",
    "run_stages",
    "at_paper_protocol",
    "load_results",
    "load_trajectories",
    "cell_path",
    "with_overrides",
]


@dataclass(frozen=True)
class Cell:
    """One experiment cell: a batch of distorted copies optimised together.

    Attributes
    ----------
    structure
        benchmark name (or a CIF path).
    noise_type
        ``"lattice"`` or ``"coordinates"``.
    noise_level
        σ (lattice: relative; coordinates: Å).
    loss
        loss name (:mod:`xrdnb.losses`).
    constrained
        crystal-family projector on (lattice only).
    lr
        learning rate.
    seed
        seed of the distortions.
    n_copies, max_steps, patience, tol, record_every
        see :class:`xrdnb.optimize.GDConfig`.
    dtype
        ``"float32"`` or ``"float64"`` for the optimisation (evaluation is float64).
    units
        units of the coordinate-noise σ: ``"angstrom"`` (the study's choice) or ``"fractional"``
        (:func:`xrdnb.distortions.distort_coordinates`; the units sensitivity check).
    draws
        ``"independent"`` (the study's choice: the seed is combined with the structure, noise
        type and level, :func:`xrdnb.distortions.study_seed`) or ``"paired"`` (the seed
        itself: the same unit draws for every structure and level).
    """

    structure: str
    noise_type: str
    noise_level: float
    loss: str
    constrained: bool
    lr: float
    seed: int
    n_copies: int = 16
    max_steps: int = 30_000
    patience: int = 1000
    tol: float = 1e-4
    record_every: int = 100
    dtype: str = "float32"
    units: str = "angstrom"
    draws: str = "independent"

    def __post_init__(self):
        """Refuse unknown coordinate-noise units or draws before any cell runs (ValueError)."""
        from .distortions import COORDINATE_UNITS, DRAWS

        if self.units not in COORDINATE_UNITS:
            raise ValueError(f"cell units must be one of {', '.join(COORDINATE_UNITS)}, got {self.units!r}")
        if self.draws not in DRAWS:
            raise ValueError(f"cell draws must be one of {', '.join(DRAWS)}, got {self.draws!r}")

    @property
    def cell_id(self) -> str:
        """Stable identifier of the cell, a readable prefix plus a hash of every field.

        ``units`` enters the hash only when it is not the default, so that the identifiers of
        the study's cells do not depend on the field's existence; ``draws`` always does (cells
        of the earlier paired draws, whose copies differ, get other identifiers).
        """
        fields_ = asdict(self)
        if fields_["units"] == "angstrom":
            del fields_["units"]
        text = json.dumps(fields_, sort_keys=True)
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        tag = "c" if self.constrained else "u"
        return f"{Path(self.structure).stem}_{self.noise_type[:3]}{self.noise_level:g}_{self.loss}_{tag}_{digest}"


@dataclass(frozen=True)
class SweepSpec:
    """A grid of cells (see :meth:`cells`).

    Lattice cells run every loss unconstrained, plus ``constrained_losses`` with the
    projector; coordinate cells run every loss unconstrained (the projector acts on the
    lattice only). Where a run has several learning rates, the copies of ``selection_seed``
    (``selection_copies`` per cell, default ``n_copies``) choose the one the tables report
    (:meth:`selection_spec`). ``evaluate_lrs`` says which learning rates the evaluated seeds
    run: ``"all"`` of them, or only the ``"selected"`` one of each run (two stages: the
    selection cells first, then the evaluated cells at the chosen rates, :meth:`stages`),
    which is what the tables report at a fraction of the cost. ``draws`` is the cells'
    :attr:`Cell.draws` (independent across structures, noise types and levels by default).
    """

    structures: tuple[str, ...]
    lattice_levels: tuple[float, ...]
    coordinate_levels: tuple[float, ...]
    losses: tuple[str, ...] = ("cosine", "mse", "entropy", "cross_correlation")
    constrained_losses: tuple[str, ...] = ("cosine",)
    lattice_lrs: tuple[float, ...] = (5e-3,)
    coordinate_lrs: tuple[float, ...] = (1e-4,)
    seeds: tuple[int, ...] = (0,)
    n_copies: int = 16
    max_steps: int = 30_000
    patience: int = 1000
    tol: float = 1e-4
    record_every: int = 100
    dtype: str = "float32"
    selection_seed: int | None = None
    selection_copies: int | None = None
    evaluate_lrs: str = "all"
    draws: str = "independent"

    def __post_init__(self):
        """Check every setting before any cell exists (one line per problem, ValueError)."""
        import math

        from .losses import LOSS_NAMES

        def sequence(name, kind, check, what):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                raise ValueError(f"sweep setting {name} must be a list, got {value!r}")
            for item in value:
                if not isinstance(item, kind) or isinstance(item, bool) or not check(item):
                    raise ValueError(f"sweep setting {name}: {item!r} is not {what}")

        def finite(x):
            return math.isfinite(x)

        sequence("structures", str, lambda x: x != "", "a structure name or CIF path")
        if not self.structures:
            raise ValueError("sweep setting structures is empty")
        sequence("lattice_levels", (int, float), lambda x: finite(x) and x >= 0, "a noise level >= 0")
        sequence("coordinate_levels", (int, float), lambda x: finite(x) and x >= 0, "a noise level >= 0 (Å)")
        sequence("losses", str, lambda x: x in LOSS_NAMES, f"one of {', '.join(LOSS_NAMES)}")
        sequence("constrained_losses", str, lambda x: x in LOSS_NAMES, f"one of {', '.join(LOSS_NAMES)}")
        sequence("lattice_lrs", (int, float), lambda x: finite(x) and x > 0, "a learning rate > 0")
        sequence("coordinate_lrs", (int, float), lambda x: finite(x) and x > 0, "a learning rate > 0")
        sequence("seeds", int, lambda x: x >= 0, "a seed (whole number >= 0)")
        for name, low in (("n_copies", 1), ("max_steps", 0), ("patience", 1), ("record_every", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"sweep setting {name} must be a whole number >= {low}, got {value!r}")
        if not isinstance(self.tol, (int, float)) or not (math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"sweep setting tol must be a number >= 0, got {self.tol!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"sweep setting dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.selection_seed is not None:
            if not isinstance(self.selection_seed, int) or isinstance(self.selection_seed, bool):
                raise ValueError(f"sweep setting selection_seed must be a whole number, got {self.selection_seed!r}")
            if self.selection_seed in self.seeds:
                raise ValueError(f"sweep setting selection_seed {self.selection_seed} is also an evaluated seed")
        if self.selection_copies is not None and (
            not isinstance(self.selection_copies, int)
            or isinstance(self.selection_copies, bool)
            or self.selection_copies < 1
        ):
            raise ValueError(
                f"sweep setting selection_copies must be a whole number >= 1, got {self.selection_copies!r}"
            )

        from .distortions import DRAWS

        if self.draws not in DRAWS:
            raise ValueError(f"sweep setting draws must be one of {', '.join(DRAWS)}, got {self.draws!r}")
        if self.evaluate_lrs not in EVALUATE_LRS:
            raise ValueError(
                f"sweep setting evaluate_lrs must be one of {', '.join(EVALUATE_LRS)}, got {self.evaluate_lrs!r}"
            )

    def selection_spec(self) -> SweepSpec | None:
        """The grid whose copies choose the learning rates (:func:`xrdnb.selection.select`, rule 3).

        This grid at ``selection_seed`` instead of ``seeds``, with ``selection_copies`` copies per
        cell (``n_copies`` when unset); None when no selection seed is set or every run has one rate.
        """
        if self.selection_seed is None or (len(self.lattice_lrs) <= 1 and len(self.coordinate_lrs) <= 1):
            return None
        copies = self.selection_copies or self.n_copies
        return replace(
            self,
            seeds=(self.selection_seed,),
            selection_seed=None,
            selection_copies=None,
            n_copies=copies,
            evaluate_lrs="all",
        )

    @property
    def staged(self) -> bool:
        """Whether the evaluated seeds run only the learning rates the selection chose (two stages)."""
        return self.evaluate_lrs == "selected" and self.selection_spec() is not None

    def cells(self, learning_rates: Mapping[tuple[str, str, bool], float] | None = None) -> list[Cell]:
        """Expand the grid, in a fixed order (structure, noise type, level, loss, constrained, lr, seed).

        ``learning_rates`` maps a run ``(noise_type, loss, constrained)`` to the one learning
        rate its cells use (e.g. :meth:`chosen_learning_rates`); runs it omits keep every rate.
        """
        learning_rates = learning_rates or {}
        common: dict[str, Any] = dict(
            n_copies=self.n_copies,
            max_steps=self.max_steps,
            patience=self.patience,
            tol=self.tol,
            record_every=self.record_every,
            dtype=self.dtype,
            draws=self.draws,
        )
        out = []
        for structure in self.structures:
            for noise_type, levels, lrs in (
                ("lattice", self.lattice_levels, self.lattice_lrs),
                ("coordinates", self.coordinate_levels, self.coordinate_lrs),
            ):
                for level in levels:
                    for loss in self.losses:
                        modes = [False] + (
                            [True] if noise_type == "lattice" and loss in self.constrained_losses else []
                        )
                        for constrained in modes:
                            chosen = learning_rates.get((noise_type, loss, constrained))
                            for lr in lrs if chosen is None else (chosen,):
                                for seed in self.seeds:
                                    out.append(
                                        Cell(
                                            structure,
                                            noise_type,
                                            float(level),
                                            loss,
                                            constrained,
                                            float(lr),
                                            int(seed),
                                            **common,
                                        )
                                    )
        return out

    def all_cells(self) -> list[Cell]:
        """What a one-stage profile needs computed: :meth:`cells`, then its learning-rate selection cells.

        The selection cells (:meth:`selection_spec`) exist only where a run has several learning
        rates. For a two-stage profile (:attr:`staged`) use :meth:`stages`.
        """
        if self.staged:
            raise ValueError("a two-stage sweep's evaluated cells follow from its selection: use SweepSpec.stages")
        selection = self.selection_spec()
        return self.cells() + (selection.cells() if selection else [])

    def chosen_learning_rates(self, results: str | os.PathLike) -> dict[tuple[str, str, bool], float] | None:
        """The learning rate of each run chosen on the finished selection cells in ``results``.

        :func:`xrdnb.selection.choose_learning_rates` on the rows of :meth:`selection_spec`;
        None while any selection cell is unfinished (or when there is no selection).
        """
        from .selection import GROUP, choose_learning_rates

        selection = self.selection_spec()
        if selection is None:
            return None
        cells = selection.cells()
        if not all(is_finished(results, c) for c in cells):
            return None
        chosen = choose_learning_rates(load_results(results, cells))
        return {tuple(row[list(GROUP)]): float(row["lr"]) for _, row in chosen.iterrows()}

    def stages(self, results: str | os.PathLike) -> list[tuple[str, list[Cell] | None]]:
        """The cells to compute, stage by stage: ``[(name, cells)]``.

        A one-stage profile: ``[("all", all_cells())]``. A two-stage one (:attr:`staged`):
        ``[("selection", ...), ("evaluation", ...)]``, the evaluation cells at the learning
        rates chosen on the finished selection (:meth:`chosen_learning_rates`), or None
        while the selection is unfinished.
        """
        if not self.staged:
            return [("all", self.all_cells())]
        selection = self.selection_spec()
        assert selection is not None  # staged
        chosen = self.chosen_learning_rates(results)
        return [("selection", selection.cells()), ("evaluation", None if chosen is None else self.cells(chosen))]

    def planned_stages(self) -> list[tuple[str, list[Cell]]]:
        """:meth:`stages` for planning (:mod:`xrdnb.estimate`) before any cell has run.

        One-stage: ``[("all", all_cells())]``. Two-stage: the selection cells, then one
        evaluated cell per (structure, level, run, seed) at the run's first candidate rate,
        standing in for the one the selection will choose (a step costs the same at any rate).
        """
        if not self.staged:
            return [("all", self.all_cells())]
        selection = self.selection_spec()
        assert selection is not None  # staged
        first = {
            (noise_type, loss, constrained): lrs[0]
            for noise_type, lrs in (("lattice", self.lattice_lrs), ("coordinates", self.coordinate_lrs))
            for loss in self.losses
            for constrained in (False, True)
        }
        return [("selection", selection.cells()), ("evaluation", self.cells(first))]

    @classmethod
    def from_dict(cls, data: dict) -> SweepSpec:
        """Build from a mapping (e.g. a YAML or JSON config); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown sweep settings {sorted(unknown)}; valid: {sorted(names)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)  # __post_init__ checks types and values (a bare string is not a list)


EVALUATE_LRS = ("all", "selected")
"""Values of :attr:`SweepSpec.evaluate_lrs`: every learning rate on the evaluated seeds, or the selected one."""

ALL_STRUCTURES = BENCHMARK_NAMES
"""The ten benchmark structures (:data:`xrdnb.vocabulary.BENCHMARK_NAMES`)."""

PROFILES: dict[str, SweepSpec] = {
    "smoke": SweepSpec(
        structures=("U2Ti", "BPO4"),
        lattice_levels=(0.01,),
        coordinate_levels=(0.01,),
        losses=("cosine", "mse"),
        n_copies=2,
        max_steps=15,
        patience=5,
        record_every=5,
    ),
    "book": SweepSpec(
        structures=ALL_STRUCTURES,
        lattice_levels=NOISE_LEVELS["lattice"],
        coordinate_levels=NOISE_LEVELS["coordinates"],
        lattice_lrs=(1e-2,),
        coordinate_lrs=(1e-3,),
        n_copies=4,
        max_steps=60,
        patience=30,
        tol=3e-6,
        record_every=5,
    ),
    "paper": SweepSpec(
        structures=ALL_STRUCTURES,
        lattice_levels=NOISE_LEVELS["lattice"],
        coordinate_levels=NOISE_LEVELS["coordinates"],
        lattice_lrs=(5e-4, 1e-3, 5e-3, 1e-2),
        coordinate_lrs=(1e-6, 1e-5, 1e-4),
        selection_seed=1,
        selection_copies=1,
        evaluate_lrs="selected",
        n_copies=16,
        max_steps=30_000,
        patience=1000,
        record_every=100,
    ),
}
"""Named sweeps. ``paper`` uses the SI's batch size, step budget, stopping rule and
learning-rate range. ``book`` keeps the full grid (10 structures × 10 levels × 4 losses +
constrained cosine = 450 cells) but 4 copies and 60 steps, so that the rendered chapters
build within the CI time; to move as far in 60 steps, it uses the SI's largest lattice
learning rate (1e-2) and 10× the SI's largest coordinate one (1e-3), and scales the
stopping rule (1e-4 over 1000 steps, i.e. 1e-7 per step) to 3e-6 over 30 steps.
``paper`` runs in two stages (:meth:`SweepSpec.stages`): first the selection cells, every
candidate learning rate on one copy of its ``selection_seed`` per structure and level (50
copies per rate and run, pooled over the ten structures and five levels, since the choice is
made per noise type and run; batched on the CPU, :func:`stage_batching`), never reported;
then the 450 cells the tables report, 16 copies each, at the rate the selection chose per
noise type and run (:func:`xrdnb.selection.choose_learning_rates`). Evaluating every
candidate rate on the reported seed would cost 3.6× as much and only one of them is reported."""


def at_paper_protocol(spec: SweepSpec) -> bool:
    """Whether ``spec`` runs the SI's protocol: its copies, step budget and stopping rule (those of ``paper``).

    Only such runs can test the paper's claims; the chapters say so next to any verdict of another.
    """
    paper = PROFILES["paper"]
    return (spec.n_copies, spec.max_steps, spec.patience, spec.tol) == (
        paper.n_copies,
        paper.max_steps,
        paper.patience,
        paper.tol,
    )


@contextmanager
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_cell(
    cell: Cell, *, progress: bool = False, units: str | None = None, device: str = "cpu"
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Distort, optimise and evaluate one cell; returns (rows, trajectories).

    ``units`` (default: the cell's ``units``) is passed to :func:`xrdnb.distortions.distort`
    for coordinate noise (the study's choice, Å; ``"fractional"`` for the sensitivity check).
    ``device`` is where the gradient descent runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``);
    distortion and evaluation stay on the CPU.

    The cell runs on one intra-op thread: float reductions then happen in one order, so
    its rows are bit-identical whether it runs in this process, on a local worker or on a
    cluster. Use ``workers`` in :func:`run_sweep` to use several cores.
    """
    device = resolve_device(device)
    with _one_thread():
        return _run_cell(cell, progress, units or cell.units, device)


def prepare_cell(cell: Cell, units: str | None = None):
    """What a cell starts from: ``(family, truth, start, config)``.

    ``truth`` is the ground truth as a one-copy :class:`~xrdnb.crystal.Crystal` (float64),
    ``start`` its ``n_copies`` distorted copies (float64, CPU), ``config`` the
    :class:`~xrdnb.optimize.GDConfig` of the cell's gradient descent.
    """
    from .crystal import crystal_from_structure
    from .distortions import distort, study_seed
    from .optimize import GDConfig
    from .structures import crystal_family, load_structure

    structure = load_structure(cell.structure)
    family = crystal_family(structure)
    truth = crystal_from_structure(structure)
    seed = study_seed(cell.seed, cell.structure, cell.noise_type, cell.noise_level, cell.draws)
    start = distort(truth, cell.noise_type, cell.noise_level, cell.n_copies, seed, units=units or cell.units)
    config = GDConfig(
        mode="lattice" if cell.noise_type == "lattice" else "coordinates",
        loss=cell.loss,
        constrained=cell.constrained,
        family=family if cell.constrained else None,
        lr=cell.lr,
        max_steps=cell.max_steps,
        tol=cell.tol,
        patience=cell.patience,
        record_every=cell.record_every,
    )
    return family, truth, start, config


def _run_cell(cell: Cell, progress: bool, units: str, device: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    from .optimize import run_gradient_descent

    started = time.perf_counter()
    family, truth, start, config, target = _start(cell, units, device)
    dtype = target.dtype
    result = run_gradient_descent(
        start.to(dtype=dtype, device=device), target, config, progress=f"{cell.cell_id}" if progress else False
    )
    rows, trajectories = _cell_rows(cell, family, truth, start, result, device)
    rows["seconds"] = time.perf_counter() - started
    return rows, trajectories


def _start(cell: Cell, units: str, device: str):
    """:func:`prepare_cell` plus the target pattern on ``device`` in the cell's dtype."""
    import torch

    from .pattern import simulate_pattern

    family, truth, start, config = prepare_cell(cell, units)
    dtype = getattr(torch, cell.dtype)
    target = simulate_pattern(truth.to(dtype=dtype, device=device), config.simulator_settings())[0]
    return family, truth, start, config, target


def _cell_rows(
    cell: Cell, family: str, truth, start, result, device: str
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Tidy rows (without ``seconds``) and trajectories of a finished cell."""
    from .evaluate import LATTICE_NAMES, evaluate_copies

    end_rows = evaluate_copies(result.crystal, truth)
    start_rows = evaluate_copies(start, truth)
    rows = pd.DataFrame({k: [v] * cell.n_copies for k, v in asdict(cell).items()})
    rows.insert(0, "cell_id", cell.cell_id)
    rows["family"] = family
    rows["device"] = device.split(":")[0]
    rows["copy"] = np.arange(cell.n_copies)
    rows["steps"] = result.steps.cpu().numpy()
    rows["stop_reason"] = result.stop_reason
    rows["initial_loss"] = result.initial_loss.double().cpu().numpy()
    rows["final_loss"] = result.loss.double().cpu().numpy()
    metric_cols = [c for c in end_rows.columns if c != "copy"]
    for col in metric_cols:
        rows[col] = end_rows[col].to_numpy()
        if col.startswith(("similarity_", "amd_distance", "match", "max_", "error_")):
            rows[f"start_{col}"] = start_rows[col].to_numpy()
    # a copy that failed before any valid step has no end point of its own: not valid, no match
    never = (rows["steps"] == 0) & (rows["stop_reason"] == "invalid_lattice")
    rows.loc[never, ["valid", "match"]] = False
    for i, name in enumerate(LATTICE_NAMES):
        rows[f"start_{name}"] = start.lattice[:, i].double().numpy()
        rows[f"final_{name}"] = result.crystal.lattice[:, i].double().cpu().numpy()
        rows[f"true_{name}"] = float(truth.lattice[0, i])
    trajectories = {
        "steps": result.trajectory_steps.cpu().numpy(),
        "loss": result.trajectory_loss.double().cpu().numpy(),
        "params": result.trajectory_params.double().cpu().numpy(),
    }
    return rows, trajectories


CUDA_BATCH_COPIES = 4096
"""Copies per batch on a CUDA device, where one program for many copies is what makes it fast."""


def batch_groups(cells: Sequence[Cell], max_copies: int = CUDA_BATCH_COPIES) -> list[list[Cell]]:
    """Cells that can advance as one batch: same structure, noise type and dtype, at most ``max_copies`` copies.

    The cells of one (structure, noise type, dtype) are split into as few groups as
    ``max_copies`` allows, of about equal size (100 one-copy cells at 32: 25 + 25 + 25 + 25,
    not 32 + 32 + 32 + 4, whose last batch would pay a whole tail of steps for 4 copies).
    Groups keep the cells' order; each holds at least one cell.
    """
    by_key: dict[tuple, list[Cell]] = {}
    for cell in cells:
        by_key.setdefault((cell.structure, cell.noise_type, cell.dtype), []).append(cell)
    order: list[list[Cell]] = []
    for members in by_key.values():
        total = sum(c.n_copies for c in members)
        target = math.ceil(total / math.ceil(total / max_copies)) if total else max_copies
        group: list[Cell] = []
        for cell in members:
            size = sum(c.n_copies for c in group)
            if group and (size + cell.n_copies > max_copies or size >= target):
                order.append(group)
                group = []
            group.append(cell)
        order.append(group)
    return order


CPU_BATCH_BELOW = 16
"""On the CPU, a selection stage whose cells have fewer copies than this runs in batches (:func:`stage_batching`)."""

CPU_BATCH_COPIES = 128
"""Copies per batch on the CPU. A step's cost per running copy is nearly flat from 16 to 128
copies (NdAl2Cu4 on one core: 2.98 ms per copy-step at 2 copies, 2.17 at 16, 2.11 at 64, 2.48
at 128), while a batch runs until its slowest copy stops, paying about a 2-copy step for each
step of that tail (a copy may take 17,000 steps where the median takes 2,000): the fewer the
batches, the fewer the tails."""


@dataclass(frozen=True)
class Batching:
    """How a stage's cells run: as batches of at most ``max_copies`` copies, or one cell per task."""

    batched: bool
    max_copies: int

    def units(self, cells: Sequence[Cell]) -> list[list[Cell]]:
        """The tasks the cells run as: :func:`batch_groups` of all ``cells`` when batched, else one cell each."""
        return batch_groups(cells, max_copies=self.max_copies) if self.batched else [[c] for c in cells]


def stage_batching(
    stage: str | None,
    cells: Sequence[Cell],
    device: str = "cpu",
    *,
    batch_cells: bool | None = None,
    batch_copies: int | None = None,
    scheduler: str | None = None,
) -> Batching:
    """Whether and how a stage's cells are batched: one rule for the sweep, ``--only``, the estimate and its check.

    ``batch_cells`` and ``batch_copies``, when given, decide. Otherwise a CUDA device batches
    every stage (in this process, so not with a Dask ``scheduler``), at most
    :data:`CUDA_BATCH_COPIES` copies per batch. The CPU batches a ``"selection"`` stage whose
    cells all have fewer than :data:`CPU_BATCH_BELOW` copies (a step of one or two copies
    costs about as much as one of sixteen), at most :data:`CPU_BATCH_COPIES` per batch, and
    runs every other stage (``stage`` ``"evaluation"``, ``"all"`` or None) one cell per task.
    """
    cuda = device.startswith("cuda")
    if batch_cells is None:
        small = bool(cells) and all(c.n_copies < CPU_BATCH_BELOW for c in cells)
        batch_cells = (cuda and not scheduler) or (stage == "selection" and not cuda and small)
    if batch_copies is None:
        batch_copies = CUDA_BATCH_COPIES if cuda else CPU_BATCH_COPIES
    return Batching(bool(batch_cells), int(batch_copies))


def run_cells_batched(cells: Sequence[Cell], *, units: str | None = None, device: str = "cpu", progress: bool = False):
    """Run cells of one structure and noise type as one batched gradient descent; ``[(rows, trajectories)]``.

    The rows are those of :func:`run_cell` for each cell (the batched engine computes
    every copy as in a run of its own, :func:`xrdnb.optimize.init_batched_state`), except
    ``seconds``, which is the batch's wall time shared equally among its cells. Meant for
    GPUs, where one program for many cells is what makes them fast.
    """
    from .optimize import run_batched_gradient_descent

    device = resolve_device(device)
    cells = list(cells)
    if len({(c.structure, c.noise_type, c.dtype) for c in cells}) != 1:
        raise ValueError("a batch of cells needs one structure, noise type and dtype (see batch_groups)")
    started = time.perf_counter()
    with _one_thread():
        prepared = [_start(cell, units or cell.units, device) for cell in cells]
        results = run_batched_gradient_descent(
            [p[2].to(dtype=p[4].dtype, device=device) for p in prepared],
            [p[4] for p in prepared],
            [p[3] for p in prepared],
            progress=f"{len(cells)} cells" if progress else False,
        )
        out = [
            _cell_rows(cell, p[0], p[1], p[2], result, device)
            for cell, p, result in zip(cells, prepared, results, strict=True)
        ]
    share = (time.perf_counter() - started) / len(cells)
    for rows, _ in out:
        rows["seconds"] = share
    return out


def cell_path(results: str | os.PathLike, cell: Cell) -> Path:
    """Where a finished cell's rows live."""
    return Path(results) / "cells" / f"{cell.cell_id}.csv"


def _write_cell(results: Path, cell: Cell, rows: pd.DataFrame, trajectories: dict) -> None:
    store.write_cell(
        cell_path(results, cell), rows, {".npz": lambda handle: np.savez_compressed(handle, **trajectories)}
    )


def is_finished(results: str | os.PathLike, cell: Cell) -> bool:
    """Whether ``cell`` has a complete result: its CSV with one row per copy (and a header) and its NPZ.

    An empty or truncated CSV (a disk that filled up, a copy interrupted outside this
    package) does not count, so the cell is computed again (:func:`xrdnb.store.is_complete`).
    """
    return store.is_complete(cell_path(results, cell), cell.n_copies, (".npz",))


_process_token = store.process_token


def _claim(results: Path, cell: Cell) -> bool:
    """Take ``cell`` for this process (:func:`xrdnb.store.claim`); False if a live process holds it."""
    return store.claim(cell_path(results, cell))


def _release(results: Path, cell: Cell) -> None:
    store.release(cell_path(results, cell))


def _run_in_worker(cell: Cell, device: str = "cpu"):
    return run_cell(cell, device=device)


def _run_batch_in_worker(cells: tuple[Cell, ...], device: str = "cpu"):
    return run_cells_batched(cells, device=device)


WORKER_PRELOAD = (
    "torch",
    "pymatgen.core",
    "pymatgen.analysis.structure_matcher",
    "amd",
    "xrdnb.optimize",
    "xrdnb.evaluate",
    "xrdnb.sweep",
)
"""Modules the local workers' forkserver imports once (:func:`xrdnb.workers.run_tasks`)."""


def check_sweep(cells: Sequence[Cell], results: str | os.PathLike) -> None:
    """Refuse a sweep before any cell runs.

    Every structure must load (ValueError naming it) and ``<results>/cells`` must be writable
    (OSError naming it).
    """
    from .structures import load_structure

    for name in dict.fromkeys(c.structure for c in cells):
        load_structure(name)  # StructureError (a ValueError) names the file and the problem
    store.check_writable(Path(results) / "cells")


def run_sweep(
    cells: SweepSpec | Sequence[Cell],
    results: str | os.PathLike,
    *,
    workers: int | str = 0,
    scheduler: str | None = None,
    progress: bool = True,
    device: str = "cpu",
    start_method: str | None = None,
    batch_cells: bool | None = None,
    batch_copies: int | None = None,
) -> pd.DataFrame:
    """Run every unfinished cell and return all rows of ``cells`` (finished earlier or now).

    Parameters
    ----------
    cells
        a one-stage :class:`SweepSpec` (its :meth:`~SweepSpec.all_cells`) or a list of
        :class:`Cell`; a two-stage spec runs with :func:`run_stages`.
    results
        results folder; finished cells are read back from ``<results>/cells``.
    workers
        0: run in this process; N > 0: N single-threaded local processes; ``"auto"``: one
        per available core, at most one per unfinished cell (in this process when that
        is one). See :mod:`xrdnb.workers`.
    scheduler
        address of a running Dask scheduler (e.g. ``tcp://10.0.0.5:8786``); overrides ``workers``.
    progress
        show a progress bar over cells (and over steps when in-process).
    device
        where each cell's gradient descent runs (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
        ``"auto"``, see :func:`xrdnb.device.resolve_device`); checked before
        any cell starts. With ``workers`` or ``scheduler``, every worker uses it.
    start_method
        how local workers start (:func:`xrdnb.workers.run_tasks`); the default, a
        forkserver, is safe from any process, ``"fork"`` only from one that has computed
        nothing yet (``xrdnb sweep`` uses it on the CPU).
    batch_cells
        advance the cells of each structure and noise type together as one batched
        gradient descent (:func:`run_cells_batched`, groups of :func:`batch_groups`), in
        this process; the default is to do so on CUDA devices, where it is what makes a
        GPU fast, and not on the CPU (but :func:`run_stages` batches a selection stage's
        small cells there, :func:`stage_batching`). The groups are the tasks of
        ``workers`` (on the CPU) or run in this process (CUDA). Rows equal the per-cell
        rows to rounding (a copy's gradient sums run over the batch's union of
        reflections, so their last bits can differ; over thousands of steps such
        differences may grow). The groups are formed from all of ``cells``, finished or not,
        and a group with any unfinished cell runs whole, so an interrupted and resumed sweep
        computes the same batches, hence the same rows, as an uninterrupted one.
    batch_copies
        copies per batched group at most (default: :data:`CUDA_BATCH_COPIES` on CUDA,
        :data:`CPU_BATCH_COPIES` on the CPU).
    """
    from tqdm.auto import tqdm

    from .workers import resolve_workers, run_tasks

    device = resolve_device(device)
    cell_list = cells.all_cells() if isinstance(cells, SweepSpec) else list(cells)
    results = Path(results)
    pending = [c for c in cell_list if not is_finished(results, c)]
    check_sweep(pending, results)
    n_workers = resolve_workers(workers, len(pending))
    bar = tqdm(total=len(cell_list), initial=len(cell_list) - len(pending), desc="cells", disable=not progress)
    errors: dict[str, str] = {}

    def finished(task, output) -> None:
        rows, traj = output
        _write_cell(results, task[0], rows, traj)
        _release(results, task[0])
        bar.update(1)

    def failed(task, exc) -> None:
        errors[task[0].cell_id] = f"{type(exc).__name__}: {exc}"
        _release(results, task[0])

    # one writer per cell: cells another live sweep has claimed are left to it
    held: list[Cell] = []
    batching = stage_batching(
        None, cell_list, device, batch_cells=batch_cells, batch_copies=batch_copies, scheduler=scheduler
    )
    lazy = not (batching.batched or scheduler or n_workers)  # in this process: claim each cell as it starts
    if not lazy:
        held = [c for c in pending if _claim(results, c)]
        elsewhere = len(pending) - len(held)
        pending = held
        if elsewhere:
            print(
                f"xrdnb sweep: {elsewhere} cells are being computed by another sweep on {results}; left to it",
                file=sys.stderr,
            )

    try:
        if batching.batched:
            wanted = {c.cell_id for c in pending}

            def group_finished(task, outputs) -> None:
                for cell, output in zip(task[0], outputs, strict=True):
                    if cell.cell_id in wanted:  # not the group's finished cells, nor another sweep's
                        finished((cell,), output)

            def group_failed(task, exc) -> None:
                for cell in task[0]:
                    if cell.cell_id in wanted:
                        failed((cell,), exc)

            # the groups of all the cells, not of the unfinished ones: a batch's rows depend on its
            # members, so a resumed sweep must form the same batches as an uninterrupted one
            groups = [g for g in batching.units(cell_list) if any(c.cell_id in wanted for c in g)]
            run_tasks(
                _run_batch_in_worker,
                [(tuple(group), device) for group in groups],
                on_result=group_finished,
                on_error=group_failed,
                workers=resolve_workers(workers, len(groups)) if not device.startswith("cuda") else 0,
                scheduler=scheduler,
                preload=WORKER_PRELOAD,
                start_method=start_method,
            )
        elif scheduler or n_workers:
            tasks = [(cell, device) for cell in pending]
            run_tasks(
                _run_in_worker,
                tasks,
                on_result=finished,
                on_error=failed,
                workers=n_workers,
                scheduler=scheduler,
                preload=WORKER_PRELOAD,
                start_method=start_method,
            )
        else:  # in this process, with a progress bar over the steps of each cell

            def claimed_run(cell):
                if is_finished(results, cell) or not _claim(results, cell):
                    return None  # finished meanwhile, or being computed by another sweep
                return run_cell(cell, progress=progress, device=device)

            def finished_here(task, output) -> None:
                if output is not None:
                    finished(task, output)

            run_tasks(claimed_run, [(c,) for c in pending], on_result=finished_here, on_error=failed)
    finally:
        bar.close()
        for cell in held:
            if not is_finished(results, cell):
                _release(results, cell)
    if errors:
        listing = "\n".join(f"  {cid}: {msg}" for cid, msg in errors.items())
        raise RuntimeError(
            f"{len(errors)} of {len(pending)} cells failed (the others are saved; re-run to retry):\n{listing}"
        )
    return load_results(results, cell_list)


def run_stages(spec: SweepSpec, results: str | os.PathLike, **options) -> pd.DataFrame:
    """Run a sweep stage by stage (:meth:`SweepSpec.stages`) and return the rows of every stage.

    A two-stage spec runs its selection cells, chooses the learning rates on them
    (:meth:`SweepSpec.chosen_learning_rates`) and then runs the evaluated cells at those
    rates; each stage resumes like :func:`run_sweep`, whose ``options`` apply to both
    (with ``batch_cells`` unset, a stage is batched as :func:`stage_batching` says).
    """
    frames = []
    for name, cells in spec.stages(results):
        if cells is None:  # the evaluation waits for a selection that is finished now
            chosen = spec.chosen_learning_rates(results)
            if chosen is None:
                raise RuntimeError(f"the learning-rate selection of this sweep is unfinished in {results}")
            cells = spec.cells(chosen)
        batching = stage_batching(
            name,
            cells,
            resolve_device(options.get("device", "cpu")),
            batch_cells=options.get("batch_cells"),
            batch_copies=options.get("batch_copies"),
            scheduler=options.get("scheduler"),
        )
        stage_options = {**options, "batch_cells": batching.batched, "batch_copies": batching.max_copies}
        frames.append(run_sweep(cells, results, **stage_options))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_results(results: str | os.PathLike, cells: Iterable[Cell] | None = None) -> pd.DataFrame:
    """Rows of finished cells (all of them, or those of ``cells`` in their order; incomplete files are skipped)."""
    folder = Path(results) / "cells"
    if cells is None:
        paths = sorted(folder.glob("*.csv"))
    else:
        paths = [cell_path(results, c) for c in cells if is_finished(results, c)]
    if not paths:
        return pd.DataFrame()
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def load_trajectories(results: str | os.PathLike, cell: Cell) -> dict[str, np.ndarray]:
    """Loss and parameter trajectories of a finished cell: ``steps (T,)``, ``loss (T, B)``, ``params (T, B, ...)``."""
    with np.load(cell_path(results, cell).with_suffix(".npz")) as data:
        return {k: data[k] for k in data.files}


def with_overrides(spec: SweepSpec, **overrides) -> SweepSpec:
    """A copy of ``spec`` with some fields replaced (lists become tuples)."""
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    return replace(spec, **values)
