"""The explorer's state, without widgets: a ground truth, a current point, its numbers, a slice, GD runs.

:class:`ExplorerState` is what :class:`xrdnb.explore.Explorer` shows; it imports no
ipywidgets and draws nothing, so it can be driven and tested from plain Python. It holds

* a **ground truth**: a benchmark structure of :data:`xrdnb.vocabulary.BENCHMARK_NAMES`, a
  CIF path or an uploaded CIF (:meth:`ExplorerState.load_cif`);
* a **current point**: lattice ``(6,)`` (a, b, c in Å, α, β, γ in degrees) and fractional
  coordinates ``(N, 3)``, both float64;
* its **pattern**, **similarities** to the ground-truth pattern
  (:func:`xrdnb.losses.all_similarities`, ``"mse"`` holding −MSE), validity and
  ``StructureMatcher`` verdict (:meth:`ExplorerState.compute`);
* **landscape slices** through the ground truth, computed once per structure, pair, metric
  and grid (:meth:`ExplorerState.landscape_slice`);
* the last **gradient-descent run** (:meth:`ExplorerState.run_gd`, the package's loop
  :func:`xrdnb.optimize.run_gradient_descent` with a callback): loss per step, path of
  lattices, stop reason.

Methods raise on bad input (``ValueError``, :class:`xrdnb.structures.StructureError`) and
leave the state as it was; the view turns the exceptions into messages.

>>> state = ExplorerState("Au2S", slice_grid=5)
>>> state.distort("lattice", 0.05, seed=0)
>>> state.run_gd(steps=3)
>>> len(state.loss_history), state.gd_stop_reason
(3, 'max_steps')
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence

import torch

from .crystal import Crystal, crystal_from_structure
from .distortions import distort
from .evaluate import structures_match
from .landscape import Slice, lattice_slice, project_onto_slice, xrd_similarity_fn
from .lattice import is_valid_lattice
from .losses import all_similarities
from .optimize import GDConfig, GDState, run_gradient_descent
from .pattern import DEFAULT_SETTINGS, XRDSettings, simulate_pattern
from .structures import StructureError, crystal_family, load_structure
from .symmetry import project_lattice
from .vocabulary import LATTICE_LABELS, LATTICE_NAMES, LOSS_LABELS, LOSS_NAMES, NOISE_TYPES, SIMILARITY_LABELS

__all__ = ["ExplorerState", "DEFAULT_LR"]

DEFAULT_LR = {"lattice": 1e-2, "coordinates": 1e-3}
"""Default Adam learning rates by gradient-descent mode (those of the ``book`` sweep profile)."""


def _f64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(device="cpu", dtype=torch.float64).clone()


class ExplorerState:
    """Ground truth, current point and last GD run of the explorer (see the module docstring).

    Parameters
    ----------
    structure
        a benchmark name or a CIF path.
    settings
        simulator settings (:class:`xrdnb.pattern.XRDSettings`).
    dtype
        ``torch.float64`` or ``torch.float32`` for every simulation.
    cc_half_width
        half-width (degrees of 2θ) of the cross-correlation's triangle weight.
    length_span, angle_span
        half-width of the slices: relative in a, b, c; degrees in α, β, γ.
    slice_grid
        grid points per axis of a slice (odd: the ground truth is a grid point).

    Attributes
    ----------
    structure_key : str
        name of the ground truth (benchmark name, CIF path or ``"<file> (uploaded)"``).
    structure
        the ground truth as a pymatgen ``Structure``.
    truth : xrdnb.crystal.Crystal
        the ground truth as tensors (one copy, ``dtype``).
    family : str
        its crystal family.
    target : torch.Tensor
        ground-truth pattern ``(P,)`` (maximum 1).
    two_theta : torch.Tensor
        the 2θ grid ``(P,)`` in degrees.
    lattice, frac_coords : torch.Tensor
        the current point: ``(6,)`` and ``(N, 3)``, float64.
    pattern : torch.Tensor
        current pattern ``(P,)``.
    similarities : dict
        similarity name → float against :attr:`target`.
    valid, matched : bool
        the current lattice is a real cell; ``StructureMatcher`` matches it to the ground truth.
    last_action : str
        how the current point was made (for titles).
    loss_history : list of float
        loss of the last GD run, one entry per step taken.
    gd_path : list of torch.Tensor
        lattices ``(6,)`` of the last run: the start (projected if constrained), one per step.
    gd_start : torch.Tensor or None
        the lattice ``(6,)`` the last run started from (before any projection).
    gd_loss_name, gd_stop_reason, gd_description : str or None
        loss, why the run stopped (:data:`xrdnb.optimize.STOP_REASONS`), and a one-line description.
    path_version : int
        grows whenever the GD path changes (for views that cache drawings).
    """

    def __init__(
        self,
        structure: str = "Au2S",
        *,
        settings: XRDSettings = DEFAULT_SETTINGS,
        dtype: torch.dtype = torch.float64,
        cc_half_width: float = 1.0,
        length_span: float = 0.2,
        angle_span: float = 20.0,
        slice_grid: int = 21,
    ):
        self.settings = settings
        self.dtype = dtype
        self.cc_half_width = float(cc_half_width)
        self.length_span = float(length_span)
        self.angle_span = float(angle_span)
        self.slice_grid = int(slice_grid)
        self.two_theta = settings.grid(torch.float64)
        self.uploaded: dict = {}
        self._slices: dict = {}
        self.path_version = 0
        self.set_structure(str(structure))

    # ------------------------------------------------------------------ ground truth

    def _load(self, key: str):
        return self.uploaded[key] if key in self.uploaded else load_structure(key)

    def set_structure(self, key: str, structure=None) -> None:
        """Make a benchmark name, CIF path or uploaded key (or ``structure`` under that name) the ground truth.

        Raises whatever loading or simulating raises, leaving the state unchanged.
        """
        structure = self._load(key) if structure is None else structure
        truth = crystal_from_structure(structure, dtype=self.dtype)
        family = crystal_family(structure)
        with torch.no_grad():
            target = simulate_pattern(truth, self.settings)[0]
        self._reference = truth.to_structures()[0]
        self.structure_key, self.structure, self.truth, self.family, self.target = (
            key,
            structure,
            truth,
            family,
            target,
        )
        self.reset()

    def load_cif(self, content: bytes | str, name: str = "uploaded.cif") -> str:
        """Parse a CIF (its content) and make it the ground truth under the key ``"<name> (uploaded)"``.

        Returns the key. Raises :class:`xrdnb.structures.StructureError` (the message names
        ``name``) or whatever simulating it raises; the previous ground truth then stays.
        """
        name = os.path.basename(str(name)) or "uploaded.cif"
        text = content if isinstance(content, str) else bytes(content).decode("utf-8", errors="replace")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "upload.cif")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            try:
                structure = load_structure(path)
            except StructureError as exc:
                raise StructureError(str(exc).replace(path, name)) from None
            except Exception as exc:  # pymatgen and spglib raise many types
                raise StructureError(f"{name}: cannot read a structure ({type(exc).__name__}: {exc})") from exc
        key = f"{name} (uploaded)"
        self.set_structure(key, structure)  # raises before anything changes
        self.uploaded[key] = structure
        for k in [k for k in self._slices if k[0] == key]:  # an earlier file of that name
            del self._slices[k]
        return key

    # ------------------------------------------------------------------ the current point

    def current_crystal(self) -> Crystal:
        """The current point as a one-copy :class:`xrdnb.crystal.Crystal` in ``dtype``."""
        dtype, device = self.dtype, self.truth.device
        lattice, coords = self.lattice[None].to(device, dtype), self.frac_coords[None].to(device, dtype)
        return self.truth.with_lattice(lattice).with_frac_coords(coords)

    def _clear_gd(self) -> None:
        self.loss_history: list[float] = []
        self.gd_path: list[torch.Tensor] = []
        self.gd_start: torch.Tensor | None = None
        self.gd_loss_name: str | None = None
        self.gd_stop_reason: str | None = None
        self.gd_description = ""
        self.path_version += 1

    def reset(self) -> None:
        """The current point back at the ground truth (lattice and coordinates); forget the GD run."""
        self.lattice = _f64(self.truth.lattice[0])
        self.frac_coords = _f64(self.truth.frac_coords[0])
        self.last_action = "ground truth"
        self._clear_gd()
        self.compute()

    def set_lattice(self, lattice: Sequence[float] | torch.Tensor, action: str = "set with the sliders") -> None:
        """Move the current lattice to ``lattice`` ``(6,)`` (Å, degrees) and recompute."""
        self.lattice = torch.as_tensor(lattice, dtype=torch.float64).reshape(6).clone()
        self.last_action = action
        self.compute()

    def distort(self, noise_type: str, sigma: float, seed: int = 0) -> None:
        """One copy of :func:`xrdnb.distortions.distort` of the ground truth becomes the current point.

        ``sigma`` is dimensionless for lattice noise and in Å for coordinate noise; a seed
        always gives the same copy. The GD run is forgotten.
        """
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {noise_type!r}; valid: {', '.join(NOISE_TYPES)}")
        copy = distort(self.truth.to(dtype=torch.float64), noise_type, float(sigma), n_copies=1, seed=int(seed))
        self.lattice, self.frac_coords = _f64(copy.lattice[0]), _f64(copy.frac_coords[0])
        unit = " Å" if noise_type == "coordinates" else ""
        self.last_action = f"{noise_type} noise σ = {float(sigma):g}{unit}, seed {int(seed)}"
        self._clear_gd()
        self.compute()

    def compute(self) -> None:
        """Pattern, similarities, validity and match of the current point."""
        crystal = self.current_crystal()
        with torch.no_grad():
            self.valid = bool(is_valid_lattice(crystal.lattice)[0])
            self.pattern = simulate_pattern(crystal, self.settings)[0]
            sims = all_similarities(
                self.pattern[None], self.target, half_width=self.cc_half_width, step=self.settings.two_theta_step
            )
        self.similarities = {name: float(value[0]) for name, value in sims.items()}
        self.matched = bool(structures_match(crystal.to_structures(), self._reference)[0]) if self.valid else False

    def numbers(self) -> dict:
        """The current point as one table row: lattice parameters, similarities and the match verdict.

        Keys are :data:`xrdnb.vocabulary.LATTICE_LABELS` (Å, degrees), then
        :data:`xrdnb.vocabulary.SIMILARITY_LABELS`, then ``"StructureMatcher"``
        (``"match"`` or ``"no match"``).
        """
        row: dict = {LATTICE_LABELS[n]: float(v) for n, v in zip(LATTICE_NAMES, self.lattice, strict=True)}
        row.update({SIMILARITY_LABELS[k]: v for k, v in self.similarities.items()})
        row["StructureMatcher"] = "match" if self.matched else "no match"
        return row

    # ------------------------------------------------------------------ gradient descent

    def run_gd(
        self,
        *,
        mode: str = "lattice",
        loss: str = "cosine",
        constrained: bool = True,
        steps: int = 30,
        lr: float | None = None,
        on_step: Callable[[GDState], None] | None = None,
    ) -> None:
        """Gradient descent from the current point; its end point becomes the current point.

        Runs :func:`xrdnb.optimize.run_gradient_descent` (Adam, ``record_every=0``) with a
        callback that records :attr:`loss_history` and :attr:`gd_path` after every step;
        the target is simulated with the loss's settings
        (:meth:`xrdnb.optimize.GDConfig.simulator_settings`).

        Parameters
        ----------
        mode
            ``"lattice"`` or ``"coordinates"``.
        loss
            one of :data:`xrdnb.vocabulary.LOSS_NAMES`.
        constrained
            apply the family's projector (lattice runs only; ignored for coordinates).
        steps
            step budget (fewer if the copy stops early).
        lr
            Adam learning rate; ``None``: :data:`DEFAULT_LR` of the mode.
        on_step
            called with the optimiser state after every step (e.g. a progress bar).

        Raises
        ------
        ValueError
            for an invalid configuration or start (e.g. a lattice with no real cell); the
            state is then unchanged.
        """
        if loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSS_NAMES)}")
        constrained = bool(constrained) and mode == "lattice"
        config = GDConfig(
            mode=mode,  # type: ignore[arg-type]
            loss=loss,
            constrained=constrained,
            family=self.family,
            lr=float(lr if lr is not None else DEFAULT_LR.get(mode, 1e-3)),
            max_steps=int(steps),
            record_every=0,
            settings=self.settings,
        )
        with torch.no_grad():
            target = simulate_pattern(self.truth, config.simulator_settings())[0]
        start = self.current_crystal()
        history: list[float] = []
        path = [self._start_lattice(start, config)]  # projected if constrained

        def record(state: GDState) -> None:
            if int(state.steps[0]) > len(history):
                history.append(float(state.loss[0]))
                path.append(_f64(state.crystal.lattice[0]))
            if on_step is not None:
                on_step(state)

        result = run_gradient_descent(start, target, config, progress=False, callback=record)
        self.gd_start = self.lattice.clone()
        self.loss_history, self.gd_path = history, path
        self.gd_loss_name, self.gd_stop_reason = loss, result.stop_reason[0]
        self.gd_description = f"{LOSS_LABELS[loss]}, {mode}{' + constraints' if constrained else ''}, lr {config.lr:g}"
        self.path_version += 1
        self.lattice, self.frac_coords = _f64(result.crystal.lattice[0]), _f64(result.crystal.frac_coords[0])
        self.last_action = f"after {len(history)} GD steps ({self.gd_description})"
        self.compute()

    @staticmethod
    def _start_lattice(start: Crystal, config: GDConfig) -> torch.Tensor:
        lattice = start.lattice[0]
        return _f64(project_lattice(lattice, config.family) if config.constrained and config.family else lattice)

    # ------------------------------------------------------------------ the landscape slice

    def landscape_slice(self, pair: Sequence[str], metric: str = "cosine") -> Slice:
        """The slice through the ground truth over ``pair`` of ``metric``, computed once and cached.

        Returns an :class:`xrdnb.landscape.Slice` with ``values`` ``(n, n)``, ``n`` =
        ``slice_grid``, ±``length_span`` / ±``angle_span`` around the ground truth; the
        other four lattice parameters and the coordinates at the ground truth.
        """
        pair = (str(pair[0]), str(pair[1]))
        if pair[0] == pair[1]:
            raise ValueError(f"a slice needs two different parameters, got {pair}")
        key = (self.structure_key, pair, metric, self.slice_grid, str(self.dtype))
        if key not in self._slices:
            value_fn = xrd_similarity_fn(self.truth, metric, self.settings, cc_half_width=self.cc_half_width)
            self._slices[key] = lattice_slice(
                self.truth, pair, value_fn, n=self.slice_grid, length_span=self.length_span, angle_span=self.angle_span
            )
        return self._slices[key]

    def slice_marker(self, pair: Sequence[str]) -> tuple[float, float]:
        """The current values ``(x, y)`` of the two parameters of ``pair`` (Å or degrees)."""
        i, j = (LATTICE_NAMES.index(n) for n in pair)
        return float(self.lattice[i]), float(self.lattice[j])

    def off_plane(self, pair: Sequence[str]) -> float:
        """How far the current lattice is off the slice plane of ``pair``, in half-widths Δ."""
        center = self.truth.lattice[0].to(torch.float64)
        _, off = project_onto_slice(
            self.lattice[None], center, tuple(pair), length_span=self.length_span, angle_span=self.angle_span
        )
        return float(off[0])

    def coords_moved(self) -> float:
        """Largest fractional-coordinate change from the ground truth (nearest periodic image)."""
        delta = self.frac_coords - self.truth.frac_coords[0].to(torch.float64)
        return float((delta - delta.round()).abs().max()) if delta.numel() else 0.0
