"""Interactive explorer: move the lattice, watch the pattern, the similarities, the match and the landscape.

:class:`Explorer` is a small ipywidgets application around the package's own functions; it
implements no physics. Its state is explicit and can be driven without a browser:

* a **ground truth**: a benchmark structure of :data:`xrdnb.structures.BENCHMARK_NAMES` or
  an uploaded CIF (parsed by :func:`xrdnb.structures.load_structure`; an unreadable file
  shows an error and keeps the previous structure);
* a **current point**: six lattice parameters (one slider each, ±``length_span`` relative in
  a, b, c and ±``angle_span`` degrees in α, β, γ around the ground truth; the range grows
  when a distortion or a gradient-descent run leaves it) and the fractional coordinates;
* its **pattern** (:func:`xrdnb.pattern.simulate_pattern`) overlaid on the ground-truth
  pattern, the four **similarities** to it (:func:`xrdnb.losses.all_similarities`, with
  ``"mse"`` holding −MSE) and pymatgen's ``StructureMatcher`` verdict
  (:func:`xrdnb.evaluate.structures_match`);
* **distortions** (:func:`xrdnb.distortions.distort`, one copy, a noise type, level and seed)
  that move the current point;
* **gradient descent** from the current point (:func:`xrdnb.optimize.init_state` and
  :func:`xrdnb.optimize.gd_step`, step by step, with a live loss curve and a progress bar);
  the end point becomes the current point;
* a 2-D **landscape slice** through the ground truth over two lattice parameters (computed
  once per structure, pair, metric and grid with ``xrdnb.landscape.lattice_slice``) with the
  current point and the last gradient-descent path marked.

The figures are plain matplotlib figures rendered to PNG images inside ``ipywidgets.Image``
widgets (no ``ipympl`` needed); :meth:`Explorer.snapshot` draws the same state as one static
figure for the book.

Example (no browser needed)::

    explorer = Explorer("Au2S", noise_type="lattice", noise_level=0.05, seed=0)
    explorer.draw_distortion()          # the "draw distorted copy" button
    explorer.run_gd()                   # the "run GD" button
    explorer.similarities["cosine"], explorer.matched, len(explorer.loss_history)
    explorer.widget                     # the top-level container, to display in JupyterLab
"""

from __future__ import annotations

import html
import io
import os
import tempfile
import time
from contextlib import contextmanager

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .crystal import crystal_from_structure
from .distortions import distort
from .evaluate import structures_match
from .landscape import lattice_slice, project_onto_slice, xrd_similarity_fn
from .lattice import is_valid_lattice
from .losses import all_similarities, loss_function
from .optimize import STOP_REASONS, GDConfig, gd_step, init_state
from .pattern import DEFAULT_SETTINGS, XRDSettings, simulate_pattern
from .structures import StructureError, crystal_family, load_structure
from .vocabulary import (
    BENCHMARK_NAMES,
    LATTICE_LABELS,
    LATTICE_NAMES,
    LOSS_LABELS,
    LOSS_NAMES,
    NOISE_LEVELS,
    NOISE_TYPES,
    SIMILARITY_LABELS,
)

__all__ = ["Explorer", "SIMILARITY_LABELS", "DEFAULT_LR"]

DEFAULT_LR = {"lattice": 1e-2, "coordinates": 1e-3}
"""Default Adam learning rates by gradient-descent mode (those of the ``book`` sweep profile)."""


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer, pil_kwargs={"compress_level": 1})  # speed over size
    return buffer.getvalue()


class Explorer:
    """The interactive explorer (see the module docstring).

    Parameters
    ----------
    structure
        ground truth: a benchmark name (:data:`xrdnb.structures.BENCHMARK_NAMES`) or a CIF
        path.
    noise_type
        ``"lattice"`` or ``"coordinates"`` (:data:`xrdnb.distortions.NOISE_TYPES`).
    noise_level
        σ of the distortion (dimensionless for lattice noise, Å for coordinate noise); the
        study's levels (:data:`xrdnb.distortions.NOISE_LEVELS`) are offered, this one is
        added if it is not among them.
    seed
        seed of the distortion.
    gd_loss
        loss of the gradient descent, one of :data:`xrdnb.losses.LOSS_NAMES`.
    gd_constrained
        apply the crystal-family projector (:func:`xrdnb.symmetry.project_lattice`) in
        lattice runs.
    gd_steps
        number of gradient-descent steps per run.
    gd_lr
        Adam learning rate; ``None`` takes :data:`DEFAULT_LR` of the mode.
    gd_mode
        ``"lattice"`` or ``"coordinates"``; ``None`` follows ``noise_type``.
    slice_pair
        the two lattice parameters of the landscape slice, e.g. ``("a", "c")``.
    slice_grid
        grid points per axis of the slice (odd: the ground truth is a grid point).
    slice_metric
        similarity shown on the slice (one of :data:`xrdnb.losses.LOSS_NAMES`).
    length_span, angle_span
        half-width of the sliders and of the slice: relative in a, b, c; degrees in α, β, γ.
    settings
        simulator settings (:class:`xrdnb.pattern.XRDSettings`).
    dtype
        ``torch.float64`` or ``torch.float32`` for every simulation.
    cc_half_width
        half-width (degrees of 2θ) of the cross-correlation's triangle weight.
    continuous_update
        redraw while a slider is dragged (``True``) or when it is released (``False``).
    dpi
        resolution of the live figures.

    Attributes
    ----------
    structure_key : str
        name of the current ground truth (benchmark name, CIF path or ``"<file> (uploaded)"``).
    structure
        the ground truth as a pymatgen ``Structure``.
    truth : xrdnb.crystal.Crystal
        the ground truth as tensors (one copy).
    family : str
        its crystal family (:func:`xrdnb.structures.crystal_family`).
    target : torch.Tensor
        ground-truth pattern ``(P,)`` (normalised to a maximum of 1).
    two_theta : numpy.ndarray
        the 2θ grid ``(P,)`` in degrees.
    lattice : torch.Tensor
        current lattice parameters ``(6,)`` float64: a, b, c (Å), α, β, γ (degrees).
    frac_coords : torch.Tensor
        current fractional coordinates ``(N, 3)`` float64.
    pattern : torch.Tensor
        current pattern ``(P,)``.
    similarities : dict
        similarity name → float, the four metrics of :data:`SIMILARITY_LABELS` against
        :attr:`target`.
    matched : bool
        ``StructureMatcher`` (pymatgen's default tolerances) matches the current point to the
        ground truth.
    valid : bool
        the current lattice parameters describe a real cell.
    loss_history : list of float
        loss of the last gradient-descent run, one entry per step taken.
    gd_path : list of torch.Tensor
        lattices ``(6,)`` of the last run: the start (projected if constrained) and one per step.
    gd_start : torch.Tensor or None
        the lattice ``(6,)`` the last run started from (before any projection).
    gd_stop_reason : str or None
        why the last run stopped (:data:`xrdnb.optimize.STOP_REASONS`).
    error : str or None
        the last error message shown in the interface (``None`` after a successful action).
    timings : dict
        seconds of the last redraw: ``"compute"`` (pattern, similarities, match),
        ``"render"`` (figures) and ``"total"``.
    widget
        the top-level ``ipywidgets.VBox``; display it (or the explorer) in JupyterLab.
    """

    def __init__(
        self,
        structure: str = "Au2S",
        *,
        noise_type: str = "lattice",
        noise_level: float = 0.05,
        seed: int = 0,
        gd_loss: str = "cosine",
        gd_constrained: bool = True,
        gd_steps: int = 30,
        gd_lr: float | None = None,
        gd_mode: str | None = None,
        slice_pair=("a", "b"),
        slice_grid: int = 21,
        slice_metric: str = "cosine",
        length_span: float = 0.2,
        angle_span: float = 20.0,
        settings: XRDSettings = DEFAULT_SETTINGS,
        dtype: torch.dtype = torch.float64,
        cc_half_width: float = 1.0,
        continuous_update: bool = False,
        dpi: int = 90,
    ):
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {noise_type!r}; valid: {', '.join(NOISE_TYPES)}")
        if gd_loss not in LOSS_NAMES or slice_metric not in LOSS_NAMES:
            raise ValueError(f"unknown loss or metric; valid: {', '.join(LOSS_NAMES)}")
        gd_mode = gd_mode or noise_type
        self.settings = settings
        self.dtype = dtype
        self.cc_half_width = float(cc_half_width)
        self.length_span = float(length_span)
        self.angle_span = float(angle_span)
        self.slice_grid = int(slice_grid)
        self.dpi = int(dpi)
        self.two_theta = settings.grid(torch.float64).numpy()
        self.error: str | None = None
        self.message = ""
        self.loss_history: list[float] = []
        self.gd_path: list[torch.Tensor] = []
        self.gd_start: torch.Tensor | None = None
        self.gd_loss_name: str | None = None
        self.gd_stop_reason: str | None = None
        self.gd_description = ""
        self.last_action = "ground truth"
        self.timings = {"compute": 0.0, "render": 0.0, "total": 0.0}
        self._uploaded: dict = {}
        self._slices: dict = {}
        self._quiet_depth = 0
        self._path_version = 0
        self._pattern_artists = self._pattern_key = self._slice_artists = self._slice_key = None
        self._live = True

        # ---- widgets
        w = widgets
        wide = {"description_width": "initial"}
        options = list(BENCHMARK_NAMES)
        if structure not in options:
            options.append(str(structure))
        self.structure_dropdown = w.Dropdown(
            options=options, value=str(structure), description="ground truth", style=wide
        )
        self.upload = w.FileUpload(accept=".cif", multiple=False, description="upload CIF")
        self.reset_button = w.Button(description="back to ground truth", icon="undo")
        self.status = w.HTML()
        self.sliders = {}
        for name in LATTICE_NAMES:
            self.sliders[name] = w.FloatSlider(
                description=LATTICE_LABELS[name],
                step=0.001 if name in ("a", "b", "c") else 0.01,
                readout_format=".3f" if name in ("a", "b", "c") else ".2f",
                continuous_update=continuous_update,
                layout=w.Layout(width="340px"),
            )
        self.noise_type_dropdown = w.Dropdown(options=list(NOISE_TYPES), value=noise_type, description="noise")
        self.noise_level_dropdown = w.Dropdown(
            options=self._levels(noise_type, noise_level), value=float(noise_level), description="σ"
        )
        self.seed_text = w.IntText(value=int(seed), description="seed", layout=w.Layout(width="160px"))
        self.draw_button = w.Button(description="draw distorted copy", icon="random")
        self.mode_dropdown = w.Dropdown(options=["lattice", "coordinates"], value=gd_mode, description="GD on")
        self.loss_dropdown = w.Dropdown(options=list(LOSS_NAMES), value=gd_loss, description="loss")
        self.constrained_checkbox = w.Checkbox(
            value=bool(gd_constrained), description="symmetry constraints (𝒫)", style=wide
        )
        self.steps_text = w.BoundedIntText(
            value=int(gd_steps), min=1, max=100_000, description="steps", layout=w.Layout(width="180px")
        )
        self.lr_text = w.BoundedFloatText(
            value=float(gd_lr if gd_lr is not None else DEFAULT_LR[gd_mode]),
            min=1e-9,
            max=10.0,
            step=1e-3,
            description="lr",
            layout=w.Layout(width="180px"),
        )
        self.gd_button = w.Button(description="run GD", icon="play", button_style="primary")
        self.progress = w.IntProgress(value=0, min=0, max=int(gd_steps), description="GD steps", style=wide)
        pair = [str(p) for p in slice_pair]
        self.slice_x_dropdown = w.Dropdown(
            options=list(LATTICE_NAMES), value=pair[0], description="slice x", layout=w.Layout(width="180px")
        )
        self.slice_y_dropdown = w.Dropdown(
            options=list(LATTICE_NAMES), value=pair[1], description="slice y", layout=w.Layout(width="180px")
        )
        self.slice_metric_dropdown = w.Dropdown(
            options=list(LOSS_NAMES), value=slice_metric, description="metric", layout=w.Layout(width="240px")
        )
        lo, hi = settings.two_theta_min, settings.two_theta_max
        self.range_slider = w.FloatRangeSlider(
            value=(lo, hi),
            min=lo,
            max=hi,
            step=0.5,
            description="2θ window (°)",
            style=wide,
            continuous_update=False,
            layout=w.Layout(width="560px"),
        )
        self.readout = w.HTML()
        self.pattern_image = w.Image(format="png")
        self.slice_image = w.Image(format="png")
        self.loss_image = w.Image(format="png")

        # ---- persistent figures for the live images
        self._pattern_fig = Figure(figsize=(7.0, 3.3), dpi=self.dpi, layout="constrained")
        self._slice_fig = Figure(figsize=(4.4, 3.7), dpi=self.dpi, layout="constrained")
        self._loss_fig = Figure(figsize=(4.4, 2.6), dpi=self.dpi, layout="constrained")

        def heading(text):
            return w.HTML(f"<b>{html.escape(text)}</b>")

        lattice_box = w.HBox(
            [
                w.VBox([self.sliders[n] for n in ("a", "b", "c")]),
                w.VBox([self.sliders[n] for n in ("alpha", "beta", "gamma")]),
            ]
        )
        self.widget = w.VBox(
            [
                w.HBox([self.structure_dropdown, self.upload, self.reset_button]),
                self.status,
                w.HBox(
                    [
                        w.VBox([self.pattern_image, self.range_slider, self.readout]),
                        w.VBox(
                            [
                                self.slice_image,
                                w.HBox([self.slice_x_dropdown, self.slice_y_dropdown]),
                                self.slice_metric_dropdown,
                            ]
                        ),
                    ]
                ),
                heading(
                    "Lattice parameters (the fractional coordinates stay as the last distortion or GD run left them)"
                ),
                lattice_box,
                heading("Distortion (xrdnb.distortions.distort)"),
                w.HBox([self.noise_type_dropdown, self.noise_level_dropdown, self.seed_text, self.draw_button]),
                heading("Gradient descent (xrdnb.optimize, Adam)"),
                w.HBox(
                    [
                        w.VBox(
                            [
                                w.HBox([self.mode_dropdown, self.loss_dropdown]),
                                w.HBox([self.constrained_checkbox]),
                                w.HBox([self.steps_text, self.lr_text]),
                                w.HBox([self.gd_button, self.progress]),
                            ]
                        ),
                        self.loss_image,
                    ]
                ),
            ]
        )

        # ---- observers
        for slider in self.sliders.values():
            slider.observe(self.on_lattice_change, names="value")
        self.structure_dropdown.observe(self.on_structure_change, names="value")
        self.upload.observe(self.on_upload, names="value")
        self.reset_button.on_click(self.reset)
        self.noise_type_dropdown.observe(self.on_noise_type_change, names="value")
        self.draw_button.on_click(self.draw_distortion)
        self.mode_dropdown.observe(self.on_mode_change, names="value")
        self.gd_button.on_click(self.run_gd)
        for dropdown in (self.slice_x_dropdown, self.slice_y_dropdown, self.slice_metric_dropdown):
            dropdown.observe(self.on_slice_change, names="value")
        self.range_slider.observe(self.on_range_change, names="value")

        self.constrained_checkbox.disabled = gd_mode != "lattice"
        self._set_structure(str(structure), self._load(str(structure)))
        self._render_loss()

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _levels(noise_type: str, extra: float | None = None) -> list[float]:
        levels = [float(x) for x in NOISE_LEVELS[noise_type]]
        if extra is not None and float(extra) not in levels:
            levels = sorted(levels + [float(extra)])
        return levels

    @contextmanager
    def _quiet(self):
        """Set widgets without their observers redrawing."""
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    @property
    def _busy(self) -> bool:
        return self._quiet_depth > 0

    def _show_status(self) -> None:
        if self.error:
            self.status.value = f"<span style='color:#b00020'><b>Error:</b> {html.escape(self.error)}</span>"
        else:
            self.status.value = html.escape(self.message)

    def _clear_error(self) -> None:
        if self.error is not None:
            self.error = None
            self._show_status()

    def _fail(self, message: str) -> None:
        self.error = message
        self._show_status()

    def _load(self, key: str):
        if key in self._uploaded:
            return self._uploaded[key]
        return load_structure(key)

    @property
    def slice_pair(self) -> tuple[str, str]:
        """The two lattice parameters of the landscape slice, e.g. ``("a", "b")``."""
        return self.slice_x_dropdown.value, self.slice_y_dropdown.value

    def current_crystal(self):
        """The current point as a one-copy :class:`xrdnb.crystal.Crystal` in the explorer's dtype."""
        kw = dict(dtype=self.dtype, device=self.truth.device)
        return self.truth.with_lattice(self.lattice[None].to(**kw)).with_frac_coords(self.frac_coords[None].to(**kw))

    # ------------------------------------------------------------------ structure

    def _set_structure(self, key: str, structure) -> None:
        """Make ``structure`` the ground truth (raises on an unusable structure, leaving the state unchanged)."""
        truth = crystal_from_structure(structure, dtype=self.dtype)
        family = crystal_family(structure)
        with torch.no_grad():
            target = simulate_pattern(truth, self.settings)[0]
        reference = truth.to_structures()[0]
        self.structure_key, self.structure, self.truth, self.family = key, structure, truth, family
        self._pattern_artists = self._slice_artists = None  # redraw the live figures from scratch
        self.target, self._reference = target, reference
        self.lattice = truth.lattice[0].detach().to(torch.float64).clone()
        self.frac_coords = truth.frac_coords[0].detach().to(torch.float64).clone()
        self._clear_gd()
        self.progress.value = 0
        self.last_action = "ground truth"
        with self._quiet():
            if key not in self.structure_dropdown.options:
                self.structure_dropdown.options = list(self.structure_dropdown.options) + [key]
            self.structure_dropdown.value = key
            for i, name in enumerate(LATTICE_NAMES):
                center = float(self.lattice[i])
                delta = self.length_span * center if i < 3 else self.angle_span
                lo, hi = max(center - delta, 1e-3), center + delta
                if i >= 3:
                    lo, hi = max(lo, 1.0), min(hi, 179.0)
                slider = self.sliders[name]
                if lo > slider.max:
                    slider.max, slider.min = hi, lo
                else:
                    slider.min, slider.max = lo, hi
                slider.value = center
        formula = structure.composition.reduced_formula
        self.error = None
        self.message = (
            f"{key}: {formula}, {len(structure)} sites, {family} family, {self.target.shape[-1]} pattern points"
        )
        self._show_status()
        self.update(slice_changed=True)

    def set_structure(self, key: str) -> bool:
        """Switch the ground truth to a benchmark name, a CIF path or an uploaded key.

        Returns ``False`` (and shows the error, keeping the previous structure) if it cannot
        be loaded or simulated.
        """
        try:
            self._set_structure(key, self._load(key))
        except Exception as exc:  # pymatgen and spglib raise many types
            with self._quiet():
                self.structure_dropdown.value = self.structure_key
            self._fail(f"{key}: {exc}")
            return False
        return True

    def load_cif(self, content, name: str = "uploaded.cif") -> bool:
        """Parse a CIF (``bytes`` or ``str``) with :func:`xrdnb.structures.load_structure` and make it the ground truth.

        Parameters
        ----------
        content
            the file's content.
        name
            the file name shown in messages and in the structure list.

        Returns
        -------
        bool
            ``True`` on success; ``False`` if the file is not a usable structure: the error
            is shown in the interface (:attr:`error`) and the previous structure stays.
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
                self._fail(str(exc).replace(path, name))
                return False
            except Exception as exc:
                self._fail(f"{name}: cannot read a structure ({type(exc).__name__}: {exc})")
                return False
        key = f"{name} (uploaded)"
        previous = self._uploaded.get(key)
        self._uploaded[key] = structure
        stale = {k: v for k, v in self._slices.items() if k[0] == key}  # an earlier file of that name
        for k in stale:
            del self._slices[k]
        try:
            self._set_structure(key, structure)
        except Exception as exc:
            if previous is None:
                self._uploaded.pop(key)
            else:
                self._uploaded[key] = previous
                self._slices.update(stale)
            with self._quiet():
                self.structure_dropdown.value = self.structure_key
            self._fail(f"{name}: the structure cannot be simulated ({type(exc).__name__}: {exc})")
            return False
        return True

    def _clear_gd(self) -> None:
        self.loss_history, self.gd_path, self.gd_start, self.gd_stop_reason, self.gd_description = (
            [],
            [],
            None,
            None,
            "",
        )
        self._path_version += 1

    # ------------------------------------------------------------------ callbacks

    def on_structure_change(self, change) -> None:
        """Observer of the structure list: switch the ground truth."""
        if not self._busy:
            self.set_structure(change["new"])

    def on_upload(self, change) -> None:
        """Observer of the upload button: parse the uploaded CIF (see :meth:`load_cif`)."""
        for item in change["new"] or ():
            self.load_cif(bytes(item["content"]), item.get("name", "uploaded.cif"))

    def on_lattice_change(self, change=None) -> None:
        """Observer of the six sliders: the current lattice follows them, then redraw."""
        if self._busy:
            return
        self.lattice = torch.tensor([float(self.sliders[n].value) for n in LATTICE_NAMES], dtype=torch.float64)
        self.last_action = "set with the sliders"
        self._clear_error()
        self.update()

    def on_noise_type_change(self, change) -> None:
        """Observer of the noise type: offer its levels and follow it with the GD mode."""
        noise_type = change["new"]
        levels = self._levels(noise_type)
        old = self.noise_level_dropdown.value
        self.noise_level_dropdown.options = levels
        self.noise_level_dropdown.value = (
            levels[int(np.argmin([abs(np.log(x / old)) for x in levels]))] if old else levels[0]
        )
        self.mode_dropdown.value = noise_type

    def on_mode_change(self, change) -> None:
        """Observer of the GD mode: default learning rate; constraints only for lattice runs."""
        self.lr_text.value = DEFAULT_LR[change["new"]]
        self.constrained_checkbox.disabled = change["new"] != "lattice"

    def on_slice_change(self, change=None) -> None:
        """Observer of the slice dropdowns: compute (or reuse) the slice and redraw it."""
        if not self._busy:
            self.update(slice_changed=True)

    def on_range_change(self, change=None) -> None:
        """Observer of the 2θ window: redraw the pattern only."""
        if not self._busy and self._live:
            self._render_pattern()

    def reset(self, button=None) -> None:
        """Move the current point back to the ground truth (lattice and coordinates)."""
        self.lattice = self.truth.lattice[0].detach().to(torch.float64).clone()
        self.frac_coords = self.truth.frac_coords[0].detach().to(torch.float64).clone()
        self.last_action = "ground truth"
        self.message = f"{self.structure_key}: back to the ground truth"
        self.error = None
        self._show_status()
        self._show_lattice()
        self.update()

    def draw_distortion(self, button=None) -> None:
        """The "draw distorted copy" button: one copy of :func:`xrdnb.distortions.distort` becomes the current point.

        Uses the noise type, level σ and seed of the widgets; the copy is drawn from the
        ground truth, so a seed always gives the same copy.
        """
        noise_type = self.noise_type_dropdown.value
        sigma = float(self.noise_level_dropdown.value)
        seed = int(self.seed_text.value)
        copy = distort(self.truth.to(dtype=torch.float64), noise_type, sigma, n_copies=1, seed=seed)
        self.lattice = copy.lattice[0].clone()
        self.frac_coords = copy.frac_coords[0].clone()
        unit = " Å" if noise_type == "coordinates" else ""
        self.last_action = f"{noise_type} noise σ = {sigma:g}{unit}, seed {seed}"
        self._clear_gd()
        self.progress.value = 0
        self._show_lattice()
        self.error = None
        self.message = f"{self.structure_key}: drew a copy with {self.last_action}"
        self._show_status()
        self.update()
        if self._live:
            self._render_loss()

    def run_gd(self, button=None) -> None:
        """The "run GD" button: gradient descent from the current point, step by step.

        Runs :func:`xrdnb.optimize.gd_step` up to the chosen number of steps (fewer if the
        copy stops early), records :attr:`loss_history`, advances the progress bar, redraws
        the loss curve up to twenty times (at most every 0.2 s), and finally makes the end point the current point.
        The target pattern uses the loss's simulator settings (:meth:`xrdnb.optimize.GDConfig.simulator_settings`).
        """
        mode = self.mode_dropdown.value
        loss_name = self.loss_dropdown.value
        constrained = bool(self.constrained_checkbox.value) and mode == "lattice"
        steps = int(self.steps_text.value)
        try:
            config = GDConfig(
                mode=mode,
                loss=loss_name,
                constrained=constrained,
                family=self.family,
                lr=float(self.lr_text.value),
                max_steps=steps,
                record_every=0,
                settings=self.settings,
            )
            with torch.no_grad():
                target = simulate_pattern(self.truth, config.simulator_settings())[0]
            state = init_state(self.current_crystal(), target, config)
        except ValueError as exc:
            self._fail(f"cannot start gradient descent: {exc}")
            return
        loss_fn = loss_function(loss_name)
        self.loss_history = []
        self.gd_start = self.lattice.clone()
        self.gd_loss_name = loss_name
        self.gd_path = [state.crystal.lattice[0].detach().to(torch.float64).clone()]
        self.gd_stop_reason = None
        self.gd_description = (
            f"{LOSS_LABELS[loss_name]}, {mode}{' + constraints' if constrained else ''}, lr {config.lr:g}"
        )
        self.progress.max, self.progress.value = steps, 0
        redraw_every = max(1, steps // 20)
        start = last_render = time.perf_counter()
        self.gd_button.disabled = True
        try:
            while bool(state.active.any()) and state.step < steps:
                taken = int(state.steps[0])
                gd_step(state, target, config, loss_fn)
                if int(state.steps[0]) > taken:
                    self.loss_history.append(float(state.loss[0]))
                    self.gd_path.append(state.crystal.lattice[0].detach().to(torch.float64).clone())
                self.progress.value = state.step
                if self._live and state.step % redraw_every == 0 and time.perf_counter() - last_render > 0.2:
                    self._render_loss()
                    last_render = time.perf_counter()
        finally:
            self.gd_button.disabled = False
        self._path_version += 1
        status = int(state.status[0])
        self.gd_stop_reason = STOP_REASONS[status] if status else "max_steps"
        self.lattice = state.crystal.lattice[0].detach().to(torch.float64).clone()
        self.frac_coords = state.crystal.frac_coords[0].detach().to(torch.float64).clone()
        seconds = time.perf_counter() - start
        self.last_action = f"after {len(self.loss_history)} GD steps ({self.gd_description})"
        self.error = None
        self.message = (
            f"{self.structure_key}: gradient descent took {len(self.loss_history)} steps in {seconds:.1f} s, "
            f"stopped: {self.gd_stop_reason}"
        )
        self._show_status()
        self._show_lattice()
        self.update()
        if self._live:
            self._render_loss()

    # ------------------------------------------------------------------ state → numbers → pictures

    def _show_lattice(self) -> None:
        """Set the sliders to :attr:`lattice` (widening a range that does not contain it) without redrawing."""
        with self._quiet():
            for i, name in enumerate(LATTICE_NAMES):
                slider, value = self.sliders[name], float(self.lattice[i])
                if value < slider.min:
                    slider.min = value
                if value > slider.max:
                    slider.max = value
                slider.value = value

    def compute(self) -> None:
        """Pattern, similarities, validity and match of the current point (no drawing)."""
        crystal = self.current_crystal()
        with torch.no_grad():
            self.valid = bool(is_valid_lattice(crystal.lattice)[0])
            self.pattern = simulate_pattern(crystal, self.settings)[0]
            sims = all_similarities(
                self.pattern[None], self.target, half_width=self.cc_half_width, step=self.settings.two_theta_step
            )
        self.similarities = {name: float(value[0]) for name, value in sims.items()}
        self.matched = bool(structures_match(crystal.to_structures(), self._reference)[0]) if self.valid else False

    def update(self, slice_changed: bool = False) -> None:
        """Recompute the numbers of the current point and redraw pattern, readout and slice.

        Parameters
        ----------
        slice_changed
            also (re)compute the landscape slice if it is not cached yet.
        """
        t0 = time.perf_counter()
        self.compute()
        t1 = time.perf_counter()
        if slice_changed and self.slice_pair[0] != self.slice_pair[1]:
            self.landscape_slice()
        t2 = time.perf_counter()
        if self._live:
            self._render_pattern()
            self._render_readout()
            self._render_slice()
        t3 = time.perf_counter()
        self.timings = {"compute": t1 - t0, "slice": t2 - t1, "render": t3 - t2, "total": t3 - t0}

    def landscape_slice(self, pair=None, metric: str | None = None):
        """The landscape slice through the ground truth, computed once and cached.

        Parameters
        ----------
        pair
            two lattice parameter names; default :attr:`slice_pair`.
        metric
            a similarity name; default the slice metric of the widgets.

        Returns
        -------
        xrdnb.landscape.Slice
            ``values`` ``(n, n)`` of the similarity on a ``slice_grid`` × ``slice_grid`` grid,
            ±``length_span`` / ±``angle_span`` around the ground truth; the other four lattice
            parameters and the coordinates at the ground truth.
        """
        pair = tuple(pair or self.slice_pair)
        metric = metric or self.slice_metric_dropdown.value
        key = (self.structure_key, pair, metric, self.slice_grid, str(self.dtype))
        if key not in self._slices:
            value_fn = xrd_similarity_fn(self.truth, metric, self.settings, cc_half_width=self.cc_half_width)
            self._slices[key] = lattice_slice(
                self.truth,
                pair,
                value_fn,
                n=self.slice_grid,
                length_span=self.length_span,
                angle_span=self.angle_span,
            )
        return self._slices[key]

    @property
    def slice_marker(self) -> tuple[float, float]:
        """Position ``(x, y)`` of the current-point marker on the slice (Å or degrees).

        It is the current value of each of the slice's two parameters.
        """
        i, j = (LATTICE_NAMES.index(n) for n in self.slice_pair)
        return float(self.lattice[i]), float(self.lattice[j])

    def _off_plane(self) -> float:
        sl = self.landscape_slice()
        _, off = project_onto_slice(
            self.lattice[None],
            sl.center.to(torch.float64),
            sl.names,
            length_span=self.length_span,
            angle_span=self.angle_span,
        )
        return float(off[0])

    def _coords_moved(self) -> float:
        """Largest fractional-coordinate change from the ground truth (nearest periodic image)."""
        delta = self.frac_coords - self.truth.frac_coords[0].to(torch.float64)
        return float((delta - delta.round()).abs().max()) if delta.numel() else 0.0

    # ------------------------------------------------------------------ drawing

    def _plot_pattern(self, ax, legend_text: bool = False):
        ax.plot(
            self.two_theta, self.target.detach().cpu().double().numpy(), color="black", lw=0.8, label="ground truth"
        )
        (current,) = ax.plot(
            self.two_theta,
            self.pattern.detach().cpu().double().numpy(),
            color="tab:red",
            lw=0.8,
            alpha=0.8,
            label="current",
        )
        ax.set_xlim(*self.range_slider.value)
        ax.set_ylim(-0.03, 1.1)
        ax.set_xlabel("2θ (°)")
        ax.set_ylabel("intensity (normalised, max = 1)")
        ax.set_title(self._pattern_title(), fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
        if legend_text:
            lines = [f"{SIMILARITY_LABELS[k]:<18s}{v:+.4f}" for k, v in self.similarities.items()]
            lines.append(f"{'StructureMatcher':<18s}{'match' if self.matched else 'no match'}")
            ax.text(
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
        return {"ax": ax, "current": current}

    def _pattern_title(self) -> str:
        return f"{self.structure.composition.reduced_formula}: {self.last_action}"

    def _plot_slice(self, fig, ax):
        if self.slice_pair[0] == self.slice_pair[1]:
            ax.text(0.5, 0.5, "choose two different parameters", ha="center", va="center", transform=ax.transAxes)
            return None
        sl = self.landscape_slice()
        x, y = sl.x.double().numpy(), sl.y.double().numpy()
        dx, dy = (x[1] - x[0]) / 2, (y[1] - y[0]) / 2
        image = ax.imshow(
            sl.values.double().numpy().T,
            origin="lower",
            aspect="auto",
            cmap="viridis",
            extent=(x[0] - dx, x[-1] + dx, y[0] - dy, y[-1] + dy),
        )
        metric = self.slice_metric_dropdown.value
        fig.colorbar(image, ax=ax, label=f"{SIMILARITY_LABELS[metric]} similarity to the ground truth")
        i, j = (LATTICE_NAMES.index(n) for n in sl.names)
        ax.plot(
            float(sl.center[i]),
            float(sl.center[j]),
            marker="*",
            ms=12,
            color="white",
            mec="black",
            ls="none",
            label="ground truth",
        )
        if self.gd_path:
            path = torch.stack(self.gd_path).numpy()
            if self.gd_start is not None:
                start = self.gd_start.numpy()
                ax.plot(
                    start[i],
                    start[j],
                    marker="o",
                    ms=7,
                    mfc="none",
                    mec="white",
                    mew=1.5,
                    ls="none",
                    label="last GD start",
                )
                path = np.concatenate([start[None], path])
            ax.plot(path[:, i], path[:, j], color="white", lw=1.2, label="last GD path")
        mx, my = self.slice_marker
        (marker,) = ax.plot(mx, my, marker="o", ms=8, color="tab:red", mec="white", ls="none", label="current")
        ax.set_xlim(x[0] - dx, x[-1] + dx)
        ax.set_ylim(y[0] - dy, y[-1] + dy)
        ax.set_xlabel(LATTICE_LABELS[sl.names[0]])
        ax.set_ylabel(LATTICE_LABELS[sl.names[1]])
        ax.set_title(self._slice_title(), fontsize=8)
        ax.legend(loc="lower right", fontsize=7, framealpha=0.7)
        return {"ax": ax, "marker": marker}

    def _slice_title(self) -> str:
        sl = self.landscape_slice()
        note = f"current point {self._off_plane():.2f} Δ off the plane"
        if self._coords_moved() > 1e-9:
            note += ", coordinates moved"
        return f"slice through the ground truth ({len(sl.x)}×{len(sl.y)})\n{note}"

    def _plot_loss(self, ax) -> None:
        if not self.loss_history:
            ax.text(0.5, 0.5, "no gradient descent yet", ha="center", va="center", transform=ax.transAxes, color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
            return
        ax.plot(np.arange(1, len(self.loss_history) + 1), self.loss_history, color="tab:blue", lw=1.2)
        ax.set_xlabel("GD step")
        ax.set_ylabel(f"loss ({LOSS_LABELS[self.gd_loss_name]})" if self.gd_loss_name else "loss")
        stop = f"stopped: {self.gd_stop_reason}" if self.gd_stop_reason else "running"
        what, _, lr = self.gd_description.rpartition(", ")
        ax.set_title(f"last run: {what}\n{lr}, {len(self.loss_history)} steps, {stop}", fontsize=8)
        ax.grid(alpha=0.3)

    @staticmethod
    def _first_png(fig, plot) -> tuple:
        """Draw a live figure from scratch: lay it out once, then freeze the layout for fast updates."""
        fig.clear()
        fig.set_layout_engine("constrained")
        artists = plot(fig)
        png = _png(fig)
        fig.set_layout_engine("none")
        return artists, png

    def _render_pattern(self) -> None:
        """Redraw the live pattern: from scratch for a new ground truth, else move the current line."""
        if self._pattern_artists is None or self._pattern_key != self.structure_key:
            self._pattern_artists, png = self._first_png(
                self._pattern_fig, lambda fig: self._plot_pattern(fig.add_subplot())
            )
            self._pattern_key = self.structure_key
        else:
            ax = self._pattern_artists["ax"]
            self._pattern_artists["current"].set_ydata(self.pattern.detach().cpu().double().numpy())
            ax.set_xlim(*self.range_slider.value)
            ax.set_title(self._pattern_title(), fontsize=9)
            png = _png(self._pattern_fig)
        self.pattern_image.value = png

    def _render_slice(self) -> None:
        """Redraw the live slice: from scratch for a new slice or GD path, else move the marker."""
        key = (self.structure_key, self.slice_pair, self.slice_metric_dropdown.value, self._path_version)
        if self._slice_artists is None or self._slice_key != key:
            self._slice_artists, png = self._first_png(
                self._slice_fig, lambda fig: self._plot_slice(fig, fig.add_subplot())
            )
            self._slice_key = key
        else:
            self._slice_artists["marker"].set_data([self.slice_marker[0]], [self.slice_marker[1]])
            self._slice_artists["ax"].set_title(self._slice_title(), fontsize=8)
            png = _png(self._slice_fig)
        self.slice_image.value = png

    def _render_loss(self) -> None:
        self._loss_fig.clear()
        self._plot_loss(self._loss_fig.add_subplot())
        self.loss_image.value = _png(self._loss_fig)

    def _render_readout(self) -> None:
        rows = "".join(
            f"<tr><td>{html.escape(SIMILARITY_LABELS[k])}</td><td style='text-align:right'>{v:+.5f}</td></tr>"
            for k, v in self.similarities.items()
        )
        match = (
            "<span style='color:#1b7f3b'>match ✓</span>"
            if self.matched
            else "<span style='color:#b00020'>no match ✗</span>"
        )
        valid = "" if self.valid else " <span style='color:#b00020'>(no real cell)</span>"
        lattice = ", ".join(f"{v:.3f}" for v in self.lattice.tolist())
        self.readout.value = (
            f"<table><tr><th>similarity to the ground truth</th><th></th></tr>{rows}"
            f"<tr><td>StructureMatcher</td><td>{match}{valid}</td></tr></table>"
            f"<small>lattice (Å, °): {lattice}; redraw {1000 * self.timings.get('total', 0.0):.0f} ms</small>"
        )

    def snapshot(self, figsize=(14.0, 4.0), dpi: int = 100) -> Figure:
        """A static figure of the current state for the book.

        Three panels: the current pattern over the ground-truth pattern (2θ in degrees,
        intensity normalised to a maximum of 1) with the four similarities and the match
        verdict; the landscape slice with its colour bar, the ground truth, the last
        gradient-descent path and the current point; the loss curve of the last run.

        Parameters
        ----------
        figsize
            (width, height) in inches.
        dpi
            resolution.

        Returns
        -------
        matplotlib.figure.Figure
            a new figure (not registered with pyplot; display it with ``IPython.display.display``).
        """
        fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(1, 3, width_ratios=[2.3, 1.25, 1.0])
        self._plot_pattern(fig.add_subplot(grid[0]), legend_text=True)
        self._plot_slice(fig, fig.add_subplot(grid[1]))
        self._plot_loss(fig.add_subplot(grid[2]))
        fig.suptitle(f"Explorer snapshot: {self.structure_key} ({self.family} family)", fontsize=10)
        return fig

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/plain"] = (
                f"xrdnb interactive explorer ({self.structure_key}); the widgets are live only in a running "
                "Jupyter kernel (JupyterLab)"
            )
        return bundle
