// Internal: exceptions must not leave an OpenMP region (that calls std::terminate). Every
// parallel loop body runs through ParallelErrors::run; after the region, rethrow() raises the
// exception of the lowest iteration that failed, so the message does not depend on the
// thread count. Also the one bound on thread counts a caller may request.
#pragma once

#include <exception>
#include <limits>
#include <mutex>
#include <string>

namespace emergent::detail {

/// Largest OpenMP thread count a caller may request; more is refused by the …Options::IsValid
/// checks (libgomp crashes when it cannot create the threads).
inline constexpr int kMaxThreads = 1024;

class ParallelErrors {
 public:
  /// Runs f(); an exception is recorded instead of propagating. `index` orders failures.
  template <class F>
  void run(long long index, F&& f) noexcept {
    try {
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
  std::mutex mutex_;
  std::exception_ptr error_;
  long long index_ = std::numeric_limits<long long>::max();
};

}  // namespace emergent::detail
