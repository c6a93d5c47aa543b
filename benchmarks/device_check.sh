#!/usr/bin/env bash
# The GPU checks of the landscape issue and of issue 11 (the batched GD engine), as one script for a lent GPU machine.
#
# Prepare here (once; the wheels are git-ignored and travel with `carry`):
#     tools/device_wheels.sh
# Run there, from the repository root (device tool: carry [".whl"], timeout_s 600):
#     bash benchmarks/device_check.sh
#
# It installs the carried wheels into /tmp/site (the image already has PyTorch and the
# scientific stack), then runs, each time-boxed:
#   1. the CUDA tests of the simulator (GPU pattern = CPU pattern) and of gradient descent;
#   2. benchmarks/bench_landscape.py on the GPU: cosine slices in float32 and float64
#      (21 × 21 grid, one batch against one structure at a time; target >= 10x);
#   3. the same for a CHGNet energy slice (11 × 11);
#   4. issue 11's GPU path: the CUDA test of batched gradient descent, then the batched
#      sweep engine on the paper profile's cells of one structure (205 cells of both stages, 200 steps,
#      benchmarks/bench_sweep.py --paper-structure), with the projected wall time of the
#      whole paper profile (goal <= 10 minutes on one H200).
# Everything printed also goes to $OUT/device_check.log when $OUT is set.
#
# Local dry run of the same steps on the CPU:
#     PY=.venv/bin/python DEVICE=cpu SKIP_INSTALL=1 bash benchmarks/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
LOG=${OUT:+$OUT/device_check.log}
LOG=${LOG:-/dev/null}
export PYTHONUNBUFFERED=1

{
if [ -z "${SKIP_INSTALL:-}" ]; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "device_check: no .whl/ here: run tools/device_wheels.sh and carry .whl"; exit 2; }
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
status=0
echo "== machine"
$PY -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
if [ "$DEVICE" = cuda ]; then
    echo "== CUDA tests of the simulator and of gradient descent"
    timeout 300 $PY -m pytest -q -p no:cacheprovider tests/test_fast_path.py tests/test_optimize.py tests/test_sweep.py -k "cuda or batched" || status=1
fi
for dtype in float32 float64; do
    echo "== cosine slice, $dtype"
    timeout 120 $PY benchmarks/bench_landscape.py --device "$DEVICE" --dtype "$dtype" --n 21 --chunk 441 || status=1
done
echo "== CHGNet energy slice"
timeout 240 $PY benchmarks/bench_landscape.py --device "$DEVICE" --value energy --n 11 --chunk 121 || status=1
echo "== batched sweep engine on the paper profile's cells of one structure"
timeout 300 $PY benchmarks/bench_sweep.py --paper-structure NdAl2Cu4 --device "$DEVICE" --steps "${PAPER_STEPS:-200}" || status=1
echo "== device_check exit $status"
exit $status
} 2>&1 | tee "$LOG"
