#!/usr/bin/env bash
# Download, into .whl/, the wheels that benchmarks/device_check.sh needs on a GPU machine
# whose image already has PyTorch, numpy, scipy, pandas, matplotlib and friends (Python 3.12,
# x86-64) but not pymatgen, ASE or CHGNet. Versions follow this machine's .venv, so the
# device runs what the tests ran here. Nothing else is fetched (--no-deps); plotly, which
# pymatgen needs only for plotting, and bibtexparser (no wheel; provenance records only) are
# left out, to stay within the 64 MiB the device carries; CHGNet's nvidia-ml-py3 (no wheel)
# is served by the image's nvidia-ml-py, which has the same pynvml module.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
PACKAGES="pymatgen pymatgen-core monty spglib ruamel.yaml uncertainties orjson palettable ase chgnet"
rm -rf .whl && mkdir -p .whl
for name in $PACKAGES; do
    version=$($PIP show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    [ -n "$version" ] || { echo "device_wheels: $name is not installed in .venv (run make .venv/.installed)" >&2; exit 1; }
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_34_x86_64 --platform any -d .whl "$name==$version" 2> >(grep -v "^WARNING: Location" >&2) \
        || { echo "device_wheels: no cp312 x86-64 wheel of $name==$version" >&2; exit 1; }
done
du -sh .whl
