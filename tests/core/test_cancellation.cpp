// Cooperative cancellation (emergent/core/cancellation.hpp): a cancelled token stops kernels(),
// train_ensemble() and GradientFlow with emergent::Cancelled, also when cancelled from another
// thread in the middle of a run; a token that is never cancelled changes no bit of any result.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <exception>
#include <thread>

#include "emergent/core/architecture.hpp"
#include "emergent/core/cancellation.hpp"
#include "emergent/core/errors.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/networks/ensemble.hpp"
#include "support/test_support.hpp"

using namespace emergent;

namespace {

bool same_bytes(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}

template <class F>
bool throws_cancelled(F&& f) {
  try {
    f();
  } catch (const Cancelled&) {
    return true;
  }
  return false;
}

const Architecture& mlp() {
  static const Architecture a = Architecture::parse("dense(64) relu dense(64) erf dense(1)");
  return a;
}
const Architecture& cnn() {
  static const Architecture a = Architecture::parse("conv(4, 3x3, padding=circular) relu conv(4, 3x3) relu gap dense(1)");
  return a;
}

TrainingOptions training(int steps) {
  TrainingOptions o;
  o.members = 3;
  o.steps = steps;
  o.learning_rate = 0.5;
  o.seed = 11;
  o.checkpoints = {0, steps};
  o.threads = 2;
  return o;
}

}  // namespace

TEST_CASE("tokens: scopes nest and restore, throw_if_cancelled sees only the current token") {
  CHECK(current_cancellation_token() == nullptr);
  CHECK_NOTHROW(throw_if_cancelled());
  CancellationToken outer, inner;
  {
    const CancellationScope a(outer);
    CHECK(current_cancellation_token() == &outer);
    {
      const CancellationScope b(inner);
      CHECK(current_cancellation_token() == &inner);
      outer.cancel();
      CHECK_NOTHROW(throw_if_cancelled());  // the outer token is not current here
    }
    CHECK(current_cancellation_token() == &outer);
    CHECK_THROWS_AS(throw_if_cancelled(), Cancelled);
  }
  CHECK(current_cancellation_token() == nullptr);
  CHECK_NOTHROW(throw_if_cancelled());
  CHECK(outer.cancelled());
  CHECK_FALSE(inner.cancelled());
  // Another thread has no current token until it makes one current.
  bool other_thread_sees_none = false;
  {
    const CancellationScope a(outer);
    std::thread([&] { other_thread_sees_none = current_cancellation_token() == nullptr; }).join();
  }
  CHECK(other_thread_sees_none);
  // The translator names it.
  const Failure f = describe_failure(std::make_exception_ptr(Cancelled()));
  CHECK(f.kind == FailureKind::Cancelled);
  CHECK(f.message == "the computation was cancelled");
}

TEST_CASE("a cancelled token stops kernels(), train_ensemble() and GradientFlow with Cancelled") {
  const Inputs x = test::random_inputs(20, ExampleShape::vector(5), 3);
  const Inputs img = test::random_inputs(4, ExampleShape::image_hwc(5, 5, 1), 4);
  const RowMatrix y = test::normals(20, 1, 5);
  const Kernels k = kernels(mlp(), x);
  CancellationToken token;
  token.cancel();
  const CancellationScope scope(token);
  CHECK(throws_cancelled([&] { (void)kernels(mlp(), x); }));
  CHECK(throws_cancelled([&] { (void)kernels(cnn(), img); }));
  CHECK(throws_cancelled([&] { (void)train_ensemble(mlp(), x, y, x, training(5)); }));
  CHECK(throws_cancelled([&] { (void)GradientFlow(k.ntk, k.nngp, y); }));
}

TEST_CASE("cancelling from another thread stops a long training run part-way") {
  const Inputs x = test::random_inputs(16, ExampleShape::vector(5), 6);
  const RowMatrix y = test::normals(16, 1, 7);
  TrainingOptions o = training(2'000'000);  // hours if nothing stopped it
  o.checkpoints = {o.steps};
  CancellationToken token;
  std::atomic<long> seen{0};
  bool cancelled = false;
  std::thread worker([&] {
    const CancellationScope scope(token);
    cancelled = throws_cancelled([&] {
      (void)train_ensemble(mlp(), x, y, x, o, [&](long done, long) { seen = done; });
    });
  });
  while (seen.load() < 100) std::this_thread::yield();  // training is under way
  token.cancel();
  worker.join();
  CHECK(cancelled);
  CHECK(seen.load() < static_cast<long>(o.members) * o.steps);
}

TEST_CASE("a token that is never cancelled leaves every result bitwise unchanged") {
  const Inputs x = test::random_inputs(70, ExampleShape::vector(5), 8);  // > one 64-row tile
  const Inputs z = test::random_inputs(9, ExampleShape::vector(5), 9);
  const Inputs img = test::random_inputs(4, ExampleShape::image_hwc(5, 5, 1), 10);
  const RowMatrix y = test::normals(70, 1, 11);
  KernelOptions ko;
  ko.threads = 2;
  const Kernels plain = kernels(mlp(), x, ko), plain_zx = kernels(mlp(), z, x, ko), plain_cnn = kernels(cnn(), img, ko);
  const GradientFlow plain_flow(plain.ntk, plain.nngp, y);
  const auto plain_mean = plain_flow.mean({0.0, 3.0, 1e300}, plain_zx.ntk);
  const EnsembleResult plain_members = train_ensemble(mlp(), x, y, z, training(4));

  CancellationToken token;
  const CancellationScope scope(token);
  const Kernels k = kernels(mlp(), x, ko), kzx = kernels(mlp(), z, x, ko), kc = kernels(cnn(), img, ko);
  CHECK(same_bytes(k.ntk, plain.ntk));
  CHECK(same_bytes(k.nngp, plain.nngp));
  CHECK(same_bytes(kzx.ntk, plain_zx.ntk));
  CHECK(same_bytes(kc.ntk, plain_cnn.ntk));
  CHECK(same_bytes(kc.nngp, plain_cnn.nngp));
  const GradientFlow flow(k.ntk, k.nngp, y);
  const auto mean = flow.mean({0.0, 3.0, 1e300}, kzx.ntk);
  REQUIRE(mean.size() == plain_mean.size());
  for (std::size_t i = 0; i < mean.size(); ++i) CHECK(same_bytes(mean[i], plain_mean[i]));
  const EnsembleResult members = train_ensemble(mlp(), x, y, z, training(4));
  CHECK(members.predictions == plain_members.predictions);
  CHECK(members.train_loss == plain_members.train_loss);
  CHECK_FALSE(token.cancelled());
}
