"""The energy baseline: CHGNet relaxation and CHGNet energies (SI §1.4, §1.8).

This is the CHGNet/ASE edge of the package. The study relaxes the same distorted
structures that gradient descent on XRD similarity starts from, with the universal
interatomic potential CHGNet (Deng et al., Nat. Mach. Intell. 2023), whose weights ship
inside the ``chgnet`` wheel (no download):

* coordinate distortions: ASE's ``BFGS`` on the atomic positions, cell fixed;
* lattice distortions: ``BFGS`` on ASE's ``FrechetCellFilter`` (positions and cell together);
* stop when the largest force — for the cell filter including its stress components —
  is below ``fmax`` = 0.02 eV/Å (SI), or after ``max_steps`` optimizer steps (a choice of
  this project; the SI states no limit);
* optionally (beyond the paper) under a symmetry constraint, the counterpart of the
  constrained gradient descent: ``symprec`` keeps the space group of the starting
  structure (ASE's ``FixSymmetry``), whose lattice the caller projects onto the ground
  truth's crystal family first (:func:`xrdnb.symmetry.project_lattice`).

The model is loaded once per process and device (:func:`load_model` is cached) and runs on
the CPU or a CUDA device. Energies are CHGNet's, in eV per atom.

>>> import xrdnb
>>> from xrdnb.relax import chgnet_energies
>>> e = chgnet_energies([xrdnb.load_structure("SrTe")])
>>> e.shape, bool(-5.0 < e[0] < -2.0)
((1,), True)
"""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from pymatgen.core import Structure

from .crystal import Crystal
from .device import resolve_device

__all__ = [
    "FMAX",
    "load_model",
    "Relaxation",
    "relax",
    "relax_many",
    "relax_cell_for",
    "lattice_deviation",
    "lattice_errors",
    "chgnet_energies",
    "energy_fn",
    "energy_gradients",
    "EV_PER_A3_PER_GPA",
]

EV_PER_A3_PER_GPA = 1.0 / 160.21766208
"""1 GPa in eV/Å³ (CHGNet predicts stresses in GPa)."""

FMAX = 0.02
"""Force threshold of the relaxations, eV/Å (SI §1.4)."""


@functools.cache
def _load_model(device: str):
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints its size on loading
        model = CHGNet.load(use_device=device, verbose=False)
    model.eval()
    return model


def load_model(device: str | torch.device | None = "cpu"):
    """The pretrained CHGNet model on ``device``, loaded once per process and device.

    Parameters
    ----------
    device
        see :func:`xrdnb.device.resolve_device`.

    Returns
    -------
    object
        the ``chgnet.model.CHGNet`` model, the same object on every call with the same
        device (``functools.lru_cache``).
    """
    return _load_model(resolve_device(device))


def relax_cell_for(noise_type: str) -> bool:
    """Whether the relaxation of a distortion of ``noise_type`` moves the cell (SI §1.4).

    Parameters
    ----------
    noise_type
        ``"lattice"`` (FrechetCellFilter + BFGS: True) or ``"coordinates"`` (BFGS: False).

    Returns
    -------
    bool
    """
    if noise_type not in ("lattice", "coordinates"):
        raise ValueError(f"unknown noise type {noise_type!r}; valid: 'lattice', 'coordinates'")
    return noise_type == "lattice"


@dataclass
class Relaxation:
    """Outcome of one CHGNet relaxation.

    Attributes
    ----------
    structure
        the final pymatgen ``Structure``.
    energies
        ``(T,)`` CHGNet energy (eV/atom) at the start and after each optimizer step,
        ``T = steps + 1``.
    steps
        optimizer steps taken (≤ the step limit).
    converged
        True when the largest force (with the cell filter: including its stress
        components) fell below ``fmax`` within the step limit; False when the limit ran out.
    fmax
        the largest force at the end (eV/Å).
    relax_cell
        whether the cell was relaxed (FrechetCellFilter).
    space_group
        with a symmetry constraint: the Hermann–Mauguin symbol kept during the
        relaxation (spglib's, at ``symprec``); None without one.
    """

    structure: Structure
    energies: np.ndarray
    steps: int
    converged: bool
    fmax: float
    relax_cell: bool
    space_group: str | None = None


def _one_blas_thread():
    """Limit BLAS/LAPACK to one thread while the optimizer runs.

    The cell filter's matrix exponential and logarithm and BFGS's solves work on tiny
    matrices; a multi-threaded BLAS only adds synchronisation, which on a busy machine made
    each 3×3 solve take milliseconds (15× slower relaxations). Uses ``threadpoolctl``
    (installed with scikit-learn) when available.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _calculator(model, device: str):
    from chgnet.model.dynamics import CHGNetCalculator

    with contextlib.redirect_stdout(io.StringIO()):  # the calculator prints its device
        return CHGNetCalculator(model=model, use_device=device)


def relax(
    structure,
    *,
    relax_cell: bool = True,
    fmax: float = FMAX,
    max_steps: int = 500,
    device: str | torch.device | None = "cpu",
    model=None,
    symprec: float | None = None,
) -> Relaxation:
    """Relax one structure with CHGNet: BFGS, on a FrechetCellFilter when ``relax_cell``.

    Parameters
    ----------
    structure
        a pymatgen ``Structure``.
    relax_cell
        relax the cell too (lattice distortions) or only the positions (coordinate
        distortions); see :func:`relax_cell_for`.
    fmax
        force threshold, eV/Å (SI: 0.02).
    max_steps
        step limit of the optimizer (≥ 0).
    device
        see :func:`xrdnb.device.resolve_device`.
    model
        a CHGNet model; default :func:`load_model` on ``device``.
    symprec
        if given, keep the space group that spglib finds in ``structure`` at this
        tolerance (Å): ASE's ``FixSymmetry`` symmetrises forces, stresses and steps, so
        the relaxation cannot leave it. A lattice-distorted copy has lost its symmetry;
        project its lattice onto the crystal family first
        (:func:`xrdnb.symmetry.project_lattice`; the fractional coordinates are the
        ground truth's), as the constrained gradient descent does.

    Returns
    -------
    Relaxation

    Examples
    --------
    A sheared copy of cubic Au₂S, its lattice projected back onto the cubic family, relaxes
    with its space group kept (the same as the ground truth's):

    >>> import xrdnb
    >>> from xrdnb.distortions import distort
    >>> from xrdnb.symmetry import project_lattice
    >>> copy = distort(xrdnb.crystal_from_structure(xrdnb.load_structure("Au2S")), "lattice", 0.1, 1, seed=0)
    >>> start = copy.with_lattice(project_lattice(copy.lattice, "cubic")).to_structures()[0]
    >>> relax(start, symprec=0.01).space_group
    'Pn-3m'
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    from pymatgen.io.ase import AseAtomsAdaptor

    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    if symprec is not None and not symprec > 0:
        raise ValueError(f"symprec must be a positive tolerance in Å (or None for no constraint), got {symprec}")
    device = resolve_device(device)
    model = load_model(device) if model is None else model
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = _calculator(model, device)
    space_group = None
    if symprec is not None:
        from ase.constraints import FixSymmetry
        from ase.spacegroup.symmetrize import check_symmetry

        dataset = check_symmetry(atoms, symprec)
        space_group = getattr(dataset, "international", None) or dataset["international"]  # spglib >= 2.5: attributes
        atoms.set_constraint(FixSymmetry(atoms, symprec=symprec))
    target: Any = FrechetCellFilter(atoms) if relax_cell else atoms  # BFGS takes either (ASE's filters act as Atoms)
    n_atoms = len(atoms)
    energies: list[float] = []
    with warnings.catch_warnings(), _one_blas_thread():
        warnings.simplefilter("ignore")  # CHGNet's tensor-to-scalar warnings
        optimizer = BFGS(target, logfile=None)
        optimizer.attach(lambda: energies.append(float(atoms.get_potential_energy()) / n_atoms), interval=1)
        converged = bool(optimizer.run(fmax=fmax, steps=max_steps))
        forces = target.get_forces()
    atoms.set_constraint()  # the symmetry constraint has done its work; pymatgen would warn about it
    final = AseAtomsAdaptor.get_structure(atoms)
    return Relaxation(
        structure=final,
        energies=np.asarray(energies, dtype=np.float64),
        steps=int(optimizer.nsteps),
        converged=converged,
        fmax=float(np.sqrt((forces**2).sum(axis=1)).max()) if len(forces) else 0.0,
        relax_cell=relax_cell,
        space_group=space_group,
    )


def _relax_in_worker(index, structure, kwargs):
    torch.set_num_threads(1)
    return relax(structure, **kwargs)


WORKER_PRELOAD = ("torch", "pymatgen.core", "ase", "chgnet.model", "xrdnb.relax")
"""Modules the local workers' forkserver imports once (:func:`xrdnb.workers.run_tasks`)."""


def relax_many(
    structures: Sequence,
    *,
    relax_cell: bool = True,
    fmax: float = FMAX,
    max_steps: int = 500,
    device: str | torch.device | None = "cpu",
    workers: int = 0,
    symprec: float | None = None,
) -> list[Relaxation]:
    """:func:`relax` for each structure, in this process or on ``workers`` local processes.

    Parameters
    ----------
    structures
        pymatgen ``Structure`` objects (e.g. ``Crystal.to_structures()`` of distorted copies).
    relax_cell, fmax, max_steps, device, symprec
        see :func:`relax`.
    workers
        0: one after the other in this process (one model, loaded once); N > 0: N
        single-threaded CPU processes of :func:`xrdnb.workers.run_tasks` (the package's one
        runner), each loading the model once. Relaxations are independent, so the results
        do not depend on ``workers``. A relaxation that raises stops the call with its error.

    Returns
    -------
    list of Relaxation
        in the order of ``structures``.
    """
    from .workers import run_tasks

    structures = list(structures)
    kwargs: dict[str, Any] = dict(relax_cell=relax_cell, fmax=fmax, max_steps=max_steps, device=device, symprec=symprec)
    if workers and len(structures) > 1:
        if resolve_device(device) != "cpu":
            raise ValueError("workers > 0 runs on CPU processes; use workers=0 with a GPU")
        # largest structures first, so that a long relaxation does not start last
        order = sorted(range(len(structures)), key=lambda k: -len(structures[k]))
        results: dict[int, Relaxation] = {}
        run_tasks(
            _relax_in_worker,
            [(k, structures[k], kwargs) for k in order],
            on_result=lambda task, result: results.update({task[0]: result}),
            workers=min(workers, len(structures)),
            preload=WORKER_PRELOAD,
        )
        return [results[k] for k in range(len(structures))]
    model = load_model(device)
    return [relax(s, model=model, **kwargs) for s in structures]


def lattice_deviation(structure, reference, *, search_tol: float = 0.1) -> float:
    """Largest relative difference of the six lattice parameters, over the best-matching basis.

    The lattice of ``structure`` is compared with that of ``reference`` in every basis of
    it whose lengths lie within ``search_tol`` (relative) and angles within
    ``100·search_tol`` degrees of the reference's (pymatgen's ``Lattice.find_all_mappings``),
    so that an equivalent cell in another setting (e.g. b' = a + b) counts as the same
    lattice. Angles are compared relative to the reference's angles.

    Parameters
    ----------
    structure, reference
        pymatgen ``Structure`` objects (or ``Lattice`` objects).
    search_tol
        how far a basis may be from the reference to be considered.

    Returns
    -------
    float
        ``min over bases of max_i |p_i / p_ref,i − 1|``; ``inf`` when no basis is within
        ``search_tol``.

    Examples
    --------
    >>> from pymatgen.core import Lattice
    >>> ref = Lattice.cubic(5.0)
    >>> sheared = Lattice([[5.0, 0, 0], [5.0, 5.05, 0], [0, 0, 5.0]])  # b' = a + b, b 1 % longer
    >>> round(lattice_deviation(sheared, ref), 4)
    0.01
    """
    from pymatgen.core import Lattice

    lattice = structure if isinstance(structure, Lattice) else structure.lattice
    ref = reference if isinstance(reference, Lattice) else reference.lattice
    target = np.array(ref.parameters)
    best = np.inf
    for _, _, scale in lattice.find_all_mappings(
        ref, ltol=search_tol, atol=100 * search_tol, skip_rotation_matrix=True
    ):
        if abs(round(np.linalg.det(scale))) != 1:
            continue
        params = np.array(Lattice(scale @ lattice.matrix).parameters)
        best = min(best, float(np.abs(params / target - 1).max()))
    return best


def lattice_errors(structure, reference, *, search_tol: float = 0.5) -> tuple[float, float]:
    """Largest relative length error and largest angle error (degrees), over the best-matching basis.

    As :func:`lattice_deviation`, the lattice of ``structure`` is compared with that of
    ``reference`` in every basis of it within ``search_tol`` of the reference (lengths
    relative, angles ``100·search_tol`` degrees), so that a cell in another setting counts as
    the same lattice. The basis kept is the one with the smallest ``max(length error,
    angle error / 100°)`` (1° weighs as 1 %, the scale of ``find_all_mappings``' tolerances).

    Parameters
    ----------
    structure, reference
        pymatgen ``Structure`` objects (or ``Lattice`` objects).
    search_tol
        how far a basis may be from the reference to be considered.

    Returns
    -------
    (float, float)
        ``max_i |l_i / l_ref,i − 1|`` over a, b, c and ``max_i |θ_i − θ_ref,i|`` (degrees)
        over α, β, γ; ``(inf, inf)`` when no basis is within ``search_tol``.

    Examples
    --------
    >>> from pymatgen.core import Lattice
    >>> ref = Lattice.cubic(5.0)
    >>> sheared = Lattice([[5.0, 0, 0], [5.0, 5.05, 0], [0, 0, 5.0]])  # b' = a + b, b 1 % longer
    >>> tuple(round(x, 4) for x in lattice_errors(sheared, ref))
    (0.01, 0.0)
    """
    from pymatgen.core import Lattice

    lattice = structure if isinstance(structure, Lattice) else structure.lattice
    ref = reference if isinstance(reference, Lattice) else reference.lattice
    target = np.array(ref.parameters)
    best, out = np.inf, (np.inf, np.inf)
    for _, _, scale in lattice.find_all_mappings(
        ref, ltol=search_tol, atol=100 * search_tol, skip_rotation_matrix=True
    ):
        if abs(round(np.linalg.det(scale))) != 1:
            continue
        params = np.array(Lattice(scale @ lattice.matrix).parameters)
        length = float(np.abs(params[:3] / target[:3] - 1).max())
        angle = float(np.abs(params[3:] - target[3:]).max())
        if max(length, angle / 100) < best:
            best, out = max(length, angle / 100), (length, angle)
    return out


def chgnet_energies(
    structures: Sequence,
    *,
    device: str | torch.device | None = "cpu",
    batch_size: int = 64,
    model=None,
) -> np.ndarray:
    """CHGNet energies (eV/atom) of many structures, predicted in batches.

    Parameters
    ----------
    structures
        pymatgen ``Structure`` objects.
    device
        see :func:`xrdnb.device.resolve_device`.
    batch_size
        structures per CHGNet batch (``predict_structure``'s ``batch_size``).
    model
        a CHGNet model; default :func:`load_model` on ``device``.

    Returns
    -------
    ndarray
        ``(M,)`` float64 energies per atom.
    """
    structures = list(structures)
    if not structures:
        return np.zeros(0)
    predictions = _predict(structures, "e", device=device, batch_size=batch_size, model=model)
    return np.array([float(p["e"]) for p in predictions], dtype=np.float64)


def _predict(structures: list, task: str, *, device, batch_size: int, model) -> list[dict]:
    """CHGNet's ``predict_structure`` on a list of structures: one dict per structure, warnings silenced."""
    model = load_model(device) if model is None else model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictions = model.predict_structure(structures, task=task, batch_size=batch_size)
    return [predictions] if isinstance(predictions, dict) else list(predictions)


def energy_fn(
    *, device: str | torch.device | None = "cpu", batch_size: int = 64, model=None
) -> Callable[[Crystal], torch.Tensor]:
    """``f(Crystal) -> (B,)`` CHGNet energies (eV/atom), for :func:`xrdnb.landscape.evaluate_lattices`.

    Parameters
    ----------
    device, batch_size, model
        see :func:`chgnet_energies`.

    Returns
    -------
    callable
        maps a batch of ``B`` copies to a float64 CPU tensor ``(B,)`` of energies per atom
        (copies become pymatgen structures at this edge).
    """

    def value_fn(crystal: Crystal) -> torch.Tensor:
        values = chgnet_energies(crystal.to_structures(), device=device, batch_size=batch_size, model=model)
        return torch.as_tensor(values, dtype=torch.float64)

    return value_fn


def energy_gradients(
    crystal: Crystal, *, device: str | torch.device | None = "cpu", batch_size: int = 64, model=None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""CHGNet energies per atom ``(B,)`` (eV) and their gradients ``(B, 6)`` in the six lattice parameters.

    The gradient comes from CHGNet's stress σ (one prediction per copy, not finite
    differences). A change :math:`dp` of the parameters changes the metric tensor by
    :math:`dG = (\partial G/\partial p)\,dp` (:func:`xrdnb.lattice.metric_tensor`, which
    does not depend on how the cell is oriented), i.e. strains the cell by the symmetric
    :math:`\varepsilon = \tfrac12 L^{-1}\,dG\,L^{-\mathsf T}` (rows of :math:`L` the lattice
    vectors of the structure CHGNet saw), and the energy per atom by
    :math:`dE = (V/N)\,\sigma:\varepsilon`. Units: eV/atom per Å for the lengths and per
    degree for the angles; float64 CPU tensors. The fractional coordinates are held fixed
    (lattice mode).
    """
    from .lattice import metric_tensor

    structures = crystal.to_structures()
    predictions = _predict(structures, "efs", device=device, batch_size=batch_size, model=model)
    params = crystal.lattice.detach().to(dtype=torch.float64, device="cpu").requires_grad_(True)
    metric = metric_tensor(params)  # (B, 3, 3)
    jacobian = torch.stack(
        [torch.autograd.grad(metric[:, i, j].sum(), params, retain_graph=True)[0] for i in range(3) for j in range(3)],
        dim=1,
    ).reshape(len(params), 3, 3, 6)  # dG_ij / dp_k, copies independent
    energies, gradients = [], []
    for structure, prediction, dg in zip(structures, predictions, jacobian.numpy(), strict=True):
        inverse = np.linalg.inv(structure.lattice.matrix)
        sigma = np.asarray(prediction["s"], dtype=np.float64) * EV_PER_A3_PER_GPA
        strain = 0.5 * np.einsum("ai,ijk,bj->abk", inverse, dg, inverse)  # (3, 3, 6)
        gradients.append(structure.volume / len(structure) * np.einsum("ab,abk->k", sigma, strain))
        energies.append(float(prediction["e"]))
    return torch.tensor(energies, dtype=torch.float64), torch.tensor(np.array(gradients), dtype=torch.float64)
