"""One selection layer: which learning rate a table analyses, and one definition of "recovered"."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xrdnb.runs import run_study
from xrdnb.selection import choose_learning_rates, recovered, select, select_runs
from xrdnb.sweep import PROFILES, cell_path, with_overrides

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _rows(lrs=(1e-3, 1e-2), seed=0, best=1e-2, copies=4, noise_type="lattice", loss="cosine", constrained=False):
    """Synthetic rows of one run: the copies at ``best`` all match, the others half."""
    out = []
    for lr in lrs:
        for copy in range(copies):
            out.append(
                dict(
                    noise_type=noise_type,
                    loss=loss,
                    constrained=constrained,
                    lr=lr,
                    seed=seed,
                    copy=copy,
                    match=bool((best is not None and np.isclose(lr, best)) or copy % 2 == 0),
                )
            )
    return pd.DataFrame(out)


def test_a_single_rate_is_taken_as_it_is():
    sel = select(_rows(lrs=(5e-3,)))
    assert set(sel.rows.lr) == {5e-3}
    assert sel.learning_rates.rule.tolist() == ["only"]
    assert sel.rows.run.unique().tolist() == ["cosine"]


def test_a_stated_rate_wins_and_a_missing_one_is_an_error():
    sel = select(_rows(), lattice_lr=1e-3)
    assert set(sel.rows.lr) == {1e-3} and sel.describe("lattice") == "lr 0.001 (stated)"
    with pytest.raises(ValueError, match="no lattice runs with lr = 0.5"):
        select(_rows(), lattice_lr=0.5)


def test_several_rates_need_held_out_copies():
    with pytest.raises(ValueError, match="selection_rows"):
        select(_rows())
    with pytest.raises(ValueError, match="share the seeds"):
        select(_rows(), selection_rows=_rows(seed=0))


def test_the_rate_is_chosen_on_the_held_out_seed_not_on_the_evaluated_copies():
    evaluated = _rows(seed=0, best=1e-2)
    held_out = _rows(seed=1, best=1e-3)  # the held-out copies prefer the other rate
    sel = select(evaluated, selection_rows=held_out)
    assert set(sel.rows.lr) == {1e-3}
    assert sel.learning_rates.loc[0, "rule"] == "selected"
    assert sel.learning_rates.loc[0, "match_rate"] == 1.0


def test_ties_go_to_the_smaller_rate_and_groups_are_chosen_apart():
    tie = pd.concat(
        [_rows(best=None, seed=1), _rows(best=1e-3, seed=1, loss="mse"), _rows(best=1e-2, seed=1, constrained=True)]
    )
    table = choose_learning_rates(tie).set_index(["loss", "constrained"])["lr"]
    assert table[("cosine", False)] == 1e-3  # both rates at 50 %: the smaller
    assert table[("mse", False)] == 1e-3
    assert table[("cosine", True)] == 1e-2


def test_no_rows_select_nothing():
    sel = select(pd.DataFrame())
    assert sel.rows.empty and "run" in sel.rows and sel.describe() == ""


def test_a_chapter_filter_that_keeps_no_cell_gives_no_rows(tmp_path):
    study = run_study(PROFILES["smoke"], tmp_path, where=lambda cell: cell.structure == "Au2S")
    assert study.rows.empty and study.cells == () and study.caption().startswith("profile 'custom'")


def test_select_runs_refuses_to_drop_a_run_silently():
    rows = pd.concat([_rows(), _rows(loss="mse")])
    table = choose_learning_rates(_rows(seed=1))  # cosine only
    with pytest.raises(ValueError, match="no learning rate chosen"):
        select_runs(rows, table)


def _recovery_rows(prefix=""):
    return pd.DataFrame(
        {
            "noise_type": ["lattice", "lattice", "lattice", "coordinates"],
            f"{prefix}match": [True, True, False, True],
            f"{prefix}max_length_error_rel": [0.01, 0.011, 0.0, 0.5],
            f"{prefix}max_angle_error": [1.0, 0.0, 0.0, 9.0],
        }
    )


def test_recovered_needs_a_match_and_a_close_lattice_for_lattice_noise():
    assert recovered(_recovery_rows()).tolist() == [True, False, False, True]
    assert recovered(_recovery_rows(), length_tol=0.02).tolist() == [True, True, False, True]
    assert recovered(_recovery_rows(), angle_tol=0.5).tolist() == [False, False, False, True]


def test_recovered_names_its_reference_and_the_structure_it_judges():
    relaxed = _recovery_rows("relaxed_")
    assert recovered(relaxed, "relaxed_truth").tolist() == [True, False, False, True]
    assert recovered(_recovery_rows("start_"), of="start").tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="relaxed_match"):
        recovered(_recovery_rows(), "relaxed_truth")
    with pytest.raises(ValueError, match="unknown reference"):
        recovered(_recovery_rows(), "dft")


# ----------------------------------------------------------------------------- the chapters' runs

PAPER_SUBSET = ("U2Ti", "BPO4")


def _write_synthetic(results: Path, cells, rng):
    """Finished cells with made-up outcomes whose best learning rate differs by seed."""
    for cell in cells:
        favourite = {"lattice": 1e-3, "coordinates": 1e-5}[cell.noise_type] if cell.seed == 0 else None
        p = 0.9 if favourite is not None and np.isclose(cell.lr, favourite) else 0.3
        if cell.seed == 1:  # the held-out seed prefers the largest rate of each noise type
            top = max(
                PROFILES["paper"].lattice_lrs if cell.noise_type == "lattice" else PROFILES["paper"].coordinate_lrs
            )
            p = 0.8 if np.isclose(cell.lr, top) else 0.2
        rows = pd.DataFrame(
            {
                "cell_id": cell.cell_id,
                "structure": cell.structure,
                "noise_type": cell.noise_type,
                "noise_level": cell.noise_level,
                "loss": cell.loss,
                "constrained": cell.constrained,
                "lr": cell.lr,
                "seed": cell.seed,
                "copy": np.arange(cell.n_copies),
                "match": rng.random(cell.n_copies) < p,
                "stop_reason": "patience",
                "steps": 1000,
            }
        )
        path = cell_path(results, cell)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path.with_suffix(".npz"), loss=np.zeros((1, cell.n_copies)))
        rows.to_csv(path, index=False)


CHAPTER_FILTERS = {
    "03 (cosine, lattice noise)": lambda c: c.noise_type == "lattice" and c.loss == "cosine",
    "04 (all cells)": None,
    "05 (two levels)": lambda c: c.noise_level in (0.1, 0.2),
    "06 (all cells)": None,
}


def test_at_the_paper_profile_every_chapter_analyses_the_same_runs(tmp_path):
    spec = with_overrides(PROFILES["paper"], structures=PAPER_SUBSET, n_copies=3, selection_copies=8)
    _write_synthetic(tmp_path, spec.cells() + spec.selection_spec().cells(), np.random.default_rng(0))
    chosen = {}
    for chapter, where in CHAPTER_FILTERS.items():
        study = run_study(spec, tmp_path, where=where, run_missing=False)
        assert len(study.rows) and set(study.rows.seed) == {0}
        lrs = study.rows.groupby(["noise_type", "loss", "constrained"]).lr.unique()
        assert (lrs.map(len) == 1).all(), chapter  # one learning rate per run
        chosen[chapter] = {key: float(v[0]) for key, v in lrs.items()}
        assert set(study.selection.learning_rates.rule) == {"selected"}
    full = chosen["04 (all cells)"]
    for chapter, table in chosen.items():
        assert all(full[key] == lr for key, lr in table.items()), chapter
    # chosen on the held-out seed (largest rates), not on the evaluated one (1e-3 / 1e-5 look best there)
    assert {lr for (noise_type, *_), lr in full.items() if noise_type == "lattice"} == {1e-2}
    assert {lr for (noise_type, *_), lr in full.items() if noise_type == "coordinates"} == {1e-4}


def test_the_paper_profile_runs_its_selection_then_the_chosen_rates(tmp_path):
    paper, book = PROFILES["paper"], PROFILES["book"]
    assert paper.staged and not book.staged
    selection = paper.selection_spec().cells()
    assert len(selection) == len(paper.cells()) == 1600 and {c.seed for c in selection} == {paper.selection_seed}
    # before the selection has run, the evaluated cells are unknown: one stage waits for the other
    assert paper.stages(tmp_path) == [("selection", selection), ("evaluation", None)]
    with pytest.raises(ValueError, match="stages"):
        paper.all_cells()
    assert book.selection_spec() is None and book.stages(tmp_path) == [("all", book.cells())]
    # the selection copies are fewer (a choice pools all structures and levels), the evaluated ones are the SI's 16
    assert {c.n_copies for c in selection} == {paper.selection_copies} == {1}
    (_, planned_selection), (_, evaluated) = paper.planned_stages()
    assert planned_selection == selection
    assert len(evaluated) == 450 and {c.n_copies for c in evaluated} == {16} and {c.seed for c in evaluated} == {0}
    assert len({(c.structure, c.noise_type, c.noise_level, c.loss, c.constrained) for c in evaluated}) == 450


def test_a_two_stage_sweep_evaluates_the_rate_its_selection_chose(tmp_path):
    spec = with_overrides(PROFILES["paper"], structures=("U2Ti",), n_copies=2, selection_copies=8)
    _write_synthetic(tmp_path, spec.selection_spec().cells(), np.random.default_rng(2))
    chosen = spec.chosen_learning_rates(tmp_path)
    # the held-out seed of the synthetic rows prefers the largest rate of each noise type
    assert set(chosen.values()) == {1e-2, 1e-4} and len(chosen) == 9
    (_, selection), (_, evaluation) = spec.stages(tmp_path)
    assert evaluation == spec.cells(chosen) and len(evaluation) == 5 * 5 + 5 * 4
    assert all(cell.lr == chosen[(cell.noise_type, cell.loss, cell.constrained)] for cell in evaluation)
    with pytest.raises(ValueError, match="evaluate_lrs must be one of all, selected"):
        with_overrides(spec, evaluate_lrs="best")


def test_selection_copies_default_to_n_copies_and_are_checked():
    spec = dataclasses.replace(PROFILES["paper"], selection_copies=None, n_copies=8)
    assert {c.n_copies for c in spec.selection_spec().cells()} == {8}
    assert spec.selection_spec().selection_copies is None
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="selection_copies must be a whole number >= 1"):
            with_overrides(PROFILES["paper"], selection_copies=bad)


def test_a_study_refuses_to_choose_on_incomplete_selection_cells(tmp_path):
    spec = with_overrides(PROFILES["paper"], structures=("U2Ti",), n_copies=2)
    _write_synthetic(tmp_path, spec.cells() + spec.selection_spec().cells()[:-1], np.random.default_rng(1))
    with pytest.raises(RuntimeError, match="selection cells"):
        run_study(spec, tmp_path, run_missing=False)


@pytest.mark.parametrize("chapter", ["03", "04", "05", "06"])
def test_the_gradient_descent_chapters_take_their_rows_from_run_study(chapter):
    (path,) = NOTEBOOKS.glob(f"{chapter}_*.ipynb")
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert "run_study(" in code
    for own_rule in ("select_learning_rates", "max(spec.lattice_lrs)", "run_sweep("):
        assert own_rule not in code, f"chapter {chapter} chooses its runs itself ({own_rule})"


def test_the_learning_rate_table_reads_as_text():
    selected = select(_rows(seed=0), selection_rows=_rows(seed=1, best=1e-3)).table()
    assert selected.columns.tolist()[:4] == ["noise", "run", "learning rate", "rule"]
    assert selected.iloc[0][["noise", "run", "learning rate", "rule"]].tolist() == [
        "Lattice",
        "cosine",
        "0.001",
        "selected",
    ]
    assert selected.iloc[0]["match on selection copies (%)"] == "100"
    only = select(_rows(lrs=(1e-4,), noise_type="coordinates")).table().iloc[0]
    assert only[["noise", "learning rate", "rule", "match on selection copies (%)"]].tolist() == [
        "Coordinates",
        "0.0001",
        "only",
        "",
    ]
