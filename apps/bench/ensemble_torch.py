#!/usr/bin/python3
"""PyTorch baseline of the finite-ensemble benchmark (issue 3; docs/benchmarks.md).

The same networks as apps/bench/bench_ensemble.cpp, float64, in the NTK parameterization of
docs/conventions.md §2 (z = W/sqrt(n_in) * omega @ h + B * beta, all parameters N(0, 1)), trained by
full-batch gradient descent on L = 1/2 * 1/(N k) * sum (f - y)^2 per member. All members are
stacked in the weights: one batched op per layer, no Python loop over members; autograd gives
the gradient of the sum of the members' losses, which is each member's own gradient.

  ensemble_torch.py --case mlp|cnn --dir DIR --check     # start from our parameters, compare
  ensemble_torch.py --case mlp|cnn --dir DIR --bench [--steps 300] [--conv grouped|unfold|auto]

DIR holds the files of `bench_ensemble --case CASE --export DIR`.
Output lines: CHECK case=.. max_abs=.. max_rel=.. ok=0|1 ; RESULT case=.. impl=torch seconds=..
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

W_STD, B_STD = 1.0, 0.1  # the specs of bench_ensemble.cpp: w=1, b=0.1 in every affine layer
MLP_WIDTH, MLP_DEPTH = 512, 2
CNN_CHANNELS, CNN_DEPTH = 32, 3


class MLP:
    """dense(512, b) relu dense(512, b) relu dense(1, b); weights (M, n_out, n_in)."""

    def __init__(self, members, d, gen=None, flat=None):
        dims = [d] + [MLP_WIDTH] * MLP_DEPTH + [1]
        self.shapes = [((members, o, i), (members, o)) for i, o in zip(dims[:-1], dims[1:])]
        self.scales = [W_STD / math.sqrt(i) for i in dims[:-1]]
        self.params = []
        if flat is None:
            for ws, bs in self.shapes:
                self.params += [torch.randn(ws, generator=gen), torch.randn(bs, generator=gen)]
        else:  # our layout per member: W (n_out, n_in) row-major, then b (n_out), layer by layer
            off = 0
            for ws, bs in self.shapes:
                nw, nb = ws[1] * ws[2], bs[1]
                self.params.append(torch.from_numpy(flat[:, off:off + nw].reshape(ws).copy()))
                off += nw
                self.params.append(torch.from_numpy(flat[:, off:off + nb].reshape(bs).copy()))
                off += nb
            assert off == flat.shape[1], (off, flat.shape)
        for p in self.params:
            p.requires_grad_(True)

    def forward(self, x):
        # x: (N, d), shared by all members -> h: (M, N, n)
        n_layers = len(self.shapes)
        for l in range(n_layers):
            w, b = self.params[2 * l], self.params[2 * l + 1]
            if l == 0:  # the input is shared: a stride-0 batch view, no copy
                h = x.unsqueeze(0).expand(w.shape[0], -1, -1)
            # one fused batched GEMM per layer: B*b + (W_std/sqrt(n_in)) * h @ W^T
            z = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), beta=B_STD, alpha=self.scales[l])
            h = torch.relu(z) if l + 1 < n_layers else z
        return h[..., 0].transpose(0, 1)  # (N, M)


class CNN:
    """3 x [conv(32, 3x3, circular, b) relu], flatten, dense(1, b).

    Members are stacked as channel groups: activations (N, M*C, H, W); conv weights
    (M*C_out, C_in, 3, 3) used with groups=M (the first layer sees the shared input, groups=1).
    Circular padding is F.pad(mode='circular') followed by a padding-free conv2d.
    mode 'unfold' instead does im2col (F.unfold) and one batched GEMM per layer.
    """

    def __init__(self, members, h, w, c_in, gen=None, flat=None, mode="grouped"):
        self.M, self.H, self.W, self.mode = members, h, w, mode
        C = CNN_CHANNELS
        cins = [c_in] + [C] * (CNN_DEPTH - 1)
        self.scales = [W_STD / math.sqrt(ci * 9) for ci in cins] + [W_STD / math.sqrt(h * w * C)]
        self.params = []
        if flat is None:
            for ci in cins:
                self.params += [torch.randn(members * C, ci, 3, 3, generator=gen), torch.randn(members * C, generator=gen)]
            self.params += [torch.randn(members, C, h, w, generator=gen), torch.randn(members, generator=gen)]
        else:  # ours: conv W (C_out, FH, FW, C_in), b (C_out); dense W (1, H*W*C) in (h, w, c) order
            off = 0
            for ci in cins:
                n = C * 9 * ci
                wt = flat[:, off:off + n].reshape(members, C, 3, 3, ci).transpose(0, 1, 4, 2, 3)
                self.params.append(torch.from_numpy(wt.reshape(members * C, ci, 3, 3).copy()))
                off += n
                self.params.append(torch.from_numpy(flat[:, off:off + C].reshape(members * C).copy()))
                off += C
            n = h * w * C
            wt = flat[:, off:off + n].reshape(members, h, w, C).transpose(0, 3, 1, 2)
            self.params.append(torch.from_numpy(wt.copy()))
            off += n
            self.params.append(torch.from_numpy(flat[:, off:off + 1].reshape(members).copy()))
            off += 1
            assert off == flat.shape[1], (off, flat.shape)
        for p in self.params:
            p.requires_grad_(True)

    def conv(self, h, l):
        w, b = self.params[2 * l], self.params[2 * l + 1]
        groups = 1 if l == 0 else self.M
        hp = F.pad(h, (1, 1, 1, 1), mode="circular")
        if self.mode == "grouped":
            z = F.conv2d(hp, w, None, groups=groups)
            return z.mul(self.scales[l]).add(b.view(1, -1, 1, 1), alpha=B_STD)
        # im2col + batched GEMM: (N, G*Cin*9, P) -> (G, N*P, Cin*9) @ (G, Cin*9, Cout)
        N, P = h.shape[0], self.H * self.W
        cols = F.unfold(hp, 3)  # (N, G*Cin*9, P), channel-major per group
        cin = w.shape[1]
        G = groups
        cols = cols.view(N, G, cin * 9, P).permute(1, 0, 3, 2).reshape(G, N * P, cin * 9)
        wg = w.view(G, -1, cin * 9).transpose(1, 2)  # (G, Cin*9, Cout_per_group)
        bias = (B_STD * b).view(G, 1, -1)
        z = torch.baddbmm(bias, cols, wg, alpha=self.scales[l])  # (G, N*P, Cout)
        cout = wg.shape[2]
        z = z.view(G, N, self.H, self.W, cout).permute(1, 0, 4, 2, 3).reshape(N, G * cout, self.H, self.W)
        return z

    def forward(self, x):
        # x: (N, H, W, C) NHWC -> NCHW
        h = x.permute(0, 3, 1, 2).contiguous()
        for l in range(CNN_DEPTH):
            h = torch.relu(self.conv(h, l))
        N = h.shape[0]
        hw = h.view(N, self.M, CNN_CHANNELS, self.H, self.W)
        wr, br = self.params[-2], self.params[-1]
        return torch.einsum("nmchw,mchw->nm", hw, wr) * self.scales[-1] + B_STD * br  # (N, M)


def build(case, members, x, flat=None, mode="grouped"):
    gen = torch.Generator().manual_seed(0)
    if case == "mlp":
        return MLP(members, x.shape[1], gen, flat)
    return CNN(members, x.shape[1], x.shape[2], x.shape[3], gen, flat, mode)


def train(net, x, y, steps, lr, record=()):
    """Full-batch GD on 1/2 * 1/(N k) * sum (f - y)^2 for every member at once."""
    N, k = y.shape
    out = {}
    for step in range(steps + 1):
        if step in record:
            with torch.no_grad():
                out[step] = net.forward(x).clone()
        if step == steps:
            break
        f = net.forward(x)  # (N, M)
        loss = 0.5 / (N * k) * (f - y).pow(2).sum()  # sum over members: each gets its own gradient
        grads = torch.autograd.grad(loss, net.params)
        with torch.no_grad():
            torch._foreach_add_(net.params, grads, alpha=-lr)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=["mlp", "cnn"], required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conv", choices=["grouped", "unfold", "auto"], default="auto")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = os.path.join(a.dir, a.case + "_")
    x = torch.from_numpy(np.load(p + "x.npy"))
    y = torch.from_numpy(np.load(p + "y.npy"))
    flat = np.load(p + "params.npy")
    members = flat.shape[0]
    modes = ["grouped", "unfold"] if a.case == "cnn" else ["-"]
    if a.case == "cnn" and a.conv != "auto":
        modes = [a.conv]
    print(f"INFO torch={torch.__version__} threads={torch.get_num_threads()} "
          f"blas=\"{torch.__config__.show().count('BLAS')}\" mkldnn={torch.backends.mkldnn.is_available()}",
          file=sys.stderr)

    if a.check:
        ref = np.load(p + "check.npy")[..., 0]  # (M, 3, N)
        ks = ref.shape[1]
        check_steps = int(os.environ.get("CHECK_STEPS", "3"))
        for mode in modes:
            net = build(a.case, members, x, flat, mode if mode != "-" else "grouped")
            out = train(net, x, y, check_steps, a.lr, record=(0, 1, check_steps))
            got = np.stack([out[s].numpy().T for s in (0, 1, check_steps)], axis=1)  # (M, 3, N)
            diff = np.abs(got - ref)
            max_rel = float((diff / np.maximum(np.abs(ref), 1e-300)).max())
            max_abs = float(diff.max())
            ok = max_abs <= 1e-10 * max(1.0, float(np.abs(ref).max()))
            print(f"CHECK case={a.case} conv={mode} members={members} steps=0,1,{check_steps} "
                  f"max_abs={max_abs:.3g} max_rel={max_rel:.3g} scale={np.abs(ref).max():.3g} ok={int(ok)}")
            if not ok:
                sys.exit(1)

    if a.bench:
        best_mode, best = None, None
        if len(modes) > 1:  # pick the faster convolution on one step first (not counted)
            for mode in modes:
                net = build(a.case, members, x, None, mode)
                t0 = time.perf_counter()
                train(net, x, y, 1, a.lr)
                t = time.perf_counter() - t0
                print(f"INFO conv={mode} 1 step {t:.3f} s", file=sys.stderr)
                print(f"PROBE case={a.case} conv={mode} seconds_per_step={t:.4f}")
                if best is None or t < best:
                    best, best_mode = t, mode
        else:
            best_mode = modes[0] if modes[0] != "-" else "grouped"
        net = build(a.case, members, x, None, best_mode)
        train(net, x, y, 2, a.lr)  # warm-up
        net = build(a.case, members, x, None, best_mode)
        c0, t0 = time.process_time(), time.perf_counter()
        out = train(net, x, y, a.steps, a.lr, record=(a.steps,))
        t, cpu = time.perf_counter() - t0, time.process_time() - c0
        f = out[a.steps]
        loss = float((0.5 * (f - y).pow(2).mean(dim=0)).mean())
        print(f"RESULT case={a.case} impl=torch conv={best_mode if a.case == 'cnn' else '-'} members={members} "
              f"steps={a.steps} seconds={t:.4f} cpu_seconds={cpu:.4f} mean_final_loss={loss:.6g}")


if __name__ == "__main__":
    main()
