"""The command line: many files per call, one-line errors with exit code 2, the good files still written."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from xrdnb.cli import main

BAD_CIF = "data_broken\n_cell_length_a 3\nloop_\n garbage\n"
EMPTY_CIF = """data_empty
_cell_length_a 4
_cell_length_b 4
_cell_length_c 4
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
"""
NO_FORM_FACTOR_CIF = """data_Og
_cell_length_a 4
_cell_length_b 4
_cell_length_c 4
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
 _atom_site_type_symbol
 _atom_site_label
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
  Na Na0 0 0 0 1
  Og Og1 0.5 0.5 0.5 1
"""


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, text in (("broken", BAD_CIF), ("empty", EMPTY_CIF), ("oganesson", NO_FORM_FACTOR_CIF)):
        paths[name] = tmp_path / f"{name}.cif"
        paths[name].write_text(text)
    return paths


@pytest.mark.parametrize("command", ["peaks", "pattern"])
def test_bad_files_fail_alone(tmp_path, files, capsys, command):
    out = tmp_path / "out"
    args = [
        command,
        "BPO4",
        str(files["broken"]),
        str(files["empty"]),
        str(files["oganesson"]),
        "U2Ti",
        "--out",
        str(out),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "broken.cif" in err[0] and "cannot read" in err[0]
    assert "empty.cif" in err[1] and "no structures" in err[1]
    assert "oganesson.cif" in err[2] and "site 1" in err[2] and "'Og'" in err[2] and "scattering factors" in err[2]
    suffix = "_peaks.csv" if command == "peaks" else "_pattern.csv"
    assert sorted(p.name for p in out.iterdir()) == [f"BPO4{suffix}", f"U2Ti{suffix}"]


def test_empty_structure_object_is_rejected():
    from pymatgen.core import Lattice, Structure

    from xrdnb import StructureError, load_structure

    with pytest.raises(StructureError, match="no sites"):
        load_structure(Structure(Lattice.cubic(3.0), [], []))


def test_missing_file_names_itself(capsys):
    assert main(["peaks", "does-not-exist.cif"]) == 2
    assert "does-not-exist.cif: no such file" in capsys.readouterr().err


def test_peaks_csv_matches_library(tmp_path):
    from xrdnb import crystal_from_structure, load_structure
    from xrdnb.peaks import PEAK_COLUMNS, peak_table

    assert main(["peaks", "SrTe", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "SrTe_peaks.csv")
    assert list(table.columns) == PEAK_COLUMNS
    expected = peak_table(crystal_from_structure(load_structure("SrTe")))
    np.testing.assert_allclose(table.two_theta, expected.two_theta, rtol=1e-7)
    assert table.intensity_scaled.max() == 100


def test_pattern_csv_has_9000_points(tmp_path):
    assert main(["pattern", "Au2S", "--out", str(tmp_path)]) == 0
    data = np.loadtxt(tmp_path / "Au2S_pattern.csv", delimiter=",", skiprows=1)
    assert data.shape == (9000, 2)
    assert data[0, 0] == 0.0 and data[-1, 0] == pytest.approx(89.99)
    assert data[:, 1].max() == pytest.approx(1.0)


def test_wavelength_names_and_range(capsys):
    assert main(["peaks", "SrTe", "--wavelength", "MoKa", "--two-theta-max", "40"]) == 0
    printed = capsys.readouterr().out
    assert "# SrTe" in printed
    with pytest.raises(SystemExit):
        main(["peaks", "SrTe", "--wavelength", "XyKa"])


def test_console_script_exit_code(tmp_path, files):
    run = subprocess.run(
        [sys.executable, "-m", "xrdnb.cli", "peaks", str(files["broken"])], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "broken.cif" in run.stderr
