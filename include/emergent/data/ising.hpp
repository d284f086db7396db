// Two-dimensional Ising model on an L×L periodic square lattice: Markov-chain Monte Carlo samples
// at given temperatures and their energy per site, the regression data set of the Ising experiment
// of Gerken & Kessel (ICML 2024, "Emergent Equivariance in Deep Ensembles", §6).
//
// Hamiltonian (J = 1, k_B = 1, no field): H(s) = −Σ_<ij> s_i s_j over the 2L² nearest-neighbor
// bonds (each site with its right and lower neighbor, indices mod L). The target is the energy
// per site E(s) = H(s)/L², which lies in [−2, 2] and is invariant under every symmetry of the
// periodic lattice (quarter turns, flips, translations) and under s ↦ −s.
//
// Samplers: single-spin Metropolis with random site choice (Metropolis et al. 1953; satisfies
// detailed balance step by step) and the Wolff cluster algorithm (Wolff 1989, bond probability
// p = 1 − e^{−2/T}), which does not slow down near T_c. Every chain draws from its own
// counter-based stream (random.hpp), so a data set is bit-identical for a seed at any thread count.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/core/inputs.hpp"

namespace emergent {

/// Onsager's critical temperature of the square lattice, T_c = 2/ln(1 + √2) ≈ 2.269.
inline constexpr double kIsingCriticalTemperature = 2.269185314213022;

enum class IsingAlgorithm {
  Metropolis,  ///< L² random single-spin flips per sweep
  Wolff,       ///< one "sweep" = a fixed number of clusters (set after burn-in: about L² flipped spins)
  Automatic,   ///< Wolff for 1.5 ≤ T ≤ 3.5 (near T_c), Metropolis elsewhere
};
const char* to_string(IsingAlgorithm value);  ///< snake_case: metropolis, wolff, automatic
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
IsingAlgorithm parse_ising_algorithm(std::string_view text);

struct IsingOptions {
  int size = 8;                          ///< L ≥ 2 (the experiments use 5..8)
  std::vector<double> temperatures;      ///< T > 0, finite; one independent chain per temperature
  int samples_per_temperature = 100;     ///< ≥ 1
  IsingAlgorithm algorithm = IsingAlgorithm::Automatic;
  /// Sweeps discarded before the first sample (0: 1000 Metropolis / 100 Wolff sweeps), so that
  /// the chain forgets its random (T = ∞) start.
  int burn_in_sweeps = 0;
  /// Sweeps between kept samples (0: 10 Metropolis / 2 Wolff sweeps), several integrated
  /// autocorrelation times of the energy on lattices of this size.
  int sweeps_between_samples = 0;
  std::uint64_t seed = 0;                ///< chain j uses NormalStream(seed, j)
  int threads = 0;                       ///< OpenMP threads over chains (0: default); results do not depend on it

  /// True if the options make sense; otherwise false with the reason in *error.
  bool IsValid(std::string* error) const;
};

/// Samples in temperature order: rows [j·n, (j+1)·n) come from temperatures[j].
struct IsingDataset {
  Inputs x;                           ///< (N, L, L, 1), entries ±1
  RowMatrix y;                        ///< (N, 1): energy per site E(s)
  std::vector<double> temperature;    ///< per sample
  std::vector<double> magnetization;  ///< per sample, (1/L²)Σ s_i
  std::vector<double> acceptance;     ///< per temperature: Metropolis acceptance rate or Wolff mean cluster fraction
  std::vector<IsingAlgorithm> algorithm;  ///< per temperature, as resolved from Automatic
  std::string to_string() const;      ///< one line per temperature: ⟨E⟩, ⟨|m|⟩, algorithm
};

/// Energy per site −(1/L²)Σ_<ij> s_i s_j of one L×L configuration stored row-major (any real
/// values: the same quadratic form is the target for off-manifold inputs).
double ising_energy_per_site(const double* spins, int size);

/// E of every row of an (N, L, L, 1) batch: (N, 1). Throws std::invalid_argument unless the
/// examples are square single-channel images.
RowMatrix ising_energies(const Inputs& x);

/// Draw the data set. Throws std::invalid_argument (naming the option) for invalid options.
IsingDataset sample_ising(const IsingOptions& options);

/// Exact Boltzmann averages by enumerating all 2^(L²) states (L ≤ 4).
struct IsingExact {
  double mean_energy = 0;          ///< ⟨E⟩ per site
  double mean_abs_magnetization = 0;
  double log_partition = 0;        ///< ln Z
};
IsingExact ising_exact(int size, double temperature);

/// Boltzmann probability e^{−H(s)/T}/Z of the state whose spin i is +1 iff bit i of `state` is set
/// (L ≤ 4).
double ising_boltzmann_probability(int size, double temperature, std::uint32_t state);

/// Onsager's exact energy per site of the infinite lattice,
/// u(T) = −coth(2β)[1 + (2/π)(2tanh²(2β) − 1)K(κ)], κ = 2sinh(2β)/cosh²(2β), K the complete
/// elliptic integral of the first kind (modulus κ); u(T_c) = −√2.
double onsager_energy_per_site(double temperature);

}  // namespace emergent
