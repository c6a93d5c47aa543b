"""Sensitivity checks of the correlation tables: the AMD k and the units of the coordinate noise.

**AMD k.** :func:`amd_k_rows` rebuilds the end structures of a sweep (:func:`final_structures`)
and recomputes their AMD distances for several k at once (:func:`amd_distances_for_k`);
:func:`amd_k_table` sets the correlations side by side.

**Units.** The units check (coordinate noise in fractional units instead of Å) is an
ordinary sweep of the analysed cells with ``units="fractional"`` (:class:`xrdnb.sweep.Cell`):
:func:`units_cells` picks them, :func:`units_rows` runs them into the same results folder
(their cell ids differ, so they never mix with the study's) and :func:`units_table`
compares the two.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .crystal import Crystal

__all__ = [
    "final_structures",
    "amd_distances_for_k",
    "amd_k_rows",
    "amd_k_check",
    "amd_k_table",
    "amd_k_spread",
    "units_cells",
    "units_rows",
    "units_table",
    "units_claim",
]


def final_structures(rows: pd.DataFrame, results: str | os.PathLike) -> list:
    """The structures where gradient descent ended, one pymatgen ``Structure`` per row.

    Lattice runs are rebuilt from ``final_a`` … ``final_gamma`` and the ground-truth
    coordinates. Coordinate runs are rebuilt from the ground-truth lattice and the last
    recorded fractional coordinates (``params[-1]`` of the cell's trajectory file
    ``<results>/cells/<cell_id>.npz``; the last record is the final state). The fixed part
    (coordinates or lattice) is rounded to the row's ``dtype``, as in the optimisation, so
    the structures are exactly those that were evaluated.

    Parameters
    ----------
    rows
        sweep rows with ``cell_id``, ``structure``, ``noise_type``, ``copy``, the
        ``final_*`` lattice columns and (optionally; default float64) ``dtype``.
    results
        the sweep's results folder.

    Returns
    -------
    list
        pymatgen structures in the order of ``rows``.
    """
    import torch

    from .crystal import crystal_from_structure
    from .evaluate import LATTICE_NAMES
    from .structures import load_structure

    truths: dict[tuple[str, str], Crystal] = {}
    trajectories: dict[str, np.ndarray] = {}
    out = []
    for rec in rows.itertuples(index=False):
        dtype = str(getattr(rec, "dtype", "float64"))
        if (rec.structure, dtype) not in truths:
            # the optimisation ran in ``dtype``: round the fixed part of the crystal the same way
            truth = crystal_from_structure(load_structure(rec.structure), dtype=getattr(torch, dtype))
            truths[(rec.structure, dtype)] = truth.to(dtype=torch.float64)
        truth = truths[(rec.structure, dtype)]
        if rec.noise_type == "lattice":
            lattice = torch.tensor([[getattr(rec, f"final_{n}") for n in LATTICE_NAMES]], dtype=torch.float64)
            crystal = truth.with_lattice(lattice)
        else:
            if rec.cell_id not in trajectories:
                with np.load(Path(results) / "cells" / f"{rec.cell_id}.npz") as data:
                    trajectories[rec.cell_id] = data["params"][-1]
            coords = torch.as_tensor(trajectories[rec.cell_id][int(rec.copy)], dtype=torch.float64).unsqueeze(0)
            crystal = truth.with_frac_coords(coords)
        out.append(crystal.to_structures()[0])
    return out


def amd_distances_for_k(structures: Sequence, references: Sequence, ks: Iterable[int] = (50, 100, 200)) -> pd.DataFrame:
    """L∞ AMD distances (Å) of each structure to its reference for several k at once.

    The AMD vector with k entries is the first k entries of the vector with more, because
    the i-th entry averages the i-th nearest-neighbour distances. It is therefore computed
    once, with the largest k. Invalid structures (e.g. degenerate cells) get NaN.

    Parameters
    ----------
    structures
        pymatgen structures.
    references
        the ground truth of each structure (same length; repeated objects are computed once).
    ks
        the k values.

    Returns
    -------
    pandas.DataFrame
        one column ``amd_k<k>`` per k, one row per structure.
    """
    from .evaluate import amd_vector

    ks = sorted({int(k) for k in ks})
    k_max = ks[-1]
    cache: dict[int, np.ndarray] = {}
    values = np.full((len(structures), len(ks)), np.nan)
    for i, (structure, reference) in enumerate(zip(structures, references, strict=True)):
        if id(reference) not in cache:
            cache[id(reference)] = amd_vector(reference, k_max)
        ref = cache[id(reference)]
        try:
            vec = amd_vector(structure, k_max)
        except Exception:
            continue
        for j, k in enumerate(ks):
            values[i, j] = np.abs(vec[:k] - ref[:k]).max()
    return pd.DataFrame(values, columns=[f"amd_k{k}" for k in ks])


def amd_k_rows(rows: pd.DataFrame, results: str | os.PathLike, ks: Iterable[int], loss: str = "cosine") -> pd.DataFrame:
    """The rows of the ``loss`` runs (both projector settings) with their AMD distance for each k.

    Rows without a finite AMD distance (invalid end lattices) are left out. The end
    structures are rebuilt by :func:`final_structures`; the distances are those of
    :func:`amd_distances_for_k`, in columns ``amd_k<k>``.
    """
    from .crystal import crystal_from_structure
    from .structures import load_structure

    runs = rows[(rows["loss"] == loss) & np.isfinite(rows["amd_distance"])].reset_index(drop=True)
    references = {
        name: crystal_from_structure(load_structure(name)).to_structures()[0] for name in runs["structure"].unique()
    }
    table = amd_distances_for_k(final_structures(runs, results), [references[n] for n in runs["structure"]], ks)
    return pd.concat([runs, table], axis=1)


def amd_k_check(rows: pd.DataFrame, k: int = 100) -> float:
    """Largest relative difference between the recomputed ``amd_k<k>`` and the stored ``amd_distance``.

    The sweep stores the distances at k = 100, so this is a check that :func:`amd_k_rows`
    rebuilt the end structures faithfully (NaN when ``amd_k<k>`` was not computed or no row is left).
    """
    column = f"amd_k{k}"
    if column not in rows or rows.empty:
        return float("nan")
    stored = rows["amd_distance"].to_numpy(dtype=float)
    return float(np.nanmax(np.abs(rows[column].to_numpy(dtype=float) - stored) / np.maximum(stored, 1e-12)))


def amd_k_table(rows: pd.DataFrame, ks: Iterable[int], mi_neighbors: int = 3) -> pd.DataFrame:
    """Pearson and Spearman of −AMD distance with cosine similarity for every AMD k, unconstrained and constrained.

    Parameters
    ----------
    rows
        output of :func:`amd_k_rows` (cosine runs).
    ks
        the k values (columns ``amd_k<k>`` of ``rows``).
    mi_neighbors
        passed to :func:`xrdnb.tables.correlation_cells`.

    Returns
    -------
    pandas.DataFrame
        the SI's rows (levels as text) that have a value; columns (method, run label, ``"k = <k>"``).
    """
    from .correlation_report import METHOD_LABELS, readable_index
    from .tables import correlation_cells, si_layout
    from .vocabulary import RUN_LABELS

    columns = {
        "Cosine Similarity": RUN_LABELS[("cosine", False)],
        "Cosine Similarity + Constraints": RUN_LABELS[("cosine", True)],
    }
    ks = sorted({int(k) for k in ks})
    layouts = {}
    for k in ks:
        cells = correlation_cells(
            rows, amd_column=f"amd_k{k}", n_bootstrap=0, columns=list(columns), mi_neighbors=mi_neighbors
        )
        layouts.update({(method, k): si_layout(cells, method) for method in METHOD_LABELS})
    table = pd.concat(
        {
            (label.split(" ")[0], run, f"k = {k}"): layouts[(method, k)][column]
            for method, label in METHOD_LABELS.items()
            for column, run in columns.items()
            for k in ks
        },
        axis=1,
    )
    return readable_index(table.dropna(how="all"))


def amd_k_spread(table: pd.DataFrame) -> float:
    """The largest change of any cell of :func:`amd_k_table` across its k values (NaN when there is none).

    >>> columns = pd.MultiIndex.from_product([["Pearson"], ["a", "b"], ["k = 1", "k = 2"]])
    >>> t = pd.DataFrame([[0.5, 0.7, 0.1, 0.1], [0.2, 0.8, 0.3, 0.3]], columns=columns)
    >>> round(amd_k_spread(t), 6)
    0.6
    """
    groups = table.T.groupby(level=[0, 1], sort=False)
    spread = (groups.max() - groups.min()).to_numpy(dtype=float)
    return float(np.nanmax(spread)) if np.isfinite(spread).any() else float("nan")


def units_cells(
    cells: Sequence,
    rows: pd.DataFrame,
    *,
    loss: str = "cosine",
    structures: Sequence[str] | None = None,
    levels: Sequence[float] = (0.001, 0.005, 0.01),
) -> list:
    """The analysed coordinate-noise cells of the unconstrained ``loss`` runs to re-run in other units.

    Parameters
    ----------
    cells
        the study's cells (``cells`` of :class:`xrdnb.runs.StudyRun`).
    rows
        the analysed rows (``rows`` of :class:`xrdnb.runs.StudyRun`): only cells with rows there, i.e.
        at the selected learning rates, are kept.
    loss
        the run whose cells are taken.
    structures
        keep these structures only (None: all).
    levels
        keep these coordinate noise levels only.
    """
    analysed = set(rows["cell_id"]) if "cell_id" in rows else set()
    return [
        c
        for c in cells
        if c.noise_type == "coordinates"
        and c.loss == loss
        and not c.constrained
        and c.cell_id in analysed
        and (structures is None or c.structure in structures)
        and any(np.isclose(c.noise_level, lv) for lv in levels)
    ]


def units_rows(
    cells: Sequence, results: str | os.PathLike, units: str, *, workers: int | str = 0, device: str = "cpu"
) -> pd.DataFrame:
    """Run (or read back) ``cells`` with their coordinate noise in ``units``, into the same results folder.

    Each cell becomes ``dataclasses.replace(cell, units=units)``, an ordinary sweep cell with its
    own identifier, so :func:`xrdnb.sweep.run_sweep` runs it once and reads it back afterwards.
    Everything else (seeds, learning rate, steps, evaluation) is the cell's own.

    Returns
    -------
    pandas.DataFrame
        the rows of the replaced cells (empty without cells).
    """
    from .runs import quiet_dask  # the same quiet start of local workers as the study's own cells
    from .sweep import run_sweep

    if not cells:
        return pd.DataFrame()
    with quiet_dask():
        return run_sweep(
            [replace(c, units=units) for c in cells], results, workers=workers, progress=False, device=device
        )


def units_table(
    base: pd.DataFrame,
    alt: pd.DataFrame,
    units: str,
    levels: Sequence[float],
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    mi_neighbors: int = 3,
    digits: int = 2,
) -> pd.DataFrame:
    """The cosine column of the coordinate rows in Å (``base``) and in ``units`` (``alt``), beside the paper's.

    Rows: (units, σ), the Å block first, for each level of ``levels`` that is a coordinate level of
    the SI. Columns: Pearson and Spearman with their CIs (:func:`xrdnb.correlation_report.ci_text`),
    the median AMD distance start → end, the match rate, then the paper's two values (the same in
    both blocks). Stacked rather than side by side, so that the table fits a page column.
    """
    from .correlation_report import ci_text
    from .tables import PAPER_TABLES, correlation_cells
    from .vocabulary import NOISE_LEVELS, NOISE_UNITS

    column = "Cosine Similarity"
    index = [("Coordinates", lv) for lv in NOISE_LEVELS["coordinates"] if any(np.isclose(lv, x) for x in levels)]
    blocks = []
    for label, part in ((NOISE_UNITS["coordinates"], base), (units, alt)):
        cells = correlation_cells(
            part, columns=[column], n_bootstrap=n_bootstrap, confidence=confidence, seed=seed, mi_neighbors=mi_neighbors
        ).set_index("row")
        med = part.groupby("noise_level")[["start_amd_distance", "amd_distance"]].median()
        block: dict[str, list[str]] = {}
        for method in ("pearson", "spearman"):
            texts = []
            for i in index:
                value, lo, hi = cells.loc[[i], [method, f"{method}_lo", f"{method}_hi"]].iloc[0].astype(float)
                texts.append(ci_text(value, lo, hi, digits=digits))
            block[method.capitalize()] = texts
        block["median AMD start → end (Å)"] = [
            f"{med.loc[lv, 'start_amd_distance']:.3g} → {med.loc[lv, 'amd_distance']:.3g}" if lv in med.index else "–"
            for _, lv in index
        ]
        block["match rate"] = [
            f"{part.loc[np.isclose(part['noise_level'], lv), 'match'].mean():.0%}"
            if np.isclose(part["noise_level"], lv).any()
            else "–"
            for _, lv in index
        ]
        for method, paper in PAPER_TABLES.items():
            block[f"paper {method.capitalize()}"] = [f"{paper.loc[i, column]:g}" for i in index]
        rows = pd.MultiIndex.from_tuples([(label, f"{lv:g}") for _, lv in index], names=["units", "σ"])
        blocks.append(pd.DataFrame(block, index=rows))
    return pd.concat(blocks)


def units_claim(alt: pd.DataFrame, units: str) -> str:
    """Claim (iii)'s cosine part on the rows of the units check: whether the correlations are negative at 0.001–0.01."""
    from .tables import correlation_cells

    cells = correlation_cells(alt, columns=["Cosine Similarity"], n_bootstrap=0)
    small = cells[
        (cells["noise_type"] == "coordinates")
        & cells["noise_level"].isin([0.001, 0.005, 0.01])
        & cells["reason"].ne("no runs")
    ]
    if small.empty:
        return f"claim (iii), cosine part, with {units} units: no runs at 0.001, 0.005 or 0.01"
    negative = (small[["pearson", "spearman"]] < 0).all().all()
    return (
        f"claim (iii), cosine part, with {units} units: Pearson "
        + ", ".join(f"{v:.2f}" for v in small["pearson"])
        + ", Spearman "
        + ", ".join(f"{v:.2f}" for v in small["spearman"])
        + " at "
        + ", ".join(f"{v:g}" for v in small["noise_level"])
        + " -> "
        + ("all negative" if negative else "not all negative")
    )
