"""xrdnb: differentiable powder X-ray diffraction and the loss-landscape study of Segal et al. (2026).

The package follows the data flow of the study, one module per stage:

``structures`` (CIF / pymatgen in) → ``crystal`` (batched tensors) → ``lattice`` and
``reflections`` (geometry) → ``scattering`` (form and structure factors, LP) →
``peak_shapes`` (Caglioti widths, pseudo-Voigt rendering) → ``pattern`` (the whole SI §1.2 pipeline) →
``peaks`` (pymatgen-style peak lists); then the study: ``symmetry`` (crystal-family
projectors) and ``distortions`` → ``losses`` → ``optimize`` (batched gradient descent) →
``evaluate`` (StructureMatcher, AMD, similarities) → ``sweep`` (resumable grids).
"""

from importlib import metadata as _metadata

# The submodules, importable as attributes (xrdnb.losses, ...): re-exported by the redundant alias.
from . import distortions as distortions
from . import evaluate as evaluate
from . import lattice as lattice
from . import losses as losses
from . import optimize as optimize
from . import peak_shapes as peak_shapes
from . import peaks as peaks
from . import reflections as reflections
from . import scattering as scattering
from . import sweep as sweep
from . import symmetry as symmetry
from .crystal import Crystal, crystal_from_structure
from .distortions import distort
from .losses import all_similarities, loss_function, similarity_function
from .optimize import GDConfig, run_gradient_descent
from .pattern import DEFAULT_SETTINGS, Reflections, XRDSettings, compute_reflections, render_pattern, simulate_pattern
from .reflections import ReflectionSet, covers, enumerate_reflections
from .structures import (
    BENCHMARK_NAMES,
    CRYSTAL_FAMILIES,
    StructureError,
    benchmark_structures,
    benchmark_table,
    crystal_family,
    load_structure,
)
from .symmetry import project_lattice

try:  # the version is written once, in pyproject.toml; the installed metadata carries it
    __version__ = _metadata.version("xrdnb")
except _metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

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
