// Finite-width ensembles trained by gradient descent (ensemble.hpp).
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include "support/enum_names.hpp"

#include <algorithm>
#include <cmath>
#include <emergent/networks/ensemble.hpp>
#include <emergent/networks/network.hpp>
#include <emergent/core/random.hpp>

using namespace emergent;

namespace {

using test::normals;

Inputs vectors(Eigen::Index n, int d, std::uint64_t seed) { return Inputs(normals(n, d, seed), ExampleShape::vector(d)); }

}  // namespace

TEST_CASE("a linear network follows the discrete linear recursion of gradient descent exactly") {
  // f = (W/√d)·ω·x + B·β is linear in its parameters, so its NTK Θ̂ = W²·x·x'/d + B² is constant
  // and one GD step on L = ½(1/(N·k))Σ‖f − y‖² maps f(x) ↦ f(x) − (η/(N·k))·Θ̂(x, X)(f(X) − Y).
  const int d = 5, k = 2, N = 6;
  const Inputs train = vectors(N, d, 1);
  const RowMatrix y = normals(N, k, 2);
  RowMatrix all(N + 3, d);
  all << train.x, normals(3, d, 3);
  const Inputs test(all, train.shape);
  TrainingOptions opt;
  opt.members = 2;
  opt.steps = 40;
  opt.learning_rate = 0.7;
  opt.checkpoints = {0, 1, 7, 40};
  const auto arch = Architecture::parse("dense(2, w=1.3, b=0.4)");
  const auto res = train_ensemble(arch, train, y, test, opt);
  const Eigen::MatrixXd theta = (1.69 / d) * (all * train.x.transpose()).array() + 0.16;
  for (int m = 0; m < 2; ++m) {
    RowMatrix f(N + 3, k);
    for (Eigen::Index i = 0; i < N + 3; ++i)
      for (Eigen::Index j = 0; j < k; ++j) f(i, j) = res.at(m, 0, i, j);
    int step = 0;
    for (int c = 1; c < 4; ++c) {
      for (; step < opt.checkpoints[static_cast<std::size_t>(c)]; ++step) {
        const RowMatrix residual = f.topRows(N) - y;
        f -= (opt.learning_rate / (N * k)) * theta * residual;
      }
      double worst = 0;
      for (Eigen::Index i = 0; i < N + 3; ++i)
        for (Eigen::Index j = 0; j < k; ++j) worst = std::max(worst, std::abs(f(i, j) - res.at(m, c, i, j)));
      CHECK(worst < 1e-12);
      // The recorded training loss is that of docs/conventions.md §3.
      CHECK(res.train_loss[static_cast<std::size_t>(m) * 4 + c] ==
            doctest::Approx(0.5 * (f.topRows(N) - y).squaredNorm() / (N * k)).epsilon(1e-10));
    }
  }
}

TEST_CASE("members are seeded by (seed, member): independent of thread count and ensemble size") {
  const Inputs train = vectors(8, 4, 11);
  const RowMatrix y = normals(8, 1, 12);
  const Inputs test = vectors(5, 4, 13);
  const auto arch = Architecture::parse("dense(64, b=0.1) relu dense(64) erf dense(1)");
  TrainingOptions opt;
  opt.members = 3;
  opt.steps = 30;
  opt.learning_rate = 0.5;
  opt.checkpoints = {0, 30};
  opt.threads = 1;
  const auto a = train_ensemble(arch, train, y, test, opt);
  opt.threads = 2;
  opt.members = 5;
  const auto b = train_ensemble(arch, train, y, test, opt);
  for (int m = 0; m < 3; ++m)
    for (int c = 0; c < 2; ++c)
      for (Eigen::Index i = 0; i < 5; ++i) CHECK(a.at(m, c, i, 0) == b.at(m, c, i, 0));
  CHECK(a.at(0, 1, 0, 0) != a.at(1, 1, 0, 0));
  opt.seed = 99;
  const auto c = train_ensemble(arch, train, y, test, opt);
  CHECK(c.at(0, 1, 0, 0) != b.at(0, 1, 0, 0));
  // Checkpoint 0 is the untrained network.
  const Network net(arch, train.shape, member_seed(0, 1));
  const RowMatrix f0 = net.forward(test);
  for (Eigen::Index i = 0; i < 5; ++i) CHECK(a.at(1, 0, i, 0) == f0(i, 0));
}

TEST_CASE("the one-pass dense descent step gives the same bits at 1 and 2 threads") {
  // 136 outputs of a 296-input layer: two row blocks and a narrow last column panel (network.cpp).
  const Inputs train = vectors(16, 4, 21);
  const RowMatrix y = normals(16, 1, 22);
  const auto arch = Architecture::parse("dense(296, b=0.1) relu dense(136, b=0.1) relu dense(1)");
  TrainingOptions opt;
  opt.members = 3;
  opt.steps = 5;
  opt.learning_rate = 0.5;
  opt.checkpoints = {0, 5};
  opt.threads = 1;
  const auto a = train_ensemble(arch, train, y, train, opt);
  opt.threads = 2;
  const auto b = train_ensemble(arch, train, y, train, opt);
  CHECK(a.predictions == b.predictions);
  CHECK(a.train_loss == b.train_loss);
  CHECK(a.train_loss[1] < a.train_loss[0]);
}

TEST_CASE("training on weights in panels equals the network's own descent steps, bit for bit") {
  // train_ensemble steps dense chains on a private panel-major copy of the weights of every layer
  // after the first with a fan-in that is a multiple of 8 (lib/networks/panel_training.hpp), with
  // the sums of Network::mse_descent_step in the same order. Fan-ins 40 and 296 leave a last
  // panel of 8 columns, 296 and 136 outputs ragged row tiles, 24 and 40 examples a last column
  // block of 8 examples; relu's slopes are fused into the step, tanh's are not. Test points other
  // than the training points, and the training points themselves (the checkpoint loss then comes
  // from the test predictions).
  const auto arch = Architecture::parse("dense(40, b=0.2) relu dense(296, b=0.1) relu dense(136) tanh dense(1, b=0.3)");
  for (Eigen::Index n : {Eigen::Index(24), Eigen::Index(40)}) {
    for (bool same : {false, true}) {
      CAPTURE(n);
      CAPTURE(same);
      const Inputs train = vectors(n, 16, 71);
      const RowMatrix y = normals(n, 1, 72);
      const Inputs test = same ? train : vectors(12, 16, 73);
      TrainingOptions opt;
      opt.members = 2;
      opt.steps = 4;
      opt.learning_rate = 0.4;
      opt.checkpoints = {0, 3, 4};
      opt.threads = 2;
      const auto r = train_ensemble(arch, train, y, test, opt);
      for (int m = 0; m < opt.members; ++m) {
        Network net(arch, train.shape, member_seed(opt.seed, m));
        std::size_t c = 0;
        for (int step = 0; step <= opt.steps; ++step) {
          const bool record = c < opt.checkpoints.size() && opt.checkpoints[c] == step;
          double loss = 0;
          if (record) {
            const RowMatrix f = net.forward(test);
            const std::size_t base = (static_cast<std::size_t>(m) * opt.checkpoints.size() + c) * f.size();
            CHECK(std::equal(f.data(), f.data() + f.size(), r.predictions.begin() + static_cast<std::ptrdiff_t>(base)));
          }
          if (step < opt.steps) {
            loss = net.mse_descent_step(train, y, opt.learning_rate);
          } else {
            const RowMatrix f = net.forward(train);
            loss = 0.5 * (f - y).squaredNorm() / static_cast<double>(f.size());
          }
          if (record) {
            const double got = r.train_loss[static_cast<std::size_t>(m) * opt.checkpoints.size() + c];
            CHECK(std::abs(got - loss) <= 1e-15 * loss);
            ++c;
          }
        }
      }
    }
  }
}

TEST_CASE("softmax cross-entropy training on weights in panels is gradient descent on that loss") {
  // The panels' descent_step with a loss given as a function: θ ← θ − η·vjp(x, ∂L/∂f) with
  // ∂L/∂f_i = (softmax(f_i) − y_i)/N, from the network's public vjp.
  const auto arch = Architecture::parse("dense(24, b=0.1) relu dense(48, b=0.1) relu dense(3)");
  const Eigen::Index n = 16;
  const Inputs train = vectors(n, 5, 81);
  RowMatrix y = RowMatrix::Zero(n, 3);
  for (Eigen::Index i = 0; i < n; ++i) y(i, i % 3) = 1.0;
  TrainingOptions opt;
  opt.members = 1;
  opt.steps = 3;
  opt.learning_rate = 0.5;
  opt.checkpoints = {3};
  opt.threads = 1;
  opt.loss = TrainingLoss::SoftmaxCrossEntropy;
  const auto r = train_ensemble(arch, train, y, train, opt);
  Network net(arch, train.shape, member_seed(opt.seed, 0));
  for (int step = 0; step < opt.steps; ++step) {
    const RowMatrix f = net.forward(train);
    RowMatrix c(n, 3);
    for (Eigen::Index i = 0; i < n; ++i) {
      const Eigen::RowVectorXd e = (f.row(i).array() - f.row(i).maxCoeff()).exp();
      c.row(i) = (e / e.sum() - y.row(i)) / static_cast<double>(n);
    }
    net.parameters() -= opt.learning_rate * net.vjp(train, c);
  }
  const RowMatrix f = net.forward(train);
  double scale = 0, diff = 0;
  for (Eigen::Index i = 0; i < f.size(); ++i) {
    scale = std::max(scale, std::abs(f.data()[i]));
    diff = std::max(diff, std::abs(f.data()[i] - r.predictions[static_cast<std::size_t>(i)]));
  }
  REQUIRE(scale > 0.0);
  CHECK(diff <= 1e-13 * scale);
}

TEST_CASE("training lowers the loss: MSE full batch, minibatch SGD, softmax cross-entropy") {
  const Inputs train = vectors(16, 6, 21);
  const RowMatrix y = normals(16, 2, 22);
  const auto arch = Architecture::parse("dense(256, b=0.1) relu dense(256) relu dense(2)");
  TrainingOptions opt;
  opt.members = 2;
  opt.steps = 300;
  opt.learning_rate = 1.0;
  opt.checkpoints = {0, 100, 300};
  const auto gd = train_ensemble(arch, train, y, train, opt);
  for (int m = 0; m < 2; ++m) {
    CHECK(gd.train_loss[m * 3 + 1] < gd.train_loss[m * 3 + 0]);
    CHECK(gd.train_loss[m * 3 + 2] < gd.train_loss[m * 3 + 1]);
    CHECK(gd.train_loss[m * 3 + 2] < 0.25 * gd.train_loss[m * 3 + 0]);
  }
  opt.batch_size = 4;
  opt.learning_rate = 0.5;
  const auto sgd = train_ensemble(arch, train, y, train, opt);
  const auto sgd2 = train_ensemble(arch, train, y, train, opt);
  for (int m = 0; m < 2; ++m) CHECK(sgd.train_loss[m * 3 + 2] < 0.5 * sgd.train_loss[m * 3 + 0]);
  CHECK(sgd.predictions == sgd2.predictions);
  CHECK(sgd.predictions != gd.predictions);
  // Cross-entropy on one-hot labels of a separable problem.
  RowMatrix onehot = RowMatrix::Zero(16, 2);
  for (Eigen::Index i = 0; i < 16; ++i) onehot(i, train.x(i, 0) > 0 ? 1 : 0) = 1;
  opt.loss = TrainingLoss::SoftmaxCrossEntropy;
  opt.batch_size = 0;
  const auto ce = train_ensemble(arch, train, onehot, train, opt);
  for (int m = 0; m < 2; ++m) {
    CHECK(ce.train_loss[m * 3 + 2] < 0.5 * ce.train_loss[m * 3 + 0]);
    int correct = 0;
    for (Eigen::Index i = 0; i < 16; ++i)
      correct += (ce.at(m, 2, i, 1) > ce.at(m, 2, i, 0)) == (onehot(i, 1) == 1);
    CHECK(correct == 16);
  }
}

TEST_CASE("bad options and shapes throw with the argument's name") {
  const Inputs train = vectors(4, 3, 31);
  const RowMatrix y = normals(4, 1, 32);
  const auto arch = Architecture::parse("dense(8) relu dense(1)");
  TrainingOptions opt;
  opt.steps = 5;
  opt.checkpoints = {0, 5};
  auto message = [&](const TrainingOptions& o, const RowMatrix& yy, const Inputs& test) -> std::string {
    try {
      train_ensemble(arch, train, yy, test, o);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  TrainingOptions o = opt;
  o.members = 0;
  CHECK(message(o, y, train).find("members") != std::string::npos);
  o = opt;
  o.learning_rate = -1;
  CHECK(message(o, y, train).find("learning_rate") != std::string::npos);
  o = opt;
  o.checkpoints = {0, 6};
  CHECK(message(o, y, train).find("checkpoints") != std::string::npos);
  o = opt;
  o.checkpoints = {3, 2};
  CHECK(message(o, y, train).find("increasing") != std::string::npos);
  CHECK(message(opt, normals(4, 2, 1), train).find("train_y") != std::string::npos);
  CHECK(message(opt, y, vectors(2, 4, 1)).find("test_x") != std::string::npos);
  o = opt;
  o.batch_size = 9;
  CHECK(message(o, y, train).find("batch_size") != std::string::npos);
  o = opt;
  o.loss = TrainingLoss::SoftmaxCrossEntropy;
  CHECK(message(o, y, train).find("cross-entropy") != std::string::npos);
}

TEST_CASE("TrainingLoss: to_string and parse_training_loss are inverse, snake_case, and reject unknown names") {
  using E = emergent::TrainingLoss;
  const std::vector<E> all = {E::MeanSquaredError, E::SoftmaxCrossEntropy};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_training_loss(s); });
}
