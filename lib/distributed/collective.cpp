// Error agreement for collective steps (include/emergent/distributed/collective.hpp).
#include "emergent/distributed/collective.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <utility>
#include <vector>

namespace emergent::distributed {

namespace {

constexpr const char* kOutOfMemory = "out of memory (try a smaller --memory-cap or more ranks)";

// The kind and message of the exception in flight (called inside a catch block).
std::pair<FailureKind, std::string> current_failure() {
  try {
    throw;
  } catch (const std::invalid_argument& e) {
    return {FailureKind::InvalidArgument, e.what()};
  } catch (const std::bad_alloc&) {
    return {FailureKind::OutOfMemory, kOutOfMemory};
  } catch (const CollectiveError& e) {
    return {e.kind(), e.what()};
  } catch (const std::exception& e) {
    return {FailureKind::Runtime, e.what()};
  } catch (...) {
    return {FailureKind::Runtime, "unknown internal error"};
  }
}

void default_fatal_handler(int, FailureKind, const std::string& message) {
  const std::string line = message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

FatalHandler g_fatal_handler = &default_fatal_handler;

}  // namespace

void collectively(MPI_Comm comm, const std::function<void()>& step) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int kind = 0;
  std::string message;
  try {
    step();
  } catch (const CollectiveInvalidArgument&) {  // agreed by an inner step on every rank: no new round
    throw;
  } catch (const CollectiveError&) {
    throw;
  } catch (...) {
    auto [k, m] = current_failure();
    kind = static_cast<int>(k), message = std::move(m);
  }
  const int nested = 0;
  // The lowest failing rank speaks for all: MIN over (failed ? rank : size).
  const int mine = kind != 0 ? rank : size;
  int first = size;
  // A rank that arrives early may wait long (the others still computing their bands): it waits
  // asleep, not in MPI's busy poll, so that waiting costs no CPU (a core the others may need).
  MPI_Request request;
  MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm, &request);
  int done = 0;
  for (int polls = 0; MPI_Test(&request, &done, MPI_STATUS_IGNORE), !done; ++polls)
    if (polls > 100) ::usleep(polls > 1000 ? 2000 : 200);
  if (first == size) return;
  int header[3] = {kind, static_cast<int>(message.size()), nested};
  MPI_Bcast(header, 3, MPI_INT, first, comm);
  std::vector<char> text(static_cast<std::size_t>(header[1]));
  if (rank == first) text.assign(message.begin(), message.end());
  if (header[1] > 0) MPI_Bcast(text.data(), header[1], MPI_CHAR, first, comm);
  std::string what(text.begin(), text.end());
  if (size > 1 && !header[2]) what = "rank " + std::to_string(first) + ": " + what;
  if (header[0] == static_cast<int>(FailureKind::InvalidArgument)) throw CollectiveInvalidArgument(first, what);
  throw CollectiveError(static_cast<FailureKind>(header[0]), first, what);
}

void without_agreement(MPI_Comm comm, const std::function<void()>& section) {
  try {
    section();
  } catch (const CollectiveInvalidArgument&) {  // agreed in a step inside: every rank holds it
    throw;
  } catch (const CollectiveError&) {
    throw;
  } catch (...) {
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    const auto [kind, message] = current_failure();
    g_fatal_handler(rank, kind, size > 1 ? "rank " + std::to_string(rank) + ": " + message : message);
    MPI_Abort(comm, kind == FailureKind::InvalidArgument ? 2 : 1);
    std::abort();  // MPI_Abort does not return
  }
}

void set_fatal_handler(FatalHandler handler) { g_fatal_handler = handler ? handler : &default_fatal_handler; }

bool is_agreed(const std::exception& e) {
  return dynamic_cast<const CollectiveError*>(&e) != nullptr ||
         dynamic_cast<const CollectiveInvalidArgument*>(&e) != nullptr;
}

}  // namespace emergent::distributed
