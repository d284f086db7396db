// Finite-width networks built from the same Architecture as the kernels, in the NTK
// parameterisation of conventions §2: every weight and bias is standard normal, and
//   dense: z = (W/√n_in)·ω·h + B·β,   conv: the same with n_in = C_in·FH·FW.
// As width → ∞ the output covariance tends to the NNGP kernel and the empirical NTK to Θ.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "emergent/architecture.hpp"
#include "emergent/inputs.hpp"

namespace emergent {

class Network {
 public:
  /// Where one affine layer keeps its parameters inside parameters().
  /// Dense weights are stored (n_out × n_in) row-major; conv weights as (C_out, FH, FW, C_in)
  /// row-major; biases as (n_out).
  struct ParameterBlock {
    int layer = 0;  ///< index into architecture().layers()
    Eigen::Index weight_offset = 0, weight_size = 0;
    Eigen::Index bias_offset = 0, bias_size = 0;
  };

  /// Draws all parameters from N(0, 1), parameter p of layer l being draw p of
  /// NormalStream(seed, l): bit-identical for a given seed on any machine and thread count.
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

  /// ∂f_j(x_i)/∂θ for one output coordinate j: (N, parameter_count()).
  RowMatrix jacobian(const Inputs& x, Eigen::Index output) const;

 private:
  Architecture architecture_;
  ExampleShape input_;
  ShapeTrace shapes_;
  Eigen::VectorXd parameters_;
  std::vector<ParameterBlock> blocks_;
};

/// Empirical NTK Θ̂(x1, x2) = Σ_p ∂f_j/∂θ_p(x1)·∂f_j/∂θ_p(x2), averaged over the output
/// coordinates j (all of which share the infinite-width limit Θ): (N1, N2).
Eigen::MatrixXd empirical_ntk(const Network& net, const Inputs& x1, const Inputs& x2);

}  // namespace emergent
