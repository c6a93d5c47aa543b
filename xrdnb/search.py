r"""Searches beyond gradient descent: global strategies around the batched GD engine (chapter 8).

The paper ends on a negative result: the XRD loss is too rough for plain gradient descent
(GD). The classical answers to a rough landscape are to start more often, to smooth it, to
search with a population, or to hop between basins; the paper's own suggestion is to add a
physical energy. This module makes each of them a function of the same form,

.. code-block:: python

    result = method(start, target, config, budget, seed=..., **hyper_parameters)

on lattice-noise copies ``start`` (a :class:`~xrdnb.crystal.Crystal` of ``B`` copies), the
target pattern ``target`` ``(P,)`` and the :class:`~xrdnb.optimize.GDConfig` of the GD it
builds on (loss, learning rate, stopping rule, crystal-family constraint). ``budget`` is the
number of *pattern evaluations* each copy may use: a GD step costs one (one simulated
pattern with its gradient), and so does every pattern a derivative-free search simulates.
That is the currency of a fair comparison: each method gets the evaluations that SI-protocol
GD used on the same copies (:attr:`SearchResult.evaluations` says how many it did use;
:attr:`SearchResult.energy_evaluations` counts CHGNet calls separately). A gradient
evaluation costs about three times a pattern alone in wall time, so wall time is reported
beside the budget, never folded into it.

Methods (:data:`METHODS`):

* :func:`multistart` — restarts drawn around each start with the study's own lattice strain
  (:func:`xrdnb.distortions.distort_lattice`), GD from each, the lowest final loss kept.
* :func:`width_annealing` — GD on patterns broadened by a Gaussian of decreasing FWHM
  (coarse to fine, ending at the SI's Caglioti widths), the idea of Crystalyze's structure
  snap: broad peaks overlap over a wider range of lattices, so the early landscape is smoother.
* :func:`differential_evolution` — SciPy's differential evolution (a population search;
  Storn & Price 1997) on the six lattice parameters within a box around the start, its best
  point then polished by GD with the rest of the budget (GALLOP's pairing of a global
  population with local gradient steps).
* :func:`hybrid` — GD on the XRD loss plus ``weight`` × the CHGNet energy per atom, the
  "diffraction fidelity with physical-energy guidance" the paper suggests; at weight 0 it is
  plain GD.
* :func:`basin_hopping` — Monte Carlo over GD minima (Wales & Doye 1997): perturb the current
  minimum, descend, accept by the Metropolis rule, keep the best. SciPy's ``basinhopping``
  runs one walker at a time; this one moves every copy's walker in one batch.

Every method honours ``config.constrained``: projected GD in the crystal family, and
candidate lattices projected (:func:`xrdnb.symmetry.project_lattice`) before they are
evaluated. The result's ``crystal`` holds each copy's best end point (lowest loss at the SI's
widths) for the matcher (:func:`xrdnb.evaluate.evaluate_copies`).

>>> import xrdnb
>>> from xrdnb.optimize import GDConfig
>>> from xrdnb.distortions import distort_lattice
>>> truth = xrdnb.crystal_from_structure(xrdnb.load_structure("U2Ti"))
>>> start = distort_lattice(truth, 0.02, n_copies=2, seed=0)
>>> config = GDConfig(lr=2e-3, max_steps=60, patience=20, tol=1e-6)
>>> result = multistart(start, xrdnb.simulate_pattern(truth)[0], config, budget=60, restarts=2, seed=0)
>>> result.crystal.lattice.shape, bool((result.evaluations <= 60).all())
(torch.Size([2, 6]), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from .crystal import Crystal
from .distortions import distort_lattice
from .lattice import is_valid_lattice
from .losses import loss_function
from .optimize import GDConfig, gd_step, init_state
from .pattern import simulate_pattern
from .symmetry import project_lattice
from .vocabulary import SEARCH_METHODS

__all__ = [
    "METHODS",
    "SearchResult",
    "pattern_losses",
    "gaussian_broadening",
    "descend",
    "gradient_descent",
    "multistart",
    "width_annealing",
    "differential_evolution",
    "basin_hopping",
    "hybrid",
]

METHODS = SEARCH_METHODS
"""The searches of chapter 8, by the names the comparison tables use (:data:`xrdnb.vocabulary.SEARCH_METHODS`)."""


@dataclass(frozen=True)
class SearchResult:
    """Outcome of a search on ``B`` copies.

    Attributes
    ----------
    crystal
        each copy's best end point (``B`` copies).
    loss
        ``(B,)`` its loss on the SI's widths (``+inf`` for an invalid cell).
    evaluations
        ``(B,)`` pattern evaluations each copy used (GD steps plus derivative-free patterns).
    energy_evaluations
        ``(B,)`` CHGNet energy evaluations (0 for pattern-only searches).
    method
        the name in :data:`METHODS`.
    """

    crystal: Crystal
    loss: torch.Tensor
    evaluations: torch.Tensor
    energy_evaluations: torch.Tensor
    method: str


def _check_budget(budget: int, least: int, method: str) -> None:
    if budget < least:
        raise ValueError(f"{method}: a budget of {budget} pattern evaluations per copy is below its least, {least}")


def pattern_losses(crystal: Crystal, target: torch.Tensor, config: GDConfig) -> torch.Tensor:
    """The loss ``(B,)`` of ``config`` of every copy of ``crystal`` against ``target`` ``(P,)``, without gradients.

    An invalid lattice gets ``+inf``. With ``config.constrained`` the lattices are projected
    onto the crystal family first. Each copy costs one pattern evaluation.
    """
    lattice = crystal.lattice
    if config.constrained:
        lattice = project_lattice(lattice, str(config.family))
    out = torch.full((crystal.batch_size,), math.inf, dtype=crystal.dtype, device=crystal.device)
    index = torch.nonzero(is_valid_lattice(lattice)).flatten()
    if len(index):
        with torch.no_grad():
            pattern = simulate_pattern(crystal.select(index).with_lattice(lattice[index]), config.simulator_settings())
            out[index] = loss_function(config.loss)(pattern, target.to(pattern.dtype))
    return out


def gaussian_broadening(pattern: torch.Tensor, fwhm: float, step: float) -> torch.Tensor:
    """``pattern`` ``(B, P)`` convolved with a unit-area Gaussian of FWHM ``fwhm`` (° 2θ) on a grid of ``step``.

    An extra Gaussian width adds to a peak's own width (in quadrature for Gaussian
    profiles), so this is the pattern of broader peaks, differentiable. ``fwhm`` 0 returns
    ``pattern`` itself. The kernel is cut at ±3σ; the pattern is zero beyond its ends.
    """
    if fwhm < 0 or step <= 0:
        raise ValueError(f"need fwhm >= 0 and step > 0, got {fwhm}, {step}")
    if fwhm == 0:
        return pattern
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0))) / step  # in grid points
    half = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-half, half + 1, dtype=pattern.dtype, device=pattern.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).reshape(1, 1, -1)
    return torch.nn.functional.conv1d(pattern.unsqueeze(1), kernel, padding=half).squeeze(1)


def descend(start: Crystal, target: torch.Tensor, config: GDConfig, steps: int, loss_fn=None, penalty=None):
    """GD of every copy for at most ``steps`` updates: ``(end crystal, loss (B,), steps used (B,))``.

    ``loss_fn(pattern, target)`` replaces the loss of ``config`` for the updates (e.g. on
    broadened patterns) and ``penalty`` adds a term (:func:`xrdnb.optimize.gd_step`); the
    returned loss is always ``config``'s alone, at the SI's widths.
    """
    state = init_state(
        start, target.to(dtype=start.dtype, device=start.device), replace(config, max_steps=steps, record_every=0)
    )
    while bool(state.active.any()) and state.step < steps:
        gd_step(state, loss_fn=loss_fn, penalty=penalty)
    end = state.crystal.detach()
    return end, pattern_losses(end, target, config), state.steps.clone()


def _best(crystals: list[Crystal], losses: list[torch.Tensor]) -> tuple[Crystal, torch.Tensor]:
    """Per copy, the lattice of the lowest loss among several runs of the same ``B`` copies."""
    stack = torch.stack(losses)  # (R, B)
    pick = torch.nan_to_num(stack, nan=math.inf).argmin(dim=0)
    lattice = torch.stack([c.lattice for c in crystals])[pick, torch.arange(stack.shape[1])]
    return crystals[0].with_lattice(lattice), stack[pick, torch.arange(stack.shape[1])]


def _result(crystal, loss, evaluations, method: str) -> SearchResult:
    evaluations = torch.as_tensor(evaluations, dtype=torch.int64)
    return SearchResult(crystal, loss, evaluations, torch.zeros_like(evaluations), method)


def gradient_descent(
    start: Crystal, target: torch.Tensor, config: GDConfig, budget: int, *, seed: int = 0
) -> SearchResult:
    """Plain GD for at most ``budget`` steps: the baseline of the comparison, in the common signature.

    ``seed`` is unused (GD is deterministic) and kept for the common signature.
    """
    _check_budget(budget, 1, "gradient_descent")
    end, loss, used = descend(start, target, config, budget)
    return _result(end, loss, used, "gradient_descent")


def multistart(
    start: Crystal,
    target: torch.Tensor,
    config: GDConfig,
    budget: int,
    *,
    restarts: int = 4,
    spread: float = 0.05,
    seed: int = 0,
) -> SearchResult:
    """Multi-start GD: each copy and ``restarts − 1`` strained versions of it (σ = ``spread``), GD from each.

    Each of the ``restarts`` runs gets ``budget // restarts`` steps; the copy's result is the
    run of the lowest final loss. The first run starts from the copy itself.
    """
    if restarts < 1 or spread < 0:
        raise ValueError(f"need restarts >= 1 and spread >= 0, got {restarts}, {spread}")
    _check_budget(budget, restarts, "multistart")
    steps = budget // restarts
    rng = np.random.default_rng(seed)
    lattices = [start.lattice]
    for _ in range(restarts - 1):
        seeds = rng.integers(0, 2**63, size=start.batch_size)
        lattices.append(
            torch.cat([distort_lattice(start.select([i]), spread, 1, int(s)).lattice for i, s in enumerate(seeds)])
        )
    everyone = replace(start, lattice=torch.cat(lattices), frac_coords=start.frac_coords.repeat(restarts, 1, 1))
    end, loss, used = descend(everyone, target, config, steps)
    b = start.batch_size
    runs = [end.select(list(range(r * b, (r + 1) * b))) for r in range(restarts)]
    best, best_loss = _best(runs, list(loss.reshape(restarts, b)))
    return _result(best, best_loss, used.reshape(restarts, b).sum(dim=0), "multistart")


def width_annealing(
    start: Crystal,
    target: torch.Tensor,
    config: GDConfig,
    budget: int,
    *,
    widths: tuple[float, ...] = (1.0, 0.5, 0.2, 0.0),
    seed: int = 0,
) -> SearchResult:
    """GD on patterns broadened by Gaussians of FWHM ``widths`` (° 2θ, coarse to fine, the last 0).

    Each stage gets ``budget // len(widths)`` steps and starts afresh (new Adam moments and
    stopping rule) where the previous stage ended; simulated and target patterns are
    broadened alike (:func:`gaussian_broadening`), so the last stage, at width 0, is plain GD
    on the SI's widths. ``seed`` is unused (the method is deterministic) and kept for the
    common signature.
    """
    if not widths or widths[-1] != 0 or any(w < 0 for w in widths):
        raise ValueError(f"widths must be non-negative and end at 0 (the SI's widths), got {widths}")
    _check_budget(budget, len(widths), "width_annealing")
    steps = budget // len(widths)
    base = loss_function(config.loss)
    step = config.simulator_settings().two_theta_step
    crystal, used = start, torch.zeros(start.batch_size, dtype=torch.int64)
    loss = torch.full((start.batch_size,), math.inf, dtype=start.dtype)
    for width in widths:

        def broadened(pattern, goal, width=width):
            return base(gaussian_broadening(pattern, width, step), gaussian_broadening(goal.unsqueeze(0), width, step))

        crystal, loss, spent = descend(crystal, target, config, steps, loss_fn=None if width == 0 else broadened)
        used += spent
    return _result(crystal, loss, used, "width_annealing")


def differential_evolution(
    start: Crystal,
    target: torch.Tensor,
    config: GDConfig,
    budget: int,
    *,
    population: int = 10,
    length_span: float = 0.3,
    angle_span: float = 15.0,
    search_fraction: float = 0.5,
    seed: int = 0,
) -> SearchResult:
    """SciPy's differential evolution on the lattice within a box around each start, then GD polish.

    The box is each length × (1 ± ``length_span``) and each angle ± ``angle_span`` degrees
    (within (1°, 179°)). The search uses ``search_fraction`` of the budget, ``population`` × 6
    patterns per generation (SciPy's ``popsize`` per parameter, all of a generation simulated
    as one batch), and GD from its best lattice the rest. The start itself is a member of the
    initial population, so the search never ends above the start's loss. Copies run one
    after another.
    """
    from scipy.optimize import differential_evolution as scipy_de

    per_generation = population * 6
    search = int(budget * search_fraction)
    generations = search // per_generation - 1  # SciPy evaluates the initial population too
    if generations < 1 or not 0 < search_fraction < 1:
        raise ValueError(
            f"differential_evolution: a budget of {budget} with search_fraction {search_fraction} allows "
            f"{max(generations, 0)} generations of {per_generation}; need at least 1 (budget >= "
            f"{math.ceil(2 * per_generation / max(search_fraction, 1e-9))})"
        )
    found, spent = [], []
    rng = np.random.default_rng(seed)
    for i in range(start.batch_size):
        copy = start.select([i])
        centre = copy.lattice[0].double().cpu().numpy()
        bounds = [(v * (1 - length_span), v * (1 + length_span)) for v in centre[:3]]
        bounds += [(max(1.0, v - angle_span), min(179.0, v + angle_span)) for v in centre[3:]]

        def objective(x, copy=copy):  # (6, S) -> (S,)
            lattice = torch.as_tensor(np.atleast_2d(x.T), dtype=copy.dtype, device=copy.device)
            return (
                pattern_losses(copy.repeat(len(lattice)).with_lattice(lattice), target, config).double().cpu().numpy()
            )

        outcome = scipy_de(
            objective,
            bounds,
            popsize=population,
            maxiter=generations,
            tol=0.0,
            polish=False,
            vectorized=True,
            updating="deferred",
            seed=int(rng.integers(0, 2**32)),
            init="latinhypercube",
            x0=np.clip(centre, [b[0] for b in bounds], [b[1] for b in bounds]),  # the start is in the population
        )
        spent.append(int(outcome.nfev))
        lattice = torch.as_tensor(outcome.x, dtype=copy.dtype).unsqueeze(0)
        found.append(copy.with_lattice(project_lattice(lattice, str(config.family)) if config.constrained else lattice))
    best = replace(start, lattice=torch.cat([c.lattice for c in found]))
    evaluations = torch.tensor(spent, dtype=torch.int64)
    steps = budget - int(evaluations.max())
    if steps < 1:
        return _result(best, pattern_losses(best, target, config), evaluations, "differential_evolution")
    end, loss, used = descend(best, target, config, steps)
    return _result(end, loss, evaluations + used, "differential_evolution")


def basin_hopping(
    start: Crystal,
    target: torch.Tensor,
    config: GDConfig,
    budget: int,
    *,
    hops: int = 4,
    step_size: float = 0.05,
    temperature: float = 0.01,
    seed: int = 0,
) -> SearchResult:
    """Batched basin hopping: GD, then ``hops − 1`` times strain the current minimum (σ = ``step_size``) and descend.

    A trial minimum replaces the current one by the Metropolis rule at ``temperature`` (in
    units of the loss: −cos lies in [−1, 0]); the copy's result is the best minimum seen.
    Each descent gets ``budget // hops`` steps.
    """
    if hops < 1 or step_size < 0 or temperature <= 0:
        raise ValueError(f"need hops >= 1, step_size >= 0 and temperature > 0, got {hops}, {step_size}, {temperature}")
    _check_budget(budget, hops, "basin_hopping")
    steps = budget // hops
    rng = np.random.default_rng(seed)
    current, current_loss, used = descend(start, target, config, steps)
    best, best_loss = current, current_loss
    for _ in range(hops - 1):
        seeds = rng.integers(0, 2**63, size=start.batch_size)
        kicked = torch.cat(
            [distort_lattice(current.select([i]), step_size, 1, int(s)).lattice for i, s in enumerate(seeds)]
        )
        trial, trial_loss, spent = descend(current.with_lattice(kicked), target, config, steps)
        used = used + spent
        gain = (current_loss - trial_loss).double()
        accept = (trial_loss <= current_loss) | (
            torch.from_numpy(rng.random(start.batch_size))
            < torch.exp(torch.nan_to_num(gain, nan=-math.inf) / temperature)
        )
        current, current_loss = _best(
            [trial, current], [torch.where(accept, trial_loss, math.inf), torch.where(accept, math.inf, current_loss)]
        )
        best, best_loss = _best([best, trial], [best_loss, trial_loss])
    return _result(best, best_loss, used, "basin_hopping")


def hybrid(
    start: Crystal,
    target: torch.Tensor,
    config: GDConfig,
    budget: int,
    *,
    weight: float = 0.1,
    energy=None,
    seed: int = 0,
) -> SearchResult:
    """GD on ``loss + weight · E/atom`` (eV), the energy from CHGNet with its stress gradient.

    ``energy(crystal) -> (energies (B,), gradients (B, 6))`` defaults to
    :func:`xrdnb.relax.energy_gradients` on the CPU; each step of each copy calls it once
    (counted in :attr:`SearchResult.energy_evaluations`). At ``weight`` 0 no energy is
    evaluated and the run is plain GD, step for step. ``seed`` is unused (deterministic).
    """
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    _check_budget(budget, 1, "hybrid")
    if weight == 0:
        return replace(gradient_descent(start, target, config, budget), method="hybrid")
    if energy is None:
        from .relax import energy_gradients as energy

    calls = torch.zeros(start.batch_size, dtype=torch.int64)

    def penalty(params, index):
        crystal = start.select(index).with_lattice(params.detach())
        values, gradients = energy(crystal)
        calls[index.cpu()] += 1
        values = values.to(dtype=params.dtype, device=params.device)
        gradients = gradients.to(dtype=params.dtype, device=params.device)
        # value E, gradient dE/dp: a linear surrogate around the current parameters
        return weight * (values + ((params - params.detach()) * gradients).sum(-1))

    end, loss, used = descend(start, target, config, budget, penalty=penalty)
    result = _result(end, loss, used, "hybrid")
    return replace(result, energy_evaluations=calls)
