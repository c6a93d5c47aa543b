"""Validate the simulator against pymatgen's XRDCalculator on all MP-20 rows in data/mp20-subset.csv.

For every structure, every pymatgen peak must be found at 2θ within 1e-6° with scaled
intensity within 1e-4 (of 100), in float64, with the same wavelength and no Debye–Waller
factor; the peak counts must agree too. Prints a summary and the worst cases.

    python benchmarks/validate_pymatgen.py [--limit N] [--wavelength 1.54184]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Structure

    from xrdnb import XRDSettings, crystal_from_structure
    from xrdnb.peaks import peak_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=ROOT / "data" / "mp20-subset.csv")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--wavelength", type=float, default=1.54184)
    args = parser.parse_args(argv)

    with open(args.csv, newline="") as handle:
        rows = list(csv.DictReader(handle))[: args.limit]
    calc = XRDCalculator(wavelength=args.wavelength)
    settings = XRDSettings(wavelength=args.wavelength)
    worst_t, worst_i, failures, n_peaks = [], [], [], 0
    t_pmg = t_ours = 0.0
    for row in rows:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(row["cif"], fmt="cif")
        start = time.perf_counter()
        reference = calc.get_pattern(structure)
        t_pmg += time.perf_counter() - start
        start = time.perf_counter()
        ours = peak_table(crystal_from_structure(structure), settings)
        t_ours += time.perf_counter() - start
        x, y = ours.two_theta.to_numpy(), ours.intensity_scaled.to_numpy()
        j = np.abs(x[None, :] - np.asarray(reference.x)[:, None]).argmin(axis=1)
        dt = float(np.abs(x[j] - reference.x).max())
        di = float(np.abs(y[j] - reference.y).max())
        n_peaks += len(reference.x)
        worst_t.append((dt, row["material_id"]))
        worst_i.append((di, row["material_id"]))
        if dt > 1e-6 or di > 1e-4 or len(x) != len(reference.x):
            failures.append((row["material_id"], row["pretty_formula"], len(x), len(reference.x), dt, di))
    worst_t.sort(reverse=True)
    worst_i.sort(reverse=True)
    print(f"structures: {len(rows)}, pymatgen peaks compared: {n_peaks}")
    print(
        f"max |Δ2θ| = {worst_t[0][0]:.3e}° ({worst_t[0][1]}), max |ΔI| = {worst_i[0][0]:.3e} of 100 ({worst_i[0][1]})"
    )
    print(f"time: pymatgen {t_pmg:.1f} s, xrdnb {t_ours:.1f} s")
    print(f"failures (Δ2θ > 1e-6°, ΔI > 1e-4 or different peak count): {len(failures)}")
    for f in failures[:20]:
        print("  ", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
