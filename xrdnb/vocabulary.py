"""The study's names, levels and display labels, defined once.

Every other module (the simulator, the sweeps, the tables, the chapters and the explorer)
imports these instead of spelling them again. The module imports nothing from the
package, so that any module can use it.

Examples
--------
>>> NOISE_LEVELS["lattice"]
(0.01, 0.05, 0.1, 0.15, 0.2)
>>> [RUN_LABELS[run] for run in RUNS]
['cosine', 'MSE', 'entropy', 'cross-correlation', 'cosine + constraints']
"""

from __future__ import annotations

__all__ = [
    "BENCHMARK_NAMES",
    "CRYSTAL_FAMILIES",
    "NOISE_TYPES",
    "NOISE_LEVELS",
    "NOISE_UNITS",
    "NOISE_LABELS",
    "LATTICE_NAMES",
    "LATTICE_SYMBOLS",
    "LATTICE_LABELS",
    "LOSS_NAMES",
    "LOSS_LABELS",
    "SIMILARITY_LABELS",
    "RUNS",
    "RUN_LABELS",
    "run_label",
    "YES_NO",
    "SEARCH_METHODS",
]

BENCHMARK_NAMES = (
    "Au2S",
    "SrTe",
    "U2Ti",
    "NaInS2",
    "BPO4",
    "NdAl2Cu4",
    "BaTiO3",
    "LiCSN",
    "Na3MnCoNiO6",
    "Gd4B3C4",
)
"""The ten benchmark structures of the paper, ordered by crystal family (cubic → triclinic)."""

CRYSTAL_FAMILIES = ("cubic", "hexagonal", "tetragonal", "orthorhombic", "monoclinic", "triclinic")
"""The six crystal families of SI §1.3 (trigonal belongs to hexagonal)."""

NOISE_TYPES = ("lattice", "coordinates")
"""The two kinds of distortion, of the lattice parameters or of the atomic positions."""

NOISE_LEVELS = {
    "lattice": (0.01, 0.05, 0.1, 0.15, 0.2),
    "coordinates": (0.001, 0.005, 0.01, 0.05, 0.1),
}
"""The study's noise levels σ (SI), dimensionless for ``"lattice"`` and in Å for ``"coordinates"``."""

NOISE_UNITS = {"lattice": "", "coordinates": "Å"}
"""Unit of σ per noise type (the lattice σ is relative)."""

NOISE_LABELS = {"lattice": "Lattice", "coordinates": "Coordinates"}
"""Display names of the noise types (the row groups of Tables S1/S2)."""

LATTICE_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")
"""The six lattice parameters in the order of every ``(..., 6)`` lattice tensor."""

LATTICE_SYMBOLS = {"a": "a", "b": "b", "c": "c", "alpha": "α", "beta": "β", "gamma": "γ"}
"""Display symbols, by parameter name."""

LATTICE_LABELS = {"a": "a (Å)", "b": "b (Å)", "c": "c (Å)", "alpha": "α (°)", "beta": "β (°)", "gamma": "γ (°)"}
"""Axis labels with units, by parameter name."""

LOSS_NAMES = ("cosine", "mse", "entropy", "cross_correlation")
"""The four XRD losses of SI §1.2, in the SI's order (implemented in :mod:`xrdnb.losses`)."""

LOSS_LABELS = {"cosine": "−cosine", "mse": "MSE", "entropy": "−entropy", "cross_correlation": "−cross-correlation"}
"""Display names of the losses as minimised (a similarity enters with a minus sign)."""

SIMILARITY_LABELS = {"cosine": "cosine", "mse": "−MSE", "entropy": "entropy", "cross_correlation": "cross-correlation"}
"""Display names of the similarities (larger is more similar; MSE enters with a minus sign)."""

RUNS = (
    ("cosine", False),
    ("mse", False),
    ("entropy", False),
    ("cross_correlation", False),
    ("cosine", True),
)
"""The study's optimisation runs as ``(loss, constrained)``, in the order of the SI tables' columns."""

RUN_LABELS = {
    ("cosine", False): "cosine",
    ("mse", False): "MSE",
    ("entropy", False): "entropy",
    ("cross_correlation", False): "cross-correlation",
    ("cosine", True): "cosine + constraints",
}
"""Display names of the runs, by ``(loss, constrained)``."""


def run_label(loss: str, constrained: bool) -> str:
    """Display name of a run; runs outside :data:`RUNS` get ``"<loss> + constraints"`` or the loss name.

    >>> run_label("mse", True)
    'MSE + constraints'
    """
    if (loss, bool(constrained)) in RUN_LABELS:
        return RUN_LABELS[(loss, bool(constrained))]
    base = RUN_LABELS.get((loss, False), loss)
    return f"{base} + constraints" if constrained else base


YES_NO = {True: "yes", False: "no"}
"""How a table shows a yes/no check (a match, membership of a family)."""

SEARCH_METHODS = (
    "gradient_descent",
    "multistart",
    "width_annealing",
    "differential_evolution",
    "basin_hopping",
    "hybrid",
)
"""The searches of chapter 8 (:mod:`xrdnb.search`), by the names the comparison tables use."""
