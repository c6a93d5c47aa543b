"""Shipped result sets: pack a finished sweep, load it back, and recompute two of its cells exactly."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
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


def test_the_report_tables_of_a_result_set(packed):
    folder, _ = packed
    result = load_result_set(folder / "run")
    cover = result.coverage_table()
    assert list(cover.index) == ["selection", "evaluation"]
    assert cover.loc["selection", "cells"] == "4 of 4" and cover.loc["evaluation", "finished (%)"] == 100.0
    assert (cover["max steps per copy"] == 12).all()
    stops = result.stopping_table()
    assert int(stops["copies"].sum()) == len(result.rows)
    shares = stops[["SI rule (%)", "step budget (%)", "invalid cell (%)"]].sum(axis=1)
    assert shares.round(6).eq(100.0).all()  # every copy stopped for exactly one of the three reasons
    for stage in ("selection", "evaluation"):
        part = result.rows[result.rows["stage"] == stage]
        late = result.budget_stops(stage)
        assert late["at the budget"].sum() == part["stop_reason"].eq("max_steps").sum()
        assert late["invalid cell"].sum() == part["stop_reason"].eq("invalid_lattice").sum()
        assert set(late["cell_id"]) == set(part.loc[part["stop_reason"] != "converged", "cell_id"])
        share = 100 * part["stop_reason"].eq("converged").mean()
        assert result.stopping_check(stage).startswith(f"{stage}: {share:.1f} % of {len(part):,} copies")
        assert result.stopping_check(stage, share=0.0).count(": holds") == 1
    assert "does not hold" in result.stopping_check("selection", share=1.01)
    assert result.stopping_check("relax") == "relax: no finished copies yet"
    compute = result.compute_table()
    assert compute["copies"].sum() == len(result.rows) and (compute["CPU hours"] > 0).all()
    assert compute["copy-steps"].sum() == result.rows["steps"].sum()
    rates = result.learning_rate_table("lattice")
    chosen = {f"{r['lr']:g}" for r in result.manifest["learning_rates"]}
    assert set(rates["chosen"]) <= chosen and rates["chosen"].ne("").all()
    assert (
        ((rates.drop(columns=["copies", "chosen"]) >= 0) & (rates.drop(columns=["copies", "chosen"]) <= 100))
        .all()
        .all()
    )
    assert result.learning_rate_table("coordinates").empty  # this grid has no coordinate noise
    analysed = result.selection()
    assert analysed is not None and set(analysed.rows["lr"]) <= {r["lr"] for r in result.manifest["learning_rates"]}


def test_chgnet_relaxations_of_the_same_copies_are_packed_and_counted(packed, tmp_path):
    import shutil

    from xrdnb import relax_sweep
    from xrdnb.result_sets import RELAX, pack_sweep

    folder, _ = packed
    work = tmp_path / "run"
    shutil.copytree(folder / "run", work)
    spec = relax_sweep.RelaxSpec(
        structures=("U2Ti",), lattice_levels=(0.02, 0.05), coordinate_levels=(), constrained_levels=(), n_copies=2
    )
    first = spec.cells()[0]  # one of the two cells finished, as if the relaxations were half done
    rows = pd.DataFrame(
        {
            "cell_id": first.cell_id,
            "copy": [0, 1],
            "match": [True, False],
            "noise_type": "lattice",
            "constrained": False,
        }
    )
    relax_sweep._write(work, first, (rows, {"0": {}, "1": {}}))
    manifest = pack_sweep(SPEC, work, command="xrdnb sweep --profile smoke", profile="smoke", relax_spec=spec)
    assert manifest["coverage"]["relax"] == {"cells_done": 1, "cells_total": 2, "copies_done": 2, "copies_total": 4}
    assert RELAX in manifest["files"] and manifest["relax_command"] == f"xrdnb relax --profile smoke {work}"
    loaded = load_result_set(work)
    assert loaded.relax_rows["match"].tolist() == [True, False]
    assert loaded.coverage_table().loc["relax", "cells"] == "1 of 2"
    assert load_result_set(folder / "run").relax_rows.empty  # a set packed without relaxations has none


def test_the_front_page_judges_claims_only_on_a_complete_reference_run(packed, tmp_path):
    import json
    import shutil

    from xrdnb.headline import glance_markdown, reference_at_a_glance

    folder, _ = packed
    table, run = reference_at_a_glance(folder / "run", n_bootstrap=50)
    verdict = dict(zip(table["claim"].str[0], table["verdict"], strict=True))
    assert verdict["1"] != "not computed"  # lattice 0.05 is a moderate level of this complete set
    assert verdict["4"] == "not computed"  # no CHGNet rows packed
    assert run.startswith("result set 'run'")
    text = glance_markdown(table.assign(claim=table["claim"].str.replace("1.", "1 | a.", regex=False)), run)
    assert text.startswith("| claim | tested here by | verdict |") and "1 \\| a." in text and "**not computed**" in text
    unfinished = tmp_path / "unfinished"
    shutil.copytree(folder / "run", unfinished)
    manifest = json.loads((unfinished / MANIFEST).read_text())
    manifest["coverage"]["evaluation"]["cells_done"] = 1  # as if one evaluated cell were still missing
    (unfinished / MANIFEST).write_text(json.dumps(manifest))
    table, _ = reference_at_a_glance(unfinished, n_bootstrap=50)
    assert set(table["verdict"]) == {"not computed"}
    gd_claims = table[~table["claim"].str.startswith("3b.")]
    assert gd_claims["tested by"].str.contains("unfinished").all()
    assert gd_claims["tested by"].str.contains("evaluation 1 of 2 cells").all()
    assert table.loc[table["claim"].str.startswith("3b."), "tested by"].tolist() == ["no complete landscape set"]
    assert load_result_set(unfinished).judged_rows() is None and load_result_set(unfinished).judged_relax() is None
    complete = load_result_set(folder / "run")
    judged = complete.judged_rows()
    assert judged is not None and set(judged["stage"]) == {"evaluation"} and len(judged) == len(complete.evaluated())


def test_the_book_build_writes_the_front_page_table_from_the_result_set(packed, tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("build_book", root / "tools" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    monkeypatch.setattr(build_book, "STAGE", tmp_path)
    folder, _ = packed
    text = build_book.stage_at_a_glance(folder / "run")
    assert (tmp_path / build_book.GLANCE).read_text() == text and text.startswith("| claim |")
    assert "| **" in text and "result set 'run'" in text
    assert "no claim is judged" in build_book.stage_at_a_glance(tmp_path / "missing")
    assert "{include} at-a-glance.txt" in (root / "book" / "index.md").read_text()


def test_the_shipped_reference_set_reproduces_two_of_its_cells_exactly(tmp_path):
    """The acceptance test of the reference run: its manifest's command, restricted to two cells, gives their rows."""
    import shlex
    from pathlib import Path

    reference = load_result_set(Path(__file__).resolve().parent.parent / "results" / "reference")
    evaluated = reference.evaluated()
    if evaluated.empty:
        pytest.skip(f"the shipped reference run has no evaluated cell yet: {reference.progress()}")
    cheapest = evaluated.groupby("cell_id")["steps"].sum().nsmallest(2).index.tolist()  # the two quickest cells
    command = shlex.split(reference.manifest["command"])
    assert command[:2] == ["xrdnb", "sweep"] and "--results" in command
    command[command.index("--results") + 1] = str(tmp_path)
    out = run_xrdnb(*command[1:], "--quiet", "--only", *cheapest)
    assert out.returncode == 0, out.stderr
    again = pd.concat([pd.read_csv(tmp_path / "cells" / f"{i}.csv") for i in cheapest])
    columns = [c for c in again.columns if c != "seconds"]
    key = ["cell_id", "copy"]
    expected = evaluated[evaluated["cell_id"].isin(cheapest)][columns].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(again[columns].sort_values(key).reset_index(drop=True), expected, check_dtype=False)


def test_a_search_at_the_reference_protocol_gets_the_budget_gd_used_on_the_same_copies(packed):
    import torch

    from xrdnb.search_sweep import SearchSpec, at_reference_protocol
    from xrdnb.sweep import prepare_cell

    folder, _ = packed
    reference = load_result_set(folder / "run")
    evaluated = dict(SPEC.stages(folder / "run"))["evaluation"]
    spec = SearchSpec(("U2Ti",), (0.02, 0.05), ("gradient_descent", "multistart"), constrained=(False,), n_copies=2)
    tied = at_reference_protocol(spec, reference)
    rows = reference.selection().rows
    for cell in tied.cells():
        gd = rows[(rows["noise_level"] == cell.noise_level) & (rows["loss"] == "cosine")]
        assert cell.budget == int(np.ceil(gd["steps"].mean())) and cell.lr == gd["lr"].iloc[0]
        (reference_cell,) = [c for c in evaluated if c.cell_id in set(gd["cell_id"])]
        # the very copies of the reference cells: the draws depend on structure, noise, level, seed and copy only
        assert torch.equal(prepare_cell(reference_cell)[2].lattice, prepare_cell(cell.sweep_cell())[2].lattice)
    assert [c.budget for c in at_reference_protocol(spec, reference, budget_scale=10).cells()] == [
        10 * c.budget for c in tied.cells()
    ]
    with pytest.raises(ValueError, match="no evaluated cosine cells for 2 search cells"):
        at_reference_protocol(
            SearchSpec(("BPO4",), (0.02, 0.05), ("gradient_descent",), constrained=(False,)), reference
        )


def test_the_searches_on_the_same_copies_are_packed_with_the_command_that_computes_them(packed, tmp_path):
    import shutil

    from xrdnb import search_sweep, store
    from xrdnb.result_sets import SEARCH, SEARCH_COMMAND, pack_sweep

    folder, _ = packed
    work = tmp_path / "run"
    shutil.copytree(folder / "run", work)
    assert pack_sweep(SPEC, work, command="c")["search_command"] is None  # no search cells yet
    cells = search_sweep.SearchSpec(("U2Ti",), (0.05,), ("multistart",), constrained=(False,), n_copies=2).cells()
    rows = pd.DataFrame({"cell_id": cells[0].cell_id, "method": "multistart", "copy": [0, 1], "recovered": [1, 0]})
    store.write_cell(search_sweep.cell_path(work, cells[0]), rows)
    manifest = pack_sweep(SPEC, work, command="c")
    assert SEARCH in manifest["files"] and manifest["search_command"] == SEARCH_COMMAND
    loaded = load_result_set(work)
    assert loaded.search_rows["recovered"].tolist() == [1, 0] and loaded.search_rows["cell_id"].nunique() == 1
    assert load_result_set(folder / "run").search_rows.empty
