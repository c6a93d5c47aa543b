"""Landscapes of the benchmark structures and their roughness tables: what chapter 3 shows.

:mod:`xrdnb.landscape` computes one slice or cut of a crystal and its roughness; this module
runs them over the study's structures and collects the tables of chapter 3: the 15 slices of
SI Fig. S2, the symmetry-axis cuts inside the constrained manifold, one slice per structure with
the four similarities, and gradient-descent end points projected onto a slice (SI Fig. S3).

Roughness is that of the *loss*, minus the similarity (:func:`xrdnb.landscape.roughness`):
strict local minima away from the grid's edge and the fraction of grid points whose steepest
descent on the grid ends where the descent from the ground truth ends. Both depend on the grid;
:func:`resolution_table` evaluates them on nested grids and :func:`convergence_summary` keeps a
number only where it has converged (:func:`xrdnb.landscape.converged`), and otherwise the minima
per unit of the slice with the exponent of their growth.

Examples
--------
>>> import torch
>>> x = torch.linspace(-1, 1, 5, dtype=torch.float64)
>>> bowl = Slice(("a", "b"), x, x, 1 - x[:, None] ** 2 - x[None, :] ** 2, torch.tensor([0.0, 0, 0, 90, 90, 90]))
>>> table = slice_table({("a", "b"): bowl})
>>> table[["slice", "minima", "basin fraction", "global max at ground truth"]].to_dict("records")
[{'slice': 'a–b', 'minima': 1, 'basin fraction': 1.0, 'global max at ground truth': True}]
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .crystal import crystal_from_structure
from .landscape import (
    ANGLE_SPAN,
    CONVERGENCE_TOLERANCE,
    DENSITY_UNIT,
    LENGTH_SPAN,
    Cut,
    Slice,
    axis_step,
    converged,
    growth_exponent,
    lattice_cut,
    lattice_slice,
    parameter_index,
    project_onto_slice,
    roughness,
    roughness_by_resolution,
    xrd_similarity_fn,
)
from .structures import crystal_family, load_structure
from .symmetry import free_parameters
from .vocabulary import LATTICE_NAMES, LATTICE_SYMBOLS, LOSS_NAMES, run_label

__all__ = [
    "ROUGHNESS_COLUMNS",
    "Landscape",
    "slice_label",
    "span_text",
    "pair_slices",
    "slice_table",
    "loss_slices",
    "axis_cuts",
    "roughness_table",
    "roughness_medians",
    "roughness_pivot",
    "ROUGHNESS_MEANING",
    "ROUGHNESS_FORMATS",
    "roughness_tables",
    "RESOLUTION_COLUMNS",
    "grid_steps",
    "resolution_rows",
    "resolution_table",
    "resolution_pivot",
    "convergence_summary",
    "convergence_display",
    "convergence_counts",
    "CONVERGENCE_CAPTION",
    "relative_axis",
    "end_points_on_slice",
    "overlay_table",
]

ROUGHNESS_COLUMNS = ("minima", "basin fraction")
"""The two roughness numbers of every table, strict local minima of the loss and the basin fraction."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Landscape:
    """A slice or cut of one benchmark structure, with the names a table or caption needs.

    Attributes
    ----------
    structure
        benchmark name, e.g. ``"Na3MnCoNiO6"``.
    formula
        reduced formula (pymatgen), e.g. ``"Na3MnCoNiO6"``.
    family
        crystal family of the ground truth.
    grid
        the :class:`~xrdnb.landscape.Slice` or :class:`~xrdnb.landscape.Cut`.
    """

    structure: str
    formula: str
    family: str
    grid: Slice | Cut


def _truth(name: str, dtype: str):
    structure = load_structure(name)
    crystal = crystal_from_structure(structure, dtype=_DTYPES[dtype])
    return structure.composition.reduced_formula, crystal_family(structure), crystal


def slice_label(names: Sequence[str]) -> str:
    """``"a–γ"``: the symbols of a slice's two parameters."""
    return "–".join(LATTICE_SYMBOLS[LATTICE_NAMES[parameter_index(n)]] for n in names)


def span_text(length_span: float = LENGTH_SPAN, angle_span: float = ANGLE_SPAN) -> str:
    """Caption text of a slice's extent."""
    return (
        f"±{100 * length_span:g} % in lengths, ±{angle_span:g}° in angles, "
        "other parameters and coordinates at the ground truth"
    )


def pair_slices(
    name: str,
    *,
    pairs: Sequence[Sequence[str]] | None = None,
    similarity: str = "cosine",
    n: int = 21,
    chunk_size: int = 64,
    length_span: float = LENGTH_SPAN,
    angle_span: float = ANGLE_SPAN,
    dtype: str = "float64",
) -> dict[tuple[str, str], Landscape]:
    """Slices of one structure's ``similarity`` to its ground-truth pattern over parameter pairs.

    ``pairs`` None: all 15 pairs of the six lattice parameters (SI Fig. S2).
    """
    formula, family, truth = _truth(name, dtype)
    fn = xrd_similarity_fn(truth, similarity)
    chosen: list[tuple[str, str]] = (
        list(itertools.combinations(LATTICE_NAMES, 2)) if pairs is None else [(p[0], p[1]) for p in pairs]
    )
    span: dict = dict(length_span=length_span, angle_span=angle_span)
    return {
        pair: Landscape(name, formula, family, lattice_slice(truth, pair, fn, n=n, chunk_size=chunk_size, **span))
        for pair in chosen
    }


def slice_table(slices: dict) -> pd.DataFrame:
    """Per single-channel slice: the similarity at the ground truth, the largest elsewhere, and the roughness.

    ``slices`` maps keys to :class:`Landscape` or :class:`~xrdnb.landscape.Slice`. Columns: ``structure``
    (the formula; None for a bare slice), ``slice``, ``similarity at ground truth``, ``max similarity
    elsewhere``, ``global max at ground truth``, ``minima``, ``basin fraction``.
    """
    out = []
    for item in slices.values():
        sl = item.grid if isinstance(item, Landscape) else item
        assert isinstance(sl, Slice), "slice_table takes slices (two parameters), not cuts"
        i, j = sl.center_index
        r = roughness(-sl.values, sl.center_index)
        flat = torch.nan_to_num(sl.values, nan=-np.inf).flatten()
        out.append(
            {"structure": item.formula if isinstance(item, Landscape) else None, "slice": slice_label(sl.names)}
            | {"similarity at ground truth": float(sl.values[i, j])}
            | {"max similarity elsewhere": float(flat.topk(2).values[1])}
            | {"global max at ground truth": int(flat.argmax()) == i * sl.values.shape[1] + j}
            | {"minima": r.n_minima, "basin fraction": r.basin_fraction}
        )
    return pd.DataFrame(out)


def loss_slices(
    names: Sequence[str],
    pair: Sequence[str],
    *,
    losses: Sequence[str] = LOSS_NAMES,
    n: int = 17,
    cc_half_width: float = 1.0,
    chunk_size: int = 64,
    length_span: float = LENGTH_SPAN,
    angle_span: float = ANGLE_SPAN,
    dtype: str = "float64",
) -> dict[str, Landscape]:
    """One slice per structure over ``pair`` with one channel per similarity of ``losses``."""
    out = {}
    for name in names:
        formula, family, truth = _truth(name, dtype)
        fn = xrd_similarity_fn(truth, list(losses), cc_half_width=cc_half_width)
        sl = lattice_slice(
            truth, pair, fn, n=n, chunk_size=chunk_size, channels=losses, length_span=length_span, angle_span=angle_span
        )
        out[name] = Landscape(name, formula, family, sl)
    return out


def axis_cuts(
    names: Sequence[str],
    *,
    losses: Sequence[str] = LOSS_NAMES,
    n: int = 101,
    cc_half_width: float = 1.0,
    chunk_size: int = 64,
    length_span: float = LENGTH_SPAN,
    angle_span: float = ANGLE_SPAN,
    dtype: str = "float64",
) -> dict[tuple[str, str], Landscape]:
    """1-D cuts along every free parameter of each structure's family (:func:`xrdnb.symmetry.free_parameters`).

    Each cut moves the parameter with its tied partners (ā = a = b = c for a cubic cell), so it
    stays inside the constrained manifold; one channel per similarity of ``losses``. Keys are
    ``(structure, parameter)``.
    """
    out = {}
    for name in names:
        formula, family, truth = _truth(name, dtype)
        fn = xrd_similarity_fn(truth, list(losses), cc_half_width=cc_half_width)
        for param in free_parameters(family):
            cut = lattice_cut(
                truth,
                param,
                fn,
                family=family,
                n=n,
                chunk_size=chunk_size,
                channels=losses,
                length_span=length_span,
                angle_span=angle_span,
            )
            out[(name, param)] = Landscape(name, formula, family, cut)
    return out


def roughness_table(landscapes: dict[object, Landscape], losses: Sequence[str] = LOSS_NAMES) -> pd.DataFrame:
    """Long table of the roughness of each landscape's loss channels.

    Columns: ``structure`` (formula), ``family``, ``axis`` (the cut's label, or the slice's pair),
    ``loss``, ``minima``, ``basin fraction``.
    """
    out = []
    for item in landscapes.values():
        grid = item.grid
        axis = grid.label if isinstance(grid, Cut) else slice_label(grid.names)
        for loss in losses:
            r = roughness(-grid.channel(loss), grid.center_index)
            out.append(
                {"structure": item.formula, "family": item.family, "axis": axis, "loss": loss}
                | {"minima": r.n_minima, "basin fraction": r.basin_fraction}
            )
    return pd.DataFrame(out)


def roughness_pivot(
    table: pd.DataFrame, index: Sequence[str] = ("structure", "family", "axis"), losses: Sequence[str] = LOSS_NAMES
) -> pd.DataFrame:
    """:func:`roughness_table` wide: rows ``index``, columns (minima | basin fraction) × loss (display names)."""
    wide = table.pivot_table(index=list(index), columns="loss", values=list(ROUGHNESS_COLUMNS), sort=False)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([list(ROUGHNESS_COLUMNS), list(losses)]))
    return wide.rename(columns={loss: run_label(loss, False) for loss in losses}, level=1)


ROUGHNESS_MEANING = {
    "minima": "strict local minima of the loss",
    "basin fraction": "fraction of the grid whose steepest descent ends in the ground truth's basin",
}
"""Caption text of each roughness number (:data:`ROUGHNESS_COLUMNS`)."""

ROUGHNESS_FORMATS = {"minima": "{:.0f}", "basin fraction": "{:.2f}"}
"""Display format of each roughness number (a count, a fraction)."""


def roughness_tables(
    table: pd.DataFrame, index: Sequence[str] = ("structure", "family", "axis"), losses: Sequence[str] = LOSS_NAMES
) -> dict[str, pd.DataFrame]:
    """:func:`roughness_pivot` split by roughness number: ``{"minima": ..., "basin fraction": ...}``.

    Each table has rows ``index`` and one column per loss (display names), so that each fits the
    text column on its own; the keys are those of :data:`ROUGHNESS_MEANING` and :data:`ROUGHNESS_FORMATS`.
    """
    wide = roughness_pivot(table, index=index, losses=losses)
    return {measure: wide[measure].rename_axis(columns=None) for measure in ROUGHNESS_COLUMNS}


RESOLUTION_COLUMNS = ("minima", "minima density", "basin fraction")
"""The numbers of :func:`resolution_table` per grid: minima, minima per :data:`~xrdnb.landscape.DENSITY_UNIT`
of the slice, basin fraction."""


def grid_steps(grid: Slice | Cut) -> tuple[float, ...]:
    """A slice's or cut's grid step per axis in % (lengths) or degrees (angles), :func:`xrdnb.landscape.axis_step`."""
    if isinstance(grid, Cut):
        return (axis_step(grid.x, grid.center, grid.name),)
    return tuple(axis_step(axis, grid.center, name) for axis, name in zip((grid.x, grid.y), grid.names, strict=True))


def resolution_rows(
    grid: Slice | Cut, loss: torch.Tensor, start: int | Sequence[int], grids: Sequence[int]
) -> list[dict]:
    """Rows ``grid``, ``minima``, ``minima density``, ``basin fraction`` of one loss on nested subgrids of ``grid``.

    ``loss`` is ``grid``'s ``(n,)`` or ``(n, n)`` loss (lower is better), ``start`` the reference point's
    index on it; see :func:`xrdnb.landscape.roughness_by_resolution`.
    """
    return [
        {"grid": r.n, "minima": r.n_minima, "minima density": r.minima_density, "basin fraction": r.basin_fraction}
        for r in roughness_by_resolution(loss, start, grids, grid_steps(grid))
    ]


def resolution_table(landscapes: Mapping, grids: Sequence[int], losses: Sequence[str] = LOSS_NAMES) -> pd.DataFrame:
    """:func:`roughness_table` on nested grids: the roughness of each loss channel at every resolution of ``grids``.

    Each grid of ``grids`` (points per axis) must nest in the landscapes' own grid
    (:func:`xrdnb.landscape.nested_step`), which is usually the finest of them: the coarse grids are
    subsamples and cost nothing. A single-channel grid (e.g. of :func:`pair_slices`) is taken as the
    similarity ``losses[0]``. Columns: ``structure``, ``family``, ``axis``, ``loss``, ``grid``, and
    :data:`RESOLUTION_COLUMNS`; rows coarse to fine within each landscape and loss.
    """
    out = []
    for item in landscapes.values():
        grid = item.grid
        axis = grid.label if isinstance(grid, Cut) else slice_label(grid.names)
        channels = {loss: grid.channel(loss) for loss in losses} if grid.channels else {losses[0]: grid.values}
        for loss, values in channels.items():
            head = {"structure": item.formula, "family": item.family, "axis": axis, "loss": loss}
            out += [head | row for row in resolution_rows(grid, -values, grid.center_index, grids)]
    return pd.DataFrame(out)


def resolution_pivot(
    table: pd.DataFrame,
    measure: str = "minima",
    index: Sequence[str] = ("structure", "family"),
    losses: Sequence[str] = LOSS_NAMES,
) -> pd.DataFrame:
    """One measure of :func:`resolution_table` wide: rows ``index``, columns (loss display name, grid size)."""
    wide = table.pivot_table(index=list(index), columns=["loss", "grid"], values=measure, sort=False)
    grids = sorted(table["grid"].unique())
    wide = wide.reindex(columns=pd.MultiIndex.from_product([list(losses), grids], names=["loss", "grid"]))
    return wide.rename(columns={loss: run_label(loss, False) for loss in losses}, level=0)


def convergence_summary(
    table: pd.DataFrame,
    index: Sequence[str] = ("structure", "family", "axis", "loss"),
    tolerance: float = CONVERGENCE_TOLERANCE,
) -> pd.DataFrame:
    """What :func:`resolution_table` says at its finest grid, kept only where the number has converged.

    Per group of ``index`` (a landscape and loss), with :func:`xrdnb.landscape.converged` on the
    values ordered coarse to fine: ``grids`` (e.g. ``"9, 17, 33"``), ``minima`` (the count on the
    finest grid, NaN unless converged), ``minima converged``, ``minima density`` (finest grid, per
    :data:`~xrdnb.landscape.DENSITY_UNIT`), ``growth exponent`` (of the count between the two finest
    grids, :func:`xrdnb.landscape.growth_exponent`), ``basin fraction`` (NaN unless converged) and
    ``basin fraction converged``.
    """
    out = []
    for key, part in table.groupby(list(index), sort=False):
        part = part.sort_values("grid")
        if len(part) < 2:
            raise ValueError(f"{key}: convergence needs at least 2 grids, got {part['grid'].tolist()}")
        ok = {m: converged(part[m].tolist(), tolerance) for m in ("minima", "basin fraction")}
        last = part.iloc[-1]
        growth = growth_exponent(part["grid"].tolist(), part["minima"].tolist())
        out.append(
            dict(zip(index, key if isinstance(key, tuple) else (key,), strict=True))
            | {"grids": ", ".join(str(int(n)) for n in part["grid"])}
            | {"minima": float(last["minima"]) if ok["minima"] else np.nan, "minima converged": ok["minima"]}
            | {"minima density": float(last["minima density"]), "growth exponent": growth}
            | {"basin fraction": float(last["basin fraction"]) if ok["basin fraction"] else np.nan}
            | {"basin fraction converged": ok["basin fraction"]}
        )
    return pd.DataFrame(out)


CONVERGENCE_CAPTION = {
    "minima": (
        f"the count on the finest grid where the two finest agree within {100 * CONVERGENCE_TOLERANCE:g} %; "
        f"else ρ, the minima per {DENSITY_UNIT:g} % (or {DENSITY_UNIT:g}°) along each axis on the finest grid, "
        "and p, the exponent of the count's growth with the grid points per axis (0: resolved; while the count grows "
        "with the grid, the dimension: 2 on a slice, 1 on a cut)"
    ),
    "basin fraction": (
        f"the fraction on the finest grid where the two finest agree within {100 * CONVERGENCE_TOLERANCE:g} %; else —"
    ),
}
"""Caption text of each :func:`convergence_display` table: what its cells mean."""


def convergence_display(
    summary: pd.DataFrame,
    measure: str = "minima",
    index: Sequence[str] = ("structure", "family"),
    losses: Sequence[str] = LOSS_NAMES,
) -> pd.DataFrame:
    """:func:`convergence_summary` as text, rows ``index`` and one column per loss (display names).

    ``measure="minima"``: the count where it converged, else ``"ρ 4.1, p 1.9"``, the minima density
    (per :data:`~xrdnb.landscape.DENSITY_UNIT`) on the finest grid and the growth exponent;
    ``"basin fraction"``: the fraction where it converged, else ``"—"``.
    """
    if measure not in ("minima", "basin fraction"):
        raise ValueError(f"measure must be 'minima' or 'basin fraction', got {measure!r}")

    def text(row) -> str:
        if row[f"{measure} converged"]:
            return f"{row[measure]:.0f}" if measure == "minima" else f"{row[measure]:.2f}"
        if measure == "basin fraction":
            return "—"
        p = row["growth exponent"]
        return f"ρ {row['minima density']:.2g}, p {p:.1f}" if np.isfinite(p) else f"ρ {row['minima density']:.2g}"

    cells = summary.assign(text=summary.apply(text, axis=1))
    wide = cells.pivot_table(index=list(index), columns="loss", values="text", aggfunc="first", sort=False)
    wide = wide.reindex(columns=list(losses))
    return wide.rename(columns={loss: run_label(loss, False) for loss in losses}).rename_axis(columns=None)


def convergence_counts(summary: pd.DataFrame, losses: Sequence[str] = LOSS_NAMES) -> pd.DataFrame:
    """How many landscapes of :func:`convergence_summary` converged, per loss (rows, display names).

    Columns: ``landscapes``, ``minima converged`` and ``basin fraction converged`` (counts), the
    ``median converged minima`` (over the landscapes whose count converged; NaN if none) and the
    ``median growth exponent`` of the minima count (over all).
    """
    out = []
    for loss in losses:
        part = summary[summary["loss"] == loss]
        out.append(
            {"loss": run_label(loss, False), "landscapes": len(part)}
            | {"minima converged": int(part["minima converged"].sum())}
            | {"basin fraction converged": int(part["basin fraction converged"].sum())}
            | {"median converged minima": float(part["minima"].median())}
            | {"median growth exponent": float(part["growth exponent"].median())}
        )
    return pd.DataFrame(out).set_index("loss")


def roughness_medians(table: pd.DataFrame) -> pd.DataFrame:
    """Median minima and basin fraction of :func:`roughness_table` per loss, rows named for display."""
    medians = table.groupby("loss", sort=False)[list(ROUGHNESS_COLUMNS)].median()
    return medians.rename(index=lambda loss: run_label(loss, False)).add_prefix("median ")


def relative_axis(cut: Cut) -> np.ndarray:
    """A cut's coordinate as a change from the ground truth: per cent for a length, degrees for an angle."""
    i = parameter_index(cut.name)
    centre = float(cut.center[i])
    return (100 * (cut.x / centre - 1) if i < 3 else cut.x - centre).numpy()


def end_points_on_slice(
    rows: pd.DataFrame, sl: Slice, *, length_span: float = LENGTH_SPAN, angle_span: float = ANGLE_SPAN
) -> pd.DataFrame:
    """Gradient-descent end points (``final_*`` lattices of sweep rows) projected onto a slice plane.

    Returns ``rows`` with ``x``, ``y`` (the two in-plane parameters), ``off_plane`` (largest deviation of
    the other four parameters, in slice half-widths: :func:`xrdnb.landscape.project_onto_slice`) and
    ``inside`` (within the slice's extent).
    """
    if rows.empty:
        return rows.assign(x=[], y=[], off_plane=[], inside=[])
    points = torch.tensor(rows[[f"final_{p}" for p in LATTICE_NAMES]].to_numpy(dtype=float), dtype=sl.center.dtype)
    coords, off = project_onto_slice(points, sl.center, sl.names, length_span=length_span, angle_span=angle_span)
    x, y = coords[:, 0].numpy(), coords[:, 1].numpy()
    inside = (x >= float(sl.x.min())) & (x <= float(sl.x.max())) & (y >= float(sl.y.min())) & (y <= float(sl.y.max()))
    return rows.assign(x=x, y=y, off_plane=off.numpy(), inside=inside)


def overlay_table(points: pd.DataFrame) -> pd.DataFrame:
    """Per structure, run and lattice noise level of :func:`end_points_on_slice` rows: how the overlay reads.

    Columns: ``structure``, ``run``, ``lattice noise σ``, ``end points``, ``match``, ``median cos at end``,
    ``inside the slice``, ``median off-plane distance (Δ)``.
    """
    out = []
    for (structure, run, level), part in points.groupby(["structure", "run", "noise_level"], sort=False):
        out.append(
            {"structure": structure, "run": run, "lattice noise σ": level, "end points": len(part)}
            | {"match": int(part["match"].astype(bool).sum()), "median cos at end": part["similarity_cosine"].median()}
            | {
                "inside the slice": int(part["inside"].sum()),
                "median off-plane distance (Δ)": part["off_plane"].median(),
            }
        )
    return pd.DataFrame(out)
