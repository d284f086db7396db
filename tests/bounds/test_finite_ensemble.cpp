// Finite-ensemble deviation probabilities (bounds.hpp): the exact Gaussian law against Monte
// Carlo ensembles, the paper's Mills-ratio bound as a valid and asymptotically tight bound, the
// inverse calculators, the generalized-χ² tail against independent exact forms (χ² law, rank-1
// erfc, a polar integral for k = 2, a sandwich between χ² tails) and the argument checks.
#include <doctest/doctest.h>

#include "support/enum_names.hpp"

#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/special_functions/gamma.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "emergent/bounds/finite_ensemble.hpp"
#include "emergent/core/random.hpp"

using namespace emergent;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

constexpr double kPi = 3.14159265358979323846;

// |freq − p| within z binomial standard errors of n draws.
bool within_binomial(double freq, double p, std::int64_t n, double z = 4.0) {
  return std::fabs(freq - p) <= z * std::sqrt(p * (1.0 - p) / static_cast<double>(n));
}

// The message of the std::invalid_argument thrown by f ("" if none).
std::string invalid_argument_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// An SPD 3×3 covariance with distinct eigenvalues (a fixed, well-spread example).
MatrixXd example_covariance() {
  MatrixXd a(3, 3);
  a << 1.0, 0.3, -0.2,  //
      0.1, 0.7, 0.4,    //
      -0.5, 0.2, 0.6;
  return a * a.transpose();
}

// P(λ1 Z1² + λ2 Z2² > x) = (1/2π)∫ exp(−x / (2(λ1cos²φ + λ2sin²φ))) dφ (polar coordinates, R² ~ χ²₂):
// a smooth periodic integrand, so the trapezoidal rule converges geometrically. In log space.
double log_tail_two(double l1, double l2, double x, int n = 20000) {
  std::vector<double> logs(n);
  double top = -INFINITY;
  for (int i = 0; i < n; ++i) {
    const double phi = 2.0 * kPi * (i + 0.5) / n;
    const double c = std::cos(phi), s = std::sin(phi);
    logs[i] = -x / (2.0 * (l1 * c * c + l2 * s * s));
    top = std::max(top, logs[i]);
  }
  double sum = 0.0;
  for (double l : logs) sum += std::exp(l - top);
  return top + std::log(sum / n);
}

}  // namespace

TEST_CASE("log_erfc continues log(erfc) past the underflow and has the Mills asymptotics") {
  for (double x = 25.0; x <= 26.5; x += 0.125) CHECK(log_erfc(x) == doctest::Approx(std::log(std::erfc(x))).epsilon(1e-13));
  for (double x = 0.0; x < 25.0; x += 1.7) CHECK(log_erfc(x) == doctest::Approx(std::log(std::erfc(x))).epsilon(1e-15));
  // erfc(x)·√π·x·e^{x²} = 1 − 1/(2x²) + 3/(4x⁴) − ...
  for (double x : {40.0, 100.0, 1e3, 1e5}) {
    const double a = 1.0 / (2.0 * x * x);
    const double r = log_erfc(x) + x * x + std::log(std::sqrt(kPi) * x);
    CHECK(std::fabs(r - (-a + 3.0 * a * a / 1.0 - a * a / 2.0)) <= 20.0 * a * a * a + 1e-15 * x * x);
  }
  CHECK(log_erfc(INFINITY) == -INFINITY);
}

TEST_CASE("exact ensemble deviation matches Monte Carlo ensembles and lies below the paper's bound") {
  // Members f_i(x) ~ N(μ, V) i.i.d. (the NTK-limit law at fixed t); f̂ = mean of M members, f̄ = μ.
  const double mu = 0.7, variance = 2.3;
  const std::int64_t reps = 100000;
  std::uint64_t stream = 0;
  for (std::int64_t members : {1, 5, 20}) {
    for (double z : {1.0, 1.5, 2.0}) {  // δ/σ: P ≈ 0.32, 0.13, 0.046
      const double sigma = std::sqrt(variance / static_cast<double>(members));
      const double delta = z * sigma;
      const EnsembleDeviation d = ensemble_deviation(variance, members, delta);
      CHECK(d.sigma == doctest::Approx(sigma).epsilon(1e-15));
      const NormalStream rng(20240305, stream++);
      std::int64_t exceed = 0;
      for (std::int64_t r = 0; r < reps; ++r) {
        double mean = 0.0;
        for (std::int64_t m = 0; m < members; ++m)
          mean += mu + std::sqrt(variance) * rng.normal(static_cast<std::uint64_t>(r * members + m));
        mean /= static_cast<double>(members);
        if (std::fabs(mean - mu) > delta) ++exceed;
      }
      const double freq = static_cast<double>(exceed) / static_cast<double>(reps);
      INFO("M = " << members << ", z = " << z << ", freq = " << freq << ", exact = " << d.exact_probability);
      CHECK(within_binomial(freq, d.exact_probability, reps));
      // The paper's bound is above the exact value by a margin larger than the sampling error.
      CHECK(d.paper_bound > d.exact_probability + 4.0 * std::sqrt(d.exact_probability / reps));
      CHECK(freq < d.paper_bound);
    }
  }
}

TEST_CASE("the paper's bound is valid everywhere and tight as δ/σ → ∞") {
  for (double variance : {1e-6, 0.37, 5.0}) {
    for (std::int64_t members : {1, 7, 1000}) {
      const double sigma = std::sqrt(variance / static_cast<double>(members));
      double previous_gap = INFINITY;
      for (double z = 1e-3; z <= 1e3; z *= 1.25) {
        const EnsembleDeviation d = ensemble_deviation(variance, members, z * sigma);
        CHECK(d.log_paper_bound >= d.log_exact_probability);
        CHECK(d.exact_probability <= 1.0);
        const double gap = d.log_paper_bound - d.log_exact_probability;  // log(paper/exact) ≥ 0
        if (z > 1.0) {
          CHECK(gap < previous_gap);  // decreasing towards 0
          if (z >= 10.0) {
            // paper/exact = 1/(1 − a + 3a² − 15a³ ...), a = σ²/δ²: log ratio = a − 5a²/2 + (37/3)a³ + O(a⁴).
            const double a = 1.0 / (z * z);
            CHECK(std::fabs(gap - (a - 2.5 * a * a)) <= 15.0 * a * a * a + 1e-15 * z * z);  // + round-off of z²/2
          }
        }
        previous_gap = gap;
      }
      CHECK(previous_gap < 1e-5);  // ratio → 1
    }
  }
}

TEST_CASE("probability decreases in δ and in M") {
  double last = 2.0;
  for (double delta = 0.01; delta < 3.0; delta *= 1.3) {
    const double p = ensemble_deviation(1.0, 4, delta).exact_probability;
    CHECK(p < last);
    last = p;
  }
  last = 2.0;
  for (std::int64_t m = 1; m < 200; m += 7) {
    const double p = ensemble_deviation(1.0, m, 0.3).exact_probability;
    CHECK(p < last);
    last = p;
  }
}

TEST_CASE("inverse calculators round-trip to 1e-10") {
  for (double variance : {1e-4, 1.0, 37.0}) {
    for (std::int64_t members : {1, 20, 100000}) {
      for (double p : {0.9, 0.5, 1e-3, 1e-12, 1e-100, 1e-300}) {
        const EnsembleDelta e = ensemble_delta(variance, members, p);
        CHECK(e.exact_delta > 0.0);
        CHECK(e.paper_delta >= e.exact_delta);  // the bound asks for a larger δ
        const EnsembleDeviation at_exact = ensemble_deviation(variance, members, e.exact_delta);
        const EnsembleDeviation at_paper = ensemble_deviation(variance, members, e.paper_delta);
        INFO("V = " << variance << ", M = " << members << ", p = " << p);
        CHECK(std::fabs(at_exact.log_exact_probability - std::log(p)) <= 1e-10);
        CHECK(std::fabs(at_paper.log_paper_bound - std::log(p)) <= 1e-10);
        // And back: δ → p → δ.
        const double delta = 0.7 * e.exact_delta;
        const EnsembleDeviation d = ensemble_deviation(variance, members, delta);
        if (d.exact_probability > 0.0 && d.exact_probability < 1.0)
          CHECK(ensemble_delta(variance, members, d.exact_probability).exact_delta == doctest::Approx(delta).epsilon(1e-10));
        if (d.paper_bound > 0.0 && d.paper_bound < 1.0)
          CHECK(ensemble_delta(variance, members, d.paper_bound).paper_delta == doctest::Approx(delta).epsilon(1e-10));
      }
    }
  }
}

TEST_CASE("the smallest M is minimal: M passes, M − 1 fails") {
  int checked = 0;
  for (double variance : {0.01, 1.0, 250.0}) {
    for (double delta : {0.05, 0.5, 3.0}) {
      for (double p : {0.2, 1e-3, 1e-9}) {
        const MinMembers mm = ensemble_min_members(variance, delta, p);
        REQUIRE(mm.exact.status == MembersStatus::Ok);
        REQUIRE(mm.paper.status == MembersStatus::Ok);
        CHECK(ensemble_deviation(variance, mm.exact.members, delta).exact_probability <= p);
        if (mm.exact.members > 1) {
          CHECK(ensemble_deviation(variance, mm.exact.members - 1, delta).exact_probability > p);
          ++checked;
        }
        CHECK(ensemble_deviation(variance, mm.paper.members, delta).paper_bound <= p);
        if (mm.paper.members > 1) CHECK(ensemble_deviation(variance, mm.paper.members - 1, delta).paper_bound > p);
        CHECK(mm.paper.members >= mm.exact.members);
        CHECK(mm.upper.members == mm.paper.members);
        CHECK(static_cast<double>(mm.exact.members) >= mm.exact.members_real - 1e-6 * mm.exact.members_real);
        CHECK(static_cast<double>(mm.exact.members) < mm.exact.members_real + 1.0 + 1e-6 * mm.exact.members_real);
      }
    }
  }
  CHECK(checked > 10);
  // A threshold beyond 2⁵³ is reported, not wrapped.
  const MinMembers huge = ensemble_min_members(1.0, 1e-10, 1e-3);
  CHECK(huge.exact.status == MembersStatus::TooMany);
  CHECK(huge.exact.members == 0);
  CHECK(huge.exact.members_real > 1e20);
}

TEST_CASE("zero variance: no deviation") {
  const EnsembleDeviation d = ensemble_deviation(0.0, 3, 0.1);
  CHECK(d.exact_probability == 0.0);
  CHECK(d.paper_bound == 0.0);
  CHECK(ensemble_delta(0.0, 3, 0.01).exact_delta == 0.0);
  CHECK(ensemble_min_members(0.0, 0.1, 0.01).exact.members == 1);
}

TEST_CASE("generalized chi-square: isotropic S is the chi-square law") {
  for (int k : {2, 3, 5, 10}) {
    const boost::math::chi_squared chi(k);
    const double s = 0.8;
    for (std::int64_t members : {1, 10}) {
      for (double delta : {0.1, 0.5, 1.0, 2.0, 5.0}) {
        const ViolationProbability v = violation_probability(s * MatrixXd::Identity(k, k), members, delta);
        const double x = static_cast<double>(members) * delta * delta / s;
        const double expected = boost::math::cdf(boost::math::complement(chi, x));
        CHECK(v.status == TailStatus::Ok);
        CHECK(v.rank == k);
        if (expected > 1e-300)
          CHECK(v.exact_probability == doctest::Approx(expected).epsilon(1e-12));
        else  // far tail: the regularized incomplete gamma in log form
          CHECK(v.log_exact_probability == doctest::Approx(std::log(boost::math::gamma_q(0.5 * k, 0.5 * x))).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("generalized chi-square: a rank-1 S reduces to the scalar erfc form") {
  VectorXd u(4);
  u << 0.3, -1.2, 0.5, 0.9;
  const double s = 0.6;
  const MatrixXd S = s * u * u.transpose();
  for (double delta : {0.05, 0.5, 3.0, 30.0}) {
    const ViolationProbability v = violation_probability(S, 9, delta);
    const EnsembleDeviation d = ensemble_deviation(s * u.squaredNorm(), 9, delta);
    CHECK(v.rank == 1);
    CHECK(v.log_exact_probability == doctest::Approx(d.log_exact_probability).epsilon(1e-12));
    CHECK(v.log_exact_probability >= std::log(v.upper_bound) - 1e-12 * std::fabs(v.log_exact_probability) - 1e-300);
    if (d.paper_bound > 0) CHECK(v.paper_bound == doctest::Approx(d.paper_bound).epsilon(1e-12));
  }
  // A 1×1 S is the scalar case exactly.
  const ViolationProbability one = violation_probability(MatrixXd::Constant(1, 1, 2.0), 5, 0.7);
  const EnsembleDeviation d = ensemble_deviation(2.0, 5, 0.7);
  CHECK(one.exact_probability == doctest::Approx(d.exact_probability).epsilon(1e-15));
  CHECK(one.paper_bound == doctest::Approx(d.paper_bound).epsilon(1e-13));
}

TEST_CASE("generalized chi-square (Ruben's series) against an independent polar integral for k = 2") {
  for (double ratio : {0.9, 0.3, 0.01}) {
    const double l1 = 1.7, l2 = 1.7 * ratio;
    for (double x : {0.05, 1.0, 10.0, 100.0, 1000.0}) {
      VectorXd w(2);
      w << l1, l2;
      const ChiSquareMixtureTail t = chi_square_mixture_tail(w, x);
      INFO("ratio = " << ratio << ", x = " << x << ", terms = " << t.terms);
      CHECK(t.status == TailStatus::Ok);
      CHECK(t.log_probability == doctest::Approx(log_tail_two(l1, l2, x)).epsilon(1e-11));
    }
  }
}

TEST_CASE("generalized chi-square lies between the chi-square tails of its extreme weights") {
  // Σ w_i Z_i² is between w_min·χ²_r and w_max·χ²_r, so P(χ²_r > x/w_min) ≤ P ≤ P(χ²_r > x/w_max).
  const std::vector<std::vector<double>> cases = {{1.0, 1.0, 1.0 + 1e-7}, {0.2, 0.5, 1.0, 3.0}, {1.0, 2.0, 2.0, 2.0, 2.0}};
  for (const auto& c : cases) {
    const VectorXd w = Eigen::Map<const VectorXd>(c.data(), static_cast<Eigen::Index>(c.size()));
    const double r = static_cast<double>(c.size());
    for (double x : {0.3, 3.0, 30.0, 300.0, 1000.0}) {  // gamma_q stays above its underflow
      const ChiSquareMixtureTail t = chi_square_mixture_tail(w, x);
      const double lo = std::log(boost::math::gamma_q(0.5 * r, 0.5 * x / w.minCoeff()));
      const double hi = std::log(boost::math::gamma_q(0.5 * r, 0.5 * x / w.maxCoeff()));
      CHECK(t.log_probability >= lo - 1e-12 * std::fabs(lo));
      CHECK(t.log_probability <= hi + 1e-12 * std::fabs(hi));
      if (c[2] - c[0] < 1e-6)  // nearly isotropic: squeezed to the χ² value
        CHECK(t.log_probability == doctest::Approx(hi).epsilon(1e-6));
    }
  }
}

TEST_CASE("generalized chi-square: truncated series brackets the converged value") {
  VectorXd w(3);
  w << 0.02, 0.5, 1.0;
  const ChiSquareMixtureTail full = chi_square_mixture_tail(w, 4.0);
  REQUIRE(full.status == TailStatus::Ok);
  CHECK(full.terms > 40);
  ChiSquareMixtureOptions options;
  options.max_terms = 20;
  const ChiSquareMixtureTail cut = chi_square_mixture_tail(w, 4.0, options);
  CHECK(cut.status == TailStatus::NotConverged);
  CHECK(cut.probability <= full.probability);
  CHECK(full.probability <= cut.probability + cut.error_bound);
  CHECK(cut.error_bound > 0.0);
}

TEST_CASE("multi-output violation: exact against Monte Carlo ensembles, bounds above it") {
  const MatrixXd S = example_covariance();
  const Eigen::LLT<MatrixXd> llt(S);
  REQUIRE(llt.info() == Eigen::Success);
  const MatrixXd L = llt.matrixL();
  const std::int64_t members = 10, reps = 40000;
  std::uint64_t stream = 100;
  for (double delta : {0.25, 0.45, 0.7}) {
    const ViolationProbability v = violation_probability(S, members, delta);
    REQUIRE(v.status == TailStatus::Ok);
    CHECK(v.rank == 3);
    const NormalStream rng(7, stream++);
    std::int64_t exceed = 0;
    std::uint64_t draw = 0;
    for (std::int64_t r = 0; r < reps; ++r) {
      Eigen::Vector3d mean = Eigen::Vector3d::Zero();
      for (std::int64_t m = 0; m < members; ++m) {
        Eigen::Vector3d z;
        for (int i = 0; i < 3; ++i) z(i) = rng.normal(draw++);
        mean += L * z;  // one member's violation ~ N(0, S)
      }
      mean /= static_cast<double>(members);
      if (mean.norm() > delta) ++exceed;
    }
    const double freq = static_cast<double>(exceed) / static_cast<double>(reps);
    INFO("delta = " << delta << ", freq = " << freq << ", exact = " << v.exact_probability);
    CHECK(within_binomial(freq, v.exact_probability, reps));
    CHECK(v.exact_probability <= v.union_bound);
    CHECK(v.exact_probability <= v.chernoff_bound);
    CHECK(v.exact_probability <= v.paper_bound);
    CHECK(v.upper_bound <= std::min(v.union_bound, v.chernoff_bound));
    CHECK(freq <= v.upper_bound + 4.0 * std::sqrt(v.upper_bound / reps));
  }
}

TEST_CASE("multi-output bounds are valid from the bulk to the far tail") {
  const MatrixXd S = example_covariance();
  for (double delta = 0.02; delta < 3.0; delta *= 1.2) {
    const ViolationProbability v = violation_probability(S, 4, delta);
    if (v.exact_probability == 0.0) break;
    CHECK(v.exact_probability <= v.union_bound * (1 + 1e-12));
    CHECK(v.exact_probability <= v.chernoff_bound * (1 + 1e-12));
    CHECK(v.exact_probability <= v.paper_bound * (1 + 1e-12));
    CHECK(v.exact_probability <= 1.0);
  }
}

TEST_CASE("multi-output inverse calculators round-trip and the smallest M is minimal") {
  const MatrixXd S = example_covariance();
  for (std::int64_t members : {1, 30}) {
    for (double p : {0.5, 1e-2, 1e-8, 1e-60}) {
      const ViolationDelta d = violation_delta(S, members, p);
      CHECK(d.status == TailStatus::Ok);
      INFO("M = " << members << ", p = " << p);
      CHECK(std::fabs(violation_probability(S, members, d.exact_delta).log_exact_probability - std::log(p)) <= 1e-10);
      CHECK(std::fabs(std::log(violation_probability(S, members, d.paper_delta).paper_bound) - std::log(p)) <= 1e-10);
      CHECK(std::fabs(std::log(violation_probability(S, members, d.upper_delta).upper_bound) - std::log(p)) <= 1e-10);
      CHECK(d.exact_delta <= d.upper_delta);
      CHECK(d.exact_delta <= d.paper_delta);
    }
  }
  for (double delta : {0.1, 0.4}) {
    for (double p : {0.1, 1e-4}) {
      const MinMembers mm = violation_min_members(S, delta, p);
      const auto prob = [&](std::int64_t m) { return violation_probability(S, m, delta); };
      CHECK(prob(mm.exact.members).exact_probability <= p);
      if (mm.exact.members > 1) CHECK(prob(mm.exact.members - 1).exact_probability > p);
      CHECK(prob(mm.paper.members).paper_bound <= p);
      if (mm.paper.members > 1) CHECK(prob(mm.paper.members - 1).paper_bound > p);
      CHECK(prob(mm.upper.members).upper_bound <= p);
      if (mm.upper.members > 1) CHECK(prob(mm.upper.members - 1).upper_bound > p);
      CHECK(mm.exact.members <= mm.upper.members);
      CHECK(mm.upper.members <= mm.paper.members);
    }
  }
}

TEST_CASE("round-off asymmetry and round-off negative eigenvalues are accepted; singular S is fine") {
  MatrixXd S = example_covariance();
  S(0, 1) += 1e-14;
  CHECK_NOTHROW(violation_probability(S, 3, 0.5));
  VectorXd u(2);
  u << 1.0, 1.0;
  MatrixXd rank1 = u * u.transpose();
  rank1(0, 0) -= 1e-15;  // smallest eigenvalue ≈ −5e-16
  const ViolationProbability v = violation_probability(rank1, 3, 0.5);
  CHECK(v.rank == 1);
  CHECK(v.eigenvalues.minCoeff() >= 0.0);
  const ViolationProbability zero = violation_probability(MatrixXd::Zero(3, 3), 3, 0.5);
  CHECK(zero.rank == 0);
  CHECK(zero.exact_probability == 0.0);
  CHECK(violation_min_members(MatrixXd::Zero(2, 2), 0.5, 0.1).exact.members == 1);
}

TEST_CASE("bad arguments throw std::invalid_argument naming the argument and value") {
  const MatrixXd S = example_covariance();
  struct Case {
    std::function<void()> call;
    std::vector<std::string> words;
  };
  MatrixXd asym = S;
  asym(0, 2) += 0.1;
  MatrixXd indefinite = MatrixXd::Identity(2, 2);
  indefinite(1, 1) = -0.5;
  MatrixXd nan_entry = S;
  nan_entry(1, 1) = NAN;
  ChiSquareMixtureOptions bad_options;
  bad_options.relative_tolerance = 0.0;
  VectorXd bad_weights(2);
  bad_weights << 1.0, -2.0;
  const std::vector<Case> cases = {
      {[] { ensemble_deviation(1.0, 0, 0.1); }, {"members", "0", ">= 1"}},
      {[] { ensemble_deviation(1.0, -3, 0.1); }, {"members", "-3"}},
      {[] { ensemble_deviation(1.0, 5, 0.0); }, {"delta", "0", "> 0"}},
      {[] { ensemble_deviation(1.0, 5, -2.0); }, {"delta", "-2"}},
      {[] { ensemble_deviation(1.0, 5, NAN); }, {"delta", "nan"}},
      {[] { ensemble_deviation(1.0, 5, INFINITY); }, {"delta", "inf"}},
      {[] { ensemble_deviation(-1.0, 5, 0.1); }, {"variance", "-1", ">= 0"}},
      {[] { ensemble_deviation(NAN, 5, 0.1); }, {"variance", "nan"}},
      {[] { ensemble_delta(1.0, 5, 0.0); }, {"probability", "0", "(0, 1)"}},
      {[] { ensemble_delta(1.0, 5, 1.0); }, {"probability", "1", "(0, 1)"}},
      {[] { ensemble_delta(1.0, 5, 1.5); }, {"probability", "1.5"}},
      {[] { ensemble_delta(1.0, 0, 0.5); }, {"members", "0"}},
      {[] { ensemble_delta(-0.5, 1, 0.5); }, {"variance", "-0.5"}},
      {[] { ensemble_min_members(1.0, 0.1, -0.1); }, {"probability", "-0.1"}},
      {[] { ensemble_min_members(1.0, 0.0, 0.1); }, {"delta", "0"}},
      {[] { ensemble_min_members(-1.0, 0.1, 0.1); }, {"variance", "-1"}},
      {[&] { violation_probability(asym, 5, 0.1); }, {"S", "not symmetric"}},
      {[&] { violation_probability(indefinite, 5, 0.1); }, {"S", "positive semidefinite", "-0.5"}},
      {[&] { violation_probability(nan_entry, 5, 0.1); }, {"S(1, 1)", "nan", "finite"}},
      {[&] { violation_probability(MatrixXd::Zero(2, 3), 5, 0.1); }, {"S", "(2, 3)", "square"}},
      {[&] { violation_probability(S, 0, 0.1); }, {"members", "0"}},
      {[&] { violation_probability(S, 2, -0.1); }, {"delta", "-0.1"}},
      {[&] { violation_delta(S, 2, 2.0); }, {"probability", "2"}},
      {[&] { violation_min_members(S, 0.1, 0.0); }, {"probability", "0"}},
      {[&] { violation_min_members(indefinite, 0.1, 0.1); }, {"S", "positive semidefinite"}},
      {[&] { violation_probability(S, 2, 0.1, bad_options); }, {"relative_tolerance", "0"}},
      {[&] { chi_square_mixture_tail(bad_weights, 1.0); }, {"weights(1)", "-2", ">= 0"}},
  };
  for (const Case& c : cases) {
    const std::string message = invalid_argument_message(c.call);
    INFO("message: " << message);
    CHECK(!message.empty());
    for (const std::string& w : c.words) CHECK(message.find(w) != std::string::npos);
  }
  std::string why;
  CHECK_FALSE(bad_options.IsValid(&why));
  CHECK(why.find("relative_tolerance") != std::string::npos);
  CHECK(ChiSquareMixtureOptions{}.IsValid(&why));
}

TEST_CASE("ill-conditioned weights: an unconverged series still brackets the exact tail tightly") {
  for (double x : {0.5, 3.0, 12.0}) {
    VectorXd w(2);
    w << 1.0, 1e-7;  // Ruben would need ~1e7·log(1/tol) terms
    ChiSquareMixtureOptions options;
    options.max_terms = 100000;
    const ChiSquareMixtureTail t = chi_square_mixture_tail(w, x, options);
    const double exact = std::exp(log_tail_two(1.0, 1e-7, x, 200000));
    INFO("x = " << x << ", lower = " << t.probability << ", error_bound = " << t.error_bound << ", polar = " << exact);
    CHECK(t.status == TailStatus::NotConverged);
    CHECK(t.probability <= exact * (1 + 1e-9));
    CHECK(exact <= (t.probability + t.error_bound) * (1 + 1e-9));
    CHECK(t.error_bound <= 0.05 * t.probability);  // far tighter than the union/Chernoff bounds
  }
}

TEST_CASE("TailStatus: to_string and parse_tail_status are inverse, snake_case, and reject unknown names") {
  using E = emergent::TailStatus;
  const std::vector<E> all = {E::Ok, E::NotConverged};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_tail_status(s); });
}

TEST_CASE("MembersStatus: to_string and parse_members_status are inverse, snake_case, and reject unknown names") {
  using E = emergent::MembersStatus;
  const std::vector<E> all = {E::Ok, E::TooMany};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_members_status(s); });
}
