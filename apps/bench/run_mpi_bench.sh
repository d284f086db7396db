#!/usr/bin/env bash
# Strong scaling of `mpirun -np P emergent kernel|predict` (docs/benchmarks.md, "MPI"): the
# single-process command next to P = 1, 2 ranks (one OpenMP/BLAS thread per rank), N = 8000.
# Usage: apps/bench/run_mpi_bench.sh BUILD_DIR SCRATCH_DIR   (N=8000 D=784 M=500 to change sizes)
# Needs /usr/bin/python3 with numpy for the inputs. Prints one line per run: wall s, user+sys CPU s.
set -euo pipefail
build=$(realpath "$1"); scratch=$2; mkdir -p "$scratch"; cd "$scratch"
N=${N:-8000} D=${D:-784} M=${M:-500}
emergent="$build/apps/emergent"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
/usr/bin/python3 - "$N" "$D" "$M" <<'PY'
import sys, numpy as np
n, d, m = map(int, sys.argv[1:])
rng = np.random.default_rng(0)
np.save("x.npy", rng.standard_normal((n, d)) / np.sqrt(d))
np.save("y.npy", rng.standard_normal((n, 1)))
np.save("z.npy", rng.standard_normal((m, d)) / np.sqrt(d))
PY
arch='dense(512, b=0.1) relu dense(512) relu dense(1)'
timed() {  # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %U %S" -o time.txt "$@" > /dev/null 2> log.txt || { cat log.txt; exit 1; }
  read -r wall user sys < time.txt
  echo "$label: wall $wall s, CPU $(echo "$user + $sys" | bc) s   ($(tail -1 log.txt | cut -c1-160))"
}
uptime
kernel=(kernel --arch "$arch" --x1 x.npy --nngp K.npy --ntk T.npy)
timed "kernel N=$N, one process, --threads 2" env OMP_NUM_THREADS=2 "$emergent" "${kernel[@]}"
cp T.npy T_serial.npy
timed "kernel N=$N, one process, --threads 1" env OMP_NUM_THREADS=1 "$emergent" "${kernel[@]}"
for p in 1 2; do
  timed "kernel N=$N, mpirun -np $p (1 thread per rank)" env OMP_NUM_THREADS=1 mpirun --oversubscribe -np $p "$emergent" "${kernel[@]}"
  cmp T.npy T_serial.npy && echo "  (bytes equal to the single-process file)"
done
rm -f K.npy T.npy T_serial.npy
predict=(predict --arch "$arch" --train-x x.npy --train-y y.npy --test-x z.npy --times 0,10,100,inf --mean m.npy --cov c.npy)
timed "predict N=$N M=$M, one process, --threads 2" env OMP_NUM_THREADS=2 "$emergent" "${predict[@]}"
for p in 1 2; do
  timed "predict N=$N M=$M, mpirun -np $p (1 thread per rank)" env OMP_NUM_THREADS=1 mpirun --oversubscribe -np $p "$emergent" "${predict[@]}"
done
uptime
