"""The SI's three qualitative claims about Tables S1/S2, checked on a table in the SI layout.

>>> from xrdnb.tables import PAPER_TABLE_S1
>>> evaluate_claims(PAPER_TABLE_S1)["verdict"].tolist()
['holds', 'holds', 'holds']
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .vocabulary import NOISE_LEVELS

__all__ = ["evaluate_claims"]


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if np.isfinite(value) else "n/a"


def _get(table: pd.DataFrame | None, label: str, level: float, column: str) -> float:
    if table is None:
        return math.nan
    return float(table.loc[(label, level), column])


def evaluate_claims(
    table: pd.DataFrame, lo: pd.DataFrame | None = None, hi: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Check the paper's three qualitative claims on one correlation table.

    1. The unconstrained cosine correlation falls from lattice noise 0.01 to 0.2.
    2. The constrained column is at least the unconstrained cosine column at every lattice
       level ≥ 0.05.
    3. The coordinate-noise correlations of cosine and entropy similarity are negative at
       the three smallest levels (0.001, 0.005, 0.01).

    Each claim is judged on the point estimates. The verdict is ``"holds"``,
    ``"does not hold"`` or ``"undetermined"`` (a needed value is NaN). With CIs, the
    ``strength`` column also says whether the claim still holds when the CIs are
    considered. For claim 1 that means the CI at 0.2 lies wholly below the one at 0.01.
    For claim 2, each constrained lower bound is at least the unconstrained upper bound.
    For claim 3, every upper bound is below 0.

    Parameters
    ----------
    table
        a 10 × 5 table in the SI layout (:func:`si_layout`, :data:`PAPER_TABLE_S1`, ...).
    lo, hi
        the CI bounds in the same layout (optional).

    Returns
    -------
    pandas.DataFrame
        one row per claim: ``claim``, ``verdict``, ``strength``, ``evidence`` (the numbers).

    Examples
    --------
    >>> from xrdnb.tables import PAPER_TABLE_S1, PAPER_TABLE_S2
    >>> evaluate_claims(PAPER_TABLE_S1)["verdict"].tolist()
    ['holds', 'holds', 'holds']
    >>> evaluate_claims(PAPER_TABLE_S2)["verdict"].tolist()
    ['holds', 'holds', 'holds']
    """
    cos, con, ent = "Cosine Similarity", "Cosine Similarity + Constraints", "Entropy Similarity"
    results = []

    def verdict(flags: list[bool], values: list[float]) -> str:
        if not all(np.isfinite(values)):
            return "undetermined"
        return "holds" if all(flags) else "does not hold"

    # (i)
    series = [_get(table, "Lattice", lv, cos) for lv in NOISE_LEVELS["lattice"]]
    first, last = series[0], series[-1]
    v = verdict([last < first], [first, last])
    lo_first, hi_last = _get(lo, "Lattice", 0.01, cos), _get(hi, "Lattice", 0.2, cos)
    strength = ""
    if v == "holds" and np.isfinite(lo_first) and np.isfinite(hi_last):
        strength = "CIs separated" if hi_last < lo_first else "CIs overlap"
    steps = sum(b < a for a, b in zip(series, series[1:]))
    evidence = (
        f"lattice cosine: {', '.join(_fmt(s, 2) for s in series)} at levels 0.01…0.2 "
        f"(0.2 − 0.01 = {_fmt(last - first, 2)}; falls in {steps} of 4 steps)"
    )
    results.append(
        dict(
            claim="(i) unconstrained cosine correlation falls from lattice 0.01 to 0.2",
            verdict=v,
            strength=strength,
            evidence=evidence,
        )
    )

    # (ii)
    levels = [lv for lv in NOISE_LEVELS["lattice"] if lv >= 0.05]
    pairs = [(_get(table, "Lattice", lv, con), _get(table, "Lattice", lv, cos)) for lv in levels]
    flat = [p for pair in pairs for p in pair]
    v = verdict([c >= u for c, u in pairs], flat)
    strength = ""
    if v == "holds" and lo is not None and hi is not None:
        sep = [_get(lo, "Lattice", lv, con) >= _get(hi, "Lattice", lv, cos) for lv in levels]
        strength = f"CIs separated at {sum(sep)} of {len(levels)} levels"
    evidence = "; ".join(f"{lv:g}: {_fmt(c, 2)} vs {_fmt(u, 2)}" for lv, (c, u) in zip(levels, pairs))
    n_ok = sum(c >= u for c, u in pairs)
    results.append(
        dict(
            claim="(ii) constrained ≥ unconstrained cosine at every lattice level ≥ 0.05",
            verdict=v,
            strength=strength,
            evidence=f"constrained vs unconstrained: {evidence} ({n_ok} of {len(levels)} levels)",
        )
    )

    # (iii)
    levels = NOISE_LEVELS["coordinates"][:3]
    values = {(col, lv): _get(table, "Coordinates", lv, col) for col in (cos, ent) for lv in levels}
    v = verdict([val < 0 for val in values.values()], list(values.values()))
    strength = ""
    if v == "holds" and hi is not None:
        neg = [_get(hi, "Coordinates", lv, col) < 0 for (col, lv) in values]
        strength = f"CI below 0 in {sum(neg)} of {len(values)} cells"
    evidence = "; ".join(
        f"{'cosine' if col == cos else 'entropy'}: " + ", ".join(_fmt(values[(col, lv)], 2) for lv in levels)
        for col in (cos, ent)
    )
    n_neg = sum(val < 0 for val in values.values())
    results.append(
        dict(
            claim="(iii) coordinate-noise cosine and entropy correlations are negative at levels 0.001, 0.005, 0.01",
            verdict=v,
            strength=strength,
            evidence=f"{evidence} at 0.001, 0.005, 0.01 ({n_neg} of {len(values)} negative)",
        )
    )
    return pd.DataFrame(results)
