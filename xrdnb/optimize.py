"""Gradient descent on XRD similarity (SI §1.4), batched over copies.

Two modes, as in the study:

* ``"lattice"``: the six lattice parameters (Å, degrees) are free, coordinates fixed;
  optionally *constrained* to the crystal family: the projector 𝒫 of
  :mod:`xrdnb.symmetry` is applied to the starting lattice and after every update
  (projected gradient descent).
* ``"coordinates"``: the fractional coordinates are free, the lattice fixed.

All copies advance as one batched tensor; the simulator is evaluated only on the copies
still running (selected by index). Each copy stops on its own:

* ``"converged"`` — its loss changed by less than ``tol`` over the last ``patience`` steps
  (SI: 1e-4 over 1000 steps);
* ``"max_steps"`` — the step budget (SI: 30,000) ran out;
* ``"invalid_lattice"`` — an update produced a non-positive length, angles with no real
  cell, NaN, or a cell volume beyond ``max_volume_growth`` times its start (or below its
  inverse): the copy keeps its last valid parameters and is reported as failed, without
  disturbing the others.

The optimisers are written functionally over an explicit :class:`GDState` (in the manner
of torch-sim's init/step functions), so that each copy's Adam moments freeze when it stops.

>>> import xrdnb
>>> from xrdnb.optimize import GDConfig, run_gradient_descent
>>> truth = xrdnb.crystal_from_structure(xrdnb.load_structure("U2Ti"))
>>> start = truth.with_lattice(truth.lattice.repeat(2, 1) * 1.005)
>>> result = run_gradient_descent(start, xrdnb.simulate_pattern(truth),
...     GDConfig(constrained=True, family="hexagonal", lr=2e-3, max_steps=5), progress=False)
>>> result.crystal.lattice.shape, len(result.stop_reason)
(torch.Size([2, 6]), 2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from .crystal import Crystal
from .lattice import cell_volume, is_valid_lattice
from .losses import loss_function, simulator_overrides
from .memory import retain_freed_memory
from .pattern import DEFAULT_SETTINGS, XRDSettings, simulate_pattern
from .reflections import ReflectionSet, covers, enumerate_reflections
from .scattering import phase_sums
from .symmetry import project_lattice

__all__ = [
    "GDConfig",
    "GDGroup",
    "GDState",
    "GDResult",
    "init_state",
    "init_batched_state",
    "gd_step",
    "run_gradient_descent",
    "run_batched_gradient_descent",
    "STOP_REASONS",
    "Callback",
]

STOP_REASONS = ("running", "converged", "max_steps", "invalid_lattice")
"""Status names of a copy, indexed by ``GDState.status`` (running, or why it stopped)."""


@dataclass(frozen=True)
class GDConfig:
    """Static settings of one gradient-descent run.

    Attributes
    ----------
    mode
        ``"lattice"`` or ``"coordinates"``.
    loss
        ``"cosine"``, ``"mse"``, ``"entropy"`` or ``"cross_correlation"`` (:mod:`xrdnb.losses`).
    constrained
        apply the crystal-family projector (lattice mode only).
    family
        crystal family for the projector (required when constrained).
    optimizer
        ``"adam"`` (default; the paper does not name its optimiser) or ``"sgd"``.
    lr
        learning rate (lattice: Å and degrees per step scale; coordinates: fractional).
    max_steps
        step budget per copy (SI: 30,000).
    tol, patience
        stop a copy when its loss changes by less than ``tol`` over ``patience`` steps.
    record_every
        keep the parameters and losses every this many steps (0: only start and end).
    reflection_margin
        relative margin of the reflection superset; re-enumerated when a lattice leaves it.
    max_volume_growth
        a copy whose cell volume grows beyond this factor of its start (or shrinks below its
        inverse) stops as ``"invalid_lattice"``: a run-away cell would need ever more
        reflections (their number grows with the volume) until memory runs out.
    settings
        simulator settings (the loss may override some, e.g. ``hkl_max=6`` for MSE).
    """

    mode: Literal["lattice", "coordinates"] = "lattice"
    loss: str = "cosine"
    constrained: bool = False
    family: str | None = None
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 5e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_steps: int = 30_000
    tol: float = 1e-4
    patience: int = 1000
    record_every: int = 100
    reflection_margin: float = 0.1
    max_volume_growth: float = 8.0
    settings: XRDSettings = DEFAULT_SETTINGS

    def __post_init__(self):
        if self.mode not in ("lattice", "coordinates"):
            raise ValueError(f"mode must be 'lattice' or 'coordinates', got {self.mode!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.constrained and self.mode != "lattice":
            raise ValueError("symmetry constraints apply to lattice mode only")
        if self.constrained and not self.family:
            raise ValueError("a constrained run needs the crystal family")
        if self.lr <= 0 or self.max_steps < 0 or self.patience < 1:
            raise ValueError("need lr > 0, max_steps >= 0 and patience >= 1")
        if not self.max_volume_growth > 1:
            raise ValueError(f"max_volume_growth must be > 1, got {self.max_volume_growth}")

    def simulator_settings(self) -> XRDSettings:
        """The simulator settings with the loss's overrides (e.g. the MSE Miller-index clip)."""
        overrides = simulator_overrides(self.loss)
        return replace(self.settings, **overrides) if overrides else self.settings  # type: ignore[arg-type]


@dataclass
class GDGroup:
    """One configuration inside a batched state: its copies are ``copies`` of the batch."""

    config: GDConfig
    target: torch.Tensor
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    copies: slice
    history_steps: list[int] = field(default_factory=list)
    history_loss: list[torch.Tensor] = field(default_factory=list)
    history_params: list[torch.Tensor] = field(default_factory=list)


@dataclass
class GDState:
    """Dynamic state of a batched run (all tensors have the copies first).

    ``params`` is ``(B, 6)`` in lattice mode and ``(B, N, 3)`` in coordinate mode.
    ``status`` holds indices into :data:`xrdnb.optimize.STOP_REASONS`. ``groups`` are the
    configurations the copies belong to (one for :func:`init_state`; several, each with
    its own loss, learning rate, projector and stopping rule, for :func:`init_batched_state`);
    ``lr``, ``patience``, ``tol`` and ``max_steps`` hold each copy's value. ``reflections``
    is one set for the whole batch (the union of what the groups need, in a fixed order),
    ``keep`` ``(B, K)`` marks the reflections a copy may use where groups differ (the MSE
    loss's Miller-index clip), and in lattice mode ``sums`` caches the structure-factor
    phase sums ``(B, S, K)`` of the fixed coordinates (:func:`xrdnb.scattering.phase_sums`):
    only the form factors, angles and widths change with the lattice.
    """

    crystal: Crystal
    params: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    step: int
    steps: torch.Tensor
    loss: torch.Tensor
    initial_loss: torch.Tensor
    checkpoint_loss: torch.Tensor
    status: torch.Tensor
    reflections: ReflectionSet
    groups: list[GDGroup]
    lr: torch.Tensor
    patience: torch.Tensor
    tol: torch.Tensor
    max_steps: torch.Tensor
    settings: XRDSettings
    volume_bounds: torch.Tensor | None = None
    keep: torch.Tensor | None = None
    sums: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def active(self) -> torch.Tensor:
        """``(B,)`` copies still running."""
        return self.status == 0

    @property
    def mode(self) -> str:
        """``"lattice"`` or ``"coordinates"``."""
        return self.groups[0].config.mode

    # the record of a one-group state (init_state), as before batching
    @property
    def history_steps(self) -> list[int]:
        """Recorded step numbers of the first group."""
        return self.groups[0].history_steps

    @property
    def history_loss(self) -> list[torch.Tensor]:
        """Recorded losses ``(B,)`` of the first group."""
        return self.groups[0].history_loss

    @property
    def history_params(self) -> list[torch.Tensor]:
        """Recorded parameters of the first group."""
        return self.groups[0].history_params


@dataclass
class GDResult:
    """Outcome of :func:`run_gradient_descent`.

    ``crystal`` holds the final copies; ``loss`` ``(B,)`` their final losses and
    ``initial_loss`` the starting ones; ``steps`` ``(B,)`` the updates each copy took;
    ``stop_reason`` a string per copy; ``trajectory_steps`` ``(T,)``,
    ``trajectory_loss`` ``(T, B)`` and ``trajectory_params`` ``(T, B, ...)`` the record.
    """

    crystal: Crystal
    loss: torch.Tensor
    initial_loss: torch.Tensor
    steps: torch.Tensor
    stop_reason: list[str]
    trajectory_steps: torch.Tensor
    trajectory_loss: torch.Tensor
    trajectory_params: torch.Tensor

    @property
    def failed(self) -> torch.Tensor:
        """``(B,)`` copies that stopped as ``"invalid_lattice"``."""
        return torch.tensor([r == "invalid_lattice" for r in self.stop_reason])


def _with_params(crystal: Crystal, params: torch.Tensor, mode: str) -> Crystal:
    return crystal.with_lattice(params) if mode == "lattice" else crystal.with_frac_coords(params)


def _common_settings(configs: Sequence[GDConfig]) -> XRDSettings:
    """The simulator settings of a batch: the groups' own, which may differ only in ``hkl_max``.

    The batch enumerates the widest clip (``None`` if any group has none); narrower clips
    become the ``keep`` mask.
    """
    own = [c.simulator_settings() for c in configs]
    clips = [s.hkl_max for s in own]
    base = replace(own[0], hkl_max=None)
    if any(replace(s, hkl_max=None) != base for s in own):
        raise ValueError(
            "the groups of a batched run must share the simulator settings (the loss's hkl_max clip may differ)"
        )
    return replace(base, hkl_max=None if None in clips else max(c for c in clips if c is not None))


def _enumerate(lattice: torch.Tensor, settings: XRDSettings, margin: float) -> ReflectionSet:
    """A superset of the reflections of the valid lattices, in lexicographic ``hkl`` order.

    The fixed order makes the accumulation order of each copy's pattern the same whatever
    superset it is simulated with (its own, or the union of a batch of several runs).
    """
    valid = is_valid_lattice(lattice)
    refl = enumerate_reflections(
        lattice[valid],
        settings.g_max,
        margin=margin,
        hkl_max=settings.hkl_max,
        max_reflections=settings.max_reflections,
    )
    hkl = refl.hkl
    order = torch.from_numpy(np.lexsort((hkl[:, 2].numpy(), hkl[:, 1].numpy(), hkl[:, 0].numpy())))
    return replace(refl, hkl=hkl[order], weight=refl.weight[order])


def _keep_mask(state_groups: Sequence[GDGroup], reflections: ReflectionSet, batch: int, settings: XRDSettings, device):
    """``(B, K)`` reflections each copy may use, or None when every group uses all of them."""
    clips = [g.config.simulator_settings().hkl_max for g in state_groups]
    if all(c == settings.hkl_max for c in clips):
        return None
    keep = torch.ones(batch, len(reflections), dtype=torch.bool, device=device)
    hkl = reflections.hkl.to(device).abs()
    for group, clip in zip(state_groups, clips, strict=True):
        if clip is not None and clip != settings.hkl_max:
            keep[group.copies] = (hkl <= clip).all(dim=-1)
    return keep


def _phase_sums(crystal: Crystal, reflections: ReflectionSet, mode: str):
    """The phase sums of the fixed coordinates (lattice mode), else None."""
    if mode != "lattice":
        return None
    with torch.no_grad():
        return phase_sums(crystal.frac_coords, reflections.hkl.to(crystal.device), crystal.occupancy)


def _reflection_cache(groups: Sequence[GDGroup], settings: XRDSettings, crystal: Crystal, lattice: torch.Tensor):
    """``(reflections, keep, sums)`` for ``lattice`` ``(B, 6)``.

    A superset in hkl order (the groups' widest margin), the per-copy clip mask, and the
    phase sums of ``crystal``'s fixed coordinates (lattice mode).
    """
    mode = groups[0].config.mode
    reflections = _enumerate(lattice, settings, max(g.config.reflection_margin for g in groups))
    return (
        reflections,
        _keep_mask(groups, reflections, len(lattice), settings, lattice.device),
        _phase_sums(crystal, reflections, mode),
    )


def _rows(index: torch.Tensor, group: GDGroup) -> torch.Tensor:
    """Positions in ``index`` (sorted copy indices) of the copies of ``group``."""
    lo, hi = group.copies.start, group.copies.stop
    return torch.nonzero((index >= lo) & (index < hi)).flatten()


def _losses(state: GDState, index: torch.Tensor, params: torch.Tensor, loss_fns=None) -> torch.Tensor:
    """Loss ``(len(index),)`` of the copies ``index`` at ``params``, each with its group's loss and target."""
    sub = state.crystal.select(index)
    sums = None if state.sums is None else (state.sums[0][index], state.sums[1][index])
    keep = None if state.keep is None else state.keep[index]
    pattern = simulate_pattern(
        _with_params(sub, params, state.mode), state.settings, reflections=state.reflections, sums=sums, keep=keep
    )
    parts = []
    for g, group in enumerate(state.groups):
        rows = _rows(index, group)
        if len(rows):
            loss_fn = group.loss_fn if loss_fns is None else loss_fns[g]
            parts.append(loss_fn(pattern[rows], group.target))
    return torch.cat(parts)  # copies are ordered by group, so this is index order


def init_state(crystal: Crystal, target: torch.Tensor, config: GDConfig) -> GDState:
    """Starting state: project the lattice if constrained, enumerate reflections, evaluate the loss."""
    return init_batched_state([crystal], [target], [config])


def init_batched_state(
    crystals: Sequence[Crystal], targets: Sequence[torch.Tensor], configs: Sequence[GDConfig]
) -> GDState:
    """One state for several runs of the same structure and mode, advanced together by :func:`gd_step`.

    Each run (``crystals[i]``, ``targets[i]``, ``configs[i]``) keeps its own loss, learning
    rate, projector and stopping rule; its copies become ``state.groups[i].copies`` of the
    batch. Every copy is computed as in a run of its own (elementwise, in a fixed order), so
    the results are those of separate runs; on a GPU one program then serves many cells.
    """
    if not (len(crystals) == len(targets) == len(configs) >= 1):
        raise ValueError("need as many crystals, targets and configs (at least one)")
    mode = configs[0].mode
    if any(c.mode != mode for c in configs) or any(
        c.optimizer != configs[0].optimizer or c.betas != configs[0].betas or c.eps != configs[0].eps for c in configs
    ):
        raise ValueError("the runs of a batched state must share the mode and the optimizer (name, betas, eps)")
    first = crystals[0]
    if any(
        c.elements != first.elements or c.n_sites != first.n_sites or not torch.equal(c.occupancy, first.occupancy)
        for c in crystals
    ):
        raise ValueError("the runs of a batched state must be copies of one structure (same sites and species)")
    settings = _common_settings(configs)
    starts, groups, offset = [], [], 0
    for crystal, target, config in zip(crystals, targets, configs, strict=True):
        lattice = crystal.lattice.detach()
        if config.constrained:
            lattice = project_lattice(lattice, str(config.family))  # constrained: a family is set
        crystal = crystal.with_lattice(lattice).detach()
        if not bool(is_valid_lattice(crystal.lattice).all()):
            raise ValueError("every starting lattice must be valid (positive lengths, a real cell)")
        starts.append(crystal)
        target = target.to(dtype=crystal.dtype, device=crystal.device)
        groups.append(GDGroup(config, target, loss_function(config.loss), slice(offset, offset + crystal.batch_size)))
        offset += crystal.batch_size
    crystal = replace(
        first,
        lattice=torch.cat([c.lattice for c in starts]),
        frac_coords=torch.cat([c.frac_coords for c in starts]),
        occupancy=starts[0].occupancy,
    )
    params = (crystal.lattice if mode == "lattice" else crystal.frac_coords).clone()
    batch, device, dtype = params.shape[0], params.device, params.dtype

    def per_copy(values, dtype):
        return torch.cat(
            [
                torch.full((g.copies.stop - g.copies.start,), v, dtype=dtype, device=device)
                for g, v in zip(groups, values, strict=True)
            ]
        )

    reflections, keep, sums = _reflection_cache(groups, settings, crystal, crystal.lattice)
    state = GDState(
        crystal=crystal,
        params=params,
        exp_avg=torch.zeros_like(params),
        exp_avg_sq=torch.zeros_like(params),
        step=0,
        steps=torch.zeros(batch, dtype=torch.int64, device=device),
        loss=torch.zeros(batch, dtype=dtype, device=device),
        initial_loss=torch.zeros(batch, dtype=dtype, device=device),
        checkpoint_loss=torch.zeros(batch, dtype=dtype, device=device),
        status=torch.zeros(batch, dtype=torch.int64, device=device),
        reflections=reflections,
        groups=groups,
        lr=per_copy([c.lr for c in configs], dtype),
        patience=per_copy([c.patience for c in configs], torch.int64),
        tol=per_copy([c.tol for c in configs], dtype),
        max_steps=per_copy([c.max_steps for c in configs], torch.int64),
        settings=settings,
        keep=keep,
        sums=sums,
    )
    if mode == "lattice":  # (B, 2): smallest and largest volume a copy may reach
        growth = per_copy([c.max_volume_growth for c in configs], dtype)
        volume = cell_volume(crystal.lattice)
        state.volume_bounds = torch.stack([volume / growth, volume * growth], dim=-1)
    state.status[state.max_steps <= 0] = STOP_REASONS.index("max_steps")  # a budget of 0 steps
    with torch.no_grad():
        loss = _losses(state, torch.arange(batch, device=device), params)
    state.loss, state.initial_loss, state.checkpoint_loss = loss.clone(), loss.clone(), loss.clone()
    for group in groups:
        _record(state, group)
    return state


def _record(state: GDState, group: GDGroup) -> None:
    group.history_steps.append(state.step)
    group.history_loss.append(state.loss[group.copies].detach().clone())
    group.history_params.append(state.params[group.copies].detach().clone())


def gd_step(
    state: GDState,
    target: torch.Tensor | None = None,
    config: GDConfig | None = None,
    loss_fn=None,
    penalty: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> GDState:
    """One update of every running copy (in place on ``state``, which is also returned).

    ``target`` and ``config`` are those the state was made with (they are kept in
    ``state.groups``, so they may be omitted); ``loss_fn`` replaces the loss of a
    one-group state for this step. ``penalty(params, index)`` adds a term ``(n,)`` to the
    loss of the running copies ``index`` ``(n,)`` at their parameters ``params`` (which
    carry the gradient), e.g. a weighted energy (:func:`xrdnb.search.hybrid`); the stopping
    rule then watches the sum.
    """
    index = torch.nonzero(state.active).flatten()
    if len(index) == 0:
        return state
    if loss_fn is not None and len(state.groups) != 1:
        raise ValueError("loss_fn replaces the loss of a one-group state only")
    mode = state.mode
    params = state.params[index].clone().requires_grad_(True)
    loss = _losses(state, index, params, None if loss_fn is None else [loss_fn])
    if penalty is not None:
        loss = loss + penalty(params, index)
    (grad,) = torch.autograd.grad(loss.sum(), params)
    state.step += 1
    with torch.no_grad():
        shape = (-1,) + (1,) * (params.dim() - 1)
        lr = state.lr[index].reshape(shape)
        first = state.groups[0].config
        if first.optimizer == "adam":
            beta1, beta2 = first.betas
            m = state.exp_avg[index].mul_(beta1).add_(grad, alpha=1 - beta1)
            v = state.exp_avg_sq[index].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            t = state.steps[index].to(params.dtype) + 1
            bias1 = (1 - beta1**t).reshape(shape)
            bias2 = (1 - beta2**t).reshape(shape)
            update = lr * (m / bias1) / ((v / bias2).sqrt() + first.eps)
            state.exp_avg[index] = m
            state.exp_avg_sq[index] = v
        else:
            update = lr * grad
        new = params.detach() - update
        for group in state.groups:
            if group.config.constrained:
                rows = _rows(index, group)
                if len(rows):
                    new[rows] = project_lattice(new[rows], str(group.config.family))
        lattice_new = new if mode == "lattice" else state.crystal.lattice[index]
        ok = is_valid_lattice(lattice_new) & torch.isfinite(new.reshape(len(index), -1)).all(dim=1)
        ok &= torch.isfinite(loss)
        if state.volume_bounds is not None:
            volume = cell_volume(torch.where(ok.unsqueeze(-1), lattice_new, state.params[index]))
            bounds = state.volume_bounds[index]
            ok &= (volume >= bounds[:, 0]) & (volume <= bounds[:, 1])
        good, bad = index[ok], index[~ok]
        state.params[good] = new[ok]
        state.loss[good] = loss.detach()[ok]
        state.steps[good] += 1
        state.status[bad] = STOP_REASONS.index("invalid_lattice")
        # per-copy early stop: the loss moved less than tol over the last `patience` steps
        check = state.active & (state.step % state.patience == 0)
        if bool(check.any()):
            done = check & ((state.loss - state.checkpoint_loss).abs() < state.tol)
            state.status[done] = STOP_REASONS.index("converged")
            state.checkpoint_loss = torch.where(check, state.loss, state.checkpoint_loss)
        state.status[state.active & (state.step >= state.max_steps)] = STOP_REASONS.index("max_steps")
        if mode == "lattice":
            state.crystal = state.crystal.with_lattice(state.params.detach())
            if not bool(covers(state.reflections, state.params[state.active], state.settings.g_max).all()):
                state.reflections, state.keep, state.sums = _reflection_cache(
                    state.groups, state.settings, state.crystal, state.params
                )
        else:
            state.crystal = state.crystal.with_frac_coords(state.params.detach())
    for group in state.groups:
        every = group.config.record_every
        if every and state.step % every == 0 and state.step <= group.config.max_steps and _ran(state, group):
            _record(state, group)
    return state


def _ran(state: GDState, group: GDGroup) -> bool:
    """Whether a copy of ``group`` was still running before this step (its record goes on)."""
    return bool((state.steps[group.copies] == state.step).any() or (state.status[group.copies] == 0).any())


def _final_losses(state: GDState) -> torch.Tensor:
    """Each copy's loss at its end point, on reflections enumerated afresh (NaN for invalid lattices)."""
    with torch.no_grad():
        valid = is_valid_lattice(state.crystal.lattice)
        loss = torch.full_like(state.loss, float("nan"))
        index = torch.nonzero(valid).flatten()
        if len(index):
            reflections, keep, sums = _reflection_cache(
                state.groups, state.settings, state.crystal, state.crystal.lattice
            )
            fresh = replace(state, reflections=reflections, keep=keep, sums=sums)
            loss[index] = _losses(fresh, index, state.params[index])
        return loss


def _results(state: GDState) -> list[GDResult]:
    """One :class:`GDResult` per group of a finished state."""
    final = _final_losses(state)
    out = []
    for group in state.groups:
        if group.history_steps[-1] != int(state.steps[group.copies].max()) and group.history_steps[-1] != state.step:
            last = int(state.steps[group.copies].max())
            group.history_steps.append(last)
            group.history_loss.append(state.loss[group.copies].detach().clone())
            group.history_params.append(state.params[group.copies].detach().clone())
        c = group.copies
        out.append(
            GDResult(
                crystal=state.crystal.select(c),
                loss=final[c],
                initial_loss=state.initial_loss[c],
                steps=state.steps[c],
                stop_reason=[STOP_REASONS[int(i)] for i in state.status[c]],
                trajectory_steps=torch.tensor(group.history_steps),
                trajectory_loss=torch.stack(group.history_loss),
                trajectory_params=torch.stack(group.history_params),
            )
        )
    return out


Callback = Callable[[GDState], bool | None]
"""``callback(state) -> bool | None``: looks at (never changes) a running :class:`GDState`; ``True`` stops the run."""


def run_gradient_descent(
    crystal: Crystal,
    target: torch.Tensor,
    config: GDConfig = GDConfig(),
    *,
    progress: bool | str = True,
    callback: Callback | None = None,
    callback_every: int = 1,
) -> GDResult:
    """Optimise every copy of ``crystal`` towards the ``target`` pattern ``(P,)``.

    Parameters
    ----------
    crystal
        starting copies (e.g. from :func:`xrdnb.distortions.distort`).
    target
        ground-truth pattern ``(P,)`` on the grid of ``config.simulator_settings()``.
    config
        see :class:`GDConfig`.
    progress
        show a tqdm bar with the step and the batch's best and median loss (a string
        is used as its description).
    callback
        called with the state after every ``callback_every``-th update (``state.step``,
        ``state.loss`` ``(B,)``, ``state.params``, ``state.status``; read them, do not
        change them); returning ``True`` ends the run there, as if the budget ran out.
        It does not change the numbers of the run.
    callback_every
        steps between calls of ``callback`` (≥ 1).

    Returns
    -------
    GDResult
    """
    return run_batched_gradient_descent(
        [crystal], [target], [config], progress=progress, callback=callback, callback_every=callback_every
    )[0]


def run_batched_gradient_descent(
    crystals: Sequence[Crystal],
    targets: Sequence[torch.Tensor],
    configs: Sequence[GDConfig],
    *,
    progress: bool | str = True,
    callback: Callback | None = None,
    callback_every: int = 1,
) -> list[GDResult]:
    """:func:`run_gradient_descent` for several runs of one structure and mode, as one batch.

    The runs may differ in loss, learning rate, projector and stopping rule; they advance
    together (:func:`init_batched_state`), which on a GPU replaces one small program per
    run by one large one, and on any device keeps the batch full while the copies of
    some runs have stopped. Returns one :class:`GDResult` per run, as separate runs give.
    ``callback`` and ``callback_every`` are those of :func:`run_gradient_descent`.
    """
    from tqdm.auto import tqdm

    if callback_every < 1:
        raise ValueError(f"callback_every must be >= 1, got {callback_every}")
    retain_freed_memory()  # no per-step page-fault storm on glibc (xrdnb.memory)
    targets = [t.to(dtype=c.dtype, device=c.device) for t, c in zip(targets, crystals, strict=True)]
    state = init_batched_state(crystals, targets, configs)
    budget = max(c.max_steps for c in configs)
    bar = tqdm(
        total=budget,
        desc=progress if isinstance(progress, str) else "gradient descent",
        disable=not progress,
        leave=False,
        mininterval=1.0,
    )
    try:
        while bool(state.active.any()) and state.step < budget:
            gd_step(state)
            bar.update(1)
            if state.step % 50 == 0:
                alive = state.loss[state.active]
                if len(alive):
                    bar.set_postfix(
                        best=f"{float(alive.min()):.4f}", median=f"{float(alive.median()):.4f}", running=len(alive)
                    )
            if callback is not None and state.step % callback_every == 0 and callback(state):
                state.status[state.active] = STOP_REASONS.index("max_steps")  # stopped by the callback
                break
    finally:
        bar.close()
    return _results(state)
