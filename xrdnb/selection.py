"""Which sweep rows a table analyses, and what "recovered" means: one layer for every chapter.

A sweep (:func:`xrdnb.sweep.run_sweep`) may run several learning rates per noise type; the
SI tables report one run per (noise type, loss, projector) group. :func:`select` keeps one
learning rate per group by one of three documented rules, checked in this order:

1. **stated**: the caller names the learning rate of a noise type (``lattice_lr``,
   ``coordinate_lr``); the caption says so;
2. **only**: the group holds a single learning rate and no selection rows are given (the
   ``book`` and ``smoke`` profiles);
3. **selected**: :data:`LEARNING_RATE_RULE` on ``selection_rows``, copies of a separate seed
   that the tables never report (the ``paper`` profile's ``selection_seed``). Choosing on the
   evaluated copies would flatter every table, so it is refused. Where selection rows are
   given, they decide every run whose rate is not stated, also when the analysed rows hold
   only the chosen rate (a two-stage sweep, :meth:`xrdnb.sweep.SweepSpec.stages`).

:func:`recovered` is the study's one definition of a recovered structure; it names its
reference (the DFT ground truth, or that ground truth relaxed by CHGNet).

Examples
--------
>>> rows = pd.DataFrame({"noise_type": "lattice", "loss": "cosine", "constrained": False,
...                      "lr": [1e-3, 1e-3, 1e-2, 1e-2], "seed": 0, "match": [True, False, True, True]})
>>> sel = select(rows, lattice_lr=1e-2)
>>> len(sel.rows), sel.describe("lattice")
(2, 'lr 0.01 (stated)')
>>> held_out = rows.assign(seed=1)
>>> select(rows, selection_rows=held_out).learning_rates[["lr", "match_rate", "rule"]].to_dict("records")
[{'lr': 0.01, 'match_rate': 1.0, 'rule': 'selected'}]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .vocabulary import NOISE_LABELS, NOISE_TYPES, run_label

__all__ = [
    "GROUP",
    "LEARNING_RATE_RULE",
    "RECOVERY_LENGTH_TOL",
    "RECOVERY_ANGLE_TOL",
    "REFERENCES",
    "Selection",
    "choose_learning_rates",
    "select",
    "select_runs",
    "with_run_labels",
    "recovered",
]

GROUP = ("noise_type", "loss", "constrained")
"""The columns that define one run of the SI tables; each gets one learning rate."""

LEARNING_RATE_RULE = (
    "for each noise type, loss and projector setting, the learning rate whose selection copies (a seed the "
    "tables do not report) reach the highest structure-match rate; ties go to the smaller rate"
)
"""The rule by which :func:`choose_learning_rates` picks a learning rate (rule 3 of :func:`select`)."""

RECOVERY_LENGTH_TOL = 0.01
"""Largest relative error of a lattice length for a recovered structure (1 %; the project's choice)."""

RECOVERY_ANGLE_TOL = 1.0
"""Largest error of a lattice angle for a recovered structure, in degrees (the project's choice)."""

REFERENCES = {
    "truth": "the DFT ground truth (the benchmark structure)",
    "relaxed_truth": "the ground truth relaxed by CHGNet",
}
"""The references :func:`recovered` can compare with; ``relaxed_truth`` reads the ``relaxed_`` columns."""

_PREFIX = {"truth": "", "relaxed_truth": "relaxed_"}


def choose_learning_rates(selection_rows: pd.DataFrame) -> pd.DataFrame:
    """Apply :data:`LEARNING_RATE_RULE` to ``selection_rows``.

    Parameters
    ----------
    selection_rows
        sweep rows of the selection seed(s), with the :data:`GROUP` columns, ``lr`` and ``match``.

    Returns
    -------
    pandas.DataFrame
        one row per group: the :data:`GROUP` columns, ``lr``, its ``match_rate`` and ``copies``,
        ``candidates`` (every learning rate tried, as text) and ``rule`` = ``"selected"``.
    """
    missing = [c for c in (*GROUP, "lr", "match") if c not in selection_rows]
    if missing:
        raise ValueError(f"selection rows lack the columns {missing}")
    if selection_rows.empty:
        raise ValueError("no selection rows to choose learning rates from")
    rates = (
        selection_rows.groupby([*GROUP, "lr"], sort=True)["match"].agg(match_rate="mean", copies="size").reset_index()
    )
    out = []
    for _, group in rates.groupby(list(GROUP), sort=False):
        best = group[group["match_rate"] == group["match_rate"].max()].sort_values("lr").iloc[0]
        candidates = ", ".join(
            f"{lr:g}: {rate:.0%}" for lr, rate in zip(group["lr"], group["match_rate"], strict=False)
        )
        out.append({**best.to_dict(), "candidates": candidates, "rule": "selected"})
    return pd.DataFrame(out).reset_index(drop=True)


def _stated_or_only(rows: pd.DataFrame, stated: dict[str, float | None]) -> pd.DataFrame | None:
    """Rules 1 and 2 of :func:`select`, or None when a group has several rates and none is stated."""
    out = []
    for key, group in rows.groupby(list(GROUP), sort=False):
        noise_type = key[0]
        present = np.array(sorted(group["lr"].unique()), dtype=float)
        wanted = stated.get(noise_type)
        if wanted is not None:
            hits = present[np.isclose(present, wanted)]
            if not len(hits):
                raise ValueError(
                    f"no {noise_type} runs with lr = {wanted:g}; available: {', '.join(f'{v:g}' for v in present)}"
                )
            lr, rule = float(hits[0]), "stated"
        elif len(present) == 1:
            lr, rule = float(present[0]), "only"
        else:
            return None
        part = group[np.isclose(group["lr"], lr)]
        out.append(
            {
                **dict(zip(GROUP, key, strict=False)),
                "lr": lr,
                "match_rate": float(part["match"].mean()),
                "copies": len(part),
            }
            | {"candidates": ", ".join(f"{v:g}" for v in present), "rule": rule}
        )
    return pd.DataFrame(out)


def select_runs(rows: pd.DataFrame, learning_rates: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``rows`` at the learning rate ``learning_rates`` gives their group (others dropped).

    Groups without a learning rate in ``learning_rates`` are an error: a table must not silently lose a run.
    """
    chosen = {tuple(r[c] for c in GROUP): float(r["lr"]) for _, r in learning_rates.iterrows()}
    keys = list(zip(*(rows[c] for c in GROUP), strict=False))
    absent = sorted({k for k in keys if k not in chosen}, key=str)
    if absent:
        raise ValueError(f"no learning rate chosen for the runs {absent}")
    target = np.array([chosen[k] for k in keys], dtype=float)
    return rows[np.isclose(rows["lr"].to_numpy(dtype=float), target)]


@dataclass(frozen=True)
class Selection:
    """The rows a table analyses and how their learning rates were chosen.

    Attributes
    ----------
    rows
        the selected sweep rows, with a ``run`` display-label column (:func:`with_run_labels`).
    learning_rates
        one row per :data:`GROUP`: ``lr``, ``match_rate``, ``copies``, ``candidates``, ``rule``
        (``"stated"``, ``"only"`` or ``"selected"``).
    """

    rows: pd.DataFrame
    learning_rates: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """The learning rates for a reader: one row per run, readable columns, rates as ``%g``.

        Columns: noise, run, learning rate, rule, match rate on the selection copies (%, empty
        unless the rule is ``selected``), copies behind that rate, and the rates tried.
        """
        lr = self.learning_rates
        selected = lr["rule"] == "selected"
        rate = lr["match_rate"].astype(float) * 100
        return pd.DataFrame(
            {
                "noise": lr["noise_type"].map(NOISE_LABELS),
                "run": [run_label(r.loss, r.constrained) for r in lr.itertuples()],
                "learning rate": [f"{x:g}" for x in lr["lr"]],
                "rule": lr["rule"],
                "match on selection copies (%)": [f"{x:.0f}" if s else "" for x, s in zip(rate, selected, strict=True)],
                "copies": lr["copies"],
                "rates tried": lr["candidates"],
            }
        )

    def describe(self, noise_type: str | None = None) -> str:
        """Caption text: the learning rate(s) behind the rows of ``noise_type`` (all when None)."""
        parts = []
        for kind in [noise_type] if noise_type else NOISE_TYPES:
            table = self.learning_rates[self.learning_rates["noise_type"] == kind]
            if table.empty:
                continue
            rates = sorted(set(table["lr"]))
            rules = sorted(set(table["rule"]))
            if len(rates) == 1:
                text = f"lr {rates[0]:g} ({', '.join(rules)})"
            else:
                text = (
                    "lr "
                    + ", ".join(f"{run_label(r.loss, r.constrained)} {r.lr:g}" for r in table.itertuples())
                    + f" ({', '.join(rules)})"
                )
            parts.append(text if noise_type else f"{kind}: {text}")
        return "; ".join(parts)


def with_run_labels(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a ``run`` column: the display name of (``loss``, ``constrained``)."""
    labels = [
        run_label(loss, constrained) for loss, constrained in zip(rows["loss"], rows["constrained"], strict=False)
    ]
    return rows.assign(run=labels)


def select(
    rows: pd.DataFrame,
    *,
    selection_rows: pd.DataFrame | None = None,
    lattice_lr: float | None = None,
    coordinate_lr: float | None = None,
) -> Selection:
    """Keep one learning rate per run (:data:`GROUP`) by the rules of this module's docstring.

    Parameters
    ----------
    rows
        sweep rows to analyse (columns :data:`GROUP`, ``lr``, ``match``; ``seed`` if ``selection_rows`` is given).
    selection_rows
        rows of a separate seed for rule 3; their seeds must not occur in ``rows``.
    lattice_lr, coordinate_lr
        stated learning rates (rule 1), per noise type.

    Raises
    ------
    ValueError
        a stated rate that was not run; several rates, none stated and no selection rows; selection
        rows that share a seed with ``rows``.
    """
    stated = {"lattice": lattice_lr, "coordinates": coordinate_lr}
    if rows.empty:  # a chapter's filter kept no cell of the profile: nothing to select, nothing to label
        columns = [*GROUP, "lr", "match_rate", "copies", "candidates", "rule"]
        return Selection(rows.assign(run=pd.Series(dtype=str)), pd.DataFrame(columns=columns))
    table = None if selection_rows is not None else _stated_or_only(rows, stated)
    if table is None:
        if selection_rows is None:
            raise ValueError(
                "the rows hold several learning rates for a run and none is stated: pass selection_rows "
                "(copies of a separate seed) or lattice_lr / coordinate_lr"
            )
        shared = set(rows["seed"]) & set(selection_rows["seed"])
        if shared:
            raise ValueError(f"selection rows share the seeds {sorted(shared)} with the analysed rows")
        chosen = choose_learning_rates(selection_rows)
        # stated rates still win over the selection for their noise type
        fixed = _stated_or_only(rows[[stated.get(t) is not None for t in rows["noise_type"]]], stated)
        if fixed is not None and not fixed.empty:
            chosen = pd.concat([chosen[~chosen["noise_type"].isin(set(fixed["noise_type"]))], fixed], ignore_index=True)
        run = rows.set_index(list(GROUP))["lr"]
        for _, row in chosen.iterrows():
            key = tuple(row[list(GROUP)])
            if key in run.index and not np.isclose(run.loc[[key]], row["lr"]).any():
                raise ValueError(f"the analysed rows of run {key} lack the learning rate {row['lr']:g} chosen for it")
        table = chosen
    return Selection(with_run_labels(select_runs(rows, table)), table.reset_index(drop=True))


def recovered(
    rows: pd.DataFrame,
    reference: str = "truth",
    *,
    of: str = "final",
    length_tol: float = RECOVERY_LENGTH_TOL,
    angle_tol: float = RECOVERY_ANGLE_TOL,
) -> pd.Series:
    """Whether each row's final structure recovered ``reference``.

    Recovered means: the structure matches the reference (``StructureMatcher``, the ``match``
    column) and, for lattice noise, every lattice length is within ``length_tol`` (relative)
    and every angle within ``angle_tol`` (degrees) of the reference's. Coordinate noise leaves
    the lattice at the ground truth's, so there the match alone decides.

    Parameters
    ----------
    rows
        rows with ``noise_type`` and, for ``reference="truth"``, ``match``, ``max_length_error_rel``,
        ``max_angle_error``; for ``"relaxed_truth"`` the same names prefixed ``relaxed_``.
    reference
        a key of :data:`REFERENCES`.
    of
        ``"final"`` (the optimised structure) or ``"start"`` (the distorted start: the same columns
        prefixed ``start_``, e.g. ``start_match``).

    Returns
    -------
    pandas.Series
        bool, indexed like ``rows``.

    Examples
    --------
    >>> rows = pd.DataFrame({"noise_type": ["lattice", "lattice", "coordinates"], "match": [True, True, True],
    ...                      "max_length_error_rel": [0.005, 0.02, 0.03], "max_angle_error": [0.1, 0.1, 0.0]})
    >>> recovered(rows).tolist()
    [True, False, True]
    """
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; valid: {', '.join(REFERENCES)}")
    if of not in ("final", "start"):
        raise ValueError(f"of must be 'final' or 'start', got {of!r}")
    prefix = ("start_" if of == "start" else "") + _PREFIX[reference]
    names = [f"{prefix}match", f"{prefix}max_length_error_rel", f"{prefix}max_angle_error"]
    missing = [c for c in ["noise_type", *names] if c not in rows]
    if missing:
        raise ValueError(f"rows lack the columns {missing} needed to compare with {REFERENCES[reference]}")
    match, length, angle = (rows[c] for c in names)
    close = (length.to_numpy(dtype=float) <= length_tol) & (angle.to_numpy(dtype=float) <= angle_tol)
    lattice = (rows["noise_type"] == "lattice").to_numpy()
    return pd.Series(match.to_numpy(dtype=bool) & (close | ~lattice), index=rows.index, name="recovered")
