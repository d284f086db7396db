// Wall and CPU time at the phases of a command, for profiling the CLI itself (docs/benchmarks.md
// measures `emergent kernel` by phase): with EMERGENT_PHASE_LOG set, phase_mark(name) records the
// monotonic clock, the process's CPU time and the calling thread's, and the marks go to stderr as
// one line at exit ("phases main=<ns>/<process cpu ns>/<thread cpu ns> read=... "), absolute
// CLOCK_MONOTONIC nanoseconds, so a parent that reads the clock before fork/exec and after wait
// gets start-up and exit as well. Without the variable a mark costs one branch.
#pragma once

namespace emergent::cli {

void phase_mark(const char* name) noexcept;

}  // namespace emergent::cli
