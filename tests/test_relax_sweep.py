"""The resumable CHGNet sweep (xrdnb.relax_sweep): copies, rows, resume after kill -9, workers, errors, diagnosis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("chgnet")
pytest.importorskip("ase")

from xrdnb import relax_sweep as rs  # noqa: E402
from xrdnb import relax_tables as rt  # noqa: E402
from xrdnb import sweep as sw  # noqa: E402

SMOKE = rs.PROFILES["smoke"]


def rows_of(folder):
    rows = rs.load_relax_results(folder, SMOKE.cells())
    return rows.drop(columns=["seconds"]).sort_values(["cell_id", "copy"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    rs.run_relax_sweep(SMOKE, folder, progress=False)
    return rows_of(folder)


def test_grid_and_profiles():
    cells = SMOKE.cells()
    assert len(cells) == 2 * 3 and len({c.cell_id for c in cells}) == len(cells)
    paper = rs.PROFILES["paper"]
    assert len(paper.structures) == 10 and paper.n_copies == 16 and paper.fmax == 0.02
    assert len(paper.cells()) == 10 * (5 + 5 + 5)
    for name in ("smoke", "book", "paper"):  # the same copies as the sweep profile of the same name
        assert rs.PROFILES[name].n_copies == sw.PROFILES[name].n_copies
    with pytest.raises(ValueError, match="constrained"):
        rs.RelaxCell("U2Ti", "coordinates", 0.01, True, 0)
    with pytest.raises(ValueError, match="unknown relax settings"):
        rs.RelaxSpec.from_dict({"structures": ["U2Ti"], "lattice_levels": [], "coordinate_levels": [], "bogus": 1})


def test_copies_are_the_sweep_copies():
    from xrdnb.symmetry import project_lattice

    for gd_cell in sw.PROFILES["smoke"].cells()[:4]:
        cell = rs.RelaxCell(gd_cell.structure, gd_cell.noise_type, gd_cell.noise_level, False, gd_cell.seed, 2)
        _, _, start = rs.starting_copies(cell)
        family, _, gd_start, _ = sw.prepare_cell(gd_cell)
        assert torch.equal(start.lattice, gd_start.lattice) and torch.equal(start.frac_coords, gd_start.frac_coords)
        if gd_cell.noise_type == "lattice":
            constrained = rs.RelaxCell(gd_cell.structure, "lattice", gd_cell.noise_level, True, gd_cell.seed, 2)
            _, _, projected = rs.starting_copies(constrained)
            assert torch.equal(projected.lattice, project_lattice(gd_start.lattice, family))


def test_rows_follow_the_contract(reference, tmp_path):
    assert len(reference) == len(SMOKE.cells()) * SMOKE.n_copies
    for column in (
        "cell_id", "structure", "noise_type", "noise_level", "seed", "copy", "constrained", "steps", "converged",
        "fmax", "energy", "match", "max_length_error_rel", "max_angle_error", "relaxed_match",
        "relaxed_max_length_error_rel", "relaxed_max_angle_error", "start_match", "start_relaxed_match",
        "energy_above_relaxed_truth", "fmax_threshold",
    ):  # fmt: skip
        assert column in reference.columns, column
    assert reference.converged.all() and (reference.fmax < reference.fmax_threshold).all()
    lattice = reference[reference.noise_type == "lattice"]
    assert reference.relaxed_match.all() and (lattice.relaxed_max_length_error_rel < 0.01).all()
    coords = reference[reference.noise_type == "coordinates"]
    assert (coords.max_length_error_rel < 1e-12).all()  # the cell stays fixed


def test_ground_truths_are_cached(reference, tmp_path):
    rs.run_relax_sweep(SMOKE.cells()[:1], tmp_path, progress=False)
    truth = rs.cell_path(tmp_path, SMOKE.cells()[0].truth_cell())
    stamp = truth.stat().st_mtime_ns
    rs.run_relax_sweep(SMOKE.cells()[:2], tmp_path, progress=False)  # a new copy cell, the same truth
    assert truth.stat().st_mtime_ns == stamp
    assert len(rs.load_truths(tmp_path, SMOKE)) == 1


def test_killed_relax_resumes_to_identical_rows(tmp_path, reference):
    cmd = [sys.executable, "-m", "xrdnb.cli", "relax", "--profile", "smoke", str(tmp_path), "--quiet", "--workers", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "relax"
    deadline = time.time() + 180
    while time.time() < deadline and len(list(folder.glob("*.csv"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(folder.glob("*.csv")))
    assert 2 <= done_before < len(SMOKE.cells())
    # the resumed run on two local workers (the CLI's forkserver), as `xrdnb relax` runs by default
    out = subprocess.run([*cmd[:-2], "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(list(folder.glob("*.csv"))) == len(SMOKE.cells())
    assert not list(folder.glob("*.claim")) and not list(folder.glob("*.tmp"))
    pd.testing.assert_frame_equal(rows_of(tmp_path), reference)


def test_workers_give_the_same_rows(tmp_path, reference):
    rs.run_relax_sweep(SMOKE, tmp_path, workers=2, progress=False)
    pd.testing.assert_frame_equal(rows_of(tmp_path), reference)


def test_bad_structure_is_one_line_and_the_others_run(tmp_path):
    cmd = [sys.executable, "-m", "xrdnb.cli", "relax", str(tmp_path), "--structures", "U2Ti", "NoSuchThing"]
    out = subprocess.run([*cmd, "--quiet", "--workers", "0", "--copies", "1"], capture_output=True, text=True)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "NoSuchThing" in errors[0]
    done = sorted(p.name for p in (tmp_path / "relax").glob("*.csv"))
    assert len(done) == 3 and all(name.startswith("U2Ti") for name in done)
    bad = subprocess.run(
        [sys.executable, "-m", "xrdnb.cli", "relax", "--profile", "nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def synthetic(**columns):
    base = {
        "structure": "X",
        "noise_type": "lattice",
        "noise_level": 0.1,
        "match": True,
        "constrained": False,
        "relaxed_match": True,
        "relaxed_max_length_error_rel": 0.001,
        "relaxed_max_angle_error": 0.1,
        "energy_above_relaxed_truth": 0.0,
        "converged": True,
        "max_steps": 500,
        "steps": 10,
    }
    n = max(len(v) for v in columns.values() if isinstance(v, list))
    return pd.DataFrame({k: columns.get(k, v) for k, v in base.items()}, index=range(n))


def test_failure_kinds_and_diagnosis_on_synthetic_rows():
    rows = synthetic(
        energy_above_relaxed_truth=[0.0, -0.005, 0.0004, 0.08, 0.0],
        relaxed_max_length_error_rel=[0.001, 0.02, 0.04, 0.2, 0.002],
        relaxed_match=[True, True, True, False, False],
        converged=[True, True, True, False, True],
    )
    kinds = rt.failure_kinds(rows)
    assert kinds.tolist() == ["", "lower minimum", "flat surface", "other basin", "positions differ"]
    text = rt.diagnose(rows)
    assert text.startswith("lower minimum ×1 (ΔE -5.0 meV/atom)")
    assert "flat surface ×1" in text and "4.0 % off" in text and "other basin ×1 (ΔE up to +80" in text
    assert "positions differ ×1" in text and text.endswith("1 not converged in 500 steps")
    assert rt.diagnose(rows.iloc[:1]) == ""
    # coordinate noise: the lattice does not count, a match is recovered
    coords = synthetic(noise_type="coordinates", relaxed_max_length_error_rel=[0.5, 0.5], relaxed_match=[True, False])
    assert rt.failure_kinds(coords).tolist() == ["", "flat surface"]
    table = rt.diagnosis_table(pd.concat([rows, rows.assign(structure="Y", energy_above_relaxed_truth=0.0)]))
    assert table.structure.tolist() == ["X", "Y"] and table.recovered.iloc[0] == pytest.approx(0.2)


def test_tables_on_synthetic_rows():
    relax_rows = synthetic(relaxed_match=[True, False], constrained=[False, True]).assign(
        match=[True, False], start_match=[False, False], space_group=["", "P1"]
    )
    gd = pd.DataFrame(
        {"structure": "X", "noise_type": "lattice", "noise_level": 0.1, "run": ["cosine", "cosine + constraints"],
         "match": [False, True]}
    )  # fmt: skip
    rates = rt.match_rate_table(relax_rows, gd)
    assert list(rates.columns) == [
        ("distorted start", "copies"), ("distorted start", "match"), ("XRD GD: match", "cosine"),
        ("XRD GD: match", "cosine + constraints"), ("CHGNet", "match"), ("CHGNet", "recovered"),
    ]  # fmt: skip
    assert rates.index.names == ["noise", "σ"]
    assert rates.iloc[0][("CHGNet", "match")] == 100 and rates.iloc[0][("XRD GD: match", "cosine")] == 0
    truths = pd.DataFrame({"structure": ["X"], "space_group": ["P6/mmm"]})
    constrained = rt.constrained_table(relax_rows, truths, gd)
    row = constrained.iloc[0]
    assert row["free: recovered"] == 1 and row["constrained: recovered"] == 0
    assert row["space group"] == "P1 (ground truth P6/mmm)" and row["XRD GD + constraints: match"] == 1


def test_lattice_errors_separate_lengths_and_angles():
    from pymatgen.core import Lattice

    from xrdnb.relax import lattice_errors

    ref = Lattice.hexagonal(4.0, 3.0)
    length, angle = lattice_errors(Lattice.from_parameters(4.04, 4.0, 3.0, 90, 90, 121), ref)
    assert length == pytest.approx(0.01) and angle == pytest.approx(1.0)
    assert lattice_errors(Lattice.cubic(9.0), ref) == (np.inf, np.inf)


def test_truth_table_readable_columns():
    lattice = {"a": 4.0, "b": 4.0, "c": 6.0, "alpha": 90.0, "beta": 90.0, "gamma": 120.0}
    truths = pd.DataFrame(
        {"structure": ["X", "Y"], "family": "hexagonal", "sites": 3, "steps": [6, 500], "converged": [True, False]}
        | {f"dft_{n}": v for n, v in lattice.items()}
        | {f"relaxed_{n}": v * (1.01 if n == "c" else 1.0) for n, v in lattice.items()}
        | {"match": [True, False], "energy": -5.0, "initial_energy": -4.999}
    )
    table = rt.truth_table(truths)
    assert list(table.columns) == [
        "structure", "family", "sites", "relaxation steps", "a, b, c change (%)", "α, β, γ change (°)",
        "matches DFT cell", "E (eV/atom)", "relaxation ΔE (meV/atom)",
    ]  # fmt: skip
    assert table["relaxation steps"].tolist() == ["6", "500 (not converged)"]
    assert table["matches DFT cell"].tolist() == ["yes", "no"]
    assert table["a, b, c change (%)"].iloc[0] == "+0.00, +0.00, +1.00"
    assert table["relaxation ΔE (meV/atom)"].iloc[0] == pytest.approx(-1.0)
