// Finite-width ensembles trained by gradient descent (include/emergent/networks/ensemble.hpp).
#include "emergent/networks/ensemble.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <numeric>
#include <stdexcept>

#include "emergent/networks/network.hpp"
#include "networks/panel_training.hpp"
#include "emergent/core/memory.hpp"
#include "emergent/core/random.hpp"
#include "detail/enum_names.hpp"
#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/parallel.hpp"
#include "emergent/core/cancellation.hpp"

namespace emergent {
namespace {

// Softmax cross-entropy (1/N)·Σ_i −Σ_j y_ij log softmax(f_i)_j and its cotangent ∂L/∂f.
double cross_entropy(const RowMatrix& f, const RowMatrix& y, RowMatrix* cotangent) {
  const Eigen::Index n = f.rows();
  double loss = 0;
  if (cotangent) cotangent->resize(f.rows(), f.cols());
  for (Eigen::Index i = 0; i < n; ++i) {
    const double m = f.row(i).maxCoeff();
    const Eigen::RowVectorXd e = (f.row(i).array() - m).exp();
    const double z = e.sum();
    const double log_z = m + std::log(z);
    loss += -(y.row(i).array() * (f.row(i).array() - log_z)).sum();
    if (cotangent) cotangent->row(i) = (e.array() / z - y.row(i).array()) / static_cast<double>(n);
  }
  return loss / static_cast<double>(n);
}

double mse(const RowMatrix& f, const RowMatrix& y) {
  return 0.5 * (f - y).squaredNorm() / static_cast<double>(f.size());
}

// A permutation of 0..n−1 drawn from uniforms of `rng` starting at `first` (Fisher–Yates).
void shuffle(std::vector<Eigen::Index>& order, const NormalStream& rng, std::uint64_t first) {
  for (std::size_t i = order.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(rng.uniform(first + i) * static_cast<double>(i));
    std::swap(order[i - 1], order[std::min(j, i - 1)]);
  }
}

}  // namespace

bool TrainingOptions::IsValid(std::string* error) const {
  auto bad = [&](const std::string& why) {
    if (error) *error = why;
    return false;
  };
  if (members < 1) return bad("members: expected >= 1, got " + std::to_string(members));
  if (steps < 0) return bad("steps: expected >= 0, got " + std::to_string(steps));
  if (!(learning_rate > 0) || !std::isfinite(learning_rate))
    return bad("learning_rate: expected a finite number > 0, got " + std::to_string(learning_rate));
  if (batch_size < 0) return bad("batch_size: expected >= 0 (0 = full batch), got " + std::to_string(batch_size));
  if (threads < 0 || threads > detail::kMaxThreads)
    return bad("threads: expected 0 (OpenMP default) to " + std::to_string(detail::kMaxThreads) + ", got " +
               std::to_string(threads));
  if (checkpoints.empty()) return bad("checkpoints: expected at least one step at which to record predictions");
  for (std::size_t i = 0; i < checkpoints.size(); ++i) {
    if (checkpoints[i] < 0 || checkpoints[i] > steps)
      return bad("checkpoints: expected steps in [0, " + std::to_string(steps) + "], got " +
                 std::to_string(checkpoints[i]));
    if (i > 0 && checkpoints[i] <= checkpoints[i - 1])
      return bad("checkpoints: expected increasing steps, got " + std::to_string(checkpoints[i - 1]) + " then " +
                 std::to_string(checkpoints[i]));
  }
  return true;
}

std::uint64_t member_seed(std::uint64_t seed, int member) {
  return splitmix64(splitmix64(seed) ^ splitmix64(0xA5A5A5A5ULL + static_cast<std::uint64_t>(member)));
}

namespace {

// Throws std::invalid_argument unless the training problem is well posed; returns k, the outputs.
Eigen::Index validate_training(const Architecture& architecture, const Inputs& train_x, const RowMatrix& train_y,
                               const Inputs& test_x, const TrainingOptions& options) {
  std::string why;
  if (!options.IsValid(&why)) throw std::invalid_argument("train_ensemble: " + why);
  if (!(train_x.shape == test_x.shape))
    throw std::invalid_argument("test_x: expected examples of the training shape " + train_x.shape.to_string() +
                                ", got " + test_x.shape.to_string());
  if (train_x.count() < 1) throw std::invalid_argument("train_x: expected at least one training point, got 0");
  const auto shapes = architecture.shapes(train_x.shape);
  const Eigen::Index k = shapes.shapes.back().size();
  if (train_y.rows() != train_x.count() || train_y.cols() != k)
    throw std::invalid_argument("train_y: expected shape (" + std::to_string(train_x.count()) + ", " +
                                std::to_string(k) + ") for this architecture and training set, got (" +
                                std::to_string(train_y.rows()) + ", " + std::to_string(train_y.cols()) + ")");
  if (!train_y.allFinite()) throw std::invalid_argument("train_y: expected finite values, got NaN or Inf");
  if (options.batch_size > train_x.count())
    throw std::invalid_argument("batch_size: expected at most the number of training points " +
                                std::to_string(train_x.count()) + ", got " + std::to_string(options.batch_size));
  if (options.loss == TrainingLoss::SoftmaxCrossEntropy && k < 2)
    throw std::invalid_argument("loss: softmax cross-entropy needs at least 2 outputs, got " + std::to_string(k));
  return k;
}

// Parameters per member, in floating point so that absurd widths cannot overflow; refused
// against the memory cap before any network is allocated (weights, gradients and activations
// of one member per thread).
void check_parameter_memory(const Architecture& architecture, const ExampleShape& shape, const TrainingOptions& options) {
  const ShapeTrace trace = architecture.shapes(shape);
  long double params = 0, largest = 0;
  std::string largest_name;
  int dense = 0, conv = 0;
  const auto& layers = architecture.layers();
  for (std::size_t l = 0; l < layers.size(); ++l) {
    if (!layers[l].affine()) continue;
    const ExampleShape& in = trace.shapes[l];
    const bool is_conv = layers[l].kind == LayerKind::Conv;
    const long double fan_in = is_conv ? static_cast<long double>(in.channels) * layers[l].filter_h * layers[l].filter_w
                                       : static_cast<long double>(in.size());
    const long double p = (fan_in + 1) * layers[l].width;
    params += p;
    if (p > largest) {
      largest = p;
      largest_name = (is_conv ? "conv #" + std::to_string(++conv) : "dense #" + std::to_string(++dense)) + " (" +
                     layers[l].to_string() + ")";
    } else {
      is_conv ? ++conv : ++dense;
    }
  }
  const int t = std::min(options.members, options.threads > 0 ? options.threads : omp_get_max_threads());
  const long double bytes = params * 3 * sizeof(double) * std::max(1, t);
  const std::size_t cap = default_memory_cap_bytes();
  if (bytes > static_cast<long double>(cap))
    detail::bad(largest_name + ": the networks need about " +
                format_bytes(bytes > 1e18L ? static_cast<std::size_t>(1e18) : static_cast<std::size_t>(bytes)) + " (" +
                detail::num(static_cast<double>(params)) + " parameters per member), more than the memory cap " +
                format_bytes(cap) + " (25% of RAM); expected narrower layers");
}

}  // namespace

EnsembleResult train_ensemble(const Architecture& architecture, const Inputs& train_x, const RowMatrix& train_y,
                              const Inputs& test_x, const TrainingOptions& options,
                              const std::function<void(long, long)>& progress) {
  const Eigen::Index k = validate_training(architecture, train_x, train_y, test_x, options);
  check_parameter_memory(architecture, train_x.shape, options);
  const auto start = std::chrono::steady_clock::now();
  EnsembleResult result;
  result.members = options.members;
  result.checkpoints = static_cast<int>(options.checkpoints.size());
  result.test_points = test_x.count();
  result.outputs = k;
  result.predictions.assign(static_cast<std::size_t>(result.members) * result.checkpoints * result.test_points * k, 0);
  result.train_loss.assign(static_cast<std::size_t>(result.members) * result.checkpoints, 0);

  const long total = static_cast<long>(options.members) * options.steps;
  long done = 0;
  std::mutex progress_mutex;
  const int threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  const bool full_batch = options.batch_size == 0 || options.batch_size == train_x.count();

  // test_x bit for bit train_x: a checkpoint's training loss comes from the test predictions
  const bool test_is_train =
      test_x.count() == train_x.count() && test_x.x.size() == train_x.x.size() &&
      std::memcmp(test_x.x.data(), train_x.x.data(), sizeof(double) * static_cast<std::size_t>(train_x.x.size())) == 0;

  detail::ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int m = 0; m < options.members; ++m) {
    errors.run(static_cast<long long>(m), [&] {
      const std::uint64_t seed = member_seed(options.seed, m);
      Network net(architecture, train_x.shape, seed);
      // the steps run on a panel-major copy of the large dense weights (same bits); the network's
      // parameters() are brought up to date before every evaluation
      detail::PanelTraining panels(net, full_batch ? train_x.count() : options.batch_size);
      const NormalStream batch_rng(seed, 0xBA7C4ULL);
      std::vector<Eigen::Index> order(static_cast<std::size_t>(train_x.count()));
      std::iota(order.begin(), order.end(), Eigen::Index{0});
      std::size_t cursor = order.size();  // forces a shuffle before the first minibatch
      std::uint64_t draws = 0;
      // One gradient-descent step on (x, y), fused into the backward pass; returns the loss before it.
      auto step_on = [&](const Inputs& x, const RowMatrix& y) {
        if (options.loss == TrainingLoss::MeanSquaredError) return panels.mse_descent_step(x, y, options.learning_rate);
        return panels.descent_step(x, options.learning_rate, [&](const RowMatrix& f, RowMatrix& cotangent) {
          return cross_entropy(f, y, &cotangent);
        });
      };
      auto loss_of = [&](const RowMatrix& f, const RowMatrix& y) {
        return options.loss == TrainingLoss::MeanSquaredError ? mse(f, y) : cross_entropy(f, y, nullptr);
      };
      std::size_t next_checkpoint = 0;
      for (int step = 0; step <= options.steps; ++step) {
        throw_if_cancelled();  // the token of the caller, made current here by ParallelErrors
        const bool record = next_checkpoint < options.checkpoints.size() && options.checkpoints[next_checkpoint] == step;
        const bool update = step < options.steps;
        RowMatrix f;
        if (record) {  // predictions and full training loss before this step's update
          panels.sync();
          f = net.forward(test_x);
          const std::size_t base = (static_cast<std::size_t>(m) * result.checkpoints + next_checkpoint) *
                                   static_cast<std::size_t>(result.test_points) * k;
          std::copy(f.data(), f.data() + f.size(), result.predictions.begin() + static_cast<std::ptrdiff_t>(base));
        }
        double full_loss = 0;
        if (update && full_batch) {
          full_loss = step_on(train_x, train_y);
        } else if (record) {  // f(train_x) is f(test_x) when the test points are the training points
          full_loss = loss_of(test_is_train ? f : net.forward(train_x), train_y);
        }
        if (record) {
          result.train_loss[static_cast<std::size_t>(m) * result.checkpoints + next_checkpoint] = full_loss;
          ++next_checkpoint;
        }
        if (!update) break;
        if (!full_batch) {  // minibatch SGD: batches without replacement, reshuffled each epoch
          if (cursor + static_cast<std::size_t>(options.batch_size) > order.size()) {
            shuffle(order, batch_rng, draws);
            draws += order.size();
            cursor = 0;
          }
          const std::vector<Eigen::Index> rows(order.begin() + static_cast<std::ptrdiff_t>(cursor),
                                               order.begin() + static_cast<std::ptrdiff_t>(cursor + options.batch_size));
          cursor += static_cast<std::size_t>(options.batch_size);
          RowMatrix yb(options.batch_size, k);
          for (int r = 0; r < options.batch_size; ++r) yb.row(r) = train_y.row(rows[static_cast<std::size_t>(r)]);
          step_on(train_x.rows(rows), yb);
        }
        if (progress && (step + 1) % 10 == 0) {
          std::lock_guard<std::mutex> lock(progress_mutex);
          done += 10;
          progress(done, total);
        }
      }
    });
  }
  errors.rethrow();
  if (progress) progress(total, total);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

constexpr detail::EnumNames<TrainingLoss, 2> kTrainingLossNames = {{
    {TrainingLoss::MeanSquaredError, "mean_squared_error"},
    {TrainingLoss::SoftmaxCrossEntropy, "softmax_cross_entropy"},
}};

const char* to_string(TrainingLoss value) { return detail::enum_name(kTrainingLossNames, value); }

TrainingLoss parse_training_loss(std::string_view text) { return detail::parse_enum(kTrainingLossNames, text, "parse_training_loss", "TrainingLoss"); }

}  // namespace emergent
