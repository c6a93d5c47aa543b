"""Checks of the simulator that chapter 1 shows: against pymatgen, dense against fast, Friedel, gradients.

Nothing here is new physics: every pattern comes from :func:`xrdnb.pattern.simulate_pattern`.
The one exception is :func:`broaden_sticks`, a deliberately independent numpy transcription of
the SI §1.2 pseudo-Voigt and Caglioti formulas that broadens pymatgen's peak list into a
reference pattern. pymatgen is imported only inside the functions that use it.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from .crystal import Crystal, crystal_from_structure
from .lattice import cell_volume, lattice_matrix, metric_tensor, reciprocal_metric_tensor
from .pattern import DEFAULT_SETTINGS, Method, XRDSettings, compute_reflections, reflections_for, simulate_pattern
from .peak_shapes import gaussian, lorentzian, pseudo_voigt
from .peaks import peak_table
from .reflections import enumerate_reflections
from .structures import crystal_family, load_structure
from .vocabulary import LATTICE_NAMES, LATTICE_SYMBOLS, YES_NO

__all__ = [
    "site_table",
    "metric_checks",
    "friedel_check",
    "tail_fractions",
    "pymatgen_peaks",
    "broaden_sticks",
    "compare_with_pymatgen",
    "compare_renderers",
    "time_gradient_step",
    "renderer_table",
    "timing_table",
    "setting_variants",
    "setting_table",
    "lattice_derivative",
    "PEAK_LABELS",
    "pymatgen_display",
    "sci",
]

PEAK_LABELS = {
    "two_theta": "2θ (°)",
    "d": "d (Å)",
    "intensity": "I = Σ w|F|²LP",
    "intensity_scaled": "I (max = 100)",
}
"""Display names of the columns of :func:`xrdnb.peaks.peak_table` that are identifiers (the others are their own)."""


def _cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(x, y, dim=-1))


def site_table(crystal: Crystal, index: int = 0) -> pd.DataFrame:
    """Species and fractional coordinates of the sites of copy ``index``.

    Returns
    -------
    DataFrame with one row per site: ``species`` (``"El"`` or ``"El:occ + ..."`` for partial
    occupancy) and ``x, y, z`` (fractional).
    """
    occupancy = crystal.occupancy.detach().cpu().numpy()
    table = pd.DataFrame(crystal.frac_coords[index].detach().cpu().numpy(), columns=["x", "y", "z"])
    species = [
        " + ".join(f"{el}:{o:g}" if o != 1 else el for el, o in zip(crystal.elements, row, strict=True) if o > 0)
        for row in occupancy
    ]
    table.insert(0, "species", species)
    return table


def friedel_check(crystal: Crystal, settings: XRDSettings = DEFAULT_SETTINGS) -> dict:
    """Compare the full reciprocal-lattice sphere with the Friedel-merged half the package keeps.

    Returns
    -------
    dict with ``n_all`` (points with ``0 < |g| <= g_max``), ``n_half`` (after keeping one of
    each pair), ``weight`` (the weight of a kept reflection), ``asymmetry`` (max ``|I(h) - I(-h)|``
    over max ``I``) and ``total_difference`` (relative difference of the summed intensities).
    """
    all_points = enumerate_reflections(crystal.lattice, settings.g_max, friedel=False)
    half = reflections_for(crystal, settings)
    i_all = compute_reflections(crystal, settings, all_points).intensity[0]
    i_half = compute_reflections(crystal, settings, half).intensity[0]
    position = {tuple(h): i for i, h in enumerate(all_points.hkl.tolist())}
    plus = [position[tuple(h)] for h in half.hkl.tolist()]
    minus = [position[tuple(-x for x in h)] for h in half.hkl.tolist()]
    return {
        "n_all": len(all_points),
        "n_half": len(half),
        "weight": float(half.weight[0]),
        "asymmetry": float((i_all[plus] - i_all[minus]).abs().max()) / float(i_all.max()),
        "total_difference": abs(float(i_all.sum()) - float(i_half.sum())) / float(i_all.sum()),
    }


def tail_fractions(grid: torch.Tensor, centre: float, fwhm: torch.Tensor, eta: float, beyond: float) -> dict:
    """Share of each profile's area on ``grid`` that lies farther than ``beyond`` from ``centre``.

    Parameters
    ----------
    grid
        2θ grid ``(P,)`` in degrees.
    centre, fwhm, beyond
        peak position, FWHM ``H`` and distance, all in degrees.
    eta
        pseudo-Voigt mixing (weight of the Gaussian).

    Returns
    -------
    dict ``{"Gaussian", "Lorentzian", "pseudo-Voigt"}`` → fraction of the area in [0, 1].
    """
    offset = grid - centre
    far = offset.abs() > beyond
    curves = {
        "Gaussian": gaussian(offset, fwhm),
        "Lorentzian": lorentzian(offset, fwhm),
        "pseudo-Voigt": pseudo_voigt(offset, fwhm, eta),
    }
    return {name: float(y[far].sum() / y.sum()) for name, y in curves.items()}


def pymatgen_peaks(structure, settings: XRDSettings = DEFAULT_SETTINGS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaks of pymatgen's ``XRDCalculator``: 2θ (°), intensity (of 100), multiplicity, each ``(K,)``."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    result = XRDCalculator(wavelength=settings.wavelength).get_pattern(
        structure, scaled=True, two_theta_range=(settings.two_theta_min, settings.two_theta_max)
    )
    multiplicity = [sum(family["multiplicity"] for family in families) for families in result.hkls]
    return np.asarray(result.x), np.asarray(result.y), np.asarray(multiplicity)


def broaden_sticks(
    two_theta: np.ndarray, intensity: np.ndarray, settings: XRDSettings = DEFAULT_SETTINGS
) -> np.ndarray:
    """Independent numpy reference: SI §1.2 pseudo-Voigt peaks with Caglioti widths, max = 1.

    Parameters
    ----------
    two_theta, intensity
        stick positions (°) and heights ``(K,)``, e.g. from :func:`pymatgen_peaks`.
    settings
        grid, ``U, V, W`` (deg²) and ``eta``.

    Returns
    -------
    pattern ``(P,)`` on ``settings``' grid, divided by its maximum.
    """
    s = settings
    x = s.two_theta_min + s.two_theta_step * np.arange(s.n_points)
    tan = np.tan(np.radians(two_theta) / 2)
    h = np.sqrt(s.U * tan**2 + s.V * tan + s.W)[:, None]
    u = ((x[None, :] - two_theta[:, None]) / h) ** 2
    y = intensity @ (s.eta * np.exp(-4 * np.log(2) * u) + (1 - s.eta) / (1 + 4 * u))
    return y / y.max()


def compare_with_pymatgen(structure, settings: XRDSettings = DEFAULT_SETTINGS) -> tuple[dict, dict]:
    """The peak list and patterns of xrdnb against pymatgen's peaks, in float64.

    Parameters
    ----------
    structure
        a benchmark name, CIF path or pymatgen ``Structure``.

    Returns
    -------
    row
        the comparison in numbers: peak counts, max ``|Δ2θ|`` (°) and ``|ΔI|`` (of 100) where the
        counts agree (NaN otherwise), whether the multiplicities agree, the summed intensity of
        the weak peaks pymatgen drops, and the max pattern difference of the dense and fast
        renderers to :func:`broaden_sticks` of pymatgen's peaks (patterns with max = 1).
    detail
        ``ours`` (peak table), ``x_pm, y_pm`` (pymatgen's sticks), ``ours_pattern`` (default
        renderer) and ``pm_pattern`` (the reference), arrays ``(P,)`` for the patterns.
    """
    struct = load_structure(structure) if isinstance(structure, str) else structure
    crystal = crystal_from_structure(struct, dtype=torch.float64)
    ours = peak_table(crystal, settings)
    ours_all = peak_table(crystal, settings, intensity_tol=0.0)  # also the peaks pymatgen drops as too weak
    x_pm, y_pm, m_pm = pymatgen_peaks(struct, settings)
    same = len(ours) == len(x_pm)
    with torch.no_grad():
        ours_pattern = simulate_pattern(crystal, settings)[0].numpy()
        ours_dense = simulate_pattern(crystal, settings, method="dense")[0].numpy()
    pm_pattern = broaden_sticks(x_pm, y_pm, settings)
    weak = ours_all.intensity_scaled[ours_all.intensity_scaled <= 1e-3].sum()
    row = {
        "structure": struct.composition.reduced_formula,
        "family": crystal_family(struct),
        "peaks (xrdnb)": len(ours),
        "peaks (pymatgen)": len(x_pm),
        "max |Δ2θ| (°)": np.abs(ours.two_theta.to_numpy() - x_pm).max() if same else np.nan,
        "max |ΔI| (of 100)": np.abs(ours.intensity_scaled.to_numpy() - y_pm).max() if same else np.nan,
        "multiplicities equal": bool(same and np.array_equal(ours.multiplicity.to_numpy(), m_pm)),
        "weak peaks omitted by pymatgen (Σ I, of 100)": weak,
        "pattern max |Δ|, dense": np.abs(ours_dense - pm_pattern).max(),
        "pattern max |Δ|, fast": np.abs(ours_pattern - pm_pattern).max(),
    }
    return row, {"ours": ours, "x_pm": x_pm, "y_pm": y_pm, "ours_pattern": ours_pattern, "pm_pattern": pm_pattern}


def compare_renderers(crystal: Crystal, settings: XRDSettings = DEFAULT_SETTINGS) -> tuple[dict, torch.Tensor]:
    """The dense (exact) and fast renderers on one reflection set of copy 0.

    Returns
    -------
    row
        ``reflections``, ``1 − cosine similarity`` and ``max |dense − fast|`` (patterns with max = 1).
    difference
        ``dense − fast``, ``(P,)``.
    """
    reflections = reflections_for(crystal, settings)
    with torch.no_grad():
        dense = simulate_pattern(crystal, settings, reflections=reflections, method="dense")[0]
        fast = simulate_pattern(crystal, settings, reflections=reflections, method="fast")[0]
    row = {
        "reflections": len(reflections),
        "1 − cosine similarity": 1 - _cosine(dense, fast),
        "max |dense − fast|": float((dense - fast).abs().max()),
    }
    return row, dense - fast


def time_gradient_step(
    batch: Crystal,
    target: torch.Tensor,
    settings: XRDSettings = DEFAULT_SETTINGS,
    *,
    method: Method = "fast",
    repeats: int = 3,
    reflections=None,
) -> float:
    """Best wall-clock time (s) of one forward and backward pass of the cosine loss over the lattices.

    ``batch`` holds ``B`` copies, ``target`` is a pattern ``(1, P)`` or ``(B, P)``; the reflection
    set is enumerated once beforehand (with a 5 % margin) unless given, as the optimizer does.
    One warm-up run precedes the ``repeats`` timed ones.
    """
    if reflections is None:
        reflections = reflections_for(batch, settings, margin=0.05)
    times = []
    for _ in range(repeats + 1):
        lattice = batch.lattice.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        x = simulate_pattern(batch.with_lattice(lattice), settings, reflections=reflections, method=method)
        loss = -torch.nn.functional.cosine_similarity(x, target).sum()
        loss.backward()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def setting_variants(crystal: Crystal, settings: XRDSettings, name: str, values) -> dict:
    """Patterns of copy 0 with one field of ``settings`` (``"U"``, ``"wavelength"``, ...) set to each value.

    Returns
    -------
    dict with ``patterns`` (value → pattern ``(P,)``, max = 1, for the values ``XRDSettings``
    accepts), ``cosine`` (value → cosine similarity of that pattern to the one with ``settings``
    unchanged) and ``skipped`` (value → why it was refused, e.g. a Caglioti width that is not
    positive everywhere).
    """
    out: dict[str, dict] = {"patterns": {}, "cosine": {}, "skipped": {}}
    with torch.no_grad():
        base = simulate_pattern(crystal, settings)[0]
        for value in values:
            try:
                variant = replace(settings, **{name: value})
            except ValueError as err:
                out["skipped"][value] = str(err)
                continue
            out["patterns"][value] = simulate_pattern(crystal, variant)[0]
            out["cosine"][value] = _cosine(out["patterns"][value], base)
    return out


def lattice_derivative(
    crystal: Crystal, settings: XRDSettings = DEFAULT_SETTINGS, *, index: int = 0, step: float = 1e-5
) -> dict:
    """Derivative of the pattern of copy 0 with respect to one lattice parameter, three ways, in float64.

    The parameter ``index`` (0 = ``a``) moves alone; the reflection set is fixed (2 % margin).
    The default renderer is differentiated with ``torch.autograd.functional.jvp`` (double
    backward), the dense one in forward mode, and both with a central difference of ``step``.

    Returns
    -------
    dict with ``value`` (the parameter), ``pattern`` ``(P,)``, ``jvp`` and ``dense`` (the AD
    derivatives ``(P,)``, per unit of the parameter), ``fd`` and ``fd_dense`` (the central
    differences), ``n_reflections`` and ``errors`` (a table of the three comparisons, max
    ``|Δ|`` over max ``|∂x/∂p|``, ``p`` the parameter's symbol).
    """
    crystal = crystal.select(slice(0, 1)).to(dtype=torch.float64)
    fixed = reflections_for(crystal, settings, margin=0.02)
    lattice = crystal.lattice[0].detach()

    def pattern_of(value, method=None):
        new = torch.cat([lattice[:index], value.reshape(1), lattice[index + 1 :]]).unsqueeze(0)
        return simulate_pattern(crystal.with_lattice(new), settings, reflections=fixed, method=method)[0]

    p0 = lattice[index].clone()
    x0, jvp = torch.autograd.functional.jvp(pattern_of, p0, torch.ones_like(p0))
    dense = torch.autograd.functional.jacobian(
        lambda v: pattern_of(v, "dense"), p0, vectorize=True, strategy="forward-mode"
    )
    with torch.no_grad():
        fd = (pattern_of(p0 + step) - pattern_of(p0 - step)) / (2 * step)
        fd_dense = (pattern_of(p0 + step, "dense") - pattern_of(p0 - step, "dense")) / (2 * step)

    def rel(x, ref):
        return float((x - ref).abs().max() / ref.abs().max())

    column = f"max |Δ| / max |∂x/∂{LATTICE_SYMBOLS[LATTICE_NAMES[index]]}|"
    errors = pd.DataFrame(
        [
            {
                "renderer": "fast (default)",
                "AD method": "jvp (double backward)",
                "compared with": "central difference, fast",
                column: rel(jvp, fd),
            },
            {
                "renderer": "dense",
                "AD method": "forward-mode jacobian",
                "compared with": "central difference, dense",
                column: rel(dense, fd_dense),
            },
            {"renderer": "fast vs dense", "AD method": "both", "compared with": "each other", column: rel(jvp, dense)},
        ]
    )
    return {
        "value": float(p0),
        "pattern": x0.detach(),
        "jvp": jvp.detach(),
        "dense": dense.detach(),
        "fd": fd,
        "fd_dense": fd_dense,
        "n_reflections": len(fixed),
        "errors": errors,
    }


def renderer_table(names, settings: XRDSettings = DEFAULT_SETTINGS, dtype=torch.float64) -> tuple[pd.DataFrame, dict]:
    """:func:`compare_renderers` for each benchmark name (or CIF path) in ``names``, in ``dtype``.

    Returns
    -------
    table
        one row per structure: ``structure``, ``reflections``, ``1 − cosine similarity``, ``max |dense − fast|``.
    differences
        name → ``dense − fast`` ``(P,)``.
    """
    rows, differences = [], {}
    for name in names:
        crystal = crystal_from_structure(load_structure(name), dtype=dtype)
        row, differences[name] = compare_renderers(crystal, settings)
        rows.append({"structure": name, **row})
    return pd.DataFrame(rows), differences


def timing_table(
    batch: Crystal,
    target: torch.Tensor,
    settings: XRDSettings = DEFAULT_SETTINGS,
    *,
    repeats: int = 3,
    reflections=None,
) -> pd.DataFrame:
    """:func:`time_gradient_step` for the dense and the fast renderer.

    Returns a table with ``renderer``, ``seconds (best of <repeats>)`` and ``speed-up`` (dense time over each time).
    """
    renderers: tuple[Method, ...] = ("dense", "fast")
    seconds = {
        m: time_gradient_step(batch, target, settings, method=m, repeats=repeats, reflections=reflections)
        for m in renderers
    }
    table = pd.DataFrame({"renderer": list(seconds), f"seconds (best of {repeats})": list(seconds.values())})
    table["speed-up"] = seconds["dense"] / table.iloc[:, 1]
    return table


def metric_checks(lattice: torch.Tensor, structure) -> dict:
    """The cell volume three ways and the reciprocal lengths against pymatgen, for one lattice ``(6,)``.

    Returns
    -------
    dict with ``volume`` (``sqrt(det G)``), ``volume_matrix`` (``|det|`` of the cell matrix) and
    ``volume_pymatgen`` (Å³), ``identity_error`` (max ``|G·G* − I|``), ``reciprocal`` and
    ``reciprocal_pymatgen`` (``|a*|, |b*|, |c*|`` in Å⁻¹, arrays ``(3,)``, no factor 2π).
    """
    g, g_star = metric_tensor(lattice), reciprocal_metric_tensor(lattice)
    return {
        "volume": float(cell_volume(lattice)),
        "volume_matrix": abs(float(torch.linalg.det(lattice_matrix(lattice)))),
        "volume_pymatgen": structure.volume,
        "identity_error": float((g @ g_star - torch.eye(3, dtype=g.dtype)).abs().max()),
        "reciprocal": torch.sqrt(torch.diagonal(g_star)).numpy(),
        "reciprocal_pymatgen": np.array(structure.lattice.reciprocal_lattice_crystallographic.abc),
    }


def setting_table(study: dict, symbols: dict | None = None, value_labels: dict | None = None) -> pd.DataFrame:
    """The cosine similarities of :func:`setting_variants` results (setting → result) as one table.

    Columns ``setting`` (``symbols`` of the field names, e.g. ``{"eta": "η"}``), ``value`` (``f"{value:g}"``
    unless ``value_labels[setting][value]`` names it, e.g. an X-ray line) and ``cosine similarity to SI pattern``.
    """
    symbols, value_labels = symbols or {}, value_labels or {}
    rows = [
        {
            "setting": symbols.get(name, name),
            "value": value_labels.get(name, {}).get(value, f"{value:g}"),
            "cosine similarity to SI pattern": cosine,
        }
        for name, result in study.items()
        for value, cosine in result["cosine"].items()
    ]
    return pd.DataFrame(rows)


def pymatgen_display(comparison: pd.DataFrame, caption: str = ""):
    """The rows of :func:`compare_with_pymatgen` as a styled table that fits a page.

    The structure's family is written after it, the two peak counts share a column
    (``xrdnb / pymatgen``), the pattern differences share a header, the multiplicity check reads
    yes/no and the numbers are shown as ``1.2e−14`` (:func:`sci`). A difference that was not
    computed (NaN: the peak counts differ) shows as ``—``, and the caption says so.
    """
    counts = zip(comparison["peaks (xrdnb)"], comparison["peaks (pymatgen)"], strict=True)
    table = pd.DataFrame(
        {
            "structure (family)": comparison.structure + " (" + comparison.family + ")",
            "peaks, xrdnb / pymatgen": [f"{a} / {b}" for a, b in counts],
            "max |Δ2θ| (°)": comparison["max |Δ2θ| (°)"],
            "max |ΔI| (of 100)": comparison["max |ΔI| (of 100)"],
            "same multiplicities": comparison["multiplicities equal"].map(YES_NO),
            "Σ I of the weak peaks pymatgen omits (of 100)": comparison["weak peaks omitted by pymatgen (Σ I, of 100)"],
            ("pattern max |Δ| (max = 1)", "dense"): comparison["pattern max |Δ|, dense"],
            ("pattern max |Δ| (max = 1)", "fast"): comparison["pattern max |Δ|, fast"],
        }
    )
    table.columns = pd.MultiIndex.from_tuples([c if isinstance(c, tuple) else (c, "") for c in table.columns])
    numbers = [c for c in table.columns if table[c].dtype.kind == "f"]
    note = "; — : peak counts differ, no peak-by-peak difference" if table[numbers].isna().any().any() else ""
    return table.style.format(sci, subset=numbers, na_rep="—").hide(axis="index").set_caption(caption + note)


def sci(value: float, digits: int = 1) -> str:
    """``value`` in scientific notation with a true minus sign (``1.2e−14``): the browser does not break it."""
    return f"{value:.{digits}e}".replace("-", "−")
