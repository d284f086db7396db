// The current token is thread-local: each computation sees the token of the thread that started
// it, and lib/detail/parallel.hpp hands it to OpenMP worker threads.
#include "emergent/core/cancellation.hpp"

namespace emergent {

namespace {
thread_local const CancellationToken* current_token = nullptr;
}  // namespace

CancellationScope::CancellationScope(const CancellationToken* token) noexcept : previous_(current_token) {
  current_token = token;
}

CancellationScope::~CancellationScope() { current_token = previous_; }

const CancellationToken* current_cancellation_token() noexcept { return current_token; }

void throw_if_cancelled() {
  if (current_token != nullptr && current_token->cancelled()) throw Cancelled();
}

}  // namespace emergent
