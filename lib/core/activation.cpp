// Pointwise nonlinearities: values, derivatives and spec names (include/emergent/core/activation.hpp).
#include "emergent/core/activation.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include "detail/enum_names.hpp"

namespace emergent {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kTwoOverSqrtPi = 1.12837916709551257390;

double sigmoid(double x) {
  // Two branches so that exp never overflows.
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

std::string format_number(double x) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x);  // shortest round-trip form
  return std::string(buf, r.ptr);
}

}  // namespace

double Activation::value(double x) const {
  switch (kind) {
    case ActivationKind::Identity: return x;
    case ActivationKind::Relu: return x > 0 ? x : 0.0;
    case ActivationKind::Abs: return std::fabs(x);
    case ActivationKind::LeakyRelu: return x > 0 ? x : a * x;
    case ActivationKind::AbRelu: return x > 0 ? b * x : a * x;
    case ActivationKind::Erf: return std::erf(x);
    case ActivationKind::Gelu: return x * 0.5 * std::erfc(-x * kInvSqrt2);
    case ActivationKind::Sin: return std::sin(x);
    case ActivationKind::Cos: return std::cos(x);
    case ActivationKind::Tanh: return std::tanh(x);
    case ActivationKind::Sigmoid: return sigmoid(x);
    case ActivationKind::Softplus: return std::fmax(x, 0.0) + std::log1p(std::exp(-std::fabs(x)));
    case ActivationKind::Swish: return x * sigmoid(x);
  }
  return 0.0;
}

// At the kink x == 0 of the a·min(x,0) + b·max(x,0) family we return the mean slope (a+b)/2
// (the symmetric subgradient): identity then has derivative 1 everywhere, relu has 1/2 at 0.
double Activation::derivative(double x) const {
  double lo = 0.0, hi = 1.0;
  switch (kind) {
    case ActivationKind::Identity: return 1.0;
    case ActivationKind::Relu: lo = 0.0; hi = 1.0; break;
    case ActivationKind::Abs: lo = -1.0; hi = 1.0; break;
    case ActivationKind::LeakyRelu: lo = a; hi = 1.0; break;
    case ActivationKind::AbRelu: lo = a; hi = b; break;
    case ActivationKind::Erf: return kTwoOverSqrtPi * std::exp(-x * x);
    case ActivationKind::Gelu:
      return 0.5 * std::erfc(-x * kInvSqrt2) + x * kInvSqrt2Pi * std::exp(-0.5 * x * x);
    case ActivationKind::Sin: return std::cos(x);
    case ActivationKind::Cos: return -std::sin(x);
    case ActivationKind::Tanh: { const double t = std::tanh(x); return 1.0 - t * t; }
    case ActivationKind::Sigmoid: { const double s = sigmoid(x); return s * (1.0 - s); }
    case ActivationKind::Softplus: return sigmoid(x);
    case ActivationKind::Swish: { const double s = sigmoid(x); return s + x * s * (1.0 - s); }
  }
  if (x > 0) return hi;
  if (x < 0) return lo;
  return 0.5 * (lo + hi);
}

bool Activation::closed_form() const {
  switch (kind) {
    case ActivationKind::Tanh:
    case ActivationKind::Sigmoid:
    case ActivationKind::Softplus:
    case ActivationKind::Swish: return false;
    default: return true;
  }
}

std::string Activation::name() const {
  // The spec keyword: the enum's name, with the parameters of the two parameterized kinds.
  if (kind == ActivationKind::LeakyRelu) return "leaky_relu(" + format_number(a) + ")";
  if (kind == ActivationKind::AbRelu) return "abrelu(" + format_number(a) + ", " + format_number(b) + ")";
  return emergent::to_string(kind);
}
constexpr detail::EnumNames<ActivationKind, 13> kActivationKindNames = {{
    {ActivationKind::Identity, "identity"},
    {ActivationKind::Relu, "relu"},
    {ActivationKind::Abs, "abs"},
    {ActivationKind::LeakyRelu, "leaky_relu"},
    {ActivationKind::AbRelu, "abrelu"},
    {ActivationKind::Erf, "erf"},
    {ActivationKind::Gelu, "gelu"},
    {ActivationKind::Sin, "sin"},
    {ActivationKind::Cos, "cos"},
    {ActivationKind::Tanh, "tanh"},
    {ActivationKind::Sigmoid, "sigmoid"},
    {ActivationKind::Softplus, "softplus"},
    {ActivationKind::Swish, "swish"},
}};

const char* to_string(ActivationKind value) { return detail::enum_name(kActivationKindNames, value); }

ActivationKind parse_activation_kind(std::string_view text) { return detail::parse_enum(kActivationKindNames, text, "parse_activation_kind", "ActivationKind"); }

}  // namespace emergent
