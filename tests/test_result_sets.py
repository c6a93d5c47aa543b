"""Shipped result sets: pack a finished sweep, load it back, and recompute two of its cells exactly."""

from __future__ import annotations

import json
from dataclasses import asdict

import pandas as pd
import pytest
import yaml
from conftest import run_xrdnb, staged_spec

from xrdnb.result_sets import LOSS, MANIFEST, ROWS, load_result_set

SPEC = staged_spec(lattice_levels=(0.02, 0.05), max_steps=12, record_every=4)


def _config(tmp_path):
    path = tmp_path / "staged.yml"
    path.write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(SPEC).items()}))
    return path


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    config = _config(folder)
    ran = run_xrdnb("sweep", "--config", str(config), "--results", str(folder / "run"), "--quiet", "--workers", "0")
    assert ran.returncode == 0, ran.stderr
    out = run_xrdnb("sweep", "--config", str(config), "--results", str(folder / "run"), "--pack")
    assert out.returncode == 0, out.stderr
    assert "packed 6 of 6 cells" in out.stdout  # 4 selection cells, then one evaluated cell per level
    return folder, config


def test_a_packed_set_loads_with_its_manifest(packed):
    folder, _ = packed
    result = load_result_set(folder / "run")
    m = result.manifest
    assert m["command"].startswith("xrdnb sweep --profile smoke --config ") and m["command"].endswith(
        "--results " + str(folder / "run")
    )
    assert m["profile_values"]["evaluate_lrs"] == "selected" and m["profile_values"]["n_copies"] == 2
    assert m["coverage"]["selection"]["cells_done"] == 4 and m["coverage"]["evaluation"]["cells_done"] == 2
    assert {r["stage"] for r in m["compute"]} == {"selection", "evaluation"}
    assert [r["lr"] for r in m["learning_rates"]] == sorted(result.evaluated()["lr"].unique().tolist())
    assert m["hardware"]["cores"] >= 1 and m["package_version"] and m["date"].startswith("20")
    assert set(m["files"]) == {ROWS, LOSS}
    assert len(result.selection_rows()) == 4 and len(result.evaluated()) == 4
    steps, loss = result.loss_trajectory(result.evaluated()["cell_id"].iloc[0])
    assert loss.shape == (len(steps), 2) and steps[0] == 0
    assert "result set 'run'" in result.describe() and "6 of 6 cells" in result.describe()


def test_the_manifest_command_restricted_to_two_cells_reproduces_their_rows(packed, tmp_path):
    folder, config = packed
    shipped = load_result_set(folder / "run").evaluated()
    ids = sorted(shipped["cell_id"].unique())
    assert len(ids) == 2
    out = run_xrdnb("sweep", "--config", str(config), "--results", str(tmp_path), "--quiet", "--only", *ids)
    assert out.returncode == 0, out.stderr
    again = pd.concat([pd.read_csv(tmp_path / "cells" / f"{i}.csv") for i in ids])
    key = ["cell_id", "copy"]
    columns = [c for c in again.columns if c != "seconds"]
    expected = shipped[columns].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(again[columns].sort_values(key).reset_index(drop=True), expected, check_dtype=False)
    # a selection cell ran in a batch: --only reruns its batch, and its rows come back exactly
    selection = load_result_set(folder / "run").selection_rows()
    one = selection["cell_id"].iloc[0]
    out = run_xrdnb("sweep", "--config", str(config), "--results", str(tmp_path / "sel"), "--quiet", "--only", one)
    assert out.returncode == 0, out.stderr
    redone = pd.read_csv(tmp_path / "sel" / "cells" / f"{one}.csv")
    pd.testing.assert_frame_equal(
        redone[columns].reset_index(drop=True),
        selection[selection.cell_id == one][columns].reset_index(drop=True),
        check_dtype=False,
    )
    bad = run_xrdnb("sweep", "--config", str(config), "--results", str(tmp_path), "--only", "nope_123")
    assert bad.returncode == 2 and "not cells of this sweep: nope_123" in bad.stderr


def test_a_changed_file_is_refused(packed, tmp_path):
    folder, _ = packed
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (MANIFEST, ROWS, LOSS):
        (copy / name).write_bytes((folder / "run" / name).read_bytes())
    load_result_set(copy)
    (copy / LOSS).write_bytes((copy / LOSS).read_bytes() + b"\0")
    with pytest.raises(ValueError, match="does not match the manifest"):
        load_result_set(copy)
    (copy / LOSS).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_result_set(copy)
    with pytest.raises(FileNotFoundError, match="no manifest"):
        load_result_set(tmp_path)


def test_packing_twice_gives_the_same_rows_file(packed):
    folder, config = packed
    before = json.loads((folder / "run" / MANIFEST).read_text())["files"][ROWS]
    out = run_xrdnb("sweep", "--config", str(config), "--results", str(folder / "run"), "--pack")
    assert out.returncode == 0
    assert json.loads((folder / "run" / MANIFEST).read_text())["files"][ROWS] == before
