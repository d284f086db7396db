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
/// every rank of `comm` must call it, in the same order. Steps may nest: an error already agreed
/// by an inner step passes through the outer ones without another round (the ranks that failed
/// in the outer step met the others' inner agreement). `step` itself must not wait in other
/// collective calls that a failing rank would skip (use without_agreement for those).
void collectively(MPI_Comm comm, const std::function<void()>& step);

/// True if `e` was raised by collectively(), i.e. every rank of the communicator holds it.
bool is_agreed(const std::exception& e);

/// Runs `section`, a stretch in which the ranks of `comm` meet in collective calls that need every
/// rank (PBLAS products, reductions, the eigensolver). A failure there cannot be agreed on: the
/// other ranks wait inside a collective call for this one and would never reach the agreement. So
/// an exception escaping `section` ends the job: the fatal handler gets this rank's one-line
/// message ("rank R: …" when there are several ranks), then MPI_Abort(comm, 2 for bad input, else 1).
/// Allocate and check inside collectively() steps, compute in these sections.
void without_agreement(MPI_Comm comm, const std::function<void()>& section);

/// What without_agreement calls before MPI_Abort: the failing rank, the kind of failure and its
/// message. The default writes the message and a newline to stderr. The `emergent` CLI forwards it
/// to rank 0, which prints the job's one error line.
using FatalHandler = void (*)(int rank, FailureKind kind, const std::string& message);
void set_fatal_handler(FatalHandler handler);

}  // namespace emergent::distributed
