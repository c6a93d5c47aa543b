"""The interactive explorer, driven through its widgets and callbacks (no browser)."""

import datetime
import time
import warnings

import pytest
import torch

pytest.importorskip("ipywidgets")

import xrdnb
from xrdnb.evaluate import structures_match
from xrdnb.explore import Explorer
from xrdnb.landscape import LATTICE_NAMES
from xrdnb.losses import all_similarities

NAME = "Au2S"


@pytest.fixture
def explorer():
    # a small slice grid keeps the tests fast; the notebook uses 21 × 21
    return Explorer(NAME, slice_grid=9, noise_type="lattice", noise_level=0.05, seed=0, gd_steps=8)


def slider_lattice(explorer):
    return torch.tensor([explorer.sliders[n].value for n in LATTICE_NAMES], dtype=torch.float64)


def test_ground_truth_is_a_perfect_match(explorer):
    assert explorer.valid
    assert explorer.similarities["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert explorer.similarities["cross_correlation"] == pytest.approx(1.0, abs=1e-6)
    assert explorer.similarities["mse"] == pytest.approx(0.0, abs=1e-12)
    assert explorer.matched is True
    assert explorer.pattern.shape == (xrdnb.DEFAULT_SETTINGS.n_points,)
    assert torch.equal(slider_lattice(explorer), explorer.truth.lattice[0])
    assert explorer.pattern_image.value and explorer.slice_image.value  # PNGs were drawn
    assert explorer.error is None


def test_slider_move_matches_direct_xrdnb_calls(explorer):
    before = explorer.pattern.clone()
    a0 = explorer.sliders["a"].value
    explorer.sliders["a"].value = a0 * 1.03  # fires the observer

    expected = explorer.truth.lattice[0].clone()
    expected[0] = a0 * 1.03
    assert torch.equal(explorer.lattice, expected)
    assert not torch.allclose(explorer.pattern, before)
    assert explorer.similarities["cosine"] < 1 - 1e-3

    truth = xrdnb.crystal_from_structure(xrdnb.load_structure(NAME))
    moved = truth.with_lattice(expected[None])
    pattern = xrdnb.simulate_pattern(moved)
    target = xrdnb.simulate_pattern(truth)[0]
    direct = all_similarities(pattern, target)
    assert torch.allclose(explorer.pattern, pattern[0], rtol=0, atol=1e-12)
    for name, value in direct.items():
        assert explorer.similarities[name] == pytest.approx(float(value[0]), abs=1e-10)
    assert explorer.matched == bool(structures_match(moved.to_structures(), truth.to_structures()[0])[0])


def test_slice_marker_is_at_the_current_point(explorer):
    explorer.sliders["b"].value = explorer.sliders["b"].value * 0.95
    assert explorer.slice_pair == ("a", "b")
    assert explorer.slice_marker == (float(explorer.lattice[0]), float(explorer.lattice[1]))
    # the drawn marker, not only the attribute
    (ax, *_) = explorer._slice_fig.axes
    (marker,) = [line for line in ax.get_lines() if line.get_label() == "current"]
    assert float(marker.get_xdata()[0]) == pytest.approx(float(explorer.lattice[0]))
    assert float(marker.get_ydata()[0]) == pytest.approx(float(explorer.lattice[1]))

    # another pair: computed once, then cached
    first = explorer.landscape_slice()
    explorer.slice_y_dropdown.value = "c"
    assert explorer.slice_marker == (float(explorer.lattice[0]), float(explorer.lattice[2]))
    assert explorer.landscape_slice().values.shape == (9, 9)
    explorer.slice_y_dropdown.value = "b"
    assert explorer.landscape_slice() is first


def test_slider_redraw_is_fast(explorer):
    a0 = explorer.sliders["a"].value
    times = []
    for factor in (1.01, 1.02, 1.03):
        t0 = time.perf_counter()
        explorer.sliders["a"].value = a0 * factor
        times.append(time.perf_counter() - t0)
    print(f"slider redraw: best {1000 * min(times):.0f} ms, worst {1000 * max(times):.0f} ms; last {explorer.timings}")
    assert min(times) < 1.0


def test_distortion_is_deterministic(explorer):
    explorer.seed_text.value = 3
    explorer.draw_button.click()
    first = explorer.lattice.clone()
    assert torch.equal(slider_lattice(explorer), first)  # the sliders show the distorted copy
    assert explorer.similarities["cosine"] < 0.999
    explorer.reset_button.click()
    assert explorer.similarities["cosine"] == pytest.approx(1.0, abs=1e-6)
    explorer.draw_distortion()
    assert torch.equal(explorer.lattice, first)
    explorer.seed_text.value = 4
    explorer.draw_distortion()
    assert not torch.equal(explorer.lattice, first)

    # coordinate noise moves the coordinates, not the lattice
    explorer.noise_type_dropdown.value = "coordinates"
    assert explorer.mode_dropdown.value == "coordinates" and explorer.constrained_checkbox.disabled
    explorer.noise_level_dropdown.value = 0.05
    explorer.draw_distortion()
    assert torch.equal(explorer.lattice, explorer.truth.lattice[0])
    assert not torch.allclose(explorer.frac_coords, explorer.truth.frac_coords[0])
    coords = explorer.frac_coords.clone()
    explorer.draw_distortion()
    assert torch.equal(explorer.frac_coords, coords)


def test_run_gd_improves_a_lattice_distortion(explorer):
    explorer.draw_distortion()
    before = explorer.similarities["cosine"]
    assert explorer.mode_dropdown.value == "lattice" and explorer.constrained_checkbox.value
    explorer.steps_text.value = 8
    explorer.gd_button.click()
    assert 1 <= len(explorer.loss_history) <= 8
    if explorer.gd_stop_reason == "max_steps":
        assert len(explorer.loss_history) == 8
    assert explorer.progress.value == len(explorer.loss_history)
    assert explorer.similarities["cosine"] > before
    assert torch.equal(slider_lattice(explorer), explorer.lattice)  # the sliders show the result
    assert len(explorer.gd_path) == len(explorer.loss_history) + 1
    # constrained: the end point is in the cubic family
    assert torch.allclose(explorer.lattice[3:], torch.full((3,), 90.0, dtype=torch.float64))
    assert explorer.loss_image.value


def test_bad_cif_upload_keeps_the_previous_structure(explorer):
    explorer.sliders["a"].value = explorer.sliders["a"].value * 1.02
    state = (explorer.structure_key, explorer.lattice.clone(), dict(explorer.similarities))
    explorer.upload.value = (
        {
            "name": "broken.cif",
            "type": "",
            "size": 9,
            "content": memoryview(b"not a cif"),
            "last_modified": datetime.datetime.now(),
        },
    )
    assert explorer.error is not None and "broken.cif" in explorer.error
    assert "Error" in explorer.status.value and "broken.cif" in explorer.status.value
    assert explorer.structure_key == state[0]
    assert torch.equal(explorer.lattice, state[1])
    assert explorer.similarities == state[2]
    assert explorer.structure_dropdown.value == NAME


def test_good_cif_upload_becomes_the_ground_truth(explorer):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = str(xrdnb.load_structure("U2Ti").to(fmt="cif"))
    assert explorer.load_cif(text.encode(), "my_U2Ti.cif")
    assert explorer.structure_key == "my_U2Ti.cif (uploaded)"
    assert explorer.structure_dropdown.value == explorer.structure_key
    assert explorer.family == "hexagonal"
    assert explorer.similarities["cosine"] == pytest.approx(1.0, abs=1e-6) and explorer.matched
    explorer.structure_dropdown.value = NAME  # back to a benchmark through the list
    assert explorer.structure_key == NAME and explorer.error is None


def test_snapshot_draws_the_state(explorer):
    explorer.draw_distortion()
    fig = explorer.snapshot()
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert "2θ (°)" in labels and "a (Å)" in labels
    assert any("colour" not in ax.get_ylabel() and "similarity" in ax.get_ylabel() for ax in fig.axes)  # colour bar
    assert "normalised" in fig.axes[0].get_ylabel()


def test_invalid_lattice_is_reported_not_raised():
    explorer = Explorer("U2Ti", slice_grid=5, gd_constrained=False, gd_steps=2)
    for name, value in (("alpha", 70.0), ("beta", 70.0), ("gamma", 140.0)):  # α + β = γ: no real cell
        explorer.sliders[name].value = value
    assert not explorer.valid and not explorer.matched
    assert explorer.similarities["cosine"] == 0.0
    explorer.run_gd()  # unconstrained GD cannot start from it: an error message, no exception
    assert explorer.error is not None and "valid" in explorer.error
    assert explorer.loss_history == []
    explorer.reset()
    assert explorer.valid and explorer.similarities["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert explorer.error is None and "Error" not in explorer.status.value
