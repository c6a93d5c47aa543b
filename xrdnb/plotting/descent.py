"""Gradient-descent outcomes (chapter 4).

Similarity against distance, lattice errors, SI Fig. S4, loss curves of many cells.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``) and takes
explicit data (tensors, rows); none reads results or runs an experiment.

The figures are sized for the book's text column (at most :data:`FIGURE_WIDTH` inches wide, so
that at the chapters' 110 dpi they are shown at no less than 75 % of their size): grids of many
runs flow into rows of three panels, and matplotlib's constrained layout makes room for a
``suptitle`` added afterwards.
"""

from __future__ import annotations

from .primitives import _legend_below, _numpy, draw_crystal, plot_loss_curve, plot_pattern

__all__ = [
    "FIGURE_WIDTH",
    "similarity_vs_distance",
    "lattice_errors",
    "lattice_change_bars",
    "hkl_label",
    "label_peaks",
    "fig_s4",
    "loss_curve_grid",
]


FIGURE_WIDTH = 7.6
"""Width in inches of the widest figure of chapter 4 (836 px at 110 dpi, in the 688 px text column)."""


def _panel_grid(n: int, ncols: int, *, height: float, **kw):
    """A figure of ``n`` panels in rows of ``ncols`` (constrained layout), the unused ones hidden; the panels."""
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(FIGURE_WIDTH, height * nrows + 0.6), squeeze=False, layout="constrained", **kw
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def similarity_vs_distance(rows, threshold: float = 0.9, *, ncols: int = 3):
    """End points of GD: cosine similarity to the target pattern against AMD distance to the truth.

    One panel per noise type and run of ``rows`` (analysed sweep rows with a ``run`` label column)
    that has valid end points, in rows of ``ncols``, coloured by the matcher's verdict; invalid end
    points are left out.
    """
    from ..gd_tables import run_order
    from ..vocabulary import NOISE_TYPES

    valid = rows[rows["valid"].astype(bool)]
    kinds = [t for t in NOISE_TYPES if t in set(rows["noise_type"])]
    panels = [
        (kind, run, sub)
        for kind in kinds
        for run in run_order(rows)
        if not (sub := valid[(valid["noise_type"] == kind) & (valid["run"] == run)]).empty
    ]
    fig, axes = _panel_grid(len(panels), ncols, height=2.3, sharey=True)
    ncols = min(ncols, len(panels))
    for k, (ax, (kind, run, sub)) in enumerate(zip(axes, panels, strict=True)):
        for matched, colour, label in [(True, "C2", "match"), (False, "C3", "no match")]:
            part = sub[sub["match"].astype(bool) == matched]
            ax.scatter(
                part["amd_distance"].clip(lower=1e-4),
                part["similarity_cosine"],
                s=10,
                color=colour,
                alpha=0.7,
                label=f"{label} ({len(part)})",
                edgecolor="none",
            )
        ax.axhline(threshold, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set(xlabel="AMD distance to truth (Å)", ylim=(-0.02, 1.02))
        ax.set_title(f"{kind}: {run}", fontsize=9)
        ax.set_ylabel("cosine similarity after GD" if k % ncols == 0 else "")
        ax.legend(fontsize=7, loc="lower left", handletextpad=0.2, borderpad=0.3)
    return fig


def lattice_errors(rows):
    """Lattice runs: each copy's largest length error (relative, %) and angle error (°), start against end.

    Two panels side by side, one legend (the runs) under them.
    """
    import matplotlib.pyplot as plt

    from ..gd_tables import run_order

    lattice = rows[rows["noise_type"] == "lattice"]
    fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH, 4.0), layout="constrained")
    columns = [("length", "%", "max_length_error_rel", 100.0), ("angle", "°", "max_angle_error", 1.0)]
    for ax, (kind, unit, column, scale) in zip(axes, columns, strict=True):
        start, end = scale * lattice[f"start_{column}"], scale * lattice[column]
        for j, run in enumerate(run_order(lattice)):
            sel = lattice["run"] == run
            ax.scatter(
                start[sel].clip(lower=1e-3),
                end[sel].clip(lower=1e-3),
                s=10,
                alpha=0.6,
                color=f"C{j}",
                label=run,
                edgecolor="none",
            )
        hi = 1.5 * max(float(start.max()), float(end.max()), 1e-3)
        ax.plot([1e-3, hi], [1e-3, hi], color="k", lw=0.8, label="no change")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel=f"largest {kind} error of the distorted start ({unit})",
            ylabel=f"largest {kind} error after GD ({unit})",
        )
        ax.set_title(f"cell {kind}s" + (" (relative)" if kind == "length" else ""), fontsize=9)
    _legend_below(fig, axes[:1])  # the runs and the diagonal, drawn alike in both panels
    return fig


def lattice_change_bars(ax, lattice, truth, *, colour="k", limit: float | None = None):
    """Bars of the change (%) of the six lattice parameters from ``truth``, each labelled with its value."""
    import numpy as np

    from ..vocabulary import LATTICE_NAMES, LATTICE_SYMBOLS

    values, reference = np.asarray(lattice, dtype=float), np.asarray(truth, dtype=float)
    change = 100 * (values - reference) / reference
    ax.bar([LATTICE_SYMBOLS[n] for n in LATTICE_NAMES], change, color=colour)
    for k, (v, d) in enumerate(zip(values, change, strict=True)):
        ax.text(
            k,
            d,
            f"{v:.2f}{' Å' if k < 3 else '°'}",
            rotation=90,
            fontsize=6.5,
            ha="center",
            va="bottom" if d >= 0 else "top",
        )
    ax.axhline(0, color="k", lw=0.6)
    limit = limit or max(16.0, 1.25 * float(np.abs(change).max()))
    ax.set(ylabel="change vs truth (%)", ylim=(-limit, limit))


def hkl_label(hkl):
    """Miller indices ``(h, k, l)`` with overbars for negative values, e.g. ``1 1̄ 2``."""
    return " ".join(f"{-int(x)}\u0304" if x < 0 else f"{int(x)}" for x in hkl)


def label_peaks(ax, crystal, pattern, settings=None, *, n: int = 5, colour="k", min_gap: float = 1.2):
    """Label the ``n`` strongest peaks of a crystal (:func:`xrdnb.peaks.peak_table`) with their hkl.

    Strongest first; a label closer than ``min_gap`` degrees of 2θ to one already placed is skipped.
    Returns the annotations.
    """
    from ..pattern import DEFAULT_SETTINGS
    from ..peaks import peak_table

    settings = settings or DEFAULT_SETTINGS
    values = _numpy(pattern)
    placed: list[float] = []
    out: list = []
    for _, p in peak_table(crystal, settings).nlargest(n, "intensity_scaled").iterrows():
        if any(abs(p.two_theta - t) < min_gap for t in placed):
            continue
        placed.append(p.two_theta)
        k = min(int(round((p.two_theta - settings.two_theta_min) / settings.two_theta_step)), len(values) - 1)
        out.append(
            ax.annotate(
                hkl_label((p.h, p.k, p.l)),
                (p.two_theta, float(values[k])),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color=colour,
            )
        )
    return out


def fig_s4(table, crystals: dict, patterns: dict, *, settings=None, n_labelled_peaks: int = 5):
    """SI Fig. S4: per case, the lattice change, the pattern (strongest peaks labelled) and the unit cell.

    ``table``, ``crystals``, ``patterns`` are those of :func:`xrdnb.gd_tables.example_panels`; the first case is
    the ground truth, drawn under the others' patterns (black) and cells (dashed grey).
    """
    import matplotlib.pyplot as plt

    from ..pattern import DEFAULT_SETTINGS

    settings = settings or DEFAULT_SETTINGS
    names = list(crystals)
    truth = crystals[names[0]].lattice[0]
    limit = max(16.0, 1.25 * max(float((100 * (c.lattice[0] - truth).abs() / truth).max()) for c in crystals.values()))
    two_theta = settings.grid()
    fig = plt.figure(figsize=(FIGURE_WIDTH, 2.3 * len(names) + 0.6), layout="constrained")
    grid = fig.add_gridspec(len(names), 3, width_ratios=[1.25, 3.0, 1.2])
    for i, name in enumerate(names):
        colour, crystal = (f"C{i}" if i else "k"), crystals[name]
        ax = fig.add_subplot(grid[i, 0])
        lattice_change_bars(ax, _numpy(crystal.lattice[0]), _numpy(truth), colour=colour, limit=limit)
        ax.set_title(name, fontsize=9)
        ax = fig.add_subplot(grid[i, 1])
        verdict = "match" if table.loc[name, "structure match"] == "yes" else "no match"
        plot_pattern(
            ax,
            two_theta,
            patterns[name],
            patterns[names[0]] if i else None,
            label=name,
            colour=colour,
            title=f"cosine similarity {table.loc[name, 'cosine similarity']:.2f} · {verdict}",
        )
        ax.set_ylim(-0.03, 1.25)
        ax.set_ylabel("intensity (max = 1)")
        ax.legend(loc="upper right", fontsize=7)  # the strongest peaks, and their labels, are on the left
        label_peaks(ax, crystal, patterns[name], settings, n=n_labelled_peaks, colour=colour)
        cell = fig.add_subplot(grid[i, 2], projection="3d")
        draw_crystal(cell, crystal, colour=colour, reference=crystals[names[0]] if i else None, images=False)
        cell.tick_params(labelsize=6)  # a little larger than draw_crystal's: the cell panel is small here
        for axis in "xyz":
            getattr(cell, f"{axis}axis").label.set_fontsize(6.5)
    return fig


def loss_curve_grid(curves: dict, *, ncols: int = 3):
    """Recorded losses of several runs: one panel per ``(noise_type, level)`` and run, a line per copy.

    ``curves`` maps ``(noise_type, level)`` to ``{run label: trajectories}``
    (:func:`xrdnb.gd_tables.run_trajectories`: ``steps (T,)``, ``loss (T, B)``); MSE on a log scale.
    The panels follow ``curves`` and, within one, its runs, in rows of ``ncols``; the first panel of
    each ``(noise_type, level)`` names the copies.
    """
    from ..vocabulary import NOISE_UNITS, RUN_LABELS

    loss_of = {label: loss for (loss, _), label in RUN_LABELS.items()}
    panels = [(kind, level, run, traj) for (kind, level), panel in curves.items() for run, traj in panel.items()]
    fig, axes = _panel_grid(len(panels), ncols, height=2.1)
    for k, (ax, (kind, level, run, traj)) in enumerate(zip(axes, panels, strict=True)):
        loss = traj["loss"]
        first = k == 0 or panels[k - 1][:2] != (kind, level)
        labels = [f"copy {b}" for b in range(loss.shape[1])] if first and loss.shape[1] <= 8 else None
        plot_loss_curve(
            ax, traj["steps"], loss, loss_name=loss_of.get(run.removesuffix(" + constraints")), labels=labels
        )
        if labels is not None:
            ax.legend(fontsize=7, handlelength=1.2, labelspacing=0.2, borderpad=0.3)
        unit = NOISE_UNITS[kind]
        ax.set_title(f"{kind} {level:g}{' ' + unit if unit else ''}: {run}", fontsize=8.5)
    return fig
