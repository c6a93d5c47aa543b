"""Tables of gradient-descent outcomes: what chapter 4 (and the chapters after it) show of a sweep.

Every function takes the analysed rows of :func:`xrdnb.runs.run_study` (``StudyRun.rows``:
one learning rate per run, with a ``run`` label column) and returns a table; none runs or reads a
sweep, except :func:`projected_starts`, the control that evaluates the projected starting lattices
without any optimisation, :func:`example_panels`, which re-simulates the patterns of one copy, and
:func:`run_trajectories`, which reads recorded loss curves.

Column and level labels come from :mod:`xrdnb.vocabulary`; "recovered" is
:func:`xrdnb.selection.recovered` (a match, and for lattice noise every length within 1 % and
every angle within 1° of the DFT ground truth).

Examples
--------
>>> rows = pd.DataFrame({"noise_type": "lattice", "noise_level": [0.01, 0.01, 0.1, 0.1], "seed": 0,
...                      "structure": "U2Ti", "copy": [0, 0, 1, 1], "loss": "cosine", "constrained": [False, True] * 2,
...                      "run": ["cosine", "cosine + constraints"] * 2, "match": [True, True, False, True],
...                      "start_match": [True, True, False, False]})
>>> outcome_table(rows, "lattice", "match").to_dict("index")
{'0.01': {'start (distorted)': 100.0, 'cosine': 100.0, 'cosine + constraints': 100.0}, \
'0.1': {'start (distorted)': 0.0, 'cosine': 0.0, 'cosine + constraints': 100.0}}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .crystal import Crystal, crystal_from_structure
from .evaluate import evaluate_copies
from .losses import all_similarities
from .pattern import DEFAULT_SETTINGS, XRDSettings, simulate_pattern
from .selection import recovered
from .structures import load_structure
from .symmetry import project_lattice
from .vocabulary import LATTICE_LABELS, LATTICE_NAMES, NOISE_TYPES, NOISE_UNITS, RUN_LABELS, RUNS, YES_NO

__all__ = [
    "START",
    "PROJECTED",
    "START_KEYS",
    "run_order",
    "distinct_starts",
    "projected_starts",
    "outcome_table",
    "pooled_rates",
    "mismatch_above_thresholds",
    "high_similarity_counts",
    "wrong_but_similar",
    "lattice_error_medians",
    "outcome_summary",
    "nearest_level",
    "Example",
    "pick_example",
    "example_panels",
    "run_trajectories",
]

START = "start (distorted)"
"""Column of the distorted starting structures (what gradient descent has to beat)."""

PROJECTED = "projected start (𝒫, no GD)"
"""Column of the control (the starting lattices projected onto the crystal family, not optimised)."""

START_KEYS = ["structure", "noise_type", "noise_level", "seed", "copy"]
"""The columns that identify a distorted start; all runs of a level share them."""


def run_order(rows: pd.DataFrame) -> list[str]:
    """The run labels present in ``rows``, in the order of the SI tables (:data:`xrdnb.vocabulary.RUNS`)."""
    present = set(rows["run"]) if "run" in rows else set()
    return [RUN_LABELS[r] for r in RUNS if RUN_LABELS[r] in present] + sorted(present - {RUN_LABELS[r] for r in RUNS})


def distinct_starts(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per distorted start (:data:`START_KEYS`): the runs of a level share their copies."""
    return rows.drop_duplicates(START_KEYS)


def projected_starts(rows: pd.DataFrame, *, settings: XRDSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """The control of chapter 4: the lattice-noise starts projected onto their family, evaluated without GD.

    The constrained runs start from exactly these lattices
    (:func:`xrdnb.symmetry.project_lattice` of the ``start_*`` lattice), so the difference between
    this control and the constrained run is what gradient descent adds.

    Returns
    -------
    pandas.DataFrame
        one row per distinct lattice start: :data:`START_KEYS` and the columns of
        :func:`xrdnb.evaluate.evaluate_copies` (``match``, ``similarity_cosine``,
        ``max_length_error_rel``, ``max_angle_error``, ...); empty without lattice rows.
    """
    starts = distinct_starts(rows[rows["noise_type"] == "lattice"])
    parts = []
    for name, group in starts.groupby("structure", sort=False):
        truth = crystal_from_structure(load_structure(name))
        lattice = torch.tensor(group[[f"start_{n}" for n in LATTICE_NAMES]].to_numpy(), dtype=torch.float64)
        projected = truth.with_lattice(project_lattice(lattice, group["family"].iloc[0]))
        evaluated = evaluate_copies(projected, truth, settings=settings).drop(columns="copy")
        parts.append(pd.concat([group[START_KEYS].reset_index(drop=True), evaluated], axis=1))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=START_KEYS)


def _values(frame: pd.DataFrame, value: str, of: str) -> pd.Series:
    """``value`` of the final (``of="final"``) or starting structures; ``"recovered"`` by :func:`recovered`."""
    if value == "recovered":
        return recovered(frame, of=of).astype(float)
    return frame[value if of == "final" else f"start_{value}"].astype(float)


def _level_index(index: pd.Index, noise_type: str) -> pd.Index:
    unit = NOISE_UNITS[noise_type]
    return pd.Index([f"{x:g}{' ' + unit if unit else ''}" for x in index], name=f"{noise_type} noise σ")


def outcome_table(
    rows: pd.DataFrame,
    noise_type: str,
    value: str,
    *,
    projected: pd.DataFrame | None = None,
    percent: bool | None = None,
    copies: bool = False,
) -> pd.DataFrame:
    """Mean of ``value`` per noise level (rows) and run (columns), after a start column: the SI tables' layout.

    Parameters
    ----------
    rows
        analysed rows (``StudyRun.rows``).
    noise_type
        ``"lattice"`` or ``"coordinates"``.
    value
        ``"match"``, ``"recovered"`` (:func:`xrdnb.selection.recovered`) or a numeric column with a
        ``start_`` twin, e.g. ``"similarity_cosine"``.
    projected
        :func:`projected_starts` rows: adds the :data:`PROJECTED` column (lattice noise only).
    percent
        multiply by 100 (default: for ``match`` and ``recovered``).
    copies
        add a first column with the number of copies per level (of the first run).
    """
    percent = value in ("match", "recovered") if percent is None else percent
    scale = 100.0 if percent else 1.0
    sub = rows[rows["noise_type"] == noise_type]
    table = sub.assign(_v=_values(sub, value, "final")).pivot_table(
        index="noise_level", columns="run", values="_v", aggfunc="mean"
    )
    table = table[[r for r in run_order(sub) if r in table.columns]] * scale
    if projected is not None and noise_type == "lattice" and len(projected):
        part = projected.assign(noise_type="lattice")
        table.insert(
            0, PROJECTED, part.assign(_v=_values(part, value, "final")).groupby("noise_level")["_v"].mean() * scale
        )
    starts = distinct_starts(sub)
    table.insert(
        0, START, starts.assign(_v=_values(starts, value, "start")).groupby("noise_level")["_v"].mean() * scale
    )
    if copies:
        first = sub[sub["run"] == run_order(sub)[0]]
        table.insert(0, "copies", first.groupby("noise_level").size())
    table.index = _level_index(table.index, noise_type)
    table.columns.name = None
    return table


def pooled_rates(
    rows: pd.DataFrame, noise_type: str = "lattice", *, projected: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Match and recovery rates (%) over all levels of ``noise_type``: start, projected start and each run."""
    sub = rows[rows["noise_type"] == noise_type]
    starts = distinct_starts(sub)
    out = {}
    for value in ("match", "recovered"):
        line = {START: 100 * _values(starts, value, "start").mean()}
        if projected is not None and noise_type == "lattice" and len(projected):
            line[PROJECTED] = 100 * _values(projected.assign(noise_type="lattice"), value, "final").mean()
        for run in run_order(sub):
            line[run] = 100 * _values(sub[sub["run"] == run], value, "final").mean()
        out[value] = line
    return pd.DataFrame(out).T.rename_axis(f"{noise_type} noise, all levels (%)")


def mismatch_above_thresholds(rows: pd.DataFrame, thresholds) -> pd.DataFrame:
    """Lattice runs: ``"k of n"`` end points without a match among the ``n`` above each cosine threshold, per run."""
    lattice = rows[rows["noise_type"] == "lattice"]
    table = {}
    for run in run_order(lattice):
        part = lattice[lattice["run"] == run]
        above = [part["similarity_cosine"] > t for t in thresholds]
        table[run] = [f"{int((a & ~part['match'].astype(bool)).sum())} of {int(a.sum())}" for a in above]
    return pd.DataFrame(table, index=pd.Index([f"> {t:g}" for t in thresholds], name="cosine after GD"))


def high_similarity_counts(rows: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per noise type and run: end points, those above ``threshold`` cosine, those of them without a match."""
    high_col = f"cosine > {threshold:g}"
    out = []
    for noise_type in [t for t in NOISE_TYPES if t in set(rows["noise_type"])]:
        sub = rows[rows["noise_type"] == noise_type]
        for run in run_order(sub):
            out.append(
                _high_similarity_line(sub[sub["run"] == run], threshold) | {"noise_type": noise_type, "run": run}
            )
    table = pd.DataFrame(out).set_index(["noise_type", "run"]).rename_axis(["noise", "run"])
    share = 100 * table["… and no match"] / table[high_col].where(table[high_col] > 0)
    return table.assign(**{"share of high-similarity end points without a match (%)": share})


def _high_similarity_line(part: pd.DataFrame, threshold: float) -> dict:
    high = part["similarity_cosine"] > threshold
    wrong = ~part["match"].astype(bool)
    return {"end points": len(part), f"cosine > {threshold:g}": int(high.sum())} | {
        "… and no match": int((high & wrong).sum()),
        "no match": int(wrong.sum()),
    }


def wrong_but_similar(rows: pd.DataFrame, threshold: float) -> dict[str, float]:
    """The headline count: lattice noise, unconstrained runs of every loss, end points above ``threshold`` cosine.

    Returns ``end points``, ``high`` (cosine > threshold), ``high_no_match``, ``no_match`` and
    ``best_wrong`` (the highest cosine of an end point without a match; NaN if none).
    """
    part = rows[(rows["noise_type"] == "lattice") & ~rows["constrained"].astype(bool)]
    high = part["similarity_cosine"] > threshold
    wrong = ~part["match"].astype(bool)
    best = float(part.loc[wrong, "similarity_cosine"].max()) if wrong.any() else float("nan")
    return {
        "end points": len(part),
        "high": int(high.sum()),
        "high_no_match": int((high & wrong).sum()),
        "no_match": int(wrong.sum()),
        "best_wrong": best,
    }


def lattice_error_medians(rows: pd.DataFrame) -> pd.DataFrame:
    """Lattice runs: median over copies of the largest length error (%) and angle error (°), start and per run."""
    lattice = rows[rows["noise_type"] == "lattice"]
    runs = run_order(lattice)
    columns = {}
    for metric, column, scale in [
        ("largest length error (%)", "max_length_error_rel", 100.0),
        ("largest angle error (°)", "max_angle_error", 1.0),
    ]:
        columns[(metric, START)] = distinct_starts(lattice).groupby("noise_level")[f"start_{column}"].median() * scale
        for run in runs:
            columns[(metric, run)] = lattice[lattice["run"] == run].groupby("noise_level")[column].median() * scale
    table = pd.DataFrame(columns)
    table.index = _level_index(table.index, "lattice")
    return table


def outcome_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per noise type, level and run: copies, mean cosine similarity and match rate (%) at the start and the end."""
    out = []
    kinds = [t for t in NOISE_TYPES if t in set(rows["noise_type"])]
    for (noise_type, level), sub in sorted(
        rows.groupby(["noise_type", "noise_level"]), key=lambda g: (kinds.index(g[0][0]), g[0][1])
    ):
        for run in run_order(sub):
            part = sub[sub["run"] == run]
            out.append(
                {"noise type": noise_type, "σ": _level_index([level], noise_type)[0], "run": run, "copies": len(part)}
                | {
                    "cosine, start": part["start_similarity_cosine"].mean(),
                    "cosine, end": part["similarity_cosine"].mean(),
                }
                | {"match (%), start": 100 * part["start_match"].mean(), "match (%), end": 100 * part["match"].mean()}
            )
    return pd.DataFrame(out).set_index(["noise type", "σ", "run"])


def nearest_level(levels, level: float) -> float:
    """The value of ``levels`` nearest ``level`` (a profile may not run the level a figure asks for)."""
    levels = sorted(float(x) for x in levels)
    if not levels:
        raise ValueError("no levels to choose from")
    return min(levels, key=lambda x: abs(x - level))


@dataclass(frozen=True)
class Example:
    """One copy followed through both cosine runs (SI Fig. S4).

    Attributes
    ----------
    structure, level, copy, seed
        which copy: structure name, lattice noise σ, copy index and seed.
    unconstrained, constrained
        its sweep row of the cosine run without and with the projector (``constrained`` None if not run).
    """

    structure: str
    level: float
    copy: int
    seed: int
    unconstrained: pd.Series
    constrained: pd.Series | None


def pick_example(rows: pd.DataFrame, structure: str, level: float, copy: int | None = None) -> Example:
    """The copy of SI Fig. S4: lattice noise nearest ``level``, cosine loss; ``copy`` None picks the paper's story.

    The story (distorted: no match, GD: no match, constrained GD: match) scores one point per part;
    ties go to the highest cosine similarity after unconstrained GD.
    """
    lattice = rows[(rows["noise_type"] == "lattice") & (rows["structure"] == structure) & (rows["loss"] == "cosine")]
    if lattice.empty:
        raise RuntimeError(f"no lattice runs of {structure} with the cosine loss in these rows")
    level = nearest_level(lattice["noise_level"].unique(), level)
    pick = lattice[np.isclose(lattice["noise_level"], level)]
    gd = pick[~pick["constrained"].astype(bool)].set_index("copy")
    cgd = pick[pick["constrained"].astype(bool)].set_index("copy")
    if copy is None:
        story = (
            (~gd["start_match"].astype(bool)).astype(int)
            + (~gd["match"].astype(bool)).astype(int)
            + cgd["match"].astype(bool).reindex(gd.index, fill_value=False).astype(int)
        )
        copy = int((story * 10 + gd["similarity_cosine"].fillna(0)).idxmax())
    row = gd.loc[copy]
    return Example(
        structure, float(level), int(copy), int(row["seed"]), row, cgd.loc[copy] if copy in cgd.index else None
    )


def _lattice(row: pd.Series, prefix: str) -> torch.Tensor:
    return torch.tensor([[float(row[f"{prefix}_{n}"]) for n in LATTICE_NAMES]], dtype=torch.float64)


def example_panels(
    example: Example, *, settings: XRDSettings = DEFAULT_SETTINGS
) -> tuple[pd.DataFrame, dict[str, Crystal], dict[str, torch.Tensor]]:
    """The cases of SI Fig. S4: ground truth, distorted, GD, constrained GD.

    Lattice runs keep the fractional coordinates, so each structure is the ground truth with the
    row's ``true_*``, ``start_*`` or ``final_*`` lattice (:meth:`xrdnb.crystal.Crystal.with_lattice`).

    Returns
    -------
    table
        per case: the six lattice parameters (:data:`xrdnb.vocabulary.LATTICE_LABELS`), the volume,
        the cosine similarity to the ground-truth pattern recomputed here and as stored in the sweep,
        and the matcher's verdict.
    crystals, patterns
        per case: the crystal and its ``(n_bins,)`` pattern.
    """
    u, c = example.unconstrained, example.constrained
    cases = {
        "ground truth": (_lattice(u, "true"), True, None),
        f"distorted (σ = {example.level:g})": (
            _lattice(u, "start"),
            bool(u["start_match"]),
            u["start_similarity_cosine"],
        ),
        "GD, cosine loss": (_lattice(u, "final"), bool(u["match"]), u["similarity_cosine"]),
    }
    if c is not None:
        cases["GD, cosine + constraints"] = (_lattice(c, "final"), bool(c["match"]), c["similarity_cosine"])
    truth = crystal_from_structure(load_structure(example.structure))
    with torch.no_grad():
        target = simulate_pattern(truth, settings)[0]
    crystals, patterns, out = {}, {}, []
    for name, (lattice, matched, stored) in cases.items():
        crystal = truth.with_lattice(lattice)
        with torch.no_grad():
            pattern = simulate_pattern(crystal, settings)
        cosine = float(all_similarities(pattern, target, step=settings.two_theta_step)["cosine"][0])
        crystals[name], patterns[name] = crystal, pattern[0]
        out.append(
            {"case": name, **{LATTICE_LABELS[p]: v for p, v in zip(LATTICE_NAMES, lattice[0].tolist(), strict=True)}}
            | {"V (Å³)": float(crystal.to_structures()[0].volume), "cosine similarity": cosine}
            | {"cosine stored in the sweep": stored, "structure match": YES_NO[bool(matched)]}
        )
    table = pd.DataFrame(out).set_index("case")
    table.index.name = None
    return table, crystals, patterns


def run_trajectories(study, structure: str, noise_type: str, level: float) -> dict[str, dict[str, np.ndarray]]:
    """Recorded loss curves of the analysed runs of one structure and level, by run label.

    ``study`` is a :class:`xrdnb.runs.StudyRun`; the cells are those of its analysed rows (the
    selected learning rate, the first seed), read with :func:`xrdnb.sweep.load_trajectories`.
    """
    from .sweep import is_finished, load_trajectories

    rows = study.rows
    part = rows[
        (rows["structure"] == structure) & (rows["noise_type"] == noise_type) & np.isclose(rows["noise_level"], level)
    ]
    part = part[part["seed"] == part["seed"].min()] if len(part) else part
    cells = {cell.cell_id: cell for cell in study.cells}
    ids = part.drop_duplicates("run").set_index("run")["cell_id"]
    out = {}
    for run in run_order(part):
        cell = cells.get(ids[run])
        if cell is not None and is_finished(study.results, cell):
            out[run] = load_trajectories(study.results, cell)
    return out
