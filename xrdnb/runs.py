"""The gradient-descent runs a chapter analyses: one call that runs or reads a profile's sweep and selects.

Chapters 3–6 call :func:`run_study` with their parameters; it runs the missing cells of the
profile (:func:`xrdnb.sweep.run_sweep`, resumable) or only reads the finished ones, runs the
profile's learning-rate selection cells when it has several rates, and applies
:func:`xrdnb.selection.select`. So every chapter analyses the same rows at the same
profile, and every caption can say which run made a number (:meth:`StudyRun.caption`).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .selection import Selection, select
from .sweep import PROFILES, Cell, SweepSpec, is_finished, load_results, run_sweep

__all__ = ["StudyRun", "run_study", "quiet_dask"]


@contextmanager
def quiet_dask() -> Iterator[None]:
    """Keep Dask's start-up warnings and log lines out of a rendered page."""
    log = logging.getLogger("distributed")
    before = log.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            log.setLevel(before)


@dataclass(frozen=True)
class StudyRun:
    """A profile's sweep as a chapter sees it.

    Attributes
    ----------
    profile
        the profile name (or ``"custom"`` for a :class:`~xrdnb.sweep.SweepSpec`).
    spec
        the profile's grid.
    results
        the results folder.
    cells
        the cells the chapter asked for (after ``where``).
    all_rows
        every row of those cells, all learning rates.
    selection
        the analysed rows and how their learning rates were chosen (:func:`xrdnb.selection.select`).
    found, finished
        cells finished before and after this call.
    seconds
        wall time of this call (s).
    """

    profile: str
    spec: SweepSpec
    results: Path
    cells: tuple[Cell, ...]
    all_rows: pd.DataFrame
    selection: Selection
    found: int
    finished: int
    seconds: float

    @property
    def rows(self) -> pd.DataFrame:
        """The analysed rows (one learning rate per run), with a ``run`` label column."""
        return self.selection.rows

    def caption(self, noise_type: str | None = None) -> str:
        """Which run made a table or figure: profile, copies, step budget and learning rate(s)."""
        return (
            f"profile '{self.profile}': {self.spec.n_copies} copies per cell, ≤ {self.spec.max_steps} Adam steps, "
            f"{self.selection.describe(noise_type)}"
        )

    def record(self) -> pd.Series:
        """The run record a chapter prints: profile, folder, cells, rows, grid, stopping rule, learning rates."""
        spec, rows = self.spec, self.rows
        stops = rows["stop_reason"].value_counts() if "stop_reason" in rows else pd.Series(dtype=int)
        return pd.Series(
            {
                "profile": self.profile,
                "results": str(self.results),
                "cells": f"{self.finished} of {len(self.cells)} finished ({self.found} found, "
                f"{self.finished - self.found} run now in {self.seconds:.0f} s)",
                "rows (copies)": f"{len(self.all_rows)} ({len(rows)} at the analysed learning rates)",
                "structures": ", ".join(s for s in spec.structures if s in set(rows.get("structure", []))),
                "copies per cell": spec.n_copies,
                "seeds": ", ".join(str(s) for s in spec.seeds),
                "optimiser": f"Adam, {spec.dtype}, at most {spec.max_steps} steps; stop when the loss changes by "
                f"less than {spec.tol:g} over {spec.patience} steps",
                "stopped by": ", ".join(f"{name} {count}" for name, count in stops.items()) or "n/a",
                "learning rates": self.selection.describe(),
            },
            name="value",
        )


def run_study(
    profile: str | SweepSpec,
    results: str | Path,
    *,
    where: Callable[[Cell], bool] | None = None,
    workers: int | str = 2,
    device: str = "cpu",
    run_missing: bool = True,
    lattice_lr: float | None = None,
    coordinate_lr: float | None = None,
) -> StudyRun:
    """Run (or read) the cells of ``profile`` that ``where`` keeps, and select the analysed rows.

    Parameters
    ----------
    profile
        a name of :data:`xrdnb.sweep.PROFILES` or a :class:`~xrdnb.sweep.SweepSpec`.
    results
        results folder (shared by all chapters of a build).
    where
        keep only the cells for which this returns True (default: all). The learning rates are
        chosen on the profile's whole selection grid, whatever ``where`` keeps.
    workers, device
        as for :func:`xrdnb.sweep.run_sweep`.
    run_missing
        run the cells that are not finished (False: read what is there).
    lattice_lr, coordinate_lr
        stated learning rates (rule 1 of :func:`xrdnb.selection.select`).

    Raises
    ------
    RuntimeError
        when no cell is finished, or the selection cells are not all finished (with ``run_missing`` False).
    """
    spec = PROFILES[profile] if isinstance(profile, str) else profile
    name = profile if isinstance(profile, str) else "custom"
    keep = where or (lambda cell: True)
    selection_spec = spec.selection_spec()
    # the learning rates are chosen on the whole selection grid, never on the chapter's part of it, so that
    # every chapter analyses the same runs
    selection_cells = selection_spec.cells() if selection_spec else []
    results = Path(results)
    t0 = time.perf_counter()

    def rows_of(part: list[Cell]) -> pd.DataFrame:
        if not part:
            return pd.DataFrame()
        if run_missing:
            with quiet_dask():
                return run_sweep(part, results, workers=workers, progress=False, device=device)
        return load_results(results, part)

    selection_rows = rows_of(selection_cells) if selection_cells else None
    if selection_cells and not all(is_finished(results, c) for c in selection_cells):
        done = sum(is_finished(results, c) for c in selection_cells)
        raise RuntimeError(
            f"only {done} of the {len(selection_cells)} learning-rate selection cells of profile {name!r} are "
            f"finished in {results}: the learning rates are chosen on all of them (run with run_missing=True)"
        )
    # a two-stage profile evaluates only the chosen rates (SweepSpec.stages); the rule below picks the same ones
    chosen = spec.chosen_learning_rates(results) if spec.staged else None
    cells = [c for c in spec.cells(chosen) if keep(c)]
    found = sum(is_finished(results, c) for c in cells)
    all_rows = rows_of(cells)
    if all_rows.empty and cells:
        raise RuntimeError(f"no finished cells of profile {name!r} in {results}; run with run_missing=True")
    selection = select(all_rows, selection_rows=selection_rows, lattice_lr=lattice_lr, coordinate_lr=coordinate_lr)
    finished = sum(is_finished(results, c) for c in cells)
    return StudyRun(name, spec, results, tuple(cells), all_rows, selection, found, finished, time.perf_counter() - t0)
