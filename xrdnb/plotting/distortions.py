"""Symmetry projectors and distortions (chapter 2).

Lattice changes, displacements, similarity boxes, noise overlays.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``) and takes
explicit data (tensors, rows); none reads results or runs an experiment.
"""

from __future__ import annotations

from .primitives import _numpy, draw_crystal
from .representation import plot_stacked, plot_variants

__all__ = [
    "draw_crystal_gallery",
    "plot_lattice_changes",
    "plot_displacements",
    "plot_similarity_boxes",
    "plot_noise_overlay",
]


def draw_crystal_gallery(axes, crystals: dict, *, fontsize: float = 7):
    """One cell per 3-D axis (title → crystal, drawn by :func:`draw_crystal`); the axes left over are hidden.

    :func:`draw_crystal` labels its axes in 5–6 pt for a large figure; a gallery sized for the text
    column gets ``fontsize`` (pt) on the tick and axis labels and the legend instead, 1 pt more on the
    titles. Returns the drawings, one dict per crystal.
    """
    axes = list(axes)
    out = [draw_crystal(ax, crystal, title=title) for ax, (title, crystal) in zip(axes, crystals.items(), strict=False)]
    for ax in axes[: len(out)]:
        ax.tick_params(labelsize=fontsize, pad=0)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.label.set_fontsize(fontsize)
        for text in ax.get_legend().get_texts():
            text.set_fontsize(fontsize)
        ax.title.set_fontsize(fontsize + 1)
    for ax in axes[len(out) :]:
        ax.set_visible(False)
    return out


def _level_ticks(ax, levels):
    ax.set_xticks(range(len(levels)), [f"{lv:g}" for lv in levels])


def plot_lattice_changes(ax, changes, levels, parameters=None):
    """Box plots of ``|Δp| / p`` (%) per lattice parameter, grouped by lattice-noise level, log scale.

    Parameters
    ----------
    changes
        a table with a ``σ`` column and one column per parameter (relative changes in %), e.g. from
        :func:`xrdnb.noise_stats.distortion_records`.
    levels
        the σ values, one group of boxes each.
    parameters
        the parameter columns (default :data:`xrdnb.noise_stats.PARAMETERS`).

    Returns
    -------
    list
        the box-plot dicts, one per parameter.
    """
    import numpy as np

    from ..noise_stats import PARAMETERS

    parameters = list(parameters or PARAMETERS)
    width = 0.8 / len(parameters)
    out = []
    for j, p in enumerate(parameters):
        data = [np.abs(changes.loc[np.isclose(changes.σ, lv), p]).to_numpy() for lv in levels]
        positions = np.arange(len(levels)) + (j - (len(parameters) - 1) / 2) * width
        bp = ax.boxplot(
            data,
            positions=positions,
            widths=0.9 * width,
            patch_artist=True,
            showfliers=False,
            medianprops=dict(color="k", lw=0.8),
        )
        for box in bp["boxes"]:
            box.set(facecolor=f"C{j}", alpha=0.8, lw=0.5)
        ax.plot([], [], "s", color=f"C{j}", label=p)
        out.append(bp)
    ax.set_yscale("log")
    _level_ticks(ax, levels)
    ax.set(
        xlabel="lattice noise σ (dimensionless)",
        ylabel="|Δp| / p (%)",
        title="lattice noise: relative change of each parameter",
    )
    ax.legend(ncol=len(parameters), fontsize=8, loc="lower right")
    return out


def plot_displacements(ax, displacements, levels):
    """Box plots of the atom displacements ``|Δr|`` (Å) per coordinate-noise level, with the Maxwell mean σ√(8/π).

    ``displacements`` has columns ``σ`` and ``|Δr| (Å)``. Returns the observed mean displacement per level ``(L,)``.
    """
    import math

    import numpy as np

    data = [displacements.loc[np.isclose(displacements.σ, lv), "|Δr| (Å)"].to_numpy() for lv in levels]
    x = range(len(levels))
    ax.boxplot(data, positions=x, showfliers=False, medianprops=dict(color="k"))
    ax.plot(x, [lv * math.sqrt(8 / math.pi) for lv in levels], "D", color="C3", ms=5, label="expected mean σ√(8/π)")
    means = np.array([d.mean() for d in data])
    ax.plot(x, means, "x", color="k", ms=6, label="observed mean")
    ax.set_yscale("log")
    _level_ticks(ax, levels)
    ax.set(xlabel="coordinate noise σ (Å)", ylabel="|Δr| per atom (Å)", title="coordinate noise: atom displacements")
    ax.legend(fontsize=8, loc="upper left")
    return means


def plot_similarity_boxes(ax, values, levels, *, metric: str, noise_type: str):
    """Box plots of one similarity per noise level; MSE and (for coordinate noise) shortfalls on a log scale.

    Parameters
    ----------
    values
        one array of similarities per level (``metric`` of :data:`xrdnb.vocabulary.LOSS_NAMES`; MSE as −MSE).
    levels
        the σ values.
    metric, noise_type
        ``"mse"`` is drawn as MSE; for ``"coordinates"`` the others as ``1 − similarity``.

    Returns
    -------
    dict
        the box-plot dict.
    """
    from ..vocabulary import NOISE_UNITS, SIMILARITY_LABELS

    name = "MSE" if metric == "mse" else SIMILARITY_LABELS[metric]
    if metric == "mse":
        values, ylabel = [-v for v in values], "MSE (patterns with max = 1)"
    elif noise_type == "coordinates":  # close to 1: show the shortfall on a log scale
        values, ylabel = [1 - v for v in values], f"1 − {name} similarity"
    else:
        ylabel = f"{name} similarity"
    if metric == "mse" or noise_type == "coordinates":
        ax.set_yscale("log")
    bp = ax.boxplot(values, positions=range(len(levels)), showfliers=False, medianprops=dict(color="C3"))
    _level_ticks(ax, levels)
    unit = f" ({NOISE_UNITS[noise_type]})" if NOISE_UNITS.get(noise_type) else ""
    ax.set(xlabel=f"{noise_type} noise σ{unit}", ylabel=ylabel, title=f"{noise_type}: {name}")
    return bp


def plot_noise_overlay(
    ax_full, ax_side, two_theta, target, patterns: dict, *, zoom_centre: float | None = None, title: str = ""
):
    """Distorted patterns stacked above the ground truth, and beside them a zoom or the differences.

    Parameters
    ----------
    two_theta, target
        ``(P,)`` grid (°) and ground-truth pattern (max = 1).
    patterns
        label → distorted pattern ``(P,)``.
    zoom_centre
        2θ (°): the side panel zooms ±2.5° around it (peaks that move); ``None``: it shows each
        pattern minus the target (peaks that stay put).

    Returns
    -------
    dict ``"stacked"`` and ``"side"`` lists of lines.

    The stacked patterns are labelled inline (:func:`plot_stacked`), and the side panel has no legend: its
    curves have the colours of those labels (the ground truth in black); a legend would cover peaks.
    """
    out = {"stacked": plot_stacked(ax_full, two_theta, patterns, base=target, title=title, inline=True)}
    if zoom_centre is not None:
        curves = {"ground truth": target, **patterns}
        out["side"] = plot_variants(
            ax_side, two_theta, curves, centre=zoom_centre, half_width=2.5, highlight="ground truth"
        )
        for line, colour in zip(out["side"][1:], range(len(patterns)), strict=True):
            line.set_color(f"C{colour}")
        ax_side.get_legend().remove()
    else:
        x, t = _numpy(two_theta), _numpy(target)
        out["side"] = [
            ax_side.plot(x, _numpy(y) - t, lw=0.7, color=f"C{i}", label=label)[0]
            for i, (label, y) in enumerate(patterns.items())
        ]
        ax_side.set(
            xlabel="2θ (°)",
            ylabel="distorted − ground truth",
            xlim=(float(x[0]), float(x[-1])),
            title="difference to the ground truth",
        )
    return out
