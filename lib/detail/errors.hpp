// Internal: the one way library code reports a bad argument (std::invalid_argument whose
// message names the argument, the value and what was expected).
#pragma once

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "detail/format.hpp"
#include "emergent/core/cancellation.hpp"
#include "emergent/core/errors.hpp"

namespace emergent::detail {

[[noreturn]] inline void bad(const std::string& message) { throw std::invalid_argument(message); }

/// Runs `f`, a call into a dependency's numerical routine (a Boost.Math root finder or special
/// function). Its exceptions (boost::math::evaluation_error "… do not bracket the root",
/// std::domain_error, std::overflow_error …) become emergent::NumericalError naming `where`, the
/// step of ours that failed, with the dependency's text quoted by describe_failure. Our own
/// exceptions (bad arguments, Cancelled) and std::bad_alloc pass through unchanged.
template <class F>
auto guard_numerics(const char* where, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const Cancelled&) {
    throw;
  } catch (const NumericalError&) {
    throw;
  } catch (const std::logic_error&) {  // std::domain_error of a special function
    throw NumericalError(std::string(where) + ": " + describe_failure(std::current_exception()).message);
  } catch (const std::runtime_error&) {  // evaluation/rounding errors, overflow/underflow
    throw NumericalError(std::string(where) + ": " + describe_failure(std::current_exception()).message);
  }
}

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
