"""What the noise models and the symmetry projectors do to a crystal, before any optimiser runs (chapter 2).

Every function takes a ground-truth :class:`~xrdnb.crystal.Crystal` (one copy), distorts it with
:func:`xrdnb.distortions.distort`, and measures the copies: lattice errors, atom displacements, the
four XRD similarities of :func:`xrdnb.losses.all_similarities` and, optionally, pymatgen's
``StructureMatcher`` and the AMD distance (:mod:`xrdnb.evaluate`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from .crystal import Crystal
from .distortions import distort
from .evaluate import MatcherTolerances, amd_distances, structures_match
from .lattice import lattice_matrix
from .losses import all_similarities
from .pattern import DEFAULT_SETTINGS, XRDSettings, simulate_pattern
from .structures import benchmark_table, crystal_family
from .symmetry import free_parameters, is_in_family, project_lattice
from .vocabulary import LATTICE_LABELS, LATTICE_NAMES, LATTICE_SYMBOLS, YES_NO

__all__ = [
    "PARAMETERS",
    "SI_NAMED",
    "benchmark_gallery",
    "lattice_errors",
    "similarities_to_truth",
    "projector_stages",
    "projector_properties",
    "projection_summary",
    "distortion_records",
    "median_table",
    "matcher_variants",
    "gallery_display",
    "projector_display",
    "split_headers",
    "median_tables",
]

PARAMETERS = [LATTICE_SYMBOLS[name] for name in LATTICE_NAMES]
"""Display symbols of the six lattice parameters, in tensor order (a, b, c, α, β, γ)."""

SI_NAMED = ("Au2S", "U2Ti", "BPO4", "Na3MnCoNiO6", "NdAl2Cu4")
"""The five benchmark structures the SI names (the other five are this project's choice)."""


def benchmark_gallery(structures: dict) -> pd.DataFrame:
    """One row per structure (name → pymatgen ``Structure``): formula, Materials Project id, symmetry, cell.

    Columns: ``structure, formula, Materials Project, space group, crystal system, family of 𝒫, sites,
    a (Å), b (Å), c (Å), α (°), β (°), γ (°), V (Å³), source`` (space groups at symprec 0.1).
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    provenance = benchmark_table()
    mp_id = dict(zip(provenance.file.str.replace(".cif", "", regex=False), provenance.mp_id, strict=True))
    rows = []
    for name, s in structures.items():
        symbol, number = s.get_space_group_info(symprec=0.1)
        lat = s.lattice
        rows.append(
            {
                "structure": name,
                "formula": s.composition.reduced_formula,
                "Materials Project": mp_id.get(name, "—"),
                "space group": f"{symbol} ({number})",
                "crystal system": SpacegroupAnalyzer(s, symprec=0.1).get_crystal_system(),
                "family of 𝒫": crystal_family(s),
                "sites": len(s),
                **dict(zip([LATTICE_LABELS[n] for n in LATTICE_NAMES], lat.parameters, strict=True)),
                "V (Å³)": s.volume,
                "source": "named in the SI" if name in SI_NAMED else "chosen here",
            }
        )
    return pd.DataFrame(rows)


def lattice_errors(lattice: torch.Tensor, truth: Crystal) -> tuple[np.ndarray, np.ndarray]:
    """Largest relative length error (%) and largest angle error (°) of each lattice ``(B, 6)`` against the truth."""
    delta = (lattice - truth.lattice).abs()
    return (100 * (delta[:, :3] / truth.lattice[:, :3]).amax(dim=1)).numpy(), delta[:, 3:].amax(dim=1).numpy()


def similarities_to_truth(
    truth: Crystal, copies: Crystal, settings: XRDSettings = DEFAULT_SETTINGS, *, half_width: float = 1.0
) -> dict[str, np.ndarray]:
    """The four similarities (``cosine, mse, entropy, cross_correlation`` → ``(B,)``) of the copies to the truth."""
    with torch.no_grad():
        target = simulate_pattern(truth, settings)[0]
        sims = all_similarities(
            simulate_pattern(copies, settings), target, half_width=half_width, step=settings.two_theta_step
        )
    return {name: value.numpy() for name, value in sims.items()}


def projector_stages(
    truth: Crystal, family: str, sigma: float, seed: int = 0, settings: XRDSettings = DEFAULT_SETTINGS
) -> pd.DataFrame:
    """The ground truth, copy 0 distorted with lattice noise ``sigma``, and its projection 𝒫 onto ``family``.

    Returns three rows: ``stage``, ``free after 𝒫``, the six parameters (Å, °), ``in family``,
    ``max |Δl|/l (%)``, ``max |Δangle| (°)`` and ``cosine to truth`` (same fractional coordinates).
    """
    distorted = distort(truth, "lattice", sigma, n_copies=1, seed=seed).lattice
    stages = {
        "ground truth": truth.lattice,
        f"distorted, σ = {sigma:g}": distorted,
        "projected, 𝒫(distorted)": project_lattice(distorted, family),
    }
    rows = []
    for stage, lattice in stages.items():
        length_err, angle_err = lattice_errors(lattice, truth)
        rows.append(
            {
                "free after 𝒫": ", ".join(free_parameters(family)),
                "stage": stage,
                **dict(zip(PARAMETERS, lattice[0].tolist(), strict=True)),
                "in family": bool(is_in_family(lattice, family, atol=1e-6)[0]),
                "max |Δl|/l (%)": length_err[0],
                "max |Δangle| (°)": angle_err[0],
                "cosine to truth": similarities_to_truth(truth, truth.with_lattice(lattice), settings)["cosine"][0],
            }
        )
    return pd.DataFrame(rows)


def projector_properties(
    truths: dict, families: dict, sigma: float, n_copies: int, seed: int = 0
) -> tuple[float, float]:
    """Idempotence and fixed-point errors of 𝒫.

    Parameters
    ----------
    truths, families
        name → ground-truth crystal and name → crystal family.

    Returns
    -------
    ``max |𝒫(𝒫(x)) − 𝒫(x)|`` over ``n_copies`` copies of each crystal distorted with lattice noise
    ``sigma``, and ``max |𝒫(truth) − truth|`` over the ground truths (Å or °).
    """
    idempotence = fixed_point = 0.0
    for name, truth in truths.items():
        x = distort(truth, "lattice", sigma, n_copies, seed).lattice
        once = project_lattice(x, families[name])
        idempotence = max(idempotence, float((project_lattice(once, families[name]) - once).abs().max()))
        fixed_point = max(
            fixed_point, float((project_lattice(truth.lattice, families[name]) - truth.lattice).abs().max())
        )
    return idempotence, fixed_point


def projection_summary(
    truth: Crystal, family: str, sigma: float, n_copies: int, seed: int = 0, settings: XRDSettings = DEFAULT_SETTINGS
) -> dict:
    """Medians over ``n_copies`` lattice-distorted copies of the errors and cosine, before and after 𝒫.

    Returns a row: ``max |Δl|/l (%)``, ``max |Δangle| (°)`` and ``cosine``, each ``, distorted`` and
    ``, projected``, and ``copies where 𝒫 raises the cosine (%)``.
    """
    distorted = distort(truth, "lattice", sigma, n_copies, seed).lattice
    projected = project_lattice(distorted, family)
    (ld, ad), (lp, ap) = lattice_errors(distorted, truth), lattice_errors(projected, truth)
    cosine = similarities_to_truth(truth, truth.with_lattice(torch.cat([distorted, projected])), settings)["cosine"]
    cd, cp = np.split(cosine, 2)
    return {
        "max |Δl|/l (%), distorted": np.median(ld),
        "max |Δl|/l (%), projected": np.median(lp),
        "max |Δangle| (°), distorted": np.median(ad),
        "max |Δangle| (°), projected": np.median(ap),
        "cosine, distorted": np.median(cd),
        "cosine, projected": np.median(cp),
        "copies where 𝒫 raises the cosine (%)": 100 * np.mean(cp > cd),
    }


def distortion_records(
    name: str,
    truth: Crystal,
    noise_type: str,
    levels,
    n_copies: int,
    seed: int = 0,
    settings: XRDSettings = DEFAULT_SETTINGS,
    *,
    half_width: float = 1.0,
    structure=None,
    tolerances: MatcherTolerances | None = None,
    amd_k: int = 100,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Distort ``truth`` at every level of one noise type and measure each copy.

    Parameters
    ----------
    name
        the structure's name, for the ``structure`` column.
    noise_type, levels
        ``"lattice"`` (σ dimensionless) or ``"coordinates"`` (σ in Å) and the σ values.
    structure
        the ground truth as a pymatgen ``Structure``; when given, ``StructureMatcher`` (with
        ``tolerances``) and the AMD distance (``amd_k`` terms) are run on every copy.

    Returns
    -------
    records
        one row per copy: ``structure, noise, σ, copy, max |Δl|/l (%), max |Δangle| (°), mean |Δr| (Å)``
        (NaN for lattice noise), the four similarities, and ``match``, ``AMD distance (Å)`` with ``structure``.
    changes
        lattice noise: the relative change (%) of each parameter (columns :data:`PARAMETERS`) per copy;
        coordinate noise: ``|Δr| (Å)`` per atom (minimum image, in the fixed cell); with ``structure``, ``σ``.
    """
    batches = [distort(truth, noise_type, float(level), n_copies, seed) for level in levels]
    # one simulator call for all levels (fewer, larger batches are faster)
    if noise_type == "lattice":
        combined = truth.with_lattice(torch.cat([b.lattice for b in batches]))
    else:
        combined = truth.with_frac_coords(torch.cat([b.frac_coords for b in batches]))
    sims_all = similarities_to_truth(truth, combined, settings, half_width=half_width)
    matrix = lattice_matrix(truth.lattice[0]).numpy()
    records, changes = [], []
    for k, (level, copies) in enumerate(zip(levels, batches, strict=True)):
        dfrac = (copies.frac_coords - truth.frac_coords).numpy()
        dfrac -= np.round(dfrac)  # minimum image
        disp = np.linalg.norm(dfrac @ matrix, axis=-1)  # (B, N) Å
        length_err, angle_err = lattice_errors(copies.lattice, truth)
        rec = pd.DataFrame(
            {
                "structure": name,
                "noise": noise_type,
                "σ": float(level),
                "copy": np.arange(n_copies),
                "max |Δl|/l (%)": length_err,
                "max |Δangle| (°)": angle_err,
                "mean |Δr| (Å)": disp.mean(axis=1) if noise_type == "coordinates" else np.nan,
            }
        )
        for metric, value in sims_all.items():
            rec[metric] = value[k * n_copies : (k + 1) * n_copies]
        if structure is not None:
            copies_pmg = copies.to_structures()
            rec["match"] = structures_match(copies_pmg, structure, tolerances or MatcherTolerances())
            rec["AMD distance (Å)"] = amd_distances(copies_pmg, structure, amd_k)
        records.append(rec)
        if noise_type == "lattice":
            relative = 100 * ((copies.lattice - truth.lattice) / truth.lattice).numpy()
            changes.append(pd.DataFrame(relative, columns=PARAMETERS).assign(structure=name, σ=float(level)))
        else:
            changes.append(pd.DataFrame({"structure": name, "σ": float(level), "|Δr| (Å)": disp.ravel()}))
    return pd.concat(records, ignore_index=True), pd.concat(changes, ignore_index=True)


def median_table(records: pd.DataFrame, columns) -> pd.DataFrame:
    """Medians of ``columns`` per noise type and level (in the order of ``records``).

    With a ``match`` column, the match rate (%) is inserted before ``AMD distance (Å)`` (or last).
    """
    groups = records.groupby(["noise", "σ"], sort=False)
    medians = groups[list(columns)].median()
    if "match" in records:
        medians.insert(
            len(medians.columns) - ("AMD distance (Å)" in medians), "match rate (%)", 100 * groups["match"].mean()
        )
    return medians


def matcher_variants(
    truth: Crystal,
    structure,
    sigma: float,
    n_copies: int,
    seed: int = 0,
    tolerances: MatcherTolerances | None = None,
) -> dict[str, float]:
    """Match rates (%) of coordinate-distorted copies under the default matcher and two variants of it.

    Returns ``{"default", "attempt_supercell", "primitive_cell=False"}`` → percentage of the
    ``n_copies`` copies (coordinate noise ``sigma`` Å) that ``StructureMatcher`` matches to ``structure``.
    """
    tolerances = tolerances or MatcherTolerances()
    copies = distort(truth, "coordinates", sigma, n_copies, seed).to_structures()
    variants = {
        "default": tolerances,
        "attempt_supercell": replace(tolerances, attempt_supercell=True),
        "primitive_cell=False": replace(tolerances, primitive_cell=False),
    }
    return {label: 100 * structures_match(copies, structure, variant).mean() for label, variant in variants.items()}


def _joined(values, digits: int) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def gallery_display(gallery: pd.DataFrame) -> pd.DataFrame:
    """:func:`benchmark_gallery` in nine columns, to fit a page.

    The formula is shown after the name only where it differs from it, the family of 𝒫 after the
    crystal system only where it differs from it, and the cell as ``a, b, c (Å)`` (4 decimals) and
    ``α, β, γ (°)`` (3 decimals).
    """
    lengths, angles = (
        gallery[[LATTICE_LABELS[n] for n in names]].to_numpy() for names in (LATTICE_NAMES[:3], LATTICE_NAMES[3:])
    )
    name = [s if s == f else f"{s} ({f})" for s, f in zip(gallery.structure, gallery.formula, strict=True)]
    system = [
        c if c == f else f"{c} (𝒫: {f})" for c, f in zip(gallery["crystal system"], gallery["family of 𝒫"], strict=True)
    ]
    return pd.DataFrame(
        {
            "structure": name,
            "Materials Project": gallery["Materials Project"],
            "space group": gallery["space group"],
            "crystal system": system,
            "sites": gallery.sites,
            "a, b, c (Å)": [_joined(row, 4) for row in lengths],
            "α, β, γ (°)": [_joined(row, 3) for row in angles],
            "V (Å³)": gallery["V (Å³)"],
            "source": gallery.source,
        }
    )


def projector_display(stages: dict) -> pd.DataFrame:
    """The tables of :func:`projector_stages` (``(family, structure)`` → table) as one table that fits a page.

    Rows: ``family: structure (free after 𝒫 ...)`` and ``stage``; columns ``a, b, c (Å)`` (4 decimals)
    and ``α, β, γ (°)`` (2 decimals) as text, ``in family`` (yes/no), the two errors and the cosine.
    """
    parts = {}
    for (family, name), table in stages.items():
        free = ", ".join(LATTICE_SYMBOLS.get(p, p) for p in table["free after 𝒫"].iloc[0].split(", "))
        label = f"{family}: {name} (free after 𝒫: {free})"
        parts[label] = pd.DataFrame(
            {
                "a, b, c (Å)": [_joined(row, 4) for row in table[PARAMETERS[:3]].to_numpy()],
                "α, β, γ (°)": [_joined(row, 2) for row in table[PARAMETERS[3:]].to_numpy()],
                "in family": table["in family"].map(YES_NO),
                **{c: table[c] for c in ("max |Δl|/l (%)", "max |Δangle| (°)", "cosine to truth")},
            }
        ).set_axis(table.stage)
    return pd.concat(parts, names=["family: example", "stage"])


def split_headers(table: pd.DataFrame, sep: str = ", ") -> pd.DataFrame:
    """Columns named ``"group<sep>item"`` become two header rows (group over item); others keep one, over ``""``.

    The split is at the last ``sep``, so ``"max |Δl|/l (%), distorted"`` is ``("max |Δl|/l (%)", "distorted")``.
    """
    pairs = [tuple(c.rsplit(sep, 1)) if sep in c else (c, "") for c in table.columns]
    return table.set_axis(pd.MultiIndex.from_tuples(pairs), axis=1)


def median_tables(records: pd.DataFrame, columns) -> dict[str, pd.DataFrame]:
    """:func:`median_table` split by noise type (noise type → table indexed by σ).

    A column that is NaN or 0 at every level of a noise type is left out of that type's table: lattice
    noise has no atom displacement (``mean |Δr| (Å)`` is NaN), coordinate noise leaves the cell as it is.
    """
    medians = median_table(records, columns)
    out = {}
    for noise in medians.index.unique("noise"):
        table = medians.xs(noise, level="noise")
        out[noise] = table.loc[:, (table.notna() & (table != 0)).any()]
    return out
