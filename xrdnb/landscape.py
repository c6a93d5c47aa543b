r"""Loss landscapes over the lattice parameters: 2-D slices, 1-D cuts and a roughness measure.

SI §1.6 and §1.8 show the landscape of a loss on planes through the ground truth: two of
the six lattice parameters ``(a, b, c, α, β, γ)`` vary over a grid, the other four stay at
their ground-truth values, and so do the fractional coordinates. This module builds such
grids, evaluates any function of a batch of crystals on them *in batches* (chunks of grid
points go through the simulator as one :class:`~xrdnb.crystal.Crystal` batch), projects
6-D points (e.g. gradient-descent end points) onto a slice plane, and turns the "rough"
versus "smooth" impression into numbers.

**Grids** (a choice of this project, book/study-protocol.md: the SI does not state the ranges). Around
a centre lattice ``c`` (normally the ground truth), the parameter ``i`` takes ``n`` evenly
spaced values

.. math:: x_j = c_i + \Delta_i\,\frac{j - (n-1)/2}{(n-1)/2}, \qquad j = 0, \dots, n - 1,

with half-width :math:`\Delta_i` = ``length_span`` · :math:`c_i` for the lengths (default
20 %) and ``angle_span`` degrees for the angles (default 20°). For odd ``n`` the middle
value is the centre exactly, so the ground truth is a grid point.

**Cuts.** A 1-D cut moves one parameter; a *symmetry-axis* cut moves a free parameter of a
crystal family together with the parameters the family ties to it (cubic ``ā``: a = b = c;
hexagonal and tetragonal ``ā``: a = b), so it stays inside the constrained manifold of
:func:`xrdnb.symmetry.project_lattice`.

**Roughness** of a landscape of *loss* values (lower is better; −similarity for the XRD
metrics, the energy for CHGNet), on a grid with the ground truth at a known grid point:

* the number of **strict local minima**: interior grid points whose loss is lower than that of
  every neighbour (8 neighbours on a 2-D grid, 2 on a 1-D cut). Points on the grid's edge are not
  counted: their neighbours lie on one side only, and a "minimum" there may just be the slice's
  window cutting a slope that goes on downhill outside it. A plateau of exactly equal values
  lower than all points around it (e.g. two mirror images across the diagonal of the a–b slice
  of a cubic cell) is one minimum (:func:`plateau_labels`);
* the **basin fraction**: each grid point follows steepest descent on the grid (it moves to
  its lowest neighbour while that is strictly lower) until it stops at a local minimum; the
  basin fraction is the share of grid points that stop where the ground-truth point stops.

A convex bowl has one minimum and basin fraction 1. Non-finite values (lattices with no real
cell) are treated as +∞: never a minimum, never a destination, and not counted.

**Resolution.** Both numbers belong to a grid, not to the landscape: a minimum narrower than the
grid step is missed, and a landscape that is rough on the scale of the step gains minima with
every refinement. :func:`roughness_by_resolution` therefore evaluates them on *nested* grids,
subgrids of one fine grid of ``N`` points per axis that keep every ``s``-th point
(``n = (N − 1)/s + 1``, e.g. 9, 17 and 33 in a 33-point grid; :func:`nested_step`), so that
the coarse grids cost nothing and share the ground-truth point. It also reports the minima per
unit of the slice (:data:`DENSITY_UNIT`) and how fast the count grows under refinement
(:func:`growth_exponent`: 0 once the grid resolves every minimum, about the dimension 1 or 2
while the count grows with the number of grid points). :func:`converged` is the one rule
that says whether a measure has stopped changing (:data:`CONVERGENCE_TOLERANCE`).

>>> import torch
>>> x = torch.linspace(-1, 1, 21)
>>> roughness((x[:, None] ** 2 + x[None, :] ** 2), (10, 10))
Roughness(n_minima=1, basin_fraction=1.0, n_points=441)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from .crystal import Crystal
from .lattice import is_valid_lattice
from .losses import similarity_function, simulator_overrides
from .pattern import DEFAULT_SETTINGS, XRDSettings, simulate_pattern
from .symmetry import TIED_PARAMETERS, canonical_family, free_parameters
from .vocabulary import LATTICE_LABELS, LATTICE_NAMES, LATTICE_SYMBOLS

__all__ = [
    "LATTICE_NAMES",
    "LATTICE_LABELS",
    "LATTICE_SYMBOLS",
    "LENGTH_SPAN",
    "ANGLE_SPAN",
    "parameter_index",
    "half_width",
    "parameter_axis",
    "slice_lattices",
    "tied_parameters",
    "cut_lattices",
    "evaluate_lattices",
    "xrd_similarity_fn",
    "Slice",
    "Cut",
    "lattice_slice",
    "lattice_cut",
    "project_onto_slice",
    "grid_index",
    "plateau_labels",
    "strict_local_minima",
    "descent_destinations",
    "basin_fraction",
    "Roughness",
    "roughness",
    "nested_step",
    "nested_grids",
    "subgrid",
    "axis_step",
    "DENSITY_UNIT",
    "CONVERGENCE_TOLERANCE",
    "ResolutionRoughness",
    "roughness_by_resolution",
    "converged",
    "growth_exponent",
]

LENGTH_SPAN = 0.2
"""Default half-width of a slice in a length, relative to the centre (±20 %; a choice)."""

ANGLE_SPAN = 20.0
"""Default half-width of a slice in an angle, in degrees (±20°; a choice)."""

_ALIASES = {"α": "alpha", "β": "beta", "γ": "gamma"}

ValueFunction = Callable[[Crystal], torch.Tensor]


def parameter_index(name: str | int) -> int:
    """Position (0–5) of a lattice parameter in a ``(..., 6)`` lattice tensor.

    Parameters
    ----------
    name
        ``"a"``, ``"b"``, ``"c"``, ``"alpha"``, ``"beta"``, ``"gamma"`` (or ``"α"``,
        ``"β"``, ``"γ"``), or an index 0–5.

    Returns
    -------
    int
        the index.

    Raises
    ------
    ValueError
        for an unknown name; the message lists the valid ones.

    Examples
    --------
    >>> parameter_index("gamma"), parameter_index("β"), parameter_index(2)
    (5, 4, 2)
    """
    if isinstance(name, int) and not isinstance(name, bool):
        if 0 <= name < 6:
            return name
    elif isinstance(name, str):
        key = _ALIASES.get(name.strip(), name.strip().lower())
        if key in LATTICE_NAMES:
            return LATTICE_NAMES.index(key)
    raise ValueError(f"unknown lattice parameter {name!r}; valid: {', '.join(LATTICE_NAMES)} or 0-5")


def half_width(
    center: torch.Tensor, name: str | int, length_span: float = LENGTH_SPAN, angle_span: float = ANGLE_SPAN
) -> float:
    """Half-width Δ of a slice in one parameter: ``length_span·c`` (Å) for lengths, ``angle_span`` (°) for angles.

    Parameters
    ----------
    center
        centre lattice ``(6,)`` (Å, degrees).
    name
        the parameter (see :func:`parameter_index`).
    length_span
        relative half-width for a, b, c.
    angle_span
        half-width in degrees for α, β, γ.

    Returns
    -------
    float
        Δ in Å or degrees.
    """
    i = parameter_index(name)
    return float(length_span * center[i]) if i < 3 else float(angle_span)


def parameter_axis(
    center: torch.Tensor,
    name: str | int,
    n: int,
    *,
    length_span: float = LENGTH_SPAN,
    angle_span: float = ANGLE_SPAN,
) -> torch.Tensor:
    """``n`` evenly spaced values of one parameter, centre ± Δ (see the module docstring).

    Parameters
    ----------
    center
        centre lattice ``(6,)`` (Å, degrees).
    name
        the parameter (see :func:`parameter_index`).
    n
        number of values (≥ 2); for odd ``n`` the middle one is ``center[i]`` exactly.
    length_span, angle_span
        half-widths, see :func:`half_width`.

    Returns
    -------
    Tensor
        ``(n,)`` values in Å or degrees, dtype and device of ``center``.

    Examples
    --------
    >>> parameter_axis(torch.tensor([4.0, 4.0, 4.0, 90.0, 90.0, 90.0]), "alpha", 5)
    tensor([ 70.,  80.,  90., 100., 110.])
    """
    if n < 2:
        raise ValueError(f"need at least 2 grid points, got {n}")
    i = parameter_index(name)
    delta = half_width(center, i, length_span, angle_span)
    half = (n - 1) / 2.0
    offsets = (torch.arange(n, dtype=center.dtype, device=center.device) - half) / half
    return center[i] + delta * offsets


def slice_lattices(center: torch.Tensor, names: Sequence[str | int], axes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Lattices of a 2-D slice: ``center`` with parameters ``names`` set to every pair of ``axes`` values.

    Parameters
    ----------
    center
        centre lattice ``(6,)``.
    names
        two distinct parameters.
    axes
        their values, ``(n1,)`` and ``(n2,)``.

    Returns
    -------
    Tensor
        ``(n1, n2, 6)``; entry ``[i, j]`` has ``names[0] = axes[0][i]`` and
        ``names[1] = axes[1][j]`` ("ij" indexing).
    """
    i, j = (parameter_index(name) for name in names)
    if i == j:
        raise ValueError(f"a slice needs two different parameters, got {names[0]!r} twice")
    x, y = axes
    lattices = center.reshape(1, 1, 6).repeat(len(x), len(y), 1)
    lattices[..., i] = x[:, None]
    lattices[..., j] = y[None, :]
    return lattices


def tied_parameters(family: str, name: str | int) -> tuple[int, ...]:
    """Indices of the parameters that move together along the symmetry axis of a free parameter.

    Parameters
    ----------
    family
        crystal family (or alias, see :func:`xrdnb.symmetry.canonical_family`).
    name
        a free parameter of the family (:func:`xrdnb.symmetry.free_parameters`); its
        partners are those of :data:`xrdnb.symmetry.TIED_PARAMETERS`.

    Returns
    -------
    tuple of int
        e.g. ``(0, 1, 2)`` for cubic ``"a"`` (ā), ``(0, 1)`` for hexagonal ``"a"``,
        ``(2,)`` for tetragonal ``"c"``, ``(4,)`` for monoclinic ``"beta"``.

    Raises
    ------
    ValueError
        if ``name`` is not free in ``family``.

    Examples
    --------
    >>> tied_parameters("cubic", "a"), tied_parameters("monoclinic", "beta")
    ((0, 1, 2), (4,))
    """
    fam = canonical_family(family)
    key = LATTICE_NAMES[parameter_index(name)]
    if key not in free_parameters(fam):
        raise ValueError(
            f"{key!r} is not a free parameter of the {fam} family (free: {', '.join(free_parameters(fam))})"
        )
    return tuple(LATTICE_NAMES.index(p) for p in TIED_PARAMETERS.get(fam, {}).get(key, (key,)))


def cut_lattices(
    center: torch.Tensor, name: str | int, values: torch.Tensor, family: str | None = None
) -> torch.Tensor:
    """Lattices of a 1-D cut: ``center`` with one parameter (and, with ``family``, its tied partners) set to ``values``.

    Parameters
    ----------
    center
        centre lattice ``(6,)``.
    name
        the parameter that moves.
    values
        ``(n,)`` its values (Å or degrees).
    family
        if given, move along the family's symmetry axis (:func:`tied_parameters`): for a
        cubic cell ``"a"`` sets a = b = c = value (the ā axis).

    Returns
    -------
    Tensor
        ``(n, 6)`` lattices.
    """
    index = tied_parameters(family, name) if family else (parameter_index(name),)
    lattices = center.reshape(1, 6).repeat(len(values), 1)
    for i in index:
        lattices[:, i] = values
    return lattices


def evaluate_lattices(
    crystal: Crystal,
    lattices: torch.Tensor,
    value_fn: ValueFunction,
    *,
    chunk_size: int = 64,
) -> torch.Tensor:
    """Evaluate ``value_fn`` on ``crystal`` with each lattice of ``lattices``, ``chunk_size`` at a time.

    Each chunk is one batch ``crystal.with_lattice(chunk)`` (fractional coordinates of copy
    0 for every lattice), evaluated without gradients. Lattices with no real cell
    (:func:`xrdnb.lattice.is_valid_lattice`) are not evaluated and get NaN.

    Parameters
    ----------
    crystal
        the structure; copy 0 provides coordinates, occupancies and elements.
    lattices
        ``(..., 6)`` lattice parameters (Å, degrees), same dtype and device as ``crystal``.
    value_fn
        ``f(Crystal) -> (B,)`` or ``(B, C)``, e.g. :func:`xrd_similarity_fn`.
    chunk_size
        grid points per batch; ``1`` evaluates one structure at a time.

    Returns
    -------
    Tensor
        ``(...)`` or ``(..., C)`` values.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    shape = lattices.shape[:-1]
    flat = lattices.reshape(-1, 6).to(dtype=crystal.dtype, device=crystal.device)
    base = crystal.select(0)
    valid = is_valid_lattice(flat)
    index = torch.nonzero(valid).flatten()
    out = None
    with torch.no_grad():
        for start in range(0, len(index), chunk_size):
            rows = index[start : start + chunk_size]
            values = value_fn(base.with_lattice(flat[rows]))
            if out is None:
                out = torch.full(
                    (flat.shape[0],) + tuple(values.shape[1:]), float("nan"), dtype=values.dtype, device=values.device
                )
            out[rows] = values
    if out is None:  # nothing valid: ask for one value to learn the output's shape
        with torch.no_grad():
            probe = value_fn(base)
        out = torch.full(
            (flat.shape[0],) + tuple(probe.shape[1:]), float("nan"), dtype=probe.dtype, device=probe.device
        )
    return out.reshape(tuple(shape) + tuple(out.shape[1:]))


def xrd_similarity_fn(
    truth: Crystal,
    names: str | Sequence[str] = "cosine",
    settings: XRDSettings = DEFAULT_SETTINGS,
    *,
    cc_half_width: float = 1.0,
) -> ValueFunction:
    """``f(Crystal) -> similarity`` to the ground-truth pattern, for :func:`evaluate_lattices`.

    Each metric uses the simulator settings the study pairs with its loss
    (:func:`xrdnb.losses.simulator_overrides`: reflections clipped to ``|h|,|k|,|l| <= 6``
    for ``"mse"``); metrics that share settings share one simulation per batch.

    Parameters
    ----------
    truth
        the ground truth; its copy 0 gives the target pattern.
    names
        one similarity name of :data:`xrdnb.losses.SIMILARITIES` (``"cosine"``,
        ``"mse"`` for −MSE, ``"entropy"``, ``"cross_correlation"``) or a sequence of them.
    settings
        simulator settings of both the target and the evaluated patterns.
    cc_half_width
        half-width (degrees of 2θ) of the cross-correlation's triangle weight.

    Returns
    -------
    callable
        ``f(crystal) -> (B,)`` for one name, ``(B, C)`` (columns in the order of
        ``names``) for a sequence.
    """
    single = isinstance(names, str)
    name_list: list[str] = [names] if isinstance(names, str) else list(names)
    groups: dict[tuple, list[int]] = {}
    for k, name in enumerate(name_list):
        groups.setdefault(tuple(sorted(simulator_overrides(name).items())), []).append(k)
    plans = []
    for overrides, members in groups.items():
        group_settings = replace(settings, **dict(overrides)) if overrides else settings
        with torch.no_grad():
            target = simulate_pattern(truth.select(0), group_settings)[0]
        metrics = []
        for k in members:
            kwargs = (
                {"half_width": cc_half_width, "step": settings.two_theta_step}
                if name_list[k] == "cross_correlation"
                else {}
            )
            metrics.append((k, similarity_function(name_list[k], **kwargs)))
        plans.append((group_settings, target, metrics))

    def value_fn(crystal: Crystal) -> torch.Tensor:
        columns: list[torch.Tensor] = [torch.empty(0)] * len(name_list)
        for group_settings, target, metrics in plans:
            pattern = simulate_pattern(crystal, group_settings)
            for k, metric in metrics:
                columns[k] = metric(pattern, target.to(device=pattern.device))
        return columns[0] if single else torch.stack(columns, dim=-1)

    return value_fn


@dataclass(frozen=True)
class Slice:
    """A 2-D landscape slice.

    Attributes
    ----------
    names
        the two parameters that vary, e.g. ``("a", "gamma")``.
    x, y
        ``(n1,)`` and ``(n2,)`` their values (Å or degrees).
    values
        ``(n1, n2)`` or ``(n1, n2, C)``: ``values[i, j]`` at ``(x[i], y[j])``.
    center
        ``(6,)`` the lattice the slice goes through (the other four parameters).
    channels
        names of the ``C`` channels, or ``None`` for a single one.
    """

    names: tuple[str, str]
    x: torch.Tensor
    y: torch.Tensor
    values: torch.Tensor
    center: torch.Tensor
    channels: tuple[str, ...] | None = None

    @property
    def center_index(self) -> tuple[int, int]:
        """Grid point nearest the centre (exactly the centre for odd grids)."""
        i, j = (parameter_index(n) for n in self.names)
        return grid_index(self.x, float(self.center[i])), grid_index(self.y, float(self.center[j]))

    def channel(self, name: str) -> torch.Tensor:
        """``(n1, n2)`` values of one channel."""
        if self.channels is None:
            raise ValueError("this slice has a single channel")
        return self.values[..., self.channels.index(name)]


@dataclass(frozen=True)
class Cut:
    """A 1-D cut.

    Attributes
    ----------
    name
        the parameter that moves (with its tied partners when ``family`` is set).
    family
        crystal family of a symmetry-axis cut, or ``None`` for a single parameter.
    x
        ``(n,)`` values of the parameter (Å or degrees).
    values
        ``(n,)`` or ``(n, C)``.
    center
        ``(6,)`` the lattice the cut goes through.
    channels
        names of the ``C`` channels, or ``None``.
    """

    name: str
    family: str | None
    x: torch.Tensor
    values: torch.Tensor
    center: torch.Tensor
    channels: tuple[str, ...] | None = None

    @property
    def center_index(self) -> int:
        """Grid point nearest the centre."""
        return grid_index(self.x, float(self.center[parameter_index(self.name)]))

    @property
    def label(self) -> str:
        """``"ā (= a = b = c)"`` for a symmetry-axis cut with tied parameters, else the parameter's symbol (a, …, γ)."""
        if self.family and len(tied_parameters(self.family, self.name)) > 1:
            return (
                f"{self.name}\u0304 (= {' = '.join(LATTICE_NAMES[i] for i in tied_parameters(self.family, self.name))})"
            )
        return LATTICE_SYMBOLS[self.name]

    def channel(self, name: str) -> torch.Tensor:
        """``(n,)`` values of one channel."""
        if self.channels is None:
            raise ValueError("this cut has a single channel")
        return self.values[..., self.channels.index(name)]


def lattice_slice(
    crystal: Crystal,
    names: Sequence[str | int],
    value_fn: ValueFunction,
    *,
    n: int = 41,
    center: torch.Tensor | None = None,
    length_span: float = LENGTH_SPAN,
    angle_span: float = ANGLE_SPAN,
    chunk_size: int = 64,
    channels: Sequence[str] | None = None,
) -> Slice:
    """A 2-D slice of ``value_fn`` over two lattice parameters (``n × n`` grid, batched).

    Parameters
    ----------
    crystal
        the structure (copy 0: coordinates and, by default, the centre lattice).
    names
        the two parameters, e.g. ``("a", "b")``.
    value_fn
        ``f(Crystal) -> (B,)`` or ``(B, C)``, e.g. :func:`xrd_similarity_fn`.
    n
        grid points per axis (odd: the centre is on the grid).
    center
        ``(6,)`` lattice the slice goes through; default ``crystal.lattice[0]``.
    length_span, angle_span
        half-widths (see :func:`half_width`).
    chunk_size
        grid points per simulator batch.
    channels
        names of the ``C`` output channels of ``value_fn`` (for :meth:`Slice.channel`).

    Returns
    -------
    Slice
    """
    center = (crystal.lattice[0] if center is None else center).detach()
    keys = tuple(LATTICE_NAMES[parameter_index(name)] for name in names)
    axes = [parameter_axis(center, key, n, length_span=length_span, angle_span=angle_span) for key in keys]
    values = evaluate_lattices(crystal, slice_lattices(center, keys, axes), value_fn, chunk_size=chunk_size)
    pair = (keys[0], keys[1])
    return Slice(pair, axes[0], axes[1], values, center, tuple(channels) if channels is not None else None)


def lattice_cut(
    crystal: Crystal,
    name: str | int,
    value_fn: ValueFunction,
    *,
    family: str | None = None,
    n: int = 201,
    center: torch.Tensor | None = None,
    length_span: float = LENGTH_SPAN,
    angle_span: float = ANGLE_SPAN,
    chunk_size: int = 64,
    channels: Sequence[str] | None = None,
) -> Cut:
    """A 1-D cut of ``value_fn`` along one parameter or, with ``family``, along its symmetry axis.

    Parameters
    ----------
    crystal
        the structure (copy 0).
    name
        the parameter, e.g. ``"a"``; with ``family="cubic"`` the cut is along ā (a = b = c).
    value_fn
        ``f(Crystal) -> (B,)`` or ``(B, C)``.
    family
        crystal family for a symmetry-axis cut (:func:`cut_lattices`).
    n
        number of points (odd: the centre is on the cut).
    center
        ``(6,)`` lattice the cut goes through; default ``crystal.lattice[0]``.
    length_span, angle_span
        half-widths (see :func:`half_width`).
    chunk_size
        points per simulator batch.
    channels
        names of the output channels of ``value_fn``.

    Returns
    -------
    Cut
    """
    center = (crystal.lattice[0] if center is None else center).detach()
    key = LATTICE_NAMES[parameter_index(name)]
    x = parameter_axis(center, key, n, length_span=length_span, angle_span=angle_span)
    values = evaluate_lattices(crystal, cut_lattices(center, key, x, family), value_fn, chunk_size=chunk_size)
    fam = canonical_family(family) if family else None
    return Cut(key, fam, x, values, center, tuple(channels) if channels is not None else None)


def project_onto_slice(
    points: torch.Tensor,
    center: torch.Tensor,
    names: Sequence[str | int],
    *,
    length_span: float = LENGTH_SPAN,
    angle_span: float = ANGLE_SPAN,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal projection of 6-D lattices onto a slice plane, and how far off the plane they are.

    Parameters
    ----------
    points
        ``(M, 6)`` lattices, e.g. gradient-descent end points.
    center
        ``(6,)`` the lattice the slice goes through.
    names
        the slice's two parameters.
    length_span, angle_span
        the slice's half-widths, the unit of the off-plane distance.

    Returns
    -------
    coords
        ``(M, 2)`` the two in-plane parameters (Å or degrees).
    off_plane
        ``(M,)`` the largest deviation of the four other parameters from ``center``, in
        units of their half-widths Δ (0: in the plane; 1: as far off as the slice's edge).
    """
    idx = [parameter_index(name) for name in names]
    others = [i for i in range(6) if i not in idx]
    points = points.to(dtype=center.dtype, device=center.device)
    deltas = torch.tensor(
        [half_width(center, i, length_span, angle_span) for i in others], dtype=center.dtype, device=center.device
    )
    off = ((points[:, others] - center[others]).abs() / deltas).amax(dim=-1)
    return points[:, idx], off


def grid_index(axis: torch.Tensor, value: float) -> int:
    """Index of the grid value nearest ``value`` on a 1-D ``axis`` ``(n,)``."""
    return int(torch.argmin((axis - value).abs()))


def _neighbour_shifts(ndim: int) -> list[tuple[int, ...]]:
    """All non-zero offsets in {−1, 0, 1}^ndim (2 in 1-D, 8 in 2-D)."""
    shifts: list[tuple[int, ...]] = [()]
    for _ in range(ndim):
        shifts = [s + (d,) for s in shifts for d in (-1, 0, 1)]
    return [s for s in shifts if any(s)]


def _neighbour_stack(values: torch.Tensor, fill: float | int) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """``(S, *shape)`` the value of each point's neighbour at each of the ``S`` offsets (``fill`` off the grid)."""
    padded = torch.full(tuple(n + 2 for n in values.shape), fill, dtype=values.dtype, device=values.device)
    padded[tuple(slice(1, -1) for _ in values.shape)] = values
    shifts = _neighbour_shifts(values.ndim)
    views = []
    for s in shifts:
        slices = tuple(slice(1 + d, 1 + d + n) for d, n in zip(s, values.shape, strict=True))
        views.append(padded[slices])
    return torch.stack(views), shifts


def _padded_neighbours(loss: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """``(S, *shape)`` neighbour values (+∞ off the grid and for non-finite values) and the ``S`` offsets."""
    clean = torch.where(torch.isfinite(loss), loss, torch.full_like(loss, math.inf))
    return _neighbour_stack(clean, math.inf)


def plateau_labels(loss: torch.Tensor) -> torch.Tensor:
    """Which plateau each point of a 1-D or 2-D grid belongs to: connected sets of exactly equal finite values.

    Two neighbouring points (as in :func:`strict_local_minima`) with the same finite value are in
    the same plateau; a point with no equal neighbour, or a non-finite one, is a plateau of its own.
    Exact ties are not rare on a slice: the a–b slice of a cubic cell is symmetric under a ↔ b,
    so two mirror-image points next to each other across the diagonal have the same loss.

    Parameters
    ----------
    loss
        ``(n,)`` or ``(n1, n2)`` loss values.

    Returns
    -------
    Tensor
        int64, same shape: the smallest flat (row-major) index of the point's plateau.

    Examples
    --------
    >>> plateau_labels(torch.tensor([3.0, 1.0, 1.0, 2.0, 2.0, 2.0]))
    tensor([0, 1, 1, 3, 3, 3])
    """
    if loss.ndim not in (1, 2):
        raise ValueError(f"loss must be 1-D or 2-D, got shape {tuple(loss.shape)}")
    neighbours, _ = _padded_neighbours(loss)
    equal = (neighbours == loss[None]) & torch.isfinite(loss)[None]
    labels = torch.arange(loss.numel(), device=loss.device).reshape(loss.shape)
    if not bool(equal.any()):  # no ties: every point is its own plateau
        return labels
    none = loss.numel()
    while True:  # spread the smallest label over each plateau, one neighbour per round
        around, _ = _neighbour_stack(labels, none)
        spread = torch.minimum(labels, torch.where(equal, around, none).amin(dim=0))
        if torch.equal(spread, labels):
            return labels
        labels = spread


def strict_local_minima(loss: torch.Tensor, *, edge: bool = False) -> torch.Tensor:
    """Boolean mask of the strict local minima of a 1-D or 2-D grid of loss values.

    A point is a strict local minimum when it is finite and lower than each of its
    neighbours on the grid (2 in 1-D, 8 in 2-D). A plateau of equal values
    (:func:`plateau_labels`) that is lower than every point around it is one minimum, marked
    at its first point (row-major). Non-finite values count as +∞. Only interior points
    qualify unless ``edge`` is set: a point on the grid's edge has neighbours on one side
    only, so its "minimum" may be the window cutting a slope (a plateau that touches the edge
    does not count either).

    Parameters
    ----------
    loss
        ``(n,)`` or ``(n1, n2)`` loss values (lower is better).
    edge
        also count points on the edge (compared with the neighbours they have).

    Returns
    -------
    Tensor
        boolean mask, same shape.

    Examples
    --------
    >>> strict_local_minima(torch.tensor([3.0, 1.0, 2.0, 2.0, 0.0, 5.0, 4.0]))
    tensor([False,  True, False, False,  True, False, False])
    >>> strict_local_minima(torch.tensor([3.0, 1.0, 2.0, 2.0, 0.0, 5.0, 4.0]), edge=True)
    tensor([False,  True, False, False,  True, False,  True])
    >>> strict_local_minima(torch.tensor([3.0, 1.0, 1.0, 2.0]))  # a plateau of two
    tensor([False,  True, False, False])
    """
    if loss.ndim not in (1, 2):
        raise ValueError(f"loss must be 1-D or 2-D, got shape {tuple(loss.shape)}")
    neighbours, _ = _padded_neighbours(loss)
    lowest = torch.isfinite(loss) & (loss[None] <= neighbours).all(dim=0)  # no neighbour is lower
    labels = plateau_labels(loss).flatten()
    disqualified = ~lowest
    if not edge:
        interior = torch.zeros_like(lowest)
        interior[tuple(slice(1, -1) for _ in loss.shape)] = True
        disqualified |= ~interior
    bad = torch.zeros(loss.numel(), dtype=torch.bool, device=loss.device)
    bad[labels[disqualified.flatten()]] = True  # a plateau with any member that has a lower neighbour (or on the edge)
    first = labels == torch.arange(loss.numel(), device=loss.device)
    return (first & ~bad[labels]).reshape(loss.shape)


def descent_destinations(loss: torch.Tensor) -> torch.Tensor:
    """Where steepest descent on the grid ends, for every starting point of a 1-D or 2-D grid.

    From each point, move to its lowest neighbour while that is strictly lower than the
    current value (ties between neighbours: the first in row-major offset order); stop
    otherwise. Non-finite values count as +∞ (such points move to a finite neighbour if
    they have one).

    Parameters
    ----------
    loss
        ``(n,)`` or ``(n1, n2)`` loss values.

    Returns
    -------
    Tensor
        int64, same shape: the flat (row-major) index of the end point.
    """
    if loss.ndim not in (1, 2):
        raise ValueError(f"loss must be 1-D or 2-D, got shape {tuple(loss.shape)}")
    neighbours, shifts = _padded_neighbours(loss)
    clean = torch.where(torch.isfinite(loss), loss, torch.full_like(loss, math.inf))
    best, which = neighbours.min(dim=0)
    move = best < clean
    coords = torch.meshgrid(*[torch.arange(n, device=loss.device) for n in loss.shape], indexing="ij")
    offsets = torch.tensor(shifts, device=loss.device)  # (S, ndim)
    target = [c + offsets[which, k] for k, c in enumerate(coords)]
    flat_target = target[0] if loss.ndim == 1 else target[0] * loss.shape[1] + target[1]
    here = torch.arange(loss.numel(), device=loss.device).reshape(loss.shape)
    nxt = torch.where(move, flat_target, here).reshape(-1)
    # pointer jumping: follow the chains to their fixed points in O(log length) rounds
    while True:
        jumped = nxt[nxt]
        if torch.equal(jumped, nxt):
            break
        nxt = jumped
    return nxt.reshape(loss.shape)


def basin_fraction(loss: torch.Tensor, start: int | Sequence[int]) -> float:
    """Share of the finite grid points whose steepest descent ends where that from ``start`` ends.

    Descent stops on the first point of a flat minimum it reaches; all points of one plateau
    (:func:`plateau_labels`) count as the same end.

    Parameters
    ----------
    loss
        ``(n,)`` or ``(n1, n2)`` loss values.
    start
        grid index of the reference point (normally the ground truth), an int in 1-D or
        an ``(i, j)`` pair in 2-D.

    Returns
    -------
    float
        in [0, 1]; 1 when every point descends into the reference point's basin.
    """
    dest = plateau_labels(loss).flatten()[descent_destinations(loss)]  # a flat minimum is one destination
    index = (start,) if isinstance(start, int) else tuple(start)
    finite = torch.isfinite(loss)
    same = (dest == dest[index]) & finite
    return float(same.sum()) / max(1, int(finite.sum()))


@dataclass(frozen=True)
class Roughness:
    """Roughness of one landscape (see the module docstring).

    Attributes
    ----------
    n_minima
        number of strict local minima of the loss away from the grid's edge.
    basin_fraction
        share of grid points whose steepest descent reaches the ground truth's basin.
    n_points
        number of finite grid points.
    """

    n_minima: int
    basin_fraction: float
    n_points: int


def roughness(loss: torch.Tensor, start: int | Sequence[int]) -> Roughness:
    """:class:`Roughness` of a 1-D or 2-D grid of loss values (lower is better).

    Parameters
    ----------
    loss
        ``(n,)`` or ``(n1, n2)``; pass ``−similarity`` for an XRD similarity and the
        energy for CHGNet.
    start
        grid index of the ground truth (see :func:`basin_fraction`).

    Returns
    -------
    Roughness
    """
    return Roughness(
        n_minima=int(strict_local_minima(loss).sum()),
        basin_fraction=basin_fraction(loss, start),
        n_points=int(torch.isfinite(loss).sum()),
    )


# --------------------------------------------------------------------------- resolution and convergence

DENSITY_UNIT = 10.0
"""Side of the unit of a minima density, 10 % of a length or 10° of an angle (a choice).

A density is minima per 10 % × 10 % of a length–length slice (10 % × 10° with an angle,
10° × 10° for two angles), or per 10 % (10°) of a 1-D cut; the ±20 % slice is 4 × 4 units."""

CONVERGENCE_TOLERANCE = 0.1
"""Relative tolerance of :func:`converged`: a measure has converged when its values on the two
finest grids differ by at most 10 % of the finer grid's value (a choice; a count below 10 must
not change at all)."""


def nested_step(n_fine: int, n: int) -> int:
    """Stride ``s = (n_fine − 1)/(n − 1)`` that picks an ``n``-point grid out of an ``n_fine``-point one.

    Both grids span the same interval and have the centre as a point, so both sizes must be
    odd and at least 3, and ``n − 1`` must divide ``n_fine − 1``.

    Raises
    ------
    ValueError
        for an even size, a size below 3, or grids that do not nest.

    Examples
    --------
    >>> nested_step(33, 9), nested_step(101, 21)
    (4, 5)
    """
    for size in (n_fine, n):
        if isinstance(size, bool) or not isinstance(size, int) or size < 3 or size % 2 == 0:
            raise ValueError(f"nested grids need odd sizes of at least 3 points, got {size!r}")
    if n > n_fine or (n_fine - 1) % (n - 1):
        raise ValueError(f"a {n}-point grid is not nested in a {n_fine}-point grid: {n - 1} must divide {n_fine - 1}")
    return (n_fine - 1) // (n - 1)


def nested_grids(n: int, count: int = 3) -> list[int]:
    """The ``count`` largest grid sizes nested in an ``n``-point grid (:func:`nested_step`), ``n`` included.

    Ordered coarse to fine; fewer when ``n`` has fewer (a 15-point grid nests only 3 and 15).

    Examples
    --------
    >>> nested_grids(21), nested_grids(41), nested_grids(101), nested_grids(15, 4)
    ([5, 11, 21], [11, 21, 41], [21, 51, 101], [3, 15])
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    nested_step(n, n)  # validates n
    sizes = [m for m in range(3, n + 1, 2) if (n - 1) % (m - 1) == 0]
    return sizes[-count:]


def subgrid(loss: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n``-point nested subgrid of a 1-D or 2-D grid: every ``s``-th point along each axis.

    Parameters
    ----------
    loss
        ``(N,)`` or ``(N1, N2)`` values on the fine grid; each ``N`` odd.
    n
        points per axis of the subgrid (:func:`nested_step` of each axis).

    Returns
    -------
    Tensor
        ``(n,)`` or ``(n, n)``: ``loss[::s1, ::s2]``, a view (same extent, ``s`` times the step).

    Examples
    --------
    >>> subgrid(torch.arange(9.0), 5)
    tensor([0., 2., 4., 6., 8.])
    """
    if loss.ndim not in (1, 2):
        raise ValueError(f"loss must be 1-D or 2-D, got shape {tuple(loss.shape)}")
    return loss[tuple(slice(None, None, nested_step(size, n)) for size in loss.shape)]


def axis_step(axis: torch.Tensor, center: torch.Tensor, name: str | int) -> float:
    """Grid step of an evenly spaced axis as a change from the centre: per cent for a length, degrees for an angle.

    Parameters
    ----------
    axis
        ``(n,)`` values of the parameter (Å or degrees), e.g. ``Slice.x``.
    center
        ``(6,)`` the lattice the slice goes through.
    name
        the parameter (:func:`parameter_index`).

    Examples
    --------
    >>> centre = torch.tensor([5.0, 5.0, 5.0, 90.0, 90.0, 90.0], dtype=torch.float64)
    >>> axis_step(parameter_axis(centre, "a", 5), centre, "a"), axis_step(parameter_axis(centre, "beta", 5), centre, 4)
    (10.0, 10.0)
    """
    i = parameter_index(name)
    if len(axis) < 2:
        raise ValueError(f"an axis needs at least 2 points, got {len(axis)}")
    step = float(axis[-1] - axis[0]) / (len(axis) - 1)
    return 100.0 * step / float(center[i]) if i < 3 else step


@dataclass(frozen=True)
class ResolutionRoughness:
    """The roughness of one landscape on one grid of a nested series (:func:`roughness_by_resolution`).

    Attributes
    ----------
    n
        grid points per axis.
    n_minima
        strict local minima away from the edge (:func:`strict_local_minima`).
    minima_density
        ``n_minima`` per :data:`DENSITY_UNIT` (per unit², per unit on a cut) of the interior,
        the area of the cells of the ``(n − 2)`` interior points per axis.
    basin_fraction
        as :func:`basin_fraction`, from the subgrid point nearest the reference point.
    n_points
        finite grid points.
    """

    n: int
    n_minima: int
    minima_density: float
    basin_fraction: float
    n_points: int


def roughness_by_resolution(
    loss: torch.Tensor, start: int | Sequence[int], grids: Sequence[int], steps: Sequence[float]
) -> list[ResolutionRoughness]:
    """Roughness of a landscape on nested subgrids of one fine grid, coarse to fine.

    Parameters
    ----------
    loss
        ``(N,)`` or ``(N1, N2)`` loss values on the fine grid (lower is better).
    start
        grid index of the reference point (the ground truth) on the fine grid; on a subgrid
        the nearest subgrid point.
    grids
        points per axis of each subgrid, each nested in ``loss``'s grid (:func:`nested_step`);
        the fine grid itself may be one of them.
    steps
        the fine grid's step along each axis, in % (lengths) or degrees (angles): :func:`axis_step`.

    Returns
    -------
    list of ResolutionRoughness
        one per grid, sorted by ``n``.

    Examples
    --------
    >>> x = torch.linspace(-1, 1, 33)
    >>> bowl = x[:, None] ** 2 + x[None, :] ** 2
    >>> rows = roughness_by_resolution(bowl, (16, 16), [9, 17, 33], [1.25, 1.25])
    >>> [(r.n, r.n_minima, r.basin_fraction) for r in rows]
    [(9, 1, 1.0), (17, 1, 1.0), (33, 1, 1.0)]
    """
    index = (start,) if isinstance(start, int) else tuple(start)
    if len(index) != loss.ndim or len(steps) != loss.ndim:
        raise ValueError(f"start {index} and steps {tuple(steps)} must have one entry per axis of {tuple(loss.shape)}")
    out = []
    for n in sorted(set(grids)):
        strides = [nested_step(size, n) for size in loss.shape]
        coarse = subgrid(loss, n)
        r = roughness(coarse, tuple(min(n - 1, round(i / s)) for i, s in zip(index, strides, strict=True)))
        area = math.prod((n - 2) * h * s / DENSITY_UNIT for h, s in zip(steps, strides, strict=True))
        out.append(ResolutionRoughness(n, r.n_minima, r.n_minima / area, r.basin_fraction, r.n_points))
    return out


def converged(values: Sequence[float], tolerance: float = CONVERGENCE_TOLERANCE) -> bool:
    """Whether a measure has converged: its two finest ``values`` (coarse to fine) agree within ``tolerance``.

    The rule of the book: ``|v_fine − v_coarse| ≤ tolerance · |v_fine|`` (:data:`CONVERGENCE_TOLERANCE`).
    NaN never converges.

    Examples
    --------
    >>> converged([18, 40, 65]), converged([3, 5, 5]), converged([0.5, 0.30, 0.29])
    (False, True, True)
    """
    if len(values) < 2:
        raise ValueError(f"convergence needs values on at least 2 grids, got {len(values)}")
    coarse, fine = float(values[-2]), float(values[-1])
    return bool(abs(fine - coarse) <= tolerance * abs(fine))


def growth_exponent(grids: Sequence[int], minima: Sequence[int]) -> float:
    """Exponent ``p`` of the minima count's growth between the two finest grids, ``N ∝ (1/step)^p``.

    ``p = ln(N_fine / N_coarse) / ln((n_fine − 1)/(n_coarse − 1))`` for grids of ``n`` points per
    axis (ordered coarse to fine) with ``N`` minima: about 0 once the grid resolves every minimum,
    about the dimension (2 for a slice) while each refinement finds minima in proportion to the
    grid points. NaN when either count is 0.

    Examples
    --------
    >>> round(growth_exponent([9, 17, 33], [6, 18, 65]), 2), growth_exponent([17, 33], [4, 4])
    (1.85, 0.0)
    """
    if len(grids) < 2 or len(grids) != len(minima):
        raise ValueError(f"need counts on at least 2 grids, got grids {list(grids)} and minima {list(minima)}")
    (n0, n1), (m0, m1) = grids[-2:], minima[-2:]
    if m0 == 0 or m1 == 0:
        return math.nan
    return math.log(m1 / m0) / math.log((n1 - 1) / (n0 - 1))
