// Finite-ensemble deviation and invariance-violation probabilities (include/emergent/bounds/finite_ensemble.hpp,
// docs/bounds.md). Everything is reduced to the law of Q = Σ_i λ_i Z_i² (λ = spectrum of S, one
// member) at x = M·δ²; the exact tail is erfc (one eigenvalue), a χ² tail (equal eigenvalues) or
// Ruben's series (otherwise), all evaluated in log space so the far tail keeps its digits.
#include "emergent/bounds/finite_ensemble.hpp"

#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/linear_algebra.hpp"

#include <algorithm>
#include <boost/math/special_functions/erf.hpp>
#include <boost/math/special_functions/gamma.hpp>
#include <boost/math/tools/roots.hpp>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>
#include "detail/enum_names.hpp"

namespace emergent {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kLogSqrtPi = 0.57236494292470008707;     // log √π
constexpr double kLogTwoOverPi = -0.45158270528945486473;  // log(2/π)
constexpr double kMaxMembers = 9007199254740992.0;         // 2⁵³: every integer below is exact

using detail::exact_text;

// ---- Boost.Math through detail::guard_numerics: a failure names our step (NumericalError) ----
template <class F>
std::pair<double, double> root_of(F&& f, double lo, double hi, int bits, std::uintmax_t& iterations) {
  return detail::guard_numerics("the root search of a tail bound", [&] {
    return boost::math::tools::toms748_solve(f, lo, hi, boost::math::tools::eps_tolerance<double>(bits), iterations);
  });
}
double erfc_inverse(double p) {
  return detail::guard_numerics("the Gaussian quantile erfc^-1", [&] { return boost::math::erfc_inv(p); });
}
double gamma_q_inverse(double a, double p) {
  return detail::guard_numerics("the chi-square quantile", [&] { return boost::math::gamma_q_inv(a, p); });
}

// ---- argument checks (stan-math style: function, argument, value, expectation) --------------

void check_members(const char* fn, std::int64_t members) {
  if (members < 1)
    throw std::invalid_argument(std::string(fn) + ": members (M) is " + std::to_string(members) +
                                ", but must be an integer >= 1");
}

void check_delta(const char* fn, double delta) {
  if (!(delta > 0.0) || !std::isfinite(delta))
    throw std::invalid_argument(std::string(fn) + ": delta is " + exact_text(delta) +
                                ", but must be a finite number > 0");
  // The bounds work with M·delta², which must stay finite.
  if (delta > 1e100)
    throw std::invalid_argument(std::string(fn) + ": delta is " + exact_text(delta) +
                                ", but must be at most 1e100 (M·delta² must be finite in float64)");
}

void check_variance(const char* fn, double variance) {
  if (!(variance >= 0.0) || !std::isfinite(variance))
    throw std::invalid_argument(std::string(fn) + ": variance (Sigma_t(x,x)) is " + exact_text(variance) +
                                ", but must be a finite number >= 0");
}

void check_probability(const char* fn, double p) {
  if (!(p > 0.0 && p < 1.0))
    throw std::invalid_argument(std::string(fn) + ": probability is " + exact_text(p) +
                                ", but must lie in the open interval (0, 1)");
}

void check_options(const char* fn, const ChiSquareMixtureOptions& options) {
  std::string why;
  if (!options.IsValid(&why)) throw std::invalid_argument(std::string(fn) + ": invalid options: " + why);
}

double log_add(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double hi = std::max(a, b), lo = std::min(a, b);
  return hi + std::log1p(std::exp(lo - hi));
}

// ---- the law of Q = Σ λ_i Z_i² for one member ---------------------------------------------

// Spectrum of S: `positive` holds the kept eigenvalues (ascending), everything else is exactly 0.
struct Spectrum {
  Index outputs = 0;
  VectorXd eigenvalues;  // all, ascending, clipped at 0
  std::vector<double> positive;
  double trace = 0.0;  // Σ positive
  double max() const { return positive.empty() ? 0.0 : positive.back(); }
  double min() const { return positive.empty() ? 0.0 : positive.front(); }
  Index rank() const { return static_cast<Index>(positive.size()); }
  bool isotropic() const { return !positive.empty() && max() - min() <= 8 * kEps * max(); }
};

Spectrum scalar_spectrum(double variance) {
  Spectrum s;
  s.outputs = 1;
  s.eigenvalues = VectorXd::Constant(1, variance);
  if (variance > 0.0) s.positive = {variance};
  s.trace = variance;
  return s;
}

Spectrum covariance_spectrum(const char* fn, const MatrixXd& S, const ChiSquareMixtureOptions& options) {
  if (S.rows() < 1 || S.rows() != S.cols())
    throw std::invalid_argument(std::string(fn) + ": S has shape (" + std::to_string(S.rows()) + ", " +
                                std::to_string(S.cols()) + "), but must be a square k x k matrix with k >= 1");
  for (Index j = 0; j < S.cols(); ++j)
    for (Index i = 0; i < S.rows(); ++i)
      if (!std::isfinite(S(i, j)))
        throw std::invalid_argument(std::string(fn) + ": S(" + std::to_string(i) + ", " + std::to_string(j) +
                                    ") is " + exact_text(S(i, j)) + ", but must be finite");
  const double scale = S.cwiseAbs().maxCoeff();
  const double asym = (S - S.transpose()).cwiseAbs().maxCoeff();
  if (asym > options.symmetry_rtol * scale)
    throw std::invalid_argument(std::string(fn) + ": S is not symmetric: max |S - S^T| is " + exact_text(asym) +
                                ", but must be <= symmetry_rtol * max |S| = " + exact_text(options.symmetry_rtol * scale));
  Spectrum s;
  s.outputs = S.rows();
  if (scale == 0.0) {
    s.eigenvalues = VectorXd::Zero(S.rows());
    return s;
  }
  const MatrixXd sym = 0.5 * (S + S.transpose());
  const detail::SymmetricEigen eig = detail::symmetric_eigen(sym, false);
  if (!eig.converged) throw std::runtime_error(std::string(fn) + ": eigendecomposition of S failed");
  s.eigenvalues = eig.values;
  const double lmax_abs = s.eigenvalues.cwiseAbs().maxCoeff();
  const double lmin = s.eigenvalues.minCoeff();
  if (lmin < -options.psd_rtol * lmax_abs)
    throw std::invalid_argument(std::string(fn) + ": S is not positive semidefinite: its smallest eigenvalue is " +
                                exact_text(lmin) + ", but must be >= -psd_rtol * max |eigenvalue| = " +
                                exact_text(-options.psd_rtol * lmax_abs));
  s.eigenvalues = s.eigenvalues.cwiseMax(0.0);
  const double rtol = options.rank_rtol > 0.0 ? options.rank_rtol : 64.0 * static_cast<double>(S.rows()) * kEps;
  const double threshold = rtol * s.eigenvalues.maxCoeff();
  for (Index i = 0; i < s.eigenvalues.size(); ++i)
    if (s.eigenvalues(i) > threshold) s.positive.push_back(s.eigenvalues(i));
  s.trace = std::accumulate(s.positive.begin(), s.positive.end(), 0.0);
  return s;
}

// log P(χ²_n > y), advanced n → n + 2 by P(χ²_{n+2} > y) = P(χ²_n > y) + e^{−y/2}(y/2)^{n/2}/Γ(n/2+1):
// a sum of positive terms, so it stays accurate where the tail underflows.
class ChiSquareTail {
 public:
  ChiSquareTail(Index n, double y) : n_(n % 2 == 1 ? 1 : 2), y_(y) {
    log_q_ = n_ == 1 ? log_erfc(std::sqrt(0.5 * y)) : -0.5 * y;
    while (n_ < n) advance();
  }
  double log_q() const { return log_q_; }
  void advance() {
    const double h = 0.5 * static_cast<double>(n_);
    log_q_ = log_add(log_q_, -0.5 * y_ + h * std::log(0.5 * y_) - std::lgamma(h + 1.0));
    n_ += 2;
  }

 private:
  Index n_;
  double y_;
  double log_q_;
};

// log of a Chernoff bound on Σ_{i>j} c_i, where c is the law of N = Σ_i N_i, N_i negative binomial
// with generating function ((1−a_i)/(1−a_i z))^{1/2} (Ruben's mixing weights):
//   Σ_{i>j} c_i ≤ G(z)/z^{j+1},   1 ≤ z < 1/a_max, minimized over z.
double log_mixing_tail(const std::vector<double>& a, double a_max, std::int64_t j) {
  if (a_max <= 0.0) return -kInf;  // N ≡ 0
  const double need = static_cast<double>(j + 1);
  double mean = 0.0;
  for (double ai : a) mean += 0.5 * ai / (1.0 - ai);
  if (need <= mean) return 0.0;
  // z = (1 − u)/a_max, u ∈ (0, 1 − a_max]: 1 − a_i z = (1 − a_i/a_max) + (a_i/a_max)u without cancellation.
  auto denominators = [&](double u, double ai) { return (1.0 - ai / a_max) + (ai / a_max) * u; };
  auto slope = [&](double u) {  // z·d/dz log(G(z)/z^{j+1}), decreasing in u
    const double z = (1.0 - u) / a_max;
    double s = 0.0;
    for (double ai : a) s += 0.5 * ai * z / denominators(u, ai);
    return s - need;
  };
  const double u_hi = 1.0 - a_max;
  const double u_lo = std::min(0.5 / (2.0 * need + 1.0), 0.5 * u_hi);
  double u = u_hi;
  if (slope(u_lo) > 0.0) {
    std::uintmax_t iterations = 60;
    const auto r = root_of(slope, u_lo, u_hi, 30, iterations);
    u = 0.5 * (r.first + r.second);
  } else {
    u = u_lo;
  }
  const double z = (1.0 - u) / a_max;
  double log_g = 0.0;
  for (double ai : a) log_g += 0.5 * (std::log1p(-ai) - std::log(denominators(u, ai)));
  return std::min(0.0, log_g - need * std::log(z));
}

void improve_bracket(const std::vector<double>& w, double x, const ChiSquareMixtureOptions& options,
                     ChiSquareMixtureTail& out);

// P(Σ w_i Z_i² > x), w positive ascending.
ChiSquareMixtureTail mixture_tail(const std::vector<double>& w, double x, const ChiSquareMixtureOptions& options) {
  ChiSquareMixtureTail out;
  if (w.empty() || x == kInf) {  // Q ≡ 0 (x > 0 here) or an infinite threshold
    out.probability = 0.0;
    out.log_probability = -kInf;
    return out;
  }
  if (x <= 0.0) {
    out.probability = 1.0;
    out.log_probability = 0.0;
    return out;
  }
  const Index r = static_cast<Index>(w.size());
  if (r == 1) {  // erfc(√(x/2w)): the Gaussian tail itself
    const double z = std::sqrt(0.5 * x / w[0]);
    out.probability = std::erfc(z);
    out.log_probability = log_erfc(z);
    out.terms = 1;
    return out;
  }
  const double beta = w.front();
  const double y = x / beta;
  std::vector<double> a;
  double log_c0 = 0.0, a_max = 0.0;
  for (double wi : w) {
    log_c0 += 0.5 * std::log(beta / wi);
    const double ai = 1.0 - beta / wi;
    if (ai > 0.0) {
      a.push_back(ai);
      a_max = std::max(a_max, ai);
    }
  }
  // Ruben: c_m = (1/2m) Σ_i h_i(m), h_i(m) = Σ_{r<m} a_i^{m−r} c_r, h_i(m+1) = a_i(h_i(m) + c_m).
  // c and h are stored scaled by e^{−log_scale}; the recursion is linear, so rescaling is exact.
  double c = 1.0, log_scale = log_c0;
  std::vector<double> h(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) h[i] = a[i] * c;
  ChiSquareTail chi(r, y);
  const double log_rtol = std::log(options.relative_tolerance);
  double log_sum = -kInf;
  for (std::int64_t j = 0;; ++j) {
    log_sum = log_add(log_sum, log_scale + std::log(c) + chi.log_q());
    out.terms = j + 1;
    if (a_max == 0.0) break;  // equal weights: c_0 = 1 is the whole mixture
    const bool last = out.terms >= options.max_terms;
    if (j % 32 == 31 || last) {
      const double log_tail = log_mixing_tail(a, a_max, j);
      if (log_tail <= log_sum + log_rtol) break;
      if (last) {
        out.status = TailStatus::NotConverged;
        out.error_bound = std::exp(log_tail);
        break;
      }
    }
    const double m = static_cast<double>(j + 1);
    double sum_h = 0.0;
    for (double hi : h) sum_h += hi;
    c = sum_h / (2.0 * m);
    for (std::size_t i = 0; i < a.size(); ++i) h[i] = a[i] * (h[i] + c);
    if (c < 1e-200 || c > 1e200) {
      const double f = 1.0 / c;
      c = 1.0;
      for (double& hi : h) hi *= f;
      log_scale -= std::log(f);
    }
    chi.advance();
  }
  out.log_probability = std::min(0.0, log_sum);
  out.probability = std::exp(out.log_probability);
  if (out.status == TailStatus::NotConverged) improve_bracket(w, x, options, out);
  return out;
}

// x at which the exact tail equals p (log_p = log p).
struct Quantile {
  double x = 0.0;
  TailStatus status = TailStatus::Ok;
};

// The paper's bound (Mills' ratio), for rank r with a union over eigen-directions: with z² = x/tr,
// log[r·√(2/π)·e^{−z²/2}/z].
double log_paper(const Spectrum& s, double x) {
  if (s.positive.empty()) return -kInf;
  const double z2 = x / s.trace;
  return std::log(static_cast<double>(s.rank())) + 0.5 * kLogTwoOverPi - 0.5 * std::log(z2) - 0.5 * z2;
}

// Union over eigen-directions with weights λ_i/tr: P(Σλ_i Z_i² > x) ≤ Σ_i P(λ_i Z_i² > xλ_i/tr).
double log_union(const Spectrum& s, double x) {
  if (s.positive.empty()) return -kInf;
  return std::log(static_cast<double>(s.rank())) + log_erfc(std::sqrt(0.5 * x / s.trace));
}

// Chernoff: log inf_{0≤t<1/2λmax} E[e^{tQ}]e^{−tx} = inf −½Σlog(1−2λ_i t) − tx. Parametrized by
// u = 1 − 2λ_max t so that 1 − 2λ_i t = (1 − ρ_i) + ρ_i u (ρ_i = λ_i/λ_max) keeps its digits.
struct ChernoffPoint {
  double x, log_bound;
};
ChernoffPoint chernoff_at(const Spectrum& s, double u) {
  const double lmax = s.max();
  double x = 0.0, lg = 0.0;
  for (double l : s.positive) {
    const double rho = l / lmax;
    const double d = (1.0 - rho) + rho * u;
    x += l / d;
    lg -= 0.5 * std::log(d);
  }
  return {x, lg - x * (1.0 - u) / (2.0 * lmax)};
}

double log_chernoff(const Spectrum& s, double x) {
  if (s.positive.empty()) return -kInf;
  if (x <= s.trace) return 0.0;
  auto f = [&](double u) { return chernoff_at(s, u).x - x; };  // decreasing in u
  const double u_lo = s.max() / (2.0 * x);
  // x so large that x(u_lo) already reaches it (or round-off at tiny u): the root is at u_lo.
  double u = u_lo;
  if (f(u_lo) > 0.0 && f(1.0) < 0.0) {
    std::uintmax_t iterations = 200;
    const auto r = root_of(f, u_lo, 1.0, 50, iterations);
    u = 0.5 * (r.first + r.second);
  }
  // At the root x(u) = x the Legendre form −½Σlog d − t·x is the bound; use the true x.
  const double lmax = s.max();
  double lg = 0.0;
  for (double l : s.positive) lg -= 0.5 * std::log((1.0 - l / lmax) + (l / lmax) * u);
  return std::min(0.0, lg - x * (1.0 - u) / (2.0 * lmax));
}

// A truncated series (ill-conditioned weights) still brackets the tail; tighten the bracket:
// dropping the weights below a floor ∝ w_max/max_terms can only lower Q, so its (well-conditioned) tail is a
// lower bound too, and the union and Chernoff bounds cap the upper end.
void improve_bracket(const std::vector<double>& w, double x, const ChiSquareMixtureOptions& options,
                     ChiSquareMixtureTail& out) {
  Spectrum s;
  s.positive = w;
  s.trace = std::accumulate(w.begin(), w.end(), 0.0);
  double upper = std::min({out.probability + out.error_bound, std::exp(log_union(s, x)),
                           std::exp(log_chernoff(s, x))});
  // Condition number the series can handle within max_terms (about κ·log(1/(tol·P)) terms).
  const double floor = std::min(0.5, 64.0 / static_cast<double>(options.max_terms)) * w.back();
  const auto first_kept = std::lower_bound(w.begin(), w.end(), floor);
  if (first_kept != w.begin()) {
    const ChiSquareMixtureTail part = mixture_tail(std::vector<double>(first_kept, w.end()), x, options);
    if (part.log_probability > out.log_probability) {
      out.log_probability = part.log_probability;
      out.probability = part.probability;
    }
    // Raising the small weights to the floor can only raise Q: an upper bound.
    std::vector<double> raised = w;
    for (double& wi : raised) wi = std::max(wi, floor);
    const ChiSquareMixtureTail up = mixture_tail(raised, x, options);
    upper = std::min(upper, up.probability * (1.0 + 4.0 * options.relative_tolerance) + up.error_bound);
  }
  out.error_bound = std::max(0.0, upper - out.probability);
}

// ---- inverses: x at which a tail or bound equals p -----------------------------------------

// The paper bound equals p: u + log u = log(2/π) − 2 log(p/r) (a Lambert-W equation), x = tr·u.
double paper_quantile(const Spectrum& s, double p) {
  if (s.positive.empty()) return 0.0;
  const double c = kLogTwoOverPi - 2.0 * (std::log(p) - std::log(static_cast<double>(s.rank())));
  double lo, hi;
  if (c >= 1.0) {
    lo = c - std::log(c);  // g(lo) = log(1 − log c / c) ≤ 0
    hi = c;                // g(hi) = log c ≥ 0
  } else {
    lo = std::exp(c - 1.0);  // g = e^{c−1} − 1 < 0
    hi = std::exp(c);        // g = e^c > 0
  }
  auto g = [c](double u) { return u + std::log(u) - c; };
  std::uintmax_t iterations = 200;
  const auto r = root_of(g, lo, hi, 53, iterations);
  return s.trace * 0.5 * (r.first + r.second);
}

double union_quantile(const Spectrum& s, double p) {
  if (s.positive.empty()) return 0.0;
  const double z = erfc_inverse(p / static_cast<double>(s.rank()));
  return 2.0 * s.trace * z * z;
}

double chernoff_quantile(const Spectrum& s, double p) {
  if (s.positive.empty()) return 0.0;
  const double log_p = std::log(p);
  auto f = [&](double w) { return chernoff_at(s, std::exp(w)).log_bound - log_p; };  // increasing in w
  const double w_lo = -std::log(4.0 * (std::fabs(log_p) + 10.0));
  std::uintmax_t iterations = 200;
  const auto r = root_of(f, w_lo, 0.0, 52, iterations);
  return chernoff_at(s, std::exp(0.5 * (r.first + r.second))).x;
}

double upper_quantile(const Spectrum& s, double p) { return std::min(union_quantile(s, p), chernoff_quantile(s, p)); }

Quantile exact_quantile(const Spectrum& s, double p, const ChiSquareMixtureOptions& options) {
  Quantile q;
  if (s.positive.empty()) return q;
  if (s.rank() == 1) {  // erfc(√(x/2λ)) = p
    const double z = erfc_inverse(p);
    q.x = 2.0 * s.max() * z * z;
    return q;
  }
  if (s.isotropic()) {  // λ·χ²_r: the quantile of the χ² law
    q.x = 2.0 * s.max() * gamma_q_inverse(0.5 * static_cast<double>(s.rank()), p);
    return q;
  }
  const double log_p = std::log(p);
  auto f = [&](double log_x) {
    const ChiSquareMixtureTail t = mixture_tail(s.positive, std::exp(log_x), options);
    if (t.status != TailStatus::Ok) q.status = t.status;
    return t.log_probability - log_p;
  };
  // P(Q > x) ≥ P(λ_max Z² > x) gives the lower end, any valid upper bound the upper end.
  const double z = erfc_inverse(p);
  double lo = std::log(2.0 * s.max() * z * z), hi = std::log(upper_quantile(s, p));
  for (int i = 0; i < 60 && f(lo) < 0.0; ++i) lo -= 0.05;  // round-off at a tiny second eigenvalue
  for (int i = 0; i < 60 && f(hi) > 0.0; ++i) hi += 0.05;
  std::uintmax_t iterations = 200;
  const auto r = root_of(f, lo, hi, 52, iterations);
  q.x = std::exp(0.5 * (r.first + r.second));
  return q;
}

// Smallest integer M ≥ 1 with passes(M), starting from the continuous threshold M*.
MemberCount smallest_members(double m_real, const std::function<bool(std::int64_t)>& passes) {
  MemberCount out;
  out.members_real = m_real;
  if (!(m_real <= kMaxMembers - 64)) {
    out.status = MembersStatus::TooMany;
    return out;
  }
  std::int64_t m = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(m_real)));
  while (m > 1 && passes(m - 1)) --m;
  while (!passes(m)) ++m;
  out.members = m;
  return out;
}

double members_double(std::int64_t members) { return static_cast<double>(members); }

}  // namespace

// ---- public ---------------------------------------------------------------------------------

double log_erfc(double x) {
  if (std::isnan(x)) return x;
  if (x < 25.0) return std::log(std::erfc(x));
  if (x == kInf) return -kInf;
  // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated bottom-up;
  // 60 levels are far more than x ≥ 25 needs for full precision.
  double tail = x;
  for (int n = 60; n >= 1; --n) tail = x + 0.5 * n / tail;
  return -x * x - kLogSqrtPi - std::log(tail);
}

constexpr detail::EnumNames<TailStatus, 2> kTailStatusNames = {{
    {TailStatus::Ok, "ok"},
    {TailStatus::NotConverged, "not_converged"},
}};

const char* to_string(TailStatus value) { return detail::enum_name(kTailStatusNames, value); }

TailStatus parse_tail_status(std::string_view text) { return detail::parse_enum(kTailStatusNames, text, "parse_tail_status", "TailStatus"); }

constexpr detail::EnumNames<MembersStatus, 2> kMembersStatusNames = {{
    {MembersStatus::Ok, "ok"},
    {MembersStatus::TooMany, "too_many"},
}};

const char* to_string(MembersStatus value) { return detail::enum_name(kMembersStatusNames, value); }

MembersStatus parse_members_status(std::string_view text) { return detail::parse_enum(kMembersStatusNames, text, "parse_members_status", "MembersStatus"); }

bool ChiSquareMixtureOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& why) {
    if (error) *error = why;
    return false;
  };
  if (!(relative_tolerance > 0.0 && relative_tolerance < 1.0))
    return fail("relative_tolerance is " + exact_text(relative_tolerance) + ", but must lie in (0, 1)");
  if (max_terms < 1) return fail("max_terms is " + std::to_string(max_terms) + ", but must be >= 1");
  if (!(rank_rtol >= 0.0 && rank_rtol < 1.0)) return fail("rank_rtol is " + exact_text(rank_rtol) + ", but must lie in [0, 1)");
  if (!(psd_rtol >= 0.0 && psd_rtol < 1.0)) return fail("psd_rtol is " + exact_text(psd_rtol) + ", but must lie in [0, 1)");
  if (!(symmetry_rtol >= 0.0 && symmetry_rtol < 1.0))
    return fail("symmetry_rtol is " + exact_text(symmetry_rtol) + ", but must lie in [0, 1)");
  return true;
}

ChiSquareMixtureTail chi_square_mixture_tail(const VectorXd& weights, double x, const ChiSquareMixtureOptions& options) {
  const char* fn = "emergent::chi_square_mixture_tail";
  check_options(fn, options);
  if (std::isnan(x)) throw std::invalid_argument(std::string(fn) + ": x is NaN, but must be a number");
  std::vector<double> w;
  for (Index i = 0; i < weights.size(); ++i) {
    if (!(weights(i) >= 0.0) || !std::isfinite(weights(i)))
      throw std::invalid_argument(std::string(fn) + ": weights(" + std::to_string(i) + ") is " + exact_text(weights(i)) +
                                  ", but must be a finite number >= 0");
    if (weights(i) > 0.0) w.push_back(weights(i));
  }
  std::sort(w.begin(), w.end());
  if (w.empty() && x < 0.0) return {TailStatus::Ok, 1.0, 0.0, 0.0, 0};
  if (!w.empty() && w.back() - w.front() <= 8 * kEps * w.back() && w.size() > 1 && x > 0.0 && x < kInf) {
    ChiSquareMixtureTail t;  // equal weights: the χ²_r tail directly
    ChiSquareTail chi(static_cast<Index>(w.size()), x / w.back());
    t.log_probability = chi.log_q();
    t.probability = std::exp(t.log_probability);
    t.terms = 1;
    return t;
  }
  return mixture_tail(w, x, options);
}

EnsembleDeviation ensemble_deviation(double variance, std::int64_t members, double delta) {
  const char* fn = "emergent::ensemble_deviation";
  check_variance(fn, variance);
  check_members(fn, members);
  check_delta(fn, delta);
  EnsembleDeviation out;
  const double m = members_double(members);
  out.sigma = std::sqrt(variance / m);
  if (variance == 0.0) {
    out.log_exact_probability = out.log_paper_bound = -kInf;
    return out;
  }
  // z = δ/σ without forming σ (which may underflow): z² = M·δ²/V.
  const double z = delta * std::sqrt(m / variance);
  out.exact_probability = std::erfc(z / std::sqrt(2.0));
  out.log_exact_probability = log_erfc(z / std::sqrt(2.0));
  out.log_paper_bound = 0.5 * kLogTwoOverPi - std::log(z) - 0.5 * z * z;
  out.paper_bound = std::exp(out.log_paper_bound);
  return out;
}

EnsembleDelta ensemble_delta(double variance, std::int64_t members, double probability) {
  const char* fn = "emergent::ensemble_delta";
  check_variance(fn, variance);
  check_members(fn, members);
  check_probability(fn, probability);
  const Spectrum s = scalar_spectrum(variance);
  const double m = members_double(members);
  EnsembleDelta out;
  if (variance == 0.0) return out;
  out.exact_delta = std::sqrt(variance / m) * std::sqrt(2.0) * erfc_inverse(probability);
  out.paper_delta = std::sqrt(paper_quantile(s, probability) / m);
  return out;
}

MinMembers ensemble_min_members(double variance, double delta, double probability) {
  const char* fn = "emergent::ensemble_min_members";
  check_variance(fn, variance);
  check_delta(fn, delta);
  check_probability(fn, probability);
  const Spectrum s = scalar_spectrum(variance);
  const double d2 = delta * delta;
  MinMembers out;
  out.exact = smallest_members(exact_quantile(s, probability, {}).x / d2, [&](std::int64_t m) {
    return ensemble_deviation(variance, m, delta).exact_probability <= probability;
  });
  out.paper = smallest_members(paper_quantile(s, probability) / d2, [&](std::int64_t m) {
    return ensemble_deviation(variance, m, delta).paper_bound <= probability;
  });
  out.upper = out.paper;
  return out;
}

namespace {

ViolationProbability violation_from_spectrum(const Spectrum& s, std::int64_t members, double delta,
                                             const ChiSquareMixtureOptions& options) {
  ViolationProbability out;
  out.outputs = s.outputs;
  out.rank = s.rank();
  out.eigenvalues = s.eigenvalues;
  const double x = members_double(members) * delta * delta;
  const ChiSquareMixtureTail t = mixture_tail(s.positive, x, options);
  out.status = t.status;
  out.exact_probability = t.probability;
  out.log_exact_probability = t.log_probability;
  out.error_bound = t.error_bound;
  out.terms = t.terms;
  out.paper_bound = std::exp(log_paper(s, x));
  out.union_bound = std::min(1.0, std::exp(log_union(s, x)));
  out.chernoff_bound = std::exp(log_chernoff(s, x));
  out.upper_bound = std::min({1.0, out.union_bound, out.chernoff_bound});
  return out;
}

}  // namespace

ViolationProbability violation_probability(const MatrixXd& S, std::int64_t members, double delta,
                                           const ChiSquareMixtureOptions& options) {
  const char* fn = "emergent::violation_probability";
  check_options(fn, options);
  check_members(fn, members);
  check_delta(fn, delta);
  return violation_from_spectrum(covariance_spectrum(fn, S, options), members, delta, options);
}

ViolationDelta violation_delta(const MatrixXd& S, std::int64_t members, double probability,
                               const ChiSquareMixtureOptions& options) {
  const char* fn = "emergent::violation_delta";
  check_options(fn, options);
  check_members(fn, members);
  check_probability(fn, probability);
  const Spectrum s = covariance_spectrum(fn, S, options);
  const double m = members_double(members);
  ViolationDelta out;
  const Quantile q = exact_quantile(s, probability, options);
  out.status = q.status;
  out.exact_delta = std::sqrt(q.x / m);
  out.paper_delta = std::sqrt(paper_quantile(s, probability) / m);
  out.upper_delta = std::sqrt(upper_quantile(s, probability) / m);
  return out;
}

MinMembers violation_min_members(const MatrixXd& S, double delta, double probability,
                                 const ChiSquareMixtureOptions& options) {
  const char* fn = "emergent::violation_min_members";
  check_options(fn, options);
  check_delta(fn, delta);
  check_probability(fn, probability);
  const Spectrum s = covariance_spectrum(fn, S, options);
  const double d2 = delta * delta;
  MinMembers out;
  out.exact = smallest_members(exact_quantile(s, probability, options).x / d2, [&](std::int64_t m) {
    return violation_from_spectrum(s, m, delta, options).exact_probability <= probability;
  });
  out.paper = smallest_members(paper_quantile(s, probability) / d2, [&](std::int64_t m) {
    return violation_from_spectrum(s, m, delta, options).paper_bound <= probability;
  });
  out.upper = smallest_members(upper_quantile(s, probability) / d2, [&](std::int64_t m) {
    return violation_from_spectrum(s, m, delta, options).upper_bound <= probability;
  });
  return out;
}

}  // namespace emergent
