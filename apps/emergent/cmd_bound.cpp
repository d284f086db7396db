// `emergent bound group`: the continuous-group bound κ·C_t(x) next to the measured worst case
// (continuous_bound.hpp, docs/continuous_bound_derivation.md). `emergent bound violation`: the law
// of a finite ensemble's invariance violation for the user's own architecture and data.
//
// `emergent bound ensemble`: how far an M-member ensemble is from its infinite-ensemble limit
// (Gerken & Kessel 2024, lemma on finite ensembles; docs/conventions.md §5; docs/bounds.md). Three modes:
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
#include "emergent/bounds/finite_ensemble.hpp"
#include "emergent/bounds/continuous_group.hpp"
#include "emergent/bounds/so3_bound.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"
#include "emergent/data/npy.hpp"
#include "support/io.hpp"
#include "support/json.hpp"

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

void add_members(Json& j, const std::string& key, const MemberCount& c) {
  if (c.status == MembersStatus::Ok)
    j[key] = c.members;
  else
    j[key] = nullptr;
  j[key + "_real"] = c.members_real;
  j[key + "_status"] = to_string(c.status);
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
  if (has_delta && a.delta > 1e100)
    throw std::invalid_argument("--delta " + short_number(a.delta) +
                                ": expected at most 1e100 (M·D² must be finite in float64; the probability is 0 "
                                "to every printed digit long before that)");
}

// ---- the three modes, one output -----------------------------------------------------------

void run_scalar(const BoundArgs& a) {
  Json j = Json::object();
  std::ostringstream text;
  j["outputs"] = std::int64_t{1};
  j["variance"] = a.variance;
  if (a.min_members) {
    const MinMembers mm = ensemble_min_members(a.variance, a.delta, a.probability);
    j["delta"] = a.delta;
    j["probability"] = a.probability;
    add_members(j, "members", mm.exact);
    add_members(j, "exact_members", mm.exact);
    add_members(j, "paper_members", mm.paper);
    text << "|f̄ − f̂| > " << short_number(a.delta) << " with probability ≤ " << short_number(a.probability)
         << " needs " << members_text(mm.exact) << " members (exact, NTK limit); the paper's bound asks for "
         << members_text(mm.paper) << ".";
  } else if (a.delta_opt->count() > 0) {
    const EnsembleDeviation d = ensemble_deviation(a.variance, a.members, a.delta);
    j["members"] = a.members;
    j["delta"] = a.delta;
    j["sigma"] = d.sigma;
    j["exact_probability"] = d.exact_probability;
    j["log10_exact_probability"] = log10_of(d.log_exact_probability);
    j["paper_bound"] = d.paper_bound;
    j["log10_paper_bound"] = log10_of(d.log_paper_bound);
    text << "With " << a.members << " members, |f̄ − f̂| > " << short_number(a.delta) << " with probability "
         << short_probability(d.exact_probability, d.log_exact_probability)
         << " (exact, NTK limit); the paper's bound gives ≤ "
         << short_probability(d.paper_bound, d.log_paper_bound) << ".";
  } else {
    const EnsembleDelta e = ensemble_delta(a.variance, a.members, a.probability);
    j["members"] = a.members;
    j["probability"] = a.probability;
    j["delta"] = e.exact_delta;
    j["exact_delta"] = e.exact_delta;
    j["paper_delta"] = e.paper_delta;
    text << "With " << a.members << " members, |f̄ − f̂| > " << short_number(e.exact_delta) << " with probability "
         << short_number(a.probability) << " (exact, NTK limit); the paper's bound guarantees probability ≤ "
         << short_number(a.probability) << " only from δ = " << short_number(e.paper_delta) << ".";
  }
  if (a.json)
    print_json(j);
  else
    std::cout << text.str() << std::endl;
}

// ---- k outputs: the invariance violation ----------------------------------------------------

void run_covariance(const BoundArgs& a) {
  const Eigen::MatrixXd S = load_covariance(a.covariance);
  ChiSquareMixtureOptions options;
  options.rank_rtol = a.rank_rtol;
  std::string why;
  if (!options.IsValid(&why)) throw std::invalid_argument("--rank-rtol: " + why);
  const std::string norm = "‖f̂(gx) − ρ(g)f̂(x)‖";
  Json j = Json::object();
  std::ostringstream text;
  j["outputs"] = static_cast<std::int64_t>(S.rows());
  if (a.min_members) {
    const MinMembers mm = violation_min_members(S, a.delta, a.probability, options);
    j["delta"] = a.delta;
    j["probability"] = a.probability;
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
    j["members"] = a.members;
    j["delta"] = a.delta;
    j["rank"] = static_cast<std::int64_t>(v.rank);
    j["eigenvalues"] = json_numbers(v.eigenvalues);
    j["exact_probability"] = v.exact_probability;
    j["log10_exact_probability"] = log10_of(v.log_exact_probability);
    j["status"] = to_string(v.status);
    j["error_bound"] = v.error_bound;
    j["series_terms"] = v.terms;
    j["paper_bound"] = v.paper_bound;
    j["union_bound"] = v.union_bound;
    j["chernoff_bound"] = v.chernoff_bound;
    j["upper_bound"] = v.upper_bound;
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
    j["members"] = a.members;
    j["probability"] = a.probability;
    j["delta"] = d.exact_delta;
    j["exact_delta"] = d.exact_delta;
    j["paper_delta"] = d.paper_delta;
    j["upper_bound_delta"] = d.upper_delta;
    j["status"] = to_string(d.status);
    text << "With " << a.members << " members, " << norm << " > " << short_number(d.exact_delta)
         << " with probability " << short_number(a.probability) << " (exact, NTK limit"
         << (d.status != TailStatus::Ok ? "; Ruben's series not converged, delta is a lower bound (try --rank-rtol)" : "")
         << "); the best upper bound guarantees probability ≤ " << short_number(a.probability) << " from δ = "
         << short_number(d.upper_delta) << ", the paper's bound from δ = " << short_number(d.paper_delta) << ".";
  }
  if (a.json)
    print_json(j);
  else
    std::cout << text.str() << std::endl;
}

void run_bound(const BoundArgs& a) {
  check_modes(a);
  if (a.variance_opt->count() > 0)
    run_scalar(a);
  else
    run_covariance(a);
}


// ---- `bound group` and `bound violation`: the user's own setting ----------------------------

struct SettingArgs : TrainingFiles {
  std::string times = "inf";
  double lr = 1.0, diag_reg = 0.0;
  bool diag_reg_relative = false;
  std::string memory_cap = "25%";
  int threads = 0;
  bool json = false;
};

struct GroupArgs : SettingArgs {
  int order = 4;
  int scan_points = 256;
  int quadrature_nodes = 64;
  std::string group, output_rep;  // SO(3) mode: --group cube|icosahedron|G.npy
  int rotations = 512;
  std::uint64_t seed = 2024;
  CLI::Option *order_opt = nullptr, *group_opt = nullptr, *scan_opt = nullptr, *nodes_opt = nullptr,
              *rotations_opt = nullptr, *rep_opt = nullptr;
};

struct ViolationArgs : SettingArgs {
  std::string group, augment, output_rep;
  std::int64_t members = 0;
  double delta = 0.0, probability = 0.0;
  CLI::Option *delta_opt = nullptr, *probability_opt = nullptr;
};

void add_setting_options(CLI::App* cmd, SettingArgs& a) {
  add_training_options(cmd, a, "Training targets Y.npy: (N,) or (N, k), invariant");
  cmd->add_option("--times", a.times, "Times in steps, e.g. 1,10,inf")->capture_default_str();
  cmd->add_option("--lr", a.lr, "Learning rate η")->capture_default_str();
  cmd->add_option("--diag-reg", a.diag_reg, "Diagonal regularizer added to Θ(X,X)")->capture_default_str();
  cmd->add_flag("--diag-reg-relative", a.diag_reg_relative, "Scale --diag-reg by tr(Θ)/N");
  cmd->add_option("--memory-cap", a.memory_cap, "Memory cap for the kernels: 4G, 512M or 25%")->capture_default_str();
  cmd->add_option("--threads", a.threads, "OpenMP threads (0: default); results do not depend on it");
  cmd->add_flag("--json", a.json, "One JSON object on stdout instead of a table");
}

GradientFlowOptions flow_options(const SettingArgs& a) {
  return emergent::cli::flow_options(a.lr, a.diag_reg, a.diag_reg_relative, a.threads);
}

struct Setting : TrainingData {
  std::vector<double> times;
};

Setting load_setting(const SettingArgs& a) {
  Setting s;
  s.times = parse_times("--times", a.times);
  static_cast<TrainingData&>(s) = load_training_data(a, TargetColumns::ArchitectureOutputs);
  return s;
}

// `bound group --group B`: a finite subgroup B ⊂ SO(3) (so3_bound.hpp, derivation §9).
void run_group_so3(const GroupArgs& a) {
  if (a.scan_opt->count() > 0 || a.nodes_opt->count() > 0)
    throw std::invalid_argument(std::string(a.scan_opt->count() > 0 ? "--scan-points" : "--quadrature-nodes") +
                                " is for the SO(2) bound (--order); with --group the worst case is measured over "
                                "--rotations Haar rotations");
  if (a.rotations < 1 || a.rotations > 1000000)
    throw std::invalid_argument("--rotations " + std::to_string(a.rotations) + " is invalid; expected 1..1000000");
  const Setting s = load_setting(a);
  const Representation group = make_group(a.group, s.x.shape);
  const std::string rep = a.output_rep.empty() ? "trivial" : a.output_rep;
  Representation group_y;
  try {
    group_y = make_output_rep(rep, group, ExampleShape::vector(static_cast<int>(s.y.cols())));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--output-rep: ") + e.what());
  }
  So3BoundOptions o;
  o.times = s.times;
  o.flow = flow_options(a);
  o.kernel = kernel_options(a.memory_cap, a.threads, 0);
  o.haar_rotations = a.rotations;
  o.seed = a.seed;
  const So3BoundResult r = so3_group_bound(s.arch, s.x, s.y, s.z, group, group_y, o);
  const double deg = 180 / 3.14159265358979323846;
  if (a.json) {
    Json j = Json::object();
    j["group"] = r.group;
    j["group_size"] = std::int64_t{r.group_size};
    j["output_rep"] = rep;
    j["covering_angle_deg"] = r.covering_angle * deg;
    j["kappa"] = r.kappa;
    j["train_size"] = static_cast<std::int64_t>(r.train_size);
    j["augmented_size"] = static_cast<std::int64_t>(r.augmented_size);
    j["rotations"] = std::int64_t{r.rotations};
    j["times"] = json_times(r.times);
    j["min_ratio"] = r.min_ratio;
    j["max_ratio"] = r.max_ratio;
    j["spectral_status"] = to_string(r.spectral.status);
    Json pts = Json::array();
    for (const So3BoundPoint& p : r.points) {
      Json q = Json::object();
      q["test_index"] = static_cast<std::int64_t>(p.test_index);
      q["time"] = json_time(p.time);
      q["bound"] = p.bound;
      q["measured"] = p.measured;
      q["ratio"] = p.ratio;
      q["split_bound"] = p.split_bound;
      q["joint_bound"] = p.joint_bound;
      q["roundoff"] = p.roundoff;
      q["group_defect"] = p.group_defect;
      q["worst_distance_deg"] = p.worst_distance * deg;
      q["f_norm"] = p.f_norm;
      pts.push_back(q);
    }
    j["points"] = pts;
    print_json(j);
    return;
  }
  std::printf("%s augmentation (%d rotations), SO(3) violation |mean(R x) - rho_Y(R) mean(x)| with rho_Y %s; "
              "covering angle %.6g deg, kappa = %.6g\n",
              r.group.c_str(), r.group_size, rep.c_str(), r.covering_angle * deg, r.kappa);
  std::printf("%6s %10s %12s %12s %12s %12s %10s %10s\n", "point", "time", "bound", "split", "joint", "measured",
              "ratio", "dist(deg)");
  for (const So3BoundPoint& p : r.points)
    std::printf("%6lld %10.4g %12.4e %12.4e %12.4e %12.4e %10.4g %10.4g\n", static_cast<long long>(p.test_index), p.time,
                p.bound, p.split_bound, p.joint_bound, p.measured, p.ratio, p.worst_distance * deg);
  std::printf("bound/measured in [%.4g, %.4g] (bound = min(split, joint) + round-off allowance; measured: max over %d "
              "Haar rotations and the %d deepest holes of the group)\n",
              r.min_ratio, r.max_ratio, a.rotations, r.rotations - a.rotations);
}

void run_group(const GroupArgs& a) {
  const bool so3 = a.group_opt->count() > 0, so2 = a.order_opt->count() > 0;
  if (so3 == so2)
    throw std::invalid_argument(so3 ? "--order and --group were both given; expected one (--order k: C_k in SO(2); "
                                      "--group cube|icosahedron: a subgroup of SO(3))"
                                    : "neither --order nor --group was given; expected one (--order k: C_k in SO(2); "
                                      "--group cube|icosahedron: a subgroup of SO(3))");
  if (so3) return run_group_so3(a);
  if (a.rotations_opt->count() > 0 || a.rep_opt->count() > 0)
    throw std::invalid_argument(std::string(a.rotations_opt->count() > 0 ? "--rotations" : "--output-rep") +
                                " is for the SO(3) bound (--group); the SO(2) bound (--order) has invariant targets");
  if (a.order < 1 || a.order > 4096)
    throw std::invalid_argument("--order " + std::to_string(a.order) + " is invalid; expected 1 <= k <= 4096");
  if (a.scan_points < 3 || a.scan_points > 65536)
    throw std::invalid_argument("--scan-points " + std::to_string(a.scan_points) + " is invalid; expected 3..65536");
  const Setting s = load_setting(a);
  ContinuousBoundOptions o;
  o.order = a.order;
  o.times = s.times;
  o.flow = flow_options(a);
  o.kernel = kernel_options(a.memory_cap, a.threads, 0);
  o.scan.scan_points = a.scan_points;
  o.quadrature_nodes = a.quadrature_nodes;
  if (std::string why; !o.IsValid(&why)) {
    if (why.rfind("scan.scan_points", 0) == 0) why = "--scan-points" + why.substr(16);
    else if (why.rfind("quadrature_nodes", 0) == 0) why = "--quadrature-nodes" + why.substr(16);
    throw std::invalid_argument(why);
  }
  const ContinuousBoundResult r = continuous_group_bound(s.arch, s.x, s.y, s.z, o);
  if (a.json) {
    Json j = Json::object();
    j["order"] = std::int64_t{a.order};
    j["kappa"] = r.kappa;
    j["train_size"] = static_cast<std::int64_t>(r.train_size);
    j["augmented_size"] = static_cast<std::int64_t>(r.augmented_size);
    j["times"] = json_times(r.times);
    j["min_ratio"] = r.min_ratio;
    j["max_ratio"] = r.max_ratio;
    j["quadrature_error"] = r.quadrature_error;
    j["spectral_status"] = to_string(r.spectral.status);
    Json pts = Json::array();
    for (std::size_t i = 0; i < r.points.size(); ++i) {
      const ContinuousBoundPoint& p = r.points[i];
      Json q = Json::object();
      q["test_index"] = static_cast<std::int64_t>(p.test_index);
      q["time"] = json_time(p.time);
      q["bound"] = p.bound;
      q["measured"] = p.measured;
      q["ratio"] = p.ratio;
      q["paper_bound"] = p.paper_bound;
      q["lipschitz_constant"] = p.lipschitz_constant;
      q["fourier_bound"] = p.fourier_bound;
      q["roundoff"] = p.roundoff;
      q["measured_scan"] = p.measured_scan;
      q["worst_angle"] = p.worst_angle;
      q["f_norm"] = p.f_norm;
      q["f_perp_norm"] = p.f_perp_norm;
      pts.push_back(q);
    }
    j["points"] = pts;
    print_json(j);
    return;
  }
  std::printf("C_%d augmentation, SO(2) violation |mean(R(θ)x) − mean(x)|; kappa = 2 sin(pi/2k) = %.6g\n", a.order,
              r.kappa);
  std::printf("%6s %10s %12s %12s %12s %12s %10s\n", "point", "time", "bound", "kappa*C_t", "fourier", "measured",
              "ratio");
  for (const ContinuousBoundPoint& p : r.points)
    std::printf("%6lld %10.4g %12.4e %12.4e %12.4e %12.4e %10.4g\n", static_cast<long long>(p.test_index), p.time,
                p.bound, p.paper_bound, p.fourier_bound, p.measured, p.ratio);
  std::printf("bound/measured in [%.4g, %.4g] (bound = min(kappa*C_t, fourier) + round-off allowance; "
              "measured: max over the orbit by scan + Brent)\n",
              r.min_ratio, r.max_ratio);
}

void run_violation(const ViolationArgs& a) {
  const bool has_delta = a.delta_opt->count() > 0, has_p = a.probability_opt->count() > 0;
  if (has_delta == has_p)
    throw std::invalid_argument(has_delta ? "--delta and --probability were both given; expected one"
                                          : "neither --delta nor --probability was given; expected one");
  if (a.members < 1) throw std::invalid_argument("--members " + std::to_string(a.members) + " is invalid; expected M >= 1");
  if (has_delta && !(a.delta > 0 && std::isfinite(a.delta)))
    throw std::invalid_argument("--delta " + short_number(a.delta) + " is invalid; expected a finite D > 0");
  if (has_p && !(a.probability > 0 && a.probability < 1))
    throw std::invalid_argument("--probability " + short_number(a.probability) + " is invalid; expected 0 < P < 1");
  const Setting s = load_setting(a);
  const Representation group = make_group(a.group, s.x.shape);
  Representation aug;
  if (!a.augment.empty()) aug = make_group(a.augment, s.x.shape);
  const ExampleShape out_shape = ExampleShape::vector(static_cast<int>(s.y.cols()));
  const std::string rep = a.output_rep.empty() ? "trivial" : a.output_rep;
  const bool equivariant = rep != "trivial";
  Representation group_y, aug_y;
  try {
    group_y = make_output_rep(rep, group, out_shape);
    if (!a.augment.empty()) aug_y = make_output_rep(rep, aug, out_shape);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--output-rep: ") + e.what());
  }
  ViolationLawOptions o;
  o.times = s.times;
  o.flow = flow_options(a);
  o.kernel = kernel_options(a.memory_cap, a.threads, 0);
  const std::vector<ViolationLaw> laws = equivariance_violation_laws(
      s.arch, s.x, s.y, s.z, group, group_y, a.augment.empty() ? nullptr : &aug, a.augment.empty() ? nullptr : &aug_y, o);
  const Eigen::Index k = s.y.cols();
  const std::size_t ng = static_cast<std::size_t>(group.size()), nz = static_cast<std::size_t>(s.z.count());
  // Worst case over test points and group elements, per time: the largest variance s gives the
  // largest probability (at fixed δ) and the largest δ (at fixed p), since S = s·I_k.
  Json per_time = Json::array();
  std::ostringstream text;
  text << (equivariant ? "Equivariance" : "Invariance") << " violation of a " << a.members << "-member ensemble under '"
       << group.name() << "'" << (equivariant ? " with ρ_Y = " + rep : std::string()) << " ("
       << group.size() << " elements, trained " << (a.augment.empty() ? "without augmentation" : "with --augment " + a.augment)
       << "), worst over " << nz << " test point(s) and the group:\n";
  for (std::size_t t = 0; t < s.times.size(); ++t) {
    const ViolationLaw* worst = nullptr;
    double mean_max = 0;
    // Equivariant outputs: S is not a multiple of I_k, so the worst pair is the one with the
    // largest probability (at fixed δ) or δ (at fixed p), found by evaluating every pair.
    double worst_value = -1;
    for (std::size_t i = 0; i < nz * ng; ++i) {
      const ViolationLaw& l = laws[t * nz * ng + i];
      mean_max = std::max(mean_max, l.mean.norm());
      if (l.element == 0) continue;
      if (!equivariant) {
        if (!worst || l.variance > worst->variance) worst = &l;
        continue;
      }
      double value = 0;
      if (l.variance > 0)
        value = has_delta ? violation_probability(l.covariance, a.members, a.delta).exact_probability
                          : violation_delta(l.covariance, a.members, a.probability).exact_delta;
      if (!worst || value > worst_value) worst = &l, worst_value = value;
    }
    Json j = Json::object();
    j["time"] = json_time(s.times[t]);
    j["mean_violation_max"] = mean_max;
    text << "  t = " << short_number(s.times[t]) << ": ";
    if (!worst) {
      text << "the group has only the identity\n";
      per_time.push_back(j);
      continue;
    }
    const double var = worst->variance;
    j["worst_test_index"] = static_cast<std::int64_t>(worst->test_index);
    j["worst_element"] = std::string(group.label(worst->element));
    j["variance"] = var;
    const Eigen::MatrixXd S = equivariant ? worst->covariance : var * Eigen::MatrixXd::Identity(k, k);
    const bool zero = !(var > 0);
    if (has_delta) {
      ViolationProbability v;
      if (!zero) v = violation_probability(S, a.members, a.delta);
      j["delta"] = a.delta;
      j["exact_probability"] = v.exact_probability;
      j["paper_bound"] = v.paper_bound;
      j["upper_bound"] = v.upper_bound;
      text << (equivariant ? "P(‖f̂(gx) − ρ_Y(g)f̂(x)‖ > " : "P(‖f̂(gx) − f̂(x)‖ > ") << short_number(a.delta) << ") = "
           << short_probability(v.exact_probability, zero ? -INFINITY : v.log_exact_probability)
           << " (exact, NTK limit), paper's bound " << short_number(v.paper_bound) << "; worst at test point "
           << worst->test_index << ", g = " << group.label(worst->element) << ", s = " << short_number(var);
    } else {
      ViolationDelta d;
      if (!zero) d = violation_delta(S, a.members, a.probability);
      j["probability"] = a.probability;
      j["delta"] = d.exact_delta;
      j["paper_delta"] = d.paper_delta;
      j["upper_bound_delta"] = d.upper_delta;
      text << (equivariant ? "‖f̂(gx) − ρ_Y(g)f̂(x)‖ > " : "‖f̂(gx) − f̂(x)‖ > ") << short_number(d.exact_delta) << " with probability " << short_number(a.probability)
           << " (exact, NTK limit); the paper's bound guarantees it from δ = " << short_number(d.paper_delta)
           << "; worst at test point " << worst->test_index << ", g = " << group.label(worst->element);
    }
    if (mean_max > 1e-9)
      text << "; the infinite ensemble itself is not " << (equivariant ? "equivariant" : "invariant")
           << " here (max ‖μ(gx) − ρ_Y(g)μ(x)‖ = " << short_number(mean_max)
           << "): the law is that of the fluctuation around it";
    text << "\n";
    per_time.push_back(j);
  }
  if (a.json) {
    Json j = Json::object();
    j["group"] = group.name();
    j["augment"] = a.augment;
    j["output_rep"] = rep;
    j["members"] = a.members;
    j["outputs"] = static_cast<std::int64_t>(k);
    j["times"] = json_times(s.times);
    j["per_time"] = per_time;
    print_json(j);
  } else {
    std::cout << text.str();
  }
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

  auto gargs = std::make_shared<GroupArgs>();
  CLI::App* gcmd = bound->add_subcommand(
      "group", "Continuous group: bound vs the measured SO(2) (--order k) or SO(3) (--group cube) violation");
  gcmd->footer(
      "Trains the infinite ensemble (NTK gradient flow) on the training set augmented by a finite group\n"
      "and compares, per test point and time, a bound on the violation under the whole continuous group\n"
      "with the measured worst case. MLPs only (their kernels are O(d)-invariant).\n"
      "  --order k: C_k = rot2(k) in SO(2) on (N, 2m) inputs, invariant targets; measured over the whole\n"
      "    orbit (dense scan refined by Brent).\n"
      "  --group cube|icosahedron|G.npy: a finite subgroup B of SO(3) acting as I_m (x) R on (N, 3m) inputs;\n"
      "    --output-rep trivial (default) or rotation (R on every output triple; R.npy of that form);\n"
      "    measured over --rotations Haar rotations and the deepest holes of B (exact covering angle).\n"
      "Derivation and where it does not apply: docs/continuous_bound_derivation.md (§9 for SO(3)).\n"
      "\n"
      "Example:\n"
      "  emergent bound group --arch 'dense(512) erf dense(1)' --train-x X.npy --train-y Y.npy \\\n"
      "      --test-x Z.npy --order 8 --times 10,inf --json\n"
      "  emergent bound group --arch 'dense(512) relu dense(3)' --train-x XY.npy --train-y C.npy \\\n"
      "      --test-x Z.npy --group cube --output-rep rotation --times 300,inf");
  add_setting_options(gcmd, *gargs);
  gargs->order_opt = gcmd->add_option("--order", gargs->order, "k: augment by C_k = rot2(k) (SO(2))");
  gargs->group_opt = gcmd->add_option("--group", gargs->group, "cube, icosahedron or G.npy: augment by this subgroup of SO(3)");
  gargs->rep_opt = gcmd->add_option("--output-rep", gargs->output_rep,
                                    "With --group: the targets' action, trivial (default), rotation or R.npy");
  gargs->rotations_opt = gcmd->add_option("--rotations", gargs->rotations, "With --group: Haar rotations measured")
                             ->capture_default_str();
  gcmd->add_option("--seed", gargs->seed, "With --group: seed of the Haar rotations")->capture_default_str();
  gargs->scan_opt = gcmd->add_option("--scan-points", gargs->scan_points, "With --order: angles scanned per period before Brent")
                        ->capture_default_str();
  gargs->nodes_opt = gcmd->add_option("--quadrature-nodes", gargs->quadrature_nodes,
                                      "With --order: Gauss-Legendre nodes of the SO(2) averages")
                         ->capture_default_str();
  gcmd->callback([gargs] { run_group(*gargs); });

  auto vargs = std::make_shared<ViolationArgs>();
  CLI::App* vcmd = bound->add_subcommand(
      "violation", "Probability that an M-member ensemble violates invariance by more than D (worst case)");
  vcmd->footer(
      "In the NTK limit f(gx) - f(x) of the M-member mean is N(mean(gx) - mean(x), s/M * I_k) with\n"
      "s = Sigma_t(gx,gx) + Sigma_t(x,x) - 2 Sigma_t(gx,x); the worst case over the group elements and\n"
      "test points is reported per time. Invariant targets (rho_Y trivial) unless --output-rep: then\n"
      "f(gx) - rho_Y(g) f(x) is N(mean(gx) - rho_Y(g) mean(x), S/M) with the k x k covariance\n"
      "S = (Sigma_t(gx,gx) + Sigma_t(x,x)) I_k - Sigma_t(gx,x) (rho_Y(g) + rho_Y(g)^T), and the worst\n"
      "pair is the one with the largest probability (or delta). See docs/bounds.md.\n"
      "\n"
      "Example:\n"
      "  emergent bound violation --arch 'dense(512) relu dense(1)' --train-x X.npy --train-y Y.npy \\\n"
      "      --test-x Z.npy --group 'rot2(4)' --augment 'rot2(4)' --members 20 --times inf --delta 0.01\n"
      "  emergent bound violation --arch 'dense(512) relu dense(3)' --train-x XY.npy --train-y C.npy \\\n"
      "      --test-x Z.npy --group cube --augment cube --output-rep rotation --members 20 --delta 0.01");
  add_setting_options(vcmd, *vargs);
  vcmd->add_option("--group", vargs->group, "Group acting on the inputs (docs/conventions.md §5)")->required();
  vcmd->add_option("--members", vargs->members, "M: number of ensemble members (>= 1)")->required();
  vargs->delta_opt = vcmd->add_option("--delta", vargs->delta, "D > 0: the violation threshold");
  vargs->probability_opt = vcmd->add_option("--probability", vargs->probability, "P in (0, 1)");
  vcmd->add_option("--augment", vargs->augment, "Augment the training set by this group first");
  vcmd->add_option("--output-rep", vargs->output_rep,
                   "The targets' action ρ_Y (for --group and --augment): trivial (default), sign, regular, rotation "
                   "or R.npy (|G|, k, k)");
  vcmd->callback([vargs] { run_violation(*vargs); });
}

}  // namespace emergent::cli
