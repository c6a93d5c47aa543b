"""Landscape slices, cuts, projections and the roughness measure (xrdnb.landscape)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import xrdnb
from xrdnb import landscape as ls
from xrdnb.sweep import ALL_STRUCTURES

# --------------------------------------------------------------------------- roughness on synthetic functions


def _grid(n=61, extent=3.0):
    x = torch.linspace(-extent, extent, n, dtype=torch.float64)
    return torch.meshgrid(x, x, indexing="ij")


def test_convex_bowl_has_one_minimum_and_full_basin():
    X, Y = _grid()
    bowl = (X - 0.3) ** 2 + 2 * (Y + 0.2) ** 2 + 0.5 * X * Y
    centre = torch.unravel_index(bowl.argmin(), bowl.shape)
    r = ls.roughness(bowl, tuple(int(c) for c in centre))
    assert r.n_minima == 1
    assert r.basin_fraction == 1.0
    assert r.n_points == bowl.numel()
    # 1-D bowl as well
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)
    r1 = ls.roughness((x - 0.1) ** 2, 55)
    assert (r1.n_minima, r1.basin_fraction) == (1, 1.0)


def test_sum_of_wells_gives_known_count():
    X, Y = _grid()
    centres = [(-1.5, -1.5), (1.5, -1.5), (-1.5, 1.5), (1.5, 1.5), (0.0, 0.0)]
    loss = -sum(torch.exp(-((X - a) ** 2 + (Y - b) ** 2) / (2 * 0.3**2)) for a, b in centres)
    mask = ls.strict_local_minima(loss)
    assert int(mask.sum()) == 5
    # the minima sit at the well centres (grid spacing 0.1)
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    found = sorted((round(float(x[i]), 6), round(float(x[j]), 6)) for i, j in torch.nonzero(mask).tolist())
    assert found == sorted((a, b) for a, b in centres)
    # the central well attracts less than all of the grid, more than nothing
    r = ls.roughness(loss, (30, 30))
    assert r.n_minima == 5 and 0.0 < r.basin_fraction < 1.0
    # the four corner basins are mirror images: equal shares, and all five shares add to 1
    dest = ls.descent_destinations(loss)
    shares = torch.stack([(dest == d).double().mean() for d in dest.unique()])
    assert len(shares) == 5 and math.isclose(float(shares.sum()), 1.0)


def test_one_dimensional_cosine_count():
    x = torch.linspace(0, 6 * math.pi, 601, dtype=torch.float64)  # minima of -cos at 0 (edge), 2π, 4π, 6π (edge)
    mask = ls.strict_local_minima(-torch.cos(x))
    assert int(mask.sum()) == 4
    assert ls.roughness(-torch.cos(x), 300).basin_fraction == pytest.approx(1 / 3, abs=0.01)


def test_nan_and_plateau_handling():
    loss = torch.tensor([2.0, float("nan"), 1.0, 1.0, 3.0, 0.5])
    mask = ls.strict_local_minima(loss)
    assert mask.tolist() == [True, False, False, False, False, True]  # the plateau is not strict
    dest = ls.descent_destinations(loss)
    assert dest.tolist() == [0, 2, 2, 3, 5, 5]  # NaN moves to a finite neighbour; a plateau stops descent
    assert ls.basin_fraction(loss, 5) == pytest.approx(2 / 5)  # of the 5 finite points, 4 and 5 end at 5


def test_descent_follows_the_steepest_neighbour():
    loss = torch.tensor([[5.0, 4.0, 3.0], [4.0, 9.0, 2.0], [3.0, 2.0, 0.0]])
    dest = ls.descent_destinations(loss)
    assert (dest == 8).all()
    assert ls.strict_local_minima(loss).sum() == 1


# --------------------------------------------------------------------------- grids


def test_axis_contains_centre_for_odd_n_and_spans():
    centre = torch.tensor([4.7887, 4.7887, 2.8022, 90.0, 90.0, 120.0], dtype=torch.float64)
    a = ls.parameter_axis(centre, "a", 41)
    assert a[20] == centre[0]
    assert float(a[0]) == pytest.approx(0.8 * 4.7887) and float(a[-1]) == pytest.approx(1.2 * 4.7887)
    g = ls.parameter_axis(centre, "γ", 7, angle_span=15.0)
    assert g[3] == 120.0 and float(g[0]) == pytest.approx(105.0)
    lat = ls.slice_lattices(centre, ("a", "gamma"), (a, g))
    assert lat.shape == (41, 7, 6)
    assert torch.equal(lat[20, 3], centre)
    assert torch.equal(lat[:, 0, 1:5], centre[1:5].expand(41, 4))
    with pytest.raises(ValueError):
        ls.slice_lattices(centre, ("a", "a"), (a, a))
    with pytest.raises(ValueError):
        ls.parameter_index("delta")


def test_symmetry_axis_cuts_tie_parameters():
    centre = torch.tensor([5.0, 5.0, 5.0, 90.0, 90.0, 90.0], dtype=torch.float64)
    values = torch.tensor([4.5, 5.5], dtype=torch.float64)
    cubic = ls.cut_lattices(centre, "a", values, "cubic")
    assert torch.equal(cubic[:, :3], values[:, None].expand(2, 3))
    tet = ls.cut_lattices(centre, "a", values, "tetragonal")
    assert tet[:, 2].tolist() == [5.0, 5.0] and tet[:, 0].tolist() == tet[:, 1].tolist() == values.tolist()
    plain = ls.cut_lattices(centre, "a", values)
    assert plain[:, 1].tolist() == [5.0, 5.0]
    with pytest.raises(ValueError):
        ls.tied_parameters("cubic", "c")  # not a free parameter of the cubic family
    assert xrdnb.symmetry.is_in_family(cubic, "cubic").all()


def test_projection_onto_slice_plane():
    centre = torch.tensor([4.0, 5.0, 6.0, 90.0, 100.0, 90.0], dtype=torch.float64)
    points = torch.stack(
        [
            centre,
            centre + torch.tensor([0.1, 0.0, 0.0, 0.0, 0.0, 2.0], dtype=torch.float64),
            centre + torch.tensor([0.0, 0.5, 0.0, 0.0, 4.0, 0.0], dtype=torch.float64),
        ]
    )
    coords, off = ls.project_onto_slice(points, centre, ("a", "gamma"))
    assert coords[:, 0].tolist() == points[:, 0].tolist() and coords[:, 1].tolist() == points[:, 5].tolist()
    # b moved by 0.5 Å = half of Δ_b = 1.0 Å; β moved by 4° = 0.2 of Δ = 20°
    assert off.tolist() == pytest.approx([0.0, 0.0, 0.5])


# --------------------------------------------------------------------------- XRD slices through the simulator


@pytest.fixture(scope="module")
def u2ti():
    return xrdnb.crystal_from_structure(xrdnb.load_structure("U2Ti"))


@pytest.mark.slow
def test_every_cosine_slice_of_u2ti_peaks_at_the_ground_truth(u2ti):
    fn = ls.xrd_similarity_fn(u2ti, "cosine")
    for names in itertools.combinations(ls.LATTICE_NAMES, 2):
        s = ls.lattice_slice(u2ti, names, fn, n=5)
        i, j = s.center_index
        assert (i, j) == (2, 2)
        assert abs(float(s.values[i, j]) - 1.0) < 1e-6, names
        assert int(torch.argmax(torch.nan_to_num(s.values, nan=-1.0))) == i * 5 + j, names
        assert float(torch.nan_to_num(s.values, nan=-1.0).flatten().topk(2).values[1]) < 1.0 - 1e-6, names


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_STRUCTURES)
def test_cosine_slices_of_every_benchmark_peak_at_the_ground_truth(name):
    truth = xrdnb.crystal_from_structure(xrdnb.load_structure(name))
    fn = ls.xrd_similarity_fn(truth, "cosine")
    for names in (("a", "b"), ("c", "beta")):
        s = ls.lattice_slice(truth, names, fn, n=5, chunk_size=32)
        values = torch.nan_to_num(s.values, nan=-1.0)
        assert abs(float(values[2, 2]) - 1.0) < 1e-6
        assert int(values.argmax()) == 12


def test_batched_equals_one_at_a_time_and_channels(u2ti):
    names = ["cosine", "mse", "entropy", "cross_correlation"]
    fn = ls.xrd_similarity_fn(u2ti, names)
    lattices = ls.slice_lattices(
        u2ti.lattice[0], ("a", "c"), [ls.parameter_axis(u2ti.lattice[0], k, 3) for k in ("a", "c")]
    )
    batched = ls.evaluate_lattices(u2ti, lattices, fn, chunk_size=9)
    single = ls.evaluate_lattices(u2ti, lattices, fn, chunk_size=1)
    assert batched.shape == (3, 3, 4)
    assert torch.allclose(batched, single, atol=1e-10, rtol=0)
    centre = batched[1, 1]
    assert centre[0] == pytest.approx(1.0, abs=1e-12)
    assert centre[1] == pytest.approx(0.0, abs=1e-12)  # −MSE of the target with itself (clipped reflections)
    assert centre[2:].tolist() == pytest.approx([1.0, 1.0], abs=1e-9)


def test_invalid_lattices_give_nan(u2ti):
    fn = ls.xrd_similarity_fn(u2ti, "cosine")
    lattices = u2ti.lattice[0].repeat(3, 1).clone()
    lattices[1, 0] = -1.0  # negative length
    lattices[2, 3:] = torch.tensor([150.0, 150.0, 150.0], dtype=lattices.dtype)  # no real cell
    values = ls.evaluate_lattices(u2ti, lattices, fn)
    assert values[0] == pytest.approx(1.0) and torch.isnan(values[1:]).all()


def test_symmetry_axis_cut_of_a_cubic_cell():
    truth = xrdnb.crystal_from_structure(xrdnb.load_structure("Au2S"))
    cut = ls.lattice_cut(truth, "a", ls.xrd_similarity_fn(truth, "cosine"), family="cubic", n=41)
    assert cut.center_index == 20 and float(cut.values[20]) == pytest.approx(1.0, abs=1e-9)
    assert int(cut.values.argmax()) == 20
    assert cut.label.startswith("a\u0304")
    r = ls.roughness(-cut.values, cut.center_index)
    assert r.n_minima >= 1 and 0 < r.basin_fraction <= 1


def test_doctests():
    import doctest

    result = doctest.testmod(ls, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
