#include "support/phase_log.hpp"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace emergent::cli {

namespace {

struct Mark {
  const char* name;
  long long wall, cpu, thread_cpu;
};

long long read_clock(clockid_t id) noexcept {
  timespec t{};
  ::clock_gettime(id, &t);
  return static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

struct PhaseLog {
  bool enabled = std::getenv("EMERGENT_PHASE_LOG") != nullptr;
  Mark marks[32];
  std::atomic<int> count{0};
  ~PhaseLog() {
    if (!enabled) return;
    const int n = std::min(count.load(), 32);
    std::fprintf(stderr, "phases");
    for (int k = 0; k < n; ++k)
      std::fprintf(stderr, " %s=%lld/%lld/%lld", marks[k].name, marks[k].wall, marks[k].cpu, marks[k].thread_cpu);
    std::fprintf(stderr, " exit=%lld/%lld/%lld\n", read_clock(CLOCK_MONOTONIC), read_clock(CLOCK_PROCESS_CPUTIME_ID),
                 read_clock(CLOCK_THREAD_CPUTIME_ID));
  }
};

PhaseLog& log() {
  static PhaseLog instance;
  return instance;
}

}  // namespace

void phase_mark(const char* name) noexcept {
  PhaseLog& l = log();
  if (!l.enabled) return;
  const int k = l.count++;
  if (k < 32)
    l.marks[k] = {name, read_clock(CLOCK_MONOTONIC), read_clock(CLOCK_PROCESS_CPUTIME_ID), read_clock(CLOCK_THREAD_CPUTIME_ID)};
}

}  // namespace emergent::cli
