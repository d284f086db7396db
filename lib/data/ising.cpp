// 2-D Ising samplers and exact references (see ising.hpp).
#include "emergent/data/ising.hpp"

#include <omp.h>

#include <boost/math/special_functions/ellint_1.hpp>
#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "emergent/core/random.hpp"
#include "detail/enum_names.hpp"
#include "detail/errors.hpp"
#include "detail/parallel.hpp"
#include "emergent/core/cancellation.hpp"

namespace emergent {

constexpr detail::EnumNames<IsingAlgorithm, 3> kIsingAlgorithmNames = {{
    {IsingAlgorithm::Metropolis, "metropolis"},
    {IsingAlgorithm::Wolff, "wolff"},
    {IsingAlgorithm::Automatic, "automatic"},
}};

const char* to_string(IsingAlgorithm value) { return detail::enum_name(kIsingAlgorithmNames, value); }

IsingAlgorithm parse_ising_algorithm(std::string_view text) { return detail::parse_enum(kIsingAlgorithmNames, text, "parse_ising_algorithm", "IsingAlgorithm"); }

bool IsingOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& m) {
    if (error) *error = m;
    return false;
  };
  if (size < 2 || size > 256) return fail("IsingOptions::size = " + std::to_string(size) + ": expected 2 ≤ L ≤ 256");
  if (temperatures.empty()) return fail("IsingOptions::temperatures is empty: expected at least one temperature");
  for (double t : temperatures)
    if (!(std::isfinite(t) && t > 0))
      return fail("IsingOptions::temperatures contains " + std::to_string(t) + ": expected finite T > 0");
  if (samples_per_temperature < 1)
    return fail("IsingOptions::samples_per_temperature = " + std::to_string(samples_per_temperature) +
                ": expected ≥ 1");
  if (burn_in_sweeps < 0)
    return fail("IsingOptions::burn_in_sweeps = " + std::to_string(burn_in_sweeps) + ": expected ≥ 0 (0: automatic)");
  if (sweeps_between_samples < 0)
    return fail("IsingOptions::sweeps_between_samples = " + std::to_string(sweeps_between_samples) +
                ": expected ≥ 0 (0: automatic)");
  if (threads < 0 || threads > detail::kMaxThreads)
    return fail("IsingOptions::threads = " + std::to_string(threads) + ": expected 0 to " +
                std::to_string(detail::kMaxThreads));
  return true;
}

double ising_energy_per_site(const double* s, int L) {
  // Each site with its right and lower neighbor: every one of the 2L² bonds exactly once.
  double sum = 0;
  for (int h = 0; h < L; ++h)
    for (int w = 0; w < L; ++w) {
      const double v = s[h * L + w];
      sum += v * (s[h * L + (w + 1) % L] + s[((h + 1) % L) * L + w]);
    }
  return -sum / (static_cast<double>(L) * L);
}

RowMatrix ising_energies(const Inputs& x) {
  if (!x.shape.image || x.shape.channels != 1 || x.shape.height != x.shape.width)
    throw std::invalid_argument("ising_energies: x has shape " + x.shape.to_string() +
                                ": expected square single-channel images (L, L, 1)");
  RowMatrix e(x.count(), 1);
  for (Eigen::Index i = 0; i < x.count(); ++i) e(i, 0) = ising_energy_per_site(x.x.row(i).data(), x.shape.height);
  return e;
}

namespace {

// One Markov chain on an L×L lattice with its own counter-based uniform stream.
class Chain {
 public:
  Chain(int L, double T, std::uint64_t seed, std::uint64_t stream)
      : L_(L), n_(L * L), beta_(1.0 / T), rng_(seed, stream), spins_(n_), stack_(), in_cluster_(n_, 0) {
    for (int i = 0; i < n_; ++i) spins_[i] = uniform() < 0.5 ? 1 : -1;  // T = ∞ start
    // Metropolis acceptance e^{−βΔH} for ΔH = 2·s·(sum of the 4 neighbors) ∈ {4, 8}.
    accept_[0] = std::exp(-4.0 * beta_);
    accept_[1] = std::exp(-8.0 * beta_);
    p_bond_ = -std::expm1(-2.0 * beta_);
  }

  double uniform() { return rng_.uniform(counter_++); }
  int site(int h, int w) const { return ((h + L_) % L_) * L_ + (w + L_) % L_; }
  int neighbor(int i, int d) const {
    const int h = i / L_, w = i % L_;
    switch (d) {
      case 0: return site(h, w + 1);
      case 1: return site(h, w - 1);
      case 2: return site(h + 1, w);
      default: return site(h - 1, w);
    }
  }

  // L² single-spin updates at uniformly random sites (each step satisfies detailed balance).
  void metropolis_sweep() {
    for (int k = 0; k < n_; ++k) {
      int i = static_cast<int>(uniform() * n_);
      if (i >= n_) i = n_ - 1;
      int field = 0;
      for (int d = 0; d < 4; ++d) field += spins_[neighbor(i, d)];
      const int dh = 2 * spins_[i] * field;  // ΔH of flipping spin i
      ++attempts_;
      if (dh <= 0 || uniform() < accept_[dh == 4 ? 0 : 1]) {
        spins_[i] = -spins_[i];
        ++accepted_;
      }
    }
  }

  // One Wolff cluster: grow from a random seed over parallel bonds with probability p, flip it.
  // Each of the 4 neighbor directions is tried separately, so a doubled bond (L = 2) gets two
  // chances, as its coupling of 2 requires. Returns the cluster size.
  int wolff_cluster() {
    int seed = static_cast<int>(uniform() * n_);
    if (seed >= n_) seed = n_ - 1;
    const int s0 = spins_[seed];
    stack_.clear();
    stack_.push_back(seed);
    in_cluster_[seed] = 1;
    std::size_t head = 0;
    while (head < stack_.size()) {
      const int i = stack_[head++];
      for (int d = 0; d < 4; ++d) {
        const int j = neighbor(i, d);
        if (!in_cluster_[j] && spins_[j] == s0 && uniform() < p_bond_) {
          in_cluster_[j] = 1;
          stack_.push_back(j);
        }
      }
    }
    for (int i : stack_) {
      spins_[i] = -s0;
      in_cluster_[i] = 0;
    }
    return static_cast<int>(stack_.size());
  }

  // A fixed number of cluster flips (about L² flipped spins on average). The number must not
  // depend on the current clusters: stopping once L² spins have been flipped would be a
  // state-dependent stopping time and bias the samples towards order.
  void wolff_sweep() {
    for (int c = 0; c < clusters_per_sweep_; ++c) {
      cluster_sum_ += wolff_cluster();
      ++clusters_;
    }
  }
  // After burn-in: fix clusters per sweep from the mean cluster size measured so far.
  void calibrate_wolff() {
    const double mean = clusters_ ? static_cast<double>(cluster_sum_) / clusters_ : 1.0;
    clusters_per_sweep_ = std::max(1, static_cast<int>(std::lround(n_ / mean)));
  }

  void sweep(IsingAlgorithm a) { a == IsingAlgorithm::Wolff ? wolff_sweep() : metropolis_sweep(); }
  const std::vector<int>& spins() const { return spins_; }
  double acceptance(IsingAlgorithm a) const {
    if (a == IsingAlgorithm::Wolff) return clusters_ ? static_cast<double>(cluster_sum_) / (clusters_ * n_) : 0.0;
    return attempts_ ? static_cast<double>(accepted_) / attempts_ : 0.0;
  }

 private:
  int L_, n_;
  double beta_;
  NormalStream rng_;
  std::uint64_t counter_ = 0;
  std::vector<int> spins_;
  std::vector<int> stack_;
  std::vector<char> in_cluster_;
  double accept_[2];
  double p_bond_;
  long attempts_ = 0, accepted_ = 0, clusters_ = 0, cluster_sum_ = 0;
  int clusters_per_sweep_ = 1;
};

IsingAlgorithm resolve(IsingAlgorithm a, double T) {
  if (a != IsingAlgorithm::Automatic) return a;
  return (T >= 1.5 && T <= 3.5) ? IsingAlgorithm::Wolff : IsingAlgorithm::Metropolis;
}

}  // namespace

IsingDataset sample_ising(const IsingOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) throw std::invalid_argument("sample_ising: " + error);
  const int L = options.size, n = options.samples_per_temperature;
  const int chains = static_cast<int>(options.temperatures.size());
  const Eigen::Index total = static_cast<Eigen::Index>(chains) * n;
  IsingDataset out;
  RowMatrix x(total, L * L);
  out.y.resize(total, 1);
  out.temperature.resize(total);
  out.magnetization.resize(total);
  out.acceptance.resize(chains);
  out.algorithm.resize(chains);
  const int threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  detail::ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int j = 0; j < chains; ++j) {
    errors.run(static_cast<long long>(j), [&] {
      const double T = options.temperatures[j];
      const IsingAlgorithm a = resolve(options.algorithm, T);
      const bool wolff = a == IsingAlgorithm::Wolff;
      const int burn = options.burn_in_sweeps > 0 ? options.burn_in_sweeps : (wolff ? 100 : 1000);
      const int gap = options.sweeps_between_samples > 0 ? options.sweeps_between_samples : (wolff ? 2 : 10);
      Chain chain(L, T, options.seed, static_cast<std::uint64_t>(j));
      // Wolff: burn in with one cluster per sweep, fix the sweep length from the mean cluster size,
      // then burn in again with it.
      for (int s = 0; s < burn; ++s) chain.sweep(a);
      if (wolff) {
        chain.calibrate_wolff();
        for (int s = 0; s < burn; ++s) chain.sweep(a);
      }
      for (int k = 0; k < n; ++k) {
        throw_if_cancelled();  // once per sample (the burn-in is short by comparison)
        for (int s = 0; s < gap; ++s) chain.sweep(a);
        const Eigen::Index row = static_cast<Eigen::Index>(j) * n + k;
        double m = 0;
        for (int i = 0; i < L * L; ++i) {
          x(row, i) = chain.spins()[i];
          m += chain.spins()[i];
        }
        out.y(row, 0) = ising_energy_per_site(x.row(row).data(), L);
        out.temperature[row] = T;
        out.magnetization[row] = m / (L * L);
      }
      out.acceptance[j] = chain.acceptance(a);
      out.algorithm[j] = a;
    });
  }
  errors.rethrow();
  out.x = Inputs(std::move(x), ExampleShape::image_hwc(L, L, 1));
  return out;
}

std::string IsingDataset::to_string() const {
  std::ostringstream os;
  const Eigen::Index chains = static_cast<Eigen::Index>(acceptance.size());
  if (chains == 0) return "empty Ising data set\n";
  const Eigen::Index n = x.count() / chains;
  for (Eigen::Index j = 0; j < chains; ++j) {
    double e = 0, m = 0;
    for (Eigen::Index k = 0; k < n; ++k) {
      e += y(j * n + k, 0);
      m += std::abs(magnetization[j * n + k]);
    }
    os << "T = " << temperature[j * n] << ": " << n << " samples, <E> = " << e / n << ", <|m|> = " << m / n << " ("
       << emergent::to_string(algorithm[j]) << ")\n";
  }
  return os.str();
}

namespace {
void check_exact_size(int L, double T, const char* where) {
  if (L < 2 || L > 4)
    throw std::invalid_argument(std::string(where) + ": size = " + std::to_string(L) + ": expected 2 ≤ L ≤ 4");
  if (!(std::isfinite(T) && T > 0))
    throw std::invalid_argument(std::string(where) + ": temperature = " + std::to_string(T) + ": expected finite T > 0");
}
double state_energy(int L, std::uint32_t state, std::vector<double>& s) {
  for (int i = 0; i < L * L; ++i) s[i] = (state >> i) & 1u ? 1.0 : -1.0;
  return ising_energy_per_site(s.data(), L);
}
}  // namespace

IsingExact ising_exact(int L, double T) {
  check_exact_size(L, T, "ising_exact");
  const std::uint32_t states = 1u << (L * L);
  std::vector<double> s(L * L);
  // Shift by the ground-state energy (−2 per site) so that no weight overflows.
  const double shift = 2.0 * L * L / T;
  double z = 0, e = 0, m = 0;
  for (std::uint32_t st = 0; st < states; ++st) {
    const double E = state_energy(L, st, s);
    const double w = std::exp(-E * L * L / T - shift);
    double mag = 0;
    for (double v : s) mag += v;
    z += w;
    e += w * E;
    m += w * std::abs(mag) / (L * L);
  }
  return {e / z, m / z, std::log(z) + shift};
}

double ising_boltzmann_probability(int L, double T, std::uint32_t state) {
  check_exact_size(L, T, "ising_boltzmann_probability");
  if (L * L < 32 && state >= (1u << (L * L)))
    throw std::invalid_argument("ising_boltzmann_probability: state = " + std::to_string(state) + ": expected < 2^(L²)");
  std::vector<double> s(L * L);
  const double E = state_energy(L, state, s);
  return std::exp(-E * L * L / T - ising_exact(L, T).log_partition);
}

double onsager_energy_per_site(double T) {
  if (!(std::isfinite(T) && T > 0))
    throw std::invalid_argument("onsager_energy_per_site: temperature = " + std::to_string(T) +
                                ": expected finite T > 0");
  const double b2 = 2.0 / T;
  const double th = std::tanh(b2), ch = std::cosh(b2);
  // κ = 2 sinh(2β)/cosh²(2β), written as 2 tanh/cosh so that it is 0, not inf/inf, at T → 0.
  const double kappa = 2.0 * th / ch;
  const double coth = 1.0 / th;
  const double c = 2.0 * th * th - 1.0;
  if (std::abs(1.0 - kappa) < 1e-15) return -coth;  // T_c: K diverges logarithmically, c → 0 linearly
  const double k1 = detail::guard_numerics("onsager_energy_per_site: the elliptic integral K(κ)",
                                           [&] { return boost::math::ellint_1(kappa); });
  return -coth * (1.0 + (2.0 / M_PI) * c * k1);
}

}  // namespace emergent
