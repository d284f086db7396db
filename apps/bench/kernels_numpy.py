#!/usr/bin/env python3
"""Vectorized numpy baseline for apps/bench/bench_kernels.cpp (issue 2), and an independent
cross-check of our kernel recursions (docs/conventions.md §2, Neural Tangents' 'ntk' parameterization).

The recursions are written the way a numpy user would: the MLP on whole N×N matrices (one
X·Xᵀ GEMM, then elementwise passes), the CNNs batched over chunks of input pairs (i ≤ j) and
over all pixels (flatten: the pixel diagonal, (K, H, W); gap: all pixel pairs, (K, H, W, H, W)),
with the conv window sum done separably by slicing a padded array.

Usage:
  kernels_numpy.py --cases DIR/cases.tsv --check          # compare with our kernels, print CHECK lines
  kernels_numpy.py --cases DIR/cases.tsv --bench a,c     # time cases, print RESULT lines
  kernels_numpy.py --blas                                 # print which BLAS numpy runs
"""
import argparse
import ctypes
import re
import sys
import time

import numpy as np

TWO_PI = 2.0 * np.pi


# ---- architecture spec (docs/conventions.md §1), the subset the benchmark uses -------------------------

def parse_spec(spec):
    layers = []
    for m in re.finditer(r"([a-z_]+)\s*(?:\(([^)]*)\))?", spec):
        name, args = m.group(1), m.group(2)
        pos, kw = [], {}
        for a in (args.split(",") if args else []):
            a = a.strip()
            if "=" in a:
                k, v = a.split("=", 1)
                kw[k.strip()] = v.strip()
            elif a:
                pos.append(a)
        w2 = float(kw.get("w", 1.0)) ** 2
        b2 = float(kw.get("b", 0.0)) ** 2
        if name == "dense":
            layers.append(("dense", w2, b2))
        elif name == "conv":
            fh, fw = (int(v) for v in pos[1].lower().split("x"))
            layers.append(("conv", fh, fw, kw.get("padding", "same"), w2, b2))
        elif name == "avgpool":
            kh, kwin = (int(v) for v in pos[0].lower().split("x")) if "x" in pos[0] else (int(pos[0]),) * 2
            st = kw.get("stride", "1").lower()
            sh, sw = (int(v) for v in st.split("x")) if "x" in st else (int(st),) * 2
            layers.append(("avgpool", kh, kwin, sh, sw, kw.get("padding", "valid")))
        elif name in ("relu", "flatten", "gap"):
            layers.append((name,))
        else:
            raise NotImplementedError(f"kernels_numpy.py: layer '{name}' is not implemented here")
    return layers


def split_stages(layers):
    """(spatial layers before the readout, readout or None, tail layers after it)."""
    for k, layer in enumerate(layers):
        if layer[0] in ("flatten", "gap"):
            return layers[:k], layer[0], layers[k + 1:]
    return [], None, layers


# ---- the recursions ------------------------------------------------------------------------------

def relu_dual_(S, T, q1, q2):
    """In place: S ← E[relu(u)relu(v)], T ← T·E[relu'(u)relu'(v)] (arc-cosine kernel, Cho & Saul
    2009), with (u, v) ~ N(0, [[q1, S], [S, q2]]); q1, q2 broadcast against S."""
    nrm = np.sqrt(q1 * q2)
    np.maximum(nrm, 1e-300, out=nrm)  # zero variance: cos = 0, θ = π/2 (as the library)
    cos = np.divide(S, nrm)
    np.clip(cos, -1.0, 1.0, out=cos)
    theta = np.arccos(cos)
    np.subtract(np.pi, theta, out=theta)  # π − θ
    T *= theta
    T *= 1.0 / TWO_PI
    sin = np.multiply(cos, cos)
    np.subtract(1.0, sin, out=sin)
    np.sqrt(sin, out=sin)
    theta *= cos
    sin += theta  # sinθ + (π−θ)cosθ
    np.multiply(sin, nrm, out=S)
    S *= 1.0 / TWO_PI


def affine_(S, T, w2, b2):
    """Dense on the Gram entries: Σ' = W²Σ + B², Θ' = Σ' + W²Θ (in place)."""
    S *= w2
    S += b2
    T *= w2
    T += S


def pad_axes(A, axes, before, after, padding):
    if padding == "valid":
        return A
    widths = [(0, 0)] * A.ndim
    for ax, b, a in zip(axes, before, after):
        widths[ax] = (b, a)
    if padding == "circular":
        return np.pad(A, widths, mode="wrap")
    out = np.zeros(tuple(n + w[0] + w[1] for n, w in zip(A.shape, widths)))
    out[tuple(slice(w[0], w[0] + n) for n, w in zip(A.shape, widths))] = A
    return out


def conv_geometry(H, W, fh, fw, padding):
    if padding == "valid":
        return (0, 0), (0, 0), H - fh + 1, W - fw + 1
    bh, bw = (fh - 1) // 2, (fw - 1) // 2
    return (bh, bw), (fh - 1 - bh, fw - 1 - bw), H, W


def box_diag(A, fh, fw, padding):
    """(K, H, W) → (K, Ho, Wo): Σ_{s,t} A[a+s, b+t] on the pixel diagonal (docs/conventions.md §2)."""
    _, H, W = A.shape
    (bh, bw), (ah, aw), Ho, Wo = conv_geometry(H, W, fh, fw, padding)
    Ap = pad_axes(A, (1, 2), (bh, bw), (ah, aw), padding)
    tmp = Ap[:, 0:Ho, :].copy()
    for dh in range(1, fh):
        tmp += Ap[:, dh:dh + Ho, :]
    out = tmp[:, :, 0:Wo].copy()
    for dw in range(1, fw):
        out += tmp[:, :, dw:dw + Wo]
    return out


def box_pairs(A, fh, fw, padding):
    """(K, H, W, H, W) → (K, Ho, Wo, Ho, Wo): both pixels of a pair move by the same tap."""
    _, H, W, _, _ = A.shape
    (bh, bw), (ah, aw), Ho, Wo = conv_geometry(H, W, fh, fw, padding)
    Ap = pad_axes(A, (1, 2, 3, 4), (bh, bw, bh, bw), (ah, aw, ah, aw), padding)
    tmp = Ap[:, 0:Ho, :, 0:Ho, :].copy()
    for dh in range(1, fh):
        tmp += Ap[:, dh:dh + Ho, :, dh:dh + Ho, :]
    out = tmp[:, :, 0:Wo, :, 0:Wo].copy()
    for dw in range(1, fw):
        out += tmp[:, :, dw:dw + Wo, :, dw:dw + Wo]
    return out


def mlp_kernels(X, layers):
    """Whole N×N NNGP and NTK of a dense network (X: (N, d))."""
    d = X.shape[1]
    S = X @ X.T
    S /= d
    q = np.einsum("ij,ij->i", X, X) / d
    T = np.zeros_like(S)
    for layer in layers:
        if layer[0] == "dense":
            affine_(S, T, layer[1], layer[2])
            q = layer[1] * q + layer[2]
        else:
            relu_dual_(S, T, q[:, None], q[None, :])
            q = 0.5 * q  # E[relu(u)²] = q/2
    return S, T


def pixel_variances(X, spatial):
    """Per image, the pixel variances Σ(x,x)_aa that each relu of the spatial stage sees."""
    Q = np.einsum("nhwc,nhwc->nhw", X, X) / X.shape[3]
    seen = []
    for layer in spatial:
        if layer[0] == "conv":
            _, fh, fw, padding, w2, b2 = layer
            Q = box_diag(Q, fh, fw, padding) * (w2 / (fh * fw)) + b2
        else:
            seen.append(Q)
            Q = 0.5 * Q
    return seen


def cnn_pairs(X, I, J, spatial, readout, tail, Qs):
    """NNGP and NTK of the pairs (X[I[k]], X[J[k]]), all pairs of the chunk at once."""
    K = len(I)
    N, H, W, C = X.shape
    if readout == "flatten":  # the pixel diagonal suffices (offset a − b is conserved)
        S = np.einsum("khwc,khwc->khw", X[I], X[J]) / C
    else:
        A = X[I].reshape(K, H * W, C)
        B = X[J].reshape(K, H * W, C)
        S = np.matmul(A, B.transpose(0, 2, 1)).reshape(K, H, W, H, W) / C
    T = np.zeros_like(S)
    relu_index = 0
    for layer in spatial:
        if layer[0] == "conv":
            _, fh, fw, padding, w2, b2 = layer
            box = box_diag if readout == "flatten" else box_pairs
            scale = w2 / (fh * fw)
            S = box(S, fh, fw, padding)
            S *= scale
            S += b2
            T = box(T, fh, fw, padding)
            T *= scale
            T += S
        else:
            Q = Qs[relu_index]
            relu_index += 1
            if readout == "flatten":
                relu_dual_(S, T, Q[I], Q[J])
            else:
                h, w = Q.shape[1:]
                relu_dual_(S, T, Q[I].reshape(K, h, w, 1, 1), Q[J].reshape(K, 1, 1, h, w))
    axes = tuple(range(1, S.ndim))
    s, t = S.mean(axis=axes), T.mean(axis=axes)
    for layer in tail:
        if layer[0] != "dense":
            raise NotImplementedError("kernels_numpy.py: activations after the readout are not implemented")
        affine_(s, t, layer[1], layer[2])
    return s, t


def pool_axis(A, axis, k, stride, padding):
    """Window sum with stride along one axis (lax.reduce_window geometry, docs/conventions.md §1)."""
    n = A.shape[axis]
    if padding == "valid":
        out, before, after = (n - k) // stride + 1, 0, 0
    else:
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        before, after = total // 2, total - total // 2
    Ap = pad_axes(A, (axis,), (before,), (after,), padding)
    idx = [slice(None)] * A.ndim
    acc = None
    for t in range(k):
        idx[axis] = slice(t, t + stride * (out - 1) + 1, stride)
        acc = Ap[tuple(idx)].copy() if acc is None else acc + Ap[tuple(idx)]
    return acc


def avgpool_pairs(A, kh, kw, sh, sw, padding):
    """(K, H, W, H, W) → (K, Ho, Wo, Ho, Wo): each pixel of a pair averages over its own window."""
    for axis, k, st in ((1, kh, sh), (2, kw, sw), (3, kh, sh), (4, kw, sw)):
        A = pool_axis(A, axis, k, st, padding)
    A *= 1.0 / (kh * kw) ** 2
    return A


def pooled_pairs(X, I, J, spatial, readout, tail, Qs):
    """cnn_pairs for stacks with avgpool: all pixel pairs (pools break the conserved offset).
    With Qs = None, I == J and the relus read the variances off the diagonal (self pairs); then
    returns the list of those variances instead."""
    K = len(I)
    N, H, W, C = X.shape
    A = X[I].reshape(K, H * W, C)
    B = X[J].reshape(K, H * W, C)
    S = np.matmul(A, B.transpose(0, 2, 1)).reshape(K, H, W, H, W) / C
    T = np.zeros_like(S)
    seen = []
    relu_index = 0
    for layer in spatial:
        if layer[0] == "conv":
            _, fh, fw, padding, w2, b2 = layer
            scale = w2 / (fh * fw)
            S = box_pairs(S, fh, fw, padding)
            S *= scale
            S += b2
            T = box_pairs(T, fh, fw, padding)
            T *= scale
            T += S
        elif layer[0] == "avgpool":
            S = avgpool_pairs(S, *layer[1:])
            T = avgpool_pairs(T, *layer[1:])
        else:
            h, w = S.shape[1:3]
            if Qs is None:
                q = np.einsum("kii->ki", S.reshape(K, h * w, h * w)).reshape(K, h, w).copy()
                seen.append(q)
                relu_dual_(S, T, q.reshape(K, h, w, 1, 1), q.reshape(K, 1, 1, h, w))
            else:
                Q = Qs[relu_index]
                relu_index += 1
                relu_dual_(S, T, Q[I].reshape(K, h, w, 1, 1), Q[J].reshape(K, 1, 1, h, w))
    if Qs is None:
        return seen
    h, w = S.shape[1:3]
    if readout == "flatten":
        S = np.einsum("kii->ki", S.reshape(K, h * w, h * w))
        T = np.einsum("kii->ki", T.reshape(K, h * w, h * w))
    axes = tuple(range(1, S.ndim))
    s, t = S.mean(axis=axes), T.mean(axis=axes)
    for layer in tail:
        if layer[0] != "dense":
            raise NotImplementedError("kernels_numpy.py: activations after the readout are not implemented")
        affine_(s, t, layer[1], layer[2])
    return s, t


def pooled_variances(X, spatial):
    """pixel_variances for stacks with avgpool: each image with itself on all pixel pairs."""
    per = [pooled_pairs(X, [n], [n], spatial, None, [], None) for n in range(X.shape[0])]
    return [np.concatenate([p[k] for p in per]) for k in range(len(per[0]))]


def cnn_kernels(X, layers, budget=None, chunk_doubles=1 << 17):
    """Symmetric Gram of a CNN over the pairs i ≤ j, in chunks of about `chunk_doubles` numbers
    per array. With a time budget, stops after the chunk that exceeds it; returns
    (S, T, pairs done, total pairs)."""
    spatial, readout, tail = split_stages(layers)
    N, H, W, _ = X.shape
    per_pair = H * W if readout == "flatten" else (H * W) ** 2
    K = max(1, chunk_doubles // per_pair)
    I_all, J_all = np.triu_indices(N)
    S = np.zeros((N, N))
    T = np.zeros((N, N))
    start = time.perf_counter()
    Qs = pixel_variances(X, spatial)
    done = 0
    for k0 in range(0, len(I_all), K):
        I, J = I_all[k0:k0 + K], J_all[k0:k0 + K]
        s, t = cnn_pairs(X, I, J, spatial, readout, tail, Qs)
        S[I, J] = s
        S[J, I] = s
        T[I, J] = t
        T[J, I] = t
        done += len(I)
        if budget is not None and time.perf_counter() - start > budget:
            break
    return S, T, done, len(I_all)


def kernels(X, spec, budget=None, chunk_doubles=1 << 17):
    layers = parse_spec(spec)
    if X.ndim == 2:
        S, T = mlp_kernels(X, layers)
        return S, T, None, None
    return cnn_kernels(X, layers, budget, chunk_doubles)


# ---- BLAS ----------------------------------------------------------------------------------------

def blas_description():
    """Which BLAS numpy runs: threadpoolctl if present, else OpenBLAS's own entry points in the
    libraries mapped into this process."""
    try:
        import threadpoolctl  # noqa: F401
        info = threadpoolctl.threadpool_info()
        return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                         f"threads={i.get('num_threads')} ({i.get('filepath')})" for i in info)
    except ImportError:
        pass
    np.ones((2, 2)) @ np.ones((2, 2))
    libs = sorted(set(re.findall(r"(/\S*(?:blas|mkl|blis)\S*\.so\S*)", open("/proc/self/maps").read())))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return (f"{lib.openblas_get_config().decode()}, core {lib.openblas_get_corename().decode()}, "
                    f"threads={lib.openblas_get_num_threads()} ({path})")
        except (OSError, AttributeError):
            continue
    return "unknown (" + ", ".join(libs) + ")"


# ---- driver --------------------------------------------------------------------------------------

def read_cases(path):
    bench, check = {}, []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "bench":
                bench[parts[1]] = (parts[2], int(parts[3]), tuple(int(v) for v in parts[4:]))
            elif parts[0] == "check":
                check.append((parts[1], parts[2], parts[3]))
    return bench, check


def max_rel(a, b):
    """max over entries of |a − b| / max(|a|, |b|)."""
    den = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b) / den))


def run_check(check, tol):
    ok_all = True
    for name, spec, base in check:
        X = np.load(base + "_x.npy")
        S, T, _, _ = kernels(X, spec)
        ours_s, ours_t = np.load(base + "_nngp.npy"), np.load(base + "_ntk.npy")
        rs, rt = max_rel(S, ours_s), max_rel(T, ours_t)
        off = ~np.eye(len(S), dtype=bool)  # the diagonal carries arccos's √ε error near θ = 0
        rs_off, rt_off = max_rel(S[off], ours_s[off]), max_rel(T[off], ours_t[off])
        ok = rs <= tol and rt <= tol
        ok_all &= ok
        print(f"CHECK case={name} n={X.shape[0]} shape={'x'.join(map(str, X.shape[1:]))} "
              f"nngp_max_rel={rs:.3g} ntk_max_rel={rt:.3g} offdiag_nngp={rs_off:.3g} offdiag_ntk={rt_off:.3g} "
              f"tol={tol:g} ok={int(ok)} spec=\"{spec}\"", flush=True)
    return ok_all


def run_bench(bench, names, budget, reps, chunk_doubles):
    rng = np.random.default_rng(1)
    for name in names:
        spec, n, shape = bench[name]
        X = rng.standard_normal((n,) + shape)
        entries = float(n) * n
        if X.ndim == 2:
            best, cpu = float("inf"), 0.0
            for _ in range(reps):
                t0, c0 = time.perf_counter(), time.process_time()
                kernels(X, spec)
                if time.perf_counter() - t0 < best:
                    best, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"RESULT case={name} impl=numpy n={n} entries={entries:.0f} seconds={best:.6g} cpu={cpu:.6g} "
                  f"eps={entries / best:.6g} note=full_NxN_best_of_{reps}", flush=True)
            best, cpu = float("inf"), 0.0
            for _ in range(reps):
                t0, c0 = time.perf_counter(), time.process_time()
                X @ X.T
                if time.perf_counter() - t0 < best:
                    best, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"RESULT case={name} impl=numpy_gemm n={n} entries={entries:.0f} seconds={best:.6g} cpu={cpu:.6g} "
                  f"eps={entries / best:.6g} note=X@X.T", flush=True)
        else:
            t0, c0 = time.perf_counter(), time.process_time()
            _, _, done, total = kernels(X, spec, budget, chunk_doubles)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            # Each computed pair i ≤ j delivers N²/(N(N+1)/2) entries of the symmetric Gram.
            delivered = done * entries / total
            note = "all_pairs" if done == total else f"subset_{done}_of_{total}_pairs"
            print(f"RESULT case={name} impl=numpy n={n} entries={delivered:.0f} seconds={seconds:.6g} "
                  f"cpu={cpu * entries / delivered:.6g} eps={delivered / seconds:.6g} note={note}", flush=True)


def run_profile():
    """ns per element of the vectorized sub-steps (one thread: numpy's elementwise ufuncs do not
    use the BLAS threads)."""
    rng = np.random.default_rng(3)

    def best(f, reps=5):
        b = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            b = min(b, time.perf_counter() - t0)
        return b

    m = 1 << 20
    x = rng.uniform(-1.0, 1.0, m)
    q1, q2 = rng.uniform(0.1, 2.0, m), rng.uniform(0.1, 2.0, m)
    c = x * np.sqrt(q1 * q2)
    t_acos = best(lambda: np.arccos(x))
    t_dual = best(lambda: relu_dual_(c.copy(), np.ones(m), q1, q2))
    print(f"PROFILE step=numpy_relu_dual arccos_ns={1e9 * t_acos / m:.3g} relu_dual_ns={1e9 * t_dual / m:.3g} "
          f"(per entry, including the copy of S)", flush=True)
    for shape, box, name in (((668, 28, 28), box_diag, "diag_28x28"), ((128, 8, 8, 8, 8), box_pairs, "pairs_8x8"),
                             ((1, 28, 28, 28, 28), box_pairs, "pairs_28x28")):
        A = rng.standard_normal(shape)
        for padding in ("same", "circular"):
            t = best(lambda: box(A, 3, 3, padding))
            print(f"PROFILE step=numpy_conv3x3 layout={name} padding={padding} ns_per_entry={1e9 * t / A.size:.3g}",
                  flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", help="cases.tsv written by bench_kernels --write-cases")
    p.add_argument("--check", action="store_true", help="compare with our kernels on the check instances")
    p.add_argument("--tol", type=float, default=1e-6, help="largest max relative difference accepted")
    p.add_argument("--bench", default="", help="comma-separated cases to time (a,b,c,d)")
    p.add_argument("--budget", type=float, default=15.0,
                   help="seconds per CNN case; past it a subset of pairs is timed (default 15)")
    p.add_argument("--reps", type=int, default=2, help="repetitions for the MLP case (best reported)")
    p.add_argument("--chunk", type=int, default=1 << 17,
                   help="numbers per pair-chunk array in the CNN cases (default 2^17 = 1 MiB)")
    p.add_argument("--blas", action="store_true", help="print the BLAS numpy uses")
    p.add_argument("--profile", action="store_true", help="ns per element of the sub-steps")
    a = p.parse_args()
    if a.profile:
        run_profile()
    if a.blas:
        print(f"BLAS numpy={np.__version__} {blas_description()}", flush=True)
    ok = True
    if a.cases:
        bench, check = read_cases(a.cases)
        if a.check:
            ok = run_check(check, a.tol)
        names = [s for s in a.bench.split(",") if s]
        unknown = [s for s in names if s not in bench]
        if unknown:
            p.error(f"--bench: unknown case(s) {unknown}, expected some of {sorted(bench)}")
        run_bench(bench, names, a.budget, a.reps, a.chunk)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
