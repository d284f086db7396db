// CPU time of the whole process for the benchmark programs.
#pragma once

#include <sys/resource.h>

namespace emergent_bench {

/// User + system CPU seconds of this process (all threads): less sensitive than wall time to
/// other jobs on a shared machine.
inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

}  // namespace emergent_bench
