"""Landscape sets: computed by kind, resumable, packed with a manifest, and the chapters' own values."""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
import yaml

from xrdnb import landscape_sets as lsets
from xrdnb import landscape_tables as lt
from xrdnb.cli import main
from xrdnb.relax_tables import ENERGY_LOSS

ROOT = Path(__file__).resolve().parents[1]

TINY = replace(
    lsets.PROFILES["smoke"],
    s2_grid=5,
    s3_cases=(("U2Ti", "a", "c"),),
    s3_grid=5,
    structures=("U2Ti",),
    roughness_grids=(3, 5, 9),
    cut_structures=("U2Ti",),
    cut_points=9,
    energy_grid=5,
)
XRD_KINDS = ("fig_s2", "fig_s3", "roughness", "cuts")


def _run(folder: Path, kinds=XRD_KINDS, spec=TINY):
    return lsets.run_landscape_set(spec, folder, command="test", profile="tiny", progress=False, kinds=kinds)


def test_a_set_holds_every_landscape_on_its_nested_grids_and_loads_back(tmp_path):
    manifest = _run(tmp_path, kinds=tuple(lsets.KINDS))
    assert manifest["landscapes"] == {"done": 1 + 1 + 1 + 1 + 1, "total": 5}
    assert set(manifest["seconds"]) == set(lsets.KINDS)
    loaded = lsets.load_landscape_set(tmp_path)
    assert loaded.is_complete() and loaded.spec == TINY
    assert "landscape set" in loaded.describe() and "5 of 5 landscapes" in loaded.describe()
    roughness = loaded.resolution("roughness")
    assert sorted(roughness["grid"].unique()) == [3, 5, 9]
    assert sorted(roughness["loss"].unique()) == sorted(["cosine", "mse", "entropy", "cross_correlation"])
    assert loaded.resolution("fig_s2")["axis"].nunique() == 15
    assert sorted(loaded.resolution("cuts")["grid"].unique()) == [3, 5, 9]
    energy = loaded.resolution("energy")
    assert set(energy["loss"]) == {ENERGY_LOSS, "cosine"} and set(energy["grid"]) == {3, 5}
    assert energy["family"].eq("cubic").all()
    summary = lt.convergence_summary(roughness)
    assert len(summary) == 4 and summary["grids"].eq("3, 5, 9").all()
    table = loaded.convergence_table()
    assert list(table.index.get_level_values(0).unique()) == list(lsets.KINDS)
    assert table.loc[("roughness", "cosine"), "grids"] == "3, 5, 9"
    assert table.loc[("fig_s2", "cosine"), "landscapes"] == 15
    assert table.loc[("energy", ENERGY_LOSS), "landscapes"] == 1
    with pytest.raises(ValueError, match="unknown landscape kind"):
        loaded.resolution("everything")


def test_a_set_resumes_from_its_finished_parts_and_never_reuses_parts_of_other_values(tmp_path):
    _run(tmp_path)
    parts = tmp_path / "parts" / TINY.digest()
    stamps = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.csv")}
    assert len(stamps) == 4
    (parts / "cuts_U2Ti.csv").unlink()
    manifest = _run(tmp_path)
    again = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.csv")}
    assert set(again) == set(stamps)
    assert all(again[name] == stamps[name] for name in stamps if name != "cuts_U2Ti.csv")
    assert manifest["landscapes"] == {"done": 4, "total": 5}  # energy not asked for
    other = replace(TINY, cut_points=17)
    assert other.digest() != TINY.digest()
    assert _run(tmp_path, kinds=("cuts",), spec=other)["landscapes"]["done"] == 1
    assert sorted(lsets.load_landscape_set(tmp_path).resolution("cuts")["grid"].unique()) == [5, 9, 17]


def test_a_set_refuses_unknown_kinds_and_files_that_do_not_match_its_manifest(tmp_path):
    with pytest.raises(ValueError, match="unknown landscape kinds"):
        _run(tmp_path, kinds=("slices",))
    with pytest.raises(FileNotFoundError, match="no manifest"):
        lsets.load_landscape_set(tmp_path)
    _run(tmp_path, kinds=("fig_s3",))
    rows = tmp_path / lsets.ROWS
    rows.write_bytes(rows.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="does not match the manifest"):
        lsets.load_landscape_set(tmp_path)


def test_the_cli_computes_a_set_and_exits_2_on_an_unknown_profile(tmp_path, capsys):
    assert main(["landscapes", "--profile", "nonesuch", "--results", str(tmp_path)]) == 2
    assert "unknown profile 'nonesuch'" in capsys.readouterr().err
    assert main(["landscapes", "--profile", "smoke", "--results", str(tmp_path), "--kinds", "fig_s3", "--quiet"]) == 0
    manifest = json.loads((tmp_path / lsets.MANIFEST).read_text())
    assert manifest["command"] == f"xrdnb landscapes --profile smoke --results {tmp_path}"
    assert manifest["landscapes"]["done"] == 2 and manifest["files"][lsets.ROWS]["bytes"] > 0


def _chapter_values(stem: str, profile: str) -> dict:
    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    values = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    overrides = yaml.safe_load((ROOT / "notebooks" / "profiles.yml").read_text())[profile]
    return values | (overrides.get(stem) or {})


CHAPTER_FIELDS = {
    "03_loss_landscapes": {
        "s2_structure": "s2_structure",
        "s2_grid": "s2_grid",
        "s3_cases": "s3_cases",
        "s3_grid": "s3_grid",
        "structures": "roughness_structures",
        "pair": "roughness_pair",
        "roughness_grids": "roughness_grids",
        "cut_structures": "cut_structures",
        "cut_points": "cut_points",
        "length_span": "length_span",
        "angle_span": "angle_span",
        "cc_half_width": "cc_half_width",
        "dtype": "dtype",
    },
    "05_gd_vs_chgnet": {"energy_cases": "energy_cases", "energy_grid": "energy_grid", "relax_profile": "profile"},
}


@pytest.mark.parametrize("profile", sorted(lsets.PROFILES))
def test_each_landscape_profile_is_what_chapters_3_and_5_compute_under_that_profile(profile):
    values = lsets.PROFILES[profile].values()
    for stem, fields in CHAPTER_FIELDS.items():
        chapter = _chapter_values(stem, profile)
        for field, parameter in fields.items():
            assert json.loads(json.dumps(chapter[parameter])) == values[field], (stem, profile, parameter)
