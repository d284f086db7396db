// Memory accounting for blocked Gram-matrix computations: how much RAM there is, the default
// cap (a quarter of it, so that a kernel job leaves room for everything else on the machine),
// the peak RSS actually used, and human-readable sizes in and out (binary units: K = 1024).
#include "emergent/core/memory.hpp"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>

namespace emergent {

namespace {

// A "Key:   12345 kB" line of /proc/meminfo or /proc/self/status, in bytes (0 if absent).
std::size_t proc_kib_field(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      unsigned long long kib = 0;
      if (std::sscanf(line.c_str() + key.size() + 1, "%llu", &kib) == 1) return static_cast<std::size_t>(kib) * 1024;
    }
  }
  return 0;
}

constexpr std::size_t kGiB = std::size_t{1} << 30;

}  // namespace

std::size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page_size);
  return proc_kib_field("/proc/meminfo", "MemTotal");
}

std::size_t default_memory_cap_bytes() {
  const std::size_t total = physical_memory_bytes();
  return total == 0 ? kGiB : total / 4;
}

std::size_t peak_rss_bytes() {
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) == 0 && usage.ru_maxrss > 0)
    return static_cast<std::size_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
  return proc_kib_field("/proc/self/status", "VmHWM");
}

void prefer_huge_pages(void* data, std::size_t bytes) {
  constexpr std::uintptr_t kHuge = std::uintptr_t(2) << 20;
  if (bytes < 4 * kHuge) return;
  const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

std::string format_bytes(std::size_t bytes) {
  static const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  // Three significant digits; bump the unit if rounding reaches 1024 (e.g. 1023.9 KiB).
  const int decimals = v < 10 ? 2 : v < 100 ? 1 : 0;
  const double scale = std::pow(10.0, decimals);
  if (std::round(v * scale) / scale >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f %s", decimals, v, units[u]);
  return buf;
}

std::size_t parse_bytes(const std::string& text, const std::string& what) {
  const auto bad = [&](const std::string& why) -> std::invalid_argument {
    return std::invalid_argument(what + ": '" + text + "' " + why +
                                 "; expected a size such as 4G, 512M, 1.5GiB, 100000 (bytes) or 25% (of RAM)");
  };
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const std::size_t num_start = i;
  while (i < n && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::size_t int_digits = i - num_start;
  std::size_t frac_digits = 0;
  if (i < n && text[i] == '.') {
    ++i;
    const std::size_t f = i;
    while (i < n && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    frac_digits = i - f;
  }
  if (int_digits + frac_digits == 0) throw bad("does not start with a number");
  const double value = std::stod(text.substr(num_start, i - num_start));
  while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit;
  for (; i < n; ++i) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) break;
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  }
  while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i != n) throw bad("has trailing characters");

  double bytes = 0;
  if (unit == "%") {
    if (!(value > 0 && value <= 100)) throw bad("is not a percentage in (0, 100]");
    const std::size_t total = physical_memory_bytes();
    if (total == 0) throw bad("is relative, but the physical memory of this machine is unknown");
    bytes = std::floor(static_cast<double>(total) * value / 100.0);
  } else {
    double mult = 0;
    if (unit.empty() || unit == "b") mult = 1;
    else if (unit == "k" || unit == "kb" || unit == "kib") mult = 0x1p10;
    else if (unit == "m" || unit == "mb" || unit == "mib") mult = 0x1p20;
    else if (unit == "g" || unit == "gb" || unit == "gib") mult = 0x1p30;
    else if (unit == "t" || unit == "tb" || unit == "tib") mult = 0x1p40;
    else throw bad("has an unknown unit '" + unit + "' (use B, K, M, G, T or %)");
    bytes = std::floor(value * mult);
  }
  if (!(bytes >= 1)) throw bad("is not positive");
  if (!(bytes < static_cast<double>(std::numeric_limits<std::size_t>::max()))) throw bad("is too large");
  return static_cast<std::size_t>(bytes);
}

}  // namespace emergent
