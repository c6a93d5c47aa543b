"""Figures the chapters and the explorer share: crystal cells, patterns, landscape slices, tables of rates.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``) and
takes explicit data (tensors, rows); none reads results or runs an experiment.
"""

from __future__ import annotations

__all__: list[str] = []


# ------------------------------------------------------------- chapter 6: AMD distance against XRD similarity

__all__ += ["correlation_scatter"]


def _dissimilarity(rows, loss: str):
    """1 − similarity of ``loss`` (the MSE itself for ``"mse"``), floored at 1e-16 for a log axis."""
    import numpy as np

    s = rows[f"similarity_{loss}"].to_numpy(dtype=float)
    return np.maximum(-s if loss == "mse" else 1.0 - s, 1e-16)


def correlation_scatter(rows, cells, noise_type: str, *, caption: str = "", fig=None):
    """AMD distance to the truth against each SI column's dissimilarity, one panel per (column, level).

    One point per copy at the end of GD, coloured by structure; log axes, y inverted so that up
    is more similar. Panel titles give our Pearson r (``cells``) and the paper's (Table S1).

    Parameters
    ----------
    rows
        analysed sweep rows (``structure``, ``noise_type``, ``noise_level``, ``loss``,
        ``constrained``, ``amd_distance``, ``similarity_<loss>``).
    cells
        :func:`xrdnb.tables.correlation_cells` of the same rows at the end of GD.
    noise_type
        ``"lattice"`` or ``"coordinates"``.
    caption
        a second title line, e.g. which run made the points (:meth:`xrdnb.runs.StudyRun.caption`).
    fig
        the figure to draw on (default: a new pyplot figure of a size that fits the grid).

    Returns
    -------
    matplotlib.figure.Figure or None
        None when ``rows`` hold no finite run of ``noise_type``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from .tables import COLUMN_RUNS, PAPER_TABLE_S1, SI_COLUMNS
    from .vocabulary import NOISE_LABELS, NOISE_UNITS, RUN_LABELS

    data = rows[(rows["noise_type"] == noise_type) & np.isfinite(rows["amd_distance"])]
    levels = sorted(data["noise_level"].unique())
    constrained = data["constrained"].astype(bool)
    columns = [
        c for c in SI_COLUMNS if ((data["loss"] == COLUMN_RUNS[c][0]) & (constrained == COLUMN_RUNS[c][1])).any()
    ]
    if not levels or not columns:
        return None
    if fig is None:
        fig = plt.figure(figsize=(2.2 * len(levels) + 1.4, 1.8 * len(columns) + 0.6), layout="constrained")
    axes = fig.subplots(len(columns), len(levels), squeeze=False, sharex=True, sharey="row")
    structures = sorted(data["structure"].unique())
    colour = {s: plt.cm.tab10(i % 10) for i, s in enumerate(structures)}
    ours = cells.set_index(["noise_type", "noise_level", "column"])["pearson"]
    label = NOISE_LABELS[noise_type]
    for j, level in enumerate(levels):
        for i, column in enumerate(columns):
            ax, (loss, con) = axes[i, j], COLUMN_RUNS[column]
            sub = data[np.isclose(data["noise_level"], level) & (data["loss"] == loss) & (constrained == con)]
            for s, group in sub.groupby("structure"):
                ax.scatter(group["amd_distance"], _dissimilarity(group, loss), s=9, color=colour[s], alpha=0.85)
            r = ours.get((noise_type, level, column), np.nan)
            paper = PAPER_TABLE_S1.loc[(label, level), column] if (label, level) in PAPER_TABLE_S1.index else np.nan
            r_text = f"{r:.2f}" if np.isfinite(r) else "n/a"
            paper_text = f"{paper:g}" if np.isfinite(paper) else "–"
            ax.set_title(f"σ = {level:g}: r = {r_text} (paper {paper_text})", fontsize=7)
            if i == len(columns) - 1:
                ax.set_xlabel("AMD distance to truth (Å)")
            if j == 0:
                ax.set_ylabel(("MSE" if loss == "mse" else "1 − similarity") + f"\n({RUN_LABELS[(loss, con)]} runs)")
            ax.tick_params(which="both", labelsize=6)
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_yscale("log")
    for i in range(len(columns)):
        axes[i, 0].invert_yaxis()  # shared per row: up = more similar
    handles = [plt.Line2D([], [], marker="o", ls="", color=colour[s], label=s) for s in structures]
    fig.legend(handles=handles, loc="outside right center", fontsize=7, title="structure")
    unit = NOISE_UNITS[noise_type] or "relative strain"
    title = f"{label} noise (σ in {unit}), end of GD: one point per copy; log axes, y inverted (up = more similar)"
    fig.suptitle(title + (f"\n{caption}" if caption else ""), fontsize=8)
    return fig


# ------------------------------------------------- cells, patterns, landscape slices, loss curves (chapters 2–5, 7)

__all__ += [
    "draw_crystal",
    "plot_pattern",
    "similarity_box",
    "draw_slice",
    "draw_slice_points",
    "draw_slice_path",
    "draw_slice_marker",
    "plot_loss_curve",
]


def _cell_edges():
    """``(8, 3)`` fractional corners of the unit cell and the 12 edges as pairs of corner indices."""
    import numpy as np

    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    edges = [(p, q) for p in range(8) for q in range(p + 1, 8) if np.abs(corners[p] - corners[q]).sum() == 1]
    return corners, edges


def _boundary_images(frac, tol: float = 1e-3):
    """Coordinates ``(N, 3)`` wrapped into [0, 1) plus the copies of atoms on faces, edges and corners; site indices."""
    import numpy as np

    corners, _ = _cell_edges()
    frac = frac - np.floor(frac)
    frac[frac > 1 - tol] -= 1.0
    points, sites = [], []
    for shift in corners:
        keep = np.all((shift == 0) | (np.abs(frac) < tol), axis=1)
        points.append(frac[keep] + shift)
        sites.append(np.flatnonzero(keep))
    return np.concatenate(points), np.concatenate(sites)


def draw_crystal(
    ax,
    crystal,
    index: int = 0,
    *,
    colour=None,
    reference=None,
    title: str = "",
    images: bool = True,
    view: tuple[float, float] = (18.0, -62.0),
):
    """The unit cell and atoms of copy ``index`` of a crystal on a 3-D axis, in Cartesian Å.

    Parameters
    ----------
    ax
        a 3-D axis (``projection="3d"``).
    crystal
        an :class:`xrdnb.crystal.Crystal`; lattice ``(B, 6)`` (Å, degrees), coordinates ``(B, N, 3)``.
    index
        the copy to draw.
    colour
        ``None``: black edges, atoms coloured by their majority element (sized by Z) with a
        legend; a matplotlib colour: edges and (small) atoms in that colour.
    reference
        a crystal whose cell (copy 0) is drawn dashed in grey, e.g. the ground truth.
    title
        the axis title.
    images
        also draw the periodic copies of atoms on faces, edges and corners.
    view
        ``(elevation, azimuth)`` in degrees.

    Returns
    -------
    dict
        ``"edges"`` and ``"reference"`` lists of lines, ``"atoms"`` list of scatter collections.
    """
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    from .lattice import lattice_matrix

    corners, edges = _cell_edges()
    out: dict = {"edges": [], "reference": [], "atoms": []}
    boxes = []
    if reference is not None:
        ref = lattice_matrix(reference.lattice[0].detach().cpu().double()).numpy()
        for p, q in edges:
            out["reference"] += ax.plot(*(corners[[p, q]] @ ref).T, color="grey", lw=0.8, ls="--")
        boxes.append(corners @ ref)
    matrix = lattice_matrix(crystal.lattice[index].detach().cpu().double()).numpy()  # rows: a, b, c (Å)
    for p, q in edges:
        out["edges"] += ax.plot(*(corners[[p, q]] @ matrix).T, color="k" if colour is None else colour, lw=0.8)
    boxes.append(corners @ matrix)
    frac = crystal.frac_coords[index].detach().cpu().double().numpy()
    points, sites = _boundary_images(frac) if images else (frac, np.arange(len(frac)))
    xyz = points @ matrix
    if colour is None:
        from pymatgen.core import Element

        major = crystal.occupancy.argmax(dim=1).cpu().numpy()[sites]
        for e, element in enumerate(crystal.elements):
            mask = major == e
            if mask.any():
                out["atoms"].append(
                    ax.scatter(
                        *xyz[mask].T,
                        s=10 + 1.2 * Element(element).Z,
                        color=f"C{e}",
                        edgecolor="k",
                        linewidth=0.3,
                        depthshade=False,
                        label=element,
                    )
                )
        ax.legend(fontsize=6, loc="upper left", handletextpad=0.1, borderpad=0.2, markerscale=0.6)
    else:
        out["atoms"].append(ax.scatter(*xyz.T, s=6, color=colour, depthshade=False))
    ax.set_box_aspect(np.ptp(np.concatenate(boxes), axis=0))
    ax.view_init(elev=view[0], azim=view[1])
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=5, pad=0)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(3))
    for axis, label in zip("xyz", ["x (Å)", "y (Å)", "z (Å)"], strict=True):
        getattr(ax, f"set_{axis}label")(label, fontsize=6, labelpad=-8)
    return out


def _numpy(x):
    import numpy as np

    return x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=float)


def plot_pattern(
    ax,
    two_theta,
    pattern,
    target=None,
    *,
    label: str = "current",
    target_label: str = "ground truth",
    colour="tab:red",
    window: tuple[float, float] | None = None,
    title: str | None = None,
):
    """A simulated pattern, optionally over a target pattern.

    Parameters
    ----------
    ax
        a 2-D axis.
    two_theta
        ``(P,)`` the 2θ grid in degrees.
    pattern, target
        ``(P,)`` intensities normalised to a maximum of 1 (tensors or arrays); the target
        (e.g. the ground truth) is drawn in black underneath.
    label, target_label
        legend entries.
    colour
        colour of ``pattern``.
    window
        2θ limits (degrees); default the whole grid.
    title
        the axis title.

    Returns
    -------
    dict
        ``"pattern"`` and ``"target"`` lines (``None`` without a target).
    """
    x = _numpy(two_theta)
    target_line = None
    if target is not None:
        (target_line,) = ax.plot(x, _numpy(target), color="black", lw=0.8, label=target_label)
    (line,) = ax.plot(x, _numpy(pattern), color=colour, lw=0.8, alpha=0.8, label=label)
    ax.set_xlim(*(window or (float(x[0]), float(x[-1]))))
    ax.set_ylim(-0.03, 1.1)
    ax.set_xlabel("2θ (°)")
    ax.set_ylabel("intensity (normalised, max = 1)")
    if title is not None:
        ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return {"pattern": line, "target": target_line}


def similarity_box(ax, similarities: dict, matched: bool | None = None):
    """The similarities (name → value, :data:`xrdnb.vocabulary.SIMILARITY_LABELS`) and a match verdict in a box.

    Returns the ``Text`` artist (top right of ``ax``).
    """
    from .vocabulary import SIMILARITY_LABELS

    lines = [f"{SIMILARITY_LABELS.get(k, k):<18s}{v:+.4f}" for k, v in similarities.items()]
    if matched is not None:
        lines.append(f"{'StructureMatcher':<18s}{'match' if matched else 'no match'}")
    return ax.text(
        0.99,
        0.97,
        "\n".join(lines),
        transform=ax.transAxes,
        ha="right",
        va="top",
        multialignment="left",
        family="monospace",
        fontsize=7.5,
        bbox=dict(boxstyle="round", facecolor="white", alpha=0.85, edgecolor="0.7"),
    )


def _slice_indices(sl) -> tuple[int, int]:
    from .vocabulary import LATTICE_NAMES

    i, j = (LATTICE_NAMES.index(n) for n in sl.names)
    return i, j


def draw_slice(ax, sl, values=None, *, cmap="viridis", vmin=None, vmax=None, norm=None, truth_colour="red"):
    """Heat map of a landscape slice with the ground truth (its centre) starred.

    Parameters
    ----------
    ax
        a 2-D axis.
    sl
        an :class:`xrdnb.landscape.Slice`: axes ``x`` ``(n1,)``, ``y`` ``(n2,)`` (Å or degrees).
    values
        ``(n1, n2)`` what to show; default ``sl.values`` (e.g. ``sl.channel("mse")`` or an
        energy in meV/atom).
    cmap, vmin, vmax, norm
        colour scale (see ``pcolormesh``).
    truth_colour
        face colour of the ground-truth star.

    Returns
    -------
    matplotlib.collections.QuadMesh
        for a colour bar (``fig.colorbar(mesh, ax=ax, label=...)``).
    """
    values = sl.values if values is None else values
    kw = {"norm": norm} if norm is not None else {"vmin": vmin, "vmax": vmax}
    mesh = ax.pcolormesh(
        _numpy(sl.x), _numpy(sl.y), _numpy(values).T, cmap=cmap, shading="nearest", rasterized=True, **kw
    )
    i, j = _slice_indices(sl)
    ax.plot(
        float(sl.center[i]),
        float(sl.center[j]),
        "*",
        color=truth_colour,
        ms=11,
        mec="white" if truth_colour != "white" else "black",
        mew=0.8,
        ls="none",
        label="ground truth",
    )
    from .vocabulary import LATTICE_LABELS

    ax.set(xlabel=LATTICE_LABELS[sl.names[0]], ylabel=LATTICE_LABELS[sl.names[1]])
    ax.set_xlim(float(sl.x.min()), float(sl.x.max()))
    ax.set_ylim(float(sl.y.min()), float(sl.y.max()))
    ax.grid(False)
    return mesh


def draw_slice_points(
    ax,
    sl,
    lattices,
    *,
    matched=None,
    marker: str = "o",
    edgecolor="red",
    label: str = "GD end points",
    size: float = 34,
    length_span: float = 0.2,
    angle_span: float = 20.0,
):
    """Lattices (e.g. gradient-descent end points) projected onto a slice plane.

    Parameters
    ----------
    ax
        the slice's axis (:func:`draw_slice`).
    sl
        the :class:`xrdnb.landscape.Slice`.
    lattices
        ``(M, 6)`` a, b, c (Å), α, β, γ (degrees).
    matched
        ``(M,)`` booleans: white faces for a match, black for none; ``None``: all white.
    marker, edgecolor, label, size
        style and legend entry (``", match"`` / ``", no match"`` is added with ``matched``).
    length_span, angle_span
        the slice's half-widths (the unit of the off-plane distance).

    Returns
    -------
    collections : list
        the scatter collections.
    off_plane : torch.Tensor
        ``(M,)`` distance of each point from the plane in half-widths
        (:func:`xrdnb.landscape.project_onto_slice`).
    """
    import numpy as np
    import torch

    from .landscape import project_onto_slice

    points = torch.as_tensor(lattices, dtype=sl.center.dtype)
    coords, off = project_onto_slice(points, sl.center, sl.names, length_span=length_span, angle_span=angle_span)
    coords = _numpy(coords)
    match = np.ones(len(coords), bool) if matched is None else np.asarray(matched, dtype=bool)
    out = []
    for ok, face in ((True, "white"), (False, "black")):
        sel = match == ok
        if sel.any():
            suffix = "" if matched is None else (", match" if ok else ", no match")
            out.append(
                ax.scatter(
                    coords[sel, 0],
                    coords[sel, 1],
                    marker=marker,
                    s=size,
                    c=face,
                    edgecolors=edgecolor,
                    linewidths=1.2,
                    label=label + suffix,
                    zorder=3,
                )
            )
    return out, off


def draw_slice_path(ax, sl, path, *, start=None, colour="white"):
    """A gradient-descent path on a slice: the slice's two parameters of each lattice.

    Parameters
    ----------
    ax
        the slice's axis.
    sl
        the :class:`xrdnb.landscape.Slice`.
    path
        ``(T, 6)`` lattices (Å, degrees), e.g. the start (projected if constrained) and one per step.
    start
        ``(6,)`` the lattice the run started from before any projection, ringed and joined to the path.

    Returns
    -------
    dict
        ``"path"`` line and ``"start"`` marker (``None`` without ``start``).
    """
    import numpy as np

    i, j = _slice_indices(sl)
    points = _numpy(path).reshape(-1, 6)
    start_marker = None
    if start is not None:
        first = _numpy(start).reshape(6)
        (start_marker,) = ax.plot(
            first[i], first[j], marker="o", ms=7, mfc="none", mec=colour, mew=1.5, ls="none", label="GD start"
        )
        points = np.concatenate([first[None], points])
    (line,) = ax.plot(points[:, i], points[:, j], color=colour, lw=1.2, label="GD path")
    return {"path": line, "start": start_marker}


def draw_slice_marker(ax, sl, lattice, *, label: str = "current", colour="tab:red"):
    """One lattice ``(6,)`` (Å, degrees) as a dot at its two slice parameters; returns the ``Line2D``."""
    i, j = _slice_indices(sl)
    point = _numpy(lattice).reshape(6)
    (marker,) = ax.plot(point[i], point[j], marker="o", ms=8, color=colour, mec="white", ls="none", label=label)
    return marker


def plot_loss_curve(ax, steps, loss, *, loss_name: str | None = None, log: bool | None = None, labels=None):
    """Loss against gradient-descent step, one line per copy.

    Parameters
    ----------
    ax
        a 2-D axis.
    steps
        ``(T,)`` step numbers.
    loss
        ``(T,)`` or ``(T, B)`` losses (lower is better).
    loss_name
        one of :data:`xrdnb.vocabulary.LOSS_NAMES`, for the axis label (``"loss (−cosine)"``).
    log
        logarithmic loss axis; default for MSE only.
    labels
        legend entries, one per copy (``None``: no legend).

    Returns
    -------
    list of Line2D
        empty, with a note on the axis, when there are no steps.
    """
    from .vocabulary import LOSS_LABELS

    values = _numpy(loss)
    if values.size == 0:
        ax.text(0.5, 0.5, "no gradient descent yet", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_xticks([])
        ax.set_yticks([])
        return []
    values = values.reshape(len(values), -1)
    x = _numpy(steps)
    lines = []
    for b in range(values.shape[1]):
        label = labels[b] if labels is not None else None
        lines += ax.plot(x, values[:, b], lw=1.2 if values.shape[1] == 1 else 0.9, color=f"C{b % 10}", label=label)
    if log if log is not None else loss_name == "mse":
        ax.set_yscale("log")
    ax.set_xlabel("GD step")
    ax.set_ylabel(f"loss ({LOSS_LABELS[loss_name]})" if loss_name else "loss")
    if labels is not None:
        ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    return lines


# ------------------------------------------------------------- chapter 3: landscape slices, cuts and GD end points

__all__ += [
    "mark_minima",
    "slice_panels",
    "END_POINT_STYLE",
    "slices_with_end_points",
    "axis_cut_panels",
    "similarity_slices",
]


def mark_minima(ax, sl, values, **style):
    """White dots at the strict local minima of the loss ``-values`` on a slice."""
    import torch

    from .landscape import strict_local_minima

    i, j = torch.nonzero(strict_local_minima(-values), as_tuple=True)
    style = {"ms": 2.5, "color": "white", "mec": "black", "mew": 0.4} | style
    ax.plot(sl.x[i].numpy(), sl.y[j].numpy(), "o", ls="none", **style)


def _roughness_text(grid, values) -> str:
    from .landscape import roughness

    r = roughness(-values, grid.center_index)
    return f"{r.n_minima} minima, basin {r.basin_fraction:.2f}"


def slice_panels(landscapes: dict, *, label: str, vmin=0.0, vmax=1.0, ncols: int = 5):
    """One heat map per slice (SI Fig. S2), with its strict local minima and roughness in the title.

    ``landscapes`` maps keys to :class:`xrdnb.landscape_tables.Landscape` of single-channel slices.
    """
    import matplotlib.pyplot as plt

    from .landscape_tables import slice_label

    n = len(landscapes)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, 3.0 * nrows), layout="constrained", squeeze=False)
    for ax, item in zip(axes.flat, landscapes.values(), strict=False):
        sl = item.grid
        mesh = draw_slice(ax, sl, sl.values, vmin=vmin, vmax=vmax)
        mark_minima(ax, sl, sl.values)
        ax.set_title(f"{slice_label(sl.names)}: {_roughness_text(sl, sl.values)}", fontsize=8)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes, shrink=0.6, label=label)
    return fig


END_POINT_STYLE = {False: ("o", "orange", "unconstrained GD"), True: ("^", "red", "constrained GD")}
"""Marker, edge colour and legend entry of gradient-descent end points on a slice, by ``constrained``."""


def slices_with_end_points(landscapes: dict, rows: dict, *, label: str, vmin=0.0, vmax=1.0, **span):
    """SI Fig. S3: one slice per structure with the GD end points projected onto it (white: match).

    ``landscapes`` maps keys to :class:`xrdnb.landscape_tables.Landscape`; ``rows`` maps the same keys to
    sweep rows (``final_*`` lattices, ``match``, ``constrained``; a key may be missing: no overlay).
    ``span``: the slices' ``length_span`` and ``angle_span``.
    """
    import matplotlib.pyplot as plt

    from .landscape_tables import slice_label
    from .vocabulary import LATTICE_NAMES

    fig, axes = plt.subplots(1, len(landscapes), figsize=(6.2 * len(landscapes), 5.0), squeeze=False)
    for ax, (key, item) in zip(axes[0], landscapes.items(), strict=True):
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
        ax.legend(fontsize=7, loc="lower left", framealpha=0.8)
    fig.tight_layout()
    return fig


def axis_cut_panels(cuts: dict, kind: str, *, channel: str = "cosine", ncols: int = 5):
    """One panel per structure: ``channel`` along its free lengths (``kind="length"``) or angles, minima dotted.

    ``cuts`` are :func:`xrdnb.landscape_tables.axis_cuts`; None when no cut is of that kind.
    """
    import matplotlib.pyplot as plt

    from .landscape import parameter_index, strict_local_minima
    from .landscape_tables import relative_axis
    from .vocabulary import SIMILARITY_LABELS

    chosen = {k: v for k, v in cuts.items() if (parameter_index(v.grid.name) < 3) == (kind == "length")}
    if not chosen:
        return None
    names = list(dict.fromkeys(k[0] for k in chosen))
    ncols = min(ncols, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols, 2.6 * nrows), squeeze=False, sharey=True)
    xlabel = "change of the free length along its axis (%)" if kind == "length" else "change of the free angle (°)"
    for ax, name in zip(axes.flat, names, strict=False):
        for item in (v for k, v in chosen.items() if k[0] == name):
            cut, y = item.grid, item.grid.channel(channel)
            x = relative_axis(cut)
            (line,) = ax.plot(x, y.numpy(), lw=1.0, label=cut.label)
            minima = strict_local_minima(-y).numpy()
            ax.plot(x[minima], y.numpy()[minima], "o", ms=3, color=line.get_color())
        ax.axvline(0, color="k", lw=0.6, ls=":")
        ax.set_title(f"{item.formula} ({item.family})", fontsize=8)
        ax.set(xlabel=xlabel, ylabel=f"{SIMILARITY_LABELS[channel]} similarity")
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def similarity_slices(landscape, losses=None):
    """One slice, one heat map per similarity channel, each titled with the roughness of its loss."""
    import matplotlib.pyplot as plt

    from .vocabulary import LOSS_NAMES, SIMILARITY_LABELS

    sl = landscape.grid
    losses = list(losses or sl.channels or LOSS_NAMES)
    fig, axes = plt.subplots(1, len(losses), figsize=(3.25 * len(losses), 3.4), sharey=True, squeeze=False)
    for ax, loss in zip(axes[0], losses, strict=True):
        values = sl.channel(loss)
        mesh = draw_slice(ax, sl, values)
        fig.colorbar(mesh, ax=ax, label=f"{SIMILARITY_LABELS[loss]} similarity")
        ax.set_title(f"{SIMILARITY_LABELS[loss]}: {_roughness_text(sl, values)}", fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------- chapter 4: gradient-descent outcomes and SI Fig. S4

__all__ += [
    "similarity_vs_distance",
    "lattice_errors",
    "lattice_change_bars",
    "hkl_label",
    "label_peaks",
    "fig_s4",
    "loss_curve_grid",
]


def similarity_vs_distance(rows, threshold: float = 0.9):
    """End points of GD: cosine similarity to the target pattern against AMD distance to the truth.

    One panel per noise type (rows) and run (columns) of ``rows`` (analysed sweep rows with a
    ``run`` label column), coloured by the matcher's verdict; invalid end points are left out.
    """
    import matplotlib.pyplot as plt

    from .gd_tables import run_order
    from .vocabulary import NOISE_TYPES

    valid = rows[rows["valid"].astype(bool)]
    kinds = [t for t in NOISE_TYPES if t in set(rows["noise_type"])]
    runs = run_order(rows)
    fig, axes = plt.subplots(
        len(kinds), len(runs), figsize=(2.6 * len(runs), 2.9 * len(kinds)), squeeze=False, sharey=True
    )
    for i, kind in enumerate(kinds):
        for j, run in enumerate(runs):
            ax, sub = axes[i, j], valid[(valid["noise_type"] == kind) & (valid["run"] == run)]
            if sub.empty:
                ax.set_visible(False)
                continue
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
            ax.set(
                title=f"{kind}: {run}",
                xlabel="AMD distance to truth (Å)",
                ylim=(-0.02, 1.02),
                ylabel="cosine similarity after GD" if j == 0 else None,
            )
            ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def lattice_errors(rows):
    """Lattice runs: each copy's largest length error (relative, %) and angle error (°), start against end."""
    import matplotlib.pyplot as plt

    from .gd_tables import run_order

    lattice = rows[rows["noise_type"] == "lattice"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
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
            title=f"cell {kind}s" + (" (relative)" if kind == "length" else ""),
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def lattice_change_bars(ax, lattice, truth, *, colour="k", limit: float | None = None):
    """Bars of the change (%) of the six lattice parameters from ``truth``, each labelled with its value."""
    import numpy as np

    from .vocabulary import LATTICE_NAMES, LATTICE_SYMBOLS

    values, reference = np.asarray(lattice, dtype=float), np.asarray(truth, dtype=float)
    change = 100 * (values - reference) / reference
    ax.bar([LATTICE_SYMBOLS[n] for n in LATTICE_NAMES], change, color=colour)
    for k, (v, d) in enumerate(zip(values, change, strict=True)):
        ax.text(
            k,
            d,
            f"{v:.2f}{' Å' if k < 3 else '°'}",
            rotation=90,
            fontsize=6,
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
    from .pattern import DEFAULT_SETTINGS
    from .peaks import peak_table

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

    from .pattern import DEFAULT_SETTINGS

    settings = settings or DEFAULT_SETTINGS
    names = list(crystals)
    truth = crystals[names[0]].lattice[0]
    limit = max(16.0, 1.25 * max(float((100 * (c.lattice[0] - truth).abs() / truth).max()) for c in crystals.values()))
    two_theta = settings.grid()
    fig = plt.figure(figsize=(12, 2.6 * len(names)))
    grid = fig.add_gridspec(len(names), 3, width_ratios=[1.1, 3.0, 1.4])
    for i, name in enumerate(names):
        colour, crystal = (f"C{i}" if i else "k"), crystals[name]
        ax = fig.add_subplot(grid[i, 0])
        lattice_change_bars(ax, _numpy(crystal.lattice[0]), _numpy(truth), colour=colour, limit=limit)
        ax.set_title(name)
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
        label_peaks(ax, crystal, patterns[name], settings, n=n_labelled_peaks, colour=colour)
        draw_crystal(
            fig.add_subplot(grid[i, 2], projection="3d"),
            crystal,
            colour=colour,
            reference=crystals[names[0]] if i else None,
            images=False,
        )
    fig.tight_layout()
    return fig


def loss_curve_grid(curves: dict):
    """Recorded losses of several runs: one row per ``(noise_type, level)``, one column per run, a line per copy.

    ``curves`` maps ``(noise_type, level)`` to ``{run label: trajectories}``
    (:func:`xrdnb.gd_tables.run_trajectories`: ``steps (T,)``, ``loss (T, B)``); MSE on a log scale.
    """
    import matplotlib.pyplot as plt

    from .vocabulary import NOISE_UNITS, RUN_LABELS

    loss_of = {label: loss for (loss, _), label in RUN_LABELS.items()}
    runs = list(dict.fromkeys(run for panel in curves.values() for run in panel))
    fig, axes = plt.subplots(len(curves), len(runs), figsize=(2.6 * len(runs), 2.7 * len(curves)), squeeze=False)
    for i, ((kind, level), panel) in enumerate(curves.items()):
        for j, run in enumerate(runs):
            ax = axes[i, j]
            if run not in panel:
                ax.set_visible(False)
                continue
            loss = panel[run]["loss"]
            labels = [f"copy {b}" for b in range(loss.shape[1])] if j == 0 and loss.shape[1] <= 8 else None
            plot_loss_curve(
                ax, panel[run]["steps"], loss, loss_name=loss_of.get(run.removesuffix(" + constraints")), labels=labels
            )
            unit = NOISE_UNITS[kind]
            ax.set_title(f"{kind} {level:g}{' ' + unit if unit else ''}: {run}", fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------- chapter 1: the XRD representation

__all__ += [
    "plot_form_factors",
    "plot_lorentz_polarization",
    "plot_peak_profiles",
    "plot_caglioti_width",
    "plot_difference",
    "plot_pymatgen_comparison",
    "plot_variants",
    "plot_setting_variants",
    "setting_panels",
    "plot_stacked",
    "plot_pattern_derivative",
]


def plot_form_factors(ax, s, f, elements, z, s_reflections=None, *, title: str = ""):
    """Atomic form factors ``f(s)`` per element, with the reflections' ``s`` as ticks on the axis.

    Parameters
    ----------
    s
        ``(M,)`` s = sinθ/λ in Å⁻¹.
    f
        ``(S, M)`` form factors (electrons) of the ``S`` elements.
    elements, z
        the ``S`` element symbols and atomic numbers.
    s_reflections
        ``(K,)`` s of the structure's reflections, drawn as ticks at f = 0.

    Returns
    -------
    list of lines (one per element, then the ticks if given).
    """
    x = _numpy(s)
    f = _numpy(f)
    lines = [ax.plot(x, f[e], label=f"{el} (Z = {int(z[e])})")[0] for e, el in enumerate(elements)]
    if s_reflections is not None:
        sr = _numpy(s_reflections)
        lines += ax.plot(sr, 0 * sr, "|", color="k", ms=10, label="reflections of the structure")
    ax.set(xlabel="s = sinθ/λ (Å⁻¹)", ylabel="f(s) (electrons)", xlim=(0, float(x[-1])), title=title)
    ax.legend(fontsize=8)
    return lines


def plot_lorentz_polarization(ax, two_theta, lp):
    """The Lorentz–polarization factor ``(M,)`` against 2θ ``(M,)`` (degrees) on a log axis; returns the line."""
    (line,) = ax.semilogy(_numpy(two_theta), _numpy(lp), color="C3")
    ax.set(xlabel="2θ (°)", ylabel="LP(θ)", title="Lorentz–polarization factor (unpolarised beam)")
    return line


def plot_peak_profiles(ax_lin, ax_log, offset, curves: dict, fwhm: float, window: float):
    """Peak profiles on a linear and a log axis: the FWHM on the first, a ±``window`` band on the second.

    Parameters
    ----------
    offset
        ``(M,)`` 2θ − 2θ₀ in degrees.
    curves
        name → profile ``(M,)`` (peak height 1), e.g. Gaussian, Lorentzian, pseudo-Voigt.
    fwhm
        the FWHM H (°); the linear axis spans ±4H.
    window
        half width (°) of the fast renderer's window, drawn as two vertical lines.

    Returns
    -------
    dict ``"linear"`` and ``"log"`` lists of profile lines, ``"window"`` the two vertical lines.
    """
    x = _numpy(offset)
    out: dict[str, list] = {"linear": [], "log": [], "window": []}
    for (name, y), style in zip(curves.items(), ["--", ":", "-", "-."], strict=False):
        out["linear"] += ax_lin.plot(x, _numpy(y), style, label=name)
        out["log"] += ax_log.semilogy(x, _numpy(y), style, label=name)
    ax_lin.set(
        xlim=(-4 * fwhm, 4 * fwhm), xlabel="2θ − 2θ₀ (°)", ylabel="profile (peak height = 1)", title="linear scale"
    )
    ax_lin.axhline(0.5, color="grey", lw=0.8)
    ax_lin.annotate(
        f"FWHM H = {fwhm:.3f}°", (fwhm / 2, 0.5), xytext=(fwhm, 0.62), arrowprops=dict(arrowstyle="->", lw=0.8)
    )
    ax_lin.legend(fontsize=8)
    out["window"] = [ax_log.axvline(sign * window, color="grey", lw=0.8) for sign in (-1, 1)]
    ax_log.text(window, 0.3, " window of the\n fast renderer", fontsize=8, va="top")
    ax_log.set(ylim=(1e-6, 2), xlabel="2θ − 2θ₀ (°)", ylabel="profile (log scale)", title="log scale: Lorentzian tails")
    return out


def plot_caglioti_width(ax, two_theta, fwhm, step: float, *, title: str = ""):
    """Caglioti FWHM ``(M,)`` (°) against 2θ ``(M,)``, with grid points per FWHM (grid ``step`` °) on the right.

    Returns ``(line, secondary_axis)``.
    """
    x = _numpy(two_theta)
    (line,) = ax.plot(x, _numpy(fwhm), color="C2")
    ax.set(xlabel="2θ (°)", ylabel="FWHM H (°)", xlim=(float(x[0]), float(x[-1])), title=title)
    right = ax.secondary_yaxis("right", functions=(lambda h: h / step, lambda n: n * step))
    right.set_ylabel(f"grid points per FWHM (step {step:g}°)")
    return line, right


def plot_difference(ax, two_theta, difference, *, ylabel: str, title: str = ""):
    """A difference of two patterns ``(P,)`` against 2θ ``(P,)``, scientific y ticks; returns the line."""
    x = _numpy(two_theta)
    (line,) = ax.plot(x, _numpy(difference), color="k", lw=0.7)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set(xlabel="2θ (°)", ylabel=ylabel, title=title, xlim=(float(x[0]), float(x[-1])))
    return line


def plot_pymatgen_comparison(axes, two_theta, detail: dict):
    """Three panels: pymatgen's sticks over xrdnb's (mirrored), both broadened patterns, their difference.

    Parameters
    ----------
    axes
        three axes, top to bottom.
    two_theta
        ``(P,)`` the grid (°).
    detail
        ``x_pm, y_pm`` (pymatgen's 2θ and intensity of 100), ``ours`` (a peak table with
        ``two_theta`` and ``intensity_scaled``), ``pm_pattern`` and ``ours_pattern`` ``(P,)``, as
        returned by :func:`xrdnb.comparisons.compare_with_pymatgen`.

    Returns
    -------
    dict ``"sticks"`` (two line collections), ``"patterns"`` (two lines), ``"difference"`` (a line).
    """
    ax_sticks, ax_pattern, ax_diff = axes
    x = _numpy(two_theta)
    ours = detail["ours"]
    sticks = [
        ax_sticks.vlines(detail["x_pm"], 0, detail["y_pm"], color="C1", lw=1.2, label="pymatgen XRDCalculator"),
        ax_sticks.vlines(
            ours.two_theta, 0, -ours.intensity_scaled, color="C0", lw=1.2, label="xrdnb peak_table (mirrored)"
        ),
    ]
    ax_sticks.axhline(0, color="k", lw=0.5)
    ax_sticks.set(ylabel="scaled intensity (of 100)", title="peak lists")
    ax_sticks.legend(fontsize=8, loc="upper right")
    patterns = [
        ax_pattern.plot(
            x, detail["pm_pattern"], color="C1", lw=2.5, alpha=0.6, label="pymatgen sticks, numpy pseudo-Voigt"
        )[0],
        ax_pattern.plot(x, detail["ours_pattern"], color="C0", lw=0.8, label="xrdnb simulate_pattern")[0],
    ]
    ax_pattern.set(ylabel="intensity (max = 1)", title="broadened patterns")
    ax_pattern.legend(fontsize=8, loc="upper right")
    diff = plot_difference(
        ax_diff,
        x,
        detail["ours_pattern"] - detail["pm_pattern"],
        ylabel="xrdnb − reference",
        title="difference (xrdnb with its default renderer minus the reference)",
    )
    return {"sticks": sticks, "patterns": patterns, "difference": diff}


def plot_variants(ax, two_theta, patterns: dict, *, centre: float, half_width: float, highlight=None, title: str = ""):
    """Patterns (label → ``(P,)``, max = 1) in a 2θ window ``centre ± half_width`` (°); ``highlight`` in bold black.

    Returns the lines, one per pattern.
    """
    x = _numpy(two_theta)
    window = (x > centre - half_width) & (x < centre + half_width)
    lines = []
    for label, y in patterns.items():
        bold = label == highlight
        lines += ax.plot(
            x[window], _numpy(y)[window], lw=1.8 if bold else 1.0, color="k" if bold else None, label=label
        )
    ax.set(xlabel="2θ (°)", ylabel="intensity (max = 1)", title=title)
    ax.legend(fontsize=7)
    return lines


def plot_setting_variants(
    ax, two_theta, patterns: dict, *, symbol: str, si_value, centre: float, half_width: float = 1.5
):
    """Patterns (setting value → ``(P,)``) around ``centre`` (°), the one at the SI value ``si_value`` in bold black.

    Returns the lines, one per pattern (via :func:`plot_variants`).
    """
    labels = {v: f"{symbol} = {v:g}" + (" (SI)" if v == si_value else "") for v in patterns}
    return plot_variants(
        ax,
        two_theta,
        {labels[v]: y for v, y in patterns.items()},
        centre=centre,
        half_width=half_width,
        highlight=f"{symbol} = {si_value:g} (SI)",
        title=f"vary {symbol}, peak at {centre:.2f}°",
    )


def setting_panels(
    axes, two_theta, study: dict, centres: dict, settings, lines: dict, *, zoom_centre: float, zoom_label: str = ""
):
    """Six panels of the instrument settings: U, V, W, η around their peaks, the X-ray lines stacked, a zoom.

    Parameters
    ----------
    axes
        six axes (e.g. a 2 × 3 grid's ``axes.flat``).
    two_theta
        ``(P,)`` the grid (°).
    study
        setting name (``"U"``, ``"V"``, ``"W"``, ``"eta"``, ``"wavelength"``) → the result of
        :func:`xrdnb.comparisons.setting_variants`.
    centres
        setting name → 2θ (°) of its panel's window (±1.5°).
    settings
        the SI settings (their values are drawn in bold).
    lines
        X-ray line name → wavelength (Å), the values of ``study["wavelength"]``; the first two are zoomed
        ±0.4° around ``zoom_centre``.

    Returns
    -------
    list of the lines of each panel.
    """
    axes = list(axes)
    out = [
        plot_setting_variants(
            ax,
            two_theta,
            study[p]["patterns"],
            symbol=SYMBOL.get(p, p),
            si_value=getattr(settings, p),
            centre=centres[p],
        )
        for ax, p in zip(axes[:4], ["U", "V", "W", "eta"], strict=True)
    ]
    named = {f"{name}, λ = {lam:g} Å": study["wavelength"]["patterns"][lam] for name, lam in lines.items()}
    out.append(plot_stacked(axes[4], two_theta, named, title="X-ray line, full range"))
    first_two = dict(list(named.items())[:2])
    title = f"{' vs '.join(list(lines)[:2])} at {zoom_label or f'{zoom_centre:.2f}°'}"
    out.append(plot_variants(axes[5], two_theta, first_two, centre=zoom_centre, half_width=0.4, title=title))
    return out


SYMBOL = {"eta": "η", "wavelength": "X-ray line"}
"""Display symbols of the ``XRDSettings`` fields that are not their own symbol."""


def plot_stacked(
    ax, two_theta, patterns: dict, *, offset: float = 1.1, base=None, base_label: str = "ground truth", title: str = ""
):
    """Patterns (label → ``(P,)``, max = 1) stacked ``offset`` apart, above an optional ``base`` pattern in black.

    Returns the lines (the base first, if given).
    """
    x = _numpy(two_theta)
    lines = [] if base is None else ax.plot(x, _numpy(base), color="k", lw=0.7, label=base_label)
    start = 0 if base is None else 1
    for i, (label, y) in enumerate(patterns.items(), start):
        lines += ax.plot(x, _numpy(y) + offset * i, lw=0.7, color=f"C{i - start}", label=label)
    ax.set(
        xlabel="2θ (°)",
        ylabel=f"intensity (max = 1, offset by {offset:g})",
        title=title,
        xlim=(float(x[0]), float(x[-1])),
        ylim=(-0.1, offset * (len(patterns) + start - 1) + 1.3),
    )
    ax.legend(fontsize=7, loc="upper right", ncol=2 if len(lines) > 3 else 1)
    return lines


def plot_pattern_derivative(
    axes, two_theta, pattern, derivative, finite_difference, *, centre: float, step: float, parameter: str = "a"
):
    """Three panels: the pattern, its derivative with a finite difference over it, a zoom ±1.5° around ``centre``.

    Parameters
    ----------
    two_theta, pattern, derivative, finite_difference
        ``(P,)``: the grid (°), the pattern (max = 1), ∂x/∂p by autograd and by a central difference (per Å).
    centre
        2θ (°) of the zoom.
    step
        the finite-difference step (Å), for the legend.

    Returns
    -------
    dict ``"pattern"``, ``"derivative"`` (two lines), ``"zoom"`` (three lines: AD, difference, pattern on a twin axis).
    """
    x, y, dx, fd = (_numpy(v) for v in (two_theta, pattern, derivative, finite_difference))
    span = (float(x[0]), float(x[-1]))
    out = {"pattern": axes[0].plot(x, y, color="k", lw=0.8)[0]}
    axes[0].set(ylabel="x (max = 1)", title="pattern", xlim=span)
    out["derivative"] = [
        axes[1].plot(x, dx, color="C0", lw=0.8, label="autograd (jvp, fast renderer)")[0],
        axes[1].plot(x, fd, "--", color="C1", lw=0.8, label=f"central difference, step {step:g} Å")[0],
    ]
    axes[1].set(
        ylabel=f"∂x/∂{parameter} (Å⁻¹)", title=f"derivative of every bin with respect to {parameter}", xlim=span
    )
    axes[1].legend(fontsize=8, loc="upper right")
    w = (x > centre - 1.5) & (x < centre + 1.5)
    out["zoom"] = [
        axes[2].plot(x[w], dx[w], color="C0", label=f"∂x/∂{parameter} (autograd)")[0],
        axes[2].plot(x[w][::10], fd[w][::10], "o", ms=3, color="C1", label="central difference")[0],
    ]
    axes[2].set(xlabel="2θ (°)", ylabel=f"∂x/∂{parameter} (Å⁻¹)")
    twin = axes[2].twinx()
    out["zoom"] += twin.plot(x[w], y[w], color="grey", lw=0.8, alpha=0.7)
    twin.set_ylabel("x (grey)")
    twin.grid(False)
    axes[2].legend(fontsize=8, loc="upper left")
    return out


# ------------------------------------------------------------- chapter 2: symmetry projectors and distortions

__all__ += ["plot_lattice_changes", "plot_displacements", "plot_similarity_boxes", "plot_noise_overlay"]


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
    list of the box-plot dicts, one per parameter.
    """
    import numpy as np

    from .noise_stats import PARAMETERS

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
    ax.legend(ncol=len(parameters), fontsize=7, loc="lower right")
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
    ax.legend(fontsize=7, loc="upper left")
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

    Returns the box-plot dict.
    """
    from .vocabulary import NOISE_UNITS, SIMILARITY_LABELS

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
    """
    out = {"stacked": plot_stacked(ax_full, two_theta, patterns, base=target, title=title)}
    if zoom_centre is not None:
        curves = {"ground truth": target, **patterns}
        out["side"] = plot_variants(
            ax_side, two_theta, curves, centre=zoom_centre, half_width=2.5, highlight="ground truth"
        )
        for line, colour in zip(out["side"][1:], range(len(patterns)), strict=True):
            line.set_color(f"C{colour}")
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
            title="difference to the ground-truth pattern",
        )
        ax_side.legend(fontsize=7)
    return out


# ------------------------------------------------------------- chapter 5: CHGNet energy slices (SI Fig. S5)

__all__ += ["energy_slices_figure"]


def energy_slices_figure(landscapes: dict, truths, *, title: str = "", ncol: int = 3):
    """SI Fig. S5: CHGNet energy slices, one panel per case, with the ground truth, the relaxed lattice and the minimum.

    Parameters
    ----------
    landscapes
        ``{(structure, p1, p2): (energy_slice, cosine_slice)}`` (:func:`xrdnb.relax_sweep.energy_landscapes`).
    truths
        relaxed ground truths (:func:`xrdnb.relax_sweep.load_truths`: ``structure``, ``relaxed_<p>``).
    title
        the figure's title.
    ncol
        panels per row at most.

    Returns
    -------
    matplotlib.figure.Figure
        energies in meV/atom above each slice's minimum, on a power-0.3 colour scale (the energy
        rises by orders of magnitude towards the corners).
    """
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt
    import torch

    ncol = min(ncol, len(landscapes))
    nrow = -(-len(landscapes) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.0 * ncol, 4.2 * nrow), squeeze=False)
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
        fig.colorbar(mesh, ax=ax, label="CHGNet energy − slice minimum (meV/atom)")
        mi, mj = divmod(int(energy.argmin()), energy.shape[1])
        ax.plot(relaxed.loc[name, f"relaxed_{p1}"], relaxed.loc[name, f"relaxed_{p2}"], "x", color="lime", ms=10, mew=2,
                label="CHGNet-relaxed lattice")  # fmt: skip
        ax.plot(float(sl.x[mi]), float(sl.y[mj]), "o", ms=6, mfc="none", mec="white", mew=1.5, label="slice minimum")
        ax.set_title(f"{name} {p1}–{p2}", fontsize=8)
        ax.legend(fontsize=6, loc="upper right", framealpha=0.7)
    for ax in axes.flat[len(landscapes) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
