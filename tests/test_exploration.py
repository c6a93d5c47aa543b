"""The explorer's state (xrdnb.exploration) without widgets, and the optimiser callback it drives."""

import subprocess
import sys

import pytest
import torch

import xrdnb
from xrdnb.exploration import ExplorerState
from xrdnb.losses import all_similarities
from xrdnb.optimize import GDConfig, run_gradient_descent
from xrdnb.structures import StructureError

NAME = "Au2S"


@pytest.fixture(scope="module")
def truth():
    return xrdnb.crystal_from_structure(xrdnb.load_structure(NAME))


@pytest.fixture
def state():
    return ExplorerState(NAME, slice_grid=5)


def test_imports_no_ipywidgets():
    code = "import sys, xrdnb.exploration; assert 'ipywidgets' not in sys.modules, 'ipywidgets imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ground_truth_and_a_moved_lattice(state, truth):
    assert state.valid and state.matched and state.family == "cubic"
    assert state.similarities["cosine"] == pytest.approx(1.0, abs=1e-6)
    moved = state.lattice.clone()
    moved[0] *= 1.03
    state.set_lattice(moved)
    pattern = xrdnb.simulate_pattern(truth.with_lattice(moved[None]))
    direct = all_similarities(pattern, xrdnb.simulate_pattern(truth)[0])
    assert torch.allclose(state.pattern, pattern[0], rtol=0, atol=1e-12)
    for name, value in direct.items():
        assert state.similarities[name] == pytest.approx(float(value[0]), abs=1e-10)
    assert state.slice_marker(("a", "c")) == (float(moved[0]), float(moved[2]))
    assert state.off_plane(("a", "b")) == 0.0 and state.off_plane(("b", "c")) > 0


def test_distortion_is_deterministic_and_reset_returns(state):
    state.distort("lattice", 0.05, seed=3)
    first = state.lattice.clone()
    assert state.similarities["cosine"] < 0.999 and "seed 3" in state.last_action
    state.reset()
    assert torch.equal(state.lattice, state.truth.lattice[0]) and state.matched
    state.distort("lattice", 0.05, seed=3)
    assert torch.equal(state.lattice, first)
    state.distort("coordinates", 0.05, seed=0)
    assert torch.equal(state.lattice, state.truth.lattice[0]) and state.coords_moved() > 0
    with pytest.raises(ValueError):
        state.distort("strain", 0.1)


def test_gd_is_the_package_loop(state, truth):
    """The state's GD run ends where run_gradient_descent ends, and records every step."""
    state.distort("lattice", 0.05, seed=0)
    start = state.current_crystal()
    before = state.similarities["cosine"]
    state.run_gd(mode="lattice", loss="cosine", constrained=True, steps=6, lr=1e-2)
    config = GDConfig(constrained=True, family="cubic", lr=1e-2, max_steps=6, record_every=0)
    plain = run_gradient_descent(start, xrdnb.simulate_pattern(truth)[0], config, progress=False)
    assert torch.equal(state.lattice, plain.crystal.lattice[0])
    assert len(state.loss_history) == int(plain.steps[0]) == 6 and len(state.gd_path) == 7
    assert state.gd_stop_reason == plain.stop_reason[0] == "max_steps"
    assert state.similarities["cosine"] > before
    assert torch.allclose(state.lattice[3:], torch.full((3,), 90.0, dtype=torch.float64))


def test_gd_from_no_real_cell_raises_and_keeps_the_state(state):
    state.set_lattice([5.0, 5.0, 5.0, 70.0, 70.0, 140.0])  # α + β = γ: no real cell
    assert not state.valid and not state.matched
    with pytest.raises(ValueError, match="valid"):
        state.run_gd(constrained=False, steps=2)
    assert state.loss_history == [] and state.lattice[5] == 140.0


def test_callback_sees_every_step_stops_and_changes_nothing(truth):
    start = truth.with_lattice(truth.lattice * 1.02)
    target = xrdnb.simulate_pattern(truth)[0]
    config = GDConfig(lr=1e-2, max_steps=10, record_every=1)
    plain = run_gradient_descent(start, target, config, progress=False)
    seen = []
    watched = run_gradient_descent(start, target, config, progress=False, callback=lambda s: seen.append(s.step))
    assert seen == list(range(1, 11))
    assert torch.equal(watched.crystal.lattice, plain.crystal.lattice)
    assert torch.equal(watched.trajectory_loss, plain.trajectory_loss)
    every = []
    stopped = run_gradient_descent(
        start, target, config, progress=False, callback=lambda s: every.append(s.step) or s.step >= 4, callback_every=2
    )
    assert every == [2, 4] and int(stopped.steps[0]) == 4 and stopped.stop_reason == ["max_steps"]
    assert torch.equal(stopped.trajectory_loss[:5], plain.trajectory_loss[:5])
    with pytest.raises(ValueError):
        run_gradient_descent(start, target, config, progress=False, callback=print, callback_every=0)


def test_slices_are_cached_and_a_bad_cif_changes_nothing(state):
    first = state.landscape_slice(("a", "b"))
    assert first.values.shape == (5, 5) and state.landscape_slice(["a", "b"]) is first
    with pytest.raises(ValueError):
        state.landscape_slice(("a", "a"))
    key, lattice = state.structure_key, state.lattice.clone()
    with pytest.raises(StructureError, match="broken.cif"):
        state.load_cif(b"not a cif", "broken.cif")
    assert state.structure_key == key and torch.equal(state.lattice, lattice)
