// Internal: numbers in messages and reports, one precision per purpose.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

namespace emergent::detail {

/// Three significant digits ("%.3g"): diagnostics and summaries, where a number is read, not reused.
inline std::string num(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}

/// Six significant digits ("%.6g"): a value the caller passed, quoted in an error message so
/// that it can be recognised.
inline std::string value_text(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6g", v);
  return buffer;
}

/// Seventeen significant digits ("%.17g"): round-trips every double, for values compared against
/// a boundary they may miss by one ulp.
inline std::string exact_text(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", v);
  return buffer;
}

/// A training time: "inf" or num(t).
inline std::string time_text(double t) { return std::isinf(t) ? "inf" : num(t); }

}  // namespace emergent::detail
