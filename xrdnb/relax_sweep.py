"""Resumable CHGNet relaxations of the sweep's distorted copies (SI §1.4, the energy baseline).

The control experiment of the study: relax the *same* distorted structures that gradient
descent on XRD similarity starts from, with the interatomic potential CHGNet
(:mod:`xrdnb.relax`) instead of a pattern loss. A :class:`RelaxSpec` (structures × noise
type × level × free/constrained × seed) expands to :class:`RelaxCell` s; one cell draws the
``n_copies`` copies of the gradient-descent cell of the same structure, noise type, level,
seed and copies (:func:`xrdnb.sweep.prepare_cell`, the one :func:`~xrdnb.distortions.distort`
call), relaxes each and compares it with the DFT ground truth and with that ground truth
relaxed by CHGNet. The relaxed ground truths are cells of their own (:class:`TruthCell`, one
per structure and relaxation setting), computed once and read back.

Files (:mod:`xrdnb.store`: atomic, a truncated file does not count, claims for processes
sharing a folder): ``<results>/relax/truth/<id>.csv`` (one row) with ``<id>.json`` (the
relaxed structure), and ``<results>/relax/<id>.csv`` (one row per copy) with ``<id>.json``
(the relaxed structures). Cells run in this process, on local workers or on a Dask cluster
(:func:`xrdnb.workers.run_tasks`), each on one thread, so rows do not depend on where.

Row contract (one row per relaxed copy): the cell's fields (``fmax`` of the cell is written
``fmax_threshold``), ``cell_id``, ``copy``, ``steps``, ``converged``, ``fmax`` (the largest
force at the end, eV/Å), ``energy`` (eV/atom), ``energy_above_relaxed_truth`` (eV/atom);
``match``, ``max_length_error_rel``, ``max_angle_error`` (and the other columns of
:func:`xrdnb.evaluate.evaluate_copies`) against the DFT ground truth; ``relaxed_match``,
``relaxed_max_length_error_rel``, ``relaxed_max_angle_error`` against the CHGNet-relaxed
ground truth (:func:`xrdnb.relax.lattice_errors`, robust to a change of setting); the same
comparisons of the distorted start prefixed ``start_``.

>>> [len(PROFILES[p].cells()) for p in ("smoke", "book", "paper")]
[6, 40, 150]
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import store
from .relax import FMAX
from .vocabulary import BENCHMARK_NAMES, NOISE_LEVELS, NOISE_TYPES

__all__ = [
    "SYMPREC",
    "TruthCell",
    "RelaxCell",
    "RelaxSpec",
    "PROFILES",
    "RelaxSweepError",
    "starting_copies",
    "run_truth_cell",
    "run_relax_cell",
    "run_relax_sweep",
    "load_relax_results",
    "load_truths",
    "relaxed_truths",
    "is_finished",
    "cell_path",
]

SYMPREC = 0.01
"""Tolerance (Å) of the space group kept under the symmetry constraint (spglib, ASE ``FixSymmetry``)."""


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(asdict(obj), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TruthCell:
    """The ground truth of ``structure`` relaxed by CHGNet (cell and positions), the reference of "recovered".

    Attributes
    ----------
    structure
        benchmark name (or a CIF path).
    fmax
        force threshold, eV/Å.
    max_steps
        BFGS step limit.
    """

    structure: str
    fmax: float = FMAX
    max_steps: int = 500

    @property
    def cell_id(self) -> str:
        """Stable identifier, the structure's stem plus a hash of every field."""
        return f"{Path(self.structure).stem}_truth_{_digest(self)}"

    n_copies = 1  # one row


@dataclass(frozen=True)
class RelaxCell:
    """One relaxation cell: the ``n_copies`` distorted copies of a sweep cell, relaxed by CHGNet.

    Attributes
    ----------
    structure
        benchmark name (or a CIF path).
    noise_type
        ``"lattice"`` (FrechetCellFilter + BFGS) or ``"coordinates"`` (BFGS, cell fixed).
    noise_level
        σ (lattice: relative; coordinates: Å).
    constrained
        project each copy's lattice onto the ground truth's crystal family and keep the space
        group during the relaxation (``symprec``; lattice noise only; beyond the paper).
    seed
        seed of the distortions (the sweep's).
    n_copies
        copies (the sweep's batch size).
    fmax, max_steps
        force threshold (eV/Å) and BFGS step limit (:func:`xrdnb.relax.relax`).
    symprec
        tolerance (Å) of the kept space group, when ``constrained``.
    """

    structure: str
    noise_type: str
    noise_level: float
    constrained: bool
    seed: int
    n_copies: int = 16
    fmax: float = FMAX
    max_steps: int = 500
    symprec: float = SYMPREC

    def __post_init__(self):
        """Refuse an unknown noise type or a constrained coordinate cell (ValueError)."""
        if self.noise_type not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {self.noise_type!r}; valid: {', '.join(NOISE_TYPES)}")
        if self.constrained and self.noise_type != "lattice":
            raise ValueError("the symmetry constraint acts on the lattice: constrained cells need lattice noise")

    @property
    def cell_id(self) -> str:
        """Stable identifier, a readable prefix plus a hash of every field."""
        tag = "c" if self.constrained else "u"
        return f"{Path(self.structure).stem}_{self.noise_type[:3]}{self.noise_level:g}_chgnet_{tag}_{_digest(self)}"

    def truth_cell(self) -> TruthCell:
        """The relaxed ground truth this cell is compared with."""
        return TruthCell(self.structure, self.fmax, self.max_steps)

    def sweep_cell(self):
        """A gradient-descent :class:`~xrdnb.sweep.Cell` with the same starting copies (loss and lr do not matter)."""
        from .sweep import Cell

        return Cell(self.structure, self.noise_type, self.noise_level, "cosine", False, 1.0, self.seed, self.n_copies)


@dataclass(frozen=True)
class RelaxSpec:
    """A grid of relaxation cells (:meth:`cells`): free at every level, constrained at ``constrained_levels``."""

    structures: tuple[str, ...]
    lattice_levels: tuple[float, ...]
    coordinate_levels: tuple[float, ...]
    constrained_levels: tuple[float, ...] = ()
    seeds: tuple[int, ...] = (0,)
    n_copies: int = 16
    fmax: float = FMAX
    max_steps: int = 500
    symprec: float = SYMPREC

    def __post_init__(self):
        """Check every setting before any cell exists (one line per problem, ValueError)."""
        import math

        for name in ("structures", "lattice_levels", "coordinate_levels", "constrained_levels", "seeds"):
            if not isinstance(getattr(self, name), tuple):
                raise ValueError(f"relax setting {name} must be a list, got {getattr(self, name)!r}")
        if not self.structures or not all(isinstance(s, str) and s for s in self.structures):
            raise ValueError(f"relax setting structures must be names or CIF paths, got {self.structures!r}")
        for name in ("lattice_levels", "coordinate_levels", "constrained_levels"):
            for x in getattr(self, name):
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not (math.isfinite(x) and x >= 0):
                    raise ValueError(f"relax setting {name}: {x!r} is not a noise level >= 0")
        for x in self.seeds:
            if isinstance(x, bool) or not isinstance(x, int) or x < 0:
                raise ValueError(f"relax setting seeds: {x!r} is not a seed (whole number >= 0)")
        for name, low in (("n_copies", 1), ("max_steps", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"relax setting {name} must be a whole number >= {low}, got {value!r}")
        for name in ("fmax", "symprec"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(f"relax setting {name} must be a number > 0, got {value!r}")

    def cells(self) -> list[RelaxCell]:
        """Expand the grid, in a fixed order (structure, noise type, level, free then constrained, seed)."""
        common: dict[str, Any] = dict(
            n_copies=self.n_copies, fmax=self.fmax, max_steps=self.max_steps, symprec=self.symprec
        )
        out = []
        for structure in self.structures:
            runs = [("lattice", x, False) for x in self.lattice_levels]
            runs += [("lattice", x, True) for x in self.constrained_levels]
            runs.sort(key=lambda r: (r[1], r[2]))
            runs += [("coordinates", x, False) for x in self.coordinate_levels]
            for noise_type, level, constrained in runs:
                for seed in self.seeds:
                    out.append(RelaxCell(structure, noise_type, float(level), constrained, int(seed), **common))
        return out

    def truth_cells(self) -> list[TruthCell]:
        """One relaxed ground truth per structure."""
        return [TruthCell(s, self.fmax, self.max_steps) for s in self.structures]

    @classmethod
    def from_dict(cls, data: dict) -> RelaxSpec:
        """Build from a mapping (e.g. a YAML config); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown relax settings {sorted(unknown)}; valid: {sorted(names)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def with_overrides(self, **overrides) -> RelaxSpec:
        """A copy with some fields replaced (None values ignored, lists become tuples)."""
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None
        }
        return replace(self, **values)


PROFILES: dict[str, RelaxSpec] = {
    "smoke": RelaxSpec(
        structures=("U2Ti", "BPO4"),
        lattice_levels=(0.01,),
        coordinate_levels=(0.01,),
        constrained_levels=(0.01,),
        n_copies=2,
        max_steps=100,
    ),
    "book": RelaxSpec(
        structures=BENCHMARK_NAMES,
        lattice_levels=(0.1, 0.2),
        coordinate_levels=(0.1,),
        constrained_levels=(0.1,),
        n_copies=4,
    ),
    "paper": RelaxSpec(
        structures=BENCHMARK_NAMES,
        lattice_levels=NOISE_LEVELS["lattice"],
        coordinate_levels=NOISE_LEVELS["coordinates"],
        constrained_levels=NOISE_LEVELS["lattice"],
        n_copies=16,
        max_steps=1000,
    ),
}
"""Named relaxation grids, with the copies of the sweep profiles of the same name
(:data:`xrdnb.sweep.PROFILES`: ``smoke`` 2, ``book`` 4, ``paper`` 16 copies, seed 0).
``paper``: all ten structures and levels, free and constrained, fmax 0.02 eV/Å, BFGS on a
FrechetCellFilter for lattice noise and BFGS on the positions for coordinate noise (SI §1.4);
at most 1000 steps (the SI states no limit). ``book``: the largest levels (lattice 0.1, 0.2,
constrained 0.1, coordinates 0.1 Å; 40 cells, 160 relaxations), so that chapter 5 builds
within the CI time; ``smoke``: 6 tiny cells for tests."""


# ----------------------------------------------------------------------------- files


def cell_path(results: str | os.PathLike, cell: RelaxCell | TruthCell) -> Path:
    """Where a finished cell's rows live (``<results>/relax[/truth]/<cell id>.csv``)."""
    folder = Path(results) / "relax"
    return (folder / "truth" if isinstance(cell, TruthCell) else folder) / f"{cell.cell_id}.csv"


def is_finished(results: str | os.PathLike, cell: RelaxCell | TruthCell) -> bool:
    """Whether ``cell`` has a complete result: its CSV (header and one row per copy) and its JSON."""
    return store.is_complete(cell_path(results, cell), cell.n_copies, (".json",))


def _write(results: Path, cell, output) -> None:
    rows, structures = output
    text = json.dumps(structures).encode()
    store.write_cell(cell_path(results, cell), rows, {".json": lambda handle: handle.write(text)})


def _reference(results: Path, cell: TruthCell):
    """``(structure, energy)`` of a finished truth cell, read back from its files."""
    from pymatgen.core import Structure

    path = cell_path(results, cell)
    row = pd.read_csv(path).iloc[0]
    return Structure.from_dict(json.loads(path.with_suffix(".json").read_text())), float(row["energy"])


def load_relax_results(results: str | os.PathLike, cells: Iterable[RelaxCell] | None = None) -> pd.DataFrame:
    """Rows of finished relaxation cells (all of them, or those of ``cells`` in their order)."""
    if cells is None:
        paths = sorted((Path(results) / "relax").glob("*.csv"))
    else:
        paths = [cell_path(results, c) for c in cells if is_finished(results, c)]
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()


def load_truths(results: str | os.PathLike, cells: Iterable[TruthCell] | RelaxSpec) -> pd.DataFrame:
    """Rows of the finished relaxed ground truths (one per structure), e.g. ``load_truths(results, spec)``."""
    cells = cells.truth_cells() if isinstance(cells, RelaxSpec) else list(cells)
    paths = [cell_path(results, c) for c in cells if is_finished(results, c)]
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()


# ----------------------------------------------------------------------------- one cell


def starting_copies(cell: RelaxCell):
    """``(family, truth, start)``: the sweep's copies of the cell (projected onto the family if constrained).

    ``truth`` is the DFT ground truth as a one-copy :class:`~xrdnb.crystal.Crystal`, ``start``
    the ``n_copies`` copies of :func:`xrdnb.sweep.prepare_cell` — the very copies gradient
    descent starts from — with their lattice projected by
    :func:`xrdnb.symmetry.project_lattice` when ``cell.constrained`` (as the constrained GD does).
    """
    from .sweep import prepare_cell
    from .symmetry import project_lattice

    family, truth, start, _ = prepare_cell(cell.sweep_cell())
    if cell.constrained:
        start = start.with_lattice(project_lattice(start.lattice, family))
    return family, truth, start


def _bare(structure):
    """The lattice, species and fractional coordinates of a relaxed structure, without ASE's site properties."""
    from pymatgen.core import Structure

    return Structure(structure.lattice, structure.species_and_occu, structure.frac_coords)


def _stack(structures):
    """One :class:`~xrdnb.crystal.Crystal` batch from relaxed copies of one structure (same sites)."""
    import torch

    from .crystal import Crystal, crystal_from_structure

    parts = [crystal_from_structure(s) for s in structures]
    return Crystal(
        torch.cat([p.lattice for p in parts]),
        torch.cat([p.frac_coords for p in parts]),
        parts[0].occupancy,
        parts[0].elements,
    )


def _compare(structures, reference, prefix: str) -> dict[str, np.ndarray]:
    """``<prefix>match``, ``<prefix>max_length_error_rel``, ``<prefix>max_angle_error`` against ``reference``."""
    from .evaluate import structures_match
    from .relax import lattice_errors

    errors = np.array([lattice_errors(s, reference) for s in structures], dtype=float).reshape(-1, 2)
    return {
        f"{prefix}match": structures_match(structures, reference),
        f"{prefix}max_length_error_rel": errors[:, 0],
        f"{prefix}max_angle_error": errors[:, 1],
    }


def run_truth_cell(cell: TruthCell, device: str = "cpu") -> tuple[pd.DataFrame, dict]:
    """Relax a ground truth (cell and positions): ``(one row, relaxed structure as a dict)``.

    Row: ``structure``, ``family``, ``space_group`` (spglib at :data:`SYMPREC`), ``sites``,
    ``steps``, ``converged``, ``fmax`` (final, eV/Å), ``initial_energy`` and ``energy``
    (eV/atom), ``match`` (the relaxed cell still matches the DFT one), ``max_length_change_rel``
    and ``max_angle_change`` (°), and ``dft_<p>`` / ``relaxed_<p>`` for the six lattice parameters.
    """
    from .evaluate import structures_match
    from .relax import lattice_errors, relax
    from .structures import crystal_family, load_structure
    from .sweep import _one_thread
    from .vocabulary import LATTICE_NAMES

    started = time.perf_counter()
    dft = load_structure(cell.structure)
    with _one_thread():
        result = relax(dft, relax_cell=True, fmax=cell.fmax, max_steps=cell.max_steps, device=device)
    length, angle = lattice_errors(result.structure, dft)
    row = {
        "cell_id": cell.cell_id,
        "structure": cell.structure,
        "fmax_threshold": cell.fmax,
        "max_steps": cell.max_steps,
        "family": crystal_family(dft),
        "space_group": dft.get_space_group_info(symprec=SYMPREC)[0],
        "sites": len(dft),
        "steps": result.steps,
        "converged": result.converged,
        "fmax": result.fmax,
        "initial_energy": float(result.energies[0]),
        "energy": float(result.energies[-1]),
        "match": bool(structures_match([result.structure], dft)[0]),
        "max_length_change_rel": length,
        "max_angle_change": angle,
    }
    for name, before, after in zip(
        LATTICE_NAMES, dft.lattice.parameters, result.structure.lattice.parameters, strict=True
    ):
        row[f"dft_{name}"], row[f"relaxed_{name}"] = float(before), float(after)
    row["seconds"] = time.perf_counter() - started
    return pd.DataFrame([row]), _bare(result.structure).as_dict()


def run_relax_cell(cell: RelaxCell, reference, reference_energy: float, device: str = "cpu"):
    """Relax the copies of one cell; ``(rows, relaxed structures as dicts)``.

    Parameters
    ----------
    cell
        the cell.
    reference
        the CHGNet-relaxed ground truth (pymatgen ``Structure``, e.g. of :func:`run_truth_cell`).
    reference_energy
        its energy, eV/atom.
    device
        where CHGNet runs (:func:`xrdnb.device.resolve_device`).

    Returns
    -------
    (pandas.DataFrame, list of dict)
        one row per copy (the module's row contract) and the relaxed structures.
    """
    from .evaluate import evaluate_copies
    from .relax import load_model, relax, relax_cell_for
    from .sweep import _one_thread
    from .vocabulary import LATTICE_NAMES

    started = time.perf_counter()
    family, truth, start = starting_copies(cell)
    starts = start.to_structures()
    settings: dict[str, Any] = dict(
        relax_cell=relax_cell_for(cell.noise_type), fmax=cell.fmax, max_steps=cell.max_steps
    )
    with _one_thread():
        model = load_model(device)
        results = [
            relax(s, **settings, device=device, model=model, symprec=cell.symprec if cell.constrained else None)
            for s in starts
        ]
    finals = [_bare(r.structure) for r in results]
    end = evaluate_copies(_stack(finals), truth)
    begin = evaluate_copies(start, truth)
    rows = pd.DataFrame({k: [v] * cell.n_copies for k, v in asdict(cell).items()}).rename(
        columns={"fmax": "fmax_threshold"}
    )
    rows.insert(0, "cell_id", cell.cell_id)
    rows["family"] = family
    rows["device"] = device.split(":")[0]
    rows["copy"] = np.arange(cell.n_copies)
    rows["optimizer"] = "FrechetCellFilter + BFGS" if settings["relax_cell"] else "BFGS"
    rows["space_group"] = [r.space_group or "" for r in results]
    rows["steps"] = [r.steps for r in results]
    rows["converged"] = [r.converged for r in results]
    rows["fmax"] = [r.fmax for r in results]
    rows["initial_energy"] = [float(r.energies[0]) for r in results]
    rows["energy"] = [float(r.energies[-1]) for r in results]
    rows["energy_above_relaxed_truth"] = rows["energy"] - reference_energy
    for col in end.columns.drop("copy"):
        rows[col] = end[col].to_numpy()
        if col.startswith(("similarity_", "amd_distance", "match", "max_")):
            rows[f"start_{col}"] = begin[col].to_numpy()
    for key, value in _compare(finals, reference, "relaxed_").items():
        rows[key] = value
    for key, value in _compare(starts, reference, "start_relaxed_").items():
        rows[key] = value
    for i, name in enumerate(LATTICE_NAMES):
        rows[f"start_{name}"] = start.lattice[:, i].double().numpy()
        rows[f"final_{name}"] = [s.lattice.parameters[i] for s in finals]
    rows["seconds"] = time.perf_counter() - started
    return rows, [s.as_dict() for s in finals]


# ----------------------------------------------------------------------------- the sweep


class RelaxSweepError(RuntimeError):
    """Some cells could not run; the others are saved.

    Attributes
    ----------
    bad_input
        ``{structure: reason}`` for structures that do not load (their cells were skipped).
    failed
        ``{cell id: reason}`` for cells that raised.
    """

    def __init__(self, bad_input: dict[str, str], failed: dict[str, str]):
        self.bad_input, self.failed = dict(bad_input), dict(failed)
        lines = [f"{k}: {v}" for k, v in {**self.bad_input, **self.failed}.items()]
        super().__init__(f"{len(lines)} problem(s); the other cells are saved (re-run to retry):\n" + "\n".join(lines))


def _truth_in_worker(cell: TruthCell, device: str = "cpu"):
    return run_truth_cell(cell, device)


def _copies_in_worker(cell: RelaxCell, reference: dict, energy: float, device: str = "cpu"):
    from pymatgen.core import Structure

    return run_relax_cell(cell, Structure.from_dict(reference), energy, device)


WORKER_PRELOAD = ("torch", "pymatgen.core", "pymatgen.analysis.structure_matcher", "ase", "chgnet.model", "amd")
"""Modules the local workers' forkserver imports once (:func:`xrdnb.workers.run_tasks`)."""


def _run_claimed(function, tasks, results, *, workers, scheduler, start_method, bar, errors) -> None:
    """Run ``function(*task)`` (``task[0]`` a cell) for cells nobody else holds (:func:`xrdnb.workers.run_claimed`)."""
    from .workers import run_claimed

    errors |= run_claimed(
        function,
        tasks,
        path=lambda cell: cell_path(results, cell),
        is_done=lambda cell: is_finished(results, cell),
        write=lambda cell, output: _write(results, cell, output),
        on_done=lambda: bar.update(1),
        who="xrdnb relax",
        workers=workers,
        scheduler=scheduler,
        preload=WORKER_PRELOAD,
        # CHGNet workers start as fresh interpreters by default: a forkserver that this process
        # started earlier (a GD sweep's) or a plain fork of a process that has run torch can
        # leave them hung or dead in the second phase (seen in the full test run)
        start_method=start_method or "spawn",
    )


def run_relax_sweep(
    cells: RelaxSpec | Sequence[RelaxCell | TruthCell],
    results: str | os.PathLike,
    *,
    workers: int | str = 0,
    scheduler: str | None = None,
    progress: bool = True,
    device: str = "cpu",
    start_method: str | None = None,
) -> pd.DataFrame:
    """Run every unfinished cell (ground truths first) and return all rows of ``cells``.

    Parameters
    ----------
    cells
        a :class:`RelaxSpec` or a list of :class:`RelaxCell` (and :class:`TruthCell`, to relax
        ground truths on their own).
    results
        results folder; finished cells are read back from ``<results>/relax``.
    workers
        0: in this process; N > 0: N single-threaded local processes; ``"auto"``: one per
        core, at most one per unfinished cell (:func:`xrdnb.workers.resolve_workers`). Local
        workers run on the CPU; with another ``device`` cells run in this process.
    scheduler
        address of a running Dask scheduler; overrides ``workers``.
    progress
        a progress bar over cells.
    device
        where CHGNet runs (``"cpu"``, ``"cuda"``, ``"auto"``).
    start_method
        how local workers start (:func:`xrdnb.workers.run_tasks`); default ``"spawn"``.

    Raises
    ------
    OSError
        the results folder is not writable (before any cell runs).
    RelaxSweepError
        after every other cell ran: structures that do not load (their cells are skipped) or
        cells that failed.
    """
    from tqdm.auto import tqdm

    from .device import resolve_device
    from .structures import load_structure
    from .workers import resolve_workers

    device = resolve_device(device)
    results = Path(results)
    cell_list = cells.cells() if isinstance(cells, RelaxSpec) else list(cells)
    bad: dict[str, str] = {}
    for name in dict.fromkeys(c.structure for c in cell_list):
        try:
            load_structure(name)
        except ValueError as exc:  # StructureError names the file and the problem
            bad[name] = str(exc).splitlines()[0]
    good = [c for c in cell_list if c.structure not in bad]
    truths = list(dict.fromkeys(c if isinstance(c, TruthCell) else c.truth_cell() for c in good))
    copies: list[RelaxCell] = [c for c in good if isinstance(c, RelaxCell)]
    store.check_writable(results / "relax" / "truth")
    pending_truths = [t for t in truths if not is_finished(results, t)]
    pending = [c for c in copies if not is_finished(results, c)]
    total = len(truths) + len(copies)
    bar = tqdm(total=total, initial=total - len(pending_truths) - len(pending), desc="cells", disable=not progress)
    errors: dict[str, str] = {}
    n_workers = resolve_workers(workers, len(pending)) if device == "cpu" else 0
    common = dict(scheduler=scheduler, start_method=start_method, bar=bar, errors=errors)
    try:
        _run_claimed(
            _truth_in_worker,
            [(t, device) for t in pending_truths],
            results,
            workers=min(n_workers, len(pending_truths)),
            **common,
        )
        references = {t: _reference(results, t) for t in truths if is_finished(results, t)}
        tasks = [
            (c, references[c.truth_cell()][0].as_dict(), references[c.truth_cell()][1], device)
            for c in pending
            if c.truth_cell() in references
        ]
        _run_claimed(_copies_in_worker, tasks, results, workers=n_workers, **common)
    finally:
        bar.close()
    if bad or errors:
        raise RelaxSweepError(bad, errors)
    return load_relax_results(results, [c for c in cell_list if isinstance(c, RelaxCell)])


def relaxed_truths(
    structures: Iterable[str], results: str | os.PathLike, spec: RelaxSpec | None = None, **run
) -> pd.DataFrame:
    """The ground truths of ``structures`` relaxed with the settings of ``spec``, run when missing (load_truths rows).

    ``run`` goes to :func:`run_relax_sweep` (``workers``, ``device``, ``progress``).
    """
    spec = spec or PROFILES["book"]
    cells = [TruthCell(name, spec.fmax, spec.max_steps) for name in dict.fromkeys(structures)]
    run_relax_sweep(cells, results, **{"progress": False, **run})
    return load_truths(results, cells)
