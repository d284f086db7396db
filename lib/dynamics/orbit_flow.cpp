// Orbit-reduced gradient flow on augmented training sets; see include/emergent/dynamics/orbit_flow.hpp for
// the G-matrix derivation.
#include "emergent/dynamics/orbit_flow.hpp"

#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "detail/linear_algebra.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <limits>
#include <numbers>
#include <sstream>
#include <stdexcept>
#include "detail/parallel.hpp"

#include "emergent/dynamics/spectral_filter.hpp"
#include "detail/enum_names.hpp"
#include "detail/errors.hpp"
#include "detail/format.hpp"

namespace emergent {

namespace {

using Eigen::Index;
using Eigen::MatrixXcd;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using cd = std::complex<double>;

constexpr double kEps = std::numeric_limits<double>::epsilon();

using detail::bad;
using detail::num;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int thread_count(int requested) { return requested > 0 ? requested : omp_get_max_threads(); }

// exp(2πiθ/n), exact at quarter turns so that real characters are exactly ±1.
cd root_of_unity(int theta, int n) {
  theta = ((theta % n) + n) % n;
  if ((4 * theta) % n == 0) {
    switch (4 * theta / n) {
      case 0: return {1, 0};
      case 1: return {0, 1};
      case 2: return {-1, 0};
      default: return {0, -1};
    }
  }
  const double a = 2.0 * std::numbers::pi * theta / n;
  return {std::cos(a), std::sin(a)};
}

// The absolute regularizer the dense solve would add to Θ_aug: diag_reg, or diag_reg·tr(Θ_aug)/(|G|N)
// = diag_reg·tr(T_e)/N (every diagonal entry of Θ_aug is a diagonal entry of T_e).
double absolute_reg(const GradientFlowOptions& f, const MatrixXd& t_e) {
  if (!f.diag_reg_relative) return f.diag_reg;
  return f.diag_reg * std::max(t_e.trace(), 0.0) / static_cast<double>(t_e.rows());
}

struct Blocks {
  std::vector<MatrixXd> ntk, nngp;            // T_u, K_u = kernel(X, ρ(u)X), all u
  std::vector<MatrixXd> test_ntk, test_nngp;  // Θ(x, ρ(g)X), K(x, ρ(g)X), all g
  MatrixXd test_test;                          // K(x, x)
  double defect = 0;
  Index entries = 0;
};

// T_u = Θ(X, ρ(u)X) for an involution u (u = u⁻¹): symmetric by invariance, Θ(x_i, ρ(u)x_j) =
// Θ(ρ(u)x_i, x_j) = Θ(x_j, ρ(u)x_i), so only about half of it is computed: split the rows in two,
// recurse on the diagonal blocks and mirror the off-diagonal one.
Kernels symmetric_cross(const Architecture& arch, const Inputs& x, const Inputs& ux, const KernelOptions& kopt,
                        Index* entries) {
  const Index N = x.count();
  if (N <= 128) {
    *entries += N * N;
    return kernels(arch, x, ux, kopt);
  }
  const Index h = N / 2;
  std::vector<Index> r1(h), r2(N - h);
  for (Index i = 0; i < h; ++i) r1[i] = i;
  for (Index i = h; i < N; ++i) r2[i - h] = i;
  const Inputs x1 = x.rows(r1), x2 = x.rows(r2), u1 = ux.rows(r1), u2 = ux.rows(r2);
  const Kernels a = symmetric_cross(arch, x1, u1, kopt, entries);
  const Kernels d = symmetric_cross(arch, x2, u2, kopt, entries);
  const Kernels c = kernels(arch, x1, u2, kopt);  // rows 1, columns 2; rows 2, columns 1 is its transpose
  *entries += h * (N - h);
  Kernels out;
  out.ntk.resize(N, N);
  out.nngp.resize(N, N);
  out.ntk << a.ntk, c.ntk, c.ntk.transpose(), d.ntk;
  out.nngp << a.nngp, c.nngp, c.nngp.transpose(), d.nngp;
  return out;
}

// Kernels between the base points and their images: T_u for one u of each {u, u⁻¹} (T_{u⁻¹} = T_uᵀ
// by invariance), then the invariance itself on up to 8 rows per element:
// Θ(x_i, ρ(u)x_j) = Θ(ρ(u⁻¹)x_i, x_j).
Blocks orbit_blocks(const Architecture& arch, const Inputs& x, const Inputs& z, const Representation& rho,
                    bool need_nngp, const KernelOptions& kopt) {
  const int n = rho.size();
  Blocks b;
  b.ntk.resize(n);
  b.nngp.resize(n);
  const Index N = x.count(), d = x.x.cols();
  // All images stacked (row g·N + i = ρ(g)x_i): few large kernel calls instead of |G| small ones.
  RowMatrix all(static_cast<Index>(n) * N, d);
  for (int g = 0; g < n; ++g) all.middleRows(g * N, N) = rho.apply(g, x.x);
  auto image = [&](int g) { return Inputs(RowMatrix(all.middleRows(g * N, N)), x.shape); };
  // One representative u of each pair {u, u⁻¹} with u ≠ u⁻¹, in one call; involutions (and e) alone.
  std::vector<int> pairs;
  for (int u = 1; u < n; ++u)
    if (rho.inverse(u) > u) pairs.push_back(u);
  double scale = 0;
  auto store = [&](int u, MatrixXd ntk, MatrixXd nngp) {
    const int v = rho.inverse(u);
    if (v != u) {
      b.ntk[v] = ntk.transpose();
      if (need_nngp) b.nngp[v] = nngp.transpose();
    }
    scale = std::max(scale, ntk.cwiseAbs().maxCoeff());
    b.ntk[u] = std::move(ntk);
    if (need_nngp) b.nngp[u] = std::move(nngp);
  };
  if (!pairs.empty()) {
    RowMatrix rep(static_cast<Index>(pairs.size()) * N, d);
    for (std::size_t q = 0; q < pairs.size(); ++q) rep.middleRows(q * N, N) = all.middleRows(pairs[q] * N, N);
    const Kernels k = kernels(arch, x, Inputs(std::move(rep), x.shape), kopt);
    b.entries += static_cast<Index>(pairs.size()) * N * N;
    for (std::size_t q = 0; q < pairs.size(); ++q)
      store(pairs[q], k.ntk.middleCols(q * N, N), need_nngp ? MatrixXd(k.nngp.middleCols(q * N, N)) : MatrixXd());
  }
  for (int u = 0; u < n; ++u) {
    if (rho.inverse(u) != u) continue;
    Kernels k;
    if (u == 0) {
      k = kernels(arch, x, kopt);
      b.entries += N * (N + 1) / 2;
    } else {
      k = symmetric_cross(arch, x, image(u), kopt, &b.entries);
    }
    store(u, std::move(k.ntk), std::move(k.nngp));
  }
  // Invariance on up to 8 rows per element, in one call: Θ(ρ(u⁻¹)x_i, x_j) against T_u[i, j].
  const Index s = std::min<Index>(N, 8);
  if (n > 1) {
    std::vector<Index> rows(s);
    for (Index i = 0; i < s; ++i) rows[i] = i * N / s;
    RowMatrix probe(static_cast<Index>(n - 1) * s, d);
    for (int u = 1; u < n; ++u)
      for (Index i = 0; i < s; ++i) probe.row((u - 1) * s + i) = all.row(rho.inverse(u) * N + rows[i]);
    const Kernels k = kernels(arch, Inputs(std::move(probe), x.shape), x, kopt);
    b.entries += static_cast<Index>(n - 1) * s * N;
    for (int u = 1; u < n; ++u)
      for (Index i = 0; i < s; ++i)
        b.defect = std::max(b.defect, (k.ntk.row((u - 1) * s + i) - b.ntk[u].row(rows[i])).cwiseAbs().maxCoeff());
  }
  b.defect = scale > 0 ? b.defect / scale : b.defect;
  // Test kernels against every image, in one call.
  const Kernels t = kernels(arch, z, Inputs(std::move(all), x.shape), kopt);
  b.entries += z.count() * N * n;
  b.test_ntk.resize(n);
  b.test_nngp.resize(n);
  for (int g = 0; g < n; ++g) {
    b.test_ntk[g] = t.ntk.middleCols(g * N, N);
    if (need_nngp) b.test_nngp[g] = t.nngp.middleCols(g * N, N);
  }
  if (need_nngp) {
    b.test_test = kernels(arch, z, kopt).nngp;
    b.entries += z.count() * (z.count() + 1) / 2;
  }
  return b;
}

// One character sector of the Fourier route: its contribution (weight 1 for a real character,
// 2 for a conjugate pair, whose second block is the complex conjugate) to mean and covariance.
struct Sector {
  int character = 0;
  double weight = 1;
  VectorXd eigenvalues;  // clipped, ascending (regularizer not included)
  MatrixXcd vectors;
};

}  // namespace

constexpr detail::EnumNames<OrbitRoute, 4> kOrbitRouteNames = {{
    {OrbitRoute::Automatic, "automatic"},
    {OrbitRoute::Dense, "dense"},
    {OrbitRoute::Averaged, "averaged"},
    {OrbitRoute::Fourier, "fourier"},
}};

const char* to_string(OrbitRoute value) { return detail::enum_name(kOrbitRouteNames, value); }

OrbitRoute parse_orbit_route(std::string_view text) { return detail::parse_enum(kOrbitRouteNames, text, "parse_orbit_route", "OrbitRoute"); }

bool OrbitFlowOptions::IsValid(std::string* error) const {
  std::string e;
  if (!kernel.IsValid(&e)) e = "kernel." + e;
  else if (!flow.IsValid(&e)) e = "flow." + e;
  else if (!(invariance_rtol >= 0) || !std::isfinite(invariance_rtol))
    e = "invariance_rtol = " + num(invariance_rtol) + ": expected a finite number >= 0";
  if (error) *error = e;
  return e.empty();
}

std::string OrbitFlowResult::to_string() const {
  std::ostringstream s;
  s << "route " << route_text << "; |G|N = " << augmented_size << ", rank " << rank << ", λ_max " << num(max_eigenvalue)
    << ", invariance defect " << num(invariance_defect) << ", " << kernel_entries << " kernel entries in "
    << num(kernel_seconds) << " s, solve " << num(solve_seconds) << " s";
  return s.str();
}

std::vector<std::vector<int>> abelian_characters(const std::vector<std::vector<int>>& table) {
  const int n = static_cast<int>(table.size());
  if (n < 1) bad("abelian_characters: table: expected a non-empty composition table");
  for (int a = 0; a < n; ++a) {
    if (static_cast<int>(table[a].size()) != n) bad("abelian_characters: table row " + std::to_string(a) + " is not of length |G|");
    for (int b = 0; b < n; ++b)
      if (table[a][b] != table[b][a])
        bad("abelian_characters: the group is not abelian (g" + std::to_string(a) + "·g" + std::to_string(b) +
            " ≠ g" + std::to_string(b) + "·g" + std::to_string(a) + ")");
  }
  // H = {e} with its one character; extend to ⟨H, g⟩ for g ∉ H: with m the least power g^m ∈ H,
  // every element is g^a·h (0 ≤ a < m) and χ(g) runs over the m m-th roots of χ(g^m); in units of
  // 2π/n, θ(g) = θ(g^m)/m + j·n/m (an integer: χ(g)^n = 1).
  std::vector<int> members = {0};
  std::vector<int> where(n, -1);
  where[0] = 0;
  std::vector<std::vector<int>> chars = {std::vector<int>(n, 0)};  // values on members, by element index
  while (static_cast<int>(members.size()) < n) {
    int g = 0;
    while (where[g] >= 0) ++g;
    std::vector<int> powers = {0};  // g^0 = e
    int p = g, m = 1;
    while (where[p] < 0) {
      powers.push_back(p);
      p = table[p][g];
      ++m;
    }
    const int gm = p;  // g^m ∈ H
    std::vector<int> new_members;
    std::vector<std::pair<int, int>> decomposition;  // element = g^a·h → (a, h)
    for (int a = 0; a < m; ++a)
      for (int h : members) {
        const int e = table[powers[a]][h];
        new_members.push_back(e);
        decomposition.push_back({a, h});
      }
    std::vector<std::vector<int>> next;
    for (const auto& chi : chars) {
      if (chi[gm] % m != 0) bad("abelian_characters: inconsistent table (character root not integral)");
      for (int j = 0; j < m; ++j) {
        const int theta_g = chi[gm] / m + j * (n / m);
        std::vector<int> c(n, 0);
        for (std::size_t q = 0; q < new_members.size(); ++q)
          c[new_members[q]] = ((decomposition[q].first * theta_g + chi[decomposition[q].second]) % n + n) % n;
        next.push_back(std::move(c));
      }
    }
    for (std::size_t q = 0; q < new_members.size(); ++q) where[new_members[q]] = static_cast<int>(q);
    members = std::move(new_members);
    chars = std::move(next);
    if (n % static_cast<int>(members.size()) != 0) bad("abelian_characters: the table is not a group law");
  }
  return chars;
}

bool is_abelian(const Representation& rho) {
  if (!rho.exact()) return false;
  const auto& t = rho.composition_table();
  for (int a = 0; a < rho.size(); ++a)
    for (int b = 0; b < a; ++b)
      if (t[a][b] != t[b][a]) return false;
  return true;
}

namespace {

void validate_augmented(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                        const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                        const std::vector<double>& times, const OrbitFlowOptions& options) {
  if (std::string e; !options.IsValid(&e)) bad("predict_augmented: options." + e);
  detail::check_times(times, "predict_augmented", detail::EmptyTimes::Rejected);
  if (arch.expects_images() && !arch.has_readout())
    bad("predict_augmented: arch '" + arch.to_string() +
        "' keeps pixel indices (no flatten/gap readout); expected a readout or an MLP");
  if (!(train_x.shape == rho_x.shape()) || !(test_x.shape == rho_x.shape()))
    bad("predict_augmented: train_x " + train_x.shape.to_string() + " / test_x " + test_x.shape.to_string() +
        " do not match the shape " + rho_x.shape().to_string() + " group '" + rho_x.name() + "' acts on");
  if (rho_y.size() != rho_x.size())
    bad("predict_augmented: rho_y has " + std::to_string(rho_y.size()) + " elements, expected |G| = " +
        std::to_string(rho_x.size()));
  if (train_y.rows() != train_x.count() || train_y.cols() != rho_y.dim() || rho_y.dim() != arch.outputs())
    bad("predict_augmented: train_y has shape (" + std::to_string(train_y.rows()) + ", " + std::to_string(train_y.cols()) +
        "), expected (N, k) = (" + std::to_string(train_x.count()) + ", " + std::to_string(arch.outputs()) +
        ") with k = the architecture's outputs = rho_y's dimension (" + std::to_string(rho_y.dim()) + ")");
}

// The route a request resolves to before the kernels are known (a forced route that does not
// apply throws); why_dense says why Automatic fell back to Dense.
OrbitRoute choose_route(const Representation& rho_x, const Representation& rho_y, bool covariance,
                        OrbitRoute requested, std::string& why_dense) {
  const int n = rho_x.size();
  const Index k = rho_y.dim();
  const bool exact = rho_x.exact() && rho_y.exact();
  const bool abelian = exact && is_abelian(rho_x);
  bool trivial_y = true;
  for (int g = 0; g < n && trivial_y; ++g) trivial_y = (rho_y.matrix(g) - MatrixXd::Identity(k, k)).cwiseAbs().maxCoeff() == 0.0;
  OrbitRoute route = requested;
  if (route == OrbitRoute::Fourier && !abelian)
    bad("predict_augmented: route fourier needs an exact abelian group and output action; '" + rho_x.name() + "' is " +
        (exact ? "not abelian" : "not exact"));
  if (route == OrbitRoute::Averaged && !(exact && trivial_y && !covariance))
    bad("predict_augmented: route averaged needs an exact group, invariant targets (trivial rho_y) and no covariance");
  if (route == OrbitRoute::Automatic) {
    if (abelian) route = OrbitRoute::Fourier;
    else if (exact && trivial_y && !covariance) route = OrbitRoute::Averaged;
    else {
      route = OrbitRoute::Dense;
      why_dense = !exact ? "group '" + rho_x.name() + "' is not exact" : "non-abelian group with covariance or non-trivial rho_y";
    }
  }
  return route;
}

// Dense route: GradientFlow on the explicit augmented set.
void dense_route(OrbitFlowResult& out, const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                 const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                 const std::vector<double>& times, bool covariance, const OrbitFlowOptions& options,
                 std::chrono::steady_clock::time_point t0, const std::string& why_dense) {
  const Index Nt = test_x.count();
  const AugmentedSet aug = augment(train_x, train_y, rho_x, rho_y);
  const Kernels tr = kernels(arch, aug.x, options.kernel);
  const Kernels cr = kernels(arch, test_x, aug.x, options.kernel);
  Kernels tt;
  if (covariance) tt = kernels(arch, test_x, options.kernel);
  const Index M = aug.x.count();
  out.kernel_entries = M * (M + 1) / 2 + Nt * M + (covariance ? Nt * (Nt + 1) / 2 : 0);
  out.kernel_seconds = seconds_since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  const GradientFlow flow(tr.ntk, covariance ? tr.nngp : MatrixXd(), MatrixXd(aug.y), options.flow);
  out.mean = flow.mean(times, cr.ntk);
  if (covariance) out.covariance = flow.covariance(times, cr.ntk, cr.nngp, tt.nngp);
  out.rank = flow.summary().rank;
  out.max_eigenvalue = flow.summary().max_eigenvalue + flow.summary().regularizer;
  out.solve_seconds = seconds_since(t1);
  out.route_text = "dense: GradientFlow on " + std::to_string(M) + " augmented points" +
                   (why_dense.empty() ? std::string() : " (" + why_dense + ")");
}

// Averaged route: Θ_G on the base points; regularizer δ/|G|; the same η and t (header derivation).
void averaged_route(OrbitFlowResult& out, const Blocks& b, const RowMatrix& train_y, const std::vector<double>& times,
                    const OrbitFlowOptions& options, int n, double reg, double rtol,
                    std::chrono::steady_clock::time_point t1) {
  const Index N = b.ntk[0].rows(), Nt = b.test_ntk[0].rows();
  MatrixXd theta_g = MatrixXd::Zero(N, N), test_g = MatrixXd::Zero(Nt, N);
  for (int u = 0; u < n; ++u) {
    theta_g += b.ntk[u];
    test_g += b.test_ntk[u];
  }
  theta_g /= n;
  test_g /= n;
  GradientFlowOptions f = options.flow;
  f.diag_reg = reg / n;
  f.diag_reg_relative = false;
  f.rank_rtol = rtol;
  const GradientFlow flow(theta_g, MatrixXd(), MatrixXd(train_y), f);
  out.mean = flow.mean(times, test_g);
  out.rank = flow.summary().rank;
  out.max_eigenvalue = n * (flow.summary().max_eigenvalue + flow.summary().regularizer);
  out.solve_seconds = seconds_since(t1);
  out.route_text = "averaged: group-averaged kernel on " + std::to_string(N) + " base points (|G| = " +
                   std::to_string(n) + ", mean only)";
}

// One sector per real character and per pair of conjugate characters (the pair shares one block).
std::vector<Sector> character_sectors(const std::vector<std::vector<int>>& chars, int n) {
  std::vector<Sector> sectors;
  for (int c = 0; c < n; ++c) {
    int conj = -1;
    for (int d = 0; d < n && conj < 0; ++d) {
      bool ok = true;
      for (int u = 0; u < n && ok; ++u) ok = (chars[c][u] + chars[d][u]) % n == 0;
      if (ok) conj = d;
    }
    if (conj < c) continue;
    Sector s;
    s.character = c;
    s.weight = conj == c ? 1.0 : 2.0;
    sectors.push_back(std::move(s));
  }
  return sectors;
}

// Per sector: Hermitian B_χ = Σ_u χ(u)T_u, eigendecomposed (real solver for real characters).
void diagonalize_sectors(std::vector<Sector>& sectors, const std::vector<std::vector<int>>& chars, const Blocks& b,
                         int n, int threads) {
  const long S = static_cast<long>(sectors.size());
  const Index N = b.ntk[0].rows();
  bool failed = false;
  detail::ParallelErrors errors;
#pragma omp parallel for schedule(static) num_threads(thread_count(threads))
  for (long q = 0; q < S; ++q) {
    errors.run(static_cast<long long>(q), [&] {
      Sector& s = sectors[q];
      bool real = true;
      for (int u = 0; u < n; ++u) real = real && (2 * chars[s.character][u]) % n == 0;
      if (real) {
        MatrixXd B = MatrixXd::Zero(N, N);
        for (int u = 0; u < n; ++u) B += root_of_unity(chars[s.character][u], n).real() * b.ntk[u];
        B = 0.5 * (B + B.transpose());
        const detail::SymmetricEigen es = detail::symmetric_eigen(B);
        if (!es.converged) failed = true;
        s.eigenvalues = es.values.cwiseMax(0.0);
        s.vectors = es.vectors.cast<cd>();
      } else {
        MatrixXcd B = MatrixXcd::Zero(N, N);
        for (int u = 0; u < n; ++u) B += root_of_unity(chars[s.character][u], n) * b.ntk[u].cast<cd>();
        B = 0.5 * (B + B.adjoint());
        Eigen::SelfAdjointEigenSolver<MatrixXcd> es(B);
        if (es.info() != Eigen::Success) failed = true;
        s.eigenvalues = es.eigenvalues().cwiseMax(0.0);
        s.vectors = es.eigenvectors();
      }
    });
  }
  errors.rethrow();
  if (failed) throw std::runtime_error("predict_augmented: a Hermitian eigensolver did not converge");
}

// One sector's contribution to mean and covariance at every time; returns the kept rank.
Index sector_predictions(const Sector& s, const std::vector<std::vector<int>>& chars, const Blocks& b,
                         const MatrixXd& y, const std::vector<MatrixXd>& ymat, const std::vector<double>& times,
                         bool covariance, int n, double reg, double top, double threshold, double scale,
                         std::vector<MatrixXd>& mean_part, std::vector<MatrixXd>& cov_part) {
  const Index N = b.ntk[0].rows(), Nt = b.test_ntk[0].rows(), k = y.cols();
  const std::size_t T = times.size();
  const double inv_sqrt_n = 1.0 / std::sqrt(static_cast<double>(n));
  Index r = 0;
  for (Index i = 0; i < N; ++i)
    if (top > 0 && s.eigenvalues(i) + reg > threshold) ++r;
  const MatrixXcd V = s.vectors.rightCols(r);
  const VectorXd lam = s.eigenvalues.tail(r).array() + reg;
  std::vector<cd> chi(n);
  for (int u = 0; u < n; ++u) chi[u] = root_of_unity(chars[s.character][u], n);
  // Fourier coefficients: ĉ_χ = (1/√n)Σ_g χ(g)Θ(x, ρ(g)X), Ŷ_χ = (1/√n)Σ_g χ̄(g)·Y·ρ_Y(g)ᵀ.
  MatrixXcd chat = MatrixXcd::Zero(Nt, N), yhat = MatrixXcd::Zero(N, k);
  for (int g = 0; g < n; ++g) {
    chat += chi[g] * b.test_ntk[g].cast<cd>();
    yhat += std::conj(chi[g]) * (y * ymat[g].transpose()).cast<cd>();
  }
  chat *= inv_sqrt_n;
  yhat *= inv_sqrt_n;
  const MatrixXcd p = chat * V;
  const MatrixXcd yp = V.adjoint() * yhat;
  MatrixXcd kt, kxv;
  if (covariance) {
    MatrixXcd K = MatrixXcd::Zero(N, N), qhat = MatrixXcd::Zero(Nt, N);
    for (int u = 0; u < n; ++u) {
      K += chi[u] * b.nngp[u].cast<cd>();
      qhat += chi[u] * b.test_nngp[u].cast<cd>();
    }
    K = 0.5 * (K + K.adjoint());
    kt = V.adjoint() * K * V;
    kxv = inv_sqrt_n * qhat * V;
  }
  mean_part.resize(T);
  if (covariance) cov_part.resize(T);
  for (std::size_t ti = 0; ti < T; ++ti) {
    Eigen::VectorXcd gv(r);
    for (Index i = 0; i < r; ++i) gv(i) = spectral_filter(lam(i), scale * times[ti]);
    const MatrixXcd a = p * gv.asDiagonal();
    mean_part[ti] = s.weight * (a * yp).real();
    if (covariance) {
      // As GradientFlow: Σ = K_xx + W·Aᴴ + (W·Aᴴ)ᴴ with W = ½A·K̃ − K(x,X)V, per sector.
      const MatrixXcd w = 0.5 * (a * kt) - kxv;
      const MatrixXcd wa = w * a.adjoint();
      const MatrixXd re = (wa + wa.adjoint()).real();
      cov_part[ti] = s.weight * re;
    }
  }
  return r;
}

// Fourier route: |G| Hermitian blocks of size N (abelian groups), conjugate characters sharing one.
void fourier_route(OrbitFlowResult& out, const Blocks& b, const RowMatrix& train_y, const Representation& rho_x,
                   const Representation& rho_y, const std::vector<double>& times, bool covariance,
                   const OrbitFlowOptions& options, double reg, double rtol, std::chrono::steady_clock::time_point t1) {
  const int n = rho_x.size();
  const Index N = train_y.rows(), k = train_y.cols(), Nt = b.test_ntk[0].rows();
  const auto chars = abelian_characters(rho_x.composition_table());
  std::vector<Sector> sectors = character_sectors(chars, n);
  const long S = static_cast<long>(sectors.size());
  std::vector<MatrixXd> ymat(n);
  for (int g = 0; g < n; ++g) ymat[g] = rho_y.matrix(g);  // k × k
  const MatrixXd y = train_y;
  diagonalize_sectors(sectors, chars, b, n, options.flow.threads);
  double top = 0;
  for (const auto& s : sectors) top = std::max(top, s.eigenvalues.maxCoeff());
  top += reg;
  out.max_eigenvalue = top;
  const double threshold = rtol * top;
  const double scale = options.flow.learning_rate / (static_cast<double>(n) * N * k);
  const std::size_t T = times.size();
  std::vector<std::vector<MatrixXd>> mean_parts(S), cov_parts(S);
  std::vector<Index> ranks(S, 0);
  detail::ParallelErrors errors1;
#pragma omp parallel for schedule(static) num_threads(thread_count(options.flow.threads))
  for (long q = 0; q < S; ++q) {
    errors1.run(static_cast<long long>(q), [&] {
      ranks[q] = sector_predictions(sectors[q], chars, b, y, ymat, times, covariance, n, reg, top, threshold, scale,
                                    mean_parts[q], cov_parts[q]);
    });
  }
  errors1.rethrow();
  out.mean.assign(T, MatrixXd::Zero(Nt, k));
  if (covariance) out.covariance.assign(T, b.test_test);
  for (long q = 0; q < S; ++q) {
    out.rank += static_cast<Index>(sectors[q].weight) * ranks[q];
    for (std::size_t ti = 0; ti < T; ++ti) {
      out.mean[ti] += mean_parts[q][ti];
      if (covariance) out.covariance[ti] += cov_parts[q][ti];
    }
  }
  if (covariance)
    for (auto& c : out.covariance) c = 0.5 * (c + c.transpose()).eval();
  out.solve_seconds = seconds_since(t1);
  int eigs = static_cast<int>(S);
  out.route_text = "fourier: " + std::to_string(n) + " blocks of " + std::to_string(N) + " (" + std::to_string(eigs) +
                   " Hermitian eigendecompositions, conjugate characters share one)";
}

}  // namespace

OrbitFlowResult predict_augmented(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                  const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                                  const std::vector<double>& times, bool covariance,
                                  const OrbitFlowOptions& options) {
  validate_augmented(arch, train_x, train_y, test_x, rho_x, rho_y, times, options);
  const int n = rho_x.size();
  const Index N = train_x.count();
  std::string why_dense;
  OrbitRoute route = choose_route(rho_x, rho_y, covariance, options.route, why_dense);

  OrbitFlowResult out;
  out.augmented_size = static_cast<Index>(n) * N;
  const auto t0 = std::chrono::steady_clock::now();
  const double rtol_default = 10.0 * static_cast<double>(n) * static_cast<double>(N) * kEps;
  const double rtol = options.flow.rank_rtol > 0 ? options.flow.rank_rtol : rtol_default;

  Blocks b;
  if (route != OrbitRoute::Dense) {
    b = orbit_blocks(arch, train_x, test_x, rho_x, covariance, options.kernel);
    out.invariance_defect = b.defect;
    if (b.defect > options.invariance_rtol) {
      if (options.route != OrbitRoute::Automatic)
        bad("predict_augmented: route " + std::string(to_string(route)) + " needs kernels invariant under '" +
            rho_x.name() + "', measured relative defect " + num(b.defect) + " > invariance_rtol " +
            num(options.invariance_rtol));
      route = OrbitRoute::Dense;
      why_dense = "kernel not invariant under '" + rho_x.name() + "' (relative defect " + num(b.defect) + ")";
      b = Blocks{};
    }
  }
  out.route = route;
  if (route == OrbitRoute::Dense) {
    dense_route(out, arch, train_x, train_y, test_x, rho_x, rho_y, times, covariance, options, t0, why_dense);
    return out;
  }
  out.kernel_entries = b.entries;
  out.kernel_seconds = seconds_since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  const double reg = absolute_reg(options.flow, b.ntk[0]);
  if (route == OrbitRoute::Averaged)
    averaged_route(out, b, train_y, times, options, n, reg, rtol, t1);
  else
    fourier_route(out, b, train_y, rho_x, rho_y, times, covariance, options, reg, rtol, t1);
  return out;
}

}  // namespace emergent
