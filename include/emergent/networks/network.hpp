// Finite-width networks built from the same Architecture as the kernels, in the NTK
// parameterization of docs/conventions.md §2: every weight and bias is standard normal, and
//   dense: z = (W/√n_in)·ω·h + B·β,   conv: the same with n_in = C_in·FH·FW;
// avgpool, layernorm and residual blocks have no parameters (docs/conventions.md §1).
// As width → ∞ the output covariance tends to the NNGP kernel and the empirical NTK to Θ.
//
// Parameter layout: layers in order; for each affine layer its weights, then its biases. A layer
// with b_std = 0 has no bias parameters (B·β ≡ 0 would receive a zero gradient forever), so
//   parameter_count() = Σ_affine n_in·n_out + Σ_{affine, b_std≠0} n_out,
// with n_in = C_in·FH·FW and n_out = C_out for conv layers (weights are shared over pixels).
// All work inside a Network is single-threaded and deterministic; callers parallelize over
// networks or ensemble members (forward/vjp are const and thread-safe).
#pragma once

#include <Eigen/Dense>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"

namespace emergent {

namespace detail {
class PanelTraining;
}

class Network {
 public:
  /// Where one affine layer keeps its parameters inside parameters().
  /// Dense weights are stored (n_out × n_in) row-major; conv weights as (C_out, FH, FW, C_in)
  /// row-major; biases as (n_out), or absent (bias_size = 0) when the layer has b_std = 0.
  struct ParameterBlock {
    int layer = 0;  ///< index into architecture().layers()
    Eigen::Index weight_offset = 0, weight_size = 0;
    Eigen::Index bias_offset = 0, bias_size = 0;
  };

  /// Draws all parameters from N(0, 1), parameter p of layer l being draw p of
  /// NormalStream(seed, l) (weights take draws 0 … weight_size−1, biases the next bias_size):
  /// bit-identical for a given seed at any thread count.
  /// Throws SpecError if the architecture does not fit `input`.
  Network(Architecture architecture, ExampleShape input, std::uint64_t seed);

  const Architecture& architecture() const { return architecture_; }
  const ExampleShape& input_shape() const { return input_; }
  /// Shape of one output: (k) with a readout or for MLPs, (H', W', k) otherwise.
  const ExampleShape& output_shape() const { return shapes_.shapes.back(); }
  Eigen::Index parameter_count() const { return parameters_.size(); }
  const Eigen::VectorXd& parameters() const { return parameters_; }
  Eigen::VectorXd& parameters() { return parameters_; }
  const std::vector<ParameterBlock>& blocks() const { return blocks_; }

  /// f(x): (N, output_shape().size()).
  RowMatrix forward(const Inputs& x) const;

  /// Reverse mode: the gradient of Σ_i ⟨cotangent_i, f(x_i)⟩ with respect to the parameters.
  /// cotangent is (N, output_shape().size()). If `outputs` is given, f(x) is stored there.
  Eigen::VectorXd vjp(const Inputs& x, const RowMatrix& cotangent, RowMatrix* outputs = nullptr) const;

  /// As vjp, writing the gradient into `gradient` (resized only if its size differs), so that
  /// a training loop does not allocate per call.
  void vjp_into(const Inputs& x, const RowMatrix& cotangent, Eigen::VectorXd& gradient,
                RowMatrix* outputs = nullptr) const;

  /// The loss L = ½·(1/(N·k))·Σ_i ‖f(x_i) − y_i‖² of docs/conventions.md §3 (k = output_shape().size())
  /// and its gradient ∂L/∂θ, from one forward and one backward pass. `targets` is
  /// (N, output_shape().size()); f(x) is stored in *outputs if given. Returns L.
  double mse_loss_gradient(const Inputs& x, const RowMatrix& targets, Eigen::VectorXd& gradient,
                           RowMatrix* outputs = nullptr) const;

  /// A training loss as descent_step() sees it: given f(x) (N, output size), returns L and
  /// writes ∂L/∂f (same shape) into its second argument.
  using LossFunction = std::function<double(const RowMatrix& outputs, RowMatrix& cotangent)>;

  /// One step of gradient descent θ ← θ − η·∂L/∂θ on the batch x, from one forward and one
  /// backward pass, with the update fused into the backward pass (no gradient vector is formed;
  /// the same step as vjp_into followed by parameters() −= η·gradient, up to rounding).
  /// Returns L at the parameters before the step; f(x) before the step goes to *outputs if given.
  /// Throws std::invalid_argument for a learning rate that is not finite and > 0, or a cotangent
  /// of the wrong shape.
  double descent_step(const Inputs& x, double learning_rate, const LossFunction& loss, RowMatrix* outputs = nullptr);

  /// descent_step on the loss of docs/conventions.md §3 (as mse_loss_gradient), so that step S of
  /// gradient descent with learning rate η is time t = S of the gradient flow with the same η
  /// (docs/conventions.md §3 counts time in steps of size η), in the small-step limit.
  double mse_descent_step(const Inputs& x, const RowMatrix& targets, double learning_rate,
                          RowMatrix* outputs = nullptr);

  /// ∂f_j(x_i)/∂θ for one output coordinate j: (N, parameter_count()).
  /// For spatial outputs (no readout) j indexes the flattened (H', W', k) output in C order.
  RowMatrix jacobian(const Inputs& x, Eigen::Index output) const;

  /// Shapes after every layer (entry 0 is the input shape).
  const ShapeTrace& shape_trace() const { return shapes_; }

 private:
  struct Tape;  // per-call activations, defined in network.cpp
  void check_inputs(const Inputs& x, const char* where) const;
  void check_targets(const Inputs& x, const RowMatrix& targets, const char* where) const;
  void run_forward(const double* x, Eigen::Index n, Tape& tape) const;
  void run_backward(Tape& tape, const double* cotangent, double* out, double descent) const;
  bool transposed_chain(Eigen::Index n) const;
  void run_forward_transposed(Tape& tape) const;
  void run_backward_transposed(Tape& tape, const double* cotangent, double* out, double descent) const;
  /// descent_step with the weights of some layers in panels (per parameter block, or null):
  /// detail::PanelTraining's step.
  double descend(const Inputs& x, double learning_rate, const LossFunction& loss, RowMatrix* outputs,
                 double* const* panels);
  friend Eigen::MatrixXd empirical_ntk(const Network&, const Inputs&, const Inputs&);
  friend class detail::PanelTraining;

  Architecture architecture_;
  ExampleShape input_;
  ShapeTrace shapes_;
  Eigen::VectorXd parameters_;
  std::vector<ParameterBlock> blocks_;
  std::size_t first_affine_ = 0;  ///< index of the first affine layer (layers().size() if none)
  std::vector<std::size_t> partner_;  ///< for residual markers: the index of the matching marker
};

/// The loss of docs/conventions.md §3, L = ½·(1/(N·k))·‖f − y‖², and its cotangent ∂L/∂f = (f − y)/(N·k)
/// written to `cotangent`; f and targets are (N, k). Returns L.
double mse_cotangent(const RowMatrix& f, const RowMatrix& targets, RowMatrix& cotangent);

/// Empirical NTK Θ̂(x1, x2) = Σ_p ∂f_j/∂θ_p(x1)·∂f_j/∂θ_p(x2), averaged over the output
/// coordinates j (all of which share the infinite-width limit Θ): (N1, N2).
/// With a readout (or for MLPs) j runs over the k outputs. Without a readout j runs over all
/// H'·W'·k coordinates of the flattened output, i.e. channels and pixels of the diagonal pixel
/// pair: Θ̂(x1,x2) = (1/(P'k))·Σ_{a,c} ∂f_{a,c}(x1)·∂f_{a,c}(x2), whose infinite-width limit is
/// (1/P')·Σ_a Θ_{aa}(x1,x2), the kernel after a `flatten` readout (docs/conventions.md §2).
/// Costs N·dim(f) backward passes. Throws std::invalid_argument on input shape mismatches.
Eigen::MatrixXd empirical_ntk(const Network& net, const Inputs& x1, const Inputs& x2);

}  // namespace emergent
