"""Interactive explorer: move the lattice, watch the pattern, the similarities, the match and the landscape.

:class:`Explorer` is the ipywidgets view of an :class:`xrdnb.exploration.ExplorerState`
(ground truth, current point, similarities, slices, gradient descent; no widgets, no
drawing). The view holds only widgets, their observers and the live figures, drawn with
:mod:`xrdnb.plotting`:

* the ground truth (a benchmark of :data:`xrdnb.vocabulary.BENCHMARK_NAMES` or an uploaded
  CIF; an unreadable file shows an error and keeps the previous structure);
* six lattice sliders (±``length_span`` relative in a, b, c, ±``angle_span`` degrees in α, β,
  γ around the ground truth; the range grows when a distortion or a GD run leaves it);
* the current pattern over the ground-truth pattern, the four similarities and the
  ``StructureMatcher`` verdict;
* a distortion button (:meth:`ExplorerState.distort <xrdnb.exploration.ExplorerState.distort>`);
* a gradient-descent button (:meth:`ExplorerState.run_gd <xrdnb.exploration.ExplorerState.run_gd>`,
  the package's loop with a callback) with a live loss curve and a progress bar;
* a 2-D landscape slice through the ground truth with the current point and the last GD path.

The figures are matplotlib figures rendered to PNG inside ``ipywidgets.Image`` widgets (no
``ipympl`` needed); :meth:`Explorer.snapshot` draws the same state as one static figure.
Attributes of the state (``lattice``, ``similarities``, ``matched``, ``loss_history``, …)
can be read on the explorer too.

Example (no browser needed)::

    explorer = Explorer("Au2S", noise_type="lattice", noise_level=0.05, seed=0)
    explorer.draw_distortion()          # the "draw distorted copy" button
    explorer.run_gd()                   # the "run GD" button
    explorer.state.similarities["cosine"], explorer.state.matched
    explorer.widget                     # the top-level container, to display in JupyterLab
"""

from __future__ import annotations

import html
import io
import time
from contextlib import contextmanager

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import plotting
from .exploration import DEFAULT_LR, ExplorerState
from .pattern import DEFAULT_SETTINGS, XRDSettings
from .vocabulary import (
    BENCHMARK_NAMES,
    LATTICE_LABELS,
    LATTICE_NAMES,
    LOSS_NAMES,
    NOISE_LEVELS,
    NOISE_TYPES,
    SIMILARITY_LABELS,
)

__all__ = ["Explorer", "SIMILARITY_LABELS", "DEFAULT_LR"]


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer, pil_kwargs={"compress_level": 1})  # speed over size
    return buffer.getvalue()


def _first_png(fig: Figure, plot) -> tuple:
    """Draw a live figure from scratch: lay it out once, then freeze the layout for fast updates."""
    fig.clear()
    fig.set_layout_engine("constrained")
    artists = plot(fig)
    png = _png(fig)
    fig.set_layout_engine("none")
    return artists, png


class Explorer:
    """The interactive explorer (see the module docstring).

    Parameters
    ----------
    structure
        ground truth: a benchmark name or a CIF path.
    noise_type, noise_level, seed
        initial distortion controls: ``"lattice"`` or ``"coordinates"``, σ (dimensionless or
        Å; added to the study's levels if it is not among them), seed.
    gd_loss, gd_constrained, gd_steps, gd_lr, gd_mode
        initial gradient-descent controls: loss, crystal-family projector (lattice runs),
        steps per run, Adam learning rate (``None``: :data:`~xrdnb.exploration.DEFAULT_LR` of the mode), mode
        (``None`` follows ``noise_type``).
    slice_pair, slice_grid, slice_metric
        the slice's two lattice parameters, grid points per axis (odd) and similarity.
    length_span, angle_span
        half-width of the sliders and of the slice: relative in a, b, c; degrees in α, β, γ.
    settings, dtype, cc_half_width
        simulator settings, precision and cross-correlation half-width (degrees of 2θ) of the state.
    continuous_update
        redraw while a slider is dragged (``True``) or when it is released (``False``).
    dpi
        resolution of the live figures.

    Attributes
    ----------
    state : xrdnb.exploration.ExplorerState
        everything the explorer shows.
    error : str or None
        the last error message shown (``None`` after a successful action).
    message : str
        the last status message.
    timings : dict
        seconds of the last redraw: ``"compute"``, ``"slice"``, ``"render"`` and ``"total"``.
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
        self.state = ExplorerState(
            str(structure),
            settings=settings,
            dtype=dtype,
            cc_half_width=cc_half_width,
            length_span=length_span,
            angle_span=angle_span,
            slice_grid=slice_grid,
        )
        self.length_span, self.angle_span, self.dpi = float(length_span), float(angle_span), int(dpi)
        self.error: str | None = None
        self.message = ""
        self.timings = {"compute": 0.0, "slice": 0.0, "render": 0.0, "total": 0.0}
        self._quiet_depth = 0
        self._pattern_artists: dict | None = None
        self._slice_artists: dict | None = None
        self._pattern_key: str | None = None
        self._slice_key: tuple | None = None
        self._live = True

        # ---- widgets
        w, wide = widgets, {"description_width": "initial"}

        def px(width: int):
            return w.Layout(width=f"{width}px")

        def heading(text: str):
            return w.HTML(f"<b>{html.escape(text)}</b>")

        options = list(BENCHMARK_NAMES) + ([] if structure in BENCHMARK_NAMES else [str(structure)])
        self.structure_dropdown = w.Dropdown(
            options=options, value=str(structure), description="ground truth", style=wide
        )
        self.upload = w.FileUpload(accept=".cif", multiple=False, description="upload CIF")
        self.reset_button = w.Button(description="back to ground truth", icon="undo")
        self.status, self.readout = w.HTML(), w.HTML()
        self.sliders = {
            name: w.FloatSlider(
                description=LATTICE_LABELS[name],
                step=0.001 if i < 3 else 0.01,
                readout_format=".3f" if i < 3 else ".2f",
                continuous_update=continuous_update,
                layout=px(340),
            )
            for i, name in enumerate(LATTICE_NAMES)
        }
        self.noise_type_dropdown = w.Dropdown(options=list(NOISE_TYPES), value=noise_type, description="noise")
        levels = self._levels(noise_type, noise_level)
        self.noise_level_dropdown = w.Dropdown(options=levels, value=float(noise_level), description="σ")
        self.seed_text = w.IntText(value=int(seed), description="seed", layout=px(160))
        self.draw_button = w.Button(description="draw distorted copy", icon="random")
        self.mode_dropdown = w.Dropdown(options=list(NOISE_TYPES), value=gd_mode, description="GD on")
        self.loss_dropdown = w.Dropdown(options=list(LOSS_NAMES), value=gd_loss, description="loss")
        self.constrained_checkbox = w.Checkbox(value=bool(gd_constrained), description="symmetry constraints (𝒫)")
        self.constrained_checkbox.style = wide
        self.steps_text = w.BoundedIntText(value=int(gd_steps), min=1, max=100_000, description="steps", layout=px(180))
        lr = float(gd_lr if gd_lr is not None else DEFAULT_LR[gd_mode])
        self.lr_text = w.BoundedFloatText(value=lr, min=1e-9, max=10.0, step=1e-3, description="lr", layout=px(180))
        self.gd_button = w.Button(description="run GD", icon="play", button_style="primary")
        self.progress = w.IntProgress(value=0, min=0, max=int(gd_steps), description="GD steps", style=wide)
        x, y = (str(p) for p in slice_pair)
        self.slice_x_dropdown = w.Dropdown(options=list(LATTICE_NAMES), value=x, description="slice x", layout=px(180))
        self.slice_y_dropdown = w.Dropdown(options=list(LATTICE_NAMES), value=y, description="slice y", layout=px(180))
        self.slice_metric_dropdown = w.Dropdown(
            options=list(LOSS_NAMES), value=slice_metric, description="metric", layout=px(240)
        )
        lo, hi = settings.two_theta_min, settings.two_theta_max
        self.range_slider = w.FloatRangeSlider(
            value=(lo, hi), min=lo, max=hi, step=0.5, description="2θ window (°)", style=wide, layout=px(560)
        )
        self.range_slider.continuous_update = False
        self.pattern_image, self.slice_image, self.loss_image = (w.Image(format="png") for _ in range(3))
        # stable CSS classes for browser tests (tests/test_jupyterlab_explorer.py); no effect on the display
        for name, widget in {"readout": self.readout, "pattern": self.pattern_image, "slice": self.slice_image}.items():
            widget.add_class(f"xrdnb-{name}")
        for name, slider in self.sliders.items():
            slider.add_class(f"xrdnb-slider-{name}")

        # ---- persistent figures for the live images
        self._pattern_fig = Figure(figsize=(7.0, 3.3), dpi=self.dpi, layout="constrained")
        self._slice_fig = Figure(figsize=(4.4, 3.7), dpi=self.dpi, layout="constrained")
        self._loss_fig = Figure(figsize=(4.4, 2.6), dpi=self.dpi, layout="constrained")

        sliders = [w.VBox([self.sliders[n] for n in names]) for names in (LATTICE_NAMES[:3], LATTICE_NAMES[3:])]
        slice_box = [
            self.slice_image,
            w.HBox([self.slice_x_dropdown, self.slice_y_dropdown]),
            self.slice_metric_dropdown,
        ]
        gd_box = [
            w.HBox([self.mode_dropdown, self.loss_dropdown]),
            w.HBox([self.constrained_checkbox]),
            w.HBox([self.steps_text, self.lr_text]),
            w.HBox([self.gd_button, self.progress]),
        ]
        distortion = [self.noise_type_dropdown, self.noise_level_dropdown, self.seed_text, self.draw_button]
        self.widget = w.VBox(
            [
                w.HBox([self.structure_dropdown, self.upload, self.reset_button]),
                self.status,
                w.HBox([w.VBox([self.pattern_image, self.range_slider, self.readout]), w.VBox(slice_box)]),
                heading(
                    "Lattice parameters (the fractional coordinates stay as the last distortion or GD run left them)"
                ),
                w.HBox(sliders),
                heading("Distortion (xrdnb.distortions.distort)"),
                w.HBox(distortion),
                heading("Gradient descent (xrdnb.optimize, Adam)"),
                w.HBox([w.VBox(gd_box), self.loss_image]),
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
        self._show_structure()
        self._render_loss()

    def __getattr__(self, name: str):
        """Read the state's attributes (``lattice``, ``similarities``, ``loss_history``, …) on the view."""
        if name.startswith("__") or "state" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["state"], name)

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

    def _say(self, message: str | None = None, error: str | None = None) -> None:
        """Show a status message, or an error in red (``error`` is kept in :attr:`error`)."""
        self.error = error
        if message is not None:
            self.message = message
        if error:
            self.status.value = f"<span style='color:#b00020'><b>Error:</b> {html.escape(error)}</span>"
        else:
            self.status.value = html.escape(self.message)

    @property
    def slice_pair(self) -> tuple[str, str]:
        """The two lattice parameters of the landscape slice, e.g. ``("a", "b")``."""
        return self.slice_x_dropdown.value, self.slice_y_dropdown.value

    @property
    def slice_marker(self) -> tuple[float, float]:
        """Position ``(x, y)`` of the current-point marker on the slice (Å or degrees)."""
        return self.state.slice_marker(self.slice_pair)

    def landscape_slice(self, pair=None, metric: str | None = None):
        """The state's slice (cached) for ``pair`` and ``metric``, default those of the widgets."""
        return self.state.landscape_slice(tuple(pair or self.slice_pair), metric or self.slice_metric_dropdown.value)

    def _show_lattice(self) -> None:
        """Set the sliders to the current lattice (widening a range that does not contain it) without redrawing."""
        with self._quiet():
            for i, name in enumerate(LATTICE_NAMES):
                slider, value = self.sliders[name], float(self.state.lattice[i])
                slider.min, slider.max = min(slider.min, value), max(slider.max, value)
                slider.value = value

    def _show_structure(self) -> None:
        """After a new ground truth: list it, centre the sliders on it, say so, redraw everything."""
        st = self.state
        key = st.structure_key
        self._pattern_artists = self._slice_artists = None  # redraw the live figures from scratch
        self.progress.value = 0
        with self._quiet():
            if key not in self.structure_dropdown.options:
                self.structure_dropdown.options = list(self.structure_dropdown.options) + [key]
            self.structure_dropdown.value = key
            for i, name in enumerate(LATTICE_NAMES):
                center = float(st.lattice[i])
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
        formula = st.structure.composition.reduced_formula
        self._say(
            f"{key}: {formula}, {len(st.structure)} sites, {st.family} family, {st.target.shape[-1]} pattern points"
        )
        self._redraw(time.perf_counter(), slice_changed=True)  # the state computed the new point

    def _keep_structure(self, what: str, exc: Exception) -> bool:
        with self._quiet():
            self.structure_dropdown.value = self.state.structure_key
        self._say(error=f"{what}: {exc}")
        return False

    # ------------------------------------------------------------------ actions (buttons and code)

    def set_structure(self, key: str) -> bool:
        """Switch the ground truth; ``False`` (error shown, previous structure kept) if it cannot be used."""
        try:
            self.state.set_structure(key)
        except Exception as exc:  # pymatgen and spglib raise many types
            return self._keep_structure(key, exc)
        self._show_structure()
        return True

    def load_cif(self, content, name: str = "uploaded.cif") -> bool:
        """Parse a CIF (``bytes`` or ``str``) and make it the ground truth (:meth:`.ExplorerState.load_cif`).

        Returns ``False`` if it is not a usable structure: the error is shown (:attr:`error`)
        and the previous structure stays.
        """
        try:
            self.state.load_cif(content, name)
        except Exception as exc:
            return self._keep_structure("cannot use the file", exc)
        self._show_structure()
        return True

    def reset(self, button=None) -> None:
        """Move the current point back to the ground truth (lattice and coordinates)."""
        start = time.perf_counter()
        self.state.reset()
        self._say(f"{self.state.structure_key}: back to the ground truth")
        self._show_lattice()
        self._redraw(start)
        if self._live:
            self._render_loss()

    def draw_distortion(self, button=None) -> None:
        """The "draw distorted copy" button: noise type, level and seed of the widgets."""
        start = time.perf_counter()
        self.state.distort(self.noise_type_dropdown.value, self.noise_level_dropdown.value, self.seed_text.value)
        self.progress.value = 0
        self._show_lattice()
        self._say(f"{self.state.structure_key}: drew a copy with {self.state.last_action}")
        self._redraw(start)
        if self._live:
            self._render_loss()

    def run_gd(self, button=None) -> None:
        """The "run GD" button: :meth:`.ExplorerState.run_gd` with the widgets' mode, loss, constraint, steps and lr.

        Advances the progress bar and redraws the loss curve up to twenty times (at most
        every 0.2 s); the end point becomes the current point and the sliders move to it.
        """
        steps = int(self.steps_text.value)
        self.progress.max, self.progress.value = steps, 0
        redraw_every, last = max(1, steps // 20), [time.perf_counter()]

        def on_step(gd) -> None:
            self.progress.value = gd.step
            if self._live and gd.step % redraw_every == 0 and time.perf_counter() - last[0] > 0.2:
                self._render_loss()
                last[0] = time.perf_counter()

        start = time.perf_counter()
        self.gd_button.disabled = True
        try:
            self.state.run_gd(
                mode=self.mode_dropdown.value,
                loss=self.loss_dropdown.value,
                constrained=self.constrained_checkbox.value,
                steps=steps,
                lr=float(self.lr_text.value),
                on_step=on_step,
            )
        except ValueError as exc:
            self._say(error=f"cannot start gradient descent: {exc}")
            return
        finally:
            self.gd_button.disabled = False
        st = self.state
        self._say(
            f"{st.structure_key}: gradient descent took {len(st.loss_history)} steps in "
            f"{time.perf_counter() - start:.1f} s, stopped: {st.gd_stop_reason}"
        )
        self._show_lattice()
        self._redraw(time.perf_counter())
        if self._live:
            self._render_loss()

    def update(self, slice_changed: bool = False) -> None:
        """Recompute the current point's numbers and redraw (the slice too if ``slice_changed`` and not cached)."""
        start = time.perf_counter()
        self.state.compute()
        self._redraw(start, slice_changed)

    def _redraw(self, start: float, slice_changed: bool = False) -> None:
        """Redraw pattern, readout and slice for a state computed since ``start`` (``time.perf_counter()``)."""
        t1 = time.perf_counter()
        if slice_changed and self.slice_pair[0] != self.slice_pair[1]:
            self.landscape_slice()
        t2 = time.perf_counter()
        if self._live:
            self._render_pattern()
            self._render_readout()
            self._render_slice()
        t3 = time.perf_counter()
        self.timings = {"compute": t1 - start, "slice": t2 - t1, "render": t3 - t2, "total": t3 - start}

    # ------------------------------------------------------------------ observers

    def on_structure_change(self, change) -> None:
        """Observer of the structure list."""
        if not self._quiet_depth:
            self.set_structure(change["new"])

    def on_upload(self, change) -> None:
        """Observer of the upload button (see :meth:`load_cif`)."""
        for item in change["new"] or ():
            self.load_cif(bytes(item["content"]), item.get("name", "uploaded.cif"))

    def on_lattice_change(self, change=None) -> None:
        """Observer of the six sliders: the current lattice follows them."""
        if not self._quiet_depth:
            start = time.perf_counter()
            self.state.set_lattice([float(self.sliders[n].value) for n in LATTICE_NAMES])  # computes
            if self.error is not None:
                self._say()
            self._redraw(start)

    def on_noise_type_change(self, change) -> None:
        """Observer of the noise type: offer its levels and follow it with the GD mode."""
        levels, old = self._levels(change["new"]), self.noise_level_dropdown.value
        self.noise_level_dropdown.options = levels
        self.noise_level_dropdown.value = (
            levels[int(np.argmin([abs(np.log(x / old)) for x in levels]))] if old else levels[0]
        )
        self.mode_dropdown.value = change["new"]

    def on_mode_change(self, change) -> None:
        """Observer of the GD mode: default learning rate; constraints only for lattice runs."""
        self.lr_text.value = DEFAULT_LR[change["new"]]
        self.constrained_checkbox.disabled = change["new"] != "lattice"

    def on_slice_change(self, change=None) -> None:
        """Observer of the slice dropdowns."""
        if not self._quiet_depth:
            self._redraw(time.perf_counter(), slice_changed=True)

    def on_range_change(self, change=None) -> None:
        """Observer of the 2θ window: redraw the pattern only."""
        if not self._quiet_depth and self._live:
            self._render_pattern()

    # ------------------------------------------------------------------ drawing (xrdnb.plotting)

    def _pattern_title(self) -> str:
        return f"{self.state.structure.composition.reduced_formula}: {self.state.last_action}"

    def _plot_pattern(self, ax, box: bool = False) -> dict:
        st = self.state
        artists = plotting.plot_pattern(
            ax, st.two_theta, st.pattern, st.target, window=self.range_slider.value, title=self._pattern_title()
        )
        if box:
            plotting.similarity_box(ax, st.similarities, st.matched)
        return artists

    def _slice_title(self) -> str:
        note = f"current point {self.state.off_plane(self.slice_pair):.2f} Δ off the plane"
        if self.state.coords_moved() > 1e-9:
            note += ", coordinates moved"
        n = self.state.slice_grid
        return f"slice through the ground truth ({n}×{n})\n{note}"

    def _plot_slice(self, ax) -> dict | None:
        if self.slice_pair[0] == self.slice_pair[1]:
            ax.text(0.5, 0.5, "choose two different parameters", ha="center", va="center", transform=ax.transAxes)
            return None
        st, sl = self.state, self.landscape_slice()
        mesh = plotting.draw_slice(ax, sl, truth_colour="white")
        label = SIMILARITY_LABELS[self.slice_metric_dropdown.value]
        ax.figure.colorbar(mesh, ax=ax, label=f"{label} similarity to the ground truth")
        if st.gd_path:
            plotting.draw_slice_path(ax, sl, torch.stack(st.gd_path), start=st.gd_start)
        marker = plotting.draw_slice_marker(ax, sl, st.lattice)
        ax.set_title(self._slice_title(), fontsize=8)
        ax.legend(loc="lower right", fontsize=7, framealpha=0.7)
        return {"ax": ax, "marker": marker}

    def _plot_loss(self, ax) -> None:
        st = self.state
        plotting.plot_loss_curve(ax, np.arange(1, len(st.loss_history) + 1), st.loss_history, loss_name=st.gd_loss_name)
        if st.loss_history:
            stop = f"stopped: {st.gd_stop_reason}" if st.gd_stop_reason else "running"
            what, _, lr = st.gd_description.rpartition(", ")
            ax.set_title(f"last run: {what}\n{lr}, {len(st.loss_history)} steps, {stop}", fontsize=8)

    def _render_pattern(self) -> None:
        """Redraw the live pattern: from scratch for a new ground truth, else move the current line."""
        if self._pattern_artists is None or self._pattern_key != self.state.structure_key:
            self._pattern_artists, png = _first_png(
                self._pattern_fig, lambda fig: self._plot_pattern(fig.add_subplot())
            )
            self._pattern_key = self.state.structure_key
        else:
            line = self._pattern_artists["pattern"]
            line.set_ydata(self.state.pattern.detach().cpu().double().numpy())
            line.axes.set_xlim(*self.range_slider.value)
            line.axes.set_title(self._pattern_title(), fontsize=9)
            png = _png(self._pattern_fig)
        self.pattern_image.value = png

    def _render_slice(self) -> None:
        """Redraw the live slice: from scratch for a new slice or GD path, else move the marker."""
        key = (self.state.structure_key, self.slice_pair, self.slice_metric_dropdown.value, self.state.path_version)
        if self._slice_artists is None or self._slice_key != key:
            self._slice_artists, png = _first_png(self._slice_fig, lambda fig: self._plot_slice(fig.add_subplot()))
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
        st = self.state
        rows = "".join(
            f"<tr><td>{html.escape(SIMILARITY_LABELS[k])}</td><td style='text-align:right'>{v:+.5f}</td></tr>"
            for k, v in st.similarities.items()
        )
        ok = "<span style='color:#1b7f3b'>match ✓</span>"
        match = ok if st.matched else "<span style='color:#b00020'>no match ✗</span>"
        valid = "" if st.valid else " <span style='color:#b00020'>(no real cell)</span>"
        lattice = ", ".join(f"{v:.3f}" for v in st.lattice.tolist())
        self.readout.value = (
            f"<table><tr><th>similarity to the ground truth</th><th></th></tr>{rows}"
            f"<tr><td>StructureMatcher</td><td>{match}{valid}</td></tr></table>"
            f"<small>lattice (Å, °): {lattice}; redraw {1000 * self.timings.get('total', 0.0):.0f} ms</small>"
        )

    def snapshot(self, figsize=(8.0, 6.4), dpi: int = 100) -> Figure:
        """A static figure of the current state for the book: pattern (with the similarities), slice, loss curve.

        The pattern spans the top row, the slice and the loss curve share the bottom one, so that
        the default 800 px fits a page column. Returns a new matplotlib ``Figure`` (not registered
        with pyplot; show it with ``IPython.display.display``).
        """
        fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(2, 2, width_ratios=[1.2, 1.0], height_ratios=[1.0, 1.15])
        self._plot_pattern(fig.add_subplot(grid[0, :]), box=True)
        self._plot_slice(fig.add_subplot(grid[1, 0]))
        self._plot_loss(fig.add_subplot(grid[1, 1]))
        fig.suptitle(f"Explorer snapshot: {self.state.structure_key} ({self.state.family} family)", fontsize=10)
        return fig

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/plain"] = (
                f"xrdnb interactive explorer ({self.state.structure_key}); the widgets are live only in a running "
                "Jupyter kernel (JupyterLab)"
            )
        return bundle
