// Pointwise nonlinearities φ of the architecture spec: values, derivatives and spec names.
// Their dual kernels (the Gaussian expectations the kernel recursions need) are in
// kernels/activation_dual.hpp.
#pragma once

#include <string>
#include <string_view>

namespace emergent {

enum class ActivationKind {
  Identity, Relu, Abs, LeakyRelu, AbRelu,  // φ(x) = a·min(x,0) + b·max(x,0) family
  Erf, Gelu, Sin, Cos,                     // other closed forms
  Tanh, Sigmoid, Softplus, Swish           // Gauss–Hermite quadrature
};
const char* to_string(ActivationKind value);  ///< snake_case: identity, relu, abs, …
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
ActivationKind parse_activation_kind(std::string_view text);

/// A pointwise nonlinearity with its parameters.
struct Activation {
  ActivationKind kind = ActivationKind::Relu;
  double a = 0.0;  ///< AbRelu: slope for x < 0; LeakyRelu: α (the slope for x < 0)
  double b = 1.0;  ///< AbRelu: slope for x > 0

  static Activation relu() { return {ActivationKind::Relu, 0.0, 1.0}; }
  static Activation identity() { return {ActivationKind::Identity, 1.0, 1.0}; }
  static Activation abs() { return {ActivationKind::Abs, -1.0, 1.0}; }
  static Activation leaky_relu(double alpha) { return {ActivationKind::LeakyRelu, alpha, 1.0}; }
  static Activation abrelu(double a, double b) { return {ActivationKind::AbRelu, a, b}; }
  static Activation of(ActivationKind k) { return {k, 0.0, 1.0}; }

  double value(double x) const;       ///< φ(x)
  double derivative(double x) const;  ///< φ'(x); at the kink x = 0 of the ReLU family the mean slope (a+b)/2
  bool closed_form() const;           ///< true unless the dual kernel needs quadrature
  std::string name() const;           ///< as in the spec: "relu", "leaky_relu(0.1)", ...
};

}  // namespace emergent
