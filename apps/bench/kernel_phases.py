#!/usr/bin/env python3
"""`emergent kernel` by phase (docs/benchmarks.md, "MLP Gram command ... by phase").

Runs the MLP Gram command of issue 11 (3000 × 784 inputs, dense(512) relu ×3 dense(1), NNGP + NTK
into two .npy files) with EMERGENT_PHASE_LOG=1 for each given build directory, alternating the
builds run by run, and prints one markdown table per build: median wall time of each phase (range
in brackets), the process's CPU time and the main thread's CPU time between the marks. Start-up is
the time from posix_spawn to main(), exit the time from the last static destructor to the parent's
wait. Builds without the phase marks get only the whole command's row.

    flock /work/bench.lock apps/bench/kernel_phases.py [--runs 10] [--threads 2] BUILD [BUILD ...]
"""
import argparse
import os
import re
import statistics
import sys
import tempfile
import time

import numpy as np

ARCH = "dense(512) relu dense(512) relu dense(512) relu dense(1)"
ORDER = ["main", "parsed", "read", "planned", "faulted", "computed", "finished", "exit", "wait"]
LABEL = {
    "main": "start-up: exec to main()",
    "parsed": "options parsed",
    "read": "read the inputs (18.8 MB)",
    "planned": "plan: checks, copies, norms, until the sink starts",
    "faulted": "fault in what is left of the mapped outputs",
    "computed": "compute (tiles into the mapped files)",
    "finished": "finish: unmap, close, rename",
    "exit": "return from main, static destructors",
    "wait": "exit: process teardown until the parent's wait",
}


def run_once(binary, args, env):
    """(marks, total wall ns, child CPU ns): marks name → (wall ns, process CPU ns, thread CPU ns)."""
    err_r, err_w = os.pipe()
    t0 = time.monotonic_ns()
    pid = os.posix_spawn(binary, [binary] + args, env, file_actions=[(os.POSIX_SPAWN_DUP2, err_w, 2)])
    os.close(err_w)
    _, status, usage = os.wait4(pid, 0)
    t1 = time.monotonic_ns()
    err = os.read(err_r, 1 << 20).decode(errors="replace")
    os.close(err_r)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{binary} failed: {err}")
    marks = {"fork": (t0, 0, 0), "wait": (t1, -1, -1)}  # CPU clocks start at 0 in the child
    for line in err.splitlines():
        if line.startswith("phases"):
            for name, w, c, t in re.findall(r"(\w+)=(\d+)/(\d+)(?:/(\d+))?", line):
                marks[name] = (int(w), int(c), int(t) if t else -1)
    return marks, t1 - t0, int((usage.ru_utime + usage.ru_stime) * 1e9)


def table(name, runs):
    rows = {}
    for marks, total, cpu in runs:
        names = ["fork"] + [n for n in ORDER if n in marks]
        for a, b in zip(names, names[1:]) if len(names) > 2 else ():
            wall = (marks[b][0] - marks[a][0]) / 1e6
            pcpu = (marks[b][1] - marks[a][1]) / 1e6 if marks[a][1] >= 0 and marks[b][1] >= 0 else None
            tcpu = (marks[b][2] - marks[a][2]) / 1e6 if marks[a][2] >= 0 and marks[b][2] >= 0 else None
            rows.setdefault(b, []).append((wall, pcpu, tcpu))
        rows.setdefault("total", []).append((total / 1e6, cpu / 1e6, None))
        if "faulted" in marks and "computed" in marks:
            rows.setdefault("outside", []).append(((total - marks["computed"][0] + marks["faulted"][0]) / 1e6, None, None))

    def med(values):
        values = [v for v in values if v is not None]
        return f"{statistics.median(values):.1f}" if values else "—"

    print(f"\n{name}: {len(runs)} runs, milliseconds (median [range])\n")
    print("| phase | wall | CPU, process | CPU, main thread |")
    print("|---|---:|---:|---:|")
    for key in ORDER + ["total", "outside"]:
        if key not in rows:
            continue
        walls = [r[0] for r in rows[key]]
        label = {"total": "**whole command** (spawn to wait)", "outside": "**all but the compute**"}.get(key, LABEL.get(key, key))
        print(f"| {label} | {statistics.median(walls):.1f} [{min(walls):.0f}–{max(walls):.0f}] | "
              f"{med(r[1] for r in rows[key])} | {med(r[2] for r in rows[key])} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("builds", nargs="+")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    env = dict(os.environ, EMERGENT_PHASE_LOG="1", OMP_NUM_THREADS=str(a.threads),
               OPENBLAS_NUM_THREADS=str(a.threads), OMP_WAIT_POLICY="PASSIVE")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        x = os.path.join(tmp, "x784.npy")
        np.save(x, np.random.default_rng(0).standard_normal((3000, 784)))
        results = {b: [] for b in a.builds}
        for _ in range(a.runs):
            for k, b in enumerate(a.builds):
                args = ["kernel", "--arch", ARCH, "--x1", x, "--nngp", os.path.join(tmp, f"K{k}.npy"),
                        "--ntk", os.path.join(tmp, f"T{k}.npy"), "--threads", str(a.threads), "-q"]
                results[b].append(run_once(os.path.join(b, "apps", "emergent"), args, env))
        same = all(open(os.path.join(tmp, f"{n}0.npy"), "rb").read() == open(os.path.join(tmp, f"{n}{k}.npy"), "rb").read()
                   for n in "KT" for k in range(1, len(a.builds)))
        print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {open('/proc/loadavg').read().split()[:3]}, "
              f"outputs {'bitwise the same' if same else 'DIFFER'} across builds")
        for b in a.builds:
            table(b, results[b])


if __name__ == "__main__":
    main()
