r"""The book's headline claims judged by written rules, and the reproduction at a glance.

The front page states four claims of the paper, the third in two parts (:data:`HEADLINE_CLAIMS`);
each has a written rule (:data:`HEADLINE_RULES`) on the analysed gradient-descent rows of a run
(for claim 4, the CHGNet relaxations of the same copies; for claim 3b, the symmetry-axis cuts of a
landscape set),
with hierarchical bootstrap intervals of rates and paired rate differences
(:func:`xrdnb.statistics.bootstrap_means`). The verdict vocabulary and
the claims of SI Tables S1/S2 are those of :mod:`xrdnb.verdicts`. :func:`reference_at_a_glance`
judges them on a shipped result set, only once its evaluation stage is complete, and
:func:`glance_markdown` gives the table the book's build writes into its front page.

>>> judge_headline_claims(None)["verdict"].unique().tolist()
['not computed']
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .statistics import bootstrap_means
from .verdicts import _PAIR_KEYS, _aggregate, _fmt, _interval, _run, _side, _verdict, judge_claims

__all__ = [
    "HEADLINE_CLAIMS",
    "HEADLINE_RULES",
    "HIGH_SIMILARITY",
    "OFTEN",
    "MODERATE",
    "NON_CONVEX",
    "judge_headline_claims",
    "at_a_glance",
    "reference_at_a_glance",
    "glance_markdown",
]

HIGH_SIMILARITY = 0.9
"""Cosine similarity above which an end point fits the pattern well (chapter 4's ``high_similarity``)."""

OFTEN = 0.25
"""The project's reading of "often", one end point in four (claim 1 of :data:`HEADLINE_RULES`)."""

NON_CONVEX = 0.5
"""The share of symmetry-axis cuts with several minima above which the constrained landscape is non-convex (3b)."""

MODERATE = (0.05, 0.1, 0.15, 0.2)
"""Lattice noise levels of moderately distorted structures, all but the smallest (0.01)."""

HEADLINE_CLAIMS = {
    "1": "The XRD loss landscape is highly non-convex: GD often ends at a high XRD similarity but the wrong structure.",
    "2": "Symmetry constraints help: projecting onto the crystal family raises the match rate.",
    "3": "Constraints are not enough: inside the constrained manifold GD still ends at wrong structures.",
    "3b": "Constraints are not enough, in the landscape itself: along the crystal family's free axes the cosine loss "
    "has several local minima (SI Fig. S3).",
    "4": "The energy landscape is smooth: a CHGNet relaxation of the same copies recovers the structure more often.",
}
"""The headline claims of the front page, each tested by the rule of the same key in :data:`HEADLINE_RULES`."""

HEADLINE_RULES = {
    "1": (
        f"Share of the unconstrained end points of all four losses at lattice noise {', '.join(map(str, MODERATE))} "
        f"that end above cosine {HIGH_SIMILARITY} without a structure match, with a hierarchical bootstrap "
        f'interval (structures, then copies). Interval above {OFTEN} ("often", one in four): agrees; below: '
        "disagrees; containing it: inconclusive."
    ),
    "2": (
        "Match rate of constrained − unconstrained cosine GD on the same copies, per lattice level ≥ 0.05, with "
        "paired bootstrap intervals. Every level above 0: agrees; one below 0: disagrees; some above and none "
        "below: partly; none above or below: inconclusive."
    ),
    "3": (
        "Share of the constrained cosine end points at lattice noise 0.1 and 0.2 without a match, with a "
        "bootstrap interval. Above 0.05: agrees (the constrained landscape still traps one copy in twenty); "
        "below 0.05: disagrees; containing it: inconclusive."
    ),
    "3b": (
        "Share of the symmetry-axis cuts of the cosine loss (each free parameter of the family, the others at the "
        "ground truth) with more than one interior minimum on every grid of the shipped landscape set (a count that "
        "holds at each resolution), with a hierarchical bootstrap interval (structures, then cuts). Interval above "
        f"{NON_CONVEX} (most free axes): agrees; below: disagrees; containing it: inconclusive."
    ),
    "4": (
        "Match rate of the free CHGNet relaxation − unconstrained cosine GD on the same copies, pooled over "
        "lattice noise 0.05–0.2, with a paired bootstrap interval. Above 0: agrees; below 0: disagrees; "
        "containing 0: inconclusive."
    ),
}
"""The written rule of each headline claim (:func:`judge_headline_claims`)."""


def _share_row(claim: str, values: np.ndarray, groups: np.ndarray, threshold: float, options: dict, what: str) -> dict:
    """A headline claim decided by whether a share's interval lies above ``threshold``."""
    if values.size == 0:
        return dict(
            claim=claim,
            verdict="not computed",
            statistic=math.nan,
            lo=math.nan,
            hi=math.nan,
            evidence=f"{what}: no end points",
        )
    lo, hi = _interval(
        bootstrap_means(values, groups, n_bootstrap=options["n_bootstrap"], seed=options["seed"]), options["confidence"]
    )
    side = _side(lo - threshold, hi - threshold)
    verdict = _verdict(side)
    share = float(values.mean())
    return dict(
        claim=claim,
        verdict=verdict,
        statistic=share,
        lo=lo,
        hi=hi,
        evidence=f"{what}: {share:.2f} [{_fmt(lo)}, {_fmt(hi)}] of {values.size}",
    )


def _paired_rates(free: pd.DataFrame, other: pd.DataFrame, options: dict) -> tuple[float, float, float, int]:
    both = free.merge(other, on=_PAIR_KEYS, suffixes=("_u", "_c"))
    if both.empty:
        return math.nan, math.nan, math.nan, 0
    u, c = both["match_u"].to_numpy(float), both["match_c"].to_numpy(float)
    reps = bootstrap_means(
        u, both["structure"].to_numpy(), paired=c, n_bootstrap=options["n_bootstrap"], seed=options["seed"]
    )
    lo, hi = _interval(reps, options["confidence"])
    return float(c.mean() - u.mean()), lo, hi, len(both)


def judge_headline_claims(
    rows: pd.DataFrame | None,
    relax_rows: pd.DataFrame | None = None,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    missing: str = "no gradient-descent rows",
    cuts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The headline claims (:data:`HEADLINE_CLAIMS`) judged by :data:`HEADLINE_RULES`.

    Parameters
    ----------
    rows
        analysed gradient-descent rows (one learning rate per run) with ``structure``,
        ``noise_type``, ``noise_level``, ``seed``, ``copy``, ``loss``, ``constrained``,
        ``match`` and ``similarity_cosine``; None or empty: every claim "not computed".
    relax_rows
        CHGNet rows of the same copies (:mod:`xrdnb.relax_sweep`, with ``constrained`` and
        ``match``) for claim 4; None: claim 4 "not computed".
    n_bootstrap, confidence, seed
        as for :func:`xrdnb.verdicts.judge_claims`.
    missing
        the evidence text of claims that cannot be judged because ``rows`` is None or empty
        (e.g. why there are none).
    cuts
        for claim 3b, the symmetry-axis cuts on nested grids of a complete landscape set
        (:meth:`xrdnb.landscape_sets.LandscapeSet.resolution` of ``"cuts"``); None: "not computed".

    Returns
    -------
    pandas.DataFrame
        one row per claim: ``claim``, ``verdict``, ``statistic`` with ``lo``/``hi``,
        ``evidence`` and ``rule``.
    """
    options = dict(n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    rows = pd.DataFrame() if rows is None else rows
    out = []
    if rows.empty:
        out = [
            dict(
                claim=k,
                verdict="not computed",
                statistic=math.nan,
                lo=math.nan,
                hi=math.nan,
                evidence=missing,
            )
            for k in ("1", "2", "3")
        ]
    else:
        lattice = rows[rows["noise_type"] == "lattice"]
        moderate = lattice[lattice["noise_level"].astype(float).round(6).isin(MODERATE)]
        free = moderate[~moderate["constrained"].astype(bool)]
        wrong_high = (free["similarity_cosine"].to_numpy(float) > HIGH_SIMILARITY) & ~free["match"].to_numpy(bool)
        out.append(
            _share_row(
                "1",
                wrong_high.astype(float),
                free["structure"].to_numpy(),
                OFTEN,
                options,
                f"unconstrained end points above cosine {HIGH_SIMILARITY} without a match",
            )
        )
        sides, texts, margins = [], [], []
        for level in MODERATE:
            diff, lo, hi, n = _paired_rates(
                _run(rows, "lattice", level, "cosine", False), _run(rows, "lattice", level, "cosine", True), options
            )
            sides.append(_side(lo, hi) if n else "not computed")
            margins.append((diff, lo, hi))
            texts.append(f"{level:g}: {_fmt(diff)} [{_fmt(lo)}, {_fmt(hi)}] ({sides[-1]})")
        worst = min(margins, key=lambda m: m[1] if np.isfinite(m[1]) else -math.inf)
        out.append(
            dict(
                claim="2",
                verdict=_aggregate(sides),
                statistic=worst[0],
                lo=worst[1],
                hi=worst[2],
                evidence="match rate, constrained − unconstrained cosine: " + "; ".join(texts),
            )
        )
        fixed = lattice[
            lattice["constrained"].astype(bool)
            & (lattice["loss"] == "cosine")
            & lattice["noise_level"].astype(float).round(6).isin((0.1, 0.2))
        ]
        out.append(
            _share_row(
                "3",
                ~fixed["match"].to_numpy(bool) * 1.0,
                fixed["structure"].to_numpy(),
                0.05,
                options,
                "constrained cosine end points at lattice 0.1, 0.2 without a match",
            )
        )
    if relax_rows is None or relax_rows.empty or rows.empty:
        out.append(
            dict(
                claim="4",
                verdict="not computed",
                statistic=math.nan,
                lo=math.nan,
                hi=math.nan,
                evidence=missing if rows.empty else "no CHGNet rows of the same copies",
            )
        )
    else:
        gd = pd.concat([_run(rows, "lattice", lv, "cosine", False) for lv in MODERATE])
        relax = relax_rows[(relax_rows["noise_type"] == "lattice") & ~relax_rows["constrained"].astype(bool)]
        diff, lo, hi, n = _paired_rates(gd, relax, options)
        side = _side(lo, hi) if n else "not computed"
        verdict = _verdict(side)
        out.append(
            dict(
                claim="4",
                verdict=verdict,
                statistic=diff,
                lo=lo,
                hi=hi,
                evidence=f"match rate, CHGNet − cosine GD over {n} paired copies: {_fmt(diff)} "
                f"[{_fmt(lo)}, {_fmt(hi)}]",
            )
        )
    out.append(_landscape_row(cuts, options))
    table = pd.DataFrame(out).set_index("claim").loc[list(HEADLINE_CLAIMS)].reset_index()
    return table.assign(rule=table["claim"].map(HEADLINE_RULES))


def _landscape_row(cuts: pd.DataFrame | None, options: dict) -> dict:
    """Claim 3b on the resolution rows of symmetry-axis cuts (rule 3b of :data:`HEADLINE_RULES`)."""
    if cuts is None or cuts.empty:
        return dict(
            claim="3b",
            verdict="not computed",
            statistic=math.nan,
            lo=math.nan,
            hi=math.nan,
            evidence="no complete landscape set",
        )
    cosine = cuts[cuts["loss"] == "cosine"]
    per_cut = cosine.groupby(["structure", "axis"], sort=False)["minima"].min().reset_index()
    grids = ", ".join(str(int(n)) for n in sorted(cosine["grid"].unique()))
    return _share_row(
        "3b",
        (per_cut["minima"].to_numpy() > 1).astype(float),
        per_cut["structure"].to_numpy(),
        NON_CONVEX,
        options,
        f"cosine symmetry-axis cuts with more than one interior minimum at {grids} points",
    )


def at_a_glance(
    headline: pd.DataFrame, correlations_judged: pd.DataFrame | None = None, *, run: str = ""
) -> pd.DataFrame:
    """The reproduction at a glance: each claim, the number that tests it here, the verdict and the run.

    ``headline`` is :func:`judge_headline_claims`; ``correlations_judged``, optionally,
    :func:`xrdnb.verdicts.judge_claims` (the claims of SI Tables S1/S2, listed under claim 2); ``run`` says
    which run made the numbers (e.g. :meth:`xrdnb.result_sets.ResultSet.describe`).
    """
    lines = []
    for r in headline.itertuples():
        lines.append({"claim": f"{r.claim}. {HEADLINE_CLAIMS[r.claim]}", "tested by": r.evidence, "verdict": r.verdict})
        if r.claim == "2" and correlations_judged is not None:
            for c in correlations_judged.itertuples():
                lines.append(
                    {
                        "claim": f"2{c.claim}. SI Tables S1/S2 claim {c.claim}",
                        "tested by": c.evidence,
                        "verdict": c.verdict,
                    }
                )
    table = pd.DataFrame(lines)
    return table.assign(run=run) if run else table


def reference_at_a_glance(path, *, landscapes=None, n_bootstrap: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """:func:`at_a_glance` of a shipped result set (:func:`xrdnb.result_sets.load_result_set`) and its run line.

    Claims are judged only on a complete evaluation stage (claim 4: a complete CHGNet stage);
    until then they are "not computed", with how far the run got as the evidence. Claim 3b is
    judged on the complete landscape set in the folder ``landscapes``
    (:func:`xrdnb.landscape_sets.load_landscape_set`), when there is one; the run line names it too.
    """
    from pathlib import Path

    from .landscape_sets import MANIFEST, load_landscape_set
    from .result_sets import load_result_set

    cuts, scale = None, ""
    if landscapes is not None and (Path(landscapes) / MANIFEST).is_file():
        found = load_landscape_set(landscapes)
        cuts = found.resolution("cuts") if found.is_complete() else None
        scale = f"; claim 3b: the {found.describe()}"
    reference = load_result_set(path)
    rows = reference.judged_rows()
    headline = judge_headline_claims(
        rows,
        reference.judged_relax(),
        n_bootstrap=n_bootstrap,
        seed=seed,
        missing=f"the reference run is unfinished ({reference.coverage_text()})",
        cuts=cuts,
    )
    judged = judge_claims(rows, n_bootstrap=n_bootstrap, seed=seed) if rows is not None else None
    return at_a_glance(headline, judged), reference.describe() + scale


def glance_markdown(table: pd.DataFrame, run: str) -> str:
    """:func:`at_a_glance` as a MyST pipe table followed by the line naming the run."""

    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| claim | tested here by | verdict |", "| --- | --- | --- |"]
    lines += [
        f"| {cell(r['claim'])} | {cell(r['tested by'])} | **{cell(r['verdict'])}** |" for _, r in table.iterrows()
    ]
    return "\n".join(lines) + f"\n\nNumbers from the {cell(run)}.\n"
