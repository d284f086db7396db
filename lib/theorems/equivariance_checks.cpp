// Theorem 5.1, Lemmas 5.1/5.2 and Theorem 5.2 of Gerken & Kessel (ICML 2024), checked numerically
// (include/emergent/theorems/equivariance_checks.hpp).
#include "emergent/theorems/equivariance_checks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <map>
#include <numbers>
#include <sstream>

#include "emergent/core/random.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "detail/theorem_support.hpp"

#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/permutation.hpp"
#include "detail/linear_algebra.hpp"

namespace emergent {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using detail::bad;
using detail::compose_maps;
using detail::identity_map;
using detail::num;
using detail::Perm;
using detail::Gram;
using detail::gram;
using detail::is_spatial;
using detail::check_inputs_for;
using detail::time_text;

constexpr double kEps = std::numeric_limits<double>::epsilon();


double max_abs(const MatrixXd& a) { return a.size() ? a.cwiseAbs().maxCoeff() : 0.0; }

MatrixXd conj_blocks(const MatrixXd& G, const MatrixXd& M, Index P) {
  MatrixXd out(G.rows(), G.cols());
  for (Index i = 0; i < G.rows() / P; ++i)
    for (Index j = 0; j < G.cols() / P; ++j)
      out.block(i * P, j * P, P, P).noalias() = M * G.block(i * P, j * P, P, P) * M.transpose();
  return out;
}

// Output map of a spatial architecture must keep the input's size for ρ_K to be the input's pixel action.
void require_same_map(const Architecture& arch, const ExampleShape& in, const char* where) {
  const ExampleShape out = arch.shapes(in).shapes.back();
  if (out.height != in.height || out.width != in.width)
    bad(std::string(where) + ": the architecture '" + arch.to_string() + "' maps " + in.to_string() + " to " +
        out.to_string() + "; ρ_K needs the output map to keep the input's H×W (use same/circular padding or a readout)");
}

CheckResult finish(std::string name, std::vector<ElementViolation> elements, double scale, double tolerance,
                   std::string rule) {
  CheckResult r;
  r.name = std::move(name);
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


// Number of activations with a kink (ReLU family with a ≠ b). Their NTK factor (π−θ)/2π has
// infinite slope at θ = 0 (collinear inputs): a relative round-off δ in the correlation moves θ
// by √(2δ), so an input paired with itself carries √ε-sized error (Cho & Saul 2009 Eq. 6).
int kinked_activations(const Architecture& arch) {
  int n = 0;
  for (const Layer& l : arch.layers())
    if (l.kind == LayerKind::Activation) {
      const ActivationKind k = l.activation.kind;
      if ((k == ActivationKind::Relu || k == ActivationKind::Abs || k == ActivationKind::LeakyRelu ||
           k == ActivationKind::AbRelu) && l.activation.a != l.activation.b)
        ++n;
    }
  return n;
}

// collinear(i, j): x_j = c·x_i (|cos| within 1e-12 of 1).
std::vector<std::vector<char>> collinear_pairs(const RowMatrix& a, const RowMatrix& b) {
  std::vector<std::vector<char>> c(a.rows(), std::vector<char>(b.rows(), 0));
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < b.rows(); ++j) {
      const double n = a.row(i).norm() * b.row(j).norm();
      c[i][j] = n > 0 && std::abs(a.row(i).dot(b.row(j))) >= (1 - 1e-12) * n;
    }
  return c;
}

// Relative round-off allowance of the NTK on collinear pairs: per kinked layer √(2·ε·ops)/π.
double collinear_rel_tol(const Architecture& arch, double ops) {
  return kinked_activations(arch) * std::sqrt(2 * kEps * ops) / std::numbers::pi;
}

}  // namespace

// ---- reports ------------------------------------------------------------------------------

std::string CheckResult::to_string() const {
  std::ostringstream s;
  s << name << ": " << (holds ? "holds" : "does not hold") << ", max violation " << num(max_violation) << " (relative "
    << num(relative_violation()) << ", scale " << num(scale) << "), tolerance " << num(tolerance);
  if (!elements.empty() && worst_element < static_cast<int>(elements.size()))
    s << ", worst element '" << elements[worst_element].label << "'";
  return s.str();
}

const CheckResult& TheoremResult::part(std::string_view name) const {
  for (const auto& p : parts)
    if (p.name == name) return p;
  throw std::out_of_range("TheoremResult::part: no part named '" + std::string(name) + "'");
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

bool EquivarianceCheckOptions::IsValid(std::string* error) const {
  std::string e;
  if (!(safety >= 1.0) || !std::isfinite(safety)) e = "safety: expected a finite number ≥ 1, got " + num(safety);
  else if (!kernel.IsValid(&e)) e = "kernel." + e;
  if (error) *error = e;
  return e.empty();
}

bool LemmaCheckOptions::IsValid(std::string* error) const {
  std::string e;
  if (!equivariance.IsValid(&e)) e = "equivariance." + e;
  else if (!(learning_rate > 0) || !std::isfinite(learning_rate)) e = "learning_rate: expected > 0, got " + num(learning_rate);
  else if (outputs < 1) e = "outputs: expected ≥ 1, got " + std::to_string(outputs);
  else
    for (double t : times)
      if (!(t >= 0) || !std::isfinite(t)) e = "times: expected finite t ≥ 0, got " + num(t);
  if (error) *error = e;
  return e.empty();
}

bool Theorem52Options::IsValid(std::string* error) const {
  std::string e;
  if (!(safety >= 1.0) || !std::isfinite(safety)) e = "safety: expected a finite number ≥ 1, got " + num(safety);
  else if (!kernel.IsValid(&e)) e = "kernel." + e;
  else if (!flow.IsValid(&e)) e = "flow." + e;
  else if (noise_inputs < 0) e = "noise_inputs: expected ≥ 0, got " + std::to_string(noise_inputs);
  else if (times.empty()) e = "times: expected at least one time";
  else
    for (double t : times)
      if (!(t >= 0)) e = "times: expected t ≥ 0 (inf allowed), got " + num(t);
  if (error) *error = e;
  return e.empty();
}

// ---- Theorem 5.1 ---------------------------------------------------------------------------

double kernel_roundoff_ops(const Architecture& arch, const ExampleShape& shape, const Representation* rho) {
  const ShapeTrace trace = arch.shapes(shape);
  double ops = shape.channels;                                  // Σ⁰ = x·x'/C
  if (rho && !rho->is_permutation()) ops += static_cast<double>(rho->blocks());  // ρ(g)x is a matrix product
  const auto& layers = arch.layers();
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Layer& L = layers[l];
    const double P = trace.shapes[l].pixels();
    switch (L.kind) {
      case LayerKind::Dense: ops += 4; break;
      case LayerKind::Conv: ops += L.filter_h * L.filter_w + 4; break;
      case LayerKind::Activation: ops += L.activation.closed_form() ? 16 : 64; break;
      case LayerKind::Flatten: ops += P; break;
      case LayerKind::GlobalAvgPool: ops += P * P; break;
    }
  }
  return ops;
}

namespace {


}  // namespace

namespace {
TheoremResult check_5_1_impl(const Architecture& arch, const Inputs& x1, const Inputs* x2p,
                             const Representation& rho, const EquivarianceCheckOptions& options) {
  std::string err;
  if (!options.IsValid(&err)) bad("check_theorem_5_1: options." + err);
  check_inputs_for(rho, x1, "x1", "check_theorem_5_1");
  if (x2p) check_inputs_for(rho, *x2p, "x2", "check_theorem_5_1");
  const bool spatial = is_spatial(arch);
  if (spatial) {
    require_same_map(arch, x1.shape, "check_theorem_5_1");
    if (rho.blocks() != x1.shape.pixels())
      bad("check_theorem_5_1: group '" + rho.name() + "' does not act pixel-wise, so it has no ρ_K on pixel-indexed kernels");
  }
  const Gram base = gram(arch, x1, x2p, options.kernel);
  const Index P = base.pixels;
  std::vector<ElementViolation> vk, vt, vc;
  double scale_k = max_abs(base.nngp), scale_t = max_abs(base.ntk);
  const bool kinked = kinked_activations(arch) > 0;
  const auto colpairs = collinear_pairs(x1.x, x2p ? x2p->x : x1.x);
  bool any_col = false;
  for (const auto& row : colpairs)
    for (char c : row) any_col = any_col || c;
  for (int g = 0; g < rho.size(); ++g) {
    const Inputs g1 = rho.apply(g, x1);
    Gram tg;
    if (x2p) {
      const Inputs g2 = rho.apply(g, *x2p);
      tg = gram(arch, g1, &g2, options.kernel);
    } else {
      tg = gram(arch, g1, nullptr, options.kernel);
    }
    MatrixXd ek = base.nngp, et = base.ntk;
    if (spatial) {
      const MatrixXd M = rho.block_matrix(g);  // ρ_K(g) on pixel indices
      ek = conj_blocks(base.nngp, M, P);
      et = conj_blocks(base.ntk, M, P);
    }
    scale_k = std::max(scale_k, max_abs(tg.nngp));
    scale_t = std::max(scale_t, max_abs(tg.ntk));
    vk.push_back({g, rho.label(g), max_abs(tg.nngp - ek)});
    double gen = 0, col = 0;
    for (Index r = 0; r < et.rows(); ++r)
      for (Index c = 0; c < et.cols(); ++c) {
        const double d = std::abs(tg.ntk(r, c) - et(r, c));
        if (kinked && colpairs[r / P][c / P]) col = std::max(col, d);
        else gen = std::max(gen, d);
      }
    vt.push_back({g, rho.label(g), gen});
    vc.push_back({g, rho.label(g), col});
  }
  const double ops = kernel_roundoff_ops(arch, x1.shape, &rho);
  const std::string rule = num(options.safety) + "·2·ε·ops·scale, ops = " + num(ops) +
                           " (input dot product, transform, filter taps, activations, readout sums)";
  TheoremResult t;
  t.theorem = std::string("Theorem 5.1 (") + rho.name() + ", " + (spatial ? "pixel-indexed kernels, ρ_K = pixel action" : "readout/MLP kernels, invariance") + ")";
  t.parts.push_back(finish("NNGP", std::move(vk), scale_k, options.safety * 2 * kEps * ops * scale_k, rule));
  t.parts.push_back(finish("NTK", std::move(vt), scale_t, options.safety * 2 * kEps * ops * scale_t, rule));
  if (kinked && any_col)
    t.parts.push_back(finish("NTK collinear pairs", std::move(vc), scale_t,
                             options.safety * 2 * collinear_rel_tol(arch, ops) * scale_t,
                             num(options.safety) + "·2·(kinked layers)·√(2·ε·ops)/π·scale: the ReLU-family NTK factor at θ = 0"));
  if (!rho.exact()) t.status = "group '" + rho.name() + "' is not an exact orthogonal group (" + rho.verify().to_string() + ")";
  finish_theorem(t);
  return t;
}
}  // namespace

TheoremResult check_theorem_5_1(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                                const Representation& rho_x, const EquivarianceCheckOptions& options) {
  return check_5_1_impl(arch, x1, &x2, rho_x, options);
}

TheoremResult check_theorem_5_1(const Architecture& arch, const Inputs& x, const Representation& rho_x,
                                const EquivarianceCheckOptions& options) {
  return check_5_1_impl(arch, x, nullptr, rho_x, options);
}

// ---- Lemmas 5.1 / 5.2 ----------------------------------------------------------------------

namespace {

// g_t(Θ) = V·diag(g_t(λ))·Vᵀ, g_t(λ) = (1 − e^{−cλ})/λ → c as λ → 0 (negative round-off clipped).
MatrixXd spectral_g(const detail::SymmetricEigen& es, double c) {
  VectorXd f(es.values.size());
  for (Index i = 0; i < f.size(); ++i) {
    const double l = std::max(0.0, es.values(i));
    f(i) = (c * l > 1e-300 && l > 0) ? -std::expm1(-c * l) / l : c;
  }
  return es.vectors * f.asDiagonal() * es.vectors.transpose();
}

double permuted_violation(const MatrixXd& G, const std::vector<Index>& tau) {
  double v = 0;
  for (Index s = 0; s < G.cols(); ++s)
    for (Index r = 0; r < G.rows(); ++r) v = std::max(v, std::abs(G(tau[r], tau[s]) - G(r, s)));
  return v;
}

}  // namespace

TheoremResult check_lemmas_5_1_5_2(const Architecture& arch, const Inputs& train_x, const Representation& rho,
                                   const LemmaCheckOptions& options) {
  std::string err;
  if (!options.IsValid(&err)) bad("check_lemmas_5_1_5_2: options." + err);
  check_inputs_for(rho, train_x, "train_x", "check_lemmas_5_1_5_2");
  const bool spatial = is_spatial(arch);
  if (spatial) {
    require_same_map(arch, train_x.shape, "check_lemmas_5_1_5_2");
    if (!rho.is_permutation() || rho.blocks() != train_x.shape.pixels())
      bad("check_lemmas_5_1_5_2: group '" + rho.name() + "' does not permute pixels; pixel-indexed kernels need a pixel permutation group");
  }
  const Index N = train_x.count();
  const double sx = max_abs(train_x.x);
  // σ_g: the row equal to ρ(g)x_r (nearest in max norm).
  std::vector<std::vector<Index>> sigma(rho.size(), std::vector<Index>(N));
  std::vector<ElementViolation> vrow;
  for (int g = 0; g < rho.size(); ++g) {
    const RowMatrix xg = rho.apply(g, train_x.x);
    double worst = 0;
    // Nearest row, preferring rows not yet taken among equally near ones: augmented sets of
    // inputs fixed by some g (an all-up Ising state under c4) hold exact duplicates, and σ_g must
    // still be a bijection.
    std::vector<char> used(N, 0);
    for (Index r = 0; r < N; ++r) {
      double best = INFINITY;
      bool best_used = true;
      for (Index s = 0; s < N; ++s) {
        const double d = (xg.row(r) - train_x.x.row(s)).cwiseAbs().maxCoeff();
        if (d < best || (d == best && best_used && !used[s])) {
          best = d;
          best_used = used[s] != 0;
          sigma[g][r] = s;
        }
      }
      used[sigma[g][r]] = 1;
      worst = std::max(worst, best);
    }
    std::vector<char> hit(N, 0);
    for (Index s : sigma[g]) hit[s] = 1;
    bool bijective = std::all_of(hit.begin(), hit.end(), [](char c) { return c != 0; });
    vrow.push_back({g, rho.label(g), bijective ? worst : std::max(worst, sx)});
  }
  const double xops = rho.is_permutation() ? 0.0 : static_cast<double>(rho.blocks());
  TheoremResult t;
  t.theorem = "Lemmas 5.1/5.2 (" + rho.name() + ", " + std::to_string(N) + " training rows)";
  t.parts.push_back(finish("row permutation", std::move(vrow), sx, options.equivariance.safety * 2 * kEps * xops * sx,
                           "safety·2·ε·(terms of ρ(g)x)·max|x| (0 for permutations)"));
  const Gram G = gram(arch, train_x, nullptr, options.equivariance.kernel);
  const Index P = G.pixels, M = G.ntk.rows();
  // Full index map on (example, pixel): τ(i, a) = (σ_g(i), π_g⁻¹(a)), so that Θ[τr, τs] = Θ[r, s].
  std::vector<std::vector<Index>> tau(rho.size(), std::vector<Index>(M));
  for (int g = 0; g < rho.size(); ++g) {
    std::vector<Index> inv(P, 0);
    if (spatial) {
      const auto& pi = rho.block_permutation(g);
      for (Index a = 0; a < P; ++a) inv[pi[a]] = a;
    }
    for (Index i = 0; i < N; ++i)
      for (Index a = 0; a < P; ++a) tau[g][i * P + a] = sigma[g][i] * P + (spatial ? inv[a] : a);
  }
  const double ops = kernel_roundoff_ops(arch, train_x.shape, &rho);
  const double safety = options.equivariance.safety;
  const std::string rule = num(safety) + "·2·ε·ops·scale, ops = " + num(ops);
  std::vector<ElementViolation> vk, vt, vc;
  const bool kinked = kinked_activations(arch) > 0;
  const auto colpairs = collinear_pairs(train_x.x, train_x.x);
  for (int g = 0; g < rho.size(); ++g) {
    vk.push_back({g, rho.label(g), permuted_violation(G.nngp, tau[g])});
    double gen = 0, col = 0;
    for (Index c = 0; c < M; ++c)
      for (Index r = 0; r < M; ++r) {
        const double d = std::abs(G.ntk(tau[g][r], tau[g][c]) - G.ntk(r, c));
        if (kinked && (colpairs[r / P][c / P] || colpairs[tau[g][r] / P][tau[g][c] / P])) col = std::max(col, d);
        else gen = std::max(gen, d);
      }
    vt.push_back({g, rho.label(g), gen});
    vc.push_back({g, rho.label(g), col});
  }
  const double sk = max_abs(G.nngp), st = max_abs(G.ntk);
  const double tol_lin = safety * 2 * kEps * ops * st;
  const double tol_col = kinked ? safety * 2 * collinear_rel_tol(arch, ops) * st : 0.0;
  const double tol_t = std::max(tol_lin, tol_col);  // what enters g_t(Θ)
  t.parts.push_back(finish("Lemma 5.1 NNGP", std::move(vk), sk, safety * 2 * kEps * ops * sk, rule));
  t.parts.push_back(finish("Lemma 5.1 NTK", std::move(vt), st, tol_lin, rule));
  if (kinked)
    t.parts.push_back(finish("Lemma 5.1 NTK collinear pairs", std::move(vc), st, tol_col,
                             num(safety) + "·2·(kinked layers)·√(2·ε·ops)/π·scale: the ReLU-family NTK factor at θ = 0"));
  // Measured non-commutation of Θ itself, D = max_g ‖Π_gΘΠ_gᵀ − Θ‖_F.
  double defect = 0;
  for (int g = 0; g < rho.size(); ++g) {
    double f2 = 0;
    for (Index c = 0; c < M; ++c)
      for (Index r = 0; r < M; ++r) {
        const double d = G.ntk(tau[g][r], tau[g][c]) - G.ntk(r, c);
        f2 += d * d;
      }
    defect = std::max(defect, std::sqrt(f2));
  }
  // Only the round-off part of the defect may excuse g_t(Θ): cap D by what Lemma 5.1 tolerates.
  const double defect_used = std::min(defect, static_cast<double>(M) * tol_t);
  const detail::SymmetricEigen es = detail::symmetric_eigen(0.5 * (G.ntk + G.ntk.transpose()));
  if (!es.converged) throw std::runtime_error("Lemma 5.2: the symmetric eigensolver did not converge");
  const double lmin = std::max(0.0, es.values.minCoeff());
  const double fro = G.ntk.norm();
  for (double time : options.times) {
    const double c = options.learning_rate * time / (static_cast<double>(M) * options.outputs);
    const MatrixXd F = spectral_g(es, c);
    std::vector<ElementViolation> vf;
    for (int g = 0; g < rho.size(); ++g) vf.push_back({g, rho.label(g), permuted_violation(F, tau[g])});
    // Π·g_t(Θ)·Πᵀ = g_t(ΠΘΠᵀ), and g_t is Lipschitz with L = sup|g_t'| ≤ min(c²/2, 1/λ_min²) on the
    // spectrum, so ‖Πg_t(Θ̂)Πᵀ − g_t(Θ̂)‖_F ≤ L·(D + 2‖E‖_F) with the eigensolver's backward error
    // ‖E‖_F ≲ M·ε·‖Θ‖_F, plus the rounding of V·diag·Vᵀ (M·ε·c per entry, both sides).
    const double L = lmin > 0 ? std::min(0.5 * c * c, 1.0 / (lmin * lmin)) : 0.5 * c * c;
    const double tol = safety * (L * (defect_used + 2 * M * kEps * fro) + 2 * M * kEps * c);
    t.parts.push_back(finish("Lemma 5.2 g_t(Θ), t=" + time_text(time), std::move(vf), max_abs(F), tol,
                             "safety·[L·(D + 2M·ε·‖Θ‖_F) + 2M·ε·c], L = min(c²/2, 1/λ_min²), D = measured ‖ΠΘΠᵀ − Θ‖_F = " +
                                 num(defect) + " capped at M·tol_Θ, c = ηt/(Nk)"));
  }
  if (!rho.exact()) t.status = "group '" + rho.name() + "' is not exact";
  finish_theorem(t);
  return t;
}

// ---- Theorem 5.2 ---------------------------------------------------------------------------

TheoremResult check_theorem_5_2(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                                const Theorem52Options& options) {
  std::string err;
  if (!options.IsValid(&err)) bad("check_theorem_5_2: options." + err);
  check_inputs_for(rho_x, train_x, "train_x", "check_theorem_5_2");
  check_inputs_for(rho_x, test_x, "test_x", "check_theorem_5_2");
  if (rho_y.size() != rho_x.size())
    bad("check_theorem_5_2: rho_y has " + std::to_string(rho_y.size()) + " elements, expected |G| = " +
        std::to_string(rho_x.size()));
  if (train_y.rows() != train_x.count() || train_y.cols() != rho_y.dim())
    bad("check_theorem_5_2: train_y has shape (" + std::to_string(train_y.rows()) + ", " + std::to_string(train_y.cols()) +
        "), expected (N, rho_y dimension) = (" + std::to_string(train_x.count()) + ", " + std::to_string(rho_y.dim()) + ")");
  const bool spatial = is_spatial(arch);
  Index P = 1;
  if (spatial) {
    require_same_map(arch, train_x.shape, "check_theorem_5_2");
    P = train_x.shape.pixels();
    if (!rho_y.shape().image || rho_y.blocks() != P)
      bad("check_theorem_5_2: spatial outputs need a pixel action rho_y on (H, W, k) (see pixel_output), got " +
          rho_y.shape().to_string());
  }
  const Index kc = rho_y.dim() / P;  // outputs per row of the flow

  // Training set: the full orbit (hypothesis of the theorem) or the raw data.
  Inputs X = train_x;
  RowMatrix Yfull = train_y;
  if (options.augment) {
    AugmentedSet a = augment(train_x, train_y, rho_x, rho_y);
    X = std::move(a.x);
    Yfull = std::move(a.y);
  }
  const Index N = X.count(), M = N * P;
  const MatrixXd Y = Eigen::Map<const RowMatrix>(Yfull.data(), M, kc);
  const Gram G = gram(arch, X, nullptr, options.kernel);
  const GradientFlow flow(G.ntk, G.nngp, Y, options.flow);
  // The same problem with the training examples in reverse order: mathematically identical
  // predictions, so their difference measures the round-off of the whole pipeline.
  std::vector<Index> rev(M);
  for (Index i = 0; i < N; ++i)
    for (Index a = 0; a < P; ++a) rev[i * P + a] = (N - 1 - i) * P + a;
  MatrixXd Grt(M, M), Grk(M, M), Yr(M, kc);
  for (Index s = 0; s < M; ++s) {
    Yr.row(s) = Y.row(rev[s]);
    for (Index r = 0; r < M; ++r) {
      Grt(r, s) = G.ntk(rev[r], rev[s]);
      Grk(r, s) = G.nngp(rev[r], rev[s]);
    }
  }
  const GradientFlow flow_rev(Grt, Grk, Yr, options.flow);

  // Off-manifold inputs: N(0, s²) entries, s = RMS of the training inputs.
  const double rms = std::sqrt(train_x.x.squaredNorm() / std::max<double>(1.0, static_cast<double>(train_x.x.size())));
  RowMatrix noise(options.noise_inputs, train_x.x.cols());
  const NormalStream stream(options.seed, 0);
  for (Index r = 0; r < noise.rows(); ++r)
    for (Index c = 0; c < noise.cols(); ++c) noise(r, c) = rms * stream.normal(static_cast<std::uint64_t>(r * noise.cols() + c));
  std::vector<std::pair<std::string, Inputs>> sets = {{"test", test_x}};
  if (options.noise_inputs > 0) sets.push_back({"noise", Inputs(noise, train_x.shape)});

  const SpectralSummary& sm = flow.summary();
  const double lmin = sm.effective_condition > 0 && std::isfinite(sm.effective_condition)
                          ? sm.max_eigenvalue / sm.effective_condition : 0.0;
  const double ops = kernel_roundoff_ops(arch, train_x.shape, &rho_x);
  double ynorm = 0;
  for (Index c = 0; c < kc; ++c) ynorm = std::max(ynorm, Y.col(c).norm());
  const double orth_y = rho_y.verify().orthogonality_violation;
  // Training Gram round-off that the row permutation does not map onto itself: with kinked
  // activations, a pair of training rows that is nearly but not exactly (anti-)collinear (ρ(g)x
  // and ρ(g')x = −ρ(g)x up to the rounding of cos/sin, e.g. rot2(6)) carries the √ε error of the
  // ReLU-family NTK at θ ∈ {0, π}. Exact duplicates and exact antipodes are computed exactly.
  bool train_col = false;
  if (kinked_activations(arch) > 0) {
    const auto cp = collinear_pairs(X.x, X.x);
    for (Index i = 0; i < N && !train_col; ++i)
      for (Index j = 0; j < N && !train_col; ++j)
        train_col = i != j && cp[i][j] && X.x.row(i) != X.x.row(j) && X.x.row(i) != -X.x.row(j);
  }
  const double tol_train = train_col ? 2 * collinear_rel_tol(arch, ops) * max_abs(G.ntk) : 0.0;

  TheoremResult t;
  t.theorem = std::string("Theorem 5.2 (") + rho_x.name() + ", " + (options.augment ? "augmented" : "not augmented") +
              ", " + std::to_string(N) + " training examples)";
  t.status = std::string("spectral: ") + sm.to_string();
  const auto& times = options.times;
  for (const auto& [set_name, xs] : sets) {
    const Index Nt = xs.count();
    std::vector<std::vector<MatrixXd>> means(rho_x.size()), covs(rho_x.size());
    double tscale = 0, kscale = 0, ktt = 0, trow = 0;
    const double knorm = G.nngp.norm();
    for (int g = 0; g < rho_x.size(); ++g) {
      const Inputs xg = rho_x.apply(g, xs);
      const Gram tx = gram(arch, xg, &X, options.kernel);
      const Gram tt = gram(arch, xg, nullptr, options.kernel);
      means[g] = flow.mean(times, tx.ntk);
      covs[g] = flow.covariance(times, tx.ntk, tx.nngp, tt.nngp);
      tscale = std::max(tscale, max_abs(tx.ntk));
      trow = std::max(trow, tx.ntk.rowwise().norm().maxCoeff());
      kscale = std::max({kscale, max_abs(tx.nngp), max_abs(G.nngp)});
      ktt = std::max(ktt, max_abs(tt.nngp));
      if (g == 0) {
        // Round-off measured by the reversed training order (identity element).
        MatrixXd txr(tx.ntk.rows(), M), txk(tx.nngp.rows(), M);
        for (Index s = 0; s < M; ++s) {
          txr.col(s) = tx.ntk.col(rev[s]);
          txk.col(s) = tx.nngp.col(rev[s]);
        }
        const auto mr = flow_rev.mean(times, txr);
        const auto cr = flow_rev.covariance(times, txr, txk, tt.nngp);
        for (std::size_t q = 0; q < times.size(); ++q) {
          means[0].push_back(mr[q]);  // stored after the |times| real ones
          covs[0].push_back(cr[q]);
        }
      }
    }
    kscale = std::max(kscale, ktt);
    // The √ε allowance of the ReLU-family NTK applies only if a test input is collinear with a training input.
    bool col = false;
    if (kinked_activations(arch) > 0)
      for (const auto& row : collinear_pairs(xs.x, X.x))
        for (char c : row) col = col || c;
    const double tol_theta =
        (2 * kEps * ops + (col ? 2 * collinear_rel_tol(arch, ops) : 0.0)) * std::max(tscale, max_abs(G.ntk));
    const double tol_k = 2 * kEps * ops * kscale;
    for (std::size_t q = 0; q < times.size(); ++q) {
      const double time = times[q];
      const double c = std::isinf(time) ? INFINITY : options.flow.learning_rate * time / (static_cast<double>(M) * kc);
      const double gmax = lmin > 0 ? std::min(c, 1.0 / lmin) : (std::isinf(c) ? 0.0 : c);
      // Mean: rows (example, pixel) → (Nt, P·kc), then ρ_Y(g) on each example.
      auto as_rows = [&](const MatrixXd& m) {
        RowMatrix r(Nt, P * kc);
        for (Index i = 0; i < Nt; ++i)
          for (Index a = 0; a < P; ++a)
            for (Index cc = 0; cc < kc; ++cc) r(i, a * kc + cc) = m(i * P + a, cc);
        return r;
      };
      const RowMatrix m0 = as_rows(means[0][q]);
      const double meas_m = max_abs(m0 - as_rows(means[0][times.size() + q]));
      const double meas_c = max_abs(covs[0][q] - covs[0][times.size() + q]);
      std::vector<ElementViolation> vm, vc;
      double sm_ = max_abs(m0), sc = max_abs(covs[0][q]);
      for (int g = 0; g < rho_x.size(); ++g) {
        const RowMatrix mg = as_rows(means[g][q]);
        vm.push_back({g, rho_x.label(g), max_abs(mg - rho_y.apply(g, m0))});
        MatrixXd expect = covs[0][q];
        if (spatial) expect = conj_blocks(covs[0][q], rho_y.block_matrix(g), P);
        // Readouts: ρ_Y(Σ⊗I)ρ_Yᵀ = Σ⊗ρ_Yρ_Yᵀ, which differs from Σ⊗I by the orthogonality defect of ρ_Y.
        vc.push_back({g, rho_x.label(g), max_abs(covs[g][q] - expect) + (spatial ? 0.0 : orth_y * sc)});
        sm_ = std::max(sm_, max_abs(mg));
        sc = std::max(sc, max_abs(covs[g][q]));
      }
      // Kernel round-off propagated: δμ ≤ ‖δΘ(x,X)‖₁-row·|g_t(Θ)Y| ≤ tol_Θ·√M·g_max·‖Y‖; the
      // covariance sees A = Θ(x,X)g_t(Θ) with row ℓ1 norm a ≤ M·g_max·max|Θ(x,X)|.
      // Training Gram round-off δΘ (entries ≤ tol_train): ‖δg_t(Θ)‖₂ ≤ L·M·tol_train with g_t's
      // Lipschitz constant L = min(c²/2, 1/λ_min²) (c²/2 alone at t = ∞ would be infinite).
      const double L = std::isinf(c) ? (lmin > 0 ? 1.0 / (lmin * lmin) : 0.0)
                                     : (lmin > 0 ? std::min(0.5 * c * c, 1.0 / (lmin * lmin)) : 0.5 * c * c);
      const double dA = trow * L * static_cast<double>(M) * tol_train;
      const double dm = tol_theta * std::sqrt(static_cast<double>(M)) * gmax * ynorm + dA * ynorm;
      // Covariance: A = Θ(x,X)g_t(Θ) has rows of 2-norm ≤ a2 = g_max·max‖Θ(x_i,X)‖₂ and kernel
      // round-off moves them by ≤ da2 = g_max·√M·tol_Θ; K(X,X) is shared by both sides, so
      // δΣ ≤ tol_K + 2(da2·‖K(X,x)‖ + a2·√M·tol_K) + 2·da2·‖K(X,X)‖_F·a2.
      const double sqm = std::sqrt(static_cast<double>(M));
      const double a2 = gmax * trow, da2 = gmax * sqm * tol_theta;
      const double dc = tol_k + 2 * (da2 * sqm * kscale + a2 * sqm * tol_k) + 2 * da2 * knorm * a2 +
                        2 * dA * (knorm * a2 + sqm * kscale);
      const std::string ts = time_text(time);
      t.parts.push_back(finish("mean t=" + ts + " " + set_name, std::move(vm), sm_, options.safety * (meas_m + dm + kEps * sm_),
                               "safety·(reversed-order round-off " + num(meas_m) + " + kernel round-off propagated " + num(dm) + " + ε·scale)"));
      t.parts.push_back(finish("covariance t=" + ts + " " + set_name, std::move(vc), sc, options.safety * (meas_c + dc + kEps * sc),
                               "safety·(reversed-order round-off " + num(meas_c) + " + kernel round-off propagated " + num(dc) + " + ε·scale)"));
    }
  }
  // A tolerance above the quantity's own scale cannot tell anything apart (ill-conditioned Gram
  // matrices at t = ∞ with the √ε ReLU allowance): say so rather than let "holds" pass silently.
  std::string vacuous;
  for (const auto& p : t.parts)
    if (p.scale > 0 && p.tolerance > p.scale) vacuous += (vacuous.empty() ? "" : ", ") + p.name;
  if (!vacuous.empty())
    t.status += "; not resolvable at this conditioning (tolerance > scale): " + vacuous;
  finish_theorem(t);
  return t;
}

}  // namespace emergent
