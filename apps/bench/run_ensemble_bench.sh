#!/usr/bin/env bash
# Benchmarks of issue 3: (1) the closed-form gradient flow against one eigendecomposition of the
# N×N Gram matrix; (2) finite ensembles trained by gradient descent, ours (train_ensemble) against
# PyTorch (apps/bench/ensemble_torch.py) on the same architecture, parameters layout, float64 and
# thread count, after checking that both compute the same thing from the same parameters.
# Prints the markdown of the "Gradient flow (closed form)" and "Finite ensembles vs PyTorch"
# sections of docs/benchmarks.md.
#
#   apps/bench/run_ensemble_bench.sh BUILD_DIR
#
# Environment: THREADS (default 2) for both sides; STEPS (default 300); FLOW_N (default 4000);
# SKIP_FLOW=1 / SKIP_ENSEMBLE=1 skip a part; CASES (default "mlp cnn") picks the ensemble cases;
# KEEP=DIR keeps the raw output and exported arrays.
# Build first: ninja -C BUILD_DIR apps/bench_gradient_flow apps/bench_ensemble
# PyTorch: Debian's python3-torch (apt-get install -y python3-torch), run by /usr/bin/python3.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
build=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=/usr/bin/python3
threads=${THREADS:-2}
steps=${STEPS:-300}
flow_n=${FLOW_N:-4000}
for exe in bench_gradient_flow bench_ensemble; do
  if [[ ! -x $build/apps/$exe ]]; then
    echo "$0: $build/apps/$exe not found: ninja -C $build apps/$exe" >&2
    exit 2
  fi
done
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "$0: PyTorch not importable by $python (apt-get install -y python3-torch)" >&2
  exit 2
fi
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
raw="$work/raw.txt"
: >"$raw"
{
  echo "META date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "META nproc=$(nproc)"
  echo "META cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "META load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "META torch=$("$python" -c 'import torch; print(torch.__version__)')"
  echo "META command=$0 $build  (THREADS=$threads STEPS=$steps FLOW_N=$flow_n SKIP_FLOW=${SKIP_FLOW:-0} SKIP_ENSEMBLE=${SKIP_ENSEMBLE:-0} CASES=${CASES:-mlp cnn})"
} >>"$raw"

status=0
if [[ ${SKIP_FLOW:-0} != 1 ]]; then
  "$build/apps/bench_gradient_flow" --n "$flow_n" --test 200 --times 50 --threads "$threads" | tee -a "$raw" >&2
fi
if [[ ${SKIP_ENSEMBLE:-0} != 1 ]]; then
  for c in ${CASES:-mlp cnn}; do
    "$build/apps/bench_ensemble" --case "$c" --export "$work" --threads "$threads" | tee -a "$raw" >&2
    "$python" "$here/ensemble_torch.py" --case "$c" --dir "$work" --check --threads "$threads" | tee -a "$raw" >&2 ||
      status=1
    # Ours then PyTorch, case by case, so that both see the same machine load.
    "$build/apps/bench_ensemble" --case "$c" --steps "$steps" --threads "$threads" | tee -a "$raw" >&2
    "$python" "$here/ensemble_torch.py" --case "$c" --dir "$work" --bench --steps "$steps" --threads "$threads" |
      tee -a "$raw" >&2
  done
fi
echo "META load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw"

"$python" - "$raw" <<'EOF'
import re
import sys

meta, res, checks, prof, probe = {}, {}, [], [], []
for line in open(sys.argv[1]):
    kind, _, rest = line.rstrip("\n").partition(" ")
    if kind == "META":
        k, _, v = rest.partition("=")
        meta[k] = v
        continue
    kv = dict((k, v.strip('"')) for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', rest))
    if kind == "RESULT":
        res[(kv.get("case", "flow"), kv["impl"])] = kv
    elif kind == "CHECK":
        checks.append(kv)
    elif kind == "PROFILE":
        prof.append(kv)
    elif kind == "PROBE":
        probe.append(kv)

tail = [f"- date: {meta.get('date', '?')}; machine: {meta.get('nproc', '?')} cores, CPU \"{meta.get('cpu', '?')}\"; "
        f"load average (1/5/15 min) at start {meta.get('load_start', '?')}, at end {meta.get('load_end', '?')}",
        f"- command: `{meta.get('command', '?')}`"]

eig, flow = res.get(("flow", "eigensolver")), res.get(("flow", "gradient_flow"))
if eig and flow:
    te, tf = float(eig["seconds"]), float(flow["seconds"])
    steps = {p["step"]: float(p["seconds"]) for p in prof if "step" in p and "seconds" in p}
    print("### Gradient flow (closed form)\n")
    print(f"N = {flow['n']} training points, {flow['test']} test points, {flow['times']} time points "
          "(0.1 … 10⁵ and ∞), one output; kernels of `dense(512, b=0.1) relu dense(512, b=0.1) relu dense(1)` "
          "on standard normal inputs (d = 32), computed before the timing.\n")
    print("| step | seconds |")
    print("|---|---:|")
    for k, name in [("construct", "GradientFlow constructor (checks, eigendecomposition, VᵀKV, VᵀY)"),
                    ("mean", "mean(), 50 times"), ("covariance", "covariance(), 50 times")]:
        if k in steps:
            print(f"| {name} | {steps[k]:.3g} |")
    print(f"| **GradientFlow total** (CPU s, all threads) | **{tf:.3g}** ({float(flow.get('cpu_seconds', 'nan')):.3g}) |")
    print(f"| Eigen `SelfAdjointEigenSolver` of Θ(X,X) alone, the floor (CPU s) | {te:.3g} "
          f"({float(eig.get('cpu_seconds', 'nan')):.3g}) |")
    r = tf / te
    print(f"| ratio of wall times (target ≤ 1.5) | {r:.2f} — {'met' if r <= 1.5 else '**not met**'} |")
    print()

ens = [(c, res.get((c, "emergent")), res.get((c, "torch"))) for c in ("mlp", "cnn")]
if any(o for _, o, _ in ens):
    desc = {"mlp": ("MLP: dense(512) relu dense(512) relu dense(1), all b = 0.1", "64 × 16 (normal)"),
            "cnn": ("CNN: 3 × [conv(32, 3×3, circular) relu], flatten, dense(1), all b = 0.1",
                    "64 × 8×8×1 (±1 spins)")}
    print("### Finite ensembles vs PyTorch\n")
    print("| case | members | inputs | steps | ours: wall s (CPU s) | PyTorch: wall s (CPU s) | "
          "speed-up wall (CPU) | target | met (wall) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for c, o, t in ens:
        if o is None:
            continue
        arch, inp = desc[c]
        ours = f"{float(o['seconds']):.3g} ({float(o.get('cpu_seconds', 'nan')):.3g})"
        if t:
            ts = f"{float(t['seconds']):.3g} ({float(t.get('cpu_seconds', 'nan')):.3g})"
            if t.get("conv", "-") != "-":
                ts += f", conv={t['conv']}"
            sp = float(t["seconds"]) / float(o["seconds"])
            spc = float(t.get("cpu_seconds", "nan")) / float(o.get("cpu_seconds", "nan"))
            sps, met = f"{sp:.2f}× ({spc:.2f}×)", ("yes" if sp >= 3 else "**no**")
        else:
            ts, sps, met = "—", "—", "—"
        print(f"| {arch} | {o['members']} | {inp} | {o['steps']} | {ours} | {ts} | {sps} | ≥ 3× | {met} |")
    print()
    if probe:
        print("PyTorch CNN, one step of each convolution variant before the timed run (seconds): " +
              ", ".join(f"{p['conv']} {float(p['seconds_per_step']):.3g}" for p in probe) + "\n")
    if checks:
        print("| agreement check (same initial parameters) | steps compared | max abs diff | max rel diff | ok |")
        print("|---|---|---:|---:|---|")
        for k in checks:
            print(f"| {k['case']}" + (f" (conv={k['conv']})" if k['case'] == 'cnn' else "") +
                  f", {k['members']} members | {k['steps']} | {k['max_abs']} | {k['max_rel']} | "
                  f"{'yes' if k['ok'] == '1' else '**NO**'} |")
        print()
print("\n".join(tail))
EOF
echo "raw output: $raw" >&2
exit "$status"
