// Continuous-group bound and finite-ensemble violation laws (include/emergent/bounds/continuous_group.hpp);
// the mathematics is in docs/continuous_bound_derivation.md, whose section numbers are cited below.
#include "emergent/bounds/continuous_group.hpp"

#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/core/random.hpp"
#include "emergent/core/cancellation.hpp"
#include "detail/errors.hpp"
#include "detail/format.hpp"

#include <Eigen/Eigenvalues>
#include <Eigen/Geometry>
#include <Eigen/QR>
#include <algorithm>
#include <boost/math/tools/minima.hpp>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <sstream>
#include <stdexcept>

namespace emergent {

namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();

using detail::bad;
using detail::value_text;

// Gauss–Legendre nodes and weights on [a, b] (Golub–Welsch on the Jacobi matrix).
void gauss_legendre(int n, double a, double b, Eigen::VectorXd* nodes, Eigen::VectorXd* weights) {
  Eigen::MatrixXd J = Eigen::MatrixXd::Zero(n, n);
  for (int i = 1; i < n; ++i) {
    const double beta = i / std::sqrt(4.0 * i * i - 1.0);
    J(i, i - 1) = J(i - 1, i) = beta;
  }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(J);
  *nodes = (a + b) / 2 + (b - a) / 2 * es.eigenvalues().array();
  *weights = (b - a) * es.eigenvectors().row(0).transpose().array().square();  // Σ = 2·(b−a)/2
}

Inputs as_inputs(const RowMatrix& rows) { return Inputs(rows, ExampleShape::vector(static_cast<int>(rows.cols()))); }

RowMatrix one_row(const Eigen::VectorXd& x) { return RowMatrix(x.transpose()); }

// The architecture must be an MLP on vectors of even dimension (derivation §1, assumption A1).
void require_mlp(const Architecture& arch, const ExampleShape& shape, const char* fn) {
  if (arch.expects_images())
    throw SpecError(std::string(fn) + ": architecture '" + arch.to_string() +
                    "' starts with conv/flatten/gap; expected an MLP (dense layers and activations only)");
  for (const Layer& l : arch.layers())
    if (l.kind != LayerKind::Dense && l.kind != LayerKind::Activation)
      throw SpecError(std::string(fn) + ": layer '" + l.to_string() + "' of '" + arch.to_string() +
                      "' is not dense or an activation; expected an MLP");
  if (shape.image || shape.channels % 2 != 0 || shape.channels < 2)
    bad(std::string(fn) + ": inputs have shape " + shape.to_string() +
        "; expected vectors of even dimension d = 2m (rot2 rotates coordinate pairs)");
}

/// train_y must be (N, k): one row per training input, one column per network output.
void require_targets(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y, const char* fn) {
  if (train_y.rows() != train_x.count())
    bad(std::string(fn) + ": train_y has " + std::to_string(train_y.rows()) + " rows but train_x has " +
        std::to_string(train_x.count()) + "; expected the same N");
  if (train_y.cols() != arch.outputs())
    bad(std::string(fn) + ": train_y has " + std::to_string(train_y.cols()) + " columns but the architecture has " +
        std::to_string(arch.outputs()) + " outputs; expected them to match");
}

}  // namespace

double rot2_kappa(int k) {
  if (k < 1) bad("rot2_kappa: k = " + std::to_string(k) + ", expected k >= 1");
  return 2.0 * std::sin(std::numbers::pi / (2.0 * k));
}

Eigen::VectorXd rotate_pairs(const Eigen::VectorXd& x, double theta) {
  if (x.size() % 2 != 0) bad("rotate_pairs: x has " + std::to_string(x.size()) + " entries, expected an even number");
  const double c = std::cos(theta), s = std::sin(theta);
  Eigen::VectorXd y(x.size());
  for (Eigen::Index m = 0; m < x.size(); m += 2) {
    y(m) = c * x(m) - s * x(m + 1);
    y(m + 1) = s * x(m) + c * x(m + 1);
  }
  return y;
}

// ---- dense scan + Brent --------------------------------------------------------------------------

bool IntervalMaximumOptions::IsValid(std::string* error) const {
  std::string e;
  if (scan_points < 3 || scan_points > 65536)
    e = "scan_points = " + std::to_string(scan_points) + ", expected 3..65536";
  else if (refine < 0) e = "refine = " + std::to_string(refine) + ", expected >= 0";
  else if (bits < 8 || bits > 26) e = "bits = " + std::to_string(bits) + ", expected 8..26";
  else if (max_iterations < 1) e = "max_iterations = " + std::to_string(max_iterations) + ", expected >= 1";
  if (error) *error = e;
  return e.empty();
}

IntervalMaximum maximize_on_interval(const std::function<double(double)>& f, double lo, double hi,
                                     const IntervalMaximumOptions& options) {
  if (std::string why; !options.IsValid(&why)) bad("maximize_on_interval: invalid options: " + why);
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi))
    bad("maximize_on_interval: interval [" + value_text(lo) + ", " + value_text(hi) + "] is invalid; expected finite lo < hi");
  const int n = options.scan_points;
  std::vector<double> xs(n), fs(n);
  IntervalMaximum r;
  for (int i = 0; i < n; ++i) {
    xs[i] = i == n - 1 ? hi : lo + (hi - lo) * i / (n - 1);
    fs[i] = f(xs[i]);
    ++r.evaluations;
    if (fs[i] > r.scan_value) r.scan_value = fs[i], r.argmax = xs[i];
  }
  r.value = r.scan_value;
  // Local maxima of the scan (interior, and the ends), largest first.
  std::vector<int> peaks;
  for (int i = 0; i < n; ++i) {
    const bool left = i == 0 || fs[i] >= fs[i - 1], right = i == n - 1 || fs[i] >= fs[i + 1];
    if (left && right) peaks.push_back(i);
  }
  std::stable_sort(peaks.begin(), peaks.end(), [&](int a, int b) { return fs[a] > fs[b]; });
  if (static_cast<int>(peaks.size()) > options.refine) peaks.resize(static_cast<std::size_t>(options.refine));
  for (int i : peaks) {
    const double a = xs[std::max(i - 1, 0)], b = xs[std::min(i + 1, n - 1)];
    std::uintmax_t iters = static_cast<std::uintmax_t>(options.max_iterations);
    const auto [x, negf] = detail::guard_numerics("the refinement of a scan maximum", [&] {
      return boost::math::tools::brent_find_minima(
          [&](double t) {
            ++r.evaluations;
            return -f(t);
          },
          a, b, options.bits, iters);
    });
    if (-negf > r.value) r.value = -negf, r.argmax = x;
  }
  return r;
}

// ---- options -------------------------------------------------------------------------------------

bool ContinuousBoundOptions::IsValid(std::string* error) const {
  std::string e, sub;
  if (order < 1 || order > 4096) e = "order = " + std::to_string(order) + ", expected 1 <= k <= 4096";
  else if (times.empty()) e = "times is empty, expected at least one time";
  else if (std::any_of(times.begin(), times.end(), [](double t) { return !(t >= 0.0); }))
    e = "times has an entry that is negative or NaN, expected t >= 0 (inf allowed)";
  else if (!flow.IsValid(&sub)) e = "flow." + sub;
  else if (!kernel.IsValid(&sub)) e = "kernel." + sub;
  else if (!scan.IsValid(&sub)) e = "scan." + sub;
  else if (quadrature_nodes < 8 || quadrature_nodes > 2000)
    e = "quadrature_nodes = " + std::to_string(quadrature_nodes) + ", expected 8..2000";
  else if (!(kernel_rtol >= 0.0 && kernel_rtol < 1e-2))
    e = "kernel_rtol = " + value_text(kernel_rtol) + ", expected 0 <= kernel_rtol < 1e-2";
  if (error) *error = e;
  return e.empty();
}

bool ViolationLawOptions::IsValid(std::string* error) const {
  std::string e, sub;
  if (times.empty()) e = "times is empty, expected at least one time";
  else if (std::any_of(times.begin(), times.end(), [](double t) { return !(t >= 0.0); }))
    e = "times has an entry that is negative or NaN, expected t >= 0 (inf allowed)";
  else if (!flow.IsValid(&sub)) e = "flow." + sub;
  else if (!kernel.IsValid(&sub)) e = "kernel." + sub;
  if (error) *error = e;
  return e.empty();
}

// ---- the bound -----------------------------------------------------------------------------------

struct ContinuousGroupBound::Prepared {
  Inputs augmented;
  Kernels kernels;
};

ContinuousGroupBound::Prepared ContinuousGroupBound::prepare(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                        const ContinuousBoundOptions& options) {
  const char* fn = "ContinuousGroupBound";
  if (std::string why; !options.IsValid(&why)) bad(std::string(fn) + ": invalid options: " + why);
  require_mlp(arch, train_x.shape, fn);
  if (train_x.count() < 1) bad(std::string(fn) + ": train_x has 0 rows, expected N >= 1");
  require_targets(arch, train_x, train_y, fn);
  if (!train_x.x.allFinite() || !train_y.allFinite()) bad(std::string(fn) + ": train_x or train_y has a non-finite entry");
  const Representation rho = group_rot2(options.order, train_x.shape);
  const AugmentedSet set = augment(train_x, train_y, rho, trivial_output(rho, static_cast<int>(train_y.cols())));
  return Prepared{set.x, kernels(arch, set.x, options.kernel)};
}

namespace {

RowMatrix repeat_targets(const RowMatrix& y, int k) {
  RowMatrix r(y.rows() * k, y.cols());
  for (int g = 0; g < k; ++g) r.middleRows(g * y.rows(), y.rows()) = y;
  return r;
}

GradientFlow make_flow(const Inputs&, const Kernels& t, const RowMatrix& y, int k, const GradientFlowOptions& options) {
  return GradientFlow(t.ntk, Eigen::MatrixXd(), repeat_targets(y, k), options);
}

}  // namespace

ContinuousGroupBound::ContinuousGroupBound(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                           const ContinuousBoundOptions& options)
    : ContinuousGroupBound(arch, train_x, train_y, options, prepare(arch, train_x, train_y, options)) {}

ContinuousGroupBound::ContinuousGroupBound(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                           const ContinuousBoundOptions& options, const Prepared& trained)
    : arch_(arch),
      options_(options),
      train_(train_x),
      augmented_(trained.augmented),
      flow_(make_flow(trained.augmented, trained.kernels, train_y, options.order, options.flow)) {
  const int k = options_.order;
  const Eigen::Index n = train_.count(), nk = augmented_.count();
  bool closed = true;
  for (const Layer& l : arch_.layers())
    if (l.kind == LayerKind::Activation && !l.activation.closed_form()) closed = false;
  kernel_rtol_ = options_.kernel_rtol > 0 ? options_.kernel_rtol : (closed ? 64 * kEps : 4e-9);
  const Eigen::MatrixXd& ntk = trained.kernels.ntk;
  train_diag_max_ = ntk.diagonal().maxCoeff();

  // Θ_B(x_i, x_j) = (1/k) Σ_l Θ(R(β_l)x_i, x_j): rows l·N + i, column j of the augmented NTK.
  theta_b_ = Eigen::MatrixXd::Zero(n, n);
  for (int l = 0; l < k; ++l) theta_b_ += ntk.block(l * n, 0, n, n);
  theta_b_ /= k;
  theta_b_ = (0.5 * (theta_b_ + theta_b_.transpose())).eval();

  // Θ_G(x_i, x_j) = (1/π)∫_0^π F_ij(a_ij cos ψ)dψ (derivation §3): the orbit of x_i shifted by
  // φ_ij so that (R(φ_ij + ψ)x_i)·x_j = a_ij cos ψ, then Gauss–Legendre in ψ. Two rules (n, n/2)
  // give the error estimate.
  const int nq = options_.quadrature_nodes, nh = nq / 2;
  Eigen::VectorXd psi_a, w_a, psi_b, w_b;
  gauss_legendre(nq, 0.0, std::numbers::pi, &psi_a, &w_a);
  gauss_legendre(nh, 0.0, std::numbers::pi, &psi_b, &w_b);
  Eigen::MatrixXd ga(n, n), gb(n, n);
  const RowMatrix& X = train_.x;
  for (Eigen::Index i = 0; i < n; ++i) {
    const Eigen::VectorXd xi = X.row(i).transpose();
    const Eigen::VectorXd xi_perp = rotate_pairs(xi, std::numbers::pi / 2);
    RowMatrix pts((nq + nh) * n, X.cols());
    for (Eigen::Index j = 0; j < n; ++j) {
      const Eigen::VectorXd xj = X.row(j).transpose();
      const double phi = std::atan2(xi_perp.dot(xj), xi.dot(xj));
      for (int q = 0; q < nq; ++q) pts.row(j * (nq + nh) + q) = rotate_pairs(xi, phi + psi_a(q)).transpose();
      for (int q = 0; q < nh; ++q) pts.row(j * (nq + nh) + nq + q) = rotate_pairs(xi, phi + psi_b(q)).transpose();
    }
    const Kernels kk = kernels(arch_, as_inputs(pts), train_, options_.kernel);
    for (Eigen::Index j = 0; j < n; ++j) {
      ga(i, j) = w_a.dot(kk.ntk.block(j * (nq + nh), j, nq, 1).col(0)) / std::numbers::pi;
      gb(i, j) = w_b.dot(kk.ntk.block(j * (nq + nh) + nq, j, nh, 1).col(0)) / std::numbers::pi;
    }
  }
  theta_g_ = 0.5 * (ga + ga.transpose());
  // Estimated error of the n-node rule (the n/2-node rule's error overestimates it), plus the kernel
  // entries' own error and the asymmetry of the two triangles (both exact in exact arithmetic).
  quadrature_error_ = (ga - gb).cwiseAbs().maxCoeff() + (ga - ga.transpose()).cwiseAbs().maxCoeff() +
                      2 * kernel_rtol_ * train_diag_max_;

  // Per time: α = Θ⁻¹T_tY (mean() with the identity as test kernel), its orbit average, and the
  // RKHS norms ‖f‖² = k²Σ_c α_cᵀΘ_Bα_c, ‖f_⊥‖² = k²Σ_c α_cᵀ(Θ_B − Θ_G)α_c (derivation §3).
  alpha_ = flow_.mean(options_.times, Eigen::MatrixXd::Identity(nk, nk));
  const Eigen::MatrixXd perp = theta_b_ - theta_g_;
  for (const Eigen::MatrixXd& a : alpha_) {
    Eigen::MatrixXd ao = Eigen::MatrixXd::Zero(n, a.cols());
    for (int l = 0; l < k; ++l) ao += a.middleRows(l * n, n);
    ao /= k;
    double f2 = 0, p2 = 0, abs1 = 0;
    for (Eigen::Index c = 0; c < a.cols(); ++c) {
      f2 += ao.col(c).dot(theta_b_ * ao.col(c));
      const double l1 = ao.col(c).cwiseAbs().sum();
      p2 += ao.col(c).dot(perp * ao.col(c)) + quadrature_error_ * l1 * l1;
    }
    for (Eigen::Index r = 0; r < nk; ++r) abs1 += a.row(r).norm();
    // The part of the computed α that is not constant on orbits (round-off of Θ⁻¹T_tY, exactly 0 in
    // exact arithmetic): f_δ = Θ(·,X)δ is not B-invariant, and |f_δ(y) − f_δ(z)| ≤ 2θ_max·Σ_j‖δ_j‖.
    double asym = 0;
    for (int l = 0; l < k; ++l)
      for (Eigen::Index i = 0; i < n; ++i) asym += (a.row(l * n + i) - ao.row(i)).norm();
    alpha_asym_.push_back(asym);
    f_norm2_.push_back(std::max(0.0, double(k) * k * f2));
    f_perp_norm2_.push_back(std::max(0.0, double(k) * k * p2));
    alpha_abs_.push_back(abs1);
    alpha_orbit_.push_back(std::move(ao));
  }
}

Eigen::MatrixXd ContinuousGroupBound::cross_ntk(const RowMatrix& points) const {
  // Brent evaluates one row at a time: a parallel region per row costs far more than the row.
  KernelOptions ko = options_.kernel;
  if (points.rows() * augmented_.count() < 4096) ko.threads = 1;
  return kernels(arch_, as_inputs(points), augmented_, ko).ntk;
}

Eigen::MatrixXd ContinuousGroupBound::violation(const Eigen::VectorXd& x, std::size_t time_index,
                                                const std::vector<double>& angles) const {
  if (time_index >= alpha_.size())
    bad("ContinuousGroupBound::violation: time_index = " + std::to_string(time_index) + ", expected < " +
        std::to_string(alpha_.size()));
  if (x.size() != train_.x.cols())
    bad("ContinuousGroupBound::violation: x has " + std::to_string(x.size()) + " entries, expected " +
        std::to_string(train_.x.cols()));
  RowMatrix pts(static_cast<Eigen::Index>(angles.size()) + 1, x.size());
  pts.row(0) = x.transpose();
  for (std::size_t a = 0; a < angles.size(); ++a) pts.row(static_cast<Eigen::Index>(a) + 1) = rotate_pairs(x, angles[a]).transpose();
  const Eigen::MatrixXd h = cross_ntk(pts) * alpha_[time_index];
  return h.bottomRows(static_cast<Eigen::Index>(angles.size())).rowwise() - h.row(0);
}

ContinuousBoundResult ContinuousGroupBound::run(const Inputs& test_x) const {
  const char* fn = "ContinuousGroupBound::run";
  if (!(test_x.shape == train_.shape))
    bad(std::string(fn) + ": test_x has example shape " + test_x.shape.to_string() + " but train_x has " +
        train_.shape.to_string() + "; expected the same");
  if (!test_x.x.allFinite()) bad(std::string(fn) + ": test_x has a non-finite entry");
  const int k = options_.order;
  const double pi = std::numbers::pi, period = 2 * pi / k, kappa = rot2_kappa(k);
  const std::size_t nt = options_.times.size();
  const Eigen::Index nz = test_x.count(), nk = augmented_.count();

  ContinuousBoundResult res;
  res.order = k;
  res.kappa = kappa;
  res.train_size = train_.count();
  res.augmented_size = nk;
  res.times = options_.times;
  res.spectral = flow_.summary();
  res.quadrature_error = quadrature_error_;
  res.points.resize(nt * static_cast<std::size_t>(nz));

  Eigen::VectorXd psi_a, w_a, psi_b, w_b;
  const int nq = options_.quadrature_nodes, nh = nq / 2;
  gauss_legendre(nq, 0.0, pi, &psi_a, &w_a);
  gauss_legendre(nh, 0.0, pi, &psi_b, &w_b);
  const int ns = options_.scan.scan_points;

  for (Eigen::Index i = 0; i < nz; ++i) {
    throw_if_cancelled();  // once per test point (each one scans its whole orbit)
    const Eigen::VectorXd x = test_x.x.row(i).transpose();
    // Kernel values along the orbit of x against x itself: F(q) = Θ(x,x), F(q cos(π/k)),
    // Θ_B(x,x) (k points) and Θ_G(x,x) (two Gauss–Legendre rules); (R(ψ)x)·x = ‖x‖² cos ψ.
    RowMatrix pts(2 + k + nq + nh, x.size());
    pts.row(0) = x.transpose();
    pts.row(1) = rotate_pairs(x, pi / k).transpose();
    for (int l = 0; l < k; ++l) pts.row(2 + l) = rotate_pairs(x, 2 * pi * l / k).transpose();
    for (int q = 0; q < nq; ++q) pts.row(2 + k + q) = rotate_pairs(x, psi_a(q)).transpose();
    for (int q = 0; q < nh; ++q) pts.row(2 + k + nq + q) = rotate_pairs(x, psi_b(q)).transpose();
    KernelOptions single = options_.kernel;
    single.threads = 1;  // a few hundred entries: not worth a parallel region
    const Eigen::VectorXd F = kernels(arch_, as_inputs(pts), as_inputs(one_row(x)), single).ntk.col(0);
    const double Fq = F(0), Fk = F(1);
    const double tb = F.segment(2, k).mean();
    const double tga = w_a.dot(F.segment(2 + k, nq)) / pi, tgb = w_b.dot(F.segment(2 + k + nq, nh)) / pi;
    const double eq = std::abs(tga - tgb) + 2 * kernel_rtol_ * std::abs(Fq) + 16 * kEps * std::abs(Fq);
    // §5: sup_r ‖(P_B − P_G)(Θ_{R(r)x} − Θ_x)‖² ≤ 4(Θ_B(x,x) − Θ_G(x,x)).
    const double fourier_sq = 4 * std::max(0.0, tb - tga + eq);
    // §4: sup_{|r|≤π/k} ‖Θ_{R(r)x} − Θ_x‖² = 2(F(q) − F(q cos(π/k))) for k ≥ 2 (F nondecreasing on
    // [0, q]); for k = 1 the whole circle, where §5's Fourier bound with B = {e} is used.
    const double paper_sq = k >= 2 ? 2 * std::max(0.0, Fq - Fk + 2 * kernel_rtol_ * std::abs(Fq) + 16 * kEps * std::abs(Fq))
                                   : fourier_sq;
    const double theta_max = std::sqrt(std::max(0.0, Fq) * std::max(0.0, train_diag_max_));

    // The measured worst case: scan one period of the B-invariant violation, refine with Brent.
    std::vector<double> angles(static_cast<std::size_t>(ns));
    for (int s = 0; s < ns; ++s) angles[static_cast<std::size_t>(s)] = s == ns - 1 ? period : period * s / (ns - 1);
    RowMatrix scan_pts(ns + 1, x.size());
    scan_pts.row(0) = x.transpose();
    for (int s = 0; s < ns; ++s) scan_pts.row(s + 1) = rotate_pairs(x, angles[static_cast<std::size_t>(s)]).transpose();
    const Eigen::MatrixXd scan_k = cross_ntk(scan_pts);
    const Eigen::RowVectorXd k0 = scan_k.row(0);

    for (std::size_t t = 0; t < nt; ++t) {
      const Eigen::MatrixXd& a = alpha_[t];
      const Eigen::RowVectorXd h0 = k0 * a;
      const Eigen::MatrixXd hs = scan_k.bottomRows(ns) * a;
      auto f = [&](double theta) -> double {
        // Scan angles hit the precomputed rows; others need one kernel row.
        const double u = theta / period * (ns - 1);
        const double ur = std::round(u);
        if (std::abs(u - ur) == 0.0 && ur >= 0 && ur < ns && angles[static_cast<std::size_t>(ur)] == theta)
          return (hs.row(static_cast<Eigen::Index>(ur)) - h0).norm();
        const Eigen::MatrixXd kr = cross_ntk(one_row(rotate_pairs(x, theta)));
        return (kr * a - h0).norm();
      };
      const IntervalMaximum m = maximize_on_interval(f, 0.0, period, options_.scan);

      ContinuousBoundPoint p;
      p.test_index = i;
      p.time = options_.times[t];
      p.kappa = kappa;
      p.f_norm = std::sqrt(f_norm2_[t]);
      p.f_perp_norm = std::sqrt(f_perp_norm2_[t]);
      p.paper_bound = p.f_perp_norm * std::sqrt(paper_sq);
      p.lipschitz_constant = p.paper_bound / kappa;
      p.fourier_bound = p.f_perp_norm * std::sqrt(fourier_sq);
      // Round-off of h(θ) − h(0) = (Θ(R(θ)x,X) − Θ(x,X))α: two dot products of length kN whose
      // entries carry kernel error kernel_rtol (derivation §6).
      p.roundoff = 4 * (static_cast<double>(nk) * kEps + kernel_rtol_) * theta_max * alpha_abs_[t] +
                   2 * theta_max * alpha_asym_[t];
      p.bound = std::min(p.paper_bound, p.fourier_bound) + p.roundoff;
      p.measured = m.value;
      p.measured_scan = m.scan_value;
      p.worst_angle = m.argmax;
      p.ratio = p.measured > 0 ? p.bound / p.measured : std::numeric_limits<double>::infinity();
      res.points[t * static_cast<std::size_t>(nz) + static_cast<std::size_t>(i)] = p;
    }
  }
  bool any = false;
  for (const auto& p : res.points)
    if (p.measured > 0) {
      res.max_ratio = any ? std::max(res.max_ratio, p.ratio) : p.ratio;
      res.min_ratio = any ? std::min(res.min_ratio, p.ratio) : p.ratio;
      any = true;
    }
  return res;
}

const ContinuousBoundPoint& ContinuousBoundResult::at(std::size_t time_index, Eigen::Index test_index) const {
  const std::size_t nz = times.empty() ? 0 : points.size() / times.size();
  if (time_index >= times.size() || test_index < 0 || static_cast<std::size_t>(test_index) >= nz)
    throw std::out_of_range("ContinuousBoundResult::at: (" + std::to_string(time_index) + ", " +
                            std::to_string(test_index) + ") out of range");
  return points[time_index * nz + static_cast<std::size_t>(test_index)];
}

std::string ContinuousBoundResult::to_string() const {
  std::ostringstream s;
  s << "C_" << order << " ⊂ SO(2): kappa " << value_text(kappa) << ", " << train_size << " training points (" << augmented_size
    << " augmented), " << times.size() << " time(s), " << (times.empty() ? 0 : points.size() / times.size())
    << " test point(s); bound/measured in [" << value_text(min_ratio) << ", " << value_text(max_ratio)
    << "]; quadrature error " << value_text(quadrature_error) << "; Θ: " << spectral.to_string();
  return s.str();
}

ContinuousBoundResult continuous_group_bound(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                             const Inputs& test_x, const ContinuousBoundOptions& options) {
  return ContinuousGroupBound(arch, train_x, train_y, options).run(test_x);
}

// ---- finite ensembles ----------------------------------------------------------------------------

std::vector<ViolationLaw> invariance_violation_laws(const Architecture& arch, const Inputs& train_x,
                                                    const RowMatrix& train_y, const Inputs& test_x,
                                                    const Representation& group, const Representation* augment_group,
                                                    const ViolationLawOptions& options) {
  const int k = static_cast<int>(train_y.cols());
  if (!augment_group) return equivariance_violation_laws(arch, train_x, train_y, test_x, group, trivial_output(group, k), nullptr, nullptr, options);
  const Representation out = trivial_output(*augment_group, k);
  return equivariance_violation_laws(arch, train_x, train_y, test_x, group, trivial_output(group, k), augment_group,
                                     &out, options);
}

std::vector<ViolationLaw> equivariance_violation_laws(const Architecture& arch, const Inputs& train_x,
                                                      const RowMatrix& train_y, const Inputs& test_x,
                                                      const Representation& group, const Representation& group_output,
                                                      const Representation* augment_group,
                                                      const Representation* augment_output,
                                                      const ViolationLawOptions& options) {
  const char* fn = "equivariance_violation_laws";
  if (std::string why; !options.IsValid(&why)) bad(std::string(fn) + ": invalid options: " + why);
  detail::check_times(options.times, fn, detail::EmptyTimes::Rejected);
  if (!(test_x.shape == train_x.shape))
    bad(std::string(fn) + ": test_x has example shape " + test_x.shape.to_string() + " but train_x has " +
        train_x.shape.to_string() + "; expected the same");
  if (!(group.shape() == test_x.shape))
    bad(std::string(fn) + ": group '" + group.name() + "' acts on " + group.shape().to_string() +
        " but the inputs have shape " + test_x.shape.to_string());
  require_targets(arch, train_x, train_y, fn);
  const Eigen::Index k = train_y.cols();
  if (group_output.size() != group.size() || group_output.dim() != k)
    bad(std::string(fn) + ": group_output '" + group_output.name() + "' has " + std::to_string(group_output.size()) +
        " elements on ℝ^" + std::to_string(group_output.dim()) + ", expected " + std::to_string(group.size()) +
        " on ℝ^" + std::to_string(k));
  if ((augment_group == nullptr) != (augment_output == nullptr))
    bad(std::string(fn) + ": augment and augment_output: expected both or neither");
  Inputs x = train_x;
  RowMatrix y = train_y;
  if (augment_group) {
    const AugmentedSet set = augment(train_x, train_y, *augment_group, *augment_output);
    x = set.x;
    y = set.y;
  }
  const Kernels train = kernels(arch, x, options.kernel);
  const GradientFlow flow(train.ntk, train.nngp, y, options.flow);
  const int ng = group.size();
  const std::size_t nt = options.times.size();
  const Eigen::Index nz = test_x.count();
  std::vector<Eigen::MatrixXd> ry(static_cast<std::size_t>(ng));
  for (int g = 0; g < ng; ++g) ry[g] = group_output.matrix(g);
  std::vector<ViolationLaw> out(nt * static_cast<std::size_t>(nz) * static_cast<std::size_t>(ng));
  for (Eigen::Index i = 0; i < nz; ++i) {
    throw_if_cancelled();
    RowMatrix orbit(ng, test_x.x.cols());
    const Eigen::VectorXd xi = test_x.x.row(i).transpose();
    for (int g = 0; g < ng; ++g) orbit.row(g) = group.apply(g, xi).transpose();
    const Inputs z(orbit, test_x.shape);
    const Kernels cross = kernels(arch, z, x, options.kernel);
    const Kernels self = kernels(arch, z, options.kernel);
    const auto mean = flow.mean(options.times, cross.ntk);
    const auto cov = flow.covariance(options.times, cross.ntk, cross.nngp, self.nngp);
    for (std::size_t t = 0; t < nt; ++t)
      for (int g = 0; g < ng; ++g) {
        ViolationLaw& v = out[(t * static_cast<std::size_t>(nz) + static_cast<std::size_t>(i)) * static_cast<std::size_t>(ng) +
                              static_cast<std::size_t>(g)];
        v.test_index = i;
        v.element = g;
        v.time = options.times[t];
        const Eigen::MatrixXd& C = cov[t];
        const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(k, k);
        Eigen::MatrixXd S = (C(g, g) + C(0, 0)) * I - C(g, 0) * (ry[g] + ry[g].transpose());
        // Clip the eigenvalues at 0 (round-off can make a zero variance slightly negative).
        const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(0.5 * (S + S.transpose()));
        const Eigen::VectorXd ev = es.eigenvalues().cwiseMax(0.0);
        v.covariance = es.eigenvectors() * ev.asDiagonal() * es.eigenvectors().transpose();
        v.variance = ev.size() ? ev.maxCoeff() : 0.0;
        if ((ry[g] - I).cwiseAbs().maxCoeff() == 0.0) {
          // Trivial ρ_Y(g): S = s·I exactly, as before.
          v.variance = std::max(0.0, C(g, g) + C(0, 0) - 2 * C(g, 0));
          v.covariance = v.variance * I;
        }
        v.mean = (mean[t].row(g).transpose() - ry[g] * mean[t].row(0).transpose());
      }
  }
  return out;
}

}  // namespace emergent
