"""The fast renderer against the dense reference on all ten benchmark structures."""

import pytest
import torch

from xrdnb import BENCHMARK_NAMES, XRDSettings, crystal_from_structure, load_structure, simulate_pattern
from xrdnb.pattern import reflections_for
from xrdnb.peak_shapes import render_dense, render_fast


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_fast_matches_dense(name):
    crystal = crystal_from_structure(load_structure(name), batch_size=2)
    lattice = crystal.lattice.clone()
    lattice[1] *= torch.tensor([1.01, 0.99, 1.02, 1.0, 1.0, 1.0], dtype=torch.float64)
    reflections = reflections_for(crystal.with_lattice(lattice))
    weights = torch.randn(9000, dtype=torch.float64)
    results = {}
    for method in ("dense", "fast"):
        lat = lattice.clone().requires_grad_(True)
        pattern = simulate_pattern(crystal.with_lattice(lat), reflections=reflections, method=method)
        (grad,) = torch.autograd.grad((pattern * weights).sum(), lat)
        results[method] = (pattern.detach(), grad)
    (dense, g_dense), (fast, g_fast) = results["dense"], results["fast"]
    cosine = torch.nn.functional.cosine_similarity(dense, fast, dim=-1)
    assert cosine.min() >= 0.999999
    assert (dense - fast).abs().max() <= 1e-3
    grad_cosine = torch.nn.functional.cosine_similarity(g_dense.flatten(), g_fast.flatten(), dim=0)
    assert grad_cosine >= 0.9999


def test_lorentzian_tails_are_kept():
    """A single peak: the fast path keeps the far tail that plain windowing would drop."""
    grid = torch.arange(0, 90, 0.01, dtype=torch.float64)
    centre = torch.tensor([[30.003]], dtype=torch.float64)
    intensity = torch.ones(1, 1, dtype=torch.float64)
    fwhm = torch.tensor([[0.35]], dtype=torch.float64)
    dense = render_dense(centre, intensity, fwhm, grid, 0.1)
    fast = render_fast(centre, intensity, fwhm, 0.0, 0.01, 9000, 0.1, 0.46)
    far = (grid - 30.003).abs() > 5
    assert dense[0, far].max() > 1e-3  # the tail matters at this level
    assert (dense - fast).abs().max() < 5e-6
    window_only = render_fast(centre, intensity, fwhm, 0.0, 0.01, 9000, 0.1, 0.46, n_terms=0)
    assert (dense - window_only).abs().max() > 1e-2


def test_peaks_near_grid_edges():
    grid = torch.arange(0, 90, 0.01, dtype=torch.float64)
    centre = torch.tensor([[0.004, 0.6, 89.3, 89.995]], dtype=torch.float64)
    intensity = torch.tensor([[1.0, 0.5, 0.7, 0.2]], dtype=torch.float64)
    fwhm = torch.full_like(centre, 0.4)
    dense = render_dense(centre, intensity, fwhm, grid, 0.1)
    fast = render_fast(centre, intensity, fwhm, 0.0, 0.01, 9000, 0.1, 0.46)
    assert (dense - fast).abs().max() < 5e-6


def test_auto_method_choice():
    assert XRDSettings().resolved_method() == "fast"
    assert XRDSettings(two_theta_min=30, two_theta_max=35, two_theta_step=0.01).resolved_method() == "dense"
    assert XRDSettings(method="dense").resolved_method() == "dense"


def test_float32_fast_path_is_accurate():
    crystal = crystal_from_structure(load_structure("NdAl2Cu4"))
    p64 = simulate_pattern(crystal, method="dense")
    p32 = simulate_pattern(crystal.to(dtype=torch.float32), method="fast").double()
    assert torch.nn.functional.cosine_similarity(p64, p32).min() > 0.99999
    assert (p64 - p32).abs().max() < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    crystal = crystal_from_structure(load_structure("BPO4"), batch_size=4)
    cpu = simulate_pattern(crystal)
    gpu = simulate_pattern(crystal.to(device="cuda")).cpu()
    assert (cpu - gpu).abs().max() < 1e-10


@pytest.mark.parametrize("fwhm_min", [None, 0.30])
def test_tail_series_about_reference_width(fwhm_min):
    """Peaks of different widths: the tail series about h0 converges to the dense pattern."""
    grid = torch.arange(0, 90, 0.01, dtype=torch.float64)
    centre = torch.tensor([[10.0, 30.003, 55.5, 80.25]], dtype=torch.float64)
    intensity = torch.tensor([[1.0, 0.3, 0.8, 0.5]], dtype=torch.float64)
    fwhm = torch.tensor([[0.30, 0.35, 0.41, 0.46]], dtype=torch.float64)
    dense = render_dense(centre, intensity, fwhm, grid, 0.1)
    fast = render_fast(centre, intensity, fwhm, 0.0, 0.01, 9000, 0.1, 0.46, fwhm_min=fwhm_min)
    assert (dense - fast).abs().max() < 5e-6
    one_term = render_fast(centre, intensity, fwhm, 0.0, 0.01, 9000, 0.1, 0.46, fwhm_min=fwhm_min, n_terms=1)
    assert (dense - one_term).abs().max() > 10 * (dense - fast).abs().max()


def test_tail_terms_adapt_to_width_range():
    from xrdnb.peak_shapes import tail_terms

    lo, hi = XRDSettings().fwhm_range()
    adaptive = tail_terms(2.0, 0.75, h_sq_range=((lo / 2) ** 2, (hi / 2) ** 2), fwhm_max=hi)
    assert adaptive < tail_terms(2.0, 0.75)
    assert tail_terms(2.0, 0.75, h_sq_range=(0.04, 0.04), fwhm_max=0.4) == 1  # one width: exact in one term


def test_near_field_matches_autograd_of_the_plain_expression():
    """The hand-written near field (taper on the outer columns only), its backward and the
    backward's own derivative (forward-mode products go through it) equal autograd through
    ``I [η G + (1−η) L φ]`` written out, to rounding, in float64."""
    import math

    from xrdnb.peak_shapes import _NearField, _taper

    torch.manual_seed(1)
    n, half, step, eta, n_points, rows = 50, 93, 0.01, 0.1, 2000, 3
    r_outer = 2 * 0.4583
    r_inner = r_outer - 0.75 * 0.4583
    u = (50 + 1900 * torch.rand(n, dtype=torch.float64)).requires_grad_(True)
    intensity = torch.rand(n, dtype=torch.float64).requires_grad_(True)
    fwhm = (0.32 + 0.13 * torch.rand(n, dtype=torch.float64)).requires_grad_(True)
    centre, row = torch.round(u.detach()).long(), torch.randint(0, rows, (n,))
    index = centre.unsqueeze(-1) + torch.arange(-half, half + 1) + 2 * half + 1

    def fast(u, intensity, fwhm):
        return _NearField.apply(u, intensity, fwhm, centre, row, rows, half, n_points, step, eta, r_inner, r_outer)

    def plain(u, intensity, fwhm):
        d = (torch.arange(-half, half + 1, dtype=torch.float64) - (u - centre).unsqueeze(-1)) * step
        s = (d / fwhm.unsqueeze(-1)) ** 2
        lorentz = (1 - eta) * _taper(d.abs(), r_inner, r_outer) / (1 + 4 * s)
        profile = intensity.unsqueeze(-1) * (eta * torch.exp(-4 * math.log(2) * s) + lorentz)
        padded = torch.zeros(rows, n_points + 2 * (2 * half + 1), dtype=torch.float64)
        padded = padded.index_put((row.unsqueeze(-1).expand_as(index), index), profile, accumulate=True)
        return padded[:, 2 * half + 1 : 2 * half + 1 + n_points]

    inputs = (u, intensity, fwhm)
    assert (fast(*inputs) - plain(*inputs)).abs().max() < 1e-14
    weights = torch.randn(rows, n_points, dtype=torch.float64)
    got = torch.autograd.grad((fast(*inputs) * weights).sum(), inputs)
    want = torch.autograd.grad((plain(*inputs) * weights).sum(), inputs)
    for a, b in zip(got, want, strict=True):
        assert (a - b).abs().max() <= 1e-12 * b.abs().max()
    tangents = tuple(torch.randn_like(x) for x in inputs)
    detached = tuple(x.detach() for x in inputs)
    _, jvp_fast = torch.autograd.functional.jvp(fast, detached, tangents)  # double-backward trick
    _, jvp_plain = torch.autograd.functional.jvp(plain, detached, tangents)
    assert (jvp_fast - jvp_plain).abs().max() <= 1e-12 * jvp_plain.abs().max()


def test_tail_convolution_matches_autograd_of_the_fft_expression():
    """The linear tail operator, its hand-written adjoint and the adjoint's own derivative
    (forward-mode products) equal autograd through scatter + rfft + irfft, in float64."""
    from xrdnb.peak_shapes import _TailConvolution

    torch.manual_seed(2)
    n_terms, batch, n_fft, offset, n_points, n_sticks = 3, 2, 96, 2, 80, 20
    idx = torch.randint(0, batch * n_fft, (n_sticks,))
    kernel = torch.fft.rfft(torch.randn(n_terms, n_fft, dtype=torch.float64))  # not symmetric: tests conj
    values = torch.randn(n_terms, n_sticks, dtype=torch.float64, requires_grad=True)

    def fast(v):
        return _TailConvolution.apply(v, idx, kernel, batch, n_fft, offset, n_points)

    def plain(v):
        sticks = torch.zeros(n_terms, batch * n_fft, dtype=torch.float64).index_add(1, idx, v)
        spectrum = (torch.fft.rfft(sticks.reshape(n_terms, batch, n_fft)) * kernel.unsqueeze(1)).sum(0)
        return torch.fft.irfft(spectrum, n=n_fft)[:, offset : offset + n_points]

    assert (fast(values) - plain(values)).abs().max() < 1e-13
    weights = torch.randn(batch, n_points, dtype=torch.float64)
    (got,) = torch.autograd.grad((fast(values) * weights).sum(), values)
    (want,) = torch.autograd.grad((plain(values) * weights).sum(), values)
    assert (got - want).abs().max() < 1e-12
    tangent = torch.randn_like(values)
    _, jvp_fast = torch.autograd.functional.jvp(fast, values.detach(), tangent)
    _, jvp_plain = torch.autograd.functional.jvp(plain, values.detach(), tangent)
    assert (jvp_fast - jvp_plain).abs().max() < 1e-12


def test_peaks_below_the_dtype_resolution_are_not_drawn():
    """A peak 1e-10 of the strongest is rounding noise in float32 (e.g. an extinct
    reflection's |F|²) and is skipped; float64 keeps every peak above 1e-14."""
    settings = XRDSettings()
    lo, hi = settings.fwhm_range()

    def render(dtype, weak):
        two_theta = torch.tensor([[30.0, 60.0]], dtype=dtype)
        intensity = torch.tensor([[1.0, weak]], dtype=dtype)
        fwhm = torch.tensor([[0.35, 0.4]], dtype=dtype)
        return render_fast(two_theta, intensity, fwhm, 0.0, 0.01, 9000, 0.1, hi, fwhm_min=lo)

    assert torch.equal(render(torch.float32, 1e-10), render(torch.float32, 0.0))
    assert not torch.equal(render(torch.float64, 1e-10), render(torch.float64, 0.0))
    assert not torch.equal(render(torch.float32, 1e-8), render(torch.float32, 0.0))
