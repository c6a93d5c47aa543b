"""xrdnb: differentiable powder X-ray diffraction and the loss-landscape study of Segal et al. (2026).

The package follows the data flow of the study, one module per stage:

``structures`` (CIF / pymatgen in) → ``crystal`` (batched tensors) → ``lattice`` and
``reflections`` (geometry) → ``scattering`` (form and structure factors, LP) →
``profiles`` (pseudo-Voigt rendering) → ``pattern`` (the whole SI §1.2 pipeline) →
``peaks`` (pymatgen-style peak lists); then the study: ``symmetry`` (crystal-family
projectors) and ``distortions`` → ``losses`` → ``optimize`` (batched gradient descent) →
``evaluate`` (StructureMatcher, AMD, similarities) → ``sweep`` (resumable grids).
"""

from . import (
    distortions,
    evaluate,
    lattice,
    losses,
    optimize,
    peaks,
    profiles,
    reflections,
    scattering,
    sweep,
    symmetry,
)

from .crystal import Crystal, crystal_from_structure
from .pattern import DEFAULT_SETTINGS, Reflections, XRDSettings, compute_reflections, render_pattern, simulate_pattern
from .distortions import distort
from .losses import all_similarities, loss_function, similarity_function
from .optimize import GDConfig, run_gradient_descent
from .reflections import ReflectionSet, covers, enumerate_reflections
from .symmetry import project_lattice
from .structures import (
    BENCHMARK_NAMES,
    CRYSTAL_FAMILIES,
    StructureError,
    benchmark_structures,
    benchmark_table,
    crystal_family,
    load_structure,
)

__version__ = "0.1.0"

__all__ = [
    "BENCHMARK_NAMES",
    "CRYSTAL_FAMILIES",
    "Crystal",
    "DEFAULT_SETTINGS",
    "ReflectionSet",
    "Reflections",
    "StructureError",
    "XRDSettings",
    "benchmark_structures",
    "benchmark_table",
    "compute_reflections",
    "covers",
    "GDConfig",
    "all_similarities",
    "crystal_family",
    "crystal_from_structure",
    "distort",
    "enumerate_reflections",
    "load_structure",
    "loss_function",
    "project_lattice",
    "render_pattern",
    "run_gradient_descent",
    "similarity_function",
    "simulate_pattern",
]
