// Internal: exceptions must not leave an OpenMP region (that calls std::terminate). Every
// parallel loop body runs through ParallelErrors::run; after the region, rethrow() raises the
// exception of the lowest iteration that failed, so the message does not depend on the
// thread count. Also the one bound on thread counts a caller may request.
//
// Cancellation (emergent/core/cancellation.hpp): the helper captures the calling thread's current
// token when it is constructed (just before the region), checks it before every iteration and
// makes it current on the worker thread while the body runs, so serial checks inside the body
// (throw_if_cancelled) see it too. A cancelled iteration records emergent::Cancelled like any
// other failure; the remaining iterations are skipped. No check touches the arithmetic.
#pragma once

#include <exception>
#include <limits>
#include <mutex>
#include <string>

#include "emergent/core/cancellation.hpp"

namespace emergent::detail {

/// Largest OpenMP thread count a caller may request; more is refused by the …Options::IsValid
/// checks (libgomp crashes when it cannot create the threads).
inline constexpr int kMaxThreads = 1024;

class ParallelErrors {
 public:
  ParallelErrors() noexcept : token_(current_cancellation_token()) {}

  /// Runs f(); an exception is recorded instead of propagating. `index` orders failures. Once the
  /// captured token is cancelled, f is not run and Cancelled is recorded instead.
  template <class F>
  void run(long long index, F&& f) noexcept {
    try {
      if (token_ != nullptr && token_->cancelled()) throw Cancelled();
      const CancellationScope scope(token_);
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_ || index < index_) {
        error_ = std::current_exception();
        index_ = index;
      }
    }
  }
  /// Whether some iteration failed (loops may skip the remaining work).
  bool failed() const noexcept { return static_cast<bool>(error_); }
  /// Call after the parallel region.
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  const CancellationToken* token_;
  std::mutex mutex_;
  std::exception_ptr error_;
  long long index_ = std::numeric_limits<long long>::max();
};

}  // namespace emergent::detail
