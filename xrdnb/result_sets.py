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
import gzip
import hashlib
import io
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .sweep import SweepSpec, is_finished, load_results, load_trajectories

__all__ = ["ResultSet", "pack_sweep", "load_result_set", "coverage", "MANIFEST", "ROWS", "LOSS"]

MANIFEST = "manifest.json"
ROWS = "sweep_rows.csv.gz"
LOSS = "sweep_loss.npz"


def coverage(spec: SweepSpec, results: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per stage and in all: finished and total cells and copies (None totals: not yet known)."""
    results = Path(results)
    out: dict[str, dict[str, Any]] = {}
    done_all = total_all = 0
    known = True
    for name, cells in spec.stages(results):
        if cells is None:
            out[name] = {"cells_done": 0, "cells_total": None, "note": "after the selection: one rate per run"}
            known = False
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
    out["all"] = {"cells_done": done_all, "cells_total": total_all if known else None}
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hardware() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = float("nan")
    import torch

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


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
    buffer = io.BytesIO()
    rows.to_csv(buffer, index=False)
    with gzip.GzipFile(rows_path, "wb", mtime=0) as handle:  # mtime 0: the same rows give the same bytes
        handle.write(buffer.getvalue())
    np.savez_compressed(loss_path, **trajectories)  # type: ignore[arg-type]
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
        "hardware": _hardware(),
        "coverage": coverage(spec, results),
        "compute": _compute(rows),
        "learning_rate_rule": _rule_text(),
        "learning_rates": selection,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {
            path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)} for path in (rows_path, loss_path)
        },
    }
    (results / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _rule_text() -> str:
    from .selection import LEARNING_RATE_RULE

    return LEARNING_RATE_RULE


@dataclass
class ResultSet:
    """A loaded result set: ``rows`` (one per copy, with ``stage``), the ``manifest`` and the trajectories."""

    path: Path
    manifest: dict[str, Any]
    rows: pd.DataFrame
    _loss: Any = field(default=None, repr=False)

    def evaluated(self) -> pd.DataFrame:
        """The rows the tables report (stage ``evaluation``, or ``all`` for a one-stage sweep)."""
        return self.rows[self.rows["stage"] != "selection"].reset_index(drop=True)

    def selection_rows(self) -> pd.DataFrame:
        """The learning-rate selection copies (never reported by the tables)."""
        return self.rows[self.rows["stage"] == "selection"].reset_index(drop=True)

    def loss_trajectory(self, cell_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps (R,), loss (R, copies))`` of one cell."""
        if self._loss is None:
            self._loss = np.load(self.path / LOSS)
        return self._loss[f"{cell_id}.steps"], self._loss[f"{cell_id}.loss"]

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
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path}: no manifest (pack the folder with xrdnb.result_sets.pack_sweep)")
    manifest = json.loads(manifest_path.read_text())
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.exists():
            raise FileNotFoundError(f"{file}: listed in the manifest but missing")
        if file.stat().st_size != expected["bytes"] or _sha256(file) != expected["sha256"]:
            raise ValueError(f"{file}: does not match the manifest (size or SHA-256); re-pack or fetch it again")
    rows = pd.read_csv(path / ROWS) if (path / ROWS).stat().st_size > 20 else pd.DataFrame()
    return ResultSet(path, manifest, rows)
