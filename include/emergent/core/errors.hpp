// What went wrong, in our words, at the API boundary. The library reports bad arguments as
// std::invalid_argument (message: the argument, the value, what was expected) and numerical
// outcomes in status fields; but its dependencies throw their own exceptions (Boost.Math
// evaluation and domain errors, std::bad_alloc, std::length_error from a container sized by the
// input, std::out_of_range, nlohmann::json parse errors ...). describe_failure maps any exception
// to one kind and one self-contained line, so the CLI (stderr + exit code) and the Python
// bindings (exception class + message) say the same thing.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace emergent {

/// A computation that failed numerically in a way no status field can describe (a root finder
/// that cannot bracket its root, a special function outside its domain). The message names the
/// routine of ours that failed and quotes the dependency's own text.
class NumericalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class FailureKind {
  BadInput,     ///< the caller's arguments or files (CLI exit 2; Python ValueError)
  OutOfMemory,  ///< an allocation failed (CLI exit 1; Python MemoryError)
  Cancelled,    ///< emergent::Cancelled (core/cancellation.hpp)
  Numerical,    ///< NumericalError or a dependency's evaluation/domain/overflow error (exit 1; RuntimeError)
  Internal,     ///< anything else: a bug of ours (exit 1; RuntimeError)
};

struct Failure {
  FailureKind kind = FailureKind::Internal;
  std::string message;  ///< one line, no trailing newline
};

/// The kind and our message for the exception `error` (rethrown and caught inside; never throws).
/// Our own exceptions keep their messages; a dependency's message is kept in parentheses after
/// ours, e.g. "a size computed from the input exceeds what this machine can allocate
/// (std::length_error: cannot create std::vector larger than max_size())".
Failure describe_failure(const std::exception_ptr& error) noexcept;

}  // namespace emergent
