"""What the CHGNet relaxations show: why copies were not recovered, the tables of chapter 5, SI Fig. S5.

Pure functions of the rows of :func:`xrdnb.relax_sweep.run_relax_sweep` (and of the
gradient-descent rows of :func:`xrdnb.runs.run_study` where a table sets both side by side);
:func:`energy_landscapes` evaluates CHGNet energies on landscape slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .vocabulary import NOISE_TYPES, RUN_LABELS, YES_NO

__all__ = [
    "FAILURE_KINDS",
    "failure_kinds",
    "diagnose",
    "diagnosis_table",
    "truth_table",
    "match_rate_table",
    "constrained_table",
    "energy_landscapes",
    "roughness_contrast",
    "ENERGY_LOSS",
    "energy_resolution_table",
    "summary_lines",
]


FAILURE_KINDS = {
    "lower minimum": "the copy ends below CHGNet's relaxed ground truth: CHGNet prefers another cell there",
    "flat surface": "within the energy tolerance of the relaxed ground truth but off in the lattice: a flat strain",
    "other basin": "the copy ends in a higher minimum, usually a different cell",
    "positions differ": "right energy and lattice, but no match: the positions differ",
}
"""Why a copy was not recovered, from its energy and lattice against the relaxed ground truth."""


def failure_kinds(
    rows: pd.DataFrame, *, energy_tol: float = 1e-3, length_tol: float = 0.01, angle_tol: float = 1.0
) -> pd.Series:
    """The :data:`FAILURE_KINDS` key of each copy not recovered (``""`` for recovered copies).

    Parameters
    ----------
    rows
        relaxation rows (``noise_type``, ``energy_above_relaxed_truth`` in eV/atom and the
        ``relaxed_`` comparison columns).
    energy_tol
        eV/atom: an end energy within this of the relaxed ground truth's counts as the same minimum.
    length_tol, angle_tol
        the tolerances of "recovered" (:func:`xrdnb.selection.recovered` with
        ``reference="relaxed_truth"``), relative and in degrees.

    Returns
    -------
    pandas.Series
        str, indexed like ``rows``.
    """
    from .selection import recovered

    ok = recovered(rows, reference="relaxed_truth", length_tol=length_tol, angle_tol=angle_tol).to_numpy()
    de = rows["energy_above_relaxed_truth"].to_numpy(dtype=float)
    close = (rows["relaxed_max_length_error_rel"].to_numpy(dtype=float) <= length_tol) & (
        rows["relaxed_max_angle_error"].to_numpy(dtype=float) <= angle_tol
    )
    same = np.abs(de) <= energy_tol
    kinds = np.select(
        [ok, de < -energy_tol, de > energy_tol, same & ~close],
        ["", "lower minimum", "other basin", "flat surface"],
        default="positions differ",
    )
    return pd.Series(kinds, index=rows.index, name="failure")


def diagnose(rows: pd.DataFrame, *, energy_tol: float = 1e-3, length_tol: float = 0.01, angle_tol: float = 1.0) -> str:
    """Why the copies in ``rows`` that were not recovered failed, in one line (``""`` when all were).

    Counts each kind of :func:`failure_kinds` with its telling number (the lowest energy of
    a lower minimum, the largest lattice error of a flat surface, the highest energy of
    another basin, in meV/atom and %), and the copies that did not converge.

    Examples
    --------
    >>> rows = pd.DataFrame({"noise_type": "lattice", "relaxed_match": [True, True, False],
    ...     "relaxed_max_length_error_rel": [0.001, 0.03, 0.2], "relaxed_max_angle_error": [0.0, 0.5, 9.0],
    ...     "energy_above_relaxed_truth": [0.0, 0.0002, 0.05], "converged": True, "max_steps": 500})
    >>> diagnose(rows)
    'flat surface ×1 (|ΔE| ≤ 1 meV/atom at 3.0 % off); other basin ×1 (ΔE up to +50 meV/atom)'
    """
    kinds = failure_kinds(rows, energy_tol=energy_tol, length_tol=length_tol, angle_tol=angle_tol)
    de = 1e3 * rows["energy_above_relaxed_truth"]
    tol = 1e3 * energy_tol
    detail = {
        "lower minimum": lambda m: f"ΔE {de[m].min():+.1f} meV/atom",
        "flat surface": lambda m: (
            f"|ΔE| ≤ {tol:g} meV/atom at {100 * rows.relaxed_max_length_error_rel[m].max():.1f} % off"
        ),
        "other basin": lambda m: f"ΔE up to {de[m].max():+.0f} meV/atom",
        "positions differ": lambda m: "energy and lattice right, no match",
    }
    parts = [f"{k} ×{int((kinds == k).sum())} ({detail[k](kinds == k)})" for k in FAILURE_KINDS if (kinds == k).any()]
    stuck = (kinds != "") & ~rows["converged"].astype(bool)
    if stuck.any():
        parts.append(f"{int(stuck.sum())} not converged in {int(rows['max_steps'].max())} steps")
    return "; ".join(parts)


def diagnosis_table(rows: pd.DataFrame, by: Sequence[str] = ("structure", "noise_level"), **tolerances) -> pd.DataFrame:
    """Per group of ``by``: copies, match and recovered fractions, median lattice error (%), median steps, diagnosis.

    ``match`` is the ``StructureMatcher`` verdict against the DFT ground truth; ``recovered`` and the
    median length error are against CHGNet's relaxed ground truth.

    ``tolerances`` go to :func:`diagnose` (and the recovered rule).
    """
    from .selection import recovered

    length_tol = tolerances.get("length_tol", 0.01)
    angle_tol = tolerances.get("angle_tol", 1.0)
    flagged = rows.assign(
        recovered=recovered(rows, reference="relaxed_truth", length_tol=length_tol, angle_tol=angle_tol)
    )
    out = []
    for key, group in flagged.groupby(list(by), sort=False):
        out.append(
            dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
            | {
                "copies": len(group),
                "match": group["match"].mean(),
                "recovered": group["recovered"].mean(),
                "median length error (%)": 100 * group["relaxed_max_length_error_rel"].median(),
                "median steps": group["steps"].median(),
                "diagnosis": diagnose(group, **tolerances),
            }
        )
    return pd.DataFrame(out)


def truth_table(truths: pd.DataFrame) -> pd.DataFrame:
    """How far CHGNet moves each ground truth, one display row per structure (rows of :func:`.load_truths`).

    Columns: ``structure``, ``family``, ``sites``, ``relaxation steps`` (with "(not converged)" where the
    relaxation stopped at its step limit), ``a, b, c change (%)``, ``α, β, γ change (°)``, ``matches
    DFT cell`` (yes/no), ``E (eV/atom)`` and ``relaxation ΔE (meV/atom)``.
    """
    from .vocabulary import LATTICE_NAMES

    def change(row, names, relative):
        values = [
            row[f"relaxed_{n}"] / row[f"dft_{n}"] - 1 if relative else row[f"relaxed_{n}"] - row[f"dft_{n}"]
            for n in names
        ]
        return ", ".join(f"{(100 if relative else 1) * v:+.2f}" for v in values)

    return pd.DataFrame(
        {
            "structure": truths["structure"],
            "family": truths["family"],
            "sites": truths["sites"],
            "relaxation steps": [
                f"{int(n)}" + ("" if ok else " (not converged)")
                for n, ok in zip(truths["steps"], truths["converged"].astype(bool), strict=True)
            ],
            "a, b, c change (%)": [change(r, LATTICE_NAMES[:3], True) for _, r in truths.iterrows()],
            "α, β, γ change (°)": [change(r, LATTICE_NAMES[3:], False) for _, r in truths.iterrows()],
            "matches DFT cell": truths["match"].astype(bool).map(YES_NO),
            "E (eV/atom)": truths["energy"],
            "relaxation ΔE (meV/atom)": 1e3 * (truths["energy"] - truths["initial_energy"]),
        }
    )


def match_rate_table(relax_rows: pd.DataFrame, gd_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rates (%) per (noise type, level) of the free relaxations, beside XRD gradient descent from the same copies.

    Rows ``(noise, σ)``. Columns, in two header levels so that the table fits the text column:
    ``(distorted start, copies)``, ``(distorted start, match)``, one ``(XRD GD: match, <run>)`` column
    per run of ``gd_rows`` (their ``run`` label, e.g. :attr:`xrdnb.selection.Selection.rows`),
    ``(CHGNet, match)`` and ``(CHGNet, recovered)`` (:func:`xrdnb.selection.recovered` against the
    relaxed ground truth). A run that has no rows at a level (there are no constrained coordinate
    runs) is NaN there.
    """
    from .selection import recovered

    key = ["noise_type", "noise_level"]
    free = relax_rows[~relax_rows["constrained"].astype(bool)]
    free = free.assign(recovered=recovered(free, reference="relaxed_truth"))
    table = free.groupby(key).agg(
        copies=("match", "size"), start=("start_match", "mean"), m=("match", "mean"), r=("recovered", "mean")
    )
    table = table.rename(columns={"start": "start (distorted)", "m": "CHGNet: match", "r": "CHGNet: recovered"})
    if gd_rows is not None and not gd_rows.empty:
        gd = gd_rows.pivot_table(index=key, columns="run", values="match", aggfunc="mean")
        gd = gd[[r for r in RUN_LABELS.values() if r in gd.columns]].add_prefix("XRD GD: ")
        table = table.join(gd, how="left")
        table = table[["copies", "start (distorted)", *gd.columns, "CHGNet: match", "CHGNet: recovered"]]
    rates = [c for c in table.columns if c != "copies"]
    order = sorted(table.index, key=lambda k: (NOISE_TYPES.index(k[0]), k[1]))
    table = table.assign(**{c: 100 * table[c].astype(float) for c in rates}).loc[order]
    table.columns = pd.MultiIndex.from_tuples([_rate_header(c) for c in table.columns])
    return table.rename_axis(index=["noise", "σ"])


def _rate_header(column: str) -> tuple[str, str]:
    if column in ("copies", "start (distorted)"):
        return ("distorted start", "match" if column != "copies" else column)
    group, name = column.split(": ", 1)
    return (f"{group}: match" if group == "XRD GD" else group, name)


def constrained_table(
    relax_rows: pd.DataFrame, truths: pd.DataFrame, gd_rows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per structure and level of the constrained relaxations: space group, recovered free and constrained, diagnosis.

    ``gd_rows`` (with ``run``) adds the match rate of the constrained XRD gradient descent
    (``cosine + constraints``) from the same copies.
    """
    from .selection import recovered

    rows = relax_rows.assign(recovered=recovered(relax_rows, reference="relaxed_truth"))
    groups = {g: p for g, p in rows.groupby(["structure", "noise_level", "constrained"], sort=False)}
    kept = truths.set_index("structure")["space_group"]
    out = []
    for (name, level, constrained), group in groups.items():
        if not constrained or group["noise_type"].iloc[0] != "lattice":
            continue
        free = groups.get((name, level, False))
        xrd = None
        if gd_rows is not None and not gd_rows.empty:
            xrd = gd_rows[
                (gd_rows["structure"] == name)
                & np.isclose(gd_rows["noise_level"], level)
                & (gd_rows["noise_type"] == "lattice")
                & (gd_rows["run"] == RUN_LABELS[("cosine", True)])
            ]
        groups_seen = ", ".join(sorted(set(group["space_group"].astype(str))))
        truth_group = kept.get(name, "")
        out.append(
            {
                "structure": name,
                "σ": level,
                "space group": groups_seen
                if groups_seen == truth_group
                else f"{groups_seen} (ground truth {truth_group})",
                "free: recovered": free["recovered"].mean() if free is not None else np.nan,
                "constrained: recovered": group["recovered"].mean(),
                "median length error (%)": 100 * group["relaxed_max_length_error_rel"].median(),
                "XRD GD + constraints: match": xrd["match"].mean() if xrd is not None and len(xrd) else np.nan,
                "diagnosis": diagnose(group),
            }
        )
    return pd.DataFrame(out)


# ----------------------------------------------------------------------- SI Fig. S5: energy and XRD landscapes


def energy_landscapes(
    cases: Sequence[Sequence[str]],
    *,
    n: int = 15,
    device: str = "cpu",
    batch_size: int = 64,
    length_span: float = 0.2,
    angle_span: float = 20.0,
) -> dict[tuple[str, str, str], tuple]:
    """CHGNet energy and cosine-similarity slices of the same grids, per case ``(structure, p1, p2)``.

    Returns
    -------
    dict
        ``{(structure, p1, p2): (energy_slice, cosine_slice)}`` of :class:`xrdnb.landscape.Slice`
        (energy in eV/atom, :func:`xrdnb.relax.energy_fn`; cosine similarity,
        :func:`xrdnb.landscape.xrd_similarity_fn`), ``n × n`` around the DFT ground truth.
    """
    from . import landscape as ls
    from .crystal import crystal_from_structure
    from .relax import energy_fn
    from .structures import load_structure

    span: dict[str, Any] = dict(n=n, length_span=length_span, angle_span=angle_span)
    energy = energy_fn(device=device, batch_size=batch_size)
    out = {}
    for name, p1, p2 in cases:
        truth = crystal_from_structure(load_structure(name))
        out[(name, p1, p2)] = (
            ls.lattice_slice(truth, (p1, p2), energy, chunk_size=batch_size, **span),
            ls.lattice_slice(truth, (p1, p2), ls.xrd_similarity_fn(truth, "cosine"), chunk_size=16, **span),
        )
    return out


def roughness_contrast(landscapes: dict, truths: pd.DataFrame) -> pd.DataFrame:
    """Roughness (:func:`xrdnb.landscape.roughness`) of each energy slice beside its cosine slice.

    The energy basin is that of the grid point nearest CHGNet's relaxed lattice (``relaxed_<p>``
    of :func:`~xrdnb.relax_sweep.load_truths` rows); the cosine basin that of the ground truth. Columns:
    ``structure``, ``slice``, ``energy: minima``, ``energy: basin fraction``, ``cosine: minima``,
    ``cosine: basin fraction`` and ``energy minimum − relaxed lattice (grid steps)``.
    """
    import torch

    from . import landscape as ls
    from .vocabulary import LATTICE_SYMBOLS

    relaxed = truths.set_index("structure")
    out = []
    for (name, p1, p2), (energy, cosine) in landscapes.items():
        ri, rj = (
            ls.grid_index(axis, float(relaxed.loc[name, f"relaxed_{p}"]))
            for axis, p in ((energy.x, p1), (energy.y, p2))
        )
        e = ls.roughness(energy.values, (ri, rj))
        x = ls.roughness(-cosine.values, cosine.center_index)
        mi, mj = divmod(int(torch.nan_to_num(energy.values, nan=float("inf")).argmin()), energy.values.shape[1])
        out.append(
            {
                "structure": name,
                "slice": f"{LATTICE_SYMBOLS[energy.names[0]]}–{LATTICE_SYMBOLS[energy.names[1]]}",
                "energy: minima": e.n_minima,
                "energy: basin fraction": e.basin_fraction,
                "cosine: minima": x.n_minima,
                "cosine: basin fraction": x.basin_fraction,
                "energy minimum − relaxed lattice (grid steps)": max(abs(mi - ri), abs(mj - rj)),
            }
        )
    return pd.DataFrame(out)


ENERGY_LOSS = "CHGNet energy"
"""The ``loss`` name of an energy slice in :func:`energy_resolution_table` (beside ``"cosine"``)."""


def energy_resolution_table(landscapes: dict, truths: pd.DataFrame, grids: Sequence[int]) -> pd.DataFrame:
    """The roughness of each energy slice and its cosine slice on nested grids, as in chapter 3.

    Rows of :func:`xrdnb.landscape_tables.resolution_rows` per case, loss (:data:`ENERGY_LOSS`: the
    energy in eV/atom; ``"cosine"``: −cos) and grid of ``grids`` (each nested in the slices' grid,
    :func:`xrdnb.landscape.nested_step`), coarse to fine. The energy basin is that of the grid point
    nearest CHGNet's relaxed lattice (``relaxed_<p>`` of ``truths``), the cosine basin that of the
    ground truth, as in :func:`roughness_contrast`. Columns: ``structure``, ``axis``, ``loss``, ``grid``
    and :data:`xrdnb.landscape_tables.RESOLUTION_COLUMNS`.
    """
    from . import landscape as ls
    from .landscape_tables import resolution_rows, slice_label

    relaxed = truths.set_index("structure")
    out = []
    for (name, p1, p2), (energy, cosine) in landscapes.items():
        start = tuple(
            ls.grid_index(axis, float(relaxed.loc[name, f"relaxed_{p}"]))
            for axis, p in ((energy.x, p1), (energy.y, p2))
        )
        losses = ((ENERGY_LOSS, energy, energy.values, start), ("cosine", cosine, -cosine.values, cosine.center_index))
        for loss, grid, values, ref in losses:
            head = {"structure": name, "axis": slice_label((p1, p2)), "loss": loss}
            out += [head | row for row in resolution_rows(grid, values, ref, grids)]
    return pd.DataFrame(out)


def summary_lines(relax_rows: pd.DataFrame, gd_rows: pd.DataFrame | None = None) -> list[str]:
    """One line per noise type, level and free/constrained: CHGNet match and recovered (%) beside XRD GD's match."""
    from .selection import recovered

    rows = relax_rows.assign(recovered=recovered(relax_rows, reference="relaxed_truth"))
    lines = []
    groups = sorted(
        rows.groupby(["noise_type", "noise_level", "constrained"]),
        key=lambda g: (NOISE_TYPES.index(g[0][0]), *g[0][1:]),
    )
    for (noise_type, level, constrained), part in groups:
        unit = " Å" if noise_type == "coordinates" else ""
        what = " under the symmetry constraint" if constrained else ""
        line = (
            f"{noise_type} σ = {level:g}{unit}, CHGNet{what}: match {100 * part.match.mean():.0f} %, "
            f"recovered (vs its relaxed truth) {100 * part.recovered.mean():.0f} %"
        )
        if gd_rows is not None and not gd_rows.empty and not constrained:
            gd = gd_rows[(gd_rows.noise_type == noise_type) & np.isclose(gd_rows.noise_level, level)]
            line += "".join(f"; XRD GD {run} {100 * g.match.mean():.0f} %" for run, g in gd.groupby("run", sort=False))
        lines.append(line)
    return lines
