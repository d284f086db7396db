"""numpy's side of bench_gradient_flow: np.linalg.eigh (LAPACK dsyevd, OpenBLAS) of the same Θ(X,X).

    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 /usr/bin/python3 apps/bench/eigh_numpy.py theta.npy [repeat]
"""
import resource
import sys
import time

import numpy as np

a = np.load(sys.argv[1])
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 1
best, best_cpu = 1e300, 1e300
for _ in range(repeat):
    c0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    w, v = np.linalg.eigh(a)
    t = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    best = min(best, t)
    best_cpu = min(best_cpu, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime))
print(f"RESULT impl=numpy_eigh n={a.shape[0]} seconds={best:.3f} cpu_seconds={best_cpu:.3f} lmax={w[-1]:.6g}")
