"""The drawing pieces the chapters and the explorer share.

Crystal cells, patterns, landscape slices, loss curves.

Every function draws on a matplotlib ``Axes`` it is given (or returns a new ``Figure``) and takes
explicit data (tensors, rows); none reads results or runs an experiment.
"""

from __future__ import annotations

__all__ = [
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

    from ..lattice import lattice_matrix

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
    extent = np.ptp(np.concatenate(boxes), axis=0)
    ax.set_box_aspect(extent)
    ax.view_init(elev=view[0], azim=view[1])
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=5, pad=0)
    for axis, size in zip((ax.xaxis, ax.yaxis, ax.zaxis), extent, strict=True):
        # a short side of a long cell (NaInS2) has room for two labels, not three
        axis.set_major_locator(MaxNLocator(2 if size < 0.35 * extent.max() else 3))
    for axis, label in zip("xyz", ["x (Å)", "y (Å)", "z (Å)"], strict=True):
        getattr(ax, f"set_{axis}label")(label, fontsize=6, labelpad=-8)
    return out


def _legend_below(fig, axes, *, ncol: int = 3, fontsize: float = 7.5):
    """One legend for the figure, under its panels: the distinct labels of ``axes`` in order of appearance."""
    handles: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=ncol, fontsize=fontsize)


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
    from ..vocabulary import SIMILARITY_LABELS

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
    from ..vocabulary import LATTICE_NAMES

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
    from ..vocabulary import LATTICE_LABELS

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

    from ..landscape import project_onto_slice

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
    list of matplotlib.lines.Line2D
        empty, with a note on the axis, when there are no steps.
    """
    from ..vocabulary import LOSS_LABELS

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
