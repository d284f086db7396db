// The packed Gram product of lib/detail/packed_gram.hpp.
#include "detail/packed_gram.hpp"

#include "emergent/core/memory.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace emergent::detail {

namespace {

using Index = Eigen::Index;
constexpr Index kPanel = PackedRows::kPanel;
// Columns of c per micro-kernel call: three 8-double vectors, so 8 rows × 3 vectors = 24
// accumulators, 3 loads of b and 8 broadcasts of a per 24 fused multiply-adds (two loads per
// cycle feed the two FMA ports).
constexpr int kVectors = 3;
// k-block: the 24-column panel of b for one block is 24·kKBlock doubles (≈ 30 KiB, in the
// 48 KiB L1), reused by every 8-row panel of a; a block of 64 rows of a (≈ 80 KiB) stays in L2.
// Only speed depends on it: an entry's chain continues from c across blocks.
constexpr Index kKBlock = 160;

Index round_up(Index n, Index to) { return (n + to - 1) / to * to; }

#if defined(__AVX512F__)

// c[8 × 8·NV] (first: = 0, else +=) Σ_{k < kc} a_k ⊗ b_k; a: kc × 8 (k-major), b[v]: kc × 8.
template <int NV>
inline void micro_kernel(const double* __restrict a, const double* const* b, Index kc, double* __restrict c, Index ldc,
                         bool first) {
  __m512d acc[8][NV];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[r][v] = first ? _mm512_setzero_pd() : _mm512_loadu_pd(c + r * ldc + 8 * v);
  const double* b0 = b[0];
  const double* b1 = NV > 1 ? b[1] : b[0];
  const double* b2 = NV > 2 ? b[2] : b[0];
#pragma GCC unroll 4
  for (Index k = 0; k < kc; ++k) {
    __m512d bv[NV];
    bv[0] = _mm512_load_pd(b0 + 8 * k);
    if constexpr (NV > 1) bv[1] = _mm512_load_pd(b1 + 8 * k);
    if constexpr (NV > 2) bv[2] = _mm512_load_pd(b2 + 8 * k);
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const __m512d ar = _mm512_set1_pd(a[8 * k + r]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_pd(ar, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) _mm512_storeu_pd(c + r * ldc + 8 * v, acc[r][v]);
}

#else

// The same sums with std::fma, entry by entry in the same k order: the same bits. Portable builds
// (no -march=native) get versions for AVX-512 and AVX2 + FMA machines chosen at load time, where
// std::fma is one instruction and the lane loop vectorizes; elsewhere it is libm's fma.
#if defined(__GNUC__)
#define EMERGENT_INLINE inline __attribute__((always_inline))  // into each clone, for its target
#else
#define EMERGENT_INLINE inline
#endif

template <int NV>
EMERGENT_INLINE void micro_kernel_lanes(const double* a, const double* const* b, Index kc, double* c, Index ldc, bool first) {
  double acc[8][8 * NV];
  for (int r = 0; r < 8; ++r)
    for (int j = 0; j < 8 * NV; ++j) acc[r][j] = first ? 0.0 : c[r * ldc + j];
  for (Index k = 0; k < kc; ++k)
    for (int r = 0; r < 8; ++r) {
      const double ar = a[8 * k + r];
      for (int v = 0; v < NV; ++v)
        for (int l = 0; l < 8; ++l) acc[r][8 * v + l] = std::fma(ar, b[v][8 * k + l], acc[r][8 * v + l]);
    }
  for (int r = 0; r < 8; ++r)
    for (int j = 0; j < 8 * NV; ++j) c[r * ldc + j] = acc[r][j];
}

void micro_kernel_plain(int nv, const double* a, const double* const* b, Index kc, double* c, Index ldc, bool first) {
  if (nv == 3) micro_kernel_lanes<3>(a, b, kc, c, ldc, first);
  else if (nv == 2) micro_kernel_lanes<2>(a, b, kc, c, ldc, first);
  else micro_kernel_lanes<1>(a, b, kc, c, ldc, first);
}

using MicroKernel = void (*)(int, const double*, const double* const*, Index, double*, Index, bool);

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,fma"))) void micro_kernel_avx512(int nv, const double* a, const double* const* b,
                                                                 Index kc, double* c, Index ldc, bool first) {
  if (nv == 3) micro_kernel_lanes<3>(a, b, kc, c, ldc, first);
  else if (nv == 2) micro_kernel_lanes<2>(a, b, kc, c, ldc, first);
  else micro_kernel_lanes<1>(a, b, kc, c, ldc, first);
}
__attribute__((target("avx2,fma"))) void micro_kernel_avx2(int nv, const double* a, const double* const* b, Index kc,
                                                            double* c, Index ldc, bool first) {
  if (nv == 3) micro_kernel_lanes<3>(a, b, kc, c, ldc, first);
  else if (nv == 2) micro_kernel_lanes<2>(a, b, kc, c, ldc, first);
  else micro_kernel_lanes<1>(a, b, kc, c, ldc, first);
}
MicroKernel pick_micro_kernel() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return micro_kernel_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return micro_kernel_avx2;
  return micro_kernel_plain;
}
#else
MicroKernel pick_micro_kernel() { return micro_kernel_plain; }
#endif

const MicroKernel micro_kernel_any = pick_micro_kernel();

template <int NV>
inline void micro_kernel(const double* a, const double* const* b, Index kc, double* c, Index ldc, bool first) {
  micro_kernel_any(NV, a, b, kc, c, ldc, first);
}

#endif

}  // namespace

void PackedRows::Free::operator()(double* p) const { std::free(p); }

std::size_t PackedRows::bytes(Index rows, Index cols) {
  return static_cast<std::size_t>(round_up(rows, kPanel) * std::max<Index>(cols, 1)) * sizeof(double);
}

PackedRows::PackedRows(const double* x, Index rows, Index cols, Index ld, int threads) : rows_(rows), cols_(cols) {
  const std::size_t size = (bytes(rows, cols) + 63) / 64 * 64;  // aligned_alloc wants a multiple
  data_.reset(static_cast<double*>(std::aligned_alloc(64, size)));
  if (!data_) throw std::bad_alloc();
  prefer_huge_pages(data_.get(), size);  // written once, right below: 2 MiB faults
  const Index panels = this->panels();
#pragma omp parallel for num_threads(std::max(1, threads)) schedule(static)
  for (Index p = 0; p < panels; ++p) {
    double* out = data_.get() + p * kPanel * cols;
    const Index r0 = p * kPanel, live = std::min(kPanel, rows - r0);
    for (Index k0 = 0; k0 < cols; k0 += 64) {  // 64 columns of the 8 rows at a time: short strides
      const Index k1 = std::min(cols, k0 + 64);
      for (Index l = 0; l < kPanel; ++l) {
        if (l < live) {
          const double* row = x + (r0 + l) * ld;
          for (Index k = k0; k < k1; ++k) out[k * kPanel + l] = row[k];
        } else {
          for (Index k = k0; k < k1; ++k) out[k * kPanel + l] = 0.0;
        }
      }
    }
  }
}

bool packed_gram_vectorized() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

void packed_gram_tile(const PackedRows& a, Index i0, Index m, const PackedRows& b, Index j0, Index n, double* c,
                      Index ldc) {
  const Index d = a.cols();
  const Index rows = std::min(round_up(m, kPanel), a.padded_rows() - i0);
  const Index cols = std::min(round_up(n, kPanel), b.padded_rows() - j0);
  if (rows <= 0 || cols <= 0) return;
  if (d == 0) {  // empty sums
    for (Index i = 0; i < rows; ++i) std::fill(c + i * ldc, c + i * ldc + cols, 0.0);
    return;
  }
  const Index pi0 = i0 / kPanel, pj0 = j0 / kPanel;
  constexpr Index W = kVectors * kPanel;
  for (Index k0 = 0; k0 < d; k0 += kKBlock) {
    const Index kc = std::min(kKBlock, d - k0);
    const bool first = k0 == 0;
    for (Index j = 0; j < cols; j += W) {
      const int nv = static_cast<int>(std::min<Index>(kVectors, (cols - j) / kPanel));
      const double* bp[kVectors];
      for (int v = 0; v < nv; ++v) bp[v] = b.panel(pj0 + j / kPanel + v) + k0 * kPanel;
      for (Index i = 0; i < rows; i += kPanel) {
        const double* ap = a.panel(pi0 + i / kPanel) + k0 * kPanel;
        double* ct = c + i * ldc + j;
        if (nv == 3) micro_kernel<3>(ap, bp, kc, ct, ldc, first);
        else if (nv == 2) micro_kernel<2>(ap, bp, kc, ct, ldc, first);
        else micro_kernel<1>(ap, bp, kc, ct, ldc, first);
      }
    }
  }
}

}  // namespace emergent::detail
