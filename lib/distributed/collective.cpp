// Error agreement for collective steps (include/emergent/distributed/collective.hpp).
#include "emergent/distributed/collective.hpp"

#include <exception>
#include <new>
#include <vector>

namespace emergent::distributed {

void collectively(MPI_Comm comm, const std::function<void()>& step) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int kind = 0, nested = 0;  // nested: already agreed by an inner collectively(), already prefixed
  std::string message;
  try {
    step();
  } catch (const CollectiveInvalidArgument& e) {  // nested: keep the original rank's text
    kind = static_cast<int>(FailureKind::InvalidArgument), message = e.what(), nested = 1;
  } catch (const CollectiveError& e) {
    kind = static_cast<int>(e.kind()), message = e.what(), nested = 1;
  } catch (const std::invalid_argument& e) {
    kind = static_cast<int>(FailureKind::InvalidArgument), message = e.what();
  } catch (const std::bad_alloc&) {
    kind = static_cast<int>(FailureKind::OutOfMemory), message = "out of memory (try a smaller --memory-cap or more ranks)";
  } catch (const std::exception& e) {
    kind = static_cast<int>(FailureKind::Runtime), message = e.what();
  } catch (...) {
    kind = static_cast<int>(FailureKind::Runtime), message = "unknown internal error";
  }
  // The lowest failing rank speaks for all: MIN over (failed ? rank : size).
  const int mine = kind != 0 ? rank : size;
  int first = size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
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

bool is_agreed(const std::exception& e) {
  return dynamic_cast<const CollectiveError*>(&e) != nullptr ||
         dynamic_cast<const CollectiveInvalidArgument*>(&e) != nullptr;
}

}  // namespace emergent::distributed
