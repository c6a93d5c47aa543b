"""Bad input gets one clear line naming the file, the site and the problem; degenerate physics is handled."""

import math
import subprocess
import sys

import pytest
import torch
from conftest import run_xrdnb
from pymatgen.core import Lattice, Structure

import xrdnb
from xrdnb import StructureError, load_structure
from xrdnb.cli import main
from xrdnb.structures import _data_dir

BPO4 = _data_dir().joinpath("BPO4.cif").read_text()
O10 = "O10  1  0.25829956  0.36651484  0.62308933  1.0"


@pytest.mark.parametrize(
    "name, old, new, message",
    [
        ("negocc", O10, O10[:-3] + "-0.5", r"site O10 \(row 11\): occupancy -0.5 is not in \[0, 1\]"),
        ("occ17", O10, O10[:-3] + "1.7", r"site O10 \(row 11\): occupancy 1.7 is not in \[0, 1\]"),
        ("neglen", "_cell_length_a   4.42793599", "_cell_length_a   -4.42793599", "cell lengths .* must be positive"),
        ("alpha200", "_cell_angle_alpha   90.00000000", "_cell_angle_alpha   200.0", "strictly between 0 and 180"),
        (
            "nancoord",
            "O10  1  0.25829956",
            "O10  1  nan",
            r"site O10 \(row 11\): fractional x = 'nan' is not a finite number",
        ),
        (
            "overlap",
            "O11  1  0.86651484  0.24170044  0.87691067",
            "O11  1  0.25829956  0.36651484  0.62308933",
            r"sites O10 \(row 11\) and O11 \(row 12\) are 0.000 Å apart",
        ),
    ],
)
def test_bad_cif_values_are_refused_with_the_site(tmp_path, name, old, new, message):
    assert old in BPO4
    path = tmp_path / f"{name}.cif"
    path.write_text(BPO4.replace(old, new))
    with pytest.raises(StructureError, match=message) as info:
        load_structure(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_singular_and_truncated_cifs_say_why(tmp_path):
    singular = tmp_path / "singular.cif"
    singular.write_text(
        BPO4.replace("_cell_angle_alpha   90.00000000", "_cell_angle_alpha   120.0")
        .replace("_cell_angle_beta   90.00000000", "_cell_angle_beta   120.0")
        .replace("_cell_angle_gamma   90.00000000", "_cell_angle_gamma   120.0")
    )
    with pytest.raises(StructureError, match="no three-dimensional cell"):
        load_structure(singular)
    truncated = tmp_path / "truncated.cif"
    truncated.write_text(BPO4[:900])
    with pytest.raises(StructureError, match="truncated.cif: cannot read a CIF \\(malformed or truncated"):
        load_structure(truncated)


def test_structure_objects_are_checked_too():
    with pytest.raises(StructureError, match="0.100 Å apart"):
        load_structure(Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.025, 0, 0]]))
    split = Structure(Lattice.cubic(4.0), [{"Na": 0.5}, {"K": 0.5}], [[0, 0, 0], [0.01, 0, 0]])
    assert load_structure(split) is split  # a split site (total occupancy 1) is fine
    with pytest.raises(StructureError, match="no three-dimensional cell"):
        load_structure(Structure(Lattice.from_parameters(4, 4, 4, 120, 120, 120), ["Na"], [[0, 0, 0]]))


def test_cli_bad_options_are_argparse_errors(tmp_path, capsys):
    for args in (
        ["peaks", "BPO4", "--wavelength", "nan"],
        ["peaks", "BPO4", "--two-theta-max", "200"],
        ["peaks", "BPO4", "--two-theta-max", "0"],
        ["pattern", "BPO4", "--two-theta-step", "0"],
        ["pattern", "BPO4", "--two-theta-step", "nan"],
        ["peaks", "BPO4", "--wavelength", "inf"],
    ):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "error:" in err[-1] and "Traceback" not in "".join(err)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(SystemExit):
        main(["peaks", "BPO4", "--out", str(afile)])
    assert "is a file, not a folder" in capsys.readouterr().err


def test_same_stems_do_not_overwrite_each_other(tmp_path, capsys):
    other = tmp_path / "x" / "BPO4.cif"
    other.parent.mkdir()
    other.write_text(BPO4)
    assert main(["peaks", "BPO4", str(other), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["BPO4-2_peaks.csv", "BPO4_peaks.csv"]


def test_zero_reflections_give_a_flat_pattern_and_zero_gradient():
    tiny = xrdnb.crystal_from_structure(Structure(Lattice.cubic(0.6), ["Cu"], [[0, 0, 0]]))
    for method in ("fast", "dense"):
        assert torch.equal(xrdnb.simulate_pattern(tiny, method=method), torch.zeros(1, 9000, dtype=torch.float64))
    bpo4 = xrdnb.crystal_from_structure(load_structure("BPO4"))
    assert xrdnb.simulate_pattern(bpo4, xrdnb.XRDSettings(wavelength=100.0)).abs().max() == 0
    lattice = tiny.lattice.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(xrdnb.simulate_pattern(tiny.with_lattice(lattice)).sum(), lattice)
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("value", [math.nan, math.inf, -3.0])
def test_an_invalid_copy_fails_alone(value):
    batch = xrdnb.crystal_from_structure(load_structure("BPO4"), batch_size=3)
    lattice = batch.lattice.clone()
    lattice[1, 0] = value
    pattern = xrdnb.simulate_pattern(batch.with_lattice(lattice))
    assert torch.equal(pattern[1], torch.zeros(9000, dtype=torch.float64))
    assert torch.equal(pattern[[0, 2]], xrdnb.simulate_pattern(batch)[[0, 2]])


def test_unsupported_dtypes_and_settings_are_refused():
    with pytest.raises(TypeError, match="float32 or float64"):
        xrdnb.simulate_pattern(xrdnb.crystal_from_structure(load_structure("BPO4"), dtype=torch.float16))
    for kwargs, message in (
        (dict(wavelength=math.inf), "finite"),
        (dict(U=math.nan), "finite"),
        (dict(hkl_max=0), "at least 1"),
    ):
        with pytest.raises(ValueError, match=message):
            xrdnb.XRDSettings(**kwargs)


@pytest.mark.parametrize(
    "data, message",
    [
        (dict(structures="U2Ti"), "must be a list"),
        (dict(n_copies=0), "n_copies must be a whole number >= 1"),
        (dict(losses=["cos"]), "'cos' is not one of"),
        (dict(lattice_lrs=[0.0]), "learning rate > 0"),
        (dict(dtype="float16"), "dtype"),
    ],
)
def test_sweep_settings_are_checked_before_any_cell(data, message):
    from xrdnb.sweep import SweepSpec

    with pytest.raises(ValueError, match=message):
        SweepSpec.from_dict({"structures": ["U2Ti"], "lattice_levels": [0.1], "coordinate_levels": [], **data})


def test_sweep_cli_refuses_bad_settings_and_folders_before_starting(tmp_path):
    def sweep(*args):
        return subprocess.run(
            [sys.executable, "-m", "xrdnb.cli", "sweep", "--profile", "smoke", "--quiet", *args],
            capture_output=True,
            text=True,
        )

    out = sweep("--copies", "0", "--results", str(tmp_path / "a"))
    assert out.returncode == 2 and "n_copies" in out.stderr and "Traceback" not in out.stderr
    bad = tmp_path / "bad.cif"
    bad.write_text(BPO4.replace(O10, O10[:-3] + "-0.5"))
    out = sweep("--structures", "U2Ti", str(bad), "--results", str(tmp_path / "b"))
    assert out.returncode == 2 and "bad.cif: site O10" in out.stderr
    assert not list((tmp_path / "b").glob("cells/*.csv"))  # nothing ran, not even U2Ti's cells
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the results folder should be")
    out = sweep("--results", str(blocked))
    assert out.returncode == 2 and "not writable" in out.stderr


@pytest.mark.parametrize("a, wavelength", [(200.0, 1.54184), (5.0, 0.01)])
def test_reflection_count_is_bounded_before_enumerating(a, wavelength):
    import time

    crystal = xrdnb.crystal_from_structure(Structure(Lattice.cubic(a), ["Cu"], [[0, 0, 0]]))
    begin = time.perf_counter()
    with pytest.raises(ValueError, match=r"reflections .* \(limit 100,000\).*max_reflections"):
        xrdnb.simulate_pattern(crystal, xrdnb.XRDSettings(wavelength=wavelength))
    assert time.perf_counter() - begin < 1.0  # refused up front, nothing enumerated
    from xrdnb.reflections import expected_reflections

    u2ti = xrdnb.crystal_from_structure(load_structure("U2Ti"))
    counted = len(xrdnb.pattern.reflections_for(u2ti))
    assert 0.7 < expected_reflections(u2ti.lattice, xrdnb.DEFAULT_SETTINGS.g_max) / counted < 1.4


def test_runaway_gradient_descent_stops_its_copies():
    """Constrained cosine at lr 10 would grow the cell without end; the volume bound stops each copy."""
    from xrdnb.optimize import GDConfig, run_gradient_descent

    truth = xrdnb.crystal_from_structure(load_structure("BPO4"))
    start = xrdnb.distort(truth, "lattice", 0.05, 3, seed=0).to(dtype=torch.float32)
    target = xrdnb.simulate_pattern(truth.to(dtype=torch.float32))[0]
    config = GDConfig(constrained=True, family="tetragonal", lr=10.0, max_steps=100, tol=0.0, record_every=0)
    result = run_gradient_descent(start, target, config, progress=False)
    assert result.stop_reason == ["invalid_lattice"] * 3
    volume = xrdnb.lattice.cell_volume(result.crystal.lattice.double())
    start_volume = xrdnb.lattice.cell_volume(start.lattice.double())
    assert (volume <= 8 * start_volume).all()
    with pytest.raises(ValueError, match="max_volume_growth"):
        GDConfig(max_volume_growth=1.0)


def test_nan_lattice_cif_is_refused_before_spglib(tmp_path):
    path = tmp_path / "nanlattice.cif"
    path.write_text(BPO4.replace("_cell_length_a   4.42793599", "_cell_length_a   nan"))
    with pytest.raises(StructureError, match="nanlattice.cif: lattice parameters .* are not all finite"):
        load_structure(path)
    results = str(tmp_path / "r")
    out = run_xrdnb("sweep", "--profile", "smoke", "--structures", str(path), "U2Ti", "--results", results, "--quiet")
    assert out.returncode == 2 and "not all finite" in out.stderr and "Traceback" not in out.stderr


def test_a_copy_that_never_stepped_is_not_valid_nor_a_match():
    from xrdnb.sweep import Cell, run_cell

    cell = Cell("BPO4", "lattice", 0.01, "cosine", True, 10.0, 0, n_copies=2, max_steps=5, patience=5, record_every=0)
    rows, _ = run_cell(cell)
    assert list(rows["stop_reason"]) == ["invalid_lattice"] * 2 and list(rows["steps"]) == [0, 0]
    assert not rows["valid"].any() and not rows["match"].any()


def test_a_grid_too_fine_to_fit_in_memory_is_refused():
    with pytest.raises(ValueError, match="grid points; at most 10,000,000"):
        xrdnb.XRDSettings(two_theta_max=1.0, two_theta_step=1.28e-129)
    assert xrdnb.XRDSettings(two_theta_step=1e-5).n_points == 9_000_000
