"""Landscape figures (chapters 3 and 5).

Slice panels with their minima, GD end points on slices, symmetry-axis cuts, CHGNet energy slices,
and the minima count against the grid resolution.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``) and takes
explicit data (tensors, rows); none reads results or runs an experiment.

The figures are sized for the book's text column: at most :data:`FIGURE_WIDTH` inches wide (at
the chapters' 110 dpi an image that wide is shown at no less than 75 % of its size), panels
reflowed into more rows rather than made narrower, and laid out by matplotlib's constrained
layout (which also makes room for a ``suptitle`` added afterwards).
"""

from __future__ import annotations

from .primitives import _legend_below, draw_slice, draw_slice_points

__all__ = [
    "FIGURE_WIDTH",
    "mark_minima",
    "slice_panels",
    "END_POINT_STYLE",
    "slices_with_end_points",
    "axis_cut_panels",
    "similarity_slices",
    "energy_slices_figure",
    "minima_by_resolution",
]


FIGURE_WIDTH = 7.6
"""Width in inches of the widest figure of chapters 3 and 5 (836 px at 110 dpi, in the 688 px text column)."""


def mark_minima(ax, sl, values, **style):
    """White dots at the strict local minima of the loss ``-values`` on a slice."""
    import torch

    from ..landscape import strict_local_minima

    i, j = torch.nonzero(strict_local_minima(-values), as_tuple=True)
    style = {"ms": 2.5, "color": "white", "mec": "black", "mew": 0.4} | style
    ax.plot(sl.x[i].numpy(), sl.y[j].numpy(), "o", ls="none", **style)


def _roughness_text(grid, values) -> str:
    from ..landscape import roughness

    r = roughness(-values, grid.center_index)
    return f"{r.n_minima} minima, basin {r.basin_fraction:.2f}"


def slice_panels(landscapes: dict, *, label: str, vmin=0.0, vmax=1.0, ncols: int = 3):
    """One heat map per slice (SI Fig. S2), with its strict local minima and roughness in the title.

    ``landscapes`` maps keys to :class:`xrdnb.landscape_tables.Landscape` of single-channel slices;
    ``ncols`` panels per row (the 15 slices of Fig. S2: 5 rows of 3), one colour bar for all.
    """
    import matplotlib.pyplot as plt

    from ..landscape_tables import slice_label

    n = len(landscapes)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    width = min(FIGURE_WIDTH, 2.35 * ncols + 0.6)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, (width - 0.6) / ncols * 0.95 * nrows), layout="constrained", squeeze=False
    )
    for ax, item in zip(axes.flat, landscapes.values(), strict=False):
        sl = item.grid
        mesh = draw_slice(ax, sl, sl.values, vmin=vmin, vmax=vmax)
        mark_minima(ax, sl, sl.values)
        ax.set_title(f"{slice_label(sl.names)}: {_roughness_text(sl, sl.values)}", fontsize=8)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes, shrink=min(0.6, 2.5 / nrows), aspect=30, label=label)
    return fig


END_POINT_STYLE = {False: ("o", "orange", "unconstrained GD"), True: ("^", "red", "constrained GD")}
"""Marker, edge colour and legend entry of gradient-descent end points on a slice, by ``constrained``."""


def slices_with_end_points(landscapes: dict, rows: dict, *, label: str, vmin=0.0, vmax=1.0, **span):
    """SI Fig. S3: one slice per structure with the GD end points projected onto it (white: match).

    ``landscapes`` maps keys to :class:`xrdnb.landscape_tables.Landscape`; ``rows`` maps the same keys to
    sweep rows (``final_*`` lattices, ``match``, ``constrained``; a key may be missing: no overlay).
    ``span``: the slices' ``length_span`` and ``angle_span``. One slice per row; one legend under them.
    """
    import matplotlib.pyplot as plt

    from ..landscape_tables import slice_label
    from ..vocabulary import LATTICE_NAMES

    n = len(landscapes)
    fig, axes = plt.subplots(n, 1, figsize=(6.4, 4.3 * n + 0.5), squeeze=False, layout="constrained")
    for ax, (key, item) in zip(axes[:, 0], landscapes.items(), strict=True):
        sl = item.grid
        fig.colorbar(draw_slice(ax, sl, sl.values, vmin=vmin, vmax=vmax), ax=ax, label=label)
        part = rows.get(key)
        for constrained, group in [] if part is None else part.groupby(part["constrained"].astype(bool)):
            marker, edge, name = END_POINT_STYLE[bool(constrained)]
            lattices = group[[f"final_{p}" for p in LATTICE_NAMES]].to_numpy(dtype=float)
            draw_slice_points(
                ax,
                sl,
                lattices,
                matched=group["match"].astype(bool).to_numpy(),
                marker=marker,
                edgecolor=edge,
                label=name,
                **span,
            )
        ax.set_title(
            f"{item.formula} ({item.family}), {slice_label(sl.names)}: {_roughness_text(sl, sl.values)}", fontsize=9
        )
    _legend_below(fig, axes[:, 0], ncol=2)
    return fig


def axis_cut_panels(cuts: dict, kind: str, *, channel: str = "cosine", ncols: int = 3):
    """One panel per structure: ``channel`` along its free lengths (``kind="length"``) or angles, minima dotted.

    ``cuts`` are :func:`xrdnb.landscape_tables.axis_cuts`; None when no cut is of that kind. ``ncols``
    panels per row; the axis labels are the figure's (one for all panels).
    """
    import matplotlib.pyplot as plt

    from ..landscape import parameter_index, strict_local_minima
    from ..landscape_tables import relative_axis
    from ..vocabulary import SIMILARITY_LABELS

    chosen = {k: v for k, v in cuts.items() if (parameter_index(v.grid.name) < 3) == (kind == "length")}
    if not chosen:
        return None
    names = list(dict.fromkeys(k[0] for k in chosen))
    ncols = min(ncols, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.45 * ncols + 0.3, 2.0 * nrows + 0.5), squeeze=False, sharey=True, layout="constrained"
    )
    xlabel = "change of the free length along its axis (%)" if kind == "length" else "change of the free angle (°)"
    for k, (ax, name) in enumerate(zip(axes.flat, names, strict=False)):
        for item in (v for key, v in chosen.items() if key[0] == name):
            cut, y = item.grid, item.grid.channel(channel)
            x = relative_axis(cut)
            (line,) = ax.plot(x, y.numpy(), lw=1.0, label=cut.label)
            minima = strict_local_minima(-y).numpy()
            ax.plot(x[minima], y.numpy()[minima], "o", ms=3, color=line.get_color())
        ax.axvline(0, color="k", lw=0.6, ls=":")
        ax.set_title(f"{item.formula} ({item.family})", fontsize=8)
        ax.set_ylabel(f"{SIMILARITY_LABELS[channel]} similarity" if k % ncols == 0 else "")
        ax.legend(fontsize=7, loc="best", handlelength=1.2, borderpad=0.3, labelspacing=0.2)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    fig.supxlabel(xlabel, fontsize=9)
    return fig


def similarity_slices(landscape, losses=None, *, ncols: int = 2):
    """One slice, one heat map per similarity channel, each titled with the roughness of its loss.

    ``ncols`` panels per row (four similarities: 2 × 2), each with its own colour bar.
    """
    import matplotlib.pyplot as plt

    from ..vocabulary import LOSS_NAMES, SIMILARITY_LABELS

    sl = landscape.grid
    losses = list(losses or sl.channels or LOSS_NAMES)
    ncols = min(ncols, len(losses))
    nrows = -(-len(losses) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.5 * ncols, 2.9 * nrows + 0.3), sharey=True, squeeze=False, layout="constrained"
    )
    for ax, loss in zip(axes.flat, losses, strict=False):
        values = sl.channel(loss)
        mesh = draw_slice(ax, sl, values)
        fig.colorbar(mesh, ax=ax, label=f"{SIMILARITY_LABELS[loss]} similarity")
        ax.set_title(f"{SIMILARITY_LABELS[loss]}: {_roughness_text(sl, values)}", fontsize=8)
    for ax in axes.flat[len(losses) :]:
        ax.set_visible(False)
    return fig


def energy_slices_figure(landscapes: dict, truths, *, title: str = "", ncol: int = 2):
    """SI Fig. S5: CHGNet energy slices, one panel per case, with the ground truth, the relaxed lattice and the minimum.

    Parameters
    ----------
    landscapes
        ``{(structure, p1, p2): (energy_slice, cosine_slice)}`` (:func:`xrdnb.relax_tables.energy_landscapes`).
    truths
        relaxed ground truths (:func:`xrdnb.relax_sweep.load_truths`: ``structure``, ``relaxed_<p>``).
    title
        the figure's title.
    ncol
        panels per row at most (six cases: 3 rows of 2); one legend under the panels.

    Returns
    -------
    matplotlib.figure.Figure
        energies in meV/atom above each slice's minimum, on a power-0.3 colour scale (the energy
        rises by orders of magnitude towards the corners).
    """
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt
    import torch

    from ..landscape_tables import slice_label

    ncol = min(ncol, len(landscapes))
    nrow = -(-len(landscapes) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.8 * ncol, 3.0 * nrow + 0.6), squeeze=False, layout="constrained")
    relaxed = truths.set_index("structure")
    for ax, ((name, p1, p2), (sl, _)) in zip(axes.flat, landscapes.items(), strict=False):
        energy = torch.nan_to_num(sl.values, nan=float("inf"))
        mesh = draw_slice(
            ax,
            sl,
            1e3 * (sl.values - energy.min()),
            cmap="magma_r",
            norm=mcolors.PowerNorm(0.3, vmin=0),
            truth_colour="cyan",
        )
        top = mesh.norm.vmax  # round ticks: on the power scale matplotlib's crowd at the top
        ticks = [t for t in (0, 10, 50, 100, 200, 500, 1000, 2000, 5000) if top is not None and t <= top] or None
        fig.colorbar(mesh, ax=ax, ticks=ticks, label="E − slice minimum (meV/atom)")
        mi, mj = divmod(int(energy.argmin()), energy.shape[1])
        ax.plot(relaxed.loc[name, f"relaxed_{p1}"], relaxed.loc[name, f"relaxed_{p2}"], "x", color="lime", ms=10, mew=2,
                label="CHGNet-relaxed lattice")  # fmt: skip
        ax.plot(float(sl.x[mi]), float(sl.y[mj]), "o", ms=7, mfc="none", mec="black", mew=1.2, label="slice minimum")
        ax.set_title(f"{name}, {slice_label((p1, p2))}", fontsize=9)
    for ax in axes.flat[len(landscapes) :]:
        ax.set_visible(False)
    _legend_below(fig, axes.flat[: len(landscapes)])
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def minima_by_resolution(table, losses=None, *, ncols: int = 2, label=None):
    """Minima count against grid size, one panel per loss, one line per landscape (log–log).

    Parameters
    ----------
    table
        :func:`xrdnb.landscape_tables.resolution_table` rows (``structure``, ``axis``, ``loss``,
        ``grid``, ``minima``).
    losses
        the panels, in order; default the table's losses.
    ncols
        panels per row.
    label
        ``label(loss) -> str`` panel titles; default :func:`xrdnb.vocabulary.run_label`.

    Returns
    -------
    matplotlib.figure.Figure
        a dashed guide per panel has slope 2, the growth of a count that scales with the grid
        points (minima finer than the step); a converged count is flat. Counts of 0 are not drawn.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from ..vocabulary import run_label

    losses = list(losses or dict.fromkeys(table["loss"]))
    label = label or (lambda loss: run_label(loss, False))
    ncols = min(ncols, len(losses))
    nrows = -(-len(losses) // ncols)
    width = min(FIGURE_WIDTH, 3.4 * ncols + 0.4)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, 2.4 * nrows + 0.8), squeeze=False, sharex=True, sharey=True, layout="constrained"
    )
    grids = np.array(sorted(table["grid"].unique()), dtype=float)
    for ax, loss in zip(axes.flat, losses, strict=False):
        part = table[table["loss"] == loss]
        for (structure, axis), rows in part.groupby(["structure", "axis"], sort=False):
            rows = rows.sort_values("grid")
            keep = rows["minima"] > 0
            ax.plot(rows["grid"][keep], rows["minima"][keep], "o-", ms=3, lw=1.0, label=f"{structure} {axis}")
        top = max(1.0, float(part["minima"].max()))
        ax.plot(grids, top * (grids / grids[-1]) ** 2, "k--", lw=0.8, label="∝ (grid points per axis)²")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(grids, [f"{g:.0f}" for g in grids])
        ax.minorticks_off()
        ax.set_title(label(loss), fontsize=8)
    for k, ax in enumerate(axes.flat):
        ax.set_visible(k < len(losses))
        if k + ncols >= len(losses):  # the lowest panel of its column: the x label goes there, above the legend
            ax.set_xlabel("grid points per axis", fontsize=8)
            ax.xaxis.set_tick_params(labelbottom=True)
    fig.supylabel("strict local minima (interior)", fontsize=9)
    _legend_below(fig, axes.flat[:1], ncol=4)
    return fig
