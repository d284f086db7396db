// Internal: the one way library code reports a bad argument (std::invalid_argument whose
// message names the argument, the value and what was expected).
#pragma once

#include <stdexcept>
#include <string>

namespace emergent::detail {

[[noreturn]] inline void bad(const std::string& message) { throw std::invalid_argument(message); }

}  // namespace emergent::detail
