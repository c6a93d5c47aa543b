"""Gradient descent: convergence, constraints, per-copy stopping and failure isolation."""

import pytest
import torch

import xrdnb
from xrdnb.distortions import distort
from xrdnb.losses import cosine_loss
from xrdnb.optimize import GDConfig, gd_step, init_state, run_gradient_descent
from xrdnb.symmetry import is_in_family


def setup(name, dtype=torch.float32):
    structure = xrdnb.load_structure(name)
    truth = xrdnb.crystal_from_structure(structure)
    target = xrdnb.simulate_pattern(truth.to(dtype=dtype))[0]
    return truth, target, xrdnb.crystal_family(structure)


@pytest.mark.slow  # gradient descent to convergence: minutes on a loaded machine
@pytest.mark.parametrize("name", ["U2Ti", "BPO4"])
def test_constrained_cosine_gd_converges_from_lattice_noise_001(name):
    truth, target, family = setup(name)
    start = distort(truth, "lattice", 0.01, 16, seed=0)
    true = truth.lattice[0].float()

    def errors(lattice):
        lengths = ((lattice[:, :3] - true[:3]).abs() / true[:3]).max(dim=1).values
        angles = (lattice[:, 3:] - true[3:]).abs().max(dim=1).values
        return lengths, angles

    start_len, start_ang = errors(start.lattice.float())
    assert ((start_len > 1e-3) | (start_ang > 0.1)).all()  # every start is outside the tolerance
    config = GDConfig(constrained=True, family=family, lr=2e-3, max_steps=250, patience=50, tol=1e-6, record_every=0)
    result = run_gradient_descent(start.to(dtype=torch.float32), target, config, progress=False)
    lengths, angles = errors(result.crystal.lattice)
    converged = (lengths < 1e-3) & (angles < 0.1)
    assert int(converged.sum()) >= 15
    assert is_in_family(result.crystal.lattice.double(), family).all()
    assert (result.loss < result.initial_loss).all()


def test_one_invalid_copy_fails_alone():
    truth, target, _ = setup("Gd4B3C4", torch.float64)
    start = distort(truth, "lattice", 0.02, 3, seed=1)
    config = GDConfig(optimizer="sgd", lr=1e-3, max_steps=12, patience=1000, record_every=1)
    state = init_state(start, target, config)
    scale = torch.tensor([1.0, 1e9, 1.0], dtype=torch.float64)
    gd_step(state, target, config, loss_fn=lambda p, q: cosine_loss(p, q) * scale)  # copy 1 is thrown far away
    assert state.status.tolist() == [0, 3, 0]
    assert torch.equal(state.params[1], state.history_params[0][1])  # keeps its last valid lattice
    while state.active.any() and state.step < config.max_steps:
        gd_step(state, target, config)
    # the other copies are unaffected: the same as a run without the failed copy
    alone = init_state(start.select([0, 2]), target, config)
    gd_step(alone, target, config, loss_fn=lambda p, q: cosine_loss(p, q))
    while alone.active.any() and alone.step < config.max_steps:
        gd_step(alone, target, config)
    torch.testing.assert_close(state.params[[0, 2]], alone.params, rtol=1e-10, atol=1e-10)
    assert state.status.tolist() == [2, 3, 2]


def test_run_reports_failed_copy():
    truth, target, _ = setup("U2Ti", torch.float64)
    start = distort(truth, "lattice", 0.02, 2, seed=0)
    lattice = start.lattice.clone()
    lattice[1, 3:] = torch.tensor([60.0, 60.0, 179.9], dtype=torch.float64)  # no real cell
    with pytest.raises(ValueError, match="starting lattice"):
        run_gradient_descent(start.with_lattice(lattice), target, GDConfig(max_steps=2), progress=False)


def test_early_stop_is_per_copy():
    truth, target, _ = setup("U2Ti", torch.float64)
    start = distort(truth, "coordinates", 0.001, 2, seed=0)
    lattice_start = distort(truth, "lattice", 0.05, 1, seed=3)
    # copy 0 is already at a fixed point of the coordinate problem (U2Ti's sites are special positions)
    config = GDConfig(mode="coordinates", lr=1e-4, max_steps=40, patience=10, tol=1e-4)
    result = run_gradient_descent(start, target, config, progress=False)
    assert set(result.stop_reason) <= {"converged", "max_steps"}
    assert (result.steps <= 40).all()
    assert lattice_start.batch_size == 1


def test_trajectory_is_recorded():
    truth, target, family = setup("SrTe", torch.float64)
    start = distort(truth, "lattice", 0.02, 2, seed=0)
    config = GDConfig(constrained=True, family=family, lr=1e-3, max_steps=20, patience=1000, record_every=5)
    result = run_gradient_descent(start, target, config, progress=False)
    assert result.trajectory_steps.tolist() == [0, 5, 10, 15, 20]
    assert result.trajectory_loss.shape == (5, 2)
    assert result.trajectory_params.shape == (5, 2, 6)
    assert result.stop_reason == ["max_steps", "max_steps"]


def test_config_errors():
    with pytest.raises(ValueError, match="lattice mode only"):
        GDConfig(mode="coordinates", constrained=True, family="cubic")
    with pytest.raises(ValueError, match="crystal family"):
        GDConfig(constrained=True)
    with pytest.raises(ValueError, match="optimizer"):
        GDConfig(optimizer="lbfgs")
    with pytest.raises(ValueError):
        xrdnb.optimize.loss_function("nope")


def test_mse_uses_clipped_reflections():
    assert GDConfig(loss="mse").simulator_settings().hkl_max == 6
    assert GDConfig(loss="cosine").simulator_settings().hkl_max is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gd_follows_the_cpu_run():
    """The batched engine on a GPU: every state tensor lives there, and the end points agree with the CPU's."""
    truth, target, family = setup("U2Ti")
    start = distort(truth, "lattice", 0.05, 4, seed=0).to(dtype=torch.float32)
    config = GDConfig(constrained=True, family=family, lr=5e-3, max_steps=40, patience=10, tol=1e-7, record_every=5)
    cpu = run_gradient_descent(start, target, config, progress=False)
    gpu = run_gradient_descent(start.to(device="cuda"), target.to("cuda"), config, progress=False)
    assert gpu.crystal.device.type == "cuda" and gpu.steps.device.type == "cuda"
    assert gpu.stop_reason == cpu.stop_reason
    torch.testing.assert_close(gpu.crystal.lattice.cpu(), cpu.crystal.lattice, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.loss.cpu(), cpu.loss, rtol=1e-3, atol=1e-5)


def test_batched_runs_equal_separate_runs():
    """Three runs of one structure (other loss, learning rate, projector and stopping rule)
    advanced as one batch end where each ends alone, to rounding (float64)."""
    from xrdnb.optimize import run_batched_gradient_descent

    truth, _, family = setup("BPO4", torch.float64)
    configs = [
        GDConfig(lr=1e-3, max_steps=30, patience=10, tol=1e-6, record_every=5),
        GDConfig(loss="mse", lr=5e-3, max_steps=20, patience=5, tol=1e-9, record_every=0),
        GDConfig(constrained=True, family=family, lr=2e-3, max_steps=25, patience=1000, record_every=10),
    ]
    starts = [distort(truth, "lattice", 0.05, n, seed=s) for n, s in ((3, 0), (2, 1), (2, 2))]
    targets = [xrdnb.simulate_pattern(truth, c.simulator_settings())[0] for c in configs]
    alone = [run_gradient_descent(s, t, c, progress=False) for s, t, c in zip(starts, targets, configs, strict=True)]
    together = run_batched_gradient_descent(starts, targets, configs, progress=False)
    for a, b in zip(alone, together, strict=True):
        assert a.stop_reason == b.stop_reason and torch.equal(a.steps, b.steps)
        assert torch.equal(a.trajectory_steps, b.trajectory_steps)
        torch.testing.assert_close(b.crystal.lattice, a.crystal.lattice, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(b.loss, a.loss, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(b.trajectory_loss, a.trajectory_loss, rtol=1e-10, atol=1e-12)
    assert together[2].crystal.lattice.shape == (2, 6)


def test_batched_state_refuses_mixed_runs():
    from xrdnb.optimize import init_batched_state

    u2ti, t1, _ = setup("U2Ti", torch.float64)
    srte, t2, _ = setup("SrTe", torch.float64)
    with pytest.raises(ValueError, match="one structure"):
        init_batched_state([u2ti, srte], [t1, t2], [GDConfig(), GDConfig()])
    with pytest.raises(ValueError, match="mode"):
        init_batched_state([u2ti, u2ti], [t1, t1], [GDConfig(), GDConfig(mode="coordinates")])
    with pytest.raises(ValueError, match="as many"):
        init_batched_state([u2ti], [t1, t1], [GDConfig()])
