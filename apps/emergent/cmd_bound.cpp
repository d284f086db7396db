// `emergent bound ensemble`: how far an M-member ensemble is from its infinite-ensemble limit
// (Gerken & Kessel 2024, lemma on finite ensembles; conventions §5; docs/bounds.md). Three modes:
//   --delta D            probability of a deviation > D (exact, and the paper's bound)
//   --probability P      the deviation δ exceeded with probability P
//   --min-members        the smallest M with P(deviation > D) ≤ P (needs --delta and --probability)
// --variance V is Σ_t(x,x) of one output; --covariance S.npy is the k×k covariance S of one
// member's invariance violation (the deviation is then ‖·‖ of a k-vector).
#include <CLI/CLI.hpp>

namespace emergent::cli {
void add_bound_command(CLI::App& app);
}  // namespace emergent::cli

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "emergent/bounds.hpp"
#include "emergent/npy.hpp"

namespace emergent::cli {

namespace {

struct BoundArgs {
  double variance = 0.0;
  std::string covariance;
  std::int64_t members = 0;
  double delta = 0.0;
  double probability = 0.0;
  bool min_members = false;
  bool json = false;
  double rank_rtol = 0.0;
  CLI::Option *variance_opt = nullptr, *covariance_opt = nullptr, *members_opt = nullptr, *delta_opt = nullptr,
              *probability_opt = nullptr;
};

// ---- output helpers ------------------------------------------------------------------------

// Shortest round-trip decimal; JSON has no inf/nan, so those become null.
std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

class JsonObject {
 public:
  void add(const std::string& key, double v) { add_raw(key, json_number(v)); }
  void add(const std::string& key, std::int64_t v) { add_raw(key, std::to_string(v)); }
  void add(const std::string& key, const std::string& v) { add_raw(key, "\"" + v + "\""); }
  void add(const std::string& key, const char* v) { add(key, std::string(v)); }
  void add(const std::string& key, const Eigen::VectorXd& v) {
    std::string s = "[";
    for (Eigen::Index i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_number(v(i));
    add_raw(key, s + "]");
  }
  void add_raw(const std::string& key, const std::string& value) { items_.emplace_back(key, value); }
  std::string str() const {
    std::string s = "{";
    for (std::size_t i = 0; i < items_.size(); ++i)
      s += (i ? ", " : "") + std::string("\"") + items_[i].first + "\": " + items_[i].second;
    return s + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

std::string short_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// A probability with 3 digits, also when it underflowed (then from its natural log).
std::string short_probability(double p, double log_p) {
  if (p >= 1e-300 || log_p == -INFINITY || !std::isfinite(log_p)) return short_number(p);
  const double l10 = log_p / std::log(10.0);
  const double e = std::floor(l10);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2fe%.0f", std::pow(10.0, l10 - e), e);
  return buf;
}

double log10_of(double log_p) { return log_p / std::log(10.0); }

std::string members_text(const MemberCount& c) {
  if (c.status == MembersStatus::Ok) return std::to_string(c.members);
  return "more than 2^53 (about " + short_number(c.members_real) + ")";
}

void add_members(JsonObject& j, const std::string& key, const MemberCount& c) {
  if (c.status == MembersStatus::Ok)
    j.add(key, c.members);
  else
    j.add_raw(key, "null");
  j.add(key + "_real", c.members_real);
  j.add(key + "_status", to_string(c.status));
}

// ---- inputs --------------------------------------------------------------------------------

Eigen::MatrixXd load_covariance(const std::string& path) {
  NpyArray a;
  try {
    a = read_npy(path);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--covariance: ") + e.what());
  }
  std::string shape = "(";
  for (std::size_t i = 0; i < a.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(a.shape[i]);
  shape += a.shape.size() == 1 ? ",)" : ")";
  if (a.shape.size() == 0) return Eigen::MatrixXd::Constant(1, 1, a.data.at(0));
  if (a.shape.size() != 2 || a.shape[0] != a.shape[1] || a.shape[0] == 0)
    throw std::invalid_argument("--covariance '" + path + "' has shape " + shape +
                                "; expected a square (k, k) matrix with k >= 1");
  const auto k = static_cast<Eigen::Index>(a.shape[0]);
  Eigen::MatrixXd S(k, k);
  for (Eigen::Index i = 0; i < k; ++i)
    for (Eigen::Index j = 0; j < k; ++j) S(i, j) = a.data[static_cast<std::size_t>(i * k + j)];
  return S;
}

void check_modes(const BoundArgs& a) {
  const bool has_var = a.variance_opt->count() > 0, has_cov = a.covariance_opt->count() > 0;
  if (has_var == has_cov)
    throw std::invalid_argument(has_var ? "--variance and --covariance were both given; expected exactly one"
                                        : "neither --variance nor --covariance was given; expected exactly one");
  const bool has_delta = a.delta_opt->count() > 0, has_p = a.probability_opt->count() > 0;
  const bool has_members = a.members_opt->count() > 0;
  if (a.min_members) {
    if (!has_delta || !has_p)
      throw std::invalid_argument("--min-members needs both --delta and --probability");
    if (has_members) throw std::invalid_argument("--members cannot be combined with --min-members (it is the answer)");
    return;
  }
  if (has_delta == has_p)
    throw std::invalid_argument(has_delta ? "--delta and --probability were both given; expected one "
                                            "(or add --min-members for the smallest ensemble)"
                                          : "neither --delta nor --probability was given; expected one");
  if (!has_members) throw std::invalid_argument("--members is required with --" + std::string(has_delta ? "delta" : "probability"));
}

// ---- the three modes, one output -----------------------------------------------------------

void run_scalar(const BoundArgs& a) {
  JsonObject j;
  std::ostringstream text;
  j.add("outputs", std::int64_t{1});
  j.add("variance", a.variance);
  if (a.min_members) {
    const MinMembers mm = ensemble_min_members(a.variance, a.delta, a.probability);
    j.add("delta", a.delta);
    j.add("probability", a.probability);
    add_members(j, "members", mm.exact);
    add_members(j, "exact_members", mm.exact);
    add_members(j, "paper_members", mm.paper);
    text << "|f̄ − f̂| > " << short_number(a.delta) << " with probability ≤ " << short_number(a.probability)
         << " needs " << members_text(mm.exact) << " members (exact, NTK limit); the paper's bound asks for "
         << members_text(mm.paper) << ".";
  } else if (a.delta_opt->count() > 0) {
    const EnsembleDeviation d = ensemble_deviation(a.variance, a.members, a.delta);
    j.add("members", a.members);
    j.add("delta", a.delta);
    j.add("sigma", d.sigma);
    j.add("exact_probability", d.exact_probability);
    j.add("log10_exact_probability", log10_of(d.log_exact_probability));
    j.add("paper_bound", d.paper_bound);
    j.add("log10_paper_bound", log10_of(d.log_paper_bound));
    text << "With " << a.members << " members, |f̄ − f̂| > " << short_number(a.delta) << " with probability "
         << short_probability(d.exact_probability, d.log_exact_probability)
         << " (exact, NTK limit); the paper's bound gives ≤ "
         << short_probability(d.paper_bound, d.log_paper_bound) << ".";
  } else {
    const EnsembleDelta e = ensemble_delta(a.variance, a.members, a.probability);
    j.add("members", a.members);
    j.add("probability", a.probability);
    j.add("delta", e.exact_delta);
    j.add("exact_delta", e.exact_delta);
    j.add("paper_delta", e.paper_delta);
    text << "With " << a.members << " members, |f̄ − f̂| > " << short_number(e.exact_delta) << " with probability "
         << short_number(a.probability) << " (exact, NTK limit); the paper's bound guarantees probability ≤ "
         << short_number(a.probability) << " only from δ = " << short_number(e.paper_delta) << ".";
  }
  std::cout << (a.json ? j.str() : text.str()) << std::endl;
}

// ---- k outputs: the invariance violation ----------------------------------------------------

void run_covariance(const BoundArgs& a) {
  const Eigen::MatrixXd S = load_covariance(a.covariance);
  ChiSquareMixtureOptions options;
  options.rank_rtol = a.rank_rtol;
  std::string why;
  if (!options.IsValid(&why)) throw std::invalid_argument("--rank-rtol: " + why);
  const std::string norm = "‖f̂(gx) − ρ(g)f̂(x)‖";
  JsonObject j;
  std::ostringstream text;
  j.add("outputs", static_cast<std::int64_t>(S.rows()));
  if (a.min_members) {
    const MinMembers mm = violation_min_members(S, a.delta, a.probability, options);
    j.add("delta", a.delta);
    j.add("probability", a.probability);
    add_members(j, "members", mm.exact);
    add_members(j, "exact_members", mm.exact);
    add_members(j, "paper_members", mm.paper);
    add_members(j, "upper_bound_members", mm.upper);
    text << norm << " > " << short_number(a.delta) << " with probability ≤ " << short_number(a.probability) << " needs "
         << members_text(mm.exact) << " members (exact, NTK limit); the best upper bound (union/Chernoff) asks for "
         << members_text(mm.upper) << ", the paper's bound (union over eigen-directions) for "
         << members_text(mm.paper) << ".";
  } else if (a.delta_opt->count() > 0) {
    const ViolationProbability v = violation_probability(S, a.members, a.delta, options);
    j.add("members", a.members);
    j.add("delta", a.delta);
    j.add("rank", static_cast<std::int64_t>(v.rank));
    j.add("eigenvalues", v.eigenvalues);
    j.add("exact_probability", v.exact_probability);
    j.add("log10_exact_probability", log10_of(v.log_exact_probability));
    j.add("status", to_string(v.status));
    j.add("error_bound", v.error_bound);
    j.add("series_terms", v.terms);
    j.add("paper_bound", v.paper_bound);
    j.add("union_bound", v.union_bound);
    j.add("chernoff_bound", v.chernoff_bound);
    j.add("upper_bound", v.upper_bound);
    text << "With " << a.members << " members, " << norm << " > " << short_number(a.delta) << " with probability "
         << short_probability(v.exact_probability, v.log_exact_probability) << " (exact, NTK limit";
    if (v.status != TailStatus::Ok)
      text << "; Ruben's series not converged after " << v.terms << " terms, the exact value lies in ["
           << short_probability(v.exact_probability, v.log_exact_probability) << ", "
           << short_number(std::min(v.upper_bound, v.exact_probability + v.error_bound))
           << "]: S is ill-conditioned, --rank-rtol drops negligible eigen-directions";
    text << "); upper bounds: union " << short_number(v.union_bound) << ", Chernoff " << short_number(v.chernoff_bound)
         << ", the paper's (union over " << v.rank << " eigen-directions) " << short_number(v.paper_bound) << ".";
  } else {
    const ViolationDelta d = violation_delta(S, a.members, a.probability, options);
    j.add("members", a.members);
    j.add("probability", a.probability);
    j.add("delta", d.exact_delta);
    j.add("exact_delta", d.exact_delta);
    j.add("paper_delta", d.paper_delta);
    j.add("upper_bound_delta", d.upper_delta);
    j.add("status", to_string(d.status));
    text << "With " << a.members << " members, " << norm << " > " << short_number(d.exact_delta)
         << " with probability " << short_number(a.probability) << " (exact, NTK limit"
         << (d.status != TailStatus::Ok ? "; Ruben's series not converged, delta is a lower bound (try --rank-rtol)" : "")
         << "); the best upper bound guarantees probability ≤ " << short_number(a.probability) << " from δ = "
         << short_number(d.upper_delta) << ", the paper's bound from δ = " << short_number(d.paper_delta) << ".";
  }
  std::cout << (a.json ? j.str() : text.str()) << std::endl;
}

void run_bound(const BoundArgs& a) {
  check_modes(a);
  if (a.variance_opt->count() > 0)
    run_scalar(a);
  else
    run_covariance(a);
}

}  // namespace

void add_bound_command(CLI::App& app) {
  CLI::App* bound = app.add_subcommand("bound", "Probability bounds for finite deep ensembles");
  bound->require_subcommand(1);
  auto args = std::make_shared<BoundArgs>();
  CLI::App* cmd = bound->add_subcommand(
      "ensemble", "How far an M-member ensemble is from the infinite ensemble (Gerken & Kessel 2024)");
  cmd->footer(
      "In the NTK limit the members are i.i.d. Gaussian processes, so the ensemble mean deviates from\n"
      "the infinite-ensemble mean by N(0, V/M) exactly: 'exact' is that law, 'paper' is the paper's\n"
      "bound sqrt(2/pi)(sigma/delta)exp(-delta^2/(2 sigma^2)), sigma^2 = V/M. With --covariance S.npy\n"
      "(k x k, the covariance of one member's invariance violation) the deviation is the norm of a\n"
      "N(0, S/M) vector: exact by Ruben's series, plus union/Chernoff upper bounds. See docs/bounds.md.\n"
      "\n"
      "Examples:\n"
      "  emergent bound ensemble --variance 0.5 --members 20 --delta 0.3\n"
      "  emergent bound ensemble --variance 0.5 --members 20 --probability 1e-3 --json\n"
      "  emergent bound ensemble --variance 0.5 --delta 0.1 --probability 1e-3 --min-members\n"
      "  emergent bound ensemble --covariance S.npy --members 20 --delta 0.3");
  args->variance_opt = cmd->add_option("--variance", args->variance, "V = Sigma_t(x,x) of one output (>= 0)");
  args->covariance_opt =
      cmd->add_option("--covariance", args->covariance, "S.npy: k x k covariance of one member's violation");
  args->members_opt = cmd->add_option("--members", args->members, "M: number of ensemble members (>= 1)");
  args->delta_opt = cmd->add_option("--delta", args->delta, "D > 0: the deviation threshold");
  args->probability_opt = cmd->add_option("--probability", args->probability, "P in (0, 1): the tail probability");
  cmd->add_flag("--min-members", args->min_members, "Smallest M with P(deviation > D) <= P");
  cmd->add_flag("--json", args->json, "One JSON object on stdout instead of a sentence");
  cmd->add_option("--rank-rtol", args->rank_rtol,
                  "With --covariance: eigenvalues <= this * max are treated as 0 (default 64*k*eps)");
  cmd->callback([args] { run_bound(*args); });
}

}  // namespace emergent::cli
