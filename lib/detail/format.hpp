// Internal: numbers in messages and reports.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace emergent::detail {

/// Three significant digits ("%.3g"), the precision of every diagnostic message.
inline std::string num(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}

/// A training time: "inf" or num(t).
inline std::string time_text(double t) { return std::isinf(t) ? "inf" : num(t); }

}  // namespace emergent::detail
