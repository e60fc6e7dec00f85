#!/usr/bin/env bash
# The CUDA ensemble kernels on a real GPU: environment report, the kernel tests (the same
# files CI runs under the simulator, here without NUMBA_ENABLE_CUDASIM) and the GPU part of
# benchmarks/ensemble.py. Everything is written under "$OUT" (default ./gpu_run_out), one
# file per step, flushed as it goes, so a step cut short by its timeout still leaves its
# output. Every step runs whatever happened before it; the exit status is that of the tests.
#
# Run from anywhere on a fresh GPU machine with pip (PyPI may be unreachable):
#     OUT=/some/dir bash benchmarks/gpu_device_run.sh
# Knobs (environment): SKIP_PIP=1 (no installs), RUN_TESTS=0, RUN_BENCH=0, TESTS_FIRST=0
# (benchmark before the tests), BENCH_ARGS (extra arguments for benchmarks/ensemble.py,
# e.g. "--gpu-sizes 524288 8388608 --no-cpu-check"), TEST_TIMEOUT, BENCH_TIMEOUT (seconds).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_run_out}
mkdir -p "$OUT"
PY=${PYTHON:-python}
TEST_TIMEOUT=${TEST_TIMEOUT:-420}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-420}
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/steps.log"; }

log "== environment"
{
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    $PY --version
    $PY -m pip --version
} > "$OUT/environment.txt" 2>&1

if [ "${SKIP_PIP:-0}" != "1" ]; then
    log "== pip install -e . (online, then offline without build isolation)"
    {
        timeout 180 $PY -m pip install --retries 0 --timeout 10 -e . \
            || timeout 180 $PY -m pip install --no-build-isolation --no-deps -e .
    } > "$OUT/pip_paramest.txt" 2>&1
    log "   status $?"
    # Optional extras: numba-cuda (with the NVIDIA wheels carrying NVVM; the CUDA target
    # built into numba needs a CUDA toolkit otherwise) and CuPy. Continue without them.
    for spec in "numba-cuda[cu12]" "cupy-cuda12x"; do
        log "== pip install $spec (optional)"
        timeout 240 $PY -m pip install --retries 0 --timeout 10 "$spec" \
            > "$OUT/pip_$(echo "$spec" | tr -c 'A-Za-z0-9_-' '_').txt" 2>&1
        log "   status $?"
    done
fi

log "== CUDA detection"
timeout 120 $PY - > "$OUT/detect.txt" 2>&1 <<'EOF'
import importlib.metadata as md
for dist in ("numba", "numba-cuda", "cupy-cuda12x", "numpy", "jax", "jaxlib", "diffrax"):
    try:
        print(dist, md.version(dist))
    except md.PackageNotFoundError:
        print(dist, "-")
from numba import cuda
print("numba.cuda from", cuda.__file__)
print("is_available:", cuda.is_available())
try:
    cuda.detect()
except Exception as exc:  # noqa: BLE001
    print("cuda.detect():", type(exc).__name__, " ".join(str(exc).split()))
from paramest.kernels.cuda import unavailable_reason
print("paramest unavailable_reason:", unavailable_reason())
try:
    import jax
    print("jax devices:", jax.devices())
except Exception as exc:  # noqa: BLE001
    print("jax:", type(exc).__name__, exc)
EOF
log "   status $?"

run_tests() {
    log "== tests/kernels/cuda on the GPU (no simulator)"
    env -u NUMBA_ENABLE_CUDASIM timeout "$TEST_TIMEOUT" $PY -u -m pytest -q -rs \
        -p no:cacheprovider --durations=10 tests/kernels/cuda > "$OUT/tests_gpu.txt" 2>&1
    test_status=$?
    log "   status $test_status (124: timed out)"
}

run_bench() {
    log "== benchmarks/ensemble.py --gpu-only ${BENCH_ARGS:-}"
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of arguments
    env -u NUMBA_ENABLE_CUDASIM timeout "$BENCH_TIMEOUT" $PY -u benchmarks/ensemble.py \
        --gpu-only --json "$OUT/bench_gpu.json" ${BENCH_ARGS:-} > "$OUT/bench_gpu.txt" 2>&1
    log "   status $? (124: timed out)"
}

test_status=0
if [ "${TESTS_FIRST:-1}" = "1" ]; then
    [ "${RUN_TESTS:-1}" = "1" ] && run_tests
    [ "${RUN_BENCH:-1}" = "1" ] && run_bench
else
    [ "${RUN_BENCH:-1}" = "1" ] && run_bench
    [ "${RUN_TESTS:-1}" = "1" ] && run_tests
fi
log "== done; outputs in $OUT"
exit "$test_status"
