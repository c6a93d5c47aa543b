"""Shipped landscape sets: the roughness of chapters 3 and 5 at a stated scale, computed once.

Chapter 3 counts the local minima of the four XRD losses and their basin fractions on nested
grids, and keeps a number only where it has converged (:mod:`xrdnb.landscape_tables`); chapter 5
does the same for the CHGNet energy. The chapters' live ``book`` run uses grids a CI build can
afford (25² points); the ``paper`` scale (65², 201-point cuts, 41² energy slices) takes a
quarter of an hour on two cores and is shipped instead, like the reference sweep
(:mod:`xrdnb.result_sets`). :func:`run_landscape_set` computes it, one landscape per task::

    <folder>/parts/<spec hash>/<kind>_<key>.csv   one finished landscape (resumable)
    <folder>/landscape_rows.csv.gz                all rows, one per landscape, loss and grid
    <folder>/manifest.json                        command, values, version, commit, hardware,
                                                  seconds per kind, date, file hashes

and :func:`load_landscape_set` reads it back after checking the files against the manifest.

The kinds (:data:`KINDS`) are the chapters' landscapes: ``fig_s2`` (the 15 cosine slices of
U₂Ti), ``fig_s3`` (the two cosine slices of SI Fig. S3), ``roughness`` (one slice per structure
with the four losses), ``cuts`` (the symmetry-axis cuts, four losses) and ``energy`` (CHGNet
energy slices with the cosine slice of the same grid). Every row has the columns of
:func:`xrdnb.landscape_tables.resolution_table` plus ``landscape`` (the kind), ``task`` (its key)
and ``seconds`` (the task's wall time), so :func:`xrdnb.landscape_tables.convergence_summary` reads
:meth:`LandscapeSet.resolution` directly.

>>> [task.key for task in tasks(PROFILES["smoke"])][:3]
['fig_s2_U2Ti', 'fig_s3_U2Ti_a_c', 'fig_s3_BPO4_a_c']
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from .manifests import MANIFEST
from .store import write_cell
from .vocabulary import BENCHMARK_NAMES

__all__ = [
    "KINDS",
    "LandscapeSpec",
    "PROFILES",
    "Task",
    "tasks",
    "run_landscape_set",
    "pack_landscape_set",
    "LandscapeSet",
    "load_landscape_set",
    "ROWS",
    "MANIFEST",
]

ROWS = "landscape_rows.csv.gz"
"""The file of a landscape set that holds its rows, one per landscape, loss and grid."""

KINDS = {
    "fig_s2": "the 15 cosine slices of SI Fig. S2",
    "fig_s3": "the cosine slices of SI Fig. S3",
    "roughness": "one slice per structure, four losses",
    "cuts": "the symmetry-axis cuts, four losses",
    "energy": "CHGNet energy slices and the cosine slice of the same grid",
}
"""The landscapes of a set by kind, with what each holds; chapter 3 shows the first four, chapter 5 the last."""

_ENERGY_CASES = (
    ("Au2S", "a", "b"),
    ("Au2S", "a", "alpha"),
    ("Na3MnCoNiO6", "a", "gamma"),
    ("Na3MnCoNiO6", "a", "beta"),
    ("NdAl2Cu4", "a", "c"),
    ("NdAl2Cu4", "a", "b"),
)


@dataclass(frozen=True)
class LandscapeSpec:
    """The landscapes of a set: which structures and slices, and on which grids.

    The defaults are chapter 3's and chapter 5's own (the ``book`` profile). Grid sizes are points
    per axis; ``roughness_grids`` are nested (:func:`xrdnb.landscape.nested_grids`), and the other
    landscapes are evaluated on the nested grids of their size. Spans: ±``length_span`` (relative)
    in lengths, ±``angle_span`` (degrees) in angles.
    """

    s2_structure: str = "U2Ti"
    s2_grid: int = 21
    s3_cases: tuple[tuple[str, str, str], ...] = (("Au2S", "a", "b"), ("Na3MnCoNiO6", "a", "gamma"))
    s3_grid: int = 41
    structures: tuple[str, ...] = BENCHMARK_NAMES
    pair: tuple[str, str] = ("a", "c")
    roughness_grids: tuple[int, ...] = (7, 13, 25)
    cut_structures: tuple[str, ...] = BENCHMARK_NAMES
    cut_points: int = 101
    energy_cases: tuple[tuple[str, str, str], ...] = _ENERGY_CASES
    energy_grid: int = 13
    length_span: float = 0.2
    angle_span: float = 20.0
    cc_half_width: float = 1.0
    dtype: str = "float64"
    relax_profile: str = field(default="book")

    def values(self) -> dict[str, Any]:
        """The fields as JSON values (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    def digest(self) -> str:
        """A short hash of :meth:`values`: finished parts of other values are never reused."""
        return hashlib.sha256(json.dumps(self.values(), sort_keys=True).encode()).hexdigest()[:12]


PROFILES = {
    "smoke": LandscapeSpec(
        s2_grid=7,
        s3_cases=(("U2Ti", "a", "c"), ("BPO4", "a", "c")),
        s3_grid=11,
        structures=("U2Ti", "BPO4"),
        roughness_grids=(5, 9, 17),
        cut_structures=("Au2S", "U2Ti", "Na3MnCoNiO6"),
        cut_points=41,
        energy_cases=(("Au2S", "a", "b"),),
        energy_grid=7,
        relax_profile="smoke",
    ),
    "book": LandscapeSpec(),
    "paper": LandscapeSpec(
        s2_grid=41, s3_grid=81, roughness_grids=(17, 33, 65), cut_points=201, energy_grid=41, relax_profile="paper"
    ),
}
"""Landscape sets by chapter profile; each matches chapters 3 and 5 under that profile of ``profiles.yml``."""


@dataclass(frozen=True)
class Task:
    """One landscape of a set: its kind, a file-name key, and how to compute its resolution rows."""

    kind: str
    key: str
    compute: Callable[[], pd.DataFrame] = field(compare=False, repr=False)


def _span(spec: LandscapeSpec) -> dict[str, Any]:
    return dict(length_span=spec.length_span, angle_span=spec.angle_span)


def tasks(spec: LandscapeSpec, *, device: str = "cpu", relax_results: str | os.PathLike = "truths") -> list[Task]:
    """The landscapes of ``spec`` in a fixed order, each a :class:`Task`.

    ``device`` is CHGNet's (energy slices); ``relax_results`` the folder where the relaxed ground
    truths of the energy slices are kept (:func:`xrdnb.relax_sweep.relaxed_truths`;
    :func:`run_landscape_set` uses the set's ``truths`` folder).
    """
    from . import landscape as ls
    from . import landscape_tables as lt

    grid: dict[str, Any] = dict(chunk_size=64, dtype=spec.dtype, **_span(spec))
    losses: dict[str, Any] = dict(cc_half_width=spec.cc_half_width, **grid)

    def cosine_slices(name: str, pairs, n: int) -> pd.DataFrame:  # pairs None: all 15 (Fig. S2)
        slices = lt.pair_slices(name, pairs=pairs, n=n, **grid)
        return lt.resolution_table(slices, ls.nested_grids(n), losses=["cosine"])

    def rough(name: str) -> pd.DataFrame:
        slices = lt.loss_slices([name], spec.pair, n=max(spec.roughness_grids), **losses)
        return lt.resolution_table(slices, sorted(spec.roughness_grids))

    def cuts(name: str) -> pd.DataFrame:
        return lt.resolution_table(lt.axis_cuts([name], n=spec.cut_points, **losses), ls.nested_grids(spec.cut_points))

    def energy(name: str, p1: str, p2: str) -> pd.DataFrame:
        from . import relax_sweep as rs
        from . import relax_tables as rt
        from .structures import crystal_family, load_structure

        truths = rs.relaxed_truths([name], relax_results, rs.PROFILES[spec.relax_profile], device=device)
        slices = rt.energy_landscapes([(name, p1, p2)], n=spec.energy_grid, device=device, **_span(spec))
        rows = rt.energy_resolution_table(slices, truths, ls.nested_grids(spec.energy_grid))
        return rows.assign(family=crystal_family(load_structure(name)))

    out = [Task("fig_s2", f"fig_s2_{spec.s2_structure}", partial(cosine_slices, spec.s2_structure, None, spec.s2_grid))]
    out += [
        Task("fig_s3", f"fig_s3_{n}_{a}_{b}", partial(cosine_slices, n, [(a, b)], spec.s3_grid))
        for n, a, b in spec.s3_cases
    ]
    out += [Task("roughness", f"roughness_{n}", partial(rough, n)) for n in spec.structures]
    out += [Task("cuts", f"cuts_{n}", partial(cuts, n)) for n in spec.cut_structures]
    out += [Task("energy", f"energy_{n}_{a}_{b}", partial(energy, n, a, b)) for n, a, b in spec.energy_cases]
    return out


def _part(results: Path, spec: LandscapeSpec, key: str) -> Path:
    """The file of one finished landscape of ``spec`` (its parts live in a folder of their values)."""
    return results / "parts" / spec.digest() / f"{key}.csv"


def run_landscape_set(
    spec: LandscapeSpec,
    results: str | os.PathLike,
    *,
    command: str,
    profile: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    kinds: tuple[str, ...] = tuple(KINDS),
) -> dict[str, Any]:
    """Compute the landscapes of ``spec`` missing from ``results``, then pack them; returns the manifest.

    Each finished landscape is a part file written atomically (:func:`xrdnb.store.write_cell`), so
    an interrupted run resumes where it stopped; parts of other values (:meth:`LandscapeSpec.digest`)
    are not reused. ``kinds`` restricts the run to some of :data:`KINDS` (the pack holds the finished
    parts of all). ``command`` is recorded in the manifest as the command that computes the set.
    """
    from tqdm.auto import tqdm

    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown landscape kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    results = Path(results)
    todo = [t for t in tasks(spec, device=device, relax_results=results / "truths") if t.kind in kinds]
    todo = [t for t in todo if not _part(results, spec, t.key).exists()]
    for task in tqdm(todo, desc="landscapes", disable=not progress):
        start = time.perf_counter()
        rows = task.compute()
        rows = rows.assign(landscape=task.kind, task=task.key, seconds=round(time.perf_counter() - start, 2))
        write_cell(_part(results, spec, task.key), rows)
    return pack_landscape_set(spec, results, command=command, profile=profile)


def pack_landscape_set(
    spec: LandscapeSpec, results: str | os.PathLike, *, command: str, profile: str | None = None
) -> dict[str, Any]:
    """Gather the finished parts of ``spec`` in ``results`` into :data:`ROWS` and write the manifest."""
    from . import __version__
    from .manifests import hardware, sha256, write_csv_gz
    from .run_record import _git_commit

    results = Path(results)
    keys = [t.key for t in tasks(spec)]
    done = [k for k in keys if _part(results, spec, k).exists()]
    frames = [pd.read_csv(_part(results, spec, k)) for k in done]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["landscape", "task", "seconds"])
    rows_path = results / ROWS
    write_csv_gz(rows, rows_path)
    seconds = {}
    if not rows.empty:
        per_task = rows.groupby(["landscape", "task"], sort=False)["seconds"].first()
        seconds = {k: round(float(v), 1) for k, v in per_task.groupby(level=0, sort=False).sum().items()}
    manifest = {
        "name": results.name,
        "command": command,
        "profile": profile,
        "values": spec.values(),
        "package_version": __version__,
        "commit": _git_commit(Path(__file__).resolve().parent),
        "hardware": hardware(),
        "landscapes": {"done": len(done), "total": len(keys)},
        "seconds": seconds,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {ROWS: {"bytes": rows_path.stat().st_size, "sha256": sha256(rows_path)}},
    }
    (results / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclass
class LandscapeSet:
    """A packed landscape set: the manifest and its rows (see the module docstring)."""

    path: Path
    manifest: dict[str, Any]
    rows: pd.DataFrame

    @property
    def spec(self) -> LandscapeSpec:
        """The values the set was computed with."""
        values = dict(self.manifest["values"])
        for key in ("s3_cases", "energy_cases"):
            values[key] = tuple(tuple(case) for case in values[key])
        for key in ("structures", "pair", "roughness_grids", "cut_structures"):
            values[key] = tuple(values[key])
        return replace(LandscapeSpec(), **values)

    def is_complete(self) -> bool:
        """Whether every landscape of the set's values is in it."""
        count = self.manifest["landscapes"]
        return bool(count["done"] == count["total"])

    def resolution(self, kind: str) -> pd.DataFrame:
        """The rows of one kind of :data:`KINDS`, as :func:`xrdnb.landscape_tables.resolution_table` gives them."""
        if kind not in KINDS:
            raise ValueError(f"unknown landscape kind {kind!r}; choose from {', '.join(KINDS)}")
        part = self.rows[self.rows["landscape"] == kind]
        return part.drop(columns=["landscape", "task", "seconds"]).reset_index(drop=True)

    def convergence(self, kind: str) -> pd.DataFrame:
        """:func:`xrdnb.landscape_tables.convergence_summary` of one kind: each landscape and loss on its grids."""
        from .landscape_tables import convergence_summary

        return convergence_summary(self.resolution(kind))

    def convergence_table(self, kinds: tuple[str, ...] = tuple(KINDS)) -> pd.DataFrame:
        """How many landscapes of each kind and loss converged: :func:`xrdnb.landscape_tables.convergence_counts`.

        Rows (kind, loss display name) for the kinds present; columns ``grids`` (points per axis,
        coarse to fine) and those of ``convergence_counts``.
        """
        from .landscape_tables import convergence_counts

        out = []
        for kind in kinds:
            summary = self.convergence(kind)
            if summary.empty:
                continue
            losses = list(dict.fromkeys(summary["loss"]))
            counts = convergence_counts(summary, losses=losses)
            grids = summary.groupby("loss", sort=False)["grids"].first()
            counts.insert(0, "grids", [grids[loss] for loss in losses])
            out.append(counts.assign(kind=kind).set_index("kind", append=True).swaplevel())
        return pd.concat(out) if out else pd.DataFrame()

    def describe(self) -> str:
        """One line: which run made these numbers (command, commit, hardware, date, how much of it)."""
        m = self.manifest
        minutes = sum(m["seconds"].values()) / 60
        return (
            f"landscape set {m['name']!r}: `{m['command']}` at commit {m['commit']} on {m['hardware']['cpu']} "
            f"({m['hardware']['cores']} cores), {m['date'][:10]}; {m['landscapes']['done']} of "
            f"{m['landscapes']['total']} landscapes, {minutes:.1f} min of computing"
        )


def load_landscape_set(path: str | os.PathLike) -> LandscapeSet:
    """Read a packed landscape set, refusing a rows file that does not match the manifest (size and SHA-256)."""
    from .manifests import read_manifest

    manifest = read_manifest(path, "compute the set with `xrdnb landscapes`")
    return LandscapeSet(Path(path), manifest, pd.read_csv(Path(path) / ROWS))
