"""Structures in: CIF files, pymatgen ``Structure`` objects and the bundled benchmark set.

This is the pymatgen edge of the package. The ten benchmark structures of the study
(conventional standard cells, provenance in ``xrdnb/data/structures/README.md``) ship
with the package and load by name::

    >>> from xrdnb import load_structure, crystal_family
    >>> s = load_structure("BPO4")
    >>> s.composition.reduced_formula, crystal_family(s)
    ('BPO4', 'tetragonal')
"""

from __future__ import annotations

import os
import warnings
from importlib import resources
from pathlib import Path
from typing import Union

from pymatgen.core import Structure

from .scattering import has_scattering_factors

__all__ = [
    "StructureError",
    "BENCHMARK_NAMES",
    "CRYSTAL_FAMILIES",
    "load_structure",
    "benchmark_structures",
    "benchmark_table",
    "crystal_family",
    "check_structure",
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
"""The ten benchmark structures, ordered by crystal family (cubic → triclinic)."""

CRYSTAL_FAMILIES = ("cubic", "hexagonal", "tetragonal", "orthorhombic", "monoclinic", "triclinic")
"""The six crystal families of SI §1.3 (trigonal belongs to hexagonal)."""

StructureLike = Union[str, os.PathLike, Structure]


class StructureError(ValueError):
    """A structure that cannot be used, with the source and the reason in the message."""


def _data_dir():
    return resources.files("xrdnb").joinpath("data", "structures")


def benchmark_table():
    """The provenance table of the benchmark set as a pandas ``DataFrame``."""
    import pandas as pd

    text = _data_dir().joinpath("README.md").read_text()
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("| ") and ".cif" in line]
    header = ["file", "formula", "mp_id", "space_group", "crystal_family", "sites", "abc", "angles"]
    return pd.DataFrame([[c.strip() for c in r] for r in rows], columns=header)


def check_structure(structure: Structure, source: str = "structure") -> Structure:
    """Raise :class:`StructureError` naming ``source`` if the structure cannot be simulated.

    Checks: at least one site, and X-ray form factors for every element on every site.
    """
    if len(structure) == 0:
        raise StructureError(f"{source}: the structure has no sites")
    for i, site in enumerate(structure):
        for sp in site.species:
            symbol = getattr(sp, "symbol", str(sp))
            if not has_scattering_factors(symbol):
                raise StructureError(
                    f"{source}: site {i} ({site.species_string} at {tuple(round(float(x), 4) for x in site.frac_coords)}) "
                    f"has element {symbol!r} with no X-ray scattering factors"
                )
    return structure


def load_structure(source: StructureLike) -> Structure:
    """A pymatgen ``Structure`` from a benchmark name, a CIF (or any pymatgen-readable) path, or a ``Structure``.

    Raises :class:`StructureError` with the file name and the problem for unreadable or
    unusable input.

    >>> [round(x, 4) for x in load_structure("U2Ti").lattice.abc]
    [4.7887, 4.7887, 2.8022]
    """
    if isinstance(source, Structure):
        return check_structure(source)
    name = str(source)
    if name in BENCHMARK_NAMES:
        text = _data_dir().joinpath(f"{name}.cif").read_text()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen notes that it snapped coordinates like 0.5
            return Structure.from_str(text, fmt="cif")
    path = Path(name)
    if not path.exists():
        known = ", ".join(BENCHMARK_NAMES)
        raise StructureError(f"{name}: no such file, and not a benchmark structure ({known})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_file(path)
    except Exception as exc:  # pymatgen raises many types for malformed files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StructureError(f"{name}: cannot read a structure ({reason})") from exc
    return check_structure(structure, name)


def benchmark_structures() -> dict[str, Structure]:
    """All ten benchmark structures, by name."""
    return {name: load_structure(name) for name in BENCHMARK_NAMES}


def crystal_family(structure: Structure, symprec: float = 0.1) -> str:
    """Crystal family of SI §1.3 from the space group (trigonal → ``'hexagonal'``).

    Projectors assume the conventional setting (for trigonal: hexagonal axes).
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    system = SpacegroupAnalyzer(structure, symprec=symprec).get_crystal_system()
    return "hexagonal" if system == "trigonal" else system
