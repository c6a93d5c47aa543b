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

import math
import os
import warnings
from importlib import resources
from pathlib import Path

from pymatgen.core import Structure

from .scattering import has_scattering_factors
from .vocabulary import BENCHMARK_NAMES, CRYSTAL_FAMILIES

__all__ = [
    "StructureError",
    "BENCHMARK_NAMES",
    "CRYSTAL_FAMILIES",
    "load_structure",
    "benchmark_structures",
    "benchmark_table",
    "crystal_family",
    "check_structure",
    "MIN_SITE_DISTANCE",
    "OCCUPANCY_TOLERANCE",
]


StructureLike = str | os.PathLike | Structure


class StructureError(ValueError):
    """A structure that cannot be used, with the source and the reason in the message."""


def _data_dir():
    return resources.files("xrdnb") / "data" / "structures"  # one name per joinpath (Python 3.10)


def benchmark_table():
    """The provenance table of the benchmark set as a pandas ``DataFrame``."""
    import pandas as pd

    text = _data_dir().joinpath("README.md").read_text()
    rows = [
        line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("| ") and ".cif" in line
    ]
    header = ["file", "formula", "mp_id", "space_group", "crystal_family", "sites", "abc", "angles"]
    return pd.DataFrame([[c.strip() for c in r] for r in rows], columns=header)


MIN_SITE_DISTANCE = 0.5
"""Smallest distance (in Å) between two sites.

Closer sites are refused unless their occupancies sum to at most 1 (a split site).
"""

OCCUPANCY_TOLERANCE = 1e-6
"""How far a site's total occupancy may exceed 1 (rounding in CIF files)."""


def _site(structure: Structure, i: int) -> str:
    site = structure[i]
    label = getattr(site, "label", None)
    where = tuple(round(float(x), 4) for x in site.frac_coords)
    return f"site {i}{f' ({label})' if label and label != site.species_string else ''} {site.species_string} at {where}"


def _real_cell(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> str | None:
    """Why lattice parameters (Å, degrees) make no cell, or None."""
    values = (a, b, c, alpha, beta, gamma)
    if not all(math.isfinite(v) for v in values):
        return f"lattice parameters {values} are not all finite"
    if min(a, b, c) <= 0:
        return f"cell lengths a, b, c = {a:g}, {b:g}, {c:g} Å must be positive"
    if not all(0 < x < 180 for x in (alpha, beta, gamma)):
        return f"cell angles {alpha:g}, {beta:g}, {gamma:g}° must lie strictly between 0 and 180"
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    if 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg <= 1e-9:
        return f"cell angles {alpha:g}, {beta:g}, {gamma:g}° make no three-dimensional cell (zero or negative volume)"
    return None


def check_structure(structure: Structure, source: str = "structure") -> Structure:
    """Raise :class:`StructureError` naming ``source`` (and the site) if the structure cannot be simulated.

    Checks, in this order: at least one site; a real cell (finite positive lengths, angles
    in (0°, 180°) with positive volume); finite fractional coordinates; occupancies in
    (0, 1] with each site's total at most 1 (:data:`OCCUPANCY_TOLERANCE`); X-ray form
    factors for every element; no two sites closer than :data:`MIN_SITE_DISTANCE` Å whose
    occupancies sum to more than 1 (the message gives the distance).
    """
    if len(structure) == 0:
        raise StructureError(f"{source}: the structure has no sites")
    why = _real_cell(*structure.lattice.abc, *structure.lattice.angles)
    if why:
        raise StructureError(f"{source}: {why}")
    for i, site in enumerate(structure):
        if not all(math.isfinite(float(x)) for x in site.frac_coords):
            raise StructureError(
                f"{source}: site {i} {site.species_string} has non-finite coordinates {tuple(site.frac_coords)}"
            )
        total = 0.0
        for sp, occ in site.species.items():
            if not 0 < occ <= 1 + OCCUPANCY_TOLERANCE:
                raise StructureError(f"{source}: {_site(structure, i)}: occupancy {occ:g} of {sp} is not in (0, 1]")
            total += occ
            symbol = getattr(sp, "symbol", str(sp))
            if not has_scattering_factors(symbol):
                raise StructureError(
                    f"{source}: {_site(structure, i)} has element {symbol!r} with no X-ray scattering factors"
                )
        if total > 1 + OCCUPANCY_TOLERANCE:
            raise StructureError(f"{source}: {_site(structure, i)}: occupancies sum to {total:g} > 1")
    _check_distances(structure, source)
    return structure


def _check_distances(structure: Structure, source: str) -> None:
    """Refuse sites closer than :data:`MIN_SITE_DISTANCE` whose occupancies sum to more than 1."""
    import numpy as np

    if len(structure) < 2:
        return
    distances = structure.distance_matrix
    i, j = np.nonzero(np.triu(distances < MIN_SITE_DISTANCE, k=1))
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        total = structure[a].species.num_atoms + structure[b].species.num_atoms
        if total > 1 + OCCUPANCY_TOLERANCE:
            raise StructureError(
                f"{source}: {_site(structure, a)} and {_site(structure, b)} are {distances[a, b]:.3f} Å apart "
                f"(closer than {MIN_SITE_DISTANCE} Å, total occupancy {total:g} > 1)"
            )


def _number(text: str) -> float:
    """A CIF number, without its standard uncertainty (``4.4279(3)``); NaN if it is not one."""
    try:
        return float(str(text).split("(")[0])
    except ValueError:
        return float("nan")


def _check_cif(name: str, text: str) -> None:
    """Checks on the raw values of a CIF, before pymatgen turns them into a structure.

    pymatgen silently drops sites with a negative occupancy and takes the absolute value of
    a negative length, so those are caught here, per data block, with the site's label.
    """
    from pymatgen.io.cif import CifFile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible issue at line ...": the checks below say what
            blocks = list(CifFile.from_str(text).data.values())
    except Exception as exc:  # malformed or truncated: pymatgen's reason
        raise StructureError(f"{name}: cannot read a CIF (malformed or truncated: {_reason(exc)})") from None
    if not any("_atom_site_fract_x" in b.data or "_atom_site_Cartn_x" in b.data for b in blocks):
        raise StructureError(f"{name}: the CIF lists no atom sites, so it holds no structures")
    for block in blocks:
        data = block.data
        keys = (
            "_cell_length_a",
            "_cell_length_b",
            "_cell_length_c",
            "_cell_angle_alpha",
            "_cell_angle_beta",
            "_cell_angle_gamma",
        )
        if all(k in data for k in keys):
            why = _real_cell(*(_number(data[k]) for k in keys))
            if why:
                raise StructureError(f"{name}: {why}")
        labels = data.get("_atom_site_label") or data.get("_atom_site_type_symbol") or []
        for axis in ("x", "y", "z"):
            for row, value in enumerate(data.get(f"_atom_site_fract_{axis}", [])):
                if not math.isfinite(_number(value)):
                    label = labels[row] if row < len(labels) else row
                    raise StructureError(
                        f"{name}: site {label} (row {row + 1}): fractional {axis} = {value!r} is not a finite number"
                    )
        occupancies = []
        for row, value in enumerate(data.get("_atom_site_occupancy", [])):
            occ = 1.0 if value in ("?", ".") else _number(value)
            if not 0 <= occ <= 1 + OCCUPANCY_TOLERANCE:
                label = labels[row] if row < len(labels) else row
                raise StructureError(f"{name}: site {label} (row {row + 1}): occupancy {value} is not in [0, 1]")
            occupancies.append(occ)
        if all(k in data for k in keys) and all(f"_atom_site_fract_{a}" in data for a in "xyz"):
            _check_cif_distances(name, [_number(data[k]) for k in keys], data, labels, occupancies)


def _check_cif_distances(name: str, cell: list[float], data, labels, occupancies: list[float]) -> None:
    """Sites of the CIF's list (before symmetry) closer than :data:`MIN_SITE_DISTANCE` with occupancy > 1 together."""
    import numpy as np
    from pymatgen.core import Lattice

    coords = np.array([[_number(v) for v in data[f"_atom_site_fract_{a}"]] for a in "xyz"]).T
    if len(coords) < 2 or len(coords) > 2000:
        return
    occ = np.array(occupancies if len(occupancies) == len(coords) else [1.0] * len(coords))
    distances = Lattice.from_parameters(*cell).get_all_distances(coords, coords)
    i, j = np.nonzero(np.triu(distances < MIN_SITE_DISTANCE, k=1))
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        if occ[a] + occ[b] > 1 + OCCUPANCY_TOLERANCE:
            la = labels[a] if a < len(labels) else a
            lb = labels[b] if b < len(labels) else b
            raise StructureError(
                f"{name}: sites {la} (row {a + 1}) and {lb} (row {b + 1}) are {distances[a, b]:.3f} Å apart "
                f"(closer than {MIN_SITE_DISTANCE} Å, total occupancy {occ[a] + occ[b]:g} > 1)"
            )


def _reason(exc: BaseException, caught: list | None = None) -> str:
    """The most telling line: pymatgen's own reason from its warnings, else the exception's first line."""
    for warning in reversed(caught or []):
        text = " ".join(str(warning.message).split())
        if "No structure parsed" in text:
            return text.split("CIF.", 1)[-1].strip() or text
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    if path.is_dir():
        raise StructureError(f"{name}: is a folder, not a structure file")
    if path.suffix.lower() in (".cif", ".mcif"):
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise StructureError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
        _check_cif(name, text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = Structure.from_file(path)
        except Exception as exc:  # pymatgen raises many types for malformed files
            raise StructureError(f"{name}: cannot read a structure ({_reason(exc, caught)})") from None
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
