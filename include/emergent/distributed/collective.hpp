// Failures of collective work under MPI: a step that throws on one rank must end the step on every
// rank with the same error, not leave the others waiting in the next collective call (a hang).
// Compiled only in builds with MPI (meson option `mpi`).
#pragma once

#include <mpi.h>

#include <functional>
#include <stdexcept>
#include <string>

namespace emergent::distributed {

/// What kind of failure a rank saw, so that every rank rethrows the same category (the CLI maps
/// bad input to exit 2 and internal failures to exit 1, docs/conventions.md §4).
enum class FailureKind { InvalidArgument = 1, OutOfMemory = 2, Runtime = 3 };

/// Thrown on every rank of a communicator after a collective step failed on at least one rank.
/// what() is the message of the lowest failing rank, prefixed "rank R: " when the communicator has
/// more than one rank; agreed() is true: every rank holds the same error.
class CollectiveError : public std::runtime_error {
 public:
  CollectiveError(FailureKind kind, int rank, const std::string& message)
      : std::runtime_error(message), kind_(kind), rank_(rank) {}
  FailureKind kind() const { return kind_; }
  int failing_rank() const { return rank_; }

 private:
  FailureKind kind_;
  int rank_;
};

/// The same, for bad input (std::invalid_argument, so callers that map it to "bad input" still do).
class CollectiveInvalidArgument : public std::invalid_argument {
 public:
  CollectiveInvalidArgument(int rank, const std::string& message) : std::invalid_argument(message), rank_(rank) {}
  int failing_rank() const { return rank_; }

 private:
  int rank_;
};

/// Runs `step` on this rank, then agrees with every rank of `comm` (one MPI_Allreduce, then one
/// broadcast if something failed): if `step` threw on any rank, every rank throws
/// CollectiveInvalidArgument (the lowest failing rank threw std::invalid_argument) or
/// CollectiveError (anything else; std::bad_alloc becomes FailureKind::OutOfMemory). Collective:
/// every rank of `comm` must call it, in the same order.
void collectively(MPI_Comm comm, const std::function<void()>& step);

/// True if `e` was raised by collectively(), i.e. every rank of the communicator holds it.
bool is_agreed(const std::exception& e);

}  // namespace emergent::distributed
