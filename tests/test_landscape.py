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
    assert torch.nonzero(mask).flatten().tolist() == [200, 400]  # the interior ones only
    assert int(ls.strict_local_minima(-torch.cos(x), edge=True).sum()) == 4
    assert ls.roughness(-torch.cos(x), 300).basin_fraction == pytest.approx(1 / 3, abs=0.01)


def test_nan_and_plateau_handling():
    loss = torch.tensor([2.0, float("nan"), 1.0, 1.0, 3.0, 0.5])
    mask = ls.strict_local_minima(loss, edge=True)
    assert mask.tolist() == [True, False, True, False, False, True]  # the plateau 2-3 is one minimum, at 2
    assert ls.strict_local_minima(loss).tolist() == [False, False, True, False, False, False]  # 0 and 5: edge
    dest = ls.descent_destinations(loss)
    assert dest.tolist() == [0, 2, 2, 3, 5, 5]  # NaN moves to a finite neighbour; a plateau stops descent
    assert ls.basin_fraction(loss, 5) == pytest.approx(2 / 5)  # of the 5 finite points, 4 and 5 end at 5
    assert ls.basin_fraction(loss, 3) == pytest.approx(2 / 5)  # 2 and 3 end on the same plateau
    assert ls.plateau_labels(loss).tolist() == [0, 1, 2, 2, 4, 5]
    # a plateau on a slope is not a minimum, nor one that touches the edge
    assert not ls.strict_local_minima(torch.tensor([3.0, 2.0, 2.0, 1.0, 4.0])).tolist()[1]
    assert not ls.strict_local_minima(torch.tensor([1.0, 1.0, 2.0, 3.0])).any()


def test_mirror_images_across_the_diagonal_are_one_minimum():
    """The a–b slice of a cubic cell is symmetric under a ↔ b: a minimum between grid points off the diagonal
    lands on two mirror-image points that are diagonal neighbours with exactly the same loss."""
    x = torch.linspace(-1, 1, 13, dtype=torch.float64)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    u, v = (X + Y) / 2, (X - Y) / 2  # along and across the diagonal
    loss = (u - 1 / 12) ** 2 + 4 * (v.abs() - 1 / 12) ** 2  # minima at (i, j) = (7, 6) and (6, 7), tied
    assert loss[7, 6] == loss[6, 7] == loss.min()
    mask = ls.strict_local_minima(loss)
    assert torch.nonzero(mask).tolist() == [[6, 7]]  # one minimum, at the plateau's first point
    labels = ls.plateau_labels(loss)
    assert labels[7, 6] == labels[6, 7] == 6 * 13 + 7
    assert ls.basin_fraction(loss, (6, 6)) == 1.0  # every descent ends on the pair
    assert ls.roughness(loss, (6, 6)) == ls.Roughness(1, 1.0, 169)


def test_descent_follows_the_steepest_neighbour():
    loss = torch.tensor([[5.0, 4.0, 3.0], [4.0, 9.0, 2.0], [3.0, 2.0, 0.0]])
    dest = ls.descent_destinations(loss)
    assert (dest == 8).all()
    assert ls.strict_local_minima(loss, edge=True).sum() == 1
    assert ls.strict_local_minima(loss).sum() == 0  # the corner is a destination of descent, not a counted minimum


def test_a_slope_out_of_the_window_has_no_interior_minimum():
    X, Y = _grid(n=31)
    for loss in (X + 0.5 * Y, (X + 4) ** 2 + (Y + 5) ** 2):  # a plane; a bowl centred outside the grid
        assert not ls.strict_local_minima(loss).any()
        edge = ls.strict_local_minima(loss, edge=True)
        assert torch.nonzero(edge).tolist() == [[0, 0]]  # the corner the slope runs into
        assert ls.roughness(loss, (15, 15)).n_minima == 0
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert not ls.strict_local_minima(x).any() and ls.strict_local_minima(x, edge=True).tolist()[0]


def test_wells_on_the_edge_are_not_counted():
    X, Y = _grid()
    inside = [(-1.5, -1.5), (1.5, -1.5), (-1.5, 1.5), (1.5, 1.5), (0.0, 0.0)]
    edge = [(3.0, 0.0), (-3.0, -3.0)]  # a well centred on a side and one in a corner
    loss = -sum(torch.exp(-((X - a) ** 2 + (Y - b) ** 2) / (2 * 0.3**2)) for a, b in inside + edge)
    assert int(ls.strict_local_minima(loss).sum()) == 5
    assert int(ls.strict_local_minima(loss, edge=True).sum()) == 7
    # an egg box: -cos x cos y on ±2.5π has its minima where cos x = cos y = ±1, 3² + 2² of them, all inside
    x = torch.linspace(-2.5 * math.pi, 2.5 * math.pi, 101, dtype=torch.float64)
    mask = ls.strict_local_minima(-torch.cos(x[:, None]) * torch.cos(x[None, :]))
    found = {(round(float(x[i] / math.pi)), round(float(x[j] / math.pi))) for i, j in mask.nonzero().tolist()}
    assert int(mask.sum()) == 13
    assert found == {(a, b) for a in (-2, 0, 2) for b in (-2, 0, 2)} | {(a, b) for a in (-1, 1) for b in (-1, 1)}


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


# --------------------------------------------------------------------------- resolution and convergence


def test_nested_step_and_its_errors():
    assert ls.nested_step(33, 9) == 4 and ls.nested_step(33, 33) == 1 and ls.nested_step(101, 21) == 5
    for fine, n in ((33, 8), (32, 9), (33, 1), (1, 1), (33, 13), (17, 33), (33, True)):
        with pytest.raises(ValueError):
            ls.nested_step(fine, n)
    with pytest.raises(ValueError, match="not nested"):
        ls.nested_step(33, 13)
    with pytest.raises(ValueError, match="odd sizes"):
        ls.subgrid(torch.zeros(33, 33), 16)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        ls.subgrid(torch.zeros(5, 5, 5), 3)


def test_nested_grids_are_the_largest_divisors():
    assert ls.nested_grids(25) == [9, 13, 25] and ls.nested_grids(65) == [17, 33, 65]
    assert ls.nested_grids(7) == [3, 7] and ls.nested_grids(33, 5) == [3, 5, 9, 17, 33] and ls.nested_grids(9, 1) == [9]
    for n in ls.nested_grids(101, 6):
        assert ls.nested_step(101, n) >= 1
    for bad in ((16, 3), (1, 3), (9, 0)):
        with pytest.raises(ValueError):
            ls.nested_grids(*bad)


def test_subgrid_is_the_coarse_grid_of_the_same_slice():
    centre = torch.tensor([4.7887, 4.7887, 2.8022, 90.0, 90.0, 120.0], dtype=torch.float64)
    fine = [ls.parameter_axis(centre, p, 33) for p in ("a", "gamma")]
    for n in (3, 5, 9, 17, 33):
        coarse = [ls.parameter_axis(centre, p, n) for p in ("a", "gamma")]
        for f, c in zip(fine, coarse, strict=True):
            assert torch.allclose(ls.subgrid(f, n), c, rtol=0, atol=1e-12)
        lattices = ls.slice_lattices(centre, ("a", "gamma"), fine)
        values = lattices[..., 0] * torch.cos(torch.deg2rad(lattices[..., 5]))
        direct = ls.slice_lattices(centre, ("a", "gamma"), coarse)
        assert torch.allclose(
            ls.subgrid(values, n), direct[..., 0] * torch.cos(torch.deg2rad(direct[..., 5])), rtol=0, atol=1e-12
        )
        assert ls.subgrid(values, n)[(n - 1) // 2, (n - 1) // 2] == values[16, 16]  # the centre is shared
    assert ls.axis_step(fine[0], centre, "a") == pytest.approx(40 / 32)
    assert ls.axis_step(fine[1], centre, "gamma") == pytest.approx(40 / 32)


def test_roughness_by_resolution_of_a_bowl_and_its_density():
    x = torch.linspace(-1, 1, 33, dtype=torch.float64)
    bowl = (x[:, None] - 0.1) ** 2 + x[None, :] ** 2
    rows = ls.roughness_by_resolution(bowl, (16, 16), [33, 9, 17], [1.25, 1.25])
    assert [r.n for r in rows] == [9, 17, 33]
    assert [(r.n_minima, r.basin_fraction) for r in rows] == [(1, 1.0)] * 3
    assert [r.n_points for r in rows] == [81, 289, 1089]
    # interior of the 33-grid: 31 cells of 1.25 % per axis, 3.875 density units of 10 %
    assert rows[-1].minima_density == pytest.approx(1 / 3.875**2)
    assert rows[0].minima_density == pytest.approx(1 / (7 * 5.0 / 10) ** 2)
    one_d = ls.roughness_by_resolution((x - 0.1) ** 2, 16, [5, 9], [2.0])
    assert [r.minima_density for r in one_d] == pytest.approx([1 / (3 * 16 / 10), 1 / (7 * 8 / 10)])
    with pytest.raises(ValueError, match="one entry per axis"):
        ls.roughness_by_resolution(bowl, 16, [9], [1.25, 1.25])
    with pytest.raises(ValueError, match="one entry per axis"):
        ls.roughness_by_resolution(bowl, (16, 16), [9], [1.25])
    with pytest.raises(ValueError, match="not nested"):
        ls.roughness_by_resolution(bowl, (16, 16), [13], [1.25, 1.25])


def test_basin_start_off_a_subgrid_rounds_to_the_nearest_point():
    x = torch.linspace(-1, 1, 17, dtype=torch.float64)
    double = torch.minimum((x + 0.5) ** 2, (x - 0.5) ** 2 + 0.01)  # wells at index 4 and 12
    rows = ls.roughness_by_resolution(double, 13, [5, 9, 17], [2.5])  # 13 -> 6.5 -> 3 on the 9-grid: the right well
    assert [r.n_minima for r in rows] == [2, 2, 2]
    assert rows[1].basin_fraction == ls.basin_fraction(ls.subgrid(double, 9), 6)
    assert rows[-1].basin_fraction == ls.basin_fraction(double, 13) < 0.5


def test_convergence_rule_on_a_resolved_and_an_unresolved_landscape():
    X, Y = _grid(n=65)
    centres = [(-1.5, -1.5), (1.5, -1.5), (-1.5, 1.5), (1.5, 1.5), (0.0, 0.0)]
    wells = -sum(torch.exp(-((X - a) ** 2 + (Y - b) ** 2) / (2 * 0.5**2)) for a, b in centres)
    steps = [6 / 64 * 10] * 2  # any unit: the rule does not depend on it
    rows = ls.roughness_by_resolution(wells, (32, 32), [17, 33, 65], steps)
    minima = [r.n_minima for r in rows]
    assert minima == [5, 5, 5] and ls.converged(minima)
    assert ls.converged([r.basin_fraction for r in rows])
    assert ls.growth_exponent([17, 33, 65], minima) == 0.0
    # white noise is rough on the scale of every grid: about one point in 9 is lower than its 8 neighbours
    noise = torch.rand(65, 65, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rows = ls.roughness_by_resolution(noise, (32, 32), [17, 33, 65], steps)
    minima = [r.n_minima for r in rows]
    assert minima[0] < minima[1] < minima[2] and not ls.converged(minima)
    assert minima[-1] == pytest.approx(63**2 / 9, rel=0.15)
    assert 1.7 < ls.growth_exponent([17, 33, 65], minima) < 2.3
    assert rows[-1].minima_density > 2 * rows[0].minima_density  # the density grows too: it is the grid's


def test_converged_and_growth_exponent_edge_cases():
    assert ls.converged([18, 65, 65]) and not ls.converged([65, 18])
    assert ls.converged([0, 0]) and not ls.converged([1, 0]) and not ls.converged([0, 1])
    assert (
        ls.converged([9, 10]) is True
        and ls.converged([8, 10]) is False
        and ls.converged([9, 10], tolerance=0.05) is False
    )
    assert ls.converged([90, 99]) and ls.converged([0.5, 0.52], tolerance=0.05)
    assert not ls.converged([float("nan"), float("nan")])
    assert ls.CONVERGENCE_TOLERANCE == 0.1
    assert ls.growth_exponent([17, 33], [18, 65]) == pytest.approx(math.log(65 / 18) / math.log(2))
    assert math.isnan(ls.growth_exponent([17, 33], [0, 5]))
    with pytest.raises(ValueError):
        ls.converged([3])
    with pytest.raises(ValueError):
        ls.growth_exponent([17, 33], [1])
