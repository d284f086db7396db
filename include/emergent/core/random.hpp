// Counter-based random numbers: the value drawn for (seed, stream, index) does not depend on
// the order or the thread that asks, which makes every sampled quantity bit-reproducible at
// any thread count.
#pragma once

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

  /// Standard normal number i: Box–Muller on the pair of uniforms 2⌊i/2⌋ (radius
  /// r = √(−2 ln u)) and 2⌊i/2⌋+1 (angle 2πu); even i is r·cos, odd i is r·sin. ln, cos and sin
  /// are the library's own (≤ 2 ulp), evaluated eight pairs at a time (docs/conventions.md §4).
  double normal(std::uint64_t i) const;

  /// Fill out[0..n) with draws first, first+1, ...: bit-identical to calling normal() n times.
  void fill(double* out, std::uint64_t n, std::uint64_t first = 0) const;

 private:
  std::uint64_t key_;
};

}  // namespace emergent
