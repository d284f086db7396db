// Eight doubles as one value (GCC/Clang vector extension): lane-wise arithmetic whose meaning is
// fixed by the source whatever vector width the target has (one AVX-512 register, two AVX2 or
// four SSE2 registers), so every sum is taken in one order on every machine and thread count.
#pragma once

#include <cstring>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // vector values never cross the library's interface
#endif

namespace emergent::detail {

typedef double Lanes __attribute__((vector_size(64)));

inline Lanes load_lanes(const double* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store_lanes(double* p, const Lanes& v) { std::memcpy(p, &v, sizeof v); }
inline Lanes splat_lanes(double x) { return Lanes{x, x, x, x, x, x, x, x}; }  // a broadcast, no arithmetic
/// The eight lanes summed by a fixed tree.
inline double sum_lanes(const Lanes& v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

}  // namespace emergent::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
