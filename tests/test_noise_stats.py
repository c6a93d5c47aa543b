"""xrdnb.noise_stats: the distortion and projector measurements of chapter 2 on small benchmark structures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import xrdnb
from xrdnb import noise_stats as ns
from xrdnb.vocabulary import LOSS_NAMES


@pytest.fixture(scope="module")
def u2ti():
    structure = xrdnb.load_structure("U2Ti")
    return structure, xrdnb.crystal_from_structure(structure)


def test_benchmark_gallery(u2ti):
    structure, _ = u2ti
    table = ns.benchmark_gallery({"U2Ti": structure})
    row = table.iloc[0]
    assert row["family of 𝒫"] == "hexagonal" and row["source"] == "named in the SI" and row["sites"] == 3
    assert row["γ (°)"] == pytest.approx(120) and row["space group"] == "P6/mmm (191)"


def test_lattice_errors_and_similarities(u2ti):
    _, truth = u2ti
    length, angle = ns.lattice_errors(truth.lattice, truth)
    assert length[0] == 0 and angle[0] == 0
    sims = ns.similarities_to_truth(truth, truth)
    assert set(sims) == set(LOSS_NAMES) and sims["cosine"][0] == pytest.approx(1.0)


def test_projector_stages_and_properties(u2ti):
    _, truth = u2ti
    table = ns.projector_stages(truth, "hexagonal", 0.1)
    assert list(table["in family"]) == [True, False, True] and table["cosine to truth"].iloc[0] == pytest.approx(1)
    assert table["γ"].iloc[2] == pytest.approx(120) and table["max |Δangle| (°)"].iloc[2] == pytest.approx(0, abs=1e-9)
    idempotence, fixed_point = ns.projector_properties({"U2Ti": truth}, {"U2Ti": "hexagonal"}, 0.1, 4)
    assert idempotence < 1e-10 and fixed_point < 1e-10


def test_projection_summary(u2ti):
    _, truth = u2ti
    row = ns.projection_summary(truth, "hexagonal", 0.1, 4)
    assert row["max |Δangle| (°), projected"] == pytest.approx(0, abs=1e-9)
    assert row["max |Δangle| (°), distorted"] > 1
    assert 0 <= row["copies where 𝒫 raises the cosine (%)"] <= 100


def test_distortion_records_and_medians(u2ti):
    structure, truth = u2ti
    records, changes = ns.distortion_records("U2Ti", truth, "coordinates", [0.01, 0.1], 3, structure=structure)
    assert len(records) == 6 and {"match", "AMD distance (Å)", *LOSS_NAMES} <= set(records.columns)
    assert len(changes) == 2 * 3 * truth.n_sites
    ratio = records.groupby("σ")["mean |Δr| (Å)"].mean() / np.array([0.01, 0.1])
    assert ratio.iloc[0] == pytest.approx(ratio.iloc[1])  # common random numbers: proportional distortions
    lattice, lattice_changes = ns.distortion_records("U2Ti", truth, "lattice", [0.05], 2)
    assert list(lattice_changes.columns[:6]) == ns.PARAMETERS and lattice["mean |Δr| (Å)"].isna().all()
    medians = ns.median_table(records, ["cosine", "AMD distance (Å)"])
    assert list(medians.columns) == ["cosine", "match rate (%)", "AMD distance (Å)"] and len(medians) == 2


def test_matcher_variants(u2ti):
    structure, truth = u2ti
    rates = ns.matcher_variants(truth, structure, 0.01, 2)
    assert set(rates) == {"default", "attempt_supercell", "primitive_cell=False"}
    assert all(0 <= r <= 100 for r in rates.values())


def test_gallery_display(u2ti):
    structure, _ = u2ti
    shown = ns.gallery_display(ns.benchmark_gallery({"U2Ti": structure}))
    assert list(shown.columns) == [
        *("structure", "Materials Project", "space group", "crystal system", "sites"),
        *("a, b, c (Å)", "α, β, γ (°)", "V (Å³)", "source"),
    ]
    row = shown.iloc[0]
    assert row["structure"] == "U2Ti" and row["crystal system"] == "hexagonal"  # no repeats where they agree
    assert row["α, β, γ (°)"] == "90.000, 90.000, 120.000" and row["a, b, c (Å)"].count(", ") == 2


def test_projector_display_and_split_headers(u2ti):
    _, truth = u2ti
    shown = ns.projector_display({("hexagonal", "U2Ti"): ns.projector_stages(truth, "hexagonal", 0.1)})
    assert shown.index.names == ["family: example", "stage"] and len(shown) == 3
    assert shown.index[0][0] == "hexagonal: U2Ti (free after 𝒫: a, c)" and list(shown["in family"]) == [
        "yes",
        "no",
        "yes",
    ]
    assert shown["α, β, γ (°)"].iloc[2] == "90.00, 90.00, 120.00"
    split = ns.split_headers(pd.DataFrame(columns=["structure", "cosine, distorted", "cosine, projected"]))
    assert list(split.columns) == [("structure", ""), ("cosine", "distorted"), ("cosine", "projected")]


def test_median_tables_drop_what_a_noise_type_leaves_alone(u2ti):
    structure, truth = u2ti
    coords, _ = ns.distortion_records("U2Ti", truth, "coordinates", [0.01], 2)
    lattice, _ = ns.distortion_records("U2Ti", truth, "lattice", [0.05], 2)
    tables = ns.median_tables(
        pd.concat([lattice, coords], ignore_index=True), ["max |Δl|/l (%)", "mean |Δr| (Å)", "cosine"]
    )
    assert list(tables) == ["lattice", "coordinates"]
    assert list(tables["lattice"].columns) == ["max |Δl|/l (%)", "cosine"] and list(tables["lattice"].index) == [0.05]
    assert list(tables["coordinates"].columns) == ["mean |Δr| (Å)", "cosine"]
