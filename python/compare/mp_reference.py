#!/usr/bin/env python3
"""An independent high-precision evaluation of the NNGP and NTK kernels (mpmath, 50 digits by
default) for the spec grammar of docs/conventions.md §1, following the recursions of §2 entry by
entry over all pixel pairs: dense, conv (same/valid/circular), avgpool (same/valid/circular),
layernorm, residual blocks, flatten, gap, and the activations with closed-form duals (the ReLU
family relu/abs/leaky_relu/abrelu/identity, erf, gelu, sin, cos). It shares no code with emergent or
Neural Tangents; compare_nt.py uses it as the referee where the two disagree.

    mp_kernels(spec, x1, x2, digits=50) -> (nngp, ntk, min_gap)

nngp/ntk are float64 arrays in emergent's layout ((N1, N2) for a readout, (N1, N2, H, W, H, W)
without); min_gap is the smallest 1 − |c| over every activation's input correlation c of two different
inputs or pixels (exactly 0 when such a pair is collinear, e.g. one input channel through a bias-free 1×1 conv).
Raises NotImplementedError for tokens it does not cover (tanh, softplus, …).
"""
import math
import re
import sys

import numpy as np

try:
    import mpmath as mp
except ImportError:  # the NT venv has no mpmath: use Debian's python3-mpmath (pure Python)
    sys.path.append("/usr/lib/python3/dist-packages")
    import mpmath as mp

RELU_FAMILY = {"relu": (0.0, 1.0), "abs": (-1.0, 1.0), "identity": (1.0, 1.0)}


def split_tokens(spec):
    """Top-level tokens of a spec: 'conv(3, 1x1) residual(relu dense(4))' -> ['conv(3, 1x1)', 'residual(…)']."""
    out, depth, cur = [], 0, ""
    for ch in spec.strip():
        if ch == " " and depth == 0:
            if cur:
                out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return out


def parse(tok):
    """(name, positional args, keyword args) of one token."""
    m = re.fullmatch(r"([a-z_]+)(?:\((.*)\))?", tok)
    if not m:
        raise NotImplementedError(tok)
    name, inner = m.group(1), m.group(2)
    if name == "residual":
        return name, [inner], {}
    pos, kw = [], {}
    if inner:
        for part in inner.split(","):
            part = part.strip()
            if "=" in part:
                k, v = part.split("=")
                kw[k.strip()] = v.strip()
            else:
                pos.append(part)
    return name, pos, kw


def two(s):
    a, b = s.split("x")
    return int(a), int(b)


class State:
    """Kernels on the joint set x1 ∪ x2: K[i][j] and T[i][j] are dicts over pixel pairs (a, b) for
    images (a = (row, col)) or a single entry for vectors, plus the spatial size."""

    def __init__(self, K, T, size, image):
        self.K, self.T, self.size, self.image = K, T, size, image


def pixels(size):
    return [(r, c) for r in range(size[0]) for c in range(size[1])]


def window_1d(n, k, s, pad, what):
    """Output count and, per output, the input indices of its window (None: a zero pad)."""
    if pad == "valid":
        m = (n - k) // s + 1
        return m, [[o * s + t for t in range(k)] for o in range(m)]
    if what == "conv":
        m, before = n, (k - 1) // 2
        s = 1
    else:
        m = -(-n // s)
        before = max((m - 1) * s + k - n, 0) // 2
    wins = []
    for o in range(m):
        idx = []
        for t in range(k):
            i = o * s + t - before
            if pad == "circular":
                idx.append(i % n)
            else:
                idx.append(i if 0 <= i < n else None)
        wins.append(idx)
    return m, wins


def relu_family_duals(a, b, k11, k22, k12):
    s = mp.sqrt(k11 * k22)
    if s == 0:
        return mp.mpf(0), ((a + b) / 2) ** 2, mp.mpf(1)
    c = max(mp.mpf(-1), min(mp.mpf(1), k12 / s))
    th = mp.acos(c)
    sn = mp.sqrt(1 - c * c)
    e = s * ((a * a + b * b) * (sn + (mp.pi - th) * c) - 2 * a * b * (sn - th * c)) / (2 * mp.pi)
    ed = ((a * a + b * b) * (mp.pi - th) + 2 * a * b * th) / (2 * mp.pi)
    return e, ed, 1 - abs(c)


def activation_duals(name, pos, k11, k22, k12):
    if name in RELU_FAMILY or name in ("leaky_relu", "abrelu"):
        if name == "leaky_relu":
            a, b = mp.mpf(pos[0]), mp.mpf(1)
        elif name == "abrelu":
            a, b = mp.mpf(pos[0]), mp.mpf(pos[1])
        else:
            a, b = (mp.mpf(v) for v in RELU_FAMILY[name])
        return relu_family_duals(a, b, k11, k22, k12)
    gap = 1 - abs(k12 / mp.sqrt(k11 * k22)) if k11 * k22 > 0 else mp.mpf(1)
    if name == "erf":
        d = (1 + 2 * k11) * (1 + 2 * k22)
        return 2 / mp.pi * mp.asin(2 * k12 / mp.sqrt(d)), 4 / mp.pi / mp.sqrt(d - 4 * k12 * k12), gap
    if name == "gelu":  # φ(x) = xΦ(x): the closed form of Tsuchida et al. 2021 (NT's stax.Gelu)
        P = (1 + k11) * (1 + k22)
        D = 1 + k11 + k22 + (k11 * k22 - k12 * k12)
        a = mp.asin(k12 / mp.sqrt(P))
        e = k12 / 4 + k12 * a / (2 * mp.pi) + (k11 * k22 * D + k12 * k12) / (2 * mp.pi * P * mp.sqrt(D))
        ed = mp.mpf(1) / 4 + a / (2 * mp.pi) + k12 * ((3 + k11 + k22) * D + k12 * k12) / (2 * mp.pi * P * D ** mp.mpf(1.5))
        return e, ed, gap
    if name in ("sin", "cos"):
        damp = mp.exp(-(k11 + k22) / 2)
        sinh, cosh = damp * mp.sinh(k12), damp * mp.cosh(k12)
        return (sinh, cosh, gap) if name == "sin" else (cosh, sinh, gap)
    raise NotImplementedError(name)


def run_layers(tokens, st, n, gaps):
    for tok in tokens:
        name, pos, kw = parse(tok)
        K, T = st.K, st.T
        if name == "residual":
            inner = run_layers(split_tokens(pos[0]), State(K, T, st.size, st.image), n, gaps)
            st = State([[{p: K[i][j][p] + inner.K[i][j][p] for p in K[i][j]} for j in range(n)] for i in range(n)],
                       [[{p: T[i][j][p] + inner.T[i][j][p] for p in T[i][j]} for j in range(n)] for i in range(n)],
                       st.size, st.image)
        elif name in ("dense", "conv"):
            w, b = mp.mpf(kw.get("w", "1")), mp.mpf(kw.get("b", "0"))
            if name == "dense" or not st.image:
                nk = [[{p: w * w * K[i][j][p] + b * b for p in K[i][j]} for j in range(n)] for i in range(n)]
                nt = [[{p: nk[i][j][p] + w * w * T[i][j][p] for p in T[i][j]} for j in range(n)] for i in range(n)]
                st = State(nk, nt, st.size, st.image)
            else:
                fh, fw = two(pos[1])
                pad = kw.get("padding", "same")
                mh, wr = window_1d(st.size[0], fh, 1, pad, "conv")
                mw, wc = window_1d(st.size[1], fw, 1, pad, "conv")
                size = (mh, mw)
                pairs = [(a, bb) for a in pixels(size) for bb in pixels(size)]
                f = mp.mpf(fh * fw)

                def agg(M, a, bb):
                    tot = mp.mpf(0)
                    for s1 in range(fh):
                        for s2 in range(fw):
                            r1, c1, r2, c2 = wr[a[0]][s1], wc[a[1]][s2], wr[bb[0]][s1], wc[bb[1]][s2]
                            if None in (r1, c1, r2, c2):
                                continue
                            tot += M[((r1, c1), (r2, c2))]
                    return tot / f

                nk = [[{(a, bb): w * w * agg(K[i][j], a, bb) + b * b for (a, bb) in pairs} for j in range(n)] for i in range(n)]
                nt = [[{(a, bb): nk[i][j][(a, bb)] + w * w * agg(T[i][j], a, bb) for (a, bb) in pairs} for j in range(n)]
                      for i in range(n)]
                st = State(nk, nt, size, True)
        elif name == "layernorm":
            eps = mp.mpf(kw.get("eps", "1e-12"))
            diag = [{a: K[i][i][(a, a) if st.image else None] for a in (pixels(st.size) if st.image else [None])}
                    for i in range(n)]

            def norm(i, j, p):
                a, bb = p if st.image else (None, None)
                return mp.sqrt((eps + diag[i][a]) * (eps + diag[j][bb]))
            st = State([[{p: K[i][j][p] / norm(i, j, p) for p in K[i][j]} for j in range(n)] for i in range(n)],
                       [[{p: T[i][j][p] / norm(i, j, p) for p in T[i][j]} for j in range(n)] for i in range(n)],
                       st.size, st.image)
        elif name == "avgpool":
            kh, kwid = two(pos[0])
            sh, sw = two(kw.get("stride", "1x1"))
            pad = kw.get("padding", "valid")
            mh, wr = window_1d(st.size[0], kh, sh, pad, "pool")
            mw, wc = window_1d(st.size[1], kwid, sw, pad, "pool")
            size = (mh, mw)
            pairs = [(a, bb) for a in pixels(size) for bb in pixels(size)]
            f = mp.mpf(kh * kwid) ** 2

            def pool(M, a, bb):
                tot = mp.mpf(0)
                for r1 in wr[a[0]]:
                    for c1 in wc[a[1]]:
                        for r2 in wr[bb[0]]:
                            for c2 in wc[bb[1]]:
                                if None in (r1, c1, r2, c2):
                                    continue
                                tot += M[((r1, c1), (r2, c2))]
                return tot / f
            st = State([[{p: pool(K[i][j], *p) for p in pairs} for j in range(n)] for i in range(n)],
                       [[{p: pool(T[i][j], *p) for p in pairs} for j in range(n)] for i in range(n)], size, True)
        elif name in ("flatten", "gap"):
            px = pixels(st.size)
            if name == "flatten":
                red = lambda M: sum((M[(a, a)] for a in px), mp.mpf(0)) / len(px)  # noqa: E731
            else:
                red = lambda M: sum((M[(a, bb)] for a in px for bb in px), mp.mpf(0)) / len(px) ** 2  # noqa: E731
            st = State([[{None: red(K[i][j])} for j in range(n)] for i in range(n)],
                       [[{None: red(T[i][j])} for j in range(n)] for i in range(n)], None, False)
        else:
            nk = [[dict() for _ in range(n)] for _ in range(n)]
            nt = [[dict() for _ in range(n)] for _ in range(n)]
            for i in range(n):
                for j in range(n):
                    for p in K[i][j]:
                        a, bb = p if st.image else (None, None)
                        k11 = K[i][i][(a, a) if st.image else None]
                        k22 = K[j][j][(bb, bb) if st.image else None]
                        e, ed, g = activation_duals(name, pos, k11, k22, K[i][j][p])
                        if i != j or a != bb:  # a pixel with itself is collinear trivially
                            gaps.append(g)
                        nk[i][j][p] = e
                        nt[i][j][p] = ed * T[i][j][p]
            st = State(nk, nt, st.size, st.image)
    return st


def mp_kernels(spec, x1, x2=None, digits=50):
    mp.mp.dps = digits
    x = np.concatenate([x1, x2]) if x2 is not None else x1
    n, n1 = x.shape[0], x1.shape[0]
    image = x.ndim == 4
    if image:
        size = x.shape[1:3]
        ch = x.shape[3]
        px = pixels(size)
        xm = [[[[mp.mpf(float(v)) for v in x[i, r, c]] for c in range(size[1])] for r in range(size[0])] for i in range(n)]
        K = [[{(a, bb): sum((xm[i][a[0]][a[1]][t] * xm[j][bb[0]][bb[1]][t] for t in range(ch)), mp.mpf(0)) / ch
               for a in px for bb in px} for j in range(n)] for i in range(n)]
    else:
        d = x.shape[1]
        xm = [[mp.mpf(float(v)) for v in x[i]] for i in range(n)]
        K = [[{None: sum((xm[i][t] * xm[j][t] for t in range(d)), mp.mpf(0)) / d} for j in range(n)] for i in range(n)]
        size = None
    T = [[{p: mp.mpf(0) for p in K[i][j]} for j in range(n)] for i in range(n)]
    gaps = []
    st = run_layers(split_tokens(spec), State(K, T, size, image), n, gaps)
    cols = range(n1, n) if x2 is not None else range(n1)

    def out(M):
        if not st.image:
            return np.array([[float(M[i][j][None]) for j in cols] for i in range(n1)])
        h, w = st.size
        a = np.zeros((n1, len(cols), h, w, h, w))
        for i in range(n1):
            for jj, j in enumerate(cols):
                for (p, q), v in M[i][j].items():
                    a[i, jj, p[0], p[1], q[0], q[1]] = float(v)
        return a
    return out(st.K), out(st.T), float(min(gaps)) if gaps else 1.0


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", required=True)
    p.add_argument("--x1", required=True)
    p.add_argument("--x2")
    p.add_argument("--digits", type=int, default=50)
    a = p.parse_args()
    k, t, g = mp_kernels(a.arch, np.load(a.x1), np.load(a.x2) if a.x2 else None, a.digits)
    print("nngp", k.ravel()[:6], "\nntk", t.ravel()[:6], "\nmin 1-|c|", g, math.log10(g) if g > 0 else "-inf")
