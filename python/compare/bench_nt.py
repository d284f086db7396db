#!/usr/bin/env python3
"""Speed of emergent.kernel against Neural Tangents 0.6.5 on the same inputs, same process,
float64, NNGP + NTK, 2 threads. Workloads of docs/benchmarks.md ("Kernels"):
  (a) MLP 3×[dense(512), relu], dense(1), 3000 × 784, x against itself
  (c) CNN 3×[conv(64, 3x3, circular), relu], gap, dense(1), 48 × 8×8×1, x against itself
  (d) CNN 3×[conv(64, 3x3, same), relu], gap, dense(1), 32 × 28×28×1, x against itself
  (d4) the same as (d) on x1 (4) × x2 (4) entries, NT jitted without nt.batch
  (e) NT's 21-layer CNN-GAP: 21×[conv 3x3 same, relu], gap, dense(1), 32×32×3, x1 (2) × x2 (2)
NT's kernel_fn is jitted (jax.jit, get static); its first call (compile + run) and its best run are
reported apart. NT runs the pixel-pair workloads through nt.batch (so that the (N, N, P, P)
covariances fit in memory; batch sizes below), as NT's documentation recommends for CNN-GAP.
Run (see docs/benchmarks.md):
  flock /work/bench.lock env OMP_NUM_THREADS=2 XLA_FLAGS="--xla_force_host_platform_device_count=1" \
      /work/venv-nt/bin/python python/compare/bench_nt.py [--cases a,c,d,e] [--repeat 3]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nt_shim import import_neural_tangents  # noqa: E402

nt = import_neural_tangents()
stax = nt.stax
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import emergent  # noqa: E402


def mlp():
    spec = "dense(512) relu dense(512) relu dense(512) relu dense(1)"
    layers = [stax.Dense(512), stax.Relu()] * 3 + [stax.Dense(1)]
    return spec, layers


def cnn(depth, padding, readout="gap"):
    ours = {"SAME": "same", "CIRCULAR": "circular"}[padding]
    spec = " ".join([f"conv(64, 3x3, padding={ours}) relu"] * depth) + f" {readout} dense(1)"
    layers = [stax.Conv(64, (3, 3), padding=padding), stax.Relu()] * depth + [stax.GlobalAvgPool(), stax.Dense(1)]
    return spec, layers


CASES = {
    # name: (description, (spec, layers), x1 shape, x2 shape or None, NT batch size or 0)
    "a": ("MLP, 3000 × 784", mlp(), (3000, 784), None, 0),
    "c": ("CNN-GAP circular, 48 × 8×8×1", cnn(3, "CIRCULAR"), (48, 8, 8, 1), None, 0),
    "d": ("CNN-GAP same, 32 × 28×28×1", cnn(3, "SAME"), (32, 28, 28, 1), None, 4),
    # (d) on 4 × 4 entries: NT's jitted kernel_fn without nt.batch fits in memory and gives a per-entry
    # time that (d) itself (32 × 32 entries, batched) did not deliver within 40 minutes.
    "d4": ("CNN-GAP same, 28×28×1, 4 × 4 entries", cnn(3, "SAME"), (4, 28, 28, 1), (4, 28, 28, 1), 0),
    "e": ("NT 21-layer CNN-GAP, 32×32×3, 2 × 2 entries", cnn(21, "SAME"), (2, 32, 32, 3), (2, 32, 32, 3), 0),
}


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="a,c,d,e")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print(f"jax {jax.__version__} ({jax.devices()[0].platform}), neural_tangents {nt.__version__}, "
          f"emergent {emergent.__version__}; float64; emergent threads=2")
    rng = np.random.default_rng(0)
    rows = []
    for name in args.cases.split(","):
        desc, (spec, layers), s1, s2, batch = CASES[name]
        x1 = rng.standard_normal(s1)
        x2 = None if s2 is None else rng.standard_normal(s2)
        entries = s1[0] * (s1[0] if s2 is None else s2[0])
        _, _, kernel_fn = stax.serial(*layers)
        if batch:
            kernel_fn = nt.batch(kernel_fn, batch_size=batch, store_on_device=False)
        else:
            kernel_fn = jax.jit(kernel_fn, static_argnames="get")
        j1, j2 = jnp.asarray(x1), None if x2 is None else jnp.asarray(x2)

        def run_nt():
            k = kernel_fn(j1, j2, ("nngp", "ntk"))
            return np.asarray(k.nngp), np.asarray(k.ntk)

        def run_ours():
            return emergent.kernel(spec, x1, x2, threads=2)

        (nt_k, first_wall, first_cpu) = timed(run_nt)
        nt_best = min((timed(run_nt)[1:] for _ in range(args.repeat)), key=lambda t: t[0])
        ours_k, _, _ = timed(run_ours)
        ours_best = min((timed(run_ours)[1:] for _ in range(args.repeat)), key=lambda t: t[0])
        diff = max(np.max(np.abs(ours_k.nngp - nt_k[0])) / np.max(np.abs(nt_k[0])),
                   np.max(np.abs(ours_k.ntk - nt_k[1])) / np.max(np.abs(nt_k[1])))
        row = (name, desc, entries, ours_best, nt_best, first_wall - nt_best[0], diff)
        rows.append(row)
        print(f"({name}) {desc}: {entries} entries | emergent {ours_best[0]:.3f} s wall, {ours_best[1]:.3f} s CPU | "
              f"NT {nt_best[0]:.3f} s wall, {nt_best[1]:.3f} s CPU (+ {first_wall - nt_best[0]:.2f} s JIT on the first "
              f"call) | NT/emergent {nt_best[0] / ours_best[0]:.2f}× | per entry: emergent "
              f"{1e3 * ours_best[0] / entries:.4g} ms, NT {1e3 * nt_best[0] / entries:.4g} ms | max rel. diff {diff:.1e}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
