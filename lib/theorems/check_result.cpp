// Typed results of the theorem checks (include/emergent/theorems/check_result.hpp).
#include "emergent/theorems/check_result.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "detail/enum_names.hpp"
#include "detail/format.hpp"
#include "theorems/check_support.hpp"

namespace emergent {

using detail::num;
using detail::time_text;

constexpr detail::EnumNames<Theorem, 4> kTheoremNames = {{
    {Theorem::KernelTransform51, "kernel_transform_5_1"},
    {Theorem::Lemma51, "lemma_5_1"},
    {Theorem::Lemma52, "lemma_5_2"},
    {Theorem::Ensemble52, "ensemble_5_2"},
}};

constexpr detail::EnumNames<Quantity, 6> kQuantityNames = {{
    {Quantity::RowPermutation, "row_permutation"},
    {Quantity::Nngp, "nngp"},
    {Quantity::Ntk, "ntk"},
    {Quantity::SpectralFilter, "spectral_filter"},
    {Quantity::Mean, "mean"},
    {Quantity::Covariance, "covariance"},
}};

constexpr detail::EnumNames<InputSet, 5> kInputSetNames = {{
    {InputSet::Given, "given"},
    {InputSet::Train, "train"},
    {InputSet::Collinear, "collinear"},
    {InputSet::Test, "test"},
    {InputSet::Noise, "noise"},
}};

const char* to_string(Theorem value) { return detail::enum_name(kTheoremNames, value); }
Theorem parse_theorem(std::string_view text) { return detail::parse_enum(kTheoremNames, text, "parse_theorem", "Theorem"); }
const char* to_string(Quantity value) { return detail::enum_name(kQuantityNames, value); }
Quantity parse_quantity(std::string_view text) {
  return detail::parse_enum(kQuantityNames, text, "parse_quantity", "Quantity");
}
const char* to_string(InputSet value) { return detail::enum_name(kInputSetNames, value); }
InputSet parse_input_set(std::string_view text) {
  return detail::parse_enum(kInputSetNames, text, "parse_input_set", "InputSet");
}

namespace {

const char* quantity_label(Quantity q) {
  switch (q) {
    case Quantity::RowPermutation: return "row permutation";
    case Quantity::Nngp: return "NNGP";
    case Quantity::Ntk: return "NTK";
    case Quantity::SpectralFilter: return "g_t(Θ)";
    case Quantity::Mean: return "mean";
    case Quantity::Covariance: return "covariance";
  }
  return "unknown";
}

bool same_time(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

}  // namespace

std::string CheckResult::name() const {
  std::string s;
  if (theorem == Theorem::Lemma51 && quantity != Quantity::RowPermutation) s = "Lemma 5.1 ";
  if (theorem == Theorem::Lemma52) s = "Lemma 5.2 ";
  s += quantity_label(quantity);
  if (has_time()) s += (theorem == Theorem::Lemma52 ? ", t=" : " t=") + time_text(time);
  if (inputs == InputSet::Collinear) s += " collinear pairs";
  if (inputs == InputSet::Test || inputs == InputSet::Noise) s += std::string(" ") + emergent::to_string(inputs);
  return s;
}

std::string CheckResult::to_string() const {
  std::ostringstream s;
  s << name() << ": " << (holds ? "holds" : "does not hold") << ", max violation " << num(max_violation)
    << " (relative " << num(relative_violation()) << ", scale " << num(scale) << "), tolerance " << num(tolerance);
  if (!elements.empty() && worst_element < static_cast<int>(elements.size()))
    s << ", worst element '" << elements[worst_element].label << "'";
  return s.str();
}

const CheckResult* TheoremResult::find(Quantity quantity, InputSet inputs, double time) const {
  for (const auto& p : parts)
    if (p.quantity == quantity && p.inputs == inputs && same_time(p.time, time)) return &p;
  return nullptr;
}

const CheckResult& TheoremResult::part(Quantity quantity, InputSet inputs, double time) const {
  if (const CheckResult* p = find(quantity, inputs, time)) return *p;
  throw std::out_of_range("TheoremResult::part: '" + theorem + "' has no part with quantity " +
                          emergent::to_string(quantity) + ", inputs " + emergent::to_string(inputs) +
                          (std::isnan(time) ? std::string(", no time") : ", time " + time_text(time)));
}

double TheoremResult::max_ratio() const {
  double r = 0;
  for (const auto& p : parts)
    r = std::max(r, p.tolerance > 0 ? p.max_violation / p.tolerance : (p.max_violation > 0 ? INFINITY : 0.0));
  return r;
}

std::string TheoremResult::to_string() const {
  std::ostringstream s;
  s << theorem << ": " << (holds ? "holds" : "does not hold");
  if (!status.empty()) s << " [" << status << "]";
  for (const auto& p : parts) s << "\n  " << p.to_string();
  return s.str();
}

namespace detail {

CheckResult finish(const PartId& id, std::vector<ElementViolation> elements, double scale, double tolerance,
                   std::string rule) {
  CheckResult r;
  r.theorem = id.theorem;
  r.quantity = id.quantity;
  r.inputs = id.inputs;
  r.time = id.time;
  r.scale = scale;
  r.tolerance = tolerance;
  r.tolerance_rule = std::move(rule);
  r.elements = std::move(elements);
  for (const auto& e : r.elements)
    if (e.violation > r.max_violation || !std::isfinite(e.violation)) {
      r.max_violation = e.violation;
      r.worst_element = e.element;
    }
  r.holds = std::isfinite(r.max_violation) && r.max_violation <= r.tolerance;
  return r;
}

void finish_theorem(TheoremResult& t) {
  t.holds = !t.parts.empty();
  for (const auto& p : t.parts) t.holds = t.holds && p.holds;
}

}  // namespace detail

}  // namespace emergent
