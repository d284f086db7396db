// 2-D Ising sampler and energy: lattice symmetries of the energy, ground states, low/high
// temperature limits, exact enumeration at T_c, detailed balance on the 2×2 lattice, Onsager's
// solution, reproducibility and argument checks.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include "support/enum_names.hpp"

#include <cmath>
#include <numeric>
#include <stdexcept>

#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"
#include "emergent/data/ising.hpp"
#include "emergent/core/random.hpp"

using namespace emergent;

namespace {

Inputs random_configs(int n, int L, std::uint64_t seed, bool spins) {
  RowMatrix x = test::normals(n, L * L, seed);
  if (spins) x = x.unaryExpr([](double z) { return z > 0 ? 1.0 : -1.0; });
  return Inputs(x, ExampleShape::image_hwc(L, L, 1));
}

struct Moments {
  double mean = 0, se = 0;
};

// Mean and its standard error from batch means (20 batches), which stays honest if successive
// samples are still weakly correlated.
Moments batch_moments(const std::vector<double>& v) {
  const int batches = 20;
  const std::size_t per = v.size() / batches;
  std::vector<double> b(batches, 0.0);
  for (int k = 0; k < batches; ++k) {
    for (std::size_t i = 0; i < per; ++i) b[k] += v[k * per + i];
    b[k] /= per;
  }
  const double m = std::accumulate(b.begin(), b.end(), 0.0) / batches;
  double var = 0;
  for (double x : b) var += (x - m) * (x - m);
  var /= (batches - 1);
  return {m, std::sqrt(var / batches)};
}

std::vector<double> energies_of(const IsingDataset& d) {
  std::vector<double> e(d.y.rows());
  for (Eigen::Index i = 0; i < d.y.rows(); ++i) e[i] = d.y(i, 0);
  return e;
}

IsingDataset run(int L, double T, int n, IsingAlgorithm a, std::uint64_t seed, int gap = 0) {
  IsingOptions o;
  o.size = L;
  o.temperatures = {T};
  o.samples_per_temperature = n;
  o.algorithm = a;
  o.seed = seed;
  o.sweeps_between_samples = gap;
  return sample_ising(o);
}

}  // namespace

TEST_CASE("energy per site: ground states, checkerboard, a single flipped spin") {
  for (int L : {2, 3, 5, 8}) {
    std::vector<double> up(L * L, 1.0), down(L * L, -1.0);
    CHECK(ising_energy_per_site(up.data(), L) == -2.0);
    CHECK(ising_energy_per_site(down.data(), L) == -2.0);
    // One flipped spin breaks its 4 bonds: ΔH = 8, ΔE = 8/L².
    up[0] = -1.0;
    CHECK(ising_energy_per_site(up.data(), L) == doctest::Approx(-2.0 + 8.0 / (L * L)).epsilon(1e-15));
  }
  for (int L : {4, 6}) {  // checkerboard on an even lattice: every bond antiparallel
    std::vector<double> c(L * L);
    for (int h = 0; h < L; ++h)
      for (int w = 0; w < L; ++w) c[h * L + w] = (h + w) % 2 ? 1.0 : -1.0;
    CHECK(ising_energy_per_site(c.data(), L) == 2.0);
  }
}

TEST_CASE("energy is invariant under the lattice's rotations, flips, translations and s -> -s") {
  for (int L : {5, 6, 7}) {
    for (bool spins : {true, false}) {
      const Inputs x = random_configs(12, L, 100 + L, spins);
      const RowMatrix e = ising_energies(x);
      const double tol = spins ? 0.0 : 64 * 2.2e-16 * (e.cwiseAbs().maxCoeff() + 1.0) * L;
      for (const char* name : {"d4", "translations"}) {
        const Representation g = make_group(name, x.shape);
        double worst = 0;
        for (int k = 0; k < g.size(); ++k) worst = std::max(worst, (ising_energies(g.apply(k, x)) - e).cwiseAbs().maxCoeff());
        CHECK(worst <= tol);
      }
      Inputs neg = x;
      neg.x = -x.x;
      CHECK((ising_energies(neg) - e).cwiseAbs().maxCoeff() <= tol);
      // A map that is no lattice symmetry (swap two non-equivalent sites' neighbourhoods by
      // reversing one row only) changes the energy of most configurations.
      Inputs bad = x;
      for (Eigen::Index i = 0; i < x.count(); ++i)
        for (int w = 0; w < L; ++w) bad.x(i, w) = x.x(i, (w * 2) % L);
      CHECK((ising_energies(bad) - e).cwiseAbs().maxCoeff() > 1e-3);
    }
  }
}

TEST_CASE("data set layout: shapes, targets, magnetization, temperatures") {
  IsingOptions o;
  o.size = 5;
  o.temperatures = {1.0, kIsingCriticalTemperature, 4.0};  // Metropolis, Wolff, Metropolis
  o.samples_per_temperature = 7;
  o.seed = 3;
  const IsingDataset d = sample_ising(o);
  REQUIRE(d.x.count() == 21);
  CHECK(d.x.shape == ExampleShape::image_hwc(5, 5, 1));
  CHECK(d.y.cols() == 1);
  CHECK((ising_energies(d.x) - d.y).cwiseAbs().maxCoeff() == 0.0);
  CHECK(d.x.x.cwiseAbs().minCoeff() == 1.0);
  CHECK(d.x.x.cwiseAbs().maxCoeff() == 1.0);
  for (Eigen::Index i = 0; i < 21; ++i) {
    CHECK(d.temperature[i] == o.temperatures[i / 7]);
    CHECK(d.magnetization[i] == doctest::Approx(d.x.x.row(i).sum() / 25.0));
  }
  CHECK(d.algorithm[0] == IsingAlgorithm::Metropolis);
  CHECK(d.algorithm[1] == IsingAlgorithm::Wolff);
  CHECK(d.algorithm[2] == IsingAlgorithm::Metropolis);
  CHECK(d.to_string().find("wolff") != std::string::npos);
}

TEST_CASE("low temperature: ordered, E = -2, |m| = 1") {
  // At T = 0.5 a flipped spin costs ΔH = 8, Boltzmann factor e^{-16} ≈ 1e-7 per site.
  for (auto a : {IsingAlgorithm::Metropolis, IsingAlgorithm::Wolff}) {
    const IsingDataset d = run(6, 0.5, 400, a, 11);
    double m = 0, e = 0;
    for (Eigen::Index i = 0; i < d.x.count(); ++i) {
      m += std::abs(d.magnetization[i]);
      e += d.y(i, 0);
    }
    CHECK(m / d.x.count() > 0.99);
    CHECK(e / d.x.count() < -1.98);
  }
}

TEST_CASE("high temperature: <E> = -2 tanh(1/T) + O(tanh^3) -> 0") {
  // High-temperature expansion: ⟨s_i s_j⟩ = tanh β + O(tanh³ β) for neighbors.
  for (double T : {20.0, 1000.0}) {
    const IsingDataset d = run(6, T, 4000, IsingAlgorithm::Metropolis, 5);
    const Moments mo = batch_moments(energies_of(d));
    const double t = std::tanh(1.0 / T);
    CHECK(std::abs(mo.mean + 2 * t) <= 5 * mo.se + 4 * t * t * t);
    CHECK(std::abs(mo.mean) < 0.15);
  }
}

TEST_CASE("T = T_c: sampled <E> matches exact enumeration of the 4x4 lattice (both samplers)") {
  const IsingExact ex = ising_exact(4, kIsingCriticalTemperature);
  CHECK(ex.mean_energy < -1.0);  // ordered side of the crossover on so small a lattice
  for (auto a : {IsingAlgorithm::Metropolis, IsingAlgorithm::Wolff}) {
    const IsingDataset d = run(4, kIsingCriticalTemperature, 6000, a, 21);
    const Moments mo = batch_moments(energies_of(d));
    INFO(std::string(to_string(a)), ": sampled ", mo.mean, " ± ", mo.se, ", exact ", ex.mean_energy);
    CHECK(mo.se > 0);
    CHECK(std::abs(mo.mean - ex.mean_energy) <= 5 * mo.se);
    // Sampling at the wrong temperature is caught by the same test.
    const IsingDataset hot = run(4, 1.3 * kIsingCriticalTemperature, 6000, a, 21);
    const Moments mh = batch_moments(energies_of(hot));
    CHECK(std::abs(mh.mean - ex.mean_energy) > 5 * mh.se);
  }
}

TEST_CASE("8x8 lattice at T_c: Metropolis and Wolff agree, near Onsager's -sqrt(2)") {
  // Two independent Markov chains with the same stationary law must agree within their combined
  // error; the finite-size shift of the energy at T_c is O(1/L) and small.
  const IsingDataset w = run(8, kIsingCriticalTemperature, 4000, IsingAlgorithm::Wolff, 9);
  const IsingDataset m = run(8, kIsingCriticalTemperature, 4000, IsingAlgorithm::Metropolis, 10, 20);
  const Moments mw = batch_moments(energies_of(w)), mm = batch_moments(energies_of(m));
  INFO("8x8: Wolff ", mw.mean, " ± ", mw.se, ", Metropolis ", mm.mean, " ± ", mm.se);
  CHECK(std::abs(mw.mean - mm.mean) <= 5 * std::hypot(mw.se, mm.se));
  CHECK(std::abs(mw.mean + std::sqrt(2.0)) < 0.1);
}

TEST_CASE("detailed balance: 2x2 state frequencies match Boltzmann weights") {
  const double T = 3.0;
  double psum = 0;
  for (std::uint32_t s = 0; s < 16; ++s) psum += ising_boltzmann_probability(2, T, s);
  CHECK(psum == doctest::Approx(1.0).epsilon(1e-14));
  for (auto a : {IsingAlgorithm::Metropolis, IsingAlgorithm::Wolff}) {
    const int n = 20000;
    const IsingDataset d = run(2, T, n, a, 31, 20);
    std::vector<double> count(16, 0.0);
    for (Eigen::Index i = 0; i < n; ++i) {
      std::uint32_t s = 0;
      for (int k = 0; k < 4; ++k)
        if (d.x.x(i, k) > 0) s |= 1u << k;
      count[s] += 1;
    }
    double chi2 = 0, chi2_wrong = 0;
    for (std::uint32_t s = 0; s < 16; ++s) {
      const double p = ising_boltzmann_probability(2, T, s);
      const double sd = std::sqrt(p * (1 - p) / n);
      INFO(std::string(to_string(a)), " state ", s, ": frequency ", count[s] / n, ", Boltzmann ", p);
      CHECK(std::abs(count[s] / n - p) <= 5 * sd);
      chi2 += (count[s] - n * p) * (count[s] - n * p) / (n * p);
      const double q = ising_boltzmann_probability(2, 1.5 * T, s);
      chi2_wrong += (count[s] - n * q) * (count[s] - n * q) / (n * q);
    }
    // 15 degrees of freedom: P(χ² > 45) ≈ 8e-5.
    CHECK(chi2 < 45);
    CHECK(chi2_wrong > 45);  // the test can tell T from 1.5·T
  }
}

TEST_CASE("Onsager's energy: -sqrt(2) at T_c, continuous, low- and high-T expansions") {
  const double tc = kIsingCriticalTemperature;
  CHECK(tc == doctest::Approx(2.0 / std::log(1.0 + std::sqrt(2.0))).epsilon(1e-15));
  CHECK(onsager_energy_per_site(tc) == doctest::Approx(-std::sqrt(2.0)).epsilon(1e-14));
  CHECK(std::abs(onsager_energy_per_site(tc * (1 + 1e-7)) + std::sqrt(2.0)) < 1e-4);
  CHECK(std::abs(onsager_energy_per_site(tc * (1 - 1e-7)) + std::sqrt(2.0)) < 1e-4);
  // Low T: u = −2 + 8e^{−8β} + O(e^{−12β}).
  for (double T : {0.5, 0.8}) {
    const double x = std::exp(-4.0 / T);
    CHECK(std::abs(onsager_energy_per_site(T) - (-2.0 + 8 * x * x)) <= 40 * x * x * x);
  }
  // High T: u = −2 tanh β − O(tanh³ β).
  for (double T : {10.0, 30.0}) {
    const double t = std::tanh(1.0 / T);
    CHECK(std::abs(onsager_energy_per_site(T) + 2 * t) <= 5 * t * t * t);
  }
  // Far from T_c the 4×4 lattice already has the infinite-lattice energy to a few 1e-3.
  CHECK(std::abs(ising_exact(4, 1.0).mean_energy - onsager_energy_per_site(1.0)) < 1e-3);
}

TEST_CASE("reproducible: same seed gives identical data at any thread count") {
  IsingOptions o;
  o.size = 6;
  o.temperatures = {1.5, 2.27, 3.0, 5.0};
  o.samples_per_temperature = 20;
  o.seed = 77;
  o.threads = 1;
  const IsingDataset a = sample_ising(o);
  o.threads = 2;
  const IsingDataset b = sample_ising(o);
  CHECK(a.x.x == b.x.x);
  CHECK(a.y == b.y);
  o.seed = 78;
  const IsingDataset c = sample_ising(o);
  CHECK(a.x.x != c.x.x);
}

TEST_CASE("bad options throw std::invalid_argument naming the option") {
  IsingOptions o;
  o.temperatures = {2.0};
  auto msg = [](const IsingOptions& opt) {
    try {
      sample_ising(opt);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  IsingOptions bad = o;
  bad.size = 1;
  CHECK(msg(bad).find("size") != std::string::npos);
  bad = o;
  bad.temperatures = {2.0, -1.0};
  CHECK(msg(bad).find("temperatures") != std::string::npos);
  bad = o;
  bad.temperatures.clear();
  CHECK(msg(bad).find("temperatures") != std::string::npos);
  bad = o;
  bad.samples_per_temperature = 0;
  CHECK(msg(bad).find("samples_per_temperature") != std::string::npos);
  CHECK_THROWS_AS(ising_exact(5, 2.0), std::invalid_argument);
  CHECK_THROWS_AS(onsager_energy_per_site(0.0), std::invalid_argument);
  CHECK_THROWS_AS(ising_energies(Inputs(RowMatrix::Zero(2, 6), ExampleShape::image_hwc(2, 3, 1))),
                  std::invalid_argument);
}

TEST_CASE("IsingAlgorithm: to_string and parse_ising_algorithm are inverse, snake_case, and reject unknown names") {
  using E = emergent::IsingAlgorithm;
  const std::vector<E> all = {E::Metropolis, E::Wolff, E::Automatic};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_ising_algorithm(s); });
}
