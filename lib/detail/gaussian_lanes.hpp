// Eight Box–Muller pairs at once: the counter-based uniforms of core/random.hpp, the natural
// logarithm and (cos 2πu, sin 2πu) evaluated lane-wise with the library's own polynomials, so the
// normal draws of NormalStream vectorize (libm's scalar log/sin/cos took 0.4 s to initialize the
// 64 members of a 512-wide MLP ensemble). Each lane is a pure function of its own counter: the
// same bits whatever the lane, the block or the thread. Accuracy (tests/detail/test_gaussian_lanes):
// ≤ 2 ulp against 80-bit logl/cosl/sinl.
#pragma once

#include <cstdint>
#include <cstring>

#include "detail/lanes.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // vector values never cross the library's interface
#endif

namespace emergent::detail {

typedef std::uint64_t Words __attribute__((vector_size(64)));
typedef std::int64_t SignedWords __attribute__((vector_size(64)));

inline Words bits_of(const Lanes& x) {
  Words w;
  std::memcpy(&w, &x, sizeof w);
  return w;
}
inline Lanes lanes_of(const Words& w) {
  Lanes x;
  std::memcpy(&x, &w, sizeof x);
  return x;
}

/// splitmix64 (core/random.hpp) on eight counters.
inline Words splitmix64_lanes(Words z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// NormalStream::uniform on eight counters: (⌊r/2¹¹⌋ + ½)·2⁻⁵³ ∈ (0, 1), r = splitmix64(key ⊕ splitmix64(i)).
inline Lanes uniform_lanes(std::uint64_t key, Words i) {
  const Words r = splitmix64_lanes(key ^ splitmix64_lanes(i));
  return (__builtin_convertvector(r >> 11, Lanes) + 0.5) * 0x1.0p-53;
}

/// ln u for normal u > 0 (u ∈ (0, 1) here). u = 2^e·m with m ∈ [√½, √2), f = m − 1 (exact), s =
/// f/(2 + f): ln m = 2 artanh s = f − (f²/2 − s·(f²/2 + R)), R = Σ_{k=1}^{11} 2s^{2k}/(2k+1)
/// (Taylor; |s| ≤ 0.172 leaves < 2⁻⁶⁰ out), and e·ln 2 in two parts (ln2_hi has 42 bits, so
/// e·ln2_hi is exact).
inline Lanes log_lanes(const Lanes& u) {
  const Words w = bits_of(u);
  Lanes m = lanes_of((w & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL);  // [1, 2)
  SignedWords e = (SignedWords)(w >> 52) - 1023;
  const SignedWords big = m > 1.4142135623730951;  // m ≥ √2 (rounded): use m/2 and e + 1
  m = big ? m * 0.5 : m;
  e -= big;  // big is −1 where true
  const Lanes f = m - 1.0;
  const Lanes s = f / (f + 2.0);
  const Lanes z = s * s;
  Lanes R = splat_lanes(0x1.642c8590b2164p-4);  // 2/23
  R = R * z + 0x1.8618618618618p-4;             // 2/21
  R = R * z + 0x1.af286bca1af28p-4;             // 2/19
  R = R * z + 0x1.e1e1e1e1e1e1ep-4;             // 2/17
  R = R * z + 0x1.1111111111111p-3;             // 2/15
  R = R * z + 0x1.3b13b13b13b14p-3;             // 2/13
  R = R * z + 0x1.745d1745d1746p-3;             // 2/11
  R = R * z + 0x1.c71c71c71c71cp-3;             // 2/9
  R = R * z + 0x1.2492492492492p-2;             // 2/7
  R = R * z + 0x1.999999999999ap-2;             // 2/5
  R = R * z + 0x1.5555555555555p-1;             // 2/3
  R = R * z;
  const Lanes hfsq = 0.5 * f * f;
  const Lanes ed = __builtin_convertvector(e, Lanes);
  const Lanes log_m = f - (hfsq - s * (hfsq + R));
  return ed * 0x1.62e42fefa3800p-1 + (log_m + ed * 0x1.ef35793c76730p-45);
}

/// cos 2πu and sin 2πu for u ∈ [0, 1]: 4u = q + f with q the nearest integer (exact: 4u has no
/// more bits than u) and |f| ≤ ½, then the quadrant q mod 4 and Taylor polynomials of cos(πf/2)
/// and sin(πf/2) (|πf/2| ≤ π/4; terms through f²⁰ and f¹⁹, < 2⁻⁶⁰ left out).
inline void cos_sin_2pi_lanes(const Lanes& u, Lanes& c, Lanes& s) {
  const Lanes x = 4.0 * u;
  const Lanes shifted = x + 0x1.8p52;  // the nearest integer in the low bits
  const Words q = bits_of(shifted) & 3;
  const Lanes f = x - (shifted - 0x1.8p52);
  const Lanes z = f * f;
  Lanes ps = splat_lanes(-0x1.8a404211f9547p-45);
  ps = ps * z + 0x1.aaec32af93359p-38;
  ps = ps * z - 0x1.6fadb9f155744p-31;
  ps = ps * z + 0x1.e8f434d018d63p-25;
  ps = ps * z - 0x1.e3074fde8871fp-19;
  ps = ps * z + 0x1.50783487ee782p-13;
  ps = ps * z - 0x1.32d2cce62bd86p-8;
  ps = ps * z + 0x1.466bc6775aae2p-4;
  ps = ps * z - 0x1.4abbce625be53p-1;
  const Lanes sin_f = f * 0x1.921fb54442d18p+0 + (f * z) * ps;  // sin(πf/2)
  Lanes pc = splat_lanes(0x1.ef6e308d6d1c4p-49);
  pc = pc * z - 0x1.2a0c591af8314p-41;
  pc = pc * z + 0x1.20c62c2f2d7f5p-34;
  pc = pc * z - 0x1.b6e24f44b128fp-28;
  pc = pc * z + 0x1.f9d38a3763cc3p-22;
  pc = pc * z - 0x1.a6d1f2a204a8cp-16;
  pc = pc * z + 0x1.e1f506891babbp-11;
  pc = pc * z - 0x1.55d3c7e3cbffap-6;
  pc = pc * z + 0x1.03c1f081b5ac4p-2;
  pc = pc * z - 0x1.3bd3cc9be45dep+0;
  const Lanes cos_f = 1.0 + z * pc;  // cos(πf/2)
  // quadrant q: (cos, sin)(qπ/2 + φ) = (cos φ, sin φ), (−sin φ, cos φ), (−cos φ, −sin φ), (sin φ, −cos φ)
  const SignedWords swap = (SignedWords)((q & 1) != 0);
  const Lanes cs = swap ? sin_f : cos_f, sn = swap ? cos_f : sin_f;
  const SignedWords neg_c = (SignedWords)((q == 1) | (q == 2)), neg_s = (SignedWords)(q >= 2);
  c = neg_c ? -cs : cs;
  s = neg_s ? -sn : sn;
}

/// Draws 2p … 2p+15 of the stream with key `key`, p = first_pair: lane j is the pair p + j,
/// r = √(−2 ln u₁), (r cos 2πu₂, r sin 2πu₂) with u₁ = uniform(2(p+j)), u₂ = uniform(2(p+j)+1).
inline void normal_pairs_lanes(std::uint64_t key, std::uint64_t first_pair, double* out) {
  const Words pair = Words{0, 1, 2, 3, 4, 5, 6, 7} + first_pair;
  const Lanes u1 = uniform_lanes(key, 2 * pair), u2 = uniform_lanes(key, 2 * pair + 1);
  Lanes c, s;
  cos_sin_2pi_lanes(u2, c, s);
  const Lanes t = -2.0 * log_lanes(u1);
  Lanes rr;
  for (int j = 0; j < 8; ++j) rr[j] = __builtin_sqrt(t[j]);  // correctly rounded (vsqrtpd)
  const Lanes a = rr * c, b = rr * s;
  typedef long long Index8 __attribute__((vector_size(64)));
  store_lanes(out, __builtin_shuffle(a, b, Index8{0, 8, 1, 9, 2, 10, 3, 11}));
  store_lanes(out + 8, __builtin_shuffle(a, b, Index8{4, 12, 5, 13, 6, 14, 7, 15}));
}

}  // namespace emergent::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
