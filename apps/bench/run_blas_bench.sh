#!/usr/bin/env bash
# LAPACK/BLAS and out-of-core benchmarks (docs/benchmarks.md, "Closed form on LAPACK" and
# "Out-of-core Gram matrices"), side by side with numpy/OpenBLAS in one run.
#
#   flock /work/bench.lock apps/bench/run_blas_bench.sh BUILD_DIR [SCRATCH_DIR]
#
# Environment: THREADS (2), FLOW_N (4000; 0 skips), OOC_N (40000; 0 skips), MEM_N (20000; 0 skips),
# MEM_CAPS ("2G 8G": the caps of the MEM_N runs; 8G holds N = 20 000 in one band), REPEAT (1: runs
# of the MLP Gram command), BASELINE (another build directory whose command runs alongside).
# The out-of-core runs write 2 × 8·N² bytes into SCRATCH_DIR (default /tmp) and delete them.
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [SCRATCH_DIR]}
scratch=${2:-/tmp}/emergent_blas_bench_$$
threads=${THREADS:-2}
python=/usr/bin/python3
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE
# /usr/bin/time -v, reduced to one line: wall, user + sys CPU, peak RSS.
timed() {
  local log
  log=$(mktemp)
  local rc=0
  /usr/bin/time -v -o "$log" "$@" || rc=$?
  awk -F': ' '/Elapsed \(wall clock\)/ {w=$2} /User time/ {u=$2} /System time/ {s=$2}
              /Maximum resident set size/ {m=$2}
              END {printf "TIME wall=%s user=%s sys=%s maxrss_kb=%s\n", w, u, s, m}' "$log"
  rm -f "$log"
  return $rc
}
echo "DATE $(date -u '+%Y-%m-%d %H:%M UTC') LOAD $(cut -d' ' -f1-3 /proc/loadavg) CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

if [[ ${FLOW_N:-4000} != 0 ]]; then
echo "== closed form: GradientFlow (LAPACK) vs np.linalg.eigh of the same Θ(X,X)"
timed "$build/apps/bench_gradient_flow" --n "${FLOW_N:-4000}" --test 200 --times 50 --threads "$threads" \
  --no-eigen --dump "$scratch/theta.npy"
timed "$python" "$(dirname "$0")/eigh_numpy.py" "$scratch/theta.npy" 1
rm -f "$scratch/theta.npy"
fi

echo "== MLP Gram 3000 x 784, depth 3 relu: emergent kernel (whole command) vs numpy X @ X.T"
"$python" -c "import numpy as np; np.save('$scratch/x784.npy', np.random.default_rng(0).standard_normal((3000, 784)))"
arch='dense(512) relu dense(512) relu dense(512) relu dense(1)'
for ((rep = 0; rep < ${REPEAT:-1}; ++rep)); do
  timed "$build/apps/emergent" kernel --arch "$arch" --x1 "$scratch/x784.npy" --nngp "$scratch/K.npy" \
    --ntk "$scratch/T.npy" --threads "$threads"
  if [[ -n ${BASELINE:-} ]]; then  # another build's emergent on the same inputs, same bytes expected
    echo "-- baseline $BASELINE"
    timed "$BASELINE/apps/emergent" kernel --arch "$arch" --x1 "$scratch/x784.npy" --nngp "$scratch/K0.npy" \
      --ntk "$scratch/T0.npy" --threads "$threads"
    if cmp -s "$scratch/K.npy" "$scratch/K0.npy" && cmp -s "$scratch/T.npy" "$scratch/T0.npy"; then
      echo "SAME BYTES as baseline"
    else  # a baseline with another summation order for Σ⁰: how far apart, relative to the largest entry
      "$python" -c "import numpy as np; r = lambda a, b: float(np.abs(np.load(a) - np.load(b)).max() / np.abs(np.load(b)).max())
print('BYTES DIFFER from baseline: max rel. diff NNGP %.3g NTK %.3g' % (r('$scratch/K.npy', '$scratch/K0.npy'), r('$scratch/T.npy', '$scratch/T0.npy')))"
    fi
  fi
done
"$python" - "$scratch/x784.npy" <<'PY'
import resource, sys, time
import numpy as np
x = np.load(sys.argv[1])
best = 1e300
for _ in range(3):
    c0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    g = x @ x.T
    t = time.perf_counter() - t0; c1 = resource.getrusage(resource.RUSAGE_SELF)
    if t < best: best, cpu = t, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
print(f"RESULT impl=numpy_gemm_xxT n=3000 d=784 seconds={best:.3f} cpu_seconds={cpu:.3f}")
PY
rm -f "$scratch"/*.npy

gram() {  # N CAP
  "$python" -c "import numpy as np; np.save('$scratch/x.npy', np.random.default_rng(1).standard_normal(($1, 64)))"
  echo "-- N=$1 --memory-cap $2"
  timed "$build/apps/emergent" kernel --arch 'dense(512) relu dense(512) relu dense(1)' --x1 "$scratch/x.npy" \
    --nngp "$scratch/K.npy" --ntk "$scratch/T.npy" --memory-cap "$2" --threads "$threads" 2>&1
  "$python" -c "import numpy as np; k = np.load('$scratch/T.npy', mmap_mode='r'); print('mmap-opened', k.shape, k.dtype, float(k[-1, -1]))"
  rm -f "$scratch"/*.npy
}
echo "== out-of-core MLP NNGP + NTK (d = 64)"
if [[ ${MEM_N:-20000} != 0 ]]; then for cap in ${MEM_CAPS:-2G 8G}; do gram "${MEM_N:-20000}" "$cap"; done; fi
if [[ ${OOC_N:-40000} != 0 ]]; then
  need=$(( 2 * 8 * ${OOC_N:-40000} * ${OOC_N:-40000} / 1024 + 1048576 ))  # KiB: both outputs + 1 GiB
  free_kb=$(df -Pk "$scratch" | awk 'NR == 2 {print $4}')
  echo "DISK free=${free_kb} KiB needed=${need} KiB in $scratch"
  if (( free_kb > need )); then gram "${OOC_N:-40000}" 2G; else echo "SKIP out-of-core run: not enough disk"; fi
fi
