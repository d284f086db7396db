#!/usr/bin/env bash
# Kernel benchmark of issue 2: our analytic NNGP+NTK kernels against a vectorized numpy
# implementation of the same recursions, case by case in one run, plus the GEMM floor of the
# MLP case. Prints a markdown table (the "Kernels" section of docs/benchmarks.md).
#
#   apps/bench/run_kernel_bench.sh BUILD_DIR [extra bench_kernels options, e.g. --quick]
#
# Environment: THREADS (default 2) for both sides; NUMPY_BUDGET seconds per numpy CNN case
# (default 15; past it numpy times a subset of the pairs); PROFILE=1 adds sub-step timings;
# KEEP=DIR keeps the raw output there; CASES="a" times only the listed cases (default "a b c d").
# The build is assumed done: ninja -C BUILD_DIR apps/bench_kernels
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 BUILD_DIR [bench_kernels options]   |   $0 --format RAW_FILE" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=/usr/bin/python3
format_only=
if [[ $1 == --format ]]; then
  format_only=${2:?--format needs the raw file of an earlier run (KEEP=DIR: DIR/raw.txt)}
else
  build=$1
  shift
fi
# Markdown table from the raw output of a run.
format_table() {
  "$python" - "$1" <<'EOF'
import re
import sys

meta, res, checks, prof, info = {}, {}, [], [], {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    kind, _, rest = line.partition(" ")
    if kind == "META":
        k, _, v = rest.partition("=")
        meta[k] = v
        continue
    kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', rest))
    if kind == "RESULT":
        res.setdefault((kv["case"], kv["impl"]), kv)
    elif kind == "CHECK":
        checks.append(kv)
    elif kind == "PROFILE":
        prof.append(rest)
    elif kind == "BLAS":
        info["blas"] = rest

cases = {
    "a": ("MLP: 3×[dense, relu], dense(1)", "3000 × 784, symmetric", 15.0),
    "b": ("CNN: 3×[conv 3×3 same, relu], flatten, dense(1)", "1000 × 28×28×1, symmetric", None),
    "c": ("CNN: 3×[conv 3×3 circular, relu], gap, dense(1)", "48 × 8×8×1, symmetric", 50.0),
    "d": ("CNN: 3×[conv 3×3 same, relu], gap, dense(1)", "32 × 28×28×1, symmetric", 50.0),
}


def fmt(x):
    return f"{float(x):.3g}"


print("| case | architecture | inputs | ours (entries/s) | numpy (entries/s) | speed-up | CPU s ours / numpy (speed-up) | target | met |")
print("|---|---|---|---:|---:|---:|---:|---:|---|")
for c, (arch, inputs, target) in cases.items():
    ours, npy = res.get((c, "emergent")), res.get((c, "numpy"))
    if ours is None or npy is None:
        print(f"| ({c}) | {arch} | {inputs} | {'—' if ours is None else fmt(ours['eps'])} | "
              f"{'—' if npy is None else fmt(npy['eps'])} | — | — | not run |")
        continue
    inputs = f"{ours['n']} × " + inputs.split(" × ", 1)[1]
    speed = float(ours["eps"]) / float(npy["eps"])
    note = npy.get("note", "")
    m = re.match(r"subset_(\d+)_of_(\d+)_pairs", note)
    npy_txt = fmt(npy["eps"]) + (f" (subset: {m.group(1)} of {m.group(2)} pairs)" if m else "")
    tgt = f"≥ {target:g}×" if target else "—"
    met = ("yes" if speed >= target else "**no**") if target else "—"
    cpu_txt = "—"
    if "cpu" in ours and "cpu" in npy and float(ours["cpu"]) > 0:
        # numpy's CPU time is already projected to the full Gram when it timed a subset of pairs
        cpu_o, cpu_n = float(ours["cpu"]), float(npy["cpu"])
        cpu_txt = f"{fmt(cpu_o)} / {fmt(cpu_n)} ({cpu_n / cpu_o:.2f}×)"
    print(f"| ({c}) | {arch} | {inputs} | {fmt(ours['eps'])} ({fmt(ours['seconds'])} s) | {npy_txt} | "
          f"{speed:.2f}× | {cpu_txt} | {tgt} | {met} |")

ours, gemm, pas = res.get(("a", "emergent")), res.get(("a", "eigen_gemm")), res.get(("a", "matrix_pass"))
if ours and gemm and pas:
    t, tg, tp = float(ours["seconds"]), float(gemm["seconds"]), float(pas["seconds"])
    ratio = t / (tg + tp)
    npg = res.get(("a", "numpy_gemm"))
    print()
    print("| (a) floor | seconds |")
    print("|---|---:|")
    print(f"| Eigen x·xᵀ GEMM ({ours['n']}×784, {meta.get('threads', '?')} threads) | {fmt(tg)} |")
    if npg:
        print(f"| numpy X @ X.T (OpenBLAS, for reference) | {fmt(npg['seconds'])} |")
    print(f"| one read-modify-write pass over the N×N matrix | {fmt(tp)} |")
    print(f"| floor = GEMM + pass | {fmt(tg + tp)} |")
    print(f"| ours, full NNGP+NTK | {fmt(t)} |")
    print(f"| ours / floor (target ≤ 3) | {ratio:.2f} — {'met' if ratio <= 3 else '**not met**'} |")

if checks:
    print()
    print("| agreement check | inputs | NNGP max rel. diff | NTK max rel. diff | off-diagonal NNGP / NTK | ok |")
    print("|---|---|---:|---:|---:|---|")
    for k in checks:
        print(f"| {k['case']} | {k['n']} × {k['shape']} | {k['nngp_max_rel']} | {k['ntk_max_rel']} | "
              f"{k['offdiag_nngp']} / {k['offdiag_ntk']} | {'yes' if k['ok'] == '1' else '**NO**'} |")

print()
print(f"- date: {meta.get('date', '?')}; machine: {meta.get('nproc', '?')} cores (nproc), CPU \"{meta.get('cpu', '?')}\"")
print(f"- load average (1/5/15 min) at start: {meta.get('load_start', '?')}, at end: {meta.get('load_end', '?')}")
print(f"- numpy BLAS: {info.get('blas', '?')}")
print(f"- command: `{meta.get('command', '?')}`")
if prof:
    print()
    print("Sub-step profile:")
    print()
    for p in prof:
        print(f"    {p}")
EOF
}

if [[ -n $format_only ]]; then
  format_table "$format_only"
  exit 0
fi

bench="$build/apps/bench_kernels"
numpy_py="$here/kernels_numpy.py"
if [[ ! -x $bench ]]; then
  echo "$0: $bench not found: build it first (ninja -C $build apps/bench_kernels)" >&2
  exit 2
fi
threads=${THREADS:-2}
budget=${NUMPY_BUDGET:-15}
quick_args=("$@")

# Both sides on the same thread count.
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
raw="$work/raw.txt"
: >"$raw"

# numpy runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (this command alone): they are set on
# some machines for old OpenBLAS builds and slow a current one down.
run_numpy() {
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$numpy_py" "$@" | tee -a "$raw" >&2
}
run_ours() {
  "$bench" --threads "$threads" "${quick_args[@]}" "$@" | tee -a "$raw" >&2
}

{
  echo "META date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "META nproc=$(nproc)"
  echo "META threads=$threads"
  echo "META cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "META load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "META command=$0 $build${*:+ $*}  (THREADS=$threads NUMPY_BUDGET=$budget)"
} >>"$raw"

"$bench" --threads "$threads" "${quick_args[@]}" --write-cases "$work"
check_status=0
run_numpy --blas --cases "$work/cases.tsv" --check || check_status=$?

# Case by case, ours then numpy, so that both see the same machine load.
for c in ${CASES:-a b c d}; do
  run_ours --cases "$c"
  run_numpy --cases "$work/cases.tsv" --bench "$c" --budget "$budget"
done
if [[ ${PROFILE:-0} == 1 ]]; then
  # Small sizes; only the PROFILE lines go into the raw output.
  "$bench" --threads "$threads" --profile --cases abcd --quick | grep '^PROFILE' | tee -a "$raw" >&2
  run_numpy --profile
fi
echo "META load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw"

format_table "$raw"
echo "raw output: $raw" >&2
exit "$check_status"
