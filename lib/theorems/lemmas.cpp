// Lemmas 5.1/5.2 of Gerken & Kessel (ICML 2024), checked numerically
// (include/emergent/theorems/lemmas.hpp).
#include "emergent/theorems/lemmas.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "emergent/dynamics/spectral_filter.hpp"

#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/linear_algebra.hpp"
#include "detail/theorem_support.hpp"
#include "theorems/check_support.hpp"

namespace emergent {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using detail::bad;
using detail::check_inputs_for;
using detail::collinear_pairs;
using detail::collinear_rel_tol;
using detail::finish;
using detail::finish_theorem;
using detail::Gram;
using detail::gram;
using detail::is_spatial;
using detail::kEps;
using detail::kinked_activations;
using detail::max_abs;
using detail::num;
using detail::require_same_map;

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

namespace {

using IndexMaps = std::vector<std::vector<Index>>;  // one map per group element

// g_t(Θ) = V·diag(g_t(λ))·Vᵀ with g_t of spectral_filter.hpp, s = c (negative round-off clipped).
MatrixXd spectral_g(const detail::SymmetricEigen& es, double c) {
  VectorXd f(es.values.size());
  for (Index i = 0; i < f.size(); ++i) f(i) = spectral_filter(std::max(0.0, es.values(i)), c);
  return es.vectors * f.asDiagonal() * es.vectors.transpose();
}

double permuted_violation(const MatrixXd& G, const std::vector<Index>& tau) {
  double v = 0;
  for (Index s = 0; s < G.cols(); ++s)
    for (Index r = 0; r < G.rows(); ++r) v = std::max(v, std::abs(G(tau[r], tau[s]) - G(r, s)));
  return v;
}

void validate(const Architecture& arch, const Inputs& train_x, const Representation& rho,
              const LemmaCheckOptions& options) {
  std::string err;
  if (!options.IsValid(&err)) bad("check_lemmas_5_1_5_2: options." + err);
  check_inputs_for(rho, train_x, "train_x", "check_lemmas_5_1_5_2");
  if (is_spatial(arch)) {
    require_same_map(arch, train_x.shape, "check_lemmas_5_1_5_2");
    if (!rho.is_permutation() || rho.blocks() != train_x.shape.pixels())
      bad("check_lemmas_5_1_5_2: group '" + rho.name() + "' does not permute pixels; pixel-indexed kernels need a pixel permutation group");
  }
}

// σ_g: the row equal to ρ(g)x_r (nearest in max norm); per g the distance of the worst match,
// or max|x| when σ_g is not a bijection.
IndexMaps match_rows(const Inputs& train_x, const Representation& rho, std::vector<ElementViolation>& vrow) {
  const Index N = train_x.count();
  const double sx = max_abs(train_x.x);
  IndexMaps sigma(rho.size(), std::vector<Index>(N));
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
  return sigma;
}

// Full index map on (example, pixel): τ(i, a) = (σ_g(i), π_g⁻¹(a)), so that Θ[τr, τs] = Θ[r, s].
IndexMaps kernel_index_maps(const IndexMaps& sigma, const Representation& rho, Index N, Index P, bool spatial) {
  const Index M = N * P;
  IndexMaps tau(rho.size(), std::vector<Index>(M));
  for (int g = 0; g < rho.size(); ++g) {
    std::vector<Index> inv(P, 0);
    if (spatial) {
      const auto& pi = rho.block_permutation(g);
      for (Index a = 0; a < P; ++a) inv[pi[a]] = a;
    }
    for (Index i = 0; i < N; ++i)
      for (Index a = 0; a < P; ++a) tau[g][i * P + a] = sigma[g][i] * P + (spatial ? inv[a] : a);
  }
  return tau;
}

// Measured non-commutation of Θ itself, D = max_g ‖Π_gΘΠ_gᵀ − Θ‖_F.
double commutation_defect(const MatrixXd& ntk, const IndexMaps& tau) {
  const Index M = ntk.rows();
  double defect = 0;
  for (const auto& t : tau) {
    double f2 = 0;
    for (Index c = 0; c < M; ++c)
      for (Index r = 0; r < M; ++r) {
        const double d = ntk(t[r], t[c]) - ntk(r, c);
        f2 += d * d;
      }
    defect = std::max(defect, std::sqrt(f2));
  }
  return defect;
}

// Lemma 5.1 parts: Θ[τr, τs] = Θ[r, s] and the same for K. Returns the tolerance of Θ's entries
// (the larger of the general and the collinear one), which enters g_t(Θ).
double add_lemma_5_1(TheoremResult& t, const Architecture& arch, const Inputs& train_x, const Representation& rho,
                     const Gram& G, const IndexMaps& tau, double safety) {
  const Index P = G.pixels, M = G.ntk.rows();
  const double ops = kernel_roundoff_ops(arch, train_x.shape, &rho);
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
  t.parts.push_back(finish({Theorem::Lemma51, Quantity::Nngp, InputSet::Train}, std::move(vk), sk,
                           safety * 2 * kEps * ops * sk, rule));
  t.parts.push_back(finish({Theorem::Lemma51, Quantity::Ntk, InputSet::Train}, std::move(vt), st, tol_lin, rule));
  if (kinked)
    t.parts.push_back(finish({Theorem::Lemma51, Quantity::Ntk, InputSet::Collinear}, std::move(vc), st, tol_col,
                             num(safety) + "·2·(kinked layers)·√(2·ε·ops)/π·scale: the ReLU-family NTK factor at θ = 0"));
  return std::max(tol_lin, tol_col);
}

// Lemma 5.2 parts: Π_g·g_t(Θ)·Π_gᵀ = g_t(Θ) at every time.
void add_lemma_5_2(TheoremResult& t, const Gram& G, const IndexMaps& tau, const Representation& rho,
                   const LemmaCheckOptions& options, double tol_t) {
  const Index M = G.ntk.rows();
  const double safety = options.equivariance.safety;
  const double defect = commutation_defect(G.ntk, tau);
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
    t.parts.push_back(finish({Theorem::Lemma52, Quantity::SpectralFilter, InputSet::Train, time}, std::move(vf),
                             max_abs(F), tol,
                             "safety·[L·(D + 2M·ε·‖Θ‖_F) + 2M·ε·c], L = min(c²/2, 1/λ_min²), D = measured ‖ΠΘΠᵀ − Θ‖_F = " +
                                 num(defect) + " capped at M·tol_Θ, c = ηt/(Nk)"));
  }
}

}  // namespace

TheoremResult check_lemmas_5_1_5_2(const Architecture& arch, const Inputs& train_x, const Representation& rho,
                                   const LemmaCheckOptions& options) {
  validate(arch, train_x, rho, options);
  const bool spatial = is_spatial(arch);
  const Index N = train_x.count();
  const double sx = max_abs(train_x.x);
  std::vector<ElementViolation> vrow;
  const IndexMaps sigma = match_rows(train_x, rho, vrow);
  const double xops = rho.is_permutation() ? 0.0 : static_cast<double>(rho.blocks());
  TheoremResult t;
  t.theorem = "Lemmas 5.1/5.2 (" + rho.name() + ", " + std::to_string(N) + " training rows)";
  t.parts.push_back(finish({Theorem::Lemma51, Quantity::RowPermutation, InputSet::Train}, std::move(vrow), sx,
                           options.equivariance.safety * 2 * kEps * xops * sx,
                           "safety·2·ε·(terms of ρ(g)x)·max|x| (0 for permutations)"));
  const Gram G = gram(arch, train_x, nullptr, options.equivariance.kernel);
  const IndexMaps tau = kernel_index_maps(sigma, rho, N, G.pixels, spatial);
  const double tol_t = add_lemma_5_1(t, arch, train_x, rho, G, tau, options.equivariance.safety);
  add_lemma_5_2(t, G, tau, rho, options, tol_t);
  if (!rho.exact()) t.status = "group '" + rho.name() + "' is not exact";
  finish_theorem(t);
  return t;
}

}  // namespace emergent
