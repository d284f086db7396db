// The counter-based normal stream (core/random.hpp, docs/conventions.md §4): the lane-wise
// logarithm and cos/sin(2πu) against 80-bit long double references (≤ 2 ulp), the draws against
// the standard normal distribution (moments within their standard errors, Kolmogorov–Smirnov),
// the same for the libm Box–Muller formula the stream used before, and the two within the
// rounding of the old formula's angle.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "detail/gaussian_lanes.hpp"
#include "emergent/core/random.hpp"

using emergent::NormalStream;
using emergent::detail::Lanes;

namespace {

// |computed − exact| in units of the last place of the double nearest to `exact`.
double ulps(double computed, long double exact) {
  const double e = static_cast<double>(exact);
  const double ulp = std::nextafter(std::fabs(e), std::numeric_limits<double>::infinity()) - std::fabs(e);
  return static_cast<double>(std::fabs(static_cast<long double>(computed) - exact) / ulp);
}

// Arguments: uniforms of a stream plus the edges (smallest and largest uniform, powers of two,
// both sides of the √2 split of the logarithm and of every quadrant boundary of the angle).
std::vector<double> arguments() {
  std::vector<double> u;
  const NormalStream s(2024, 7);
  for (std::uint64_t i = 0; i < (1u << 17); ++i) u.push_back(s.uniform(i));
  for (int k = 1; k <= 54; ++k) u.push_back(std::ldexp(1.0, -k));
  u.push_back(0x1.0p-54);
  u.push_back(1.0 - 0x1.0p-54);
  u.push_back(1.0 - 0x1.0p-53);
  for (double c : {0.7071067811865476, 0.25, 0.5, 0.75, 0.125, 0.375, 0.625, 0.875}) {
    double x = c;
    for (int k = 0; k < 4; ++k) x = std::nextafter(x, 0.0);
    for (int k = 0; k < 9; ++k, x = std::nextafter(x, 1.0)) u.push_back(x);
  }
  return u;
}

// Φ(x), the standard normal distribution function.
double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

struct Moments {
  double mean, variance, skew, excess;  // sample mean, E[z²], E[z³], E[z⁴] − 3
};
Moments moments(const std::vector<double>& z) {
  long double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
  for (double x : z) {
    const long double y = x;
    m1 += y;
    m2 += y * y;
    m3 += y * y * y;
    m4 += y * y * y * y;
  }
  const long double n = static_cast<long double>(z.size());
  return {static_cast<double>(m1 / n), static_cast<double>(m2 / n), static_cast<double>(m3 / n),
          static_cast<double>(m4 / n - 3)};
}

// Kolmogorov–Smirnov distance of the sample from Φ.
double ks_distance(std::vector<double> z) {
  std::sort(z.begin(), z.end());
  const double n = static_cast<double>(z.size());
  double d = 0;
  for (std::size_t i = 0; i < z.size(); ++i) {
    const double f = normal_cdf(z[i]);
    d = std::max({d, f - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - f});
  }
  return d;
}

// The stream's formula before the lane-wise functions: libm's log, cos and sin.
double libm_normal(const NormalStream& s, std::uint64_t i) {
  const std::uint64_t pair = i >> 1;
  const double r = std::sqrt(-2.0 * std::log(s.uniform(2 * pair)));
  const double angle = 6.283185307179586476925 * s.uniform(2 * pair + 1);
  return (i & 1) ? r * std::sin(angle) : r * std::cos(angle);
}

// Draws of a standard normal: mean 0, E z² = 1, E z³ = 0, E z⁴ = 3 within 5 standard errors
// (Var z = 1, Var z² = 2, Var z³ = 15, Var z⁴ = 96), and the KS distance below its 0.1 % critical
// value 1.95/√n.
void check_standard_normal(const std::vector<double>& z) {
  const double n = static_cast<double>(z.size());
  const Moments m = moments(z);
  CHECK(std::fabs(m.mean) <= 5 * std::sqrt(1 / n));
  CHECK(std::fabs(m.variance - 1) <= 5 * std::sqrt(2 / n));
  CHECK(std::fabs(m.skew) <= 5 * std::sqrt(15 / n));
  CHECK(std::fabs(m.excess) <= 5 * std::sqrt(96 / n));
  CHECK(ks_distance(z) <= 1.95 / std::sqrt(n));
}

}  // namespace

TEST_CASE("log_lanes is within 2 ulp of logl on (0, 1)") {
  const std::vector<double> u = arguments();
  double worst = 0;
  for (std::size_t i = 0; i + 8 <= u.size(); i += 8) {
    const Lanes x = emergent::detail::load_lanes(u.data() + i);
    const Lanes y = emergent::detail::log_lanes(x);
    for (int j = 0; j < 8; ++j) worst = std::max(worst, ulps(y[j], std::log(static_cast<long double>(x[j]))));
  }
  MESSAGE("log_lanes: worst error " << worst << " ulp over " << u.size() << " arguments");
  CHECK(worst <= 2.0);
  const Lanes at_edges = emergent::detail::log_lanes(Lanes{0x1.0p-54, 1.0 - 0x1.0p-53, 0.5, 0.25, 1.0, 2.0, 0.75, 0.375});
  CHECK(ulps(at_edges[0], -54 * std::log(2.0L)) <= 1.0);
  CHECK(at_edges[1] < 0.0);
  CHECK(at_edges[4] == 0.0);  // m = 1, e = 0: f = 0
  CHECK(at_edges[5] == static_cast<double>(std::log(2.0L)));
}

TEST_CASE("cos_sin_2pi_lanes is within 2 ulp of cosl/sinl(2πu)") {
  const std::vector<double> u = arguments();
  // Reference: u = k/4 + d exactly (|d| ≤ 1/8), then cos/sin of 2π·d in long double (relative
  // error 2⁻⁶⁴ however small d is) and the quadrant identities.
  const long double two_pi = 6.283185307179586476925286766559005768L;
  double worst = 0;
  for (std::size_t i = 0; i + 8 <= u.size(); i += 8) {
    const Lanes x = emergent::detail::load_lanes(u.data() + i);
    Lanes c, s;
    emergent::detail::cos_sin_2pi_lanes(x, c, s);
    for (int j = 0; j < 8; ++j) {
      const long double k = std::nearbyint(4.0L * x[j]);
      const long double d = static_cast<long double>(x[j]) - k / 4;
      const long double cd = std::cos(two_pi * d), sd = std::sin(two_pi * d);
      const int q = static_cast<int>(k) & 3;
      const long double ce = q == 0 ? cd : q == 1 ? -sd : q == 2 ? -cd : sd;
      const long double se = q == 0 ? sd : q == 1 ? cd : q == 2 ? -sd : -cd;
      worst = std::max({worst, ulps(c[j], ce), ulps(s[j], se)});
    }
  }
  MESSAGE("cos_sin_2pi_lanes: worst error " << worst << " ulp over " << u.size() << " arguments");
  CHECK(worst <= 2.0);
  Lanes c, s;
  emergent::detail::cos_sin_2pi_lanes(Lanes{0.0, 0.25, 0.5, 0.75, 1.0, 0.125, 0.625, 0x1.0p-54}, c, s);
  CHECK(c[0] == 1.0);
  CHECK(s[0] == 0.0);
  CHECK(c[1] == 0.0);
  CHECK(s[1] == 1.0);
  CHECK(c[2] == -1.0);
  CHECK(c[3] == 0.0);
  CHECK(s[3] == -1.0);
  CHECK(c[4] == 1.0);
  CHECK(std::fabs(c[5] - std::sqrt(0.5)) <= 0x1.0p-53);
  CHECK(s[7] == doctest::Approx(6.283185307179586 * 0x1.0p-54).epsilon(1e-15));
}

TEST_CASE("normal draws are standard normal; so were libm's; the two agree to the old angle's rounding") {
  const std::uint64_t n = 1u << 20;
  const NormalStream s(20261201, 3);
  std::vector<double> z(n), old(n);
  s.fill(z.data(), n);
  for (std::uint64_t i = 0; i < n; ++i) old[i] = libm_normal(s, i);
  check_standard_normal(z);
  check_standard_normal(old);
  // The same uniforms through two evaluations of the same formula: the old angle fl(2π·u) is
  // off by ≤ 2⁻⁵²·|θ| ≤ 2⁻⁴⁹·³, the logarithms by a few ulp, so |new − old| ≤ 2⁻⁴⁹·r.
  double worst = 0;
  std::uint64_t identical = 0;
  for (std::uint64_t i = 0; i < n; i += 2) {
    const double r = std::hypot(z[i], z[i + 1]);
    worst = std::max({worst, std::fabs(z[i] - old[i]) / r, std::fabs(z[i + 1] - old[i + 1]) / r});
    identical += (z[i] == old[i]) + (z[i + 1] == old[i + 1]);
  }
  MESSAGE("new vs libm draws: worst |difference|/r " << worst << ", " << identical << " of " << n << " identical");
  CHECK(worst <= 0x1.0p-49);
  CHECK(worst > 0.0);  // the stream did change (docs/conventions.md §4 says so)
}

TEST_CASE("normal(i) is a pure function of (seed, stream, i): blocks, starts and lengths do not matter") {
  const NormalStream s(5, 11), t(5, 12), u(6, 11);
  std::vector<double> all(100);
  s.fill(all.data(), all.size());
  for (std::uint64_t first : {0, 1, 2, 5, 15, 16, 17, 31}) {
    for (std::uint64_t len : {0, 1, 2, 3, 14, 15, 16, 17, 33, 40}) {
      if (first + len > all.size()) continue;
      std::vector<double> part(len + 1, -99.0);
      s.fill(part.data(), len, first);
      for (std::uint64_t j = 0; j < len; ++j) CHECK(part[j] == all[first + j]);
      CHECK(part[len] == -99.0);
    }
  }
  for (std::uint64_t i : {0, 1, 2, 15, 16, 99}) CHECK(s.normal(i) == all[i]);
  CHECK(s.normal(1ULL << 40) == s.normal(1ULL << 40));
  CHECK(t.normal(0) != s.normal(0));
  CHECK(u.normal(0) != s.normal(0));
}
