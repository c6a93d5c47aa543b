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
  cell, or NaN: the copy keeps its last valid parameters and is reported as failed,
  without disturbing the others.

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

from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from .crystal import Crystal
from .lattice import is_valid_lattice
from .losses import loss_function, simulator_overrides
from .memory import retain_freed_memory
from .pattern import DEFAULT_SETTINGS, XRDSettings, simulate_pattern
from .reflections import ReflectionSet, covers, enumerate_reflections
from .scattering import phase_sums
from .symmetry import project_lattice

__all__ = ["GDConfig", "GDState", "GDResult", "init_state", "gd_step", "run_gradient_descent", "STOP_REASONS"]

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

    def simulator_settings(self) -> XRDSettings:
        """The simulator settings with the loss's overrides (e.g. the MSE Miller-index clip)."""
        overrides = simulator_overrides(self.loss)
        return replace(self.settings, **overrides) if overrides else self.settings


@dataclass
class GDState:
    """Dynamic state of a batched run (all tensors have the copies first).

    ``params`` is ``(B, 6)`` in lattice mode and ``(B, N, 3)`` in coordinate mode.
    ``status`` holds indices into :data:`xrdnb.optimize.STOP_REASONS`. In lattice mode
    ``sums`` caches the structure-factor phase sums ``(B, S, K)`` of the fixed coordinates
    over ``reflections`` (:func:`xrdnb.scattering.phase_sums`): only the form factors,
    angles and widths change with the lattice.
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
    sums: tuple[torch.Tensor, torch.Tensor] | None = None
    history_steps: list[int] = field(default_factory=list)
    history_loss: list[torch.Tensor] = field(default_factory=list)
    history_params: list[torch.Tensor] = field(default_factory=list)

    @property
    def active(self) -> torch.Tensor:
        return self.status == 0


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
        return torch.tensor([r == "invalid_lattice" for r in self.stop_reason])


def _with_params(crystal: Crystal, params: torch.Tensor, mode: str) -> Crystal:
    return crystal.with_lattice(params) if mode == "lattice" else crystal.with_frac_coords(params)


def _losses(crystal: Crystal, params: torch.Tensor, target: torch.Tensor, config: GDConfig, reflections, loss_fn, sums=None):
    pattern = simulate_pattern(_with_params(crystal, params, config.mode), config.simulator_settings(), reflections=reflections, sums=sums)
    return loss_fn(pattern, target)


def _phase_sums(crystal: Crystal, reflections: ReflectionSet, config: GDConfig):
    """The phase sums of the fixed coordinates (lattice mode), else None."""
    if config.mode != "lattice":
        return None
    with torch.no_grad():
        return phase_sums(crystal.frac_coords, reflections.hkl.to(crystal.device), crystal.occupancy)


def _enumerate(lattice: torch.Tensor, config: GDConfig) -> ReflectionSet:
    settings = config.simulator_settings()
    valid = is_valid_lattice(lattice)
    return enumerate_reflections(lattice[valid], settings.g_max, margin=config.reflection_margin, hkl_max=settings.hkl_max)


def init_state(crystal: Crystal, target: torch.Tensor, config: GDConfig) -> GDState:
    """Starting state: project the lattice if constrained, enumerate reflections, evaluate the loss."""
    lattice = crystal.lattice.detach()
    if config.constrained:
        lattice = project_lattice(lattice, config.family)
    crystal = crystal.with_lattice(lattice).detach()
    params = (lattice if config.mode == "lattice" else crystal.frac_coords).clone()
    batch = params.shape[0]
    if not bool(is_valid_lattice(crystal.lattice).all()):
        raise ValueError("every starting lattice must be valid (positive lengths, a real cell)")
    reflections = _enumerate(crystal.lattice, config)
    sums = _phase_sums(crystal, reflections, config)
    with torch.no_grad():
        loss = _losses(crystal, params, target, config, reflections, loss_function(config.loss), sums)
    state = GDState(
        crystal=crystal,
        params=params,
        exp_avg=torch.zeros_like(params),
        exp_avg_sq=torch.zeros_like(params),
        step=0,
        steps=torch.zeros(batch, dtype=torch.int64, device=params.device),
        loss=loss.clone(),
        initial_loss=loss.clone(),
        checkpoint_loss=loss.clone(),
        status=torch.zeros(batch, dtype=torch.int64, device=params.device),
        reflections=reflections,
        sums=sums,
    )
    _record(state)
    return state


def _record(state: GDState) -> None:
    state.history_steps.append(state.step)
    state.history_loss.append(state.loss.detach().clone())
    state.history_params.append(state.params.detach().clone())


def gd_step(state: GDState, target: torch.Tensor, config: GDConfig, loss_fn=None) -> GDState:
    """One update of every running copy (in place on ``state``, which is also returned)."""
    loss_fn = loss_fn or loss_function(config.loss)
    index = torch.nonzero(state.active).flatten()
    if len(index) == 0:
        return state
    sub = state.crystal.select(index)
    params = state.params[index].clone().requires_grad_(True)
    sums = None if state.sums is None else (state.sums[0][index], state.sums[1][index])
    loss = _losses(sub, params, target, config, state.reflections, loss_fn, sums)
    (grad,) = torch.autograd.grad(loss.sum(), params)
    state.step += 1
    with torch.no_grad():
        if config.optimizer == "adam":
            beta1, beta2 = config.betas
            m = state.exp_avg[index].mul_(beta1).add_(grad, alpha=1 - beta1)
            v = state.exp_avg_sq[index].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            t = state.steps[index].to(params.dtype) + 1
            shape = (-1,) + (1,) * (params.dim() - 1)
            bias1 = (1 - beta1**t).reshape(shape)
            bias2 = (1 - beta2**t).reshape(shape)
            update = config.lr * (m / bias1) / ((v / bias2).sqrt() + config.eps)
            state.exp_avg[index] = m
            state.exp_avg_sq[index] = v
        else:
            update = config.lr * grad
        new = params.detach() - update
        if config.constrained:
            new = project_lattice(new, config.family)
        lattice_new = new if config.mode == "lattice" else sub.lattice
        ok = is_valid_lattice(lattice_new) & torch.isfinite(new.reshape(len(index), -1)).all(dim=1)
        ok &= torch.isfinite(loss)
        good, bad = index[ok], index[~ok]
        state.params[good] = new[ok]
        state.loss[good] = loss.detach()[ok]
        state.steps[good] += 1
        state.status[bad] = STOP_REASONS.index("invalid_lattice")
        # per-copy early stop: the loss moved less than tol over the last `patience` steps
        if state.step % config.patience == 0:
            done = state.active & ((state.loss - state.checkpoint_loss).abs() < config.tol)
            state.status[done] = STOP_REASONS.index("converged")
            state.checkpoint_loss = state.loss.clone()
        if state.step >= config.max_steps:
            state.status[state.active] = STOP_REASONS.index("max_steps")
        if config.mode == "lattice":
            state.crystal = state.crystal.with_lattice(state.params.detach())
            if not bool(covers(state.reflections, state.params[state.active], config.simulator_settings().g_max).all()):
                state.reflections = _enumerate(state.params, config)
                state.sums = _phase_sums(state.crystal, state.reflections, config)
        else:
            state.crystal = state.crystal.with_frac_coords(state.params.detach())
    if config.record_every and state.step % config.record_every == 0:
        _record(state)
    return state


def _final_losses(state: GDState, target: torch.Tensor, config: GDConfig) -> torch.Tensor:
    with torch.no_grad():
        valid = is_valid_lattice(state.crystal.lattice)
        loss = torch.full_like(state.loss, float("nan"))
        index = torch.nonzero(valid).flatten()
        if len(index):
            reflections = _enumerate(state.crystal.lattice, config)
            loss[index] = _losses(state.crystal.select(index), state.params[index], target, config, reflections, loss_function(config.loss))
        return loss


def run_gradient_descent(
    crystal: Crystal,
    target: torch.Tensor,
    config: GDConfig = GDConfig(),
    *,
    progress: bool | str = True,
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

    Returns
    -------
    GDResult
    """
    from tqdm.auto import tqdm

    retain_freed_memory()  # no per-step page-fault storm on glibc (xrdnb.memory)
    loss_fn = loss_function(config.loss)
    target = target.to(dtype=crystal.dtype, device=crystal.device)
    state = init_state(crystal, target, config)
    bar = tqdm(
        total=config.max_steps,
        desc=progress if isinstance(progress, str) else "gradient descent",
        disable=not progress,
        leave=False,
        mininterval=1.0,
    )
    try:
        while bool(state.active.any()) and state.step < config.max_steps:
            gd_step(state, target, config, loss_fn)
            bar.update(1)
            if state.step % 50 == 0:
                alive = state.loss[state.active]
                if len(alive):
                    bar.set_postfix(best=f"{float(alive.min()):.4f}", median=f"{float(alive.median()):.4f}", running=len(alive))
    finally:
        bar.close()
    if config.max_steps == 0:
        state.status[state.active] = STOP_REASONS.index("max_steps")
    if state.history_steps[-1] != state.step:
        _record(state)
    final = _final_losses(state, target, config)
    return GDResult(
        crystal=state.crystal,
        loss=final,
        initial_loss=state.initial_loss,
        steps=state.steps,
        stop_reason=[STOP_REASONS[int(i)] for i in state.status],
        trajectory_steps=torch.tensor(state.history_steps),
        trajectory_loss=torch.stack(state.history_loss),
        trajectory_params=torch.stack(state.history_params),
    )
