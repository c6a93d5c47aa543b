"""Structures in: benchmark names, paths, Structure objects; crystal families; crystal tensors."""

import pytest
import torch
from pymatgen.core import Lattice

from xrdnb import (
    BENCHMARK_NAMES,
    StructureError,
    benchmark_table,
    crystal_family,
    crystal_from_structure,
    load_structure,
)
from xrdnb.lattice import cell_volume, is_valid_lattice, lattice_matrix, metric_tensor, reciprocal_metric_tensor

FAMILIES = {
    "Au2S": "cubic",
    "SrTe": "cubic",
    "U2Ti": "hexagonal",
    "NaInS2": "hexagonal",
    "BPO4": "tetragonal",
    "NdAl2Cu4": "tetragonal",
    "BaTiO3": "orthorhombic",
    "LiCSN": "orthorhombic",
    "Na3MnCoNiO6": "monoclinic",
    "Gd4B3C4": "triclinic",
}


def test_benchmark_table_lists_all_ten():
    table = benchmark_table()
    assert sorted(table.file.str.replace(".cif", "", regex=False)) == sorted(BENCHMARK_NAMES)


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_benchmark_structures_and_families(name):
    structure = load_structure(name)
    assert crystal_family(structure) == FAMILIES[name]
    row = benchmark_table().set_index("file").loc[f"{name}.cif"]
    assert int(row.sites) == len(structure)


def test_load_from_path_and_structure(tmp_path):
    structure = load_structure("BPO4")
    path = tmp_path / "x.cif"
    structure.to(filename=str(path))
    assert load_structure(path).composition == structure.composition
    assert load_structure(structure) is structure


def test_unknown_name_lists_benchmarks():
    with pytest.raises(StructureError, match="not a benchmark structure"):
        load_structure("NotAStructure")


def test_crystal_tensors_and_round_trip(mixed_structure):
    crystal = crystal_from_structure(mixed_structure, batch_size=3)
    assert crystal.elements == ("Fe", "Ni", "O", "Li")
    assert crystal.occupancy[0].tolist() == [0.6, 0.4, 0.0, 0.0]
    back = crystal.to_structures()[2]
    assert back.lattice.abc == pytest.approx(mixed_structure.lattice.abc)
    assert back[0].species.get_el_amt_dict() == {"Fe": 0.6, "Ni": 0.4}
    with pytest.raises(ValueError, match="lattice must be"):
        type(crystal)(crystal.lattice[:2], crystal.frac_coords, crystal.occupancy, crystal.elements)


def test_lattice_geometry_matches_pymatgen():
    lattice = Lattice.from_parameters(4.1, 5.2, 6.3, 81.0, 97.0, 109.0)
    params = torch.tensor(lattice.parameters, dtype=torch.float64)
    torch.testing.assert_close(lattice_matrix(params), torch.tensor(lattice.matrix), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(metric_tensor(params), torch.tensor(lattice.metric_tensor), rtol=1e-12, atol=1e-12)
    recip = lattice.reciprocal_lattice_crystallographic.metric_tensor
    torch.testing.assert_close(reciprocal_metric_tensor(params), torch.tensor(recip), rtol=1e-12, atol=1e-14)
    assert float(cell_volume(params)) == pytest.approx(lattice.volume, rel=1e-12)


def test_invalid_lattices_are_flagged():
    good = [4.0, 4.0, 4.0, 90.0, 90.0, 90.0]
    bad = [[-4.0, 4, 4, 90, 90, 90], [4, 4, 4, 60, 60, 179.9], [4, 4, 4, 0, 90, 90], [4, 4, float("nan"), 90, 90, 90]]
    flags = is_valid_lattice(torch.tensor([good] + bad, dtype=torch.float64))
    assert flags.tolist() == [True, False, False, False, False]


def test_settings_validation():
    from xrdnb import XRDSettings

    with pytest.raises(ValueError, match="eta"):
        XRDSettings(eta=1.5)
    with pytest.raises(ValueError, match="two_theta"):
        XRDSettings(two_theta_min=50, two_theta_max=40)
    with pytest.raises(ValueError, match="Caglioti"):
        XRDSettings(U=0.0, V=-1.0, W=0.1)
    with pytest.raises(ValueError, match="method"):
        XRDSettings(method="magic")


def test_matcher_settings_expose_primitive_reduction():
    """A centred cell with displaced atoms.

    The default matcher's primitive reduction fails, the cell as given matches."""
    from xrdnb.distortions import distort
    from xrdnb.evaluate import MatcherTolerances, structures_match

    truth = load_structure("SrTe")  # Fm-3m, conventional cell
    copies = distort(crystal_from_structure(truth), "coordinates", 0.1, 2, seed=0).to_structures()
    assert not structures_match(copies, truth).any()
    assert structures_match(copies, truth, MatcherTolerances(primitive_cell=False)).all()
    assert structures_match([truth], truth, MatcherTolerances(ltol=0.01, stol=0.01, angle_tol=0.1)).all()
