"""Figures of chapter 8: recovery against cost, and each search's end points on a landscape slice."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .landscapes import END_POINT_STYLE
from .primitives import _legend_below, draw_slice, draw_slice_points

__all__ = ["recovery_vs_cost", "search_end_points"]


def recovery_vs_cost(table: pd.DataFrame, *, value: str = "recovered", cost: str = "seconds per copy"):
    """One point per method and constraint: ``value`` rate (%) with its interval against ``cost`` (log axis).

    ``table`` is :func:`xrdnb.search_sweep.recovery_table` (one noise level, or pass a part of it).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    for constrained, part in table.groupby("constrained"):
        marker, colour, _ = END_POINT_STYLE[bool(constrained)]
        y = part[f"{value} (%)"].to_numpy(float)
        err = np.vstack([y - part[f"{value} lo"].to_numpy(float), part[f"{value} hi"].to_numpy(float) - y])
        ax.errorbar(
            part[cost],
            y,
            yerr=np.clip(err, 0, None),
            fmt=marker,
            color=colour,
            capsize=3,
            label="constrained" if constrained else "free",
        )
        for x, yy, name in zip(part[cost], y, part["method"], strict=True):
            ax.annotate(name.replace("_", " "), (x, yy), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"{cost} (s)" if cost.startswith("seconds") else cost)
    ax.set_ylabel(f"{value} (%)")
    ax.set_ylim(-5, 105)
    _legend_below(fig, [ax])
    return fig


def search_end_points(landscape, rows_by_method: dict[str, pd.DataFrame], *, label: str, ncols: int = 3, **span):
    """The slice ``landscape`` (:class:`xrdnb.landscape_tables.Landscape`) once per method, its end points on it.

    ``rows_by_method`` maps a method to rows with ``final_*`` lattices, ``match`` and
    ``constrained`` (:mod:`xrdnb.search_sweep`); white markers are matches. ``span``: the
    slice's ``length_span`` and ``angle_span``.
    """
    import matplotlib.pyplot as plt

    from ..vocabulary import LATTICE_NAMES

    n = max(len(rows_by_method), 1)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.9 * ncols + 0.6, 2.0 * nrows + 0.9), squeeze=False, layout="constrained"
    )
    sl = landscape.grid
    image = None
    for ax, (method, rows) in zip(axes.ravel(), rows_by_method.items(), strict=False):
        image = draw_slice(ax, sl, sl.values, vmin=0.0, vmax=1.0)
        for constrained, group in rows.groupby(rows["constrained"].astype(bool)):
            marker, edge, name = END_POINT_STYLE[bool(constrained)]
            draw_slice_points(
                ax,
                sl,
                group[[f"final_{p}" for p in LATTICE_NAMES]].to_numpy(dtype=float),
                matched=group["match"].astype(bool).to_numpy(),
                marker=marker,
                edgecolor=edge,
                label=name.replace("GD", "search"),
                **span,
            )
        ax.set_title(method.replace("_", " "), fontsize=8)
    for ax in axes.ravel()[len(rows_by_method) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes, label=label, shrink=0.8)
    _legend_below(fig, axes.ravel())
    return fig
