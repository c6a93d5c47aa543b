"""Shipped result sets: a sweep folder packed as tidy compressed files with a manifest.

A long run (the ``paper`` profile's reference run, hours on two cores) is computed once and
shipped with the book, so that the chapters can show it beside their live ``book`` run.
:func:`pack_sweep` turns the finished cells of a results folder into::

    <folder>/manifest.json       what made it: command, profile values, version, commits,
                                 hardware, compute per stage, coverage, the learning-rate
                                 selection, the date, every file's size and SHA-256
    <folder>/sweep_rows.csv.gz   one tidy row per copy of every finished cell, with a
                                 ``stage`` column (``selection`` / ``evaluation`` / ``all``)
    <folder>/sweep_loss.npz      each finished cell's loss trajectory, float32:
                                 ``<cell id>.steps`` (R,), ``<cell id>.loss`` (R, copies)

and :func:`load_result_set` reads them back (a second or two) after checking the files
against the manifest. The raw cells (``<folder>/cells``) stay where the sweep wrote them, so
that the run can be resumed; the packed files are what git holds. A partly finished run can
be packed at any time: the manifest says how far it got and the command that continues it.

>>> from xrdnb.sweep import PROFILES
>>> coverage(PROFILES["smoke"], "/nonexistent")["all"]["cells_total"]
10
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .manifests import MANIFEST, hardware, read_manifest, sha256, write_csv_gz
from .sweep import SweepSpec, is_finished, load_results, load_trajectories

__all__ = [
    "ResultSet",
    "pack_sweep",
    "load_result_set",
    "coverage",
    "MANIFEST",
    "ROWS",
    "LOSS",
    "RELAX",
    "SEARCH",
    "SEARCH_COMMAND",
    "STOP_LABELS",
    "SI_RULE_SHARE",
]

ROWS = "sweep_rows.csv.gz"
LOSS = "sweep_loss.npz"
RELAX = "relax_rows.csv.gz"
"""The file of a result set that holds the CHGNet relaxations of its copies (one row per copy)."""
SEARCH = "search_rows.csv.gz"
"""The file of a result set that holds the searches of chapter 8 on its copies (one row per copy and cell)."""
SEARCH_COMMAND = "python tools/build_book.py --profile paper --only 08_beyond_gradient_descent"
"""How the searches of a result set are computed, by chapter 8 at the ``paper`` profile (:mod:`xrdnb.search_sweep`)."""

STOP_LABELS = {
    "converged": "SI rule (%)",
    "max_steps": "step budget (%)",
    "invalid_lattice": "invalid cell (%)",
}
"""Why copies stopped (:data:`xrdnb.optimize.STOP_REASONS`) as the result-set tables label them."""


SI_RULE_SHARE = 0.95
"""The share of a stage's copies that must stop by the SI rule rather than the step budget (issue acceptance)."""


def coverage(spec: SweepSpec, results: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per stage and in all: finished and total cells and copies.

    An evaluation stage that waits for its learning rates counts the cells it will have (one
    per structure, level and run: :meth:`~xrdnb.sweep.SweepSpec.planned_stages`).
    """
    results = Path(results)
    out: dict[str, dict[str, Any]] = {}
    done_all = total_all = 0
    planned = dict(spec.planned_stages())
    for name, cells in spec.stages(results):
        if cells is None:
            out[name] = {
                "cells_done": 0,
                "cells_total": len(planned[name]),
                "copies_done": 0,
                "copies_total": int(sum(c.n_copies for c in planned[name])),
                "note": "after the selection: one rate per run",
            }
            total_all += len(planned[name])
            continue
        done = sum(is_finished(results, c) for c in cells)
        out[name] = {
            "cells_done": done,
            "cells_total": len(cells),
            "copies_done": int(sum(c.n_copies for c in cells if is_finished(results, c))),
            "copies_total": int(sum(c.n_copies for c in cells)),
        }
        done_all += done
        total_all += len(cells)
    out["all"] = {"cells_done": done_all, "cells_total": total_all}
    return out


def _compute(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Compute per stage and noise type: cells, copies, copy-steps and the cells' summed seconds."""
    out: list[dict[str, Any]] = []
    if rows.empty:
        return out
    per_cell = rows.groupby(["stage", "noise_type", "cell_id"], sort=False).agg(
        seconds=("seconds", "first"), copies=("copy", "size"), copy_steps=("steps", "sum")
    )
    for (stage, noise_type), part in per_cell.groupby(level=[0, 1], sort=False):
        out.append(
            {
                "stage": stage,
                "noise_type": noise_type,
                "cells": len(part),
                "copies": int(part["copies"].sum()),
                "copy_steps": int(part["copy_steps"].sum()),
                "cell_seconds": round(float(part["seconds"].sum()), 1),
            }
        )
    return out


def pack_sweep(
    spec: SweepSpec,
    results: str | os.PathLike,
    *,
    command: str,
    profile: str | None = None,
    runs: list[dict[str, Any]] | None = None,
    relax_spec=None,
) -> dict[str, Any]:
    """Pack the finished cells of ``results`` (a folder of ``spec``) into it; returns the manifest.

    Parameters
    ----------
    spec, results
        the sweep and its results folder (``<results>/cells``).
    command
        the command that computes (and continues) the run, e.g.
        ``xrdnb sweep --profile paper --results results/reference``.
    profile
        the profile's name, when ``spec`` is one.
    runs
        the parts the run was computed in, each a mapping with at least ``started`` and
        ``commit`` (and ``stopped``, ``wall_seconds``, ``note``): read from ``runs.json``
        beside the cells when omitted.
    relax_spec
        the CHGNet relaxations of the same copies (a :class:`xrdnb.relax_sweep.RelaxSpec`,
        computed into ``<results>/relax``); their finished cells are packed into
        :data:`RELAX` (``relax_rows.csv.gz``) and counted in the coverage as stage ``"relax"``.
    """
    from . import __version__
    from .run_record import _git_commit

    results = Path(results)
    frames: list[pd.DataFrame] = []
    trajectories: dict[str, np.ndarray] = {}
    for stage, cells in spec.stages(results):
        finished = [c for c in (cells or []) if is_finished(results, c)]
        if not finished:
            continue
        frames.append(load_results(results, finished).assign(stage=stage))
        for cell in finished:
            traj = load_trajectories(results, cell)
            trajectories[f"{cell.cell_id}.steps"] = np.asarray(traj["steps"], dtype=np.int32)
            trajectories[f"{cell.cell_id}.loss"] = np.asarray(traj["loss"], dtype=np.float32)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    rows_path, loss_path = results / ROWS, results / LOSS
    write_csv_gz(rows, rows_path)
    np.savez_compressed(loss_path, **trajectories)  # type: ignore[arg-type]
    packed = [rows_path, loss_path]
    relax_cover = None
    if relax_spec is not None:
        from . import relax_sweep

        cells = relax_spec.cells()
        relax_rows = relax_sweep.load_relax_results(results, cells)
        done = sum(relax_sweep.is_finished(results, c) for c in cells)
        relax_cover = {
            "cells_done": done,
            "cells_total": len(cells),
            "copies_done": len(relax_rows),
            "copies_total": int(sum(c.n_copies for c in cells)),
        }
        if len(relax_rows):
            write_csv_gz(relax_rows, results / RELAX)
            packed.append(results / RELAX)
    from .search_sweep import finished_rows

    search_rows = finished_rows(results)
    if len(search_rows):
        write_csv_gz(search_rows, results / SEARCH)
        packed.append(results / SEARCH)
    if runs is None:
        log = results / "runs.json"
        runs = json.loads(log.read_text()) if log.exists() else []
    selection = None
    chosen = spec.chosen_learning_rates(results) if spec.selection_spec() is not None else None
    if chosen is not None:
        selection = [
            {"noise_type": k[0], "loss": k[1], "constrained": bool(k[2]), "lr": lr} for k, lr in sorted(chosen.items())
        ]
    manifest = {
        "name": results.name,
        "command": command,
        "profile": profile,
        "profile_values": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()},
        "package_version": __version__,
        "packed_at_commit": _git_commit(Path(__file__).resolve().parent),
        "runs": runs,
        "hardware": hardware(),
        "relax_command": None if relax_spec is None else f"xrdnb relax --profile {profile} {results}",
        "search_command": SEARCH_COMMAND if len(search_rows) else None,
        "relax_values": None
        if relax_spec is None
        else {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(relax_spec).items()},
        "coverage": {**coverage(spec, results), **({"relax": relax_cover} if relax_cover else {})},
        "compute": _compute(rows),
        "learning_rate_rule": _rule_text(),
        "learning_rates": selection,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {path.name: {"bytes": path.stat().st_size, "sha256": sha256(path)} for path in packed},
    }
    (results / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _rule_text() -> str:
    from .selection import LEARNING_RATE_RULE

    return LEARNING_RATE_RULE


@dataclass
class ResultSet:
    """A loaded result set: ``rows`` (one per copy, with ``stage``), the ``manifest`` and the trajectories.

    ``relax_rows`` are the CHGNet relaxations of the same copies, ``search_rows`` the searches of
    chapter 8 on them (each empty when none were packed).
    """

    path: Path
    manifest: dict[str, Any]
    rows: pd.DataFrame
    relax_rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    search_rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    _loss: Any = field(default=None, repr=False)

    def evaluated(self) -> pd.DataFrame:
        """The rows the tables report (stage ``evaluation``, or ``all`` for a one-stage sweep)."""
        return self.rows[self.rows["stage"] != "selection"].reset_index(drop=True)

    def selection_rows(self) -> pd.DataFrame:
        """The learning-rate selection copies (never reported by the tables)."""
        return self._stage_rows("selection").reset_index(drop=True)

    def _stage_rows(self, stage: str) -> pd.DataFrame:
        return self.rows[self.rows["stage"] == stage] if len(self.rows) else self.rows

    def loss_trajectory(self, cell_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps (R,), loss (R, copies))`` of one cell."""
        if self._loss is None:
            self._loss = np.load(self.path / LOSS)
        return self._loss[f"{cell_id}.steps"], self._loss[f"{cell_id}.loss"]

    def coverage_table(self) -> pd.DataFrame:
        """Per stage: cells and copies finished of those planned, and the step budget of each copy."""
        m = self.manifest
        lines = []
        for stage, c in m["coverage"].items():
            if stage == "all":
                continue
            values = (m.get("relax_values") or {}) if stage == "relax" else m["profile_values"]
            budget = values.get("max_steps")
            total = c.get("cells_total")
            lines.append(
                {
                    "stage": stage,
                    "cells": f"{c['cells_done']:,} of {total:,}" if total is not None else f"{c['cells_done']:,} of ?",
                    "copies": f"{c.get('copies_done', 0):,} of {c['copies_total']:,}"
                    if c.get("copies_total") is not None
                    else c.get("note", "?"),
                    "max steps per copy": budget,
                    "finished (%)": 100.0 * c["cells_done"] / total if total else 0.0,
                }
            )
        return pd.DataFrame(lines).set_index("stage")

    def stopping_table(self) -> pd.DataFrame:
        """Per stage and noise type: copies, the share stopped by the SI rule, by the budget and invalid, steps."""
        if self.rows.empty:
            return pd.DataFrame()
        rows = self.rows
        out = rows.groupby(["stage", "noise_type"], sort=False).agg(
            copies=("steps", "size"), median_steps=("steps", "median"), max_steps=("steps", "max")
        )
        for reason, label in STOP_LABELS.items():
            share = rows["stop_reason"].eq(reason).groupby([rows["stage"], rows["noise_type"]], sort=False).mean()
            out[label] = 100.0 * share
        return out.rename(columns={"median_steps": "median steps", "max_steps": "most steps"})

    def budget_stops(self, stage: str = "evaluation") -> pd.DataFrame:
        """The cells of ``stage`` with copies not stopped by the SI rule: how many hit the budget or went invalid."""
        rows = self._stage_rows(stage)
        if rows.empty:
            return pd.DataFrame()
        keys = ["cell_id", "structure", "noise_type", "noise_level", "loss", "constrained", "lr"]
        out = rows.groupby(keys, sort=False).agg(
            copies=("copy", "size"),
            at_budget=("stop_reason", lambda r: int(r.eq("max_steps").sum())),
            invalid=("stop_reason", lambda r: int(r.eq("invalid_lattice").sum())),
        )
        out = out[(out["at_budget"] + out["invalid"]) > 0].reset_index()
        return out.rename(columns={"at_budget": "at the budget", "invalid": "invalid cell"})

    def stopping_check(self, stage: str = "evaluation", share: float = SI_RULE_SHARE) -> str:
        """One line: the share of ``stage``'s copies stopped by the SI rule against ``share``; cells that did not."""
        rows = self._stage_rows(stage)
        if rows.empty:
            return f"{stage}: no finished copies yet"
        stopped = float(rows["stop_reason"].eq("converged").mean())
        cells = self.budget_stops(stage)
        verdict = "holds" if stopped >= share else "does not hold"
        return (
            f"{stage}: {100 * stopped:.1f} % of {len(rows):,} copies stopped by the SI rule (at least "
            f"{100 * share:g} %: {verdict}); {len(cells)} cells have copies that did not"
        )

    def compute_table(self) -> pd.DataFrame:
        """Per stage and noise type: cells, copies, copy-steps and CPU hours (the cells' summed wall time)."""
        table = pd.DataFrame(self.manifest.get("compute", []))
        if table.empty:
            return table
        table["CPU hours"] = table.pop("cell_seconds") / 3600.0
        return table.set_index(["stage", "noise_type"]).rename(columns={"copy_steps": "copy-steps"})

    def runs_table(self) -> pd.DataFrame:
        """The parts the run was computed in: start, end, commit, command, machine and notes (``runs.json``)."""
        lines = [
            {
                "part": i,
                "started": r.get("started", "")[:19].replace("T", " "),
                "stopped": (r.get("stopped") or "")[:19].replace("T", " "),
                "commit": r.get("commit"),
                "machine": r.get("machine", ""),
                "note": r.get("note", ""),
            }
            for i, r in enumerate(self.manifest.get("runs", []), 1)
        ]
        return pd.DataFrame(lines).set_index("part") if lines else pd.DataFrame()

    def learning_rate_table(self, noise_type: str) -> pd.DataFrame:
        """The learning-rate selection of one noise type: match rate (%) of its selection copies.

        One row per run, one column per candidate rate, then ``copies`` (selection copies per
        rate, the fewest of any rate) and ``chosen`` (the manifest's choice; empty while the
        selection is unfinished).
        """
        from .selection import with_run_labels

        sel = self.selection_rows()
        sel = with_run_labels(sel[sel["noise_type"] == noise_type]) if not sel.empty else sel
        if sel.empty:
            return pd.DataFrame()
        table = sel.pivot_table(index="run", columns="lr", values="match", aggfunc="mean") * 100.0
        table.columns = [f"{lr:g}" for lr in table.columns]
        table["copies"] = sel.groupby(["run", "lr"]).size().groupby(level=0).min()
        chosen = {
            (c["loss"], bool(c["constrained"])): c["lr"]
            for c in (self.manifest.get("learning_rates") or [])
            if c["noise_type"] == noise_type
        }
        runs = sel.drop_duplicates("run").set_index("run")
        keys = [(runs.loc[run, "loss"], bool(runs.loc[run, "constrained"])) for run in table.index]
        table["chosen"] = [f"{chosen[k]:g}" if k in chosen else "" for k in keys]
        return table

    def is_complete(self, stage: str = "evaluation") -> bool:
        """Whether every planned cell of ``stage`` (``"selection"``, ``"evaluation"``, ``"relax"``) is in the set."""
        cover = self.manifest["coverage"].get(stage)
        return bool(cover) and cover.get("cells_total") is not None and cover["cells_done"] == cover["cells_total"]

    def coverage_text(self) -> str:
        """How far the run got, per stage: e.g. ``"selection 1,180 of 1,600 cells; evaluation 0 of 450 cells"``."""
        parts = []
        for stage, c in self.manifest["coverage"].items():
            if stage != "all":
                total = f"{c['cells_total']:,}" if c.get("cells_total") is not None else "?"
                parts.append(f"{stage} {c['cells_done']:,} of {total} cells")
        return "; ".join(parts)

    def progress(self) -> str:
        """:meth:`coverage_text`, and the commands that continue and re-pack the run."""
        relax = self.manifest.get("relax_command")
        more = f", `{relax}`" if relax and not self.is_complete("relax") else ""
        return (
            f"{self.coverage_text()}. Continue with `{self.manifest['command']}`{more}, then pack with "
            f"`{self.manifest['command']} --pack`."
        )

    def judged_rows(self) -> pd.DataFrame | None:
        """The evaluated rows at the chosen rates (:meth:`selection`) on a complete evaluation stage, else None.

        Claims are judged on the whole grid only: verdicts on part of it would not be the paper's protocol.
        """
        selection = self.selection() if self.is_complete("evaluation") else None
        return None if selection is None else selection.rows

    def judged_relax(self) -> pd.DataFrame | None:
        """The CHGNet relaxations of the copies (``relax_rows``) on a complete relax stage, else None."""
        return self.relax_rows if self.is_complete("relax") else None

    def selection(self):
        """The evaluated rows at the chosen rates (:func:`xrdnb.selection.select` with the selection rows).

        None while no evaluated cell is finished.
        """
        from .selection import select

        evaluated = self.evaluated()
        if evaluated.empty:
            return None
        selection = self.selection_rows()
        return select(evaluated, selection_rows=selection if not selection.empty else None)

    def describe(self) -> str:
        """One line: which run made these numbers (command, commit, hardware, date, coverage)."""
        m = self.manifest
        cover = m["coverage"]["all"]
        total = cover["cells_total"] if cover["cells_total"] is not None else "?"
        commits = ", ".join(sorted({str(r.get("commit")) for r in m.get("runs", [])})) or str(m["packed_at_commit"])
        return (
            f"result set {m['name']!r}: `{m['command']}` at commit {commits} on {m['hardware']['cpu']} "
            f"({m['hardware']['cores']} cores), packed {m['date'][:10]}; {cover['cells_done']} of {total} cells"
        )


def load_result_set(path: str | os.PathLike) -> ResultSet:
    """Read a packed result set, refusing files that do not match the manifest (size and SHA-256)."""
    path = Path(path)
    manifest = read_manifest(path, "pack the folder with xrdnb.result_sets.pack_sweep")
    rows = pd.read_csv(path / ROWS) if (path / ROWS).stat().st_size > 20 else pd.DataFrame()
    relax, search = (pd.read_csv(path / f) if f in manifest["files"] else pd.DataFrame() for f in (RELAX, SEARCH))
    return ResultSet(path, manifest, rows, relax, search)
