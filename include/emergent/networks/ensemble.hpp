// Ensembles of finite-width networks trained by gradient descent.
//
// Every member is a Network (network.hpp) of the same Architecture with its own seed, trained on
// the loss of docs/conventions.md §3, L = ½·(1/(N·k))·Σ_i ‖f(x_i) − y_i‖², by full-batch gradient descent
// θ ← θ − η·∇L. In the small-step limit step S is gradient-flow time t = S of the closed-form
// solver (gradient_flow.hpp), so the ensemble mean tends to μ_S as width and members grow.
// Minibatch SGD and softmax cross-entropy are offered for classification experiments; neither
// has a closed form in the NTK limit.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"

namespace emergent {

enum class TrainingLoss {
  MeanSquaredError,     ///< ½·(1/(N·k))·Σ‖f − y‖² (docs/conventions.md §3)
  SoftmaxCrossEntropy,  ///< (1/N)·Σ_i −Σ_j y_ij·log softmax(f(x_i))_j, y rows are probabilities
};
const char* to_string(TrainingLoss value);  ///< snake_case: mean_squared_error, softmax_cross_entropy
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
TrainingLoss parse_training_loss(std::string_view text);

struct TrainingOptions {
  int members = 1;                   ///< ensemble size M ≥ 1
  int steps = 0;                     ///< gradient steps S ≥ 0
  double learning_rate = 1.0;        ///< η > 0
  std::uint64_t seed = 0;            ///< member m uses seed member_seed(seed, m)
  std::vector<int> checkpoints;      ///< steps (0 ≤ c ≤ steps, increasing) at which test predictions are kept
  int batch_size = 0;                ///< 0: full batch; otherwise minibatch SGD, reshuffled every epoch
  TrainingLoss loss = TrainingLoss::MeanSquaredError;
  int threads = 0;                   ///< OpenMP threads over members (0: default); results do not depend on it

  bool IsValid(std::string* error) const;
};

/// Predictions of every member at every checkpoint.
struct EnsembleResult {
  int members = 0, checkpoints = 0;
  Eigen::Index test_points = 0, outputs = 0;
  std::vector<double> predictions;  ///< C order (members, checkpoints, test_points, outputs)
  std::vector<double> train_loss;   ///< (members, checkpoints): training loss of each member
  double seconds = 0.0;

  double at(int member, int checkpoint, Eigen::Index point, Eigen::Index output) const {
    return predictions[((static_cast<std::size_t>(member) * checkpoints + checkpoint) * test_points + point) * outputs +
                       output];
  }
  std::vector<std::size_t> shape() const {
    return {static_cast<std::size_t>(members), static_cast<std::size_t>(checkpoints),
            static_cast<std::size_t>(test_points), static_cast<std::size_t>(outputs)};
  }
};

/// The seed of member m: a hash of (seed, m), so members are independent and adding members
/// does not change the existing ones.
std::uint64_t member_seed(std::uint64_t seed, int member);

/// Train options.members networks and record their test predictions at the checkpoints.
/// `progress`, if given, is called (from one thread at a time) with (steps done, steps total)
/// summed over members. Throws std::invalid_argument for bad options or mismatched shapes
/// (train_y must be N × outputs, inputs must fit the architecture).
EnsembleResult train_ensemble(const Architecture& architecture, const Inputs& train_x, const RowMatrix& train_y,
                              const Inputs& test_x, const TrainingOptions& options,
                              const std::function<void(long, long)>& progress = {});

}  // namespace emergent
