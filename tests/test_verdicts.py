"""Verdicts by stated rules: each rule decides on intervals, in both directions, and says when it cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xrdnb.verdicts import RULES, VERDICTS, judge_claims
from xrdnb.vocabulary import NOISE_LEVELS

SIGMA_D = np.sqrt((0.99**2) / 12)  # standard deviation of uniform(0.01, 1)


def _slope(r: float, noise: float = 0.05) -> float:
    """Slope of similarity on −AMD that gives a Pearson r (population value)."""
    return r * noise / (SIGMA_D * np.sqrt(1 - r * r))


def _cells(rng, noise_type, level, r, loss="cosine", constrained=False, n_structures=10, copies=8, d=None):
    n = n_structures * copies
    d = rng.uniform(0.01, 1, n) if d is None else d
    sign = 1.0 if r >= 0 else -1.0
    sim = 1 - sign * _slope(abs(r)) * d + rng.normal(0, 0.05, n)
    return pd.DataFrame(
        {
            "structure": np.repeat([f"S{i}" for i in range(n_structures)], copies),
            "copy": np.tile(np.arange(copies), n_structures),
            "seed": 0,
            "noise_type": noise_type,
            "noise_level": level,
            "loss": loss,
            "constrained": constrained,
            "amd_distance": d,
            f"similarity_{loss}": sim,
        }
    )


def _lattice(rng, values, constrained_values=None):
    parts = []
    for level, r in zip(NOISE_LEVELS["lattice"], values, strict=True):
        free = _cells(rng, "lattice", level, r)
        parts.append(free)
        if constrained_values is not None:
            r_c = constrained_values[NOISE_LEVELS["lattice"].index(level)]
            parts.append(_cells(rng, "lattice", level, r_c, constrained=True, d=free["amd_distance"].to_numpy()))
    return pd.concat(parts, ignore_index=True)


def _verdict(rows, claim, **kw):
    return judge_claims(rows, n_bootstrap=300, **kw).set_index("claim").loc[claim]


def test_a_falling_trend_agrees_and_a_rising_one_disagrees():
    rng = np.random.default_rng(0)
    assert _verdict(_lattice(rng, [0.95, 0.85, 0.7, 0.5, 0.3]), "(i)").verdict == "agrees"
    assert _verdict(_lattice(rng, [0.3, 0.5, 0.7, 0.85, 0.95]), "(i)").verdict == "disagrees"


def test_the_issue_sequence_that_falls_in_two_of_four_steps_does_not_agree():
    """(0.89, 0.21, 0.26, 0.44, 0.44) was printed 'holds' by the endpoint rule; ρ is about 0."""
    rng = np.random.default_rng(1)
    row = _verdict(_lattice(rng, [0.89, 0.21, 0.26, 0.44, 0.44]), "(i)")
    assert row.verdict == "inconclusive" and row.lo < 0 <= row.hi
    assert "Spearman ρ(level, value)" in row.evidence


def test_constrained_above_unconstrained_at_every_level_agrees_and_one_level_below_disagrees():
    rng = np.random.default_rng(2)
    free = [0.9, 0.5, 0.4, 0.3, 0.2]
    above = _lattice(rng, free, [0.9, 0.85, 0.8, 0.8, 0.75])
    assert _verdict(above, "(ii)").verdict == "agrees"
    below_once = _lattice(rng, free, [0.9, 0.85, 0.8, 0.8, -0.6])
    row = _verdict(below_once, "(ii)")
    assert row.verdict == "disagrees" and "contradicts" in row.evidence
    equal = _lattice(rng, free, free)
    assert _verdict(equal, "(ii)").verdict in ("inconclusive", "partly")


def test_negative_coordinate_correlations_agree_positive_ones_disagree():
    rng = np.random.default_rng(3)

    def rows(r):
        return pd.concat(
            [
                _cells(rng, "coordinates", lv, r, loss=loss)
                for loss in ("cosine", "entropy")
                for lv in (0.001, 0.005, 0.01)
            ]
        )

    assert _verdict(rows(-0.7), "(iii)").verdict == "agrees"
    assert _verdict(rows(0.7), "(iii)").verdict == "disagrees"


def test_missing_cells_are_not_computed_and_every_rule_is_written_down():
    empty = _lattice(np.random.default_rng(4), [0.9, 0.8, 0.7, 0.6, 0.5]).iloc[:0]
    table = judge_claims(empty, n_bootstrap=50)
    assert table["verdict"].tolist() == ["not computed"] * 3
    assert set(table["rule"]) == set(RULES.values()) and set(table["verdict"]) <= set(VERDICTS)
    with pytest.raises(ValueError, match="stage"):
        judge_claims(empty, stage="middle")


def test_verdicts_are_reproducible_from_the_seed():
    rows = _lattice(np.random.default_rng(5), [0.9, 0.7, 0.6, 0.5, 0.4])
    a, b = judge_claims(rows, n_bootstrap=100, seed=3), judge_claims(rows, n_bootstrap=100, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_the_verdict_table_colours_each_verdict_and_only_paper_protocol_runs_can_judge():
    from xrdnb.sweep import PROFILES, at_paper_protocol
    from xrdnb.verdicts import VERDICT_COLOURS, judge_by_stage, styled_verdicts, verdict_table

    rows = _lattice(np.random.default_rng(6), [0.95, 0.85, 0.7, 0.5, 0.3])
    rows = rows.assign(start_amd_distance=rows.amd_distance, start_similarity_cosine=rows.similarity_cosine)
    judged = judge_by_stage(rows, n_bootstrap=100)
    table = verdict_table(judged)
    assert table.shape == (3, 4) and table.index.tolist() == ["(i)", "(ii)", "(iii)"]
    assert table.loc["(i)", ("Pearson (Table S1)", "end of GD")].startswith("agrees: -")
    assert table.loc["(iii)", ("Spearman (Table S2)", "distorted start")] == "not computed"
    html = styled_verdicts(table, "caption").to_html()
    assert VERDICT_COLOURS["agrees"] in html
    assert at_paper_protocol(PROFILES["paper"]) and not at_paper_protocol(PROFILES["book"])


# ----------------------------------------------------------------------------- headline claims


def _outcomes(rng, p_free, p_fixed, sim=0.95, levels=(0.01, 0.05, 0.1, 0.15, 0.2), n_structures=10, copies=8):
    """Lattice-noise GD rows: unconstrained and constrained cosine runs of the same copies."""
    parts = []
    for level in levels:
        for constrained, p in ((False, p_free), (True, p_fixed)):
            n = n_structures * copies
            parts.append(
                pd.DataFrame(
                    {
                        "structure": np.repeat([f"S{i}" for i in range(n_structures)], copies),
                        "copy": np.tile(np.arange(copies), n_structures),
                        "seed": 0,
                        "noise_type": "lattice",
                        "noise_level": level,
                        "loss": "cosine",
                        "constrained": constrained,
                        "match": rng.random(n) < p,
                        "similarity_cosine": sim,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def test_bootstrap_means_resample_structures_and_pair_treatments():
    from xrdnb.statistics import bootstrap_means

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 20)
    clustered = np.repeat(rng.random(10) < 0.5, 20).astype(float)  # copies of a structure agree
    spread = np.percentile(bootstrap_means(clustered, groups, n_bootstrap=500), [2.5, 97.5])
    iid = np.percentile(bootstrap_means(clustered, None, n_bootstrap=500), [2.5, 97.5])
    assert np.diff(spread)[0] > 2 * np.diff(iid)[0]  # the hierarchical interval knows there are 10 units, not 200
    assert np.allclose(bootstrap_means(clustered, groups, n_bootstrap=50, paired=clustered), 0.0)
    assert np.isnan(bootstrap_means([np.nan], n_bootstrap=5)).all()
    with pytest.raises(ValueError, match="same length"):
        bootstrap_means([1.0, 2.0], [0], n_bootstrap=5)


def test_headline_claims_agree_disagree_and_say_when_they_cannot():
    from xrdnb.headline import HEADLINE_CLAIMS, HEADLINE_RULES, at_a_glance, judge_headline_claims

    rng = np.random.default_rng(1)
    trapped = judge_headline_claims(_outcomes(rng, 0.2, 0.7), n_bootstrap=300).set_index("claim")
    assert trapped.loc["1", "verdict"] == "agrees"  # 80 % wrong at cosine 0.95
    assert trapped.loc["2", "verdict"] == "agrees"
    assert trapped.loc["3", "verdict"] == "agrees"  # 30 % of the constrained copies still fail
    assert trapped.loc["4", "verdict"] == "not computed"
    easy = judge_headline_claims(_outcomes(rng, 1.0, 0.3, sim=0.5), n_bootstrap=300).set_index("claim")
    assert easy.loc["1", "verdict"] == "disagrees"  # nothing ends wrong above cosine 0.9
    assert easy.loc["2", "verdict"] == "disagrees"  # the constraint lowers the match rate
    solved = judge_headline_claims(_outcomes(rng, 0.3, 1.0), n_bootstrap=300).set_index("claim")
    assert solved.loc["3", "verdict"] == "disagrees"  # every constrained copy matches
    nothing = judge_headline_claims(None)
    assert set(nothing["verdict"]) == {"not computed"} and set(nothing["rule"]) == set(HEADLINE_RULES.values())
    assert list(at_a_glance(nothing, run="r")["run"]) == ["r"] * len(HEADLINE_CLAIMS)


def _cuts(minima_per_cut):
    """Resolution rows of cosine symmetry-axis cuts: one list of minima counts (one per grid) per cut."""
    rows = []
    for i, counts in enumerate(minima_per_cut):
        for grid, minima in zip((51, 101, 201), counts, strict=True):
            rows.append(
                {"structure": f"S{i // 2}", "axis": f"axis {i % 2}", "loss": "cosine", "grid": grid, "minima": minima}
            )
            rows.append({"structure": f"S{i // 2}", "axis": f"axis {i % 2}", "loss": "mse", "grid": grid, "minima": 1})
    return pd.DataFrame(rows)


def test_claim_3b_counts_cuts_with_several_minima_at_every_resolution():
    from xrdnb.headline import judge_headline_claims

    rough = judge_headline_claims(None, cuts=_cuts([[3, 4, 4]] * 9 + [[1, 1, 1]]), n_bootstrap=300).set_index("claim")
    assert rough.loc["3b", "verdict"] == "agrees" and rough.loc["3b", "statistic"] == pytest.approx(0.9)
    assert "at 51, 101, 201 points: 0.90" in rough.loc["3b", "evidence"]
    smooth = judge_headline_claims(None, cuts=_cuts([[1, 1, 2]] * 10), n_bootstrap=300).set_index("claim")
    assert smooth.loc["3b", "verdict"] == "disagrees"  # one grid with a single minimum: not a robust count
    assert judge_headline_claims(None).set_index("claim").loc["3b", "evidence"] == "no complete landscape set"


def test_claim_four_pairs_chgnet_with_gradient_descent_by_copy():
    from xrdnb.headline import judge_headline_claims

    rng = np.random.default_rng(2)
    gd = _outcomes(rng, 0.2, 0.5)
    relax = gd[~gd["constrained"]].assign(match=True)  # CHGNet recovers every copy GD started from
    judged = judge_headline_claims(gd, relax, n_bootstrap=300).set_index("claim")
    assert judged.loc["4", "verdict"] == "agrees" and judged.loc["4", "statistic"] == pytest.approx(0.8, abs=0.1)
    worse = judge_headline_claims(gd, relax.assign(match=False), n_bootstrap=300).set_index("claim")
    assert worse.loc["4", "verdict"] == "disagrees"
    unpaired = judge_headline_claims(gd, relax.assign(copy=relax["copy"] + 100), n_bootstrap=50).set_index("claim")
    assert unpaired.loc["4", "verdict"] == "not computed"  # other copies are no test
