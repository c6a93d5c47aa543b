"""The benchmarks' outside reference: pymatgen's XRDCalculator plus a numpy pseudo-Voigt broadening.

Every peak on every point of the grid with the SI's Caglioti widths, normalised to a
maximum of 1: what a user without this package would run. Helper module of
``bench_simulator.py`` and ``bench_sweep.py`` (``make benchmark`` skips files named ``_*``).
"""

from __future__ import annotations

import time


def pymatgen_pattern_seconds(structures, settings, repeats: int) -> float:
    """Best of ``repeats`` wall times (s) of one pass over ``structures``."""
    import numpy as np
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    grid = settings.grid().numpy()
    calc = XRDCalculator(wavelength=settings.wavelength)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for structure in structures:
            peaks = calc.get_pattern(
                structure, scaled=False, two_theta_range=(settings.two_theta_min, settings.two_theta_max)
            )
            x0, y0 = np.asarray(peaks.x), np.asarray(peaks.y)
            tan = np.tan(np.radians(x0) / 2)
            fwhm = np.sqrt(settings.U * tan**2 + settings.V * tan + settings.W)[:, None]
            u = ((grid[None, :] - x0[:, None]) / fwhm) ** 2
            profile = settings.eta * np.exp(-4 * np.log(2) * u) + (1 - settings.eta) / (1 + 4 * u)
            pattern = y0 @ profile
            pattern /= pattern.max()
        best = min(best, time.perf_counter() - start)
    return best


if __name__ == "__main__":
    print(__doc__)
