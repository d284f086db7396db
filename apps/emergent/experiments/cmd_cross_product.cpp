// `emergent experiment cross-product`: the equivariant experiment of Gerken & Kessel (ICML 2024,
// appendix): fully-connected ensembles learn the cross product x × y of x, y ∈ ℝ³ from data
// augmented by a finite subgroup B ⊂ SO(3) (the cube's 24 or the icosahedron's 60 rotations),
// acting on the input (x, y) ∈ ℝ⁶ by R ⊕ R and on the output by R (x × y is SO(3)-equivariant).
// Measured against Haar-random rotations of all of SO(3), on the data manifold (x, y on the unit
// sphere, like the training pairs) and off it (Gaussian pairs): the members' violation, the
// M-member ensemble's violation versus M, and the NTK limit (closed-form gradient flow), which is
// exactly B-equivariant (Theorem 5.2) and approximately SO(3)-equivariant, with the bound of
// docs/continuous_bound_derivation.md §9 next to the measured worst case.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <numbers>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <emergent/bounds/so3_bound.hpp>
#include <emergent/core/random.hpp>
#include <emergent/dynamics/gradient_flow.hpp>
#include <emergent/kernels/kernel.hpp>
#include <emergent/networks/ensemble.hpp>
#include <emergent/symmetry/augmentation.hpp>
#include <emergent/symmetry/groups.hpp>

#include "commands.hpp"
#include "support/io.hpp"
#include "support/plot.hpp"

namespace emergent::cli {
namespace {

using Eigen::Index;
using Eigen::Matrix3d;
using Eigen::MatrixXd;
using Eigen::Vector3d;

struct CrossArgs {
  double scale = 1.0;
  std::string group = "cube";
  std::string arch = "dense({W}) relu dense(3)";
  std::string widths;
  std::string out = "emergent-experiment-cross-product";
  int steps = 0;
  double lr = 1.0;
  std::uint64_t seed = 2024;
  int threads = 0;
};

std::string with_width(std::string spec, int width) {
  const auto pos = spec.find("{W}");
  if (pos != std::string::npos) spec.replace(pos, 3, std::to_string(width));
  return spec;
}

Vector3d block(const RowMatrix& x, Index row, int b) { return x.row(row).segment<3>(3 * b).transpose(); }

// n pairs (x, y): on the manifold both on the unit sphere, off it N(0, I₆).
RowMatrix pairs(Index n, bool on_sphere, std::uint64_t seed, std::uint64_t stream) {
  const NormalStream s(seed, stream);
  RowMatrix x(n, 6);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = s.normal(static_cast<std::uint64_t>(i));
  if (on_sphere)
    for (Index i = 0; i < n; ++i)
      for (int b = 0; b < 2; ++b) x.row(i).segment<3>(3 * b).normalize();
  return x;
}

RowMatrix cross_products(const RowMatrix& x) {
  RowMatrix y(x.rows(), 3);
  for (Index i = 0; i < x.rows(); ++i) {
    const Vector3d u = block(x, i, 0), v = block(x, i, 1);
    y.row(i) << u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0];
  }
  return y;
}

RowMatrix rotate_pairs3(const RowMatrix& x, const Matrix3d& r) {
  RowMatrix out(x.rows(), 6);
  for (Index i = 0; i < x.rows(); ++i)
    for (int b = 0; b < 2; ++b) out.row(i).segment<3>(3 * b) = (r * block(x, i, b)).transpose();
  return out;
}

// Probe rows for one test set of n points: block j·n + i holds R_j z_i, with R_0 = I, then the
// Haar rotations, then the elements of B.
struct Probe {
  std::vector<Matrix3d> rotations;  // R_j
  int haar = 0, group = 0;          // blocks 1..haar are Haar, the next `group` are B
  Index n = 0;
  RowMatrix rows;
};

Probe make_probe(const RowMatrix& z, const std::vector<Matrix3d>& haar, const std::vector<Matrix3d>& b) {
  Probe p;
  p.n = z.rows();
  p.rotations.push_back(Matrix3d::Identity());
  p.rotations.insert(p.rotations.end(), haar.begin(), haar.end());
  p.rotations.insert(p.rotations.end(), b.begin(), b.end());
  p.haar = static_cast<int>(haar.size());
  p.group = static_cast<int>(b.size());
  p.rows.resize(static_cast<Index>(p.rotations.size()) * p.n, 6);
  for (std::size_t j = 0; j < p.rotations.size(); ++j)
    p.rows.middleRows(static_cast<Index>(j) * p.n, p.n) = rotate_pairs3(z, p.rotations[j]);
  return p;
}

// ‖f(R_j z_i) − R_j f(z_i)‖ for one block j, all points i (f: rows of the probe, 3 columns).
std::vector<double> block_violation(const Probe& p, const MatrixXd& f, int j) {
  std::vector<double> v(static_cast<std::size_t>(p.n));
  for (Index i = 0; i < p.n; ++i) {
    const Vector3d a = f.row(j * p.n + i).transpose();
    const Vector3d b = p.rotations[j] * Vector3d(f.row(i).transpose());
    v[i] = (a - b).norm();
  }
  return v;
}

struct Violation {
  double haar_mean = 0, haar_max = 0, group_max = 0;
  std::vector<double> per_rotation;  // Haar block j: mean over points
};

Violation violation(const Probe& p, const MatrixXd& f) {
  Violation v;
  double sum = 0;
  for (int j = 1; j <= p.haar; ++j) {
    const auto b = block_violation(p, f, j);
    double s = 0;
    for (double e : b) {
      s += e;
      v.haar_max = std::max(v.haar_max, e);
    }
    v.per_rotation.push_back(s / static_cast<double>(p.n));
    sum += s;
  }
  v.haar_mean = sum / std::max<double>(1.0, static_cast<double>(p.haar) * static_cast<double>(p.n));
  for (int j = p.haar + 1; j <= p.haar + p.group; ++j)
    for (double e : block_violation(p, f, j)) v.group_max = std::max(v.group_max, e);
  return v;
}

std::string fmt(double v) {
  std::ostringstream s;
  s << std::setprecision(3) << v;
  return s.str();
}

struct Row {
  std::string model, manifold, note;
  int width = 0, members = 0;
  double time = 0;
  Violation v;
};

void run_cross_product(const CrossArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  if (!(a.scale > 0) || !std::isfinite(a.scale) || a.scale > 1000)
    throw std::invalid_argument("--scale " + fmt(a.scale) + ": expected a number in (0, 1000]");
  if (a.group != "cube" && a.group != "icosahedron")
    throw std::invalid_argument("--group '" + a.group + "': expected cube or icosahedron");
  if (!(a.lr > 0) || !std::isfinite(a.lr)) throw std::invalid_argument("--lr " + fmt(a.lr) + ": expected a finite number > 0");
  if (a.steps < 0) throw std::invalid_argument("--steps " + std::to_string(a.steps) + ": expected >= 0 (0: default)");
  if (a.arch.find("{W}") == std::string::npos)
    throw std::invalid_argument("--arch '" + a.arch + "': expected a spec with {W} for the width, e.g. 'dense({W}) relu dense(3)'");
  const std::vector<int> widths =
      a.widths.empty() ? (a.scale >= 2 ? std::vector<int>{64, 256, 1024, 4096} : std::vector<int>{64, 256, 1024})
                       : parse_steps("--widths", a.widths);
  for (int w : widths)
    if (w < 1 || w > 65536) throw std::invalid_argument("--widths: " + std::to_string(w) + ", expected 1..65536");
  const auto sized = [&](double base, int lo) { return std::max(lo, static_cast<int>(std::lround(base * a.scale))); };
  const int n_train = sized(6, 2), n_test = sized(8, 2), n_haar = sized(48, 4), members = sized(32, 2);
  const int steps = a.steps > 0 ? a.steps : (a.scale >= 2 ? 1000 : 300);
  for (int w : widths) {
    const Architecture arch = Architecture::parse(with_width(a.arch, w));
    if (arch.outputs() != 3 || arch.expects_images())
      throw std::invalid_argument("--arch '" + a.arch + "': expected a fully-connected network on ℝ⁶ with 3 outputs");
  }
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec || !std::filesystem::is_directory(a.out))
    throw std::invalid_argument("--out '" + a.out + "': cannot create this folder (" + ec.message() + ")");
  const std::filesystem::path out(a.out);
  check_output_path("--out", (out / "cross_product_summary.csv").string());
  std::ostream& log = std::cerr;

  // ---- data and group ----
  const ExampleShape shape = ExampleShape::vector(6);
  const Representation bx = make_group(a.group, shape);
  const Representation by = make_output_rep("rotation", bx, ExampleShape::vector(3));
  std::vector<Matrix3d> b;
  for (int g = 0; g < bx.size(); ++g) b.push_back(by.matrix(g));
  const Inputs x(pairs(n_train, true, a.seed, 1), shape);
  const RowMatrix y = cross_products(x.x);
  const AugmentedSet aug = augment(x, y, bx, by);
  std::vector<Matrix3d> haar;
  for (int r = 0; r < n_haar; ++r) haar.push_back(haar_rotation(a.seed, 4, static_cast<std::uint64_t>(r)));
  const RowMatrix on = pairs(n_test, true, a.seed, 2), off = pairs(n_test, false, a.seed, 3);
  const Probe probe_on = make_probe(on, haar, b), probe_off = make_probe(off, haar, b);
  const Index rows_on = probe_on.rows.rows();
  RowMatrix all(rows_on + probe_off.rows.rows(), 6);
  all << probe_on.rows, probe_off.rows;
  const Inputs probes(all, shape);
  const double theta_b = so3_covering_angle(b);
  double target_rms = std::sqrt(cross_products(on).squaredNorm() / static_cast<double>(n_test));
  log << "cross-product: " << n_train << " pairs on S²×S², augmented by " << bx.to_string() << " to " << aug.x.count()
      << "; " << n_test << " test pairs on and off the manifold, " << n_haar << " Haar rotations; covering angle of "
      << a.group << " θ_B = " << fmt(theta_b * 180 / std::numbers::pi) << "°\n";

  std::vector<Row> rows;
  auto split = [&](const MatrixXd& f) { return std::pair{MatrixXd(f.topRows(rows_on)), MatrixXd(f.bottomRows(f.rows() - rows_on))}; };

  // ---- NTK limit (closed form), with and without augmentation ----
  const Architecture ntk_arch = Architecture::parse(with_width(a.arch, widths.back()));
  KernelOptions kopt;
  kopt.threads = a.threads;
  GradientFlowOptions gopt;
  gopt.learning_rate = a.lr;
  gopt.threads = a.threads;
  const std::vector<double> times = {static_cast<double>(steps), std::numeric_limits<double>::infinity()};
  const Kernels train = kernels(ntk_arch, aug.x, kopt);
  const GradientFlow flow(train.ntk, MatrixXd(), aug.y, gopt);
  const Kernels cross = kernels(ntk_arch, probes, aug.x, kopt);
  const auto mu = flow.mean(times, cross.ntk);
  const Kernels train_plain = kernels(ntk_arch, x, kopt);
  const GradientFlow flow_plain(train_plain.ntk, MatrixXd(), y, gopt);
  const auto mu_plain = flow_plain.mean(times, kernels(ntk_arch, probes, x, kopt).ntk);
  for (std::size_t t = 0; t < times.size(); ++t) {
    const auto [f_on, f_off] = split(mu[t]);
    rows.push_back({"ntk", "on", "", 0, 0, times[t], violation(probe_on, f_on)});
    rows.push_back({"ntk", "off", "", 0, 0, times[t], violation(probe_off, f_off)});
    const auto [p_on, p_off] = split(mu_plain[t]);
    rows.push_back({"ntk_not_augmented", "on", "", 0, 0, times[t], violation(probe_on, p_on)});
    rows.push_back({"ntk_not_augmented", "off", "", 0, 0, times[t], violation(probe_off, p_off)});
  }

  // ---- the SO(3) bound of docs/continuous_bound_derivation.md §9 (so3_group_bound, also behind
  // `emergent bound group --group`): same training set, the same Haar rotations plus B's deepest holes ----
  struct BoundRow {
    std::string manifold;
    double time, bound_max, measured_max, ratio_min;
  };
  std::vector<BoundRow> bounds;
  So3BoundOptions sopt;
  sopt.times = times;
  sopt.flow = gopt;
  sopt.kernel = kopt;
  sopt.haar_rotations = n_haar;
  sopt.seed = a.seed;
  RowMatrix both(2 * n_test, 6);
  both << on, off;
  const So3BoundResult so3 = so3_group_bound(ntk_arch, x, y, Inputs(both, shape), bx, by, sopt);
  const double kappa = so3.kappa;
  for (std::size_t t = 0; t < times.size(); ++t)
    for (int part = 0; part < 2; ++part) {
      double bmax = 0, mmax = 0, rmin = INFINITY;
      for (Index i = part * n_test; i < (part + 1) * n_test; ++i) {
        const So3BoundPoint& p = so3.at(t, i);
        bmax = std::max(bmax, p.bound);
        mmax = std::max(mmax, p.measured);
        if (p.measured > 0) rmin = std::min(rmin, p.ratio);
      }
      bounds.push_back({part == 0 ? "on" : "off", times[t], bmax, mmax, rmin});
    }

  // ---- finite-width ensembles, trained on the same augmented set ----
  std::vector<int> sizes;
  for (int m = 1; m < members; m *= 2) sizes.push_back(m);
  sizes.push_back(members);
  struct WidthCurves {
    int width;
    std::vector<double> on, off;  // ensemble violation (Haar mean) per size
    double members_on = 0, members_off = 0, members_group_on = 0;
  };
  std::vector<WidthCurves> curves;
  for (int w : widths) {
    const Architecture arch = Architecture::parse(with_width(a.arch, w));
    TrainingOptions topt;
    topt.members = members;
    topt.steps = steps;
    topt.learning_rate = a.lr;
    topt.seed = a.seed;
    topt.threads = a.threads;
    topt.checkpoints = {steps};
    const EnsembleResult ens = train_ensemble(arch, aug.x, aug.y, probes, topt);
    for (int m = 0; m < members; ++m)
      for (Index i = 0; i < probes.count(); ++i)
        for (int c = 0; c < 3; ++c)
          if (!std::isfinite(ens.at(m, 0, i, c)))
            throw std::runtime_error("member " + std::to_string(m) + " of width " + std::to_string(w) +
                                     " diverged (non-finite predictions); lower --lr");
    auto member_f = [&](int m) {
      MatrixXd f(probes.count(), 3);
      for (Index i = 0; i < probes.count(); ++i)
        for (int c = 0; c < 3; ++c) f(i, c) = ens.at(m, 0, i, c);
      return f;
    };
    WidthCurves wc{w, {}, {}};
    Violation mem_on, mem_off;
    MatrixXd sum = MatrixXd::Zero(probes.count(), 3);
    std::size_t next = 0;
    for (int m = 0; m < members; ++m) {
      const MatrixXd f = member_f(m);
      sum += f;
      const auto [f_on, f_off] = split(f);
      const Violation von = violation(probe_on, f_on), voff = violation(probe_off, f_off);
      mem_on.haar_mean += von.haar_mean / members;
      mem_on.haar_max = std::max(mem_on.haar_max, von.haar_max);
      mem_on.group_max = std::max(mem_on.group_max, von.group_max);
      mem_off.haar_mean += voff.haar_mean / members;
      mem_off.haar_max = std::max(mem_off.haar_max, voff.haar_max);
      mem_off.group_max = std::max(mem_off.group_max, voff.group_max);
      if (next < sizes.size() && m + 1 == sizes[next]) {
        const auto [e_on, e_off] = split(MatrixXd(sum / (m + 1)));
        const Violation ev_on = violation(probe_on, e_on), ev_off = violation(probe_off, e_off);
        wc.on.push_back(ev_on.haar_mean);
        wc.off.push_back(ev_off.haar_mean);
        rows.push_back({"ensemble", "on", "", w, m + 1, static_cast<double>(steps), ev_on});
        rows.push_back({"ensemble", "off", "", w, m + 1, static_cast<double>(steps), ev_off});
        ++next;
      }
    }
    rows.push_back({"members", "on", "mean over members", w, members, static_cast<double>(steps), mem_on});
    rows.push_back({"members", "off", "mean over members", w, members, static_cast<double>(steps), mem_off});
    wc.members_on = mem_on.haar_mean;
    wc.members_off = mem_off.haar_mean;
    wc.members_group_on = mem_on.group_max;
    curves.push_back(wc);
    log << "  width " << w << ": " << members << " members, " << steps << " steps, " << ens.seconds << " s\n";
  }

  // ---- outputs (written only now, all computation done) ----
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ostringstream csv;
  csv << std::setprecision(10);
  csv << "model,width,members,manifold,time,haar_mean_violation,haar_max_violation,group_max_violation,target_rms\n";
  for (const Row& r : rows)
    csv << r.model << "," << r.width << "," << r.members << "," << r.manifold << ","
        << (std::isinf(r.time) ? std::string("inf") : fmt(r.time)) << "," << r.v.haar_mean << "," << r.v.haar_max << ","
        << r.v.group_max << "," << target_rms << "\n";
  std::ostringstream bcsv;
  bcsv << std::setprecision(10) << "manifold,time,covering_angle_deg,kappa,bound_max,measured_max,min_ratio\n";
  for (const BoundRow& r : bounds)
    bcsv << r.manifold << "," << (std::isinf(r.time) ? std::string("inf") : fmt(r.time)) << ","
         << theta_b * 180 / std::numbers::pi << "," << kappa << "," << r.bound_max << "," << r.measured_max << ","
         << r.ratio_min << "\n";
  write_text((out / "cross_product_summary.csv").string(), csv.str());
  write_text((out / "cross_product_bound.csv").string(), bcsv.str());

  auto ntk_at = [&](const std::string& model, const std::string& manifold, double t) {
    for (const Row& r : rows)
      if (r.model == model && r.manifold == manifold && r.time == t) return r.v;
    return Violation{};
  };
  Figure fig;
  fig.columns = 3;
  fig.title = "x × y learned with " + a.group + " augmentation (|B| = " + std::to_string(bx.size()) +
              "), violation under Haar rotations of SO(3)";
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"};
  for (const std::string manifold : {"on", "off"}) {
    Panel p;
    p.title = manifold == "on" ? "on the data manifold (S²×S²)" : "off the manifold (Gaussian pairs)";
    p.xlabel = "ensemble size M";
    p.ylabel = "mean ‖f(Rz) − R f(z)‖";
    p.logx = p.logy = true;
    const std::vector<double> xs(sizes.begin(), sizes.end());
    for (std::size_t c = 0; c < curves.size(); ++c) {
      const auto& wc = curves[c];
      p.series.push_back({"ensemble, width " + std::to_string(wc.width), xs, manifold == "on" ? wc.on : wc.off, {},
                          colors[c % 5], false, true});
      p.series.push_back({"members, width " + std::to_string(wc.width), xs,
                          std::vector<double>(xs.size(), manifold == "on" ? wc.members_on : wc.members_off), {},
                          colors[c % 5], true, false});
    }
    p.series.push_back({"NTK limit, t = " + std::to_string(steps), xs,
                        std::vector<double>(xs.size(), ntk_at("ntk", manifold, times[0]).haar_mean), {}, "#000000",
                        true, false});
    fig.panels.push_back(p);
  }
  {
    // NTK-limit violation against the rotation's distance to B: 0 on B, growing off it.
    Panel p;
    p.title = "NTK limit (t = ∞): violation vs distance of R to B";
    p.xlabel = "min_b angle(b⁻¹R) [degrees]";
    p.ylabel = "mean ‖μ(Rz) − Rμ(z)‖";
    const Violation von = ntk_at("ntk", "on", times[1]), voff = ntk_at("ntk", "off", times[1]);
    std::vector<std::pair<double, std::pair<double, double>>> pts;
    for (int j = 0; j < n_haar; ++j)
      pts.push_back({so3_distance_to_set(haar[j], b) * 180 / std::numbers::pi, {von.per_rotation[j], voff.per_rotation[j]}});
    std::sort(pts.begin(), pts.end());
    Series s_on{"on the manifold", {}, {}, {}, colors[0], false, true}, s_off{"off the manifold", {}, {}, {}, colors[1], false, true};
    for (const auto& [d, v] : pts) {
      s_on.x.push_back(d), s_on.y.push_back(v.first);
      s_off.x.push_back(d), s_off.y.push_back(v.second);
    }
    p.series = {s_on, s_off};
    fig.panels.push_back(p);
  }
  const FigureFiles ff = write_figure(fig, (out / "cross_product").string());

  std::ostringstream s;
  s << "cross product, " << a.group << " augmentation (" << bx.size() << " rotations, θ_B = "
    << fmt(theta_b * 180 / std::numbers::pi) << "°), " << n_train << " pairs → " << aug.x.count()
    << " training points, target RMS " << fmt(target_rms) << "; violation ‖f(Rz) − R f(z)‖:\n";
  s << "  " << std::left << std::setw(26) << "model" << std::setw(9) << "manifold" << std::setw(8) << "t"
    << std::setw(12) << "Haar mean" << std::setw(12) << "Haar max" << "max over B\n";
  for (const Row& r : rows) {
    if (r.model == "ensemble" && r.members != members && r.members != 1) continue;
    const std::string name = r.model == "ensemble" ? "ensemble M=" + std::to_string(r.members) + " W=" + std::to_string(r.width)
                             : r.model == "members" ? "members W=" + std::to_string(r.width)
                                                    : r.model;
    s << "  " << std::setw(26) << name << std::setw(9) << r.manifold << std::setw(8)
      << (std::isinf(r.time) ? std::string("inf") : fmt(r.time)) << std::setw(12) << fmt(r.v.haar_mean) << std::setw(12)
      << fmt(r.v.haar_max) << fmt(r.v.group_max) << "\n";
  }
  s << "SO(3) bound for the NTK limit (κ = 2 sin(θ_B/2) = " << fmt(kappa) << "):\n";
  for (const BoundRow& r : bounds)
    s << "  " << std::setw(4) << r.manifold << " t = " << std::setw(6) << (std::isinf(r.time) ? std::string("inf") : fmt(r.time))
      << " bound max " << fmt(r.bound_max) << ", measured max " << fmt(r.measured_max) << ", min bound/measured "
      << fmt(r.ratio_min) << "\n";
  s << "wall time " << fmt(seconds) << " s\n";
  write_text((out / "run.txt").string(), "emergent experiment cross-product --group " + a.group + " --scale " +
                                             fmt(a.scale) + " --seed " + std::to_string(a.seed) + "\narch " + a.arch +
                                             "\n" + s.str());
  std::cout << s.str();
  log << "wrote " << (out / "cross_product_summary.csv").string() << ", cross_product_bound.csv, run.txt, " << ff.csv
      << (ff.rendered ? ", " + ff.png + ", " + ff.svg : " (no PNG/SVG: " + ff.message + ")") << "\n";
}

}  // namespace

void add_cross_product_experiment(CLI::App* experiment) {
  auto args = std::make_shared<CrossArgs>();
  auto* cmd = experiment->add_subcommand(
      "cross-product", "x × y in ℝ³ with a finite subgroup of SO(3): members vs ensembles vs the NTK limit");
  cmd->footer(
      "Fully-connected ensembles learn (x, y) ↦ x × y from pairs on S²×S², augmented by the cube's 24 or the\n"
      "icosahedron's 60 rotations (ρ_X = R ⊕ R on ℝ⁶, ρ_Y = R), and are measured against Haar-random\n"
      "rotations of SO(3) on and off the data manifold. Default (--scale 1): 6 pairs, widths 64, 256 and\n"
      "1024, 32 members, 300 steps, 48 rotations, 8 test pairs per set; --scale multiplies the counts\n"
      "(>= 2: width 4096 too and 1000 steps). Writes cross_product.{csv,gp,png,svg},\n"
      "cross_product_summary.csv, cross_product_bound.csv and run.txt into --out. See docs/experiments.md.");
  cmd->add_option("--scale", args->scale, "Data, members and rotations relative to the default")->capture_default_str();
  cmd->add_option("--group", args->group, "cube (24 rotations) or icosahedron (60)")->capture_default_str();
  cmd->add_option("--arch", args->arch, "Fully-connected spec with {W} for the width and 3 outputs")->capture_default_str();
  cmd->add_option("--widths", args->widths, "Comma-separated widths (default 64,256,1024; with --scale >= 2 also 4096)");
  cmd->add_option("--steps", args->steps, "Gradient-descent steps (0: 300, or 1000 with --scale >= 2)");
  cmd->add_option("--lr", args->lr, "Learning rate η (also the NTK-limit time unit)")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed of data, rotations and initializations")->capture_default_str();
  cmd->add_option("--threads", args->threads, "OpenMP threads (0: default); results do not depend on it");
  cmd->add_option("--out", args->out, "Output directory")->capture_default_str();
  cmd->callback([args] { run_cross_product(*args); });
}

}  // namespace emergent::cli
