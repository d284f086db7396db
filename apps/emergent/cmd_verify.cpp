// `emergent verify`: numerical checks of Gerken & Kessel, "Emergent Equivariance in Deep
// Ensembles" (ICML 2024): Theorem 5.1 (kernels transform covariantly), Lemmas 5.1/5.2 (on the
// augmented set g permutes rows and commutes with Θ and g_t(Θ)) and Theorem 5.2 (the ensemble mean
// and covariance are equivariant at every t, with augmentation; not without), next to the
// violation of single members (linearized and finite-width), which the theorem does not cover.
// It is a report: exit 0 whether or not a theorem holds, 2 on bad input.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/networks/ensemble.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"
#include "emergent/data/ising.hpp"
#include "emergent/core/random.hpp"
#include "support/io.hpp"
#include "support/json.hpp"

namespace emergent::cli {
namespace {

struct VerifyArgs {
  std::string what = "all";
  std::string arch, group, x, shape, data = "gaussian", train_y, test_x, output_rep;
  int n = 8, n_test = 3, noise = 3;
  std::string times = "1,100,inf";
  double lr = 1.0, diag_reg = 0.0, safety = 4.0;
  int members = 8, finite_members = 3, finite_steps = 100;
  double finite_lr = 0.0;
  CLI::Option* finite_lr_opt = nullptr;
  std::string seed_text = "1";
  std::uint64_t seed = 1;
  bool json = false;
  std::string memory_cap = "25%";
  int threads = 0;
};

std::string fmt(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

std::string time_label(double t) { return std::isinf(t) ? "inf" : fmt(t); }

// "16" → vector(16); "6x6x1" → image.
ExampleShape parse_shape(const std::string& text) {
  std::vector<int> dims;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t next = text.find('x', pos);
    const std::string part = text.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
    int v = 0;
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || p != part.data() + part.size() || v < 1)
      throw std::invalid_argument("--shape '" + text + "': expected D (vectors) or HxWxC (images) with positive integers");
    dims.push_back(v);
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  if (dims.size() == 1) return ExampleShape::vector(dims[0]);
  if (dims.size() == 3) return ExampleShape::image_hwc(dims[0], dims[1], dims[2]);
  throw std::invalid_argument("--shape '" + text + "': expected D (vectors) or HxWxC (images), got " +
                              std::to_string(dims.size()) + " numbers");
}

// Built-in data: gaussian N(0,1) entries, or Ising configurations (±1 spins at T = 2, 2.5, 3).
Inputs builtin_inputs(const VerifyArgs& a, const ExampleShape& shape, int count, std::uint64_t stream) {
  if (a.data == "gaussian") {
    RowMatrix x(count, shape.size());
    const NormalStream s(a.seed, stream);
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = s.normal(static_cast<std::uint64_t>(i));
    return Inputs(std::move(x), shape);
  }
  if (!shape.image || shape.height != shape.width || shape.channels != 1)
    throw std::invalid_argument("--data ising: needs --shape LxLx1, got " + shape.to_string());
  IsingOptions o;
  o.size = shape.height;
  o.temperatures = {2.0, 2.5, 3.0};
  o.samples_per_temperature = (count + 2) / 3;
  o.seed = a.seed * 1000 + stream;
  o.threads = a.threads;
  IsingDataset d = sample_ising(o);
  std::vector<Eigen::Index> rows;
  for (int i = 0; i < count; ++i) rows.push_back((i % 3) * o.samples_per_temperature + i / 3);
  return d.x.rows(rows);
}

struct Report {
  std::vector<TheoremResult> theorems;      // expected to hold
  std::vector<TheoremResult> contrasts;     // expected to fail (no augmentation)
  std::vector<MemberViolationResult> members;
  std::vector<std::string> notes;
};

void print_theorem(std::ostream& o, const TheoremResult& t) {
  o << t.theorem << ": " << (t.holds ? "HOLDS" : "DOES NOT HOLD") << "\n";
  if (!t.status.empty()) o << "  " << t.status << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-34s %-6s %14s %12s %12s\n", "part", "holds", "max violation", "scale", "tolerance");
  o << line;
  for (const auto& p : t.parts) {
    std::snprintf(line, sizeof line, "  %-34s %-6s %14s %12s %12s\n", p.name().c_str(), p.holds ? "yes" : "NO",
                  fmt(p.max_violation).c_str(), fmt(p.scale).c_str(), fmt(p.tolerance).c_str());
    o << line;
  }
}

Json theorem_json(const TheoremResult& t) {
  double mv = 0;
  for (const auto& p : t.parts) mv = std::max(mv, p.max_violation);
  Json parts = Json::array();
  for (const auto& p : t.parts)
    parts.push_back({{"name", p.name()},
                     {"theorem", to_string(p.theorem)},
                     {"quantity", to_string(p.quantity)},
                     {"inputs", to_string(p.inputs)},
                     {"time", p.has_time() ? json_time(p.time) : Json(nullptr)},
                     {"holds", p.holds},
                     {"max_violation", p.max_violation},
                     {"scale", p.scale},
                     {"tolerance", p.tolerance},
                     {"worst_element", p.elements.empty() ? "" : p.elements[p.worst_element].label},
                     {"tolerance_rule", p.tolerance_rule}});
  return {{"theorem", t.theorem}, {"holds", t.holds},         {"status", t.status},
          {"max_violation", mv},  {"max_ratio", t.max_ratio()}, {"parts", parts}};
}

// Largest ensemble-mean violation at time t in a Theorem 5.2 report (test and noise parts).
double mean_violation_at(const TheoremResult& t, double time, double* scale) {
  double v = -1;
  *scale = 0;
  for (const auto& p : t.parts)
    if (p.quantity == Quantity::Mean && p.time == time) {
      v = std::max(v, p.max_violation);
      *scale = std::max(*scale, p.scale);
    }
  return v;
}

void run_verify(const VerifyArgs& a) {
  const bool do_kernel = a.what == "kernel-transform" || a.what == "all";
  const bool do_lemmas = a.what == "lemmas" || a.what == "all";
  const bool do_eq = a.what == "equivariance" || a.what == "all";
  const Architecture arch = Architecture::parse(a.arch);
  const std::vector<double> times = parse_times("--times", a.times);
  if (!a.x.empty() && !a.shape.empty()) throw std::invalid_argument("--x and --shape: give one of them, not both");
  if (a.x.empty() && a.shape.empty())
    throw std::invalid_argument("no inputs: give --x X.npy or --shape SHAPE (built-in --data gaussian|ising)");
  if (a.data != "gaussian" && a.data != "ising")
    throw std::invalid_argument("--data '" + a.data + "': expected gaussian or ising");
  if (a.n < 1 || a.n > 100000) throw std::invalid_argument("--n " + std::to_string(a.n) + ": expected 1..100000");
  if (a.n_test < 1 || a.n_test > 100000)
    throw std::invalid_argument("--n-test " + std::to_string(a.n_test) + ": expected 1..100000");
  if (a.finite_lr_opt && a.finite_lr_opt->count() > 0 && !(a.finite_lr > 0 && std::isfinite(a.finite_lr)))
    throw std::invalid_argument("--finite-lr " + fmt(a.finite_lr) + ": expected a finite learning rate > 0");
  if (a.noise < 0) throw std::invalid_argument("--noise " + std::to_string(a.noise) + ": expected >= 0");
  if (a.members < 0 || a.finite_members < 0 || a.finite_steps < 0)
    throw std::invalid_argument("--members/--finite-members/--finite-steps: expected >= 0");
  if (!(a.safety >= 1) || !std::isfinite(a.safety))
    throw std::invalid_argument("--safety " + fmt(a.safety) + ": expected a finite number >= 1");
  const KernelOptions kopt = kernel_options(a.memory_cap, a.threads, 0);
  GradientFlowOptions flow;
  flow.learning_rate = a.lr;
  flow.diag_reg = a.diag_reg;
  flow.threads = a.threads;
  if (std::string why; !flow.IsValid(&why)) throw std::invalid_argument("--lr/--diag-reg: " + why);

  if (!a.x.empty() || !a.test_x.empty()) {
    for (const auto& [flag, path] : {std::pair{"--x", a.x}, {"--test-x", a.test_x}})
      if (!path.empty() && load_inputs(flag, path).count() == 0)
        throw std::invalid_argument(std::string(flag) + " '" + path + "' holds 0 examples; expected at least one");
  }
  Inputs x = a.x.empty() ? builtin_inputs(a, parse_shape(a.shape), a.n, 100) : load_inputs("--x", a.x);
  const ExampleShape shape = x.shape;
  Inputs z = a.test_x.empty() ? (a.x.empty() ? builtin_inputs(a, shape, a.n_test, 101) : Inputs())
                              : load_inputs("--test-x", a.test_x);
  if (a.test_x.empty() && !a.x.empty()) {  // held-out rows of the user's data are not available: use its last rows
    std::vector<Eigen::Index> rows;
    for (Eigen::Index i = std::max<Eigen::Index>(0, x.count() - a.n_test); i < x.count(); ++i) rows.push_back(i);
    z = x.rows(rows);
  }
  if (!(z.shape == shape))
    throw std::invalid_argument("--test-x '" + a.test_x + "' holds examples of shape " + z.shape.to_string() +
                                ", expected " + shape.to_string() + " as the training inputs");
  Representation rho;
  try {
    rho = make_group(a.group, shape);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--group: ") + e.what());
  }
  arch.shapes(shape);  // throws if the architecture does not fit the inputs
  const bool spatial = arch.expects_images() && !arch.has_readout();
  const int k = arch.outputs();
  Representation rho_y;
  Eigen::Index ycols = k;
  ExampleShape out_shape = ExampleShape::vector(k);
  if (spatial) {
    const ExampleShape out = arch.shapes(shape).shapes.back();
    out_shape = ExampleShape::image_hwc(out.height, out.width, k);
    ycols = static_cast<Eigen::Index>(out.height) * out.width * k;
  }
  const std::string rep_name = !a.output_rep.empty() ? a.output_rep : spatial ? "pixels" : "trivial";
  try {
    rho_y = make_output_rep(rep_name, rho, out_shape);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--output-rep: ") + e.what());
  }
  RowMatrix y;
  if (!a.train_y.empty()) {
    y = load_targets("--train-y", a.train_y, x.count());
    if (y.cols() != ycols)
      throw std::invalid_argument("--train-y '" + a.train_y + "' has " + std::to_string(y.cols()) + " columns, expected " +
                                  std::to_string(ycols) + (spatial ? " (H·W·k: one per output pixel and channel)" : " (k)"));
  } else if (a.data == "ising" && a.x.empty() && !spatial && k == 1 && rep_name == "trivial") {
    y = ising_energies(x);  // energy per site: invariant under d4 and translations
  } else {
    y.resize(x.count(), ycols);
    const NormalStream s(a.seed, 102);  // streams 100+: Theorem 5.2's noise uses stream 0
    for (Eigen::Index i = 0; i < y.size(); ++i) y.data()[i] = s.normal(static_cast<std::uint64_t>(i));
  }

  Report r;
  EquivarianceCheckOptions eq;
  eq.kernel = kopt;
  eq.safety = a.safety;
  if (do_kernel) {
    Inputs both(RowMatrix(x.count() + z.count(), x.x.cols()), shape);
    both.x << x.x, z.x;
    r.theorems.push_back(check_theorem_5_1(arch, both, rho, eq));
  }
  if (do_lemmas) {
    LemmaCheckOptions lo;
    lo.equivariance = eq;
    lo.learning_rate = a.lr;
    lo.outputs = static_cast<int>(spatial ? k : ycols);
    lo.times.clear();
    for (double t : times)
      if (std::isfinite(t)) lo.times.push_back(t);
    if (lo.times.empty()) lo.times = {1.0};
    const AugmentedSet aug = augment(x, y, rho, rho_y);
    r.theorems.push_back(check_lemmas_5_1_5_2(arch, aug.x, rho, lo));
  }
  if (do_eq) {
    Theorem52Options o;
    o.kernel = kopt;
    o.flow = flow;
    o.times = times;
    o.noise_inputs = a.noise;
    o.seed = a.seed;
    o.safety = a.safety;
    o.augment = true;
    r.theorems.push_back(check_theorem_5_2(arch, x, y, z, rho, rho_y, o));
    o.augment = false;
    r.contrasts.push_back(check_theorem_5_2(arch, x, y, z, rho, rho_y, o));
    if (spatial) {
      r.notes.push_back("members: not reported for architectures without readout");
    } else {
      // Members on the test inputs and the same off-manifold noise as Theorem 5.2.
      RowMatrix all(z.count() + a.noise, shape.size());
      all.topRows(z.count()) = z.x;
      const double rms = std::sqrt(x.x.squaredNorm() / std::max<double>(1.0, static_cast<double>(x.x.size())));
      const NormalStream s(a.seed, 0);
      for (Eigen::Index i = 0; i < a.noise; ++i)
        for (Eigen::Index c = 0; c < all.cols(); ++c)
          all(z.count() + i, c) = rms * s.normal(static_cast<std::uint64_t>(i * all.cols() + c));
      const Inputs probe(all, shape);
      if (a.members > 0)
        r.members.push_back(linearized_member_violation(arch, x, y, probe, rho, rho_y, times, a.members, a.seed, kopt, flow));
      if (a.finite_members > 0) {
        TrainingOptions t;
        t.members = a.finite_members;
        t.steps = a.finite_steps;
        t.learning_rate = a.finite_lr > 0 ? a.finite_lr : a.lr;
        t.seed = a.seed;
        t.threads = a.threads;
        t.checkpoints = a.finite_steps > 0 ? std::vector<int>{0, a.finite_steps} : std::vector<int>{0};
        r.members.push_back(finite_member_violation(arch, x, y, probe, rho, rho_y, t));
      }
    }
  }

  bool holds = !r.theorems.empty();
  double max_violation = 0, max_ratio = 0;
  for (const auto& t : r.theorems) {
    holds = holds && t.holds;
    max_ratio = std::max(max_ratio, t.max_ratio());
    for (const auto& p : t.parts) max_violation = std::max(max_violation, p.max_violation);
  }
  // Diverged members (non-finite predictions) are a numerical failure of this run, reported after
  // the report so that it stays readable: exit 1 with one line naming the count.
  std::string diverged;
  for (const auto& m : r.members)
    for (std::size_t q = 0; q < m.diverged.size(); ++q)
      if (m.diverged[q] > 0 && diverged.empty())
        diverged = std::to_string(m.diverged[q]) + " of " + std::to_string(m.members) + " " + m.kind +
                   " members diverged (non-finite predictions at t / step " + time_label(m.times[q]) +
                   "); lower --finite-lr or --lr";
  const TheoremResult* aug52 = nullptr;
  for (const auto& t : r.theorems)
    if (t.theorem.rfind("Theorem 5.2", 0) == 0) aug52 = &t;

  if (a.json) {
    Json doc = {{"holds", holds},
                {"max_violation", max_violation},
                {"max_ratio", max_ratio},
                {"check", a.what},
                {"group", rho.to_string()},
                {"output_rep", rho_y.name()},
                {"arch", arch.to_string()},
                {"training_points", x.count()}};
    Json& theorems = doc["theorems"] = Json::array();
    for (const auto& t : r.theorems) theorems.push_back(theorem_json(t));
    Json& contrasts = doc["without_augmentation"] = Json::array();
    for (const auto& t : r.contrasts) contrasts.push_back(theorem_json(t));
    Json& members = doc["members"] = Json::array();
    for (const auto& m : r.members) {
      Json points = Json::array();
      for (std::size_t q = 0; q < m.times.size(); ++q) {
        double sc = 0;
        const double ev = aug52 ? mean_violation_at(*aug52, m.times[q], &sc) : -1;
        points.push_back({{"time", json_time(m.times[q])},
                          {"member_violation_max", m.member_max[q]},
                          {"member_violation_mean", m.member_mean[q]},
                          {"members_average_violation", m.sample_mean[q]},
                          {"scale", m.scale[q]},
                          {"ensemble_mean_violation", ev >= 0 ? Json(ev) : Json(nullptr)}});
      }
      members.push_back({{"kind", m.kind}, {"members", m.members}, {"points", points}});
    }
    doc["notes"] = r.notes;
    if (!diverged.empty()) doc["diverged"] = diverged;
    print_json(doc);
    if (!diverged.empty()) throw std::runtime_error(diverged);
    return;
  }
  std::ostringstream o;
  o << "verify " << a.what << ": " << rho.to_string() << ", outputs " << rho_y.name() << " (ρ_Y on ℝ^"
    << rho_y.dim() << "), arch " << arch.to_string() << ", " << x.count()
    << " training points, " << z.count() << " test points, " << a.noise << " noise inputs\n\n";
  for (const auto& t : r.theorems) {
    print_theorem(o, t);
    o << "\n";
  }
  for (const auto& t : r.contrasts) {
    o << "Contrast, the same without augmentation (the theorem's hypothesis removed; expected to fail):\n";
    print_theorem(o, t);
    o << "\n";
  }
  if (!r.members.empty()) {
    o << "Single members are not equivariant (max over test + noise inputs and group elements of\n"
         "|f(ρ(g)x) − ρ_Y(g)f(x)|), next to the infinite ensemble's mean (Theorem 5.2 above):\n";
    char line[256];
    std::snprintf(line, sizeof line, "  %-28s %-10s %12s %12s %12s %12s %12s\n", "members", "t / step", "member max",
                  "member mean", "their avg", "ens. mean", "scale");
    o << line;
    for (const auto& m : r.members) {
      const std::string kind = m.kind.rfind("finite", 0) == 0 ? "finite width" : "linearized";
      for (std::size_t q = 0; q < m.times.size(); ++q) {
        double sc = 0;
        const double ev = aug52 ? mean_violation_at(*aug52, m.times[q], &sc) : -1;
        std::snprintf(line, sizeof line, "  %-28s %-10s %12s %12s %12s %12s %12s\n",
                      (kind + " (" + std::to_string(m.members) + ")").c_str(), time_label(m.times[q]).c_str(),
                      fmt(m.member_max[q]).c_str(), fmt(m.member_mean[q]).c_str(), fmt(m.sample_mean[q]).c_str(),
                      ev >= 0 ? fmt(ev).c_str() : "-", fmt(m.scale[q]).c_str());
        o << line;
        if (q < m.diverged.size() && m.diverged[q] > 0)
          o << "    ^ " << m.diverged[q] << " of " << m.members << " members diverged (non-finite predictions)\n";
      }
    }
    o << "\n";
  }
  for (const auto& n : r.notes) o << "note: " << n << "\n";
  o << "overall: " << (holds ? "HOLDS" : "DOES NOT HOLD") << " (max violation " << fmt(max_violation)
    << ", max violation/tolerance " << fmt(max_ratio) << ")";
  std::cout << o.str() << std::endl;
  if (!diverged.empty()) throw std::runtime_error(diverged);
}

}  // namespace

void add_verify_command(CLI::App& app) {
  auto args = std::make_shared<VerifyArgs>();
  CLI::App* cmd = app.add_subcommand("verify", "Check the emergent-equivariance theorems (Gerken & Kessel 2024) numerically");
  cmd->footer(
      "CHECK is one of:\n"
      "  kernel-transform  Theorem 5.1: K and Θ of transformed inputs = ρ_K·K·ρ_Kᵀ (invariance with a readout)\n"
      "  lemmas            Lemmas 5.1/5.2 on the augmented training set: ρ(g) permutes its rows and\n"
      "                    the permutation commutes with K, Θ and g_t(Θ)\n"
      "  equivariance      Theorem 5.2: the ensemble mean and covariance are equivariant at every t,\n"
      "                    with augmentation (and, as a contrast, not without), on test and noise inputs;\n"
      "                    plus the violation of single members (linearized and finite-width, both\n"
      "                    trained on the augmented set), which the theorem does not cover\n"
      "  all               all three\n"
      "Each part holds if its max violation is within a round-off tolerance derived from the\n"
      "computation (the rule is in the --json output). Readout networks have invariant targets\n"
      "(ρ_Y trivial) unless --output-rep names another action; networks without readout use the\n"
      "pixel action on their (H, W, k) outputs. --output-rep: trivial, sign (ρ_Y(g) = ±I: the flip of\n"
      "flip/d4, −x of sign, det ρ_X(g) otherwise), regular (k = |G|), rotation (k = 2 for rot2(K),\n"
      "k = 3 for cube and icosahedron) or R.npy of shape (|G|, k, k), checked to be orthogonal and a\n"
      "homomorphism of the input group's law (docs/conventions.md §5).\n"
      "Exit code 0 whether or not a theorem holds (this is a report), 2 on bad input.\n"
      "\n"
      "Examples:\n"
      "  emergent verify all --arch 'conv(32, 3x3, padding=circular) relu flatten dense(1)' \\\n"
      "      --group c4 --shape 5x5x1 --data ising --n 6 --times 1,100,inf\n"
      "  emergent verify equivariance --arch 'dense(256) relu dense(1)' --group cyclic --x X.npy --json\n"
      "  emergent verify equivariance --arch 'dense(256) relu dense(3)' --group cube --shape 6 \\\n"
      "      --output-rep rotation");
  cmd->add_option("check", args->what, "kernel-transform | lemmas | equivariance | all")
      ->check(CLI::IsMember({"kernel-transform", "lemmas", "equivariance", "all"}))
      ->capture_default_str();
  cmd->add_option("--arch", args->arch, "Architecture spec")->required();
  cmd->add_option("--group", args->group,
                  "c4, d4, flip, translations, rot(K), sign, cyclic, rot2(K), cube, icosahedron or G.npy")
      ->required();
  cmd->add_option("--output-rep", args->output_rep,
                  "Action ρ_Y on the outputs: trivial (default with a readout), pixels (default without), sign, "
                  "regular, rotation or R.npy (|G|, k, k)");
  cmd->add_option("--x", args->x, "Training inputs X.npy: (N, d) or (N, H, W, C)");
  cmd->add_option("--shape", args->shape, "Built-in inputs of this example shape: D or HxWxC (instead of --x)");
  cmd->add_option("--data", args->data, "Built-in data: gaussian (N(0,1) entries) or ising (LxLx1 spins)")
      ->capture_default_str();
  cmd->add_option("--n", args->n, "Built-in training points (before augmentation)")->capture_default_str();
  cmd->add_option("--n-test", args->n_test, "Built-in test points (with --x: its last rows)")->capture_default_str();
  cmd->add_option("--train-y", args->train_y,
                  "Targets Y.npy (N, k) (default: N(0,1); Ising energies with --data ising)");
  cmd->add_option("--test-x", args->test_x, "Test inputs Z.npy (training-distribution points)");
  cmd->add_option("--noise", args->noise, "Off-manifold inputs: N(0, s²) entries, s = RMS of the training inputs")
      ->capture_default_str();
  cmd->add_option("--times", args->times, "Training times in steps, e.g. 0,10,inf")->capture_default_str();
  cmd->add_option("--lr", args->lr, "Learning rate η")->capture_default_str();
  cmd->add_option("--diag-reg", args->diag_reg, "Diagonal regularizer added to Θ(X,X)")->capture_default_str();
  cmd->add_option("--members", args->members, "Linearized infinite-width members to sample (0: none)")
      ->capture_default_str();
  cmd->add_option("--finite-members", args->finite_members, "Finite-width members to train (0: none)")
      ->capture_default_str();
  cmd->add_option("--finite-steps", args->finite_steps, "Gradient-descent steps of the finite-width members")
      ->capture_default_str();
  args->finite_lr_opt = cmd->add_option("--finite-lr", args->finite_lr, "Their learning rate (default: --lr)");
  cmd->add_option("--seed", args->seed_text, "Seed of data, noise and members (0 to 2^64 − 1)")->capture_default_str();
  cmd->add_option("--safety", args->safety, "Multiplies every round-off tolerance (>= 1)")->capture_default_str();
  cmd->add_flag("--json", args->json, "One JSON object on stdout: {\"holds\": bool, \"max_violation\": x, ...}");
  cmd->add_option("--memory-cap", args->memory_cap, "Memory cap for the kernels: 4G, 512M or 25%")->capture_default_str();
  cmd->add_option("--threads", args->threads, "OpenMP threads (0: default); results do not depend on it");
  cmd->callback([args] {
    args->seed = parse_seed("--seed", args->seed_text);
    run_verify(*args);
  });
}

}  // namespace emergent::cli
