#!/usr/bin/env python3
"""Per-entry time of deep CNN-GAP kernels (NNGP + NTK, float64): `emergent kernel --x1 A --x2 B`
(all entries off-diagonal) against the vectorized numpy recursion of kernels_numpy.py on the same
pairs, in one run. Reports wall AND CPU time per entry (the machine may be shared), and the
projected core-hours of a full CIFAR-10 Gram (60,000², symmetric: 1.8e9 entries).

  cnn_gap_bench.py --emergent BUILD/apps/emergent [--baseline OLD/apps/emergent] \
      [--workload nt21] [--pairs 2] [--threads 1,2] [--numpy-pairs 1]

Workloads: nt21 = Neural Tangents' README benchmark, 21 × [conv(3x3, same), relu], gap, dense,
32×32×3 (their published 258.55 ms/entry float64 CPU >56 cores, 6.21 ms V100 float64);
myrtle5/7/10 = the Myrtle kernels (docs/benchmarks.md), numpy via its all-pixel-pairs avgpool
recursion. The per-entry figures include each process's start and, with avgpool, each point's
run with itself (its pixel variances after a pool): 2 + 2 images = 4 entries + 4 self runs.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import kernels_numpy as knp  # noqa: E402

def myrtle(groups):
    """Myrtle-5/7/10 as Neural Tangents' notebook builds them (Shankar et al. 2020): 3×3 SAME convs
    with W = √2, avgpool 2×2 stride 2 after the first two groups and three times after the last."""
    conv = "conv(1, 3x3, w=1.4142135623730951) relu"
    pool = "avgpool(2x2, stride=2)"
    a, b, c = groups
    return " ".join([conv] * a + [pool] + [conv] * b + [pool] + [conv] * c + [pool] * 3 +
                    ["flatten dense(10, w=1.4142135623730951)"])


WORKLOADS = {
    "nt21": (" ".join(["conv(64, 3x3) relu"] * 21) + " gap dense(1)", (32, 32, 3)),
    "myrtle5": (myrtle((2, 1, 1)), (32, 32, 3)),
    "myrtle7": (myrtle((2, 2, 2)), (32, 32, 3)),
    "myrtle10": (myrtle((3, 3, 3)), (32, 32, 3)),
}
CIFAR_ENTRIES = 60000 * 60001 / 2


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_ours(binary, spec, a, b, threads, out):
    cmd = [binary, "kernel", "--arch", spec, "--x1", a, "--x2", b, "--nngp", out + "/K.npy", "--ntk",
           out + "/T.npy", "--threads", str(threads), "-q"]
    c0, w0 = children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - w0, children_cpu() - c0, " ".join(
        f"'{x}'" if " " in x else x for x in cmd)


def run_numpy(spec, X, I, J):
    layers = knp.parse_spec(spec)
    spatial, readout, tail = knp.split_stages(layers)
    pooled = any(layer[0] == "avgpool" for layer in spatial)
    c0, w0 = time.process_time(), time.perf_counter()
    points = sorted(set(I) | set(J))
    Xp = X[points]  # the records (pixel variances) of the images used, as ours computes them
    where = {p: k for k, p in enumerate(points)}
    Qs = knp.pooled_variances(Xp, spatial) if pooled else knp.pixel_variances(Xp, spatial)
    pairs = knp.pooled_pairs if pooled else knp.cnn_pairs
    out = []
    for i, j in zip(I, J):  # one pair per call: a (1, 32,32,32,32) array is 8 MiB per buffer
        out.append(pairs(Xp, np.array([where[i]]), np.array([where[j]]), spatial, readout, tail, Qs))
    return time.perf_counter() - w0, time.process_time() - c0, out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emergent", required=True)
    p.add_argument("--baseline", help="an older emergent binary, timed the same way")
    p.add_argument("--workload", default="nt21", choices=sorted(WORKLOADS))
    p.add_argument("--pairs", type=int, default=2, help="images in x1 and in x2 (pairs² entries)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--numpy-pairs", type=int, default=1, help="off-diagonal pairs numpy computes")
    args = p.parse_args()
    spec, (H, W, C) = WORKLOADS[args.workload]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2 * args.pairs, H, W, C))
    entries = args.pairs * args.pairs
    print(f"workload {args.workload}: {spec}")
    print(f"load average at start: {os.getloadavg()}")
    print("| implementation | threads | entries | wall s | CPU s | wall ms/entry | CPU ms/entry | "
          "CIFAR-10 Gram core-hours (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    cmd = ours_k = ours_t = None
    with tempfile.TemporaryDirectory() as d:
        np.save(d + "/A.npy", X[:args.pairs])
        np.save(d + "/B.npy", X[args.pairs:])
        for name, binary in (("emergent", args.emergent), ("emergent (before)", args.baseline)):
            if not binary:
                continue
            for t in (int(v) for v in args.threads.split(",")):
                wall, cpu, cmd = run_ours(binary, spec, d + "/A.npy", d + "/B.npy", t, d)
                print(f"| {name} | {t} | {entries} | {wall:.3g} | {cpu:.3g} | {1e3 * wall / entries:.4g} | "
                      f"{1e3 * cpu / entries:.4g} | {cpu / entries * CIFAR_ENTRIES / 3600:.4g} |", flush=True)
                if binary == args.emergent:  # numpy is checked against ours
                    ours_k, ours_t = np.load(d + "/K.npy"), np.load(d + "/T.npy")
        n = args.numpy_pairs
    if n > 0:
        I = [k % args.pairs for k in range(n)]
        J = [args.pairs + (k // args.pairs) % args.pairs for k in range(n)]
        wall, cpu, out = run_numpy(spec, X, I, J)
        print(f"| numpy (kernels_numpy.py, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '?')}) "
              f"| — | {n} | {wall:.3g} | {cpu:.3g} | {1e3 * wall / n:.4g} | {1e3 * cpu / n:.4g} | "
              f"{cpu / n * CIFAR_ENTRIES / 3600:.4g} |")
        # Agreement: the same entries from both (the last emergent run), first output column.
        rk = max(abs(ours_k.reshape(args.pairs, args.pairs, -1)[i, j - args.pairs, 0] - s[0]) / abs(s[0])
                 for (i, j), (s, t) in zip(zip(I, J), out))
        rt = max(abs(ours_t.reshape(args.pairs, args.pairs, -1)[i, j - args.pairs, 0] - t[0]) / abs(t[0])
                 for (i, j), (s, t) in zip(zip(I, J), out))
        print(f"agreement with numpy on those {n} entries: NNGP max rel. diff {rk:.2g}, NTK {rt:.2g}")
    print(f"load average at end: {os.getloadavg()}")
    print(f"command (ours): {cmd}")


if __name__ == "__main__":
    main()
