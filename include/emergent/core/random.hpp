// Counter-based random numbers: the value drawn for (seed, stream, index) does not depend on
// the order or the thread that asks, which makes every sampled quantity bit-reproducible at
// any thread count.
#pragma once

#include <cmath>
#include <cstdint>

namespace emergent {

/// SplitMix64 finalizer (Steele, Lea & Flood 2014): a bijective 64-bit mix.
inline std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// A deterministic stream of standard normals, identified by (seed, stream).
/// Draw i of a stream is a pure function of (seed, stream, i).
class NormalStream {
 public:
  NormalStream(std::uint64_t seed, std::uint64_t stream)
      : key_(splitmix64(splitmix64(seed) ^ (stream * 0xD1B54A32D192ED03ULL + 0x8CB92BA72F3D8DD7ULL))) {}

  /// Uniform in the open interval (0, 1), 53 random bits.
  double uniform(std::uint64_t i) const {
    const std::uint64_t r = splitmix64(key_ ^ splitmix64(i));
    return (static_cast<double>(r >> 11) + 0.5) * 0x1.0p-53;
  }

  /// Standard normal number i (Box–Muller on the pair of uniforms 2⌊i/2⌋, 2⌊i/2⌋+1).
  double normal(std::uint64_t i) const {
    const std::uint64_t pair = i >> 1;
    const double r = std::sqrt(-2.0 * std::log(uniform(2 * pair)));
    const double angle = 6.283185307179586476925 * uniform(2 * pair + 1);
    return (i & 1) ? r * std::sin(angle) : r * std::cos(angle);
  }

  /// Fill out[0..n) with draws first, first+1, ...
  /// Bit-identical to calling normal() n times, with one logarithm per pair instead of two.
  void fill(double* out, std::uint64_t n, std::uint64_t first = 0) const {
    std::uint64_t j = 0;
    if (n > 0 && (first & 1)) out[j++] = normal(first);  // odd start: second half of a pair
    for (; j + 1 < n; j += 2) {
      const std::uint64_t pair = (first + j) >> 1;
      const double r = std::sqrt(-2.0 * std::log(uniform(2 * pair)));
      const double angle = 6.283185307179586476925 * uniform(2 * pair + 1);
      out[j] = r * std::cos(angle);
      out[j + 1] = r * std::sin(angle);
    }
    if (j < n) out[j] = normal(first + j);
  }

 private:
  std::uint64_t key_;
};

}  // namespace emergent
