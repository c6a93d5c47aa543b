import csv
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MP20_CSV = ROOT / "data" / "mp20-subset.csv"
XRDNB = [sys.executable, "-m", "xrdnb.cli"]
"""The command line, run as a module of the interpreter that runs the tests."""


def run_xrdnb(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``xrdnb ARGS...`` in a subprocess, output captured as text (``kwargs`` go to :func:`subprocess.run`)."""
    return subprocess.run([*XRDNB, *args], capture_output=True, text=True, **kwargs)


def mp20_rows(every: int = 1):
    with open(MP20_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[::every]


def structure_from_cif(text: str):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(text, fmt="cif")


@pytest.fixture
def mixed_structure():
    """Triclinic cell with three species and one partially occupied site (Fe0.6 Ni0.4)."""
    from pymatgen.core import Lattice, Structure

    lattice = Lattice.from_parameters(4.1, 4.6, 5.3, 84.0, 97.0, 103.0)
    species = [{"Fe": 0.6, "Ni": 0.4}, "O", "O", "Li"]
    coords = [[0.02, 0.05, 0.01], [0.48, 0.52, 0.47], [0.21, 0.73, 0.36], [0.66, 0.18, 0.81]]
    return Structure(lattice, species, coords)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


def staged_spec(**changes):
    """A two-stage sweep of seconds (U2Ti, one lattice level, cosine, two candidate rates, one selection copy)."""
    from xrdnb.sweep import SweepSpec

    values = dict(
        structures=("U2Ti",),
        lattice_levels=(0.05,),
        coordinate_levels=(),
        losses=("cosine",),
        constrained_losses=(),
        lattice_lrs=(1e-3, 1e-2),
        selection_seed=1,
        selection_copies=1,
        evaluate_lrs="selected",
        n_copies=2,
        max_steps=10,
        patience=5,
        record_every=5,
    )
    return SweepSpec(**{**values, **changes})
