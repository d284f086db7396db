#!/usr/bin/env python3
"""The Myrtle kernels (Shankar et al. 2020, "Neural Kernels Without Tangents") as Neural Tangents'
notebook myrtle_kernel_with_neural_tangents.ipynb builds them, against emergent's spec of the same
network (docs/benchmarks.md): NNGP and NTK on a few 32×32×3 images, max relative difference, and
the wall time of both. Run in the venv of setup_nt_venv.sh:
    /work/venv-nt/bin/python python/compare/myrtle.py --cli build/apps/emergent [--depths 5,7,10] [--n 2]
"""
import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nt_shim import import_neural_tangents  # noqa: E402

nt = import_neural_tangents()
stax = nt.stax
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

# conv+relu blocks before the 1st, 2nd and 3rd pooling (Shankar et al. 2020, Table 5)
GROUPS = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}
W = math.sqrt(2.0)


def myrtle_spec(depth, channels=1):
    conv = f"conv({channels}, 3x3, w={W!r}) relu"
    pool = "avgpool(2x2, stride=2)"
    a, b, c = GROUPS[depth]
    parts = [conv] * a + [pool] + [conv] * b + [pool] + [conv] * c + [pool] * 3 + [f"flatten dense(10, w={W!r})"]
    return " ".join(parts)


def myrtle_nt(depth):
    conv = lambda: stax.Conv(1, (3, 3), W_std=W, b_std=0.0, padding="SAME")  # noqa: E731
    pool = lambda: stax.AvgPool((2, 2), strides=(2, 2))  # noqa: E731
    a, b, c = GROUPS[depth]
    layers = []
    for count, pools in ((a, 1), (b, 1), (c, 3)):
        for _ in range(count):
            layers += [conv(), stax.Relu()]
        layers += [pool() for _ in range(pools)]
    layers += [stax.Flatten(), stax.Dense(10, W_std=W, b_std=0.0)]
    return stax.serial(*layers)[2]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cli", required=True, help="the emergent binary")
    p.add_argument("--depths", default="5,7,10")
    p.add_argument("--n", type=int, default=2, help="images (the Gram is n × n)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, 32, 32, 3))
    d = tempfile.mkdtemp(prefix="myrtle_")
    np.save(os.path.join(d, "x.npy"), x)
    for depth in map(int, args.depths.split(",")):
        spec = myrtle_spec(depth)
        start = time.perf_counter()
        child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([args.cli, "kernel", "--arch", spec, "--x1", os.path.join(d, "x.npy"), "--nngp",
                        os.path.join(d, "K.npy"), "--ntk", os.path.join(d, "T.npy"), "--threads", str(args.threads),
                        "-q"], check=True)
        ours_s = time.perf_counter() - start
        child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
        k, t = np.load(os.path.join(d, "K.npy")), np.load(os.path.join(d, "T.npy"))
        kernel_fn = jax.jit(myrtle_nt(depth), static_argnums=(2,))
        kernel_fn(jnp.asarray(x), None, ("nngp", "ntk")).nngp.block_until_ready()  # compile
        start, cpu0 = time.perf_counter(), time.process_time()
        theirs = kernel_fn(jnp.asarray(x), None, ("nngp", "ntk"))
        theirs.ntk.block_until_ready()
        nt_s, nt_cpu = time.perf_counter() - start, time.process_time() - cpu0
        rel = lambda a, b: float(np.max(np.abs(a - np.asarray(b))) / np.max(np.abs(np.asarray(b))))  # noqa: E731
        pairs = args.n * (args.n + 1) // 2
        # Off the diagonal the two agree to round-off; on K(x, x), Θ(x, x) NT's ReLU duals carry
        # θ ≈ √ε instead of 0 (docs/conventions.md §6), a 1e-11..1e-8 relative difference.
        off = ~np.eye(args.n, dtype=bool)
        diag = lambda a: np.diag(np.asarray(a))  # noqa: E731
        agree = (f"off-diagonal NNGP {rel(k[off], np.asarray(theirs.nngp)[off]):.1e}, NTK "
                 f"{rel(t[off], np.asarray(theirs.ntk)[off]):.1e}; " if args.n > 1 else "")
        print(f"Myrtle-{depth}: {agree}diagonal NNGP {rel(diag(k), diag(theirs.nngp)):.1e}, NTK "
              f"{rel(diag(t), diag(theirs.ntk)):.1e} relative; "
              f"emergent wall/CPU {ours_s:.2f}/{ours_cpu:.2f} s for the {pairs} entries of one triangle "
              f"({1e3 * ours_cpu / pairs:.0f} ms CPU per entry); NT (jit, after compile) wall/CPU {nt_s:.2f}/{nt_cpu:.2f} s "
              f"for the full {args.n}x{args.n} ({1e3 * nt_cpu / args.n ** 2:.0f} ms CPU per entry); spec: {spec}",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
