// Cooperative cancellation of long computations. A caller (the Python bindings on Ctrl-C, a GUI,
// a server with a deadline) owns a CancellationToken, makes it current on the thread that runs
// the computation with a CancellationScope, and calls cancel() from any other thread. The library
// checks the current token once per iteration of every parallel loop and in its long serial
// loops (gradient steps, Monte Carlo sweeps, kernel bands, eigenvector panels) and then throws
// emergent::Cancelled. Checking never changes the arithmetic: an uncancelled run gives the same
// bytes as a run without a token. The latency is one loop iteration, plus the longest step that
// cannot be interrupted (a single LAPACK reduction such as dsytrd/dstedc of one matrix).
#pragma once

#include <atomic>
#include <stdexcept>

namespace emergent {

/// Thrown by a computation whose current token was cancelled. Not a std::invalid_argument: the
/// input was fine, the caller asked to stop. Nothing partial is returned.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("the computation was cancelled") {}
};

/// A flag one thread sets and computations on other threads poll (lock-free, noexcept).
class CancellationToken {
 public:
  CancellationToken() = default;
  CancellationToken(const CancellationToken&) = delete;
  CancellationToken& operator=(const CancellationToken&) = delete;

  /// Ask every computation that has this token current to stop (idempotent; any thread).
  void cancel() noexcept { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

/// Makes `token` the current token of the calling thread for the scope's lifetime; scopes nest
/// (the previous token is restored). The token must outlive the scope. Parallel regions started
/// inside the scope pass the token on to their worker threads.
class CancellationScope {
 public:
  explicit CancellationScope(const CancellationToken* token) noexcept;
  explicit CancellationScope(const CancellationToken& token) noexcept : CancellationScope(&token) {}
  ~CancellationScope();
  CancellationScope(const CancellationScope&) = delete;
  CancellationScope& operator=(const CancellationScope&) = delete;

 private:
  const CancellationToken* previous_;
};

/// The calling thread's current token (nullptr: none, the computation cannot be cancelled).
const CancellationToken* current_cancellation_token() noexcept;

/// Throws Cancelled if the calling thread's current token was cancelled; otherwise nothing.
void throw_if_cancelled();

}  // namespace emergent
