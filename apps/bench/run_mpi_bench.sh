#!/usr/bin/env bash
# Strong scaling of `mpirun -np P emergent kernel|predict` (docs/benchmarks.md, "MPI"): the
# single-process command next to P = 1, 2 ranks (one OpenMP/BLAS thread per rank), N = 8000.
# Usage: apps/bench/run_mpi_bench.sh BUILD_DIR SCRATCH_DIR STEP
#   STEP: kernel (the four kernel runs), predict-serial, predict-1, predict-2 (one run each), or all.
#   N=8000 D=784 M=500 change the sizes; PYTHON (default python3) needs numpy, for the inputs.
# Run each step under `flock /work/bench.lock` on a shared machine. Prints one line per run: wall s,
# user+sys CPU s (mpirun and every rank), the load average before and after, and the summary line.
set -euo pipefail
build=$(realpath "$1"); scratch=$2; step=${3:-all}; mkdir -p "$scratch"; cd "$scratch"
N=${N:-8000} D=${D:-784} M=${M:-500} PYTHON=${PYTHON:-python3}
emergent="$build/apps/emergent"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
if [ ! -f "x_$N.npy" ]; then
  "$PYTHON" - "$N" "$D" "$M" <<'PY'
import sys, numpy as np
n, d, m = map(int, sys.argv[1:])
rng = np.random.default_rng(0)
np.save(f"x_{n}.npy", rng.standard_normal((n, d)) / np.sqrt(d))
np.save(f"y_{n}.npy", rng.standard_normal((n, 1)))
np.save(f"z_{n}.npy", rng.standard_normal((m, d)) / np.sqrt(d))
PY
fi
arch='dense(512, b=0.1) relu dense(512) relu dense(1)'
load() { cut -d' ' -f1-3 /proc/loadavg; }
timed() {  # label, command...
  local label=$1; shift
  local before; before=$(load)
  /usr/bin/time -f "%e %U %S" -o time.txt "$@" > /dev/null 2> log.txt || { cat log.txt; exit 1; }
  read -r wall user sys < time.txt
  echo "$label: wall $wall s, CPU $(echo "$user + $sys" | bc) s (user $user, sys $sys), load $before -> $(load)   ($(tail -1 log.txt | cut -c1-200))"
}
kernel=(kernel --arch "$arch" --x1 "x_$N.npy" --nngp K.npy --ntk T.npy)
predict=(predict --arch "$arch" --train-x "x_$N.npy" --train-y "y_$N.npy" --test-x "z_$N.npy" --times 0,10,100,inf --mean m.npy --cov c.npy)
case $step in
  kernel|all)
    timed "kernel N=$N, one process, --threads 2" env OMP_NUM_THREADS=2 "$emergent" "${kernel[@]}"
    cp T.npy T_serial.npy
    timed "kernel N=$N, one process, --threads 1" env OMP_NUM_THREADS=1 "$emergent" "${kernel[@]}"
    for p in 1 2; do
      timed "kernel N=$N, mpirun -np $p (1 thread per rank)" env OMP_NUM_THREADS=1 mpirun --oversubscribe -np $p "$emergent" "${kernel[@]}"
      cmp T.npy T_serial.npy && echo "  (bytes equal to the single-process file)"
    done
    rm -f K.npy T.npy T_serial.npy ;;&
  predict-serial|all)
    timed "predict N=$N M=$M, one process, --threads 2" env OMP_NUM_THREADS=2 "$emergent" "${predict[@]}" ;;&
  predict-1|all)
    timed "predict N=$N M=$M, mpirun -np 1 (1 thread per rank)" env OMP_NUM_THREADS=1 mpirun --oversubscribe -np 1 "$emergent" "${predict[@]}" ;;&
  predict-2|all)
    timed "predict N=$N M=$M, mpirun -np 2 (1 thread per rank)" env OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 "$emergent" "${predict[@]}" ;;
  kernel|predict-serial|predict-1) ;;
  *) echo "unknown step '$step': expected kernel, predict-serial, predict-1, predict-2 or all" >&2; exit 2 ;;
esac
