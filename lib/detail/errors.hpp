// Internal: the one way library code reports a bad argument (std::invalid_argument whose
// message names the argument, the value and what was expected).
#pragma once

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "detail/format.hpp"

namespace emergent::detail {

[[noreturn]] inline void bad(const std::string& message) { throw std::invalid_argument(message); }

/// Whether a list of training times may be empty (an empty list asks for nothing).
enum class EmptyTimes { Allowed, Rejected };

/// Throws unless every training time is t >= 0 (inf allowed; the units of docs/conventions.md §3).
/// `where` (the function) prefixes the message.
inline void check_times(const std::vector<double>& times, const std::string& where, EmptyTimes empty) {
  if (empty == EmptyTimes::Rejected && times.empty())
    bad(where + ": times is empty; expected at least one time t >= 0");
  for (std::size_t i = 0; i < times.size(); ++i)
    if (std::isnan(times[i]) || times[i] < 0.0)
      bad(where + ": times[" + std::to_string(i) + "] = " + value_text(times[i]) +
          ": expected t >= 0 (in steps; inf allowed)");
}

}  // namespace emergent::detail
