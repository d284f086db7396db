// Finite-width networks in the NTK parameterization (docs/conventions.md §2; Jacot et al. 2018, Eq. 1;
// Neural Tangents' stax 'ntk' parameterization), with a hand-written reverse mode.
//
// Activations are stored one example per row; an (N, H·W·C) NHWC batch has the same memory as
// an (N·H·W, C) row-major matrix, so a convolution is im2col + one GEMM with no reshuffling.
// With channel counts (and, for dense layers, batches or fan-ins) that are multiples of 8 the
// products run instead on register-blocked tiles that read their operands in place (no im2col,
// no packing); either way every sum's order depends on the shapes only, never on --threads.
#include "emergent/networks/network.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "emergent/core/random.hpp"
#include "detail/lanes.hpp"
#include "networks/panel_training.hpp"

namespace emergent {

namespace {

using ConstRowMap = Eigen::Map<const RowMatrix>;
using RowMap = Eigen::Map<RowMatrix>;

/// Geometry of one stride-1 2-D convolution (docs/conventions.md §2: `same` pads (F−1)//2 before and the
/// rest after; `circular` uses the same offset with wrapped indices; `valid` has no offset).
struct ConvGeometry {
  int in_h = 0, in_w = 0, in_c = 0;
  int out_h = 0, out_w = 0, out_c = 0;
  int fh = 1, fw = 1;
  int pad_h = 0, pad_w = 0;
  bool circular = false;

  Eigen::Index patch() const { return static_cast<Eigen::Index>(fh) * fw * in_c; }
  Eigen::Index out_pixels() const { return static_cast<Eigen::Index>(out_h) * out_w; }
};

ConvGeometry conv_geometry(const Layer& layer, const ExampleShape& in, const ExampleShape& out) {
  ConvGeometry g;
  g.in_h = in.height;
  g.in_w = in.width;
  g.in_c = in.channels;
  g.out_h = out.height;
  g.out_w = out.width;
  g.out_c = out.channels;
  g.fh = layer.filter_h;
  g.fw = layer.filter_w;
  if (layer.padding != Padding::Valid) {
    g.pad_h = (layer.filter_h - 1) / 2;
    g.pad_w = (layer.filter_w - 1) / 2;
  }
  g.circular = layer.padding == Padding::Circular;
  return g;
}

inline int wrap(int i, int n) {
  i %= n;
  return i < 0 ? i + n : i;
}

/// Source row (or column) of the input for output index o and filter offset f; -1 if it falls
/// into the zero padding.
inline int source_index(int o, int f, int pad, int n, bool circular) {
  const int i = o + f - pad;
  if (circular) return wrap(i, n);
  return (i < 0 || i >= n) ? -1 : i;
}

/// im2col: row (example, output pixel), columns (fh, fw, c_in) in the order of the weights.
void im2col(const double* in, Eigen::Index n, const ConvGeometry& g, RowMatrix& patches) {
  const Eigen::Index K = g.patch();
  patches.resize(n * g.out_pixels(), K);
  const Eigen::Index in_size = static_cast<Eigen::Index>(g.in_h) * g.in_w * g.in_c;
  const std::size_t c_bytes = sizeof(double) * static_cast<std::size_t>(g.in_c);
  for (Eigen::Index e = 0; e < n; ++e) {
    const double* x = in + e * in_size;
    for (int oh = 0; oh < g.out_h; ++oh) {
      for (int ow = 0; ow < g.out_w; ++ow) {
        double* row = patches.data() + ((e * g.out_h + oh) * g.out_w + ow) * K;
        for (int fh = 0; fh < g.fh; ++fh) {
          const int ih = source_index(oh, fh, g.pad_h, g.in_h, g.circular);
          for (int fw = 0; fw < g.fw; ++fw, row += g.in_c) {
            const int iw = source_index(ow, fw, g.pad_w, g.in_w, g.circular);
            if (ih < 0 || iw < 0) {
              std::fill(row, row + g.in_c, 0.0);
            } else {
              std::memcpy(row, x + (static_cast<Eigen::Index>(ih) * g.in_w + iw) * g.in_c, c_bytes);
            }
          }
        }
      }
    }
  }
}

/// The adjoint of im2col: scatter-add patch gradients back onto the input pixels.
void col2im(const RowMatrix& dpatches, Eigen::Index n, const ConvGeometry& g, double* din) {
  const Eigen::Index K = g.patch();
  const Eigen::Index in_size = static_cast<Eigen::Index>(g.in_h) * g.in_w * g.in_c;
  if (g.circular) {
    // Circular padding: every input pixel receives exactly one entry from each filter offset,
    // so gather them (each output written once, no zero fill). Output pixel o reads input
    // pixel i = o + f − pad (wrapped), hence i is read by o = i − f + pad (wrapped).
    for (Eigen::Index e = 0; e < n; ++e) {
      double* x = din + e * in_size;
      const double* rows = dpatches.data() + e * g.out_h * g.out_w * K;
      for (int ih = 0; ih < g.in_h; ++ih) {
        for (int iw = 0; iw < g.in_w; ++iw) {
          double* dst = x + (static_cast<Eigen::Index>(ih) * g.in_w + iw) * g.in_c;
          std::fill(dst, dst + g.in_c, 0.0);
          for (int fh = 0; fh < g.fh; ++fh) {
            const int oh = wrap(ih - fh + g.pad_h, g.out_h);
            for (int fw = 0; fw < g.fw; ++fw) {
              const int ow = wrap(iw - fw + g.pad_w, g.out_w);
              const double* src = rows + (static_cast<Eigen::Index>(oh) * g.out_w + ow) * K +
                                  (static_cast<Eigen::Index>(fh) * g.fw + fw) * g.in_c;
              for (int c = 0; c < g.in_c; ++c) dst[c] += src[c];
            }
          }
        }
      }
    }
    return;
  }
  std::fill(din, din + n * in_size, 0.0);
  for (Eigen::Index e = 0; e < n; ++e) {
    double* x = din + e * in_size;
    for (int oh = 0; oh < g.out_h; ++oh) {
      for (int ow = 0; ow < g.out_w; ++ow) {
        const double* row = dpatches.data() + ((e * g.out_h + oh) * g.out_w + ow) * K;
        for (int fh = 0; fh < g.fh; ++fh) {
          const int ih = source_index(oh, fh, g.pad_h, g.in_h, g.circular);
          for (int fw = 0; fw < g.fw; ++fw, row += g.in_c) {
            const int iw = source_index(ow, fw, g.pad_w, g.in_w, g.circular);
            if (ih < 0 || iw < 0) continue;
            double* dst = x + (static_cast<Eigen::Index>(ih) * g.in_w + iw) * g.in_c;
            for (int c = 0; c < g.in_c; ++c) dst[c] += row[c];
          }
        }
      }
    }
  }
}

// The panel-major layout of a dense layer's weights W (J × K, K a multiple of 8) that
// PanelTraining keeps while it trains (lib/networks/panel_training.hpp): the columns in panels of
// 32 (the last one K mod 32 wide if that is not 0), each panel's J rows of w entries contiguous,
// the panel of column k0 at offset J·k0:  W(j, k) = P[J·k0 + j·w + (k − k0)],  k0 = 32·⌊k/32⌋.
// A panel (128 KB for J = 512) is one sequential stream for the hardware prefetchers, where the
// same columns of the row-major W are J segments of 256 bytes on J different pages.
inline Eigen::Index panel_width(Eigen::Index K, Eigen::Index k0) { return std::min<Eigen::Index>(32, K - k0); }

void pack_panels(const double* W, Eigen::Index J, Eigen::Index K, double* P) {
  for (Eigen::Index k0 = 0; k0 < K; k0 += 32) {
    const Eigen::Index w = panel_width(K, k0);
    double* p = P + J * k0;
    for (Eigen::Index j = 0; j < J; ++j) std::memcpy(p + j * w, W + j * K + k0, sizeof(double) * static_cast<std::size_t>(w));
  }
}

void unpack_panels(const double* P, Eigen::Index J, Eigen::Index K, double* W) {
  for (Eigen::Index k0 = 0; k0 < K; k0 += 32) {
    const Eigen::Index w = panel_width(K, k0);
    const double* p = P + J * k0;
    for (Eigen::Index j = 0; j < J; ++j) std::memcpy(W + j * K + k0, p + j * w, sizeof(double) * static_cast<std::size_t>(w));
  }
}

// Direct convolution kernels. With C_out (forward, weight gradient) or C_in (input gradient) a
// multiple of 8, a stride-1 convolution is computed without materializing im2col: a tile of R
// rows × 8·NV columns of the result is held in vector registers while the taps and channels
// stream past (the register blocking of a GEMM micro-kernel, Goto & van de Geijn 2008, with
// the im2col rows read through the tap table instead of copied). The order of every sum depends
// on the shapes only, so results are the same at any thread count.
#if defined(__GNUC__) || defined(__clang__)
#define EMERGENT_DIRECT_CONV 1
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"  // vector values never cross the library's interface
#endif
using detail::Lanes;
using detail::load_lanes;
using detail::splat_lanes;
using detail::store_lanes;

/// taps[f·P_out + p]: the input pixel that output pixel p reads at filter offset f, or −1 (zero
/// padding); inverse[f·P_in + q]: the output pixel that reads input pixel q at offset f, or −1
/// (stride 1, so each input pixel is read at most once per offset).
struct ConvTaps {
  std::vector<int> taps, inverse;
};

ConvTaps conv_taps(const ConvGeometry& g) {
  const int F = g.fh * g.fw;
  const int P_out = g.out_h * g.out_w, P_in = g.in_h * g.in_w;
  ConvTaps t;
  t.taps.assign(static_cast<std::size_t>(F) * P_out, -1);
  t.inverse.assign(static_cast<std::size_t>(F) * P_in, -1);
  for (int fh = 0; fh < g.fh; ++fh)
    for (int fw = 0; fw < g.fw; ++fw) {
      const int f = fh * g.fw + fw;
      for (int oh = 0; oh < g.out_h; ++oh)
        for (int ow = 0; ow < g.out_w; ++ow) {
          const int ih = source_index(oh, fh, g.pad_h, g.in_h, g.circular);
          const int iw = source_index(ow, fw, g.pad_w, g.in_w, g.circular);
          if (ih < 0 || iw < 0) continue;
          const int p = oh * g.out_w + ow, q = ih * g.in_w + iw;
          t.taps[static_cast<std::size_t>(f) * P_out + p] = q;
          t.inverse[static_cast<std::size_t>(f) * P_in + q] = p;
        }
    }
  return t;
}

/// Rows [row0, row0 + rows) (rows ≤ R) and columns [j0, j0 + 8·NV) of the "gather product"
/// C = A·B where row i of A is the concatenation over offsets f of the C_a-long segment at
/// src(i, f) (zeros where −1) and B has F·C_a rows of stride ldb. Used for the forward pass
/// (A = im2col of x, B = Wᵀ) and the input gradient (A = im2col of g through the inverse taps,
/// B = W per offset). out = add + scale·C with `add` one row broadcast (or none).
template <int NV, int R>
void gather_tile(const double* a, Eigen::Index a_example, int a_channels, const int* table, int P_src, int P_dst,
                 int F, const double* b, Eigen::Index ldb, Eigen::Index b_offset_stride, const double* zeros,
                 Eigen::Index row0, int rows, int j0, double scale, const double* add, double* out,
                 Eigen::Index ldo) {
  Lanes acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Lanes{};
  const double* base[R];
  int pix[R];
  for (int r = 0; r < R; ++r) {
    const Eigen::Index row = row0 + (r < rows ? r : 0);
    const Eigen::Index e = row / P_dst;
    pix[r] = static_cast<int>(row - e * P_dst);
    base[r] = a + e * a_example;
  }
  (void)P_src;
  for (int f = 0; f < F; ++f) {
    const double* s[R];
    const int* tf = table + static_cast<std::ptrdiff_t>(f) * P_dst;
    for (int r = 0; r < R; ++r) {
      const int q = tf[pix[r]];
      s[r] = q < 0 ? zeros : base[r] + static_cast<Eigen::Index>(q) * a_channels;
    }
    const double* w = b + f * b_offset_stride + j0;
    for (int c = 0; c < a_channels; ++c, w += ldb) {
      Lanes bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = load_lanes(w + 8 * v);
      for (int r = 0; r < R; ++r) {
        const Lanes av = splat_lanes(s[r][c]);
        for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
      }
    }
  }
  for (int r = 0; r < rows; ++r) {
    double* o = out + (row0 + r) * ldo + j0;
    for (int v = 0; v < NV; ++v) {
      const Lanes base_v = add != nullptr ? load_lanes(add + j0 + 8 * v) : Lanes{};
      store_lanes(o + 8 * v, base_v + splat_lanes(scale) * acc[r][v]);
    }
  }
}

/// out (n·P_dst × width, row stride ldo) = add + scale·gather product, over column blocks of at
/// most 32 (width a multiple of 8).
void gather_product(const double* a, Eigen::Index a_example, int a_channels, const int* table, int P_src, int P_dst,
                    int F, const double* b, Eigen::Index ldb, Eigen::Index b_offset_stride, Eigen::Index rows_total,
                    int width, double scale, const double* add, double* out) {
  const std::vector<double> zeros(static_cast<std::size_t>(a_channels), 0.0);
  for (int j0 = 0; j0 < width; j0 += 32) {
    const int nv = std::min(4, (width - j0) / 8);
    auto run = [&](auto nv_tag, auto r_tag) {
      constexpr int NV = decltype(nv_tag)::value, R = decltype(r_tag)::value;
      for (Eigen::Index row0 = 0; row0 < rows_total; row0 += R)
        gather_tile<NV, R>(a, a_example, a_channels, table, P_src, P_dst, F, b, ldb, b_offset_stride, zeros.data(),
                           row0, static_cast<int>(std::min<Eigen::Index>(R, rows_total - row0)), j0, scale, add, out,
                           width);
    };
    switch (nv) {
      case 1: run(std::integral_constant<int, 1>{}, std::integral_constant<int, 24>{}); break;
      case 2: run(std::integral_constant<int, 2>{}, std::integral_constant<int, 12>{}); break;
      case 3: run(std::integral_constant<int, 3>{}, std::integral_constant<int, 8>{}); break;
      default: run(std::integral_constant<int, 4>{}, std::integral_constant<int, 6>{}); break;
    }
  }
}

/// Rows [k0, k0 + kr) (kr ≤ R) of dWᵀ (patch × C_out) += Σ_rows x_patch(row)[k]·g(row)[j0 …),
/// over the output rows [row_begin, row_end): the weight gradient without im2col.
template <int NV, int R>
void weight_grad_tile(const double* x, Eigen::Index in_size, int C_in, const int* taps, int P_out, const double* G,
                      int C_out, int k0, int kr, int j0, Eigen::Index row_begin, Eigen::Index row_end, double* dWt) {
  Lanes acc[R][NV];
  int tap_base[R], channel[R];
  for (int r = 0; r < R; ++r) {
    const int k = k0 + (r < kr ? r : 0);
    tap_base[r] = (k / C_in) * P_out;
    channel[r] = k % C_in;
    for (int v = 0; v < NV; ++v) acc[r][v] = load_lanes(dWt + static_cast<Eigen::Index>(k) * C_out + j0 + 8 * v);
  }
  Eigen::Index e = row_begin / P_out;
  int p = static_cast<int>(row_begin - e * P_out);
  const double* xe = x + e * in_size;
  for (Eigen::Index row = row_begin; row < row_end; ++row) {
    Lanes gv[NV];
    const double* grow = G + row * C_out + j0;
    for (int v = 0; v < NV; ++v) gv[v] = load_lanes(grow + 8 * v);
    for (int r = 0; r < R; ++r) {
      const int q = taps[tap_base[r] + p];
      const Lanes av = splat_lanes(q < 0 ? 0.0 : xe[static_cast<Eigen::Index>(q) * C_in + channel[r]]);
      for (int v = 0; v < NV; ++v) acc[r][v] += av * gv[v];
    }
    if (++p == P_out) {
      p = 0;
      xe += in_size;
    }
  }
  for (int r = 0; r < kr; ++r)
    for (int v = 0; v < NV; ++v) store_lanes(dWt + static_cast<Eigen::Index>(k0 + r) * C_out + j0 + 8 * v, acc[r][v]);
}

/// dWᵀ (patch × C_out) = Σ over all n·P_out output rows of im2col(x)ᵀ·G, in row chunks that
/// stay in cache; C_out a multiple of 8.
void weight_gradient(const double* x, Eigen::Index in_size, int C_in, const int* taps, int P_out, int F,
                     const double* G, Eigen::Index rows_total, int C_out, double* dWt) {
  const int patch = F * C_in;
  std::fill(dWt, dWt + static_cast<Eigen::Index>(patch) * C_out, 0.0);
  constexpr Eigen::Index kChunk = 256;
  for (Eigen::Index rb = 0; rb < rows_total; rb += kChunk) {
    const Eigen::Index re = std::min(rows_total, rb + kChunk);
    for (int j0 = 0; j0 < C_out; j0 += 32) {
      const int nv = std::min(4, (C_out - j0) / 8);
      auto run = [&](auto nv_tag, auto r_tag) {
        constexpr int NV = decltype(nv_tag)::value, R = decltype(r_tag)::value;
        for (int k0 = 0; k0 < patch; k0 += R)
          weight_grad_tile<NV, R>(x, in_size, C_in, taps, P_out, G, C_out, k0, std::min(R, patch - k0), j0, rb, re,
                                  dWt);
      };
      switch (nv) {
        case 1: run(std::integral_constant<int, 1>{}, std::integral_constant<int, 24>{}); break;
        case 2: run(std::integral_constant<int, 2>{}, std::integral_constant<int, 12>{}); break;
        case 3: run(std::integral_constant<int, 3>{}, std::integral_constant<int, 8>{}); break;
        default: run(std::integral_constant<int, 4>{}, std::integral_constant<int, 6>{}); break;
      }
    }
  }
}
/// Rows [o0, o0 + rows) (rows ≤ R) and columns f·C_in + [c0, c0 + 8·NV) of dW (C_out × patch) +=
/// Σ_rows g(row)[o]·x(tap f of row)[c], over the output rows [row_begin, row_end): one tap
/// look-up per row for the whole tile (C_in a multiple of 8).
template <int NV, int R>
void weight_grad_tile_in(const double* x, Eigen::Index in_size, int C_in, const int* taps_f, int P_out,
                         const double* G, int C_out, int o0, int rows, int f, int c0, Eigen::Index row_begin,
                         Eigen::Index row_end, double* dW, Eigen::Index patch) {
  Lanes acc[R][NV];
  int o[R];
  for (int r = 0; r < R; ++r) {
    o[r] = o0 + (r < rows ? r : 0);
    for (int v = 0; v < NV; ++v)
      acc[r][v] = load_lanes(dW + static_cast<Eigen::Index>(o[r]) * patch + static_cast<Eigen::Index>(f) * C_in + c0 + 8 * v);
  }
  Eigen::Index e = row_begin / P_out;
  int p = static_cast<int>(row_begin - e * P_out);
  const double* xe = x + e * in_size + c0;
  for (Eigen::Index row = row_begin; row < row_end; ++row) {
    const int q = taps_f[p];
    if (q >= 0) {
      Lanes xv[NV];
      const double* xr = xe + static_cast<Eigen::Index>(q) * C_in;
      for (int v = 0; v < NV; ++v) xv[v] = load_lanes(xr + 8 * v);
      const double* grow = G + row * C_out;
      for (int r = 0; r < R; ++r) {
        const Lanes gv = splat_lanes(grow[o[r]]);
        for (int v = 0; v < NV; ++v) acc[r][v] += gv * xv[v];
      }
    }
    if (++p == P_out) {
      p = 0;
      xe += in_size;
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < NV; ++v)
      store_lanes(dW + static_cast<Eigen::Index>(o0 + r) * patch + static_cast<Eigen::Index>(f) * C_in + c0 + 8 * v,
             acc[r][v]);
}

/// dW (C_out × patch) = Σ over all n·P_out output rows of Gᵀ·im2col(x), in row chunks that stay
/// in cache; C_in a multiple of 8.
void weight_gradient_in(const double* x, Eigen::Index in_size, int C_in, const int* taps, int P_out, int F,
                        const double* G, Eigen::Index rows_total, int C_out, double* dW) {
  const Eigen::Index patch = static_cast<Eigen::Index>(F) * C_in;
  std::fill(dW, dW + patch * C_out, 0.0);
  constexpr Eigen::Index kChunk = 256;
  for (Eigen::Index rb = 0; rb < rows_total; rb += kChunk) {
    const Eigen::Index re = std::min(rows_total, rb + kChunk);
    for (int f = 0; f < F; ++f)
      for (int c0 = 0; c0 < C_in; c0 += 32) {
        const int nv = std::min(4, (C_in - c0) / 8);
        auto run = [&](auto nv_tag, auto r_tag) {
          constexpr int NV = decltype(nv_tag)::value, R = decltype(r_tag)::value;
          for (int o0 = 0; o0 < C_out; o0 += R)
            weight_grad_tile_in<NV, R>(x, in_size, C_in, taps + static_cast<std::ptrdiff_t>(f) * P_out, P_out, G,
                                       C_out, o0, std::min(R, C_out - o0), f, c0, rb, re, dW, patch);
        };
        switch (nv) {
          case 1: run(std::integral_constant<int, 1>{}, std::integral_constant<int, 12>{}); break;
          case 2: run(std::integral_constant<int, 2>{}, std::integral_constant<int, 8>{}); break;
          case 3: run(std::integral_constant<int, 3>{}, std::integral_constant<int, 5>{}); break;
          default: run(std::integral_constant<int, 4>{}, std::integral_constant<int, 4>{}); break;
        }
      }
  }
}
/// How sum_tile leaves its R × 8·NV result in C: scaled (C = alpha·Σ), as a partial sum that a
/// later call resumes (C = Σ), or added scaled (C += alpha·Σ).
enum class TileStore { kScaled, kPartial, kAddScaled };

/// Rows [0, rows) (rows ≤ R) and 8·NV columns of Σ_k A(r, k)·B(k, ·), A(r, k) = a[r·a_rs + k·a_cs]
/// read as broadcasts, B row-major (ldb). With `resume` the sum starts from C's partial sums, so
/// a sum split over consecutive k-ranges adds its terms in the same order as one call.
/// Forward epilogue (kScaled only, `row_add` or `act` non-null): C(r, ·) = alpha·Σ + row_add[r]
/// (two roundings, as a separate bias pass gives), and act(r, ·) = φ(C(r, ·)) for the
/// piecewise-linear φ(x) = x < 0 ? slope_neg·x : slope_pos·x, so that a dense layer followed by
/// such an activation writes its transposed output and its activation in one pass.
struct TileEpilogue {
  const double* row_add = nullptr;
  double* act = nullptr;
  double slope_neg = 0.0, slope_pos = 1.0;
};

// The epilogue of the tile whose first entry is (row0, j0) of a matrix with leading dimension
// ldc: its per-row and activation pointers moved to that tile (kept in `tile`), or null.
const TileEpilogue* tile_epilogue(const TileEpilogue* epilogue, Eigen::Index row0, Eigen::Index ldc, Eigen::Index j0,
                                  TileEpilogue& tile) {
  if (epilogue == nullptr) return nullptr;
  tile = *epilogue;
  if (tile.row_add != nullptr) tile.row_add += row0;
  if (tile.act != nullptr) tile.act += row0 * ldc + j0;
  return &tile;
}

// The forward epilogue of a tile of R rows × 8·NV columns of sums: z = alpha·Σ (+ the row's
// addend, rounded after the product: no fused multiply-add) into c, and the activation's
// piecewise-linear image of z into epilogue.act when it is wanted.
template <int NV, int R>
__attribute__((always_inline)) inline void store_forward_tile(const Lanes (&acc)[R][NV], int rows, double alpha, double* c,
                                                              Eigen::Index ldc, const TileEpilogue& epilogue) {
  const Lanes al = splat_lanes(alpha);
  const Lanes an = splat_lanes(epilogue.slope_neg), ap = splat_lanes(epilogue.slope_pos);
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < NV; ++v) {
      Lanes z = al * acc[r][v];
      if (epilogue.row_add != nullptr) {
#if defined(__AVX512F__)
        asm("" : "+v"(z));  // keep alpha·Σ rounded before the addend (no fused multiply-add)
#else
        asm("" : "+m"(z));
#endif
        z += splat_lanes(epilogue.row_add[r]);
      }
      store_lanes(c + r * ldc + 8 * v, z);
      if (epilogue.act != nullptr) store_lanes(epilogue.act + r * ldc + 8 * v, z < 0.0 ? an * z : ap * z);
    }
}

template <int NV, int R>
void sum_tile(const double* a, Eigen::Index a_rs, Eigen::Index a_cs, Eigen::Index K, const double* b,
              Eigen::Index ldb, int rows, bool resume, TileStore store, double alpha, double* c, Eigen::Index ldc,
              const TileEpilogue* epilogue = nullptr) {
  Lanes acc[R][NV];
  const double* ar[R];
  for (int r = 0; r < R; ++r) {
    ar[r] = a + (r < rows ? r : 0) * a_rs;
    for (int v = 0; v < NV; ++v) acc[r][v] = resume && r < rows ? load_lanes(c + r * ldc + 8 * v) : Lanes{};
  }
  for (Eigen::Index k = 0; k < K; ++k, b += ldb) {
    Lanes bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load_lanes(b + 8 * v);
    const Eigen::Index off = k * a_cs;
    for (int r = 0; r < R; ++r) {
      const Lanes av = splat_lanes(ar[r][off]);
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }
  const Lanes al = splat_lanes(alpha);
  if (epilogue != nullptr) {
    store_forward_tile<NV, R>(acc, rows, alpha, c, ldc, *epilogue);
    return;
  }
  for (int r = 0; r < rows; ++r) {
    double* o = c + r * ldc;
    for (int v = 0; v < NV; ++v)
      store_lanes(o + 8 * v, store == TileStore::kPartial  ? acc[r][v]
                        : store == TileStore::kScaled ? al * acc[r][v]
                                                      : load_lanes(o + 8 * v) + al * acc[r][v]);
  }
}

/// C (M × N, row stride ldc) = alpha·A·B (or += when `accumulate`), N a multiple of 8; A(i, k) =
/// a[i·a_rs + k·a_cs] (any strides, read as broadcasts), B (K × N) row-major. rows_outer: all column blocks of a row tile before the next
/// (C and A's rows streamed once), else all row tiles of a column block (B's panel reused from
/// cache). Fixed tiles either way: the bits depend on the shapes only.
void strided_product(const double* a, Eigen::Index a_rs, Eigen::Index a_cs, Eigen::Index M, Eigen::Index K,
                     const double* b, Eigen::Index ldb, Eigen::Index N, double alpha, bool accumulate, double* c,
                     Eigen::Index ldc, bool rows_outer, const TileEpilogue* epilogue = nullptr) {
  // One row tile height for the whole product (6 rows × 32 columns = 24 accumulators), the
  // narrower last column block with the same rows.
  constexpr int R = 6;
  const TileStore store = accumulate ? TileStore::kAddScaled : TileStore::kScaled;
  auto block = [&](Eigen::Index row0, int rows, Eigen::Index j0) {
    const double* ar = a + row0 * a_rs;
    double* cr = c + row0 * ldc + j0;
    TileEpilogue tile;
    const TileEpilogue* ep = tile_epilogue(epilogue, row0, ldc, j0, tile);
    switch (std::min<Eigen::Index>(4, (N - j0) / 8)) {
      case 1: sum_tile<1, R>(ar, a_rs, a_cs, K, b + j0, ldb, rows, false, store, alpha, cr, ldc, ep); break;
      case 2: sum_tile<2, R>(ar, a_rs, a_cs, K, b + j0, ldb, rows, false, store, alpha, cr, ldc, ep); break;
      case 3: sum_tile<3, R>(ar, a_rs, a_cs, K, b + j0, ldb, rows, false, store, alpha, cr, ldc, ep); break;
      default: sum_tile<4, R>(ar, a_rs, a_cs, K, b + j0, ldb, rows, false, store, alpha, cr, ldc, ep); break;
    }
  };
  const Eigen::Index row_tiles = (M + R - 1) / R, col_blocks = (N + 31) / 32;
  for (Eigen::Index outer = 0; outer < (rows_outer ? row_tiles : col_blocks); ++outer)
    for (Eigen::Index inner = 0; inner < (rows_outer ? col_blocks : row_tiles); ++inner) {
      const Eigen::Index row0 = (rows_outer ? outer : inner) * R, j0 = (rows_outer ? inner : outer) * 32;
      block(row0, static_cast<int>(std::min<Eigen::Index>(R, M - row0)), j0);
    }
}

/// Rows in the next tile of descend_panel when `left` rows remain: 6 (24 accumulators), but the
/// last 8 or 4 rows (or fewer) as 4-row tiles, so that 128 = 20·6 + 2·4 and 64 = 10·6 + 4 rows
/// compute no padding rows (6-row tiles alone would compute 132 and 66). Tiling never changes
/// the order of any entry's sum.
inline Eigen::Index tile_height(Eigen::Index left) {
  return left == 8 || left <= 5 ? std::min<Eigen::Index>(4, left) : 6;
}

/// Columns [k0, k0 + 8·NV) of a dense layer's descent step (see descend_dense).
template <int NV>
void descend_panel(double* W, Eigen::Index J, Eigen::Index K, const double* g, const double* gt, const double* h,
                   Eigen::Index n, Eigen::Index k0, double scale, double alpha, double* dh) {
  constexpr Eigen::Index kRows = 128;  // a 128 × 32 block of W: 32 KB, in L1 with the tiles' operands
  constexpr int R = 6;
  alignas(64) double block[kRows * 32];
  // h[:, panel] packed contiguous (its rows, 8·K bytes apart, would evict each other from L1
  // when K·8 is a multiple of 4 KB); read by every row tile of the update
  thread_local std::vector<double, Eigen::aligned_allocator<double>> packed;  // rows on cache lines
  packed.resize(static_cast<std::size_t>(n) * 32);
  double* hp = packed.data();
  for (Eigen::Index e = 0; e < n; ++e)
    for (int v = 0; v < NV; ++v) store_lanes(hp + e * 32 + 8 * v, load_lanes(h + e * K + k0 + 8 * v));
  for (Eigen::Index j0 = 0; j0 < J; j0 += kRows) {
    const Eigen::Index rows = std::min(kRows, J - j0);
    for (Eigen::Index j = 0; j < rows; ++j)
      for (int v = 0; v < NV; ++v) store_lanes(block + j * 32 + 8 * v, load_lanes(W + (j0 + j) * K + k0 + 8 * v));
    // dh[:, panel] (+)= g[:, j0 … j0+rows)·W[j0 … , panel], scaled once the last block is in
    const TileStore dh_store = j0 + rows == J ? TileStore::kScaled : TileStore::kPartial;
    for (Eigen::Index e = 0, h; e < n; e += h) {
      h = tile_height(n - e);
      if (h == R)
        sum_tile<NV, R>(g + e * J + j0, J, 1, rows, block, 32, R, j0 > 0, dh_store, scale, dh + e * K + k0, K);
      else
        sum_tile<NV, 4>(g + e * J + j0, J, 1, rows, block, 32, static_cast<int>(h), j0 > 0, dh_store, scale,
                        dh + e * K + k0, K);
    }
    // then W[j0 … , panel] += alpha·gᵀ·h[:, panel], summed over the examples in order
    for (Eigen::Index j = 0, h; j < rows; j += h) {
      h = tile_height(rows - j);
      if (h == R)
        sum_tile<NV, R>(gt + (j0 + j) * n, n, 1, n, hp, 32, R, false, TileStore::kAddScaled, alpha, block + j * 32, 32);
      else
        sum_tile<NV, 4>(gt + (j0 + j) * n, n, 1, n, hp, 32, static_cast<int>(h), false, TileStore::kAddScaled, alpha,
                        block + j * 32, 32);
    }
    for (Eigen::Index j = 0; j < rows; ++j)
      for (int v = 0; v < NV; ++v) store_lanes(W + (j0 + j) * K + k0 + 8 * v, load_lanes(block + j * 32 + 8 * v));
  }
}

/// A dense layer's part of one gradient-descent step in one pass over its weights W (J × K,
/// row-major, K a multiple of 8): the input gradient dh = scale·g·W from the weights before the
/// step, and W += alpha·gᵀ·h (alpha = −η·scale), with g (n × J) the gradient at the layer's
/// output, gt = gᵀ and h (n × K) its input. W is visited in 128-row × 32-column blocks copied to
/// a contiguous buffer (rows of W are 4 KB apart and would evict each other from L1): each block
/// is read once, multiplied into dh and updated in L1, and written back once, where the two
/// separate products read W twice and Eigen's packs it. dh sums over j in increasing order
/// (partial sums kept in dh between blocks), the update over the examples in order, as
/// strided_product does: the bits depend on the shapes only.
void descend_dense(double* W, Eigen::Index J, Eigen::Index K, const double* g, const double* gt, const double* h,
                   Eigen::Index n, double scale, double alpha, double* dh) {
  for (Eigen::Index k0 = 0; k0 < K; k0 += 32) {
    switch (std::min<Eigen::Index>(4, (K - k0) / 8)) {
      case 1: descend_panel<1>(W, J, K, g, gt, h, n, k0, scale, alpha, dh); break;
      case 2: descend_panel<2>(W, J, K, g, gt, h, n, k0, scale, alpha, dh); break;
      case 3: descend_panel<3>(W, J, K, g, gt, h, n, k0, scale, alpha, dh); break;
      default: descend_panel<4>(W, J, K, g, gt, h, n, k0, scale, alpha, dh); break;
    }
  }
}
typedef long long Lane8 __attribute__((vector_size(64)));

/// The 8 × 8 block at src (row stride ls) transposed into dst (row stride ld): 8 row loads, three
/// rounds of two-source lane shuffles (1-, 2- and 4-element interleaves), 8 row stores.
inline void transpose8x8(const double* src, Eigen::Index ls, double* dst, Eigen::Index ld) {
  Lanes r[8], a[8], b[8];
  for (int i = 0; i < 8; ++i) r[i] = load_lanes(src + i * ls);
  const Lane8 lo1{0, 8, 2, 10, 4, 12, 6, 14}, hi1{1, 9, 3, 11, 5, 13, 7, 15};
  const Lane8 lo2{0, 1, 8, 9, 4, 5, 12, 13}, hi2{2, 3, 10, 11, 6, 7, 14, 15};
  const Lane8 lo4{0, 1, 2, 3, 8, 9, 10, 11}, hi4{4, 5, 6, 7, 12, 13, 14, 15};
  for (int i = 0; i < 8; i += 2) {
    a[i] = __builtin_shuffle(r[i], r[i + 1], lo1);  // (r_i, r_i+1) at even columns
    a[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi1);  // … at odd columns
  }
  for (int i = 0; i < 8; i += 4)
    for (int p = 0; p < 2; ++p) {
      b[i + p] = __builtin_shuffle(a[i + p], a[i + p + 2], lo2);      // columns p, p+4
      b[i + p + 2] = __builtin_shuffle(a[i + p], a[i + p + 2], hi2);  // columns p+2, p+6
    }
  for (int c = 0; c < 4; ++c) {
    store_lanes(dst + c * ld, __builtin_shuffle(b[c], b[c + 4], lo4));
    store_lanes(dst + (c + 4) * ld, __builtin_shuffle(b[c], b[c + 4], hi4));
  }
}

/// d (C × R, row stride R) = sᵀ for s (R × C, row stride C), in 8 × 8 register blocks (an
/// element-wise transpose of a 64 × 512 batch reads or writes rows 4 KB apart, one element at a
/// time); edges that are not whole blocks by loops.
void transpose_into(const double* s, Eigen::Index R, Eigen::Index C, double* d) {
  const Eigen::Index R8 = R - R % 8, C8 = C - C % 8;
  for (Eigen::Index i0 = 0; i0 < R8; i0 += 8)
    for (Eigen::Index j0 = 0; j0 < C8; j0 += 8) transpose8x8(s + i0 * C + j0, C, d + j0 * R + i0, R);
  for (Eigen::Index i = 0; i < R; ++i)
    for (Eigen::Index j = (i < R8 ? C8 : 0); j < C; ++j) d[j * R + i] = s[i * C + j];
}

/// dst = srcᵀ (see transpose_into).
void transpose_to(const RowMatrix& src, RowMatrix& dst) {
  dst.resize(src.cols(), src.rows());
  transpose_into(src.data(), src.rows(), src.cols(), dst.data());
}

/// φ' of a piecewise-linear activation (slope_neg below 0, slope_pos above, at_zero at the kink)
/// evaluated at `pre`, to be multiplied into the gradient that leaves a dense layer's backward
/// step (the activation's backward pass, done while that gradient is still in L1).
struct SlopeEpilogue {
  const double* pre = nullptr;  ///< the activation's input, transposed (K × n)
  double slope_neg = 0.0, slope_pos = 1.0, at_zero = 0.0;
};

/// g[i] *= φ'(pre[i]) for i < size (size a multiple of 8), by lane selects (the signs of relu's
/// inputs are random: a branch per entry mispredicts half the time).
inline void multiply_slopes(const double* pre, double* g, Eigen::Index size, double slope_neg, double slope_pos,
                            double at_zero) {
  const Lanes va = splat_lanes(slope_neg), vb = splat_lanes(slope_pos), v0 = splat_lanes(at_zero);
  const Lanes zero = splat_lanes(0.0);
  for (Eigen::Index i = 0; i < size; i += 8) {
    const Lanes x = load_lanes(pre + i);
    const Lanes d = x > zero ? vb : (x < zero ? va : v0);
    store_lanes(g + i, load_lanes(g + i) * d);
  }
}

/// Columns [k0, k0 + 8·NV) of a dense layer's descent step with the activations transposed (see
/// descend_dense_transposed): the same blocks, tiles and sums as descend_panel, reading g from
/// gᵀ and h from hᵀ, and leaving the panel of dh transposed.
template <int NV>
void descend_panel_transposed(double* W, Eigen::Index J, Eigen::Index K, const double* gt, const double* ht,
                              Eigen::Index n, Eigen::Index k0, double scale, double alpha, double* dht,
                              const SlopeEpilogue* slopes) {
  // A 64 × 32 block of W (16 KB): with h's panel and dh's partial sums (16 KB each for n = 64)
  // the tiles' operands stay in L1's 48 KB (128-row blocks measured 2–5 % slower)
  constexpr Eigen::Index kRows = 64;
  constexpr int R = 6;
  alignas(64) double block[kRows * 32];
  // h[:, panel] (n × 32, from 32 rows of hᵀ) and the panel's partial sums of dh (n × 32), on
  // 64-byte aligned rows
  thread_local std::vector<double, Eigen::aligned_allocator<double>> scratch;
  scratch.resize(static_cast<std::size_t>(n) * 64);
  double* hp = scratch.data();
  double* dp = hp + n * 32;
  for (Eigen::Index e = 0; e < n; e += 8)
    for (int v = 0; v < NV; ++v) transpose8x8(ht + (k0 + 8 * v) * n + e, n, hp + e * 32 + 8 * v, 32);
  for (Eigen::Index j0 = 0; j0 < J; j0 += kRows) {
    const Eigen::Index rows = std::min(kRows, J - j0);
    for (Eigen::Index j = 0; j < rows; ++j)
      for (int v = 0; v < NV; ++v) store_lanes(block + j * 32 + 8 * v, load_lanes(W + (j0 + j) * K + k0 + 8 * v));
    // dh[:, panel] (+)= g[:, j0 … j0+rows)·W[j0 … , panel] (g(e, j) = gᵀ(j, e): six consecutive
    // examples per broadcast row), scaled once the last block is in
    const TileStore dh_store = j0 + rows == J ? TileStore::kScaled : TileStore::kPartial;
    for (Eigen::Index e = 0, h; e < n; e += h) {
      h = tile_height(n - e);
      if (h == R)
        sum_tile<NV, R>(gt + j0 * n + e, 1, n, rows, block, 32, R, j0 > 0, dh_store, scale, dp + e * 32, 32);
      else
        sum_tile<NV, 4>(gt + j0 * n + e, 1, n, rows, block, 32, static_cast<int>(h), j0 > 0, dh_store, scale,
                        dp + e * 32, 32);
    }
    // then W[j0 … , panel] += alpha·gᵀ·h[:, panel], summed over the examples in order
    for (Eigen::Index j = 0, h; j < rows; j += h) {
      h = tile_height(rows - j);
      if (h == R)
        sum_tile<NV, R>(gt + (j0 + j) * n, n, 1, n, hp, 32, R, false, TileStore::kAddScaled, alpha, block + j * 32, 32);
      else
        sum_tile<NV, 4>(gt + (j0 + j) * n, n, 1, n, hp, 32, static_cast<int>(h), false, TileStore::kAddScaled, alpha,
                        block + j * 32, 32);
    }
    for (Eigen::Index j = 0; j < rows; ++j)
      for (int v = 0; v < NV; ++v) store_lanes(W + (j0 + j) * K + k0 + 8 * v, load_lanes(block + j * 32 + 8 * v));
  }
  for (Eigen::Index e = 0; e < n; e += 8)
    for (int v = 0; v < NV; ++v) transpose8x8(dp + e * 32 + 8 * v, 32, dht + (k0 + 8 * v) * n + e, n);
  if (slopes != nullptr)
    multiply_slopes(slopes->pre + k0 * n, dht + k0 * n, 8 * NV * n, slopes->slope_neg, slopes->slope_pos,
                    slopes->at_zero);
}

/// descend_dense with the layer's activations and gradients stored transposed, examples along
/// the rows' contiguous axis: gt = gᵀ (J × n), ht = hᵀ (K × n), dht = dhᵀ (K × n), with n and K
/// multiples of 8. Every entry is summed in the order descend_dense uses (same bits). With
/// `slopes`, dhᵀ leaves multiplied by φ'(pre), panel by panel.
void descend_dense_transposed(double* W, Eigen::Index J, Eigen::Index K, const double* gt, const double* ht,
                              Eigen::Index n, double scale, double alpha, double* dht,
                              const SlopeEpilogue* slopes = nullptr) {
  for (Eigen::Index k0 = 0; k0 < K; k0 += 32) {
    switch (std::min<Eigen::Index>(4, (K - k0) / 8)) {
      case 1: descend_panel_transposed<1>(W, J, K, gt, ht, n, k0, scale, alpha, dht, slopes); break;
      case 2: descend_panel_transposed<2>(W, J, K, gt, ht, n, k0, scale, alpha, dht, slopes); break;
      case 3: descend_panel_transposed<3>(W, J, K, gt, ht, n, k0, scale, alpha, dht, slopes); break;
      default: descend_panel_transposed<4>(W, J, K, gt, ht, n, k0, scale, alpha, dht, slopes); break;
    }
  }
}

/// Rows [row0, row0 + rows) and 8·NV columns of alpha·W·B for W in panels (above) and B (K × ·,
/// row stride ldb): sum_tile's sums, k in increasing order through the panels (the same bits as
/// sum_tile on the row-major W), and its store and forward epilogue.
template <int NV, int R>
void panel_tile(const double* P, Eigen::Index J, Eigen::Index K, Eigen::Index row0, int rows, const double* b,
                Eigen::Index ldb, double alpha, double* c, Eigen::Index ldc, const TileEpilogue* epilogue) {
  Lanes acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Lanes{};
  for (Eigen::Index k0 = 0; k0 < K; k0 += 32) {
    const Eigen::Index w = panel_width(K, k0);
    const double* ar[R];
    for (int r = 0; r < R; ++r) ar[r] = P + J * k0 + (row0 + (r < rows ? r : 0)) * w;
    for (Eigen::Index k = 0; k < w; ++k, b += ldb) {
      Lanes bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = load_lanes(b + 8 * v);
      for (int r = 0; r < R; ++r) {
        const Lanes av = splat_lanes(ar[r][k]);
        for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
      }
    }
  }
  if (epilogue != nullptr) {
    store_forward_tile<NV, R>(acc, rows, alpha, c, ldc, *epilogue);
    return;
  }
  const Lanes al = splat_lanes(alpha);
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < NV; ++v) store_lanes(c + r * ldc + 8 * v, al * acc[r][v]);
}

/// C (J × N, row stride N) = alpha·W·B with W (J × K) in panels and B (K × N) row-major, N a
/// multiple of 8: strided_product(W, K, 1, J, K, B, N, N, alpha, false, C, N, true, epilogue)
/// with W read from its panels, the same tiles and bits.
void panel_product(const double* P, Eigen::Index J, Eigen::Index K, const double* b, Eigen::Index N, double alpha,
                   double* c, const TileEpilogue* epilogue) {
  constexpr int R = 6;
  for (Eigen::Index row0 = 0; row0 < J; row0 += R) {
    const int rows = static_cast<int>(std::min<Eigen::Index>(R, J - row0));
    for (Eigen::Index j0 = 0; j0 < N; j0 += 32) {
      double* cr = c + row0 * N + j0;
      TileEpilogue tile;
      const TileEpilogue* ep = tile_epilogue(epilogue, row0, N, j0, tile);
      switch (std::min<Eigen::Index>(4, (N - j0) / 8)) {
        case 1: panel_tile<1, R>(P, J, K, row0, rows, b + j0, N, alpha, cr, N, ep); break;
        case 2: panel_tile<2, R>(P, J, K, row0, rows, b + j0, N, alpha, cr, N, ep); break;
        case 3: panel_tile<3, R>(P, J, K, row0, rows, b + j0, N, alpha, cr, N, ep); break;
        default: panel_tile<4, R>(P, J, K, row0, rows, b + j0, N, alpha, cr, N, ep); break;
      }
    }
  }
}

/// sum_tile over the examples: rows [kk, kk + h) of dhᵀ for one panel, all 8·NV-example column
/// blocks of [e0, e0 + …) as one call each (h ≤ 6).
template <int R>
void panel_dh_rows(const double* Pp, Eigen::Index J, Eigen::Index w, Eigen::Index kk, int h, const double* gt,
                   Eigen::Index n, double scale, double* dht) {
  for (Eigen::Index e0 = 0; e0 < n; e0 += 32) {
    const double* a = Pp + kk;
    double* c = dht + kk * n + e0;
    switch (std::min<Eigen::Index>(4, (n - e0) / 8)) {
      case 1: sum_tile<1, R>(a, 1, w, J, gt + e0, n, h, false, TileStore::kScaled, scale, c, n); break;
      case 2: sum_tile<2, R>(a, 1, w, J, gt + e0, n, h, false, TileStore::kScaled, scale, c, n); break;
      case 3: sum_tile<3, R>(a, 1, w, J, gt + e0, n, h, false, TileStore::kScaled, scale, c, n); break;
      default: sum_tile<4, R>(a, 1, w, J, gt + e0, n, h, false, TileStore::kScaled, scale, c, n); break;
    }
  }
}

/// W's rows [0, rows) (rows ≤ R, row stride ldw) += alpha·Σ_e gᵀ(j, e)·h(e, ·) over the n
/// examples in order, for 8·NV columns (h packed with rows of 32): sum_tile's update tile, ending
/// in one fused multiply-add per entry, W + alpha·Σ rounded once, as the row-major step's
/// (contracted) update does.
template <int NV, int R>
void update_tile(const double* gt, Eigen::Index n, const double* hp, int rows, double alpha, double* w,
                 Eigen::Index ldw) {
  Lanes acc[R][NV];
  const double* ar[R];
  for (int r = 0; r < R; ++r) {
    ar[r] = gt + (r < rows ? r : 0) * n;
    for (int v = 0; v < NV; ++v) acc[r][v] = Lanes{};
  }
  for (Eigen::Index e = 0; e < n; ++e, hp += 32) {
    Lanes bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load_lanes(hp + 8 * v);
    for (int r = 0; r < R; ++r) {
      const Lanes av = splat_lanes(ar[r][e]);
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < NV; ++v) {
      double* o = w + r * ldw + 8 * v;
#if defined(__AVX512F__)
      _mm512_storeu_pd(o, _mm512_fmadd_pd(_mm512_set1_pd(alpha), (__m512d)acc[r][v], _mm512_loadu_pd(o)));
#else
      for (int i = 0; i < 8; ++i) o[i] = std::fma(alpha, acc[r][v][i], o[i]);
#endif
    }
}

/// One panel (columns [k0, k0 + 8·NV)) of descend_dense_panels: first the panel's rows of
/// dhᵀ = scale·Wᵀ·gᵀ, each entry one sum over all J outputs in increasing order held in registers
/// (the examples along the vectors, the panel's entries as broadcasts: no partial sums, no
/// transposes), from the weights before the step; then W[:, panel] += alpha·gᵀ·h[:, panel] in
/// place, while the next panel is prefetched into L2 (`next`, `next_w` wide; null for none).
template <int NV>
void descend_panel_major(double* Pp, Eigen::Index J, const double* gt, const double* ht, Eigen::Index n,
                         double scale, double alpha, double* dht, const double* next, Eigen::Index next_w,
                         const double* pre, const SlopeEpilogue* slopes) {
  constexpr int R = 6;
  constexpr Eigen::Index w = 8 * NV;
  for (Eigen::Index kk = 0, h; kk < w; kk += h) {
    h = tile_height(w - kk);
    if (h == R)
      panel_dh_rows<R>(Pp, J, w, kk, R, gt, n, scale, dht);
    else
      panel_dh_rows<4>(Pp, J, w, kk, static_cast<int>(h), gt, n, scale, dht);
  }
  if (slopes != nullptr) multiply_slopes(pre, dht, w * n, slopes->slope_neg, slopes->slope_pos, slopes->at_zero);
  // h[:, panel] (n × 8·NV, from 8·NV rows of hᵀ), on 64-byte aligned rows
  thread_local std::vector<double, Eigen::aligned_allocator<double>> scratch;
  scratch.resize(static_cast<std::size_t>(n) * 32);
  double* hp = scratch.data();
  for (Eigen::Index e = 0; e < n; e += 8)
    for (int v = 0; v < NV; ++v) transpose8x8(ht + 8 * v * n + e, n, hp + e * 32 + 8 * v, 32);
  for (Eigen::Index j = 0, h; j < J; j += h) {
    h = tile_height(J - j);
    if (next != nullptr)
      for (Eigen::Index i = j * next_w; i < (j + h) * next_w; i += 8) __builtin_prefetch(next + i, 0, 2);
    if (h == R)
      update_tile<NV, R>(gt + j * n, n, hp, R, alpha, Pp + j * w, w);
    else
      update_tile<NV, 4>(gt + j * n, n, hp, static_cast<int>(h), alpha, Pp + j * w, w);
  }
}

/// descend_dense_transposed with W in panels (above): the same sums in the same order, so the
/// same bits for dhᵀ and W, without copying W's blocks through L1 (a panel is read in place and
/// streamed from L2) and with dhᵀ's entries summed in registers over all J outputs.
void descend_dense_panels(double* P, Eigen::Index J, Eigen::Index K, const double* gt, const double* ht,
                          Eigen::Index n, double scale, double alpha, double* dht,
                          const SlopeEpilogue* slopes = nullptr) {
  for (Eigen::Index k0 = 0; k0 < K; k0 += 32) {
    const Eigen::Index w = panel_width(K, k0);
    const double* next = k0 + 32 < K ? P + J * (k0 + 32) : nullptr;
    const Eigen::Index next_w = next != nullptr ? panel_width(K, k0 + 32) : 0;
    const double* pre = slopes != nullptr ? slopes->pre + k0 * n : nullptr;
    double* Pp = P + J * k0;
    switch (w / 8) {
      case 1: descend_panel_major<1>(Pp, J, gt, ht + k0 * n, n, scale, alpha, dht + k0 * n, next, next_w, pre, slopes); break;
      case 2: descend_panel_major<2>(Pp, J, gt, ht + k0 * n, n, scale, alpha, dht + k0 * n, next, next_w, pre, slopes); break;
      case 3: descend_panel_major<3>(Pp, J, gt, ht + k0 * n, n, scale, alpha, dht + k0 * n, next, next_w, pre, slopes); break;
      default: descend_panel_major<4>(Pp, J, gt, ht + k0 * n, n, scale, alpha, dht + k0 * n, next, next_w, pre, slopes); break;
    }
  }
}

/// sums[j] = Σ_e a[j·n + e] for the J rows of a (J × n, n a multiple of 8): eight lanes summed
/// over the examples in order (lane i takes e ≡ i mod 8), then by sum_lanes' fixed tree.
void row_sums(const double* a, Eigen::Index J, Eigen::Index n, double* sums) {
  for (Eigen::Index j = 0; j < J; ++j) {
    const double* r = a + j * n;
    Lanes s = load_lanes(r);
    for (Eigen::Index e = 8; e < n; e += 8) s += load_lanes(r + e);
    sums[j] = detail::sum_lanes(s);
  }
}

#endif

/// Slopes (a, b) of φ(x) = a·min(x,0) + b·max(x,0) for the piecewise-linear family, which is
/// evaluated inline; other activations go through Activation::value/derivative.
bool piecewise_linear(const Activation& act, double& a, double& b) {
  switch (act.kind) {
    case ActivationKind::Identity: a = 1.0; b = 1.0; return true;
    case ActivationKind::Relu: a = 0.0; b = 1.0; return true;
    case ActivationKind::Abs: a = -1.0; b = 1.0; return true;
    case ActivationKind::LeakyRelu: a = act.a; b = 1.0; return true;
    case ActivationKind::AbRelu: a = act.a; b = act.b; return true;
    default: return false;
  }
}

void apply_activation(const Activation& act, const double* in, double* out, Eigen::Index size) {
  double a = 0.0, b = 0.0;
  if (piecewise_linear(act, a, b)) {
    for (Eigen::Index i = 0; i < size; ++i) out[i] = in[i] < 0.0 ? a * in[i] : b * in[i];
  } else {
    for (Eigen::Index i = 0; i < size; ++i) out[i] = act.value(in[i]);
  }
}

/// g ← g ⊙ φ'(pre).
void multiply_derivative(const Activation& act, const double* pre, double* g, Eigen::Index size) {
  double a = 0.0, b = 0.0;
  if (piecewise_linear(act, a, b)) {
    const double at_zero = act.derivative(0.0);  // the kink convention lives in activation.cpp
    Eigen::Index i = 0;
#ifdef EMERGENT_DIRECT_CONV
    i = size - size % 8;
    multiply_slopes(pre, g, i, a, b, at_zero);
#endif
    for (; i < size; ++i) {
      const double x = pre[i];
      g[i] *= x > 0.0 ? b : (x < 0.0 ? a : at_zero);
    }
  } else {
    for (Eigen::Index i = 0; i < size; ++i) g[i] *= act.derivative(pre[i]);
  }
}

/// Input taps of one axis of an avgpool (lax.reduce_window / Neural Tangents' AvgPool): output
/// o averages input o·stride + s − pad_before for s < window; zeros outside (`same`, `valid`)
/// or wrapped indices (`circular`). taps[o·window + s] is the input index or −1.
std::vector<int> pool_taps(int n_in, int n_out, int window, int stride, Padding padding) {
  const int before = pooled_pad_before(n_in, window, stride, padding);
  std::vector<int> taps(static_cast<std::size_t>(n_out) * window);
  for (int o = 0; o < n_out; ++o)
    for (int s = 0; s < window; ++s) {
      int i = o * stride + s - before;
      if (padding == Padding::Circular) i = wrap(i, n_in);
      else if (i < 0 || i >= n_in) i = -1;
      taps[static_cast<std::size_t>(o) * window + s] = i;
    }
  return taps;
}

/// avgpool forward (adjoint = false) or its adjoint (adjoint = true: scatter-add of the output
/// gradient onto the input pixels) for n examples; divides by the window size, NT's default
/// normalize_edges=False.
void avg_pool(const Layer& layer, const ExampleShape& in_shape, const ExampleShape& out_shape, Eigen::Index n,
              const double* src, double* dst, bool adjoint) {
  const int Hi = in_shape.height, Wi = in_shape.width, C = in_shape.channels;
  const int Ho = out_shape.height, Wo = out_shape.width, Kh = layer.filter_h, Kw = layer.filter_w;
  const std::vector<int> th = pool_taps(Hi, Ho, Kh, layer.stride_h, layer.padding);
  const std::vector<int> tw = pool_taps(Wi, Wo, Kw, layer.stride_w, layer.padding);
  const double scale = 1.0 / (static_cast<double>(Kh) * Kw);
  const Eigen::Index in_size = static_cast<Eigen::Index>(Hi) * Wi * C, out_size = static_cast<Eigen::Index>(Ho) * Wo * C;
  if (adjoint) std::fill(dst, dst + n * in_size, 0.0);
  for (Eigen::Index e = 0; e < n; ++e) {
    const double* x = src + e * (adjoint ? out_size : in_size);
    double* y = dst + e * (adjoint ? in_size : out_size);
    for (int oh = 0; oh < Ho; ++oh)
      for (int ow = 0; ow < Wo; ++ow) {
        double* o = adjoint ? nullptr : y + (static_cast<Eigen::Index>(oh) * Wo + ow) * C;
        const double* g = adjoint ? x + (static_cast<Eigen::Index>(oh) * Wo + ow) * C : nullptr;
        if (!adjoint) std::fill(o, o + C, 0.0);
        for (int sh = 0; sh < Kh; ++sh) {
          const int ih = th[static_cast<std::size_t>(oh) * Kh + sh];
          if (ih < 0) continue;
          for (int sw = 0; sw < Kw; ++sw) {
            const int iw = tw[static_cast<std::size_t>(ow) * Kw + sw];
            if (iw < 0) continue;
            const Eigen::Index p = (static_cast<Eigen::Index>(ih) * Wi + iw) * C;
            if (adjoint) {
              for (int c = 0; c < C; ++c) y[p + c] += scale * g[c];
            } else {
              for (int c = 0; c < C; ++c) o[c] += x[p + c];
            }
          }
        }
        if (!adjoint)
          for (int c = 0; c < C; ++c) o[c] *= scale;
      }
  }
}

/// Layer normalisation over the channels (features) of every pixel, as Neural Tangents'
/// LayerNorm(axis=-1): y = (z − mean z)/√(eps + var z) with the biased variance. rows are the
/// (example, pixel) pairs, C the channels.
void layer_norm(const double* z, double* y, Eigen::Index rows, Eigen::Index C, double eps) {
  for (Eigen::Index r = 0; r < rows; ++r) {
    const double* a = z + r * C;
    double* b = y + r * C;
    double mean = 0;
    for (Eigen::Index c = 0; c < C; ++c) mean += a[c];
    mean /= static_cast<double>(C);
    double var = 0;
    for (Eigen::Index c = 0; c < C; ++c) var += (a[c] - mean) * (a[c] - mean);
    var /= static_cast<double>(C);
    const double inv = 1.0 / std::sqrt(eps + var);
    for (Eigen::Index c = 0; c < C; ++c) b[c] = (a[c] - mean) * inv;
  }
}

/// Its adjoint: g ← (g − mean g − y·mean(g⊙y))/√(eps + var z), with y the layer's output.
void layer_norm_adjoint(const double* z, const double* y, double* g, Eigen::Index rows, Eigen::Index C, double eps) {
  for (Eigen::Index r = 0; r < rows; ++r) {
    const double* a = z + r * C;
    const double* b = y + r * C;
    double* d = g + r * C;
    double mean = 0;
    for (Eigen::Index c = 0; c < C; ++c) mean += a[c];
    mean /= static_cast<double>(C);
    double var = 0;
    for (Eigen::Index c = 0; c < C; ++c) var += (a[c] - mean) * (a[c] - mean);
    var /= static_cast<double>(C);
    const double inv = 1.0 / std::sqrt(eps + var);
    double gm = 0, gy = 0;
    for (Eigen::Index c = 0; c < C; ++c) {
      gm += d[c];
      gy += d[c] * b[c];
    }
    gm /= static_cast<double>(C);
    gy /= static_cast<double>(C);
    for (Eigen::Index c = 0; c < C; ++c) d[c] = (d[c] - gm - b[c] * gy) * inv;
  }
}

std::string dims(Eigen::Index r, Eigen::Index c) {
  return std::to_string(r) + "×" + std::to_string(c);
}

/// forward() processes at most this many examples at a time, bounding the im2col memory.
constexpr Eigen::Index kForwardChunk = 256;

}  // namespace

/// Everything one forward pass leaves for the backward pass: the input of every layer
/// (acts[l], (n, shapes[l].size())), the network output acts[L], and the im2col patches of
/// conv layers. Scratch buffers keep their allocation between calls of the same size.
struct Network::Tape {
  Eigen::Index n = 0;
  std::vector<RowMatrix> acts;
  std::vector<RowMatrix> patches;
  RowMatrix g, g_next, dpatch;
  RowMatrix weights_t, dweights_t;  ///< direct convolutions: Wᵀ (forward) and dWᵀ (backward)
  RowMatrix in_t, out_t;             ///< direct dense products: an input and a result, transposed
  RowMatrix g_t;                     ///< fused dense descent: the output gradient, transposed
  /// acts[out_t_of]ᵀ is in out_t after a direct dense product, and acts[act_t_of]ᵀ in act_t after
  /// an activation of it, so that the next dense layer reads its input transposed without
  /// transposing (none: -1)
  RowMatrix act_t;
  std::ptrdiff_t out_t_of = -1, act_t_of = -1;
  /// φ(zᵀ) written by a dense product's epilogue for the activation right after it, which takes
  /// it into act_t (acts[act_t_next_of]ᵀ; none: -1)
  RowMatrix act_t_next;
  std::ptrdiff_t act_t_next_of = -1;
  Eigen::RowVectorXd bias_row;
  std::vector<RowMatrix> shortcut_g;  ///< backward: gradients waiting at open residual blocks
  /// Dense/activation chains (Network::transposed_chain): acts[1 … L−1] hold the layers'
  /// activations transposed (features × examples), in_t = acts[0]ᵀ and out_t = acts[L]ᵀ
  bool transposed = false;
  RowMatrix h_rows;  ///< a transposed activation back in rows, for weight gradients outside the fused step
  std::vector<double, Eigen::aligned_allocator<double>> grad_store;  ///< two transposed gradients, never reallocated per step
  /// Per parameter block, that layer's weights in panels (PanelTraining) instead of in the
  /// parameter vector, or null; none: null. Only transposed chains' one-pass layers have them.
  double* const* panels = nullptr;
};

Network::Network(Architecture architecture, ExampleShape input, std::uint64_t seed)
    : architecture_(std::move(architecture)), input_(input) {
  shapes_ = architecture_.shapes(input_);  // throws SpecError if the spec does not fit
  const auto& layers = architecture_.layers();
  partner_.assign(layers.size(), 0);
  std::vector<std::size_t> open;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    if (layers[l].kind == LayerKind::ResidualBegin) open.push_back(l);
    if (layers[l].kind == LayerKind::ResidualEnd) {
      partner_[l] = open.back();
      partner_[open.back()] = l;
      open.pop_back();
    }
  }
  first_affine_ = layers.size();
  Eigen::Index total = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Layer& layer = layers[l];
    if (!layer.affine()) continue;
    if (first_affine_ == layers.size()) first_affine_ = l;
    const ExampleShape& in = shapes_.shapes[l];
    ParameterBlock block;
    block.layer = static_cast<int>(l);
    const Eigen::Index n_out = layer.width;
    const Eigen::Index n_in = layer.kind == LayerKind::Dense
                                  ? static_cast<Eigen::Index>(in.size())
                                  : static_cast<Eigen::Index>(in.channels) * layer.filter_h * layer.filter_w;
    block.weight_offset = total;
    block.weight_size = n_in * n_out;
    block.bias_offset = total + block.weight_size;
    block.bias_size = layer.b_std != 0.0 ? n_out : 0;
    total += block.weight_size + block.bias_size;
    blocks_.push_back(block);
  }
  parameters_.resize(total);
  for (const ParameterBlock& block : blocks_) {
    // Parameter p of layer l is draw p of NormalStream(seed, l): weights first, then biases.
    const NormalStream stream(seed, static_cast<std::uint64_t>(block.layer));
    stream.fill(parameters_.data() + block.weight_offset, static_cast<std::uint64_t>(block.weight_size), 0);
    stream.fill(parameters_.data() + block.bias_offset, static_cast<std::uint64_t>(block.bias_size),
                static_cast<std::uint64_t>(block.weight_size));
  }
}

void Network::check_inputs(const Inputs& x, const char* where) const {
  if (!(x.shape == input_)) {
    throw std::invalid_argument(std::string(where) + ": argument 'x' has example shape " +
                                x.shape.to_string() + ", expected " + input_.to_string() +
                                " (the shape the network was built for)");
  }
  if (x.x.cols() != input_.size()) {
    throw std::invalid_argument(std::string(where) + ": argument 'x' has " + std::to_string(x.x.cols()) +
                                " columns, expected " + std::to_string(input_.size()) + " = size of " +
                                input_.to_string());
  }
}

void Network::run_forward(const double* x, Eigen::Index n, Tape& t) const {
  const auto& layers = architecture_.layers();
  const std::size_t L = layers.size();
  t.n = n;
  t.out_t_of = t.act_t_of = t.act_t_next_of = -1;
  t.acts.resize(L + 1);
  t.patches.resize(L);
  t.acts[0] = ConstRowMap(x, n, shapes_.shapes[0].size());
  t.transposed = transposed_chain(n);
  if (t.transposed) {
    run_forward_transposed(t);
    return;
  }
  std::size_t b = 0;  // next parameter block
  for (std::size_t l = 0; l < L; ++l) {
    const Layer& layer = layers[l];
    const ExampleShape& in_shape = shapes_.shapes[l];
    const ExampleShape& out_shape = shapes_.shapes[l + 1];
    const RowMatrix& in = t.acts[l];
    RowMatrix& out = t.acts[l + 1];
    out.resize(n, out_shape.size());
    switch (layer.kind) {
      case LayerKind::Dense: {
        const ParameterBlock& block = blocks_[b++];
        const Eigen::Index n_in = in_shape.size(), n_out = layer.width;
        const ConstRowMap W(parameters_.data() + block.weight_offset, n_out, n_in);
        const double scale = layer.w_std / std::sqrt(static_cast<double>(n_in));
#ifdef EMERGENT_DIRECT_CONV
        if (n % 8 == 0) {  // zᵀ = W·hᵀ with the examples along the vectors: W is read once, unpacked
          const bool have_t = t.act_t_of == static_cast<std::ptrdiff_t>(l);
          if (!have_t) transpose_to(in, t.in_t);
          t.out_t.resize(n_out, n);
          // zᵀ = scale·W·hᵀ, row j + b·β_j, and a piecewise-linear activation after it, in the
          // product's epilogue (the same operations as separate passes, one pass fewer each)
          TileEpilogue epilogue;
          if (block.bias_size > 0) {
            t.bias_row = layer.b_std * Eigen::Map<const Eigen::RowVectorXd>(parameters_.data() + block.bias_offset, n_out);
            epilogue.row_add = t.bias_row.data();
          }
          const bool fuse_act = l + 1 < L && layers[l + 1].kind == LayerKind::Activation &&
                                piecewise_linear(layers[l + 1].activation, epilogue.slope_neg, epilogue.slope_pos);
          if (fuse_act) {
            t.act_t_next.resize(n_out, n);
            epilogue.act = t.act_t_next.data();
          }
          const bool use_epilogue = epilogue.row_add != nullptr || epilogue.act != nullptr;
          strided_product(W.data(), n_in, 1, n_out, n_in, (have_t ? t.act_t : t.in_t).data(), n, n, scale, false,
                          t.out_t.data(), n, true, use_epilogue ? &epilogue : nullptr);
          transpose_to(t.out_t, out);
          t.out_t_of = static_cast<std::ptrdiff_t>(l + 1);
          t.act_t_next_of = fuse_act ? static_cast<std::ptrdiff_t>(l + 2) : -1;
          break;
        }
#endif
        // z = (W/√n_in)·ω·h + B·β: the GEMM accumulates onto the broadcast bias (one pass
        // over z fewer than adding it afterwards, and no zero fill).
        if (block.bias_size > 0) {
          const Eigen::Map<const Eigen::RowVectorXd> beta(parameters_.data() + block.bias_offset, n_out);
          out.rowwise() = layer.b_std * beta;
          out.noalias() += scale * in * W.transpose();
        } else {
          out.noalias() = scale * in * W.transpose();
        }
        break;
      }
      case LayerKind::Conv: {
        const ParameterBlock& block = blocks_[b++];
        const ConvGeometry g = conv_geometry(layer, in_shape, out_shape);
#ifdef EMERGENT_DIRECT_CONV
        if (g.out_c % 8 == 0) {  // no im2col: the taps are read in place
          const ConvTaps taps = conv_taps(g);
          const ConstRowMap W(parameters_.data() + block.weight_offset, g.out_c, g.patch());
          t.weights_t = W.transpose();
          const double scale = layer.w_std / std::sqrt(static_cast<double>(g.patch()));
          const double* add = nullptr;
          if (block.bias_size > 0) {
            t.bias_row = layer.b_std * Eigen::Map<const Eigen::RowVectorXd>(parameters_.data() + block.bias_offset, g.out_c);
            add = t.bias_row.data();
          }
          gather_product(in.data(), in_shape.size(), g.in_c, taps.taps.data(), g.in_h * g.in_w,
                         static_cast<int>(g.out_pixels()), g.fh * g.fw, t.weights_t.data(), g.out_c,
                         static_cast<Eigen::Index>(g.in_c) * g.out_c, n * g.out_pixels(), g.out_c, scale, add,
                         out.data());
          t.patches[l].resize(0, 0);
          break;
        }
#endif
        im2col(in.data(), n, g, t.patches[l]);
        const ConstRowMap W(parameters_.data() + block.weight_offset, g.out_c, g.patch());
        const double scale = layer.w_std / std::sqrt(static_cast<double>(g.patch()));
        RowMap Z(out.data(), n * g.out_pixels(), g.out_c);
        if (block.bias_size > 0) {  // as for dense: accumulate onto the broadcast bias
          const Eigen::Map<const Eigen::RowVectorXd> beta(parameters_.data() + block.bias_offset, g.out_c);
          Z.rowwise() = layer.b_std * beta;
          Z.noalias() += scale * t.patches[l] * W.transpose();
        } else {
          Z.noalias() = scale * t.patches[l] * W.transpose();
        }
        break;
      }
      case LayerKind::Activation:
        apply_activation(layer.activation, in.data(), out.data(), in.size());
        if (t.act_t_next_of == static_cast<std::ptrdiff_t>(l + 1)) {  // φ(zᵀ) came with the product
          t.act_t.swap(t.act_t_next);
          t.act_t_of = static_cast<std::ptrdiff_t>(l + 1);
        } else if (t.out_t_of == static_cast<std::ptrdiff_t>(l)) {  // φ of the transposed input: the output transposed
          t.act_t.resize(t.out_t.rows(), t.out_t.cols());
          apply_activation(layer.activation, t.out_t.data(), t.act_t.data(), t.out_t.size());
          t.act_t_of = static_cast<std::ptrdiff_t>(l + 1);
        }
        break;
      case LayerKind::Flatten:
        out = in;  // NHWC rows are already flattened in C order
        break;
      case LayerKind::GlobalAvgPool: {
        const Eigen::Index P = in_shape.pixels(), C = in_shape.channels;
        for (Eigen::Index e = 0; e < n; ++e) {
          const ConstRowMap pix(in.data() + e * P * C, P, C);
          out.row(e) = pix.colwise().sum() / static_cast<double>(P);
        }
        break;
      }
      case LayerKind::AvgPool:
        avg_pool(layer, in_shape, out_shape, n, in.data(), out.data(), false);
        break;
      case LayerKind::LayerNorm:
        layer_norm(in.data(), out.data(), n * in_shape.pixels(), in_shape.channels, layer.eps);
        break;
      case LayerKind::ResidualBegin:
        out = in;
        break;
      case LayerKind::ResidualEnd:  // x + block(x): acts[partner] is the block's input x
        out = in + t.acts[partner_[l]];
        break;
    }
  }
}

// descent = 0: writes ∂/∂θ Σ⟨cotangent, f⟩ to out (the gradient). descent = η > 0: out is the
// parameter vector itself and receives θ −= η·∂, fused into the weight-gradient GEMMs; every
// layer's input gradient is formed before its weights change, so the step is the same as
// forming the gradient first (up to rounding) without writing and re-reading a gradient vector.
void Network::run_backward(Tape& t, const double* cotangent, double* out, double descent) const {
  if (t.transposed) {
    run_backward_transposed(t, cotangent, out, descent);
    return;
  }
  const auto& layers = architecture_.layers();
  const std::size_t L = layers.size();
  const Eigen::Index n = t.n;
  t.g = ConstRowMap(cotangent, n, shapes_.shapes[L].size());
  std::size_t b = blocks_.size();
  for (std::size_t l = L; l-- > first_affine_;) {
    const Layer& layer = layers[l];
    const ExampleShape& in_shape = shapes_.shapes[l];
    const ExampleShape& out_shape = shapes_.shapes[l + 1];
    const bool need_input_grad = l > first_affine_;
    switch (layer.kind) {
      case LayerKind::Dense: {
        const ParameterBlock& block = blocks_[--b];
        const Eigen::Index n_in = in_shape.size(), n_out = layer.width;
        const ConstRowMap W(parameters_.data() + block.weight_offset, n_out, n_in);
        const double scale = layer.w_std / std::sqrt(static_cast<double>(n_in));
        RowMap gW(out + block.weight_offset, n_out, n_in);
#ifdef EMERGENT_DIRECT_CONV
        if (n_in % 8 == 0 && need_input_grad && descent != 0.0) {  // input gradient and update in one pass over W
          transpose_to(t.g, t.g_t);
          t.g_next.resize(n, n_in);
          descend_dense(out + block.weight_offset, n_out, n_in, t.g.data(), t.g_t.data(), t.acts[l].data(), n, scale,
                        -descent * scale, t.g_next.data());
          if (block.bias_size > 0)
            Eigen::Map<Eigen::RowVectorXd>(out + block.bias_offset, n_out).noalias() -=
                (descent * layer.b_std) * t.g.colwise().sum();
          t.g.swap(t.g_next);
          break;
        }
        if (n_in % 8 == 0) {  // the weight update unpacked, the input units along the vectors
          if (need_input_grad) {  // before the weights change; Eigen's packed GEMM is faster for g·W
            t.g_next.resize(n, n_in);
            t.g_next.noalias() = scale * t.g * W;
          }
          // W −= η·scale·gᵀ·h (or the gradient scale·gᵀ·h), the input units along the vectors
          const bool descend = descent != 0.0;
          strided_product(t.g.data(), 1, n_out, n_out, n, t.acts[l].data(), n_in, n_in,
                          descend ? -descent * scale : scale, descend, out + block.weight_offset, n_in, true);
          if (block.bias_size > 0) {
            Eigen::Map<Eigen::RowVectorXd> gb(out + block.bias_offset, n_out);
            if (!descend) {
              gb.noalias() = layer.b_std * t.g.colwise().sum();
            } else {
              gb.noalias() -= (descent * layer.b_std) * t.g.colwise().sum();
            }
          }
          if (need_input_grad) t.g.swap(t.g_next);
          break;
        }
#endif
        if (need_input_grad) {  // before the weights change when descending
          t.g_next.resize(n, n_in);
          t.g_next.noalias() = scale * t.g * W;
        }
        if (descent == 0.0) {
          gW.noalias() = scale * t.g.transpose() * t.acts[l];
        } else {
          gW.noalias() -= (descent * scale) * t.g.transpose() * t.acts[l];
        }
        if (block.bias_size > 0) {
          Eigen::Map<Eigen::RowVectorXd> gb(out + block.bias_offset, n_out);
          if (descent == 0.0) {
            gb.noalias() = layer.b_std * t.g.colwise().sum();
          } else {
            gb.noalias() -= (descent * layer.b_std) * t.g.colwise().sum();
          }
        }
        if (need_input_grad) t.g.swap(t.g_next);
        break;
      }
      case LayerKind::Conv: {
        const ParameterBlock& block = blocks_[--b];
        const ConvGeometry g = conv_geometry(layer, in_shape, out_shape);
        const ConstRowMap W(parameters_.data() + block.weight_offset, g.out_c, g.patch());
        const double scale = layer.w_std / std::sqrt(static_cast<double>(g.patch()));
        const ConstRowMap G(t.g.data(), n * g.out_pixels(), g.out_c);
#ifdef EMERGENT_DIRECT_CONV
        if (g.out_c % 8 == 0) {  // the forward pass kept no patches: read the taps in place
          const ConvTaps taps = conv_taps(g);
          const int F = g.fh * g.fw, P_in = g.in_h * g.in_w, P_out = static_cast<int>(g.out_pixels());
          if (need_input_grad) {  // before the weights change when descending
            t.g_next.resize(n, in_shape.size());
            if (g.in_c % 8 == 0) {
              gather_product(t.g.data(), static_cast<Eigen::Index>(P_out) * g.out_c, g.out_c, taps.inverse.data(),
                             P_out, P_in, F, W.data(), g.patch(), g.in_c, n * P_in, g.in_c, scale, nullptr,
                             t.g_next.data());
            } else {
              t.dpatch.resize(n * g.out_pixels(), g.patch());
              t.dpatch.noalias() = scale * G * W;
              col2im(t.dpatch, n, g, t.g_next.data());
            }
          }
          RowMap gW(out + block.weight_offset, g.out_c, g.patch());
          if (g.in_c % 8 == 0) {  // vectors along the input channels, one tap look-up per row
            t.dweights_t.resize(g.out_c, g.patch());
            weight_gradient_in(t.acts[l].data(), in_shape.size(), g.in_c, taps.taps.data(), P_out, F, t.g.data(),
                               n * P_out, g.out_c, t.dweights_t.data());
            if (descent == 0.0) {
              gW.noalias() = scale * t.dweights_t;
            } else {
              gW.noalias() -= (descent * scale) * t.dweights_t;
            }
          } else {  // vectors along the output channels (e.g. the first layer on one input channel)
            t.dweights_t.resize(g.patch(), g.out_c);
            weight_gradient(t.acts[l].data(), in_shape.size(), g.in_c, taps.taps.data(), P_out, F, t.g.data(),
                            n * P_out, g.out_c, t.dweights_t.data());
            if (descent == 0.0) {
              gW.noalias() = scale * t.dweights_t.transpose();
            } else {
              gW.noalias() -= (descent * scale) * t.dweights_t.transpose();
            }
          }
          if (block.bias_size > 0) {
            Eigen::Map<Eigen::RowVectorXd> gb(out + block.bias_offset, g.out_c);
            if (descent == 0.0) {
              gb.noalias() = layer.b_std * G.colwise().sum();
            } else {
              gb.noalias() -= (descent * layer.b_std) * G.colwise().sum();
            }
          }
          if (need_input_grad) t.g.swap(t.g_next);
          break;
        }
#endif
        if (need_input_grad) {  // before the weights change when descending
          t.dpatch.resize(n * g.out_pixels(), g.patch());
          t.dpatch.noalias() = scale * G * W;
        }
        RowMap gW(out + block.weight_offset, g.out_c, g.patch());
        if (descent == 0.0) {
          gW.noalias() = scale * G.transpose() * t.patches[l];
        } else {
          gW.noalias() -= (descent * scale) * G.transpose() * t.patches[l];
        }
        if (block.bias_size > 0) {
          Eigen::Map<Eigen::RowVectorXd> gb(out + block.bias_offset, g.out_c);
          if (descent == 0.0) {
            gb.noalias() = layer.b_std * G.colwise().sum();
          } else {
            gb.noalias() -= (descent * layer.b_std) * G.colwise().sum();
          }
        }
        if (need_input_grad) {
          t.g_next.resize(n, in_shape.size());
          col2im(t.dpatch, n, g, t.g_next.data());
          t.g.swap(t.g_next);
        }
        break;
      }
      case LayerKind::Activation:
        multiply_derivative(layer.activation, t.acts[l].data(), t.g.data(), t.g.size());
        break;
      case LayerKind::Flatten:
        break;  // same memory layout
      case LayerKind::GlobalAvgPool: {
        const Eigen::Index P = in_shape.pixels(), C = in_shape.channels;
        t.g_next.resize(n, P * C);
        for (Eigen::Index e = 0; e < n; ++e) {
          RowMap pix(t.g_next.data() + e * P * C, P, C);
          pix.rowwise() = t.g.row(e) / static_cast<double>(P);
        }
        t.g.swap(t.g_next);
        break;
      }
      case LayerKind::AvgPool:
        t.g_next.resize(n, in_shape.size());
        avg_pool(layer, in_shape, out_shape, n, t.g.data(), t.g_next.data(), true);
        t.g.swap(t.g_next);
        break;
      case LayerKind::LayerNorm:
        layer_norm_adjoint(t.acts[l].data(), t.acts[l + 1].data(), t.g.data(), n * in_shape.pixels(),
                           in_shape.channels, layer.eps);
        break;
      case LayerKind::ResidualEnd:  // the gradient reaches x through the block and directly
        t.shortcut_g.push_back(t.g);
        break;
      case LayerKind::ResidualBegin:
        t.g += t.shortcut_g.back();
        t.shortcut_g.pop_back();
        break;
    }
  }
  t.shortcut_g.clear();  // blocks that open before the first affine layer need no input gradient
}

// Dense layers and activations only, with a batch that is a multiple of 8 (the vector length of
// the products): the whole step then runs on transposed activations, hᵀ (features × examples).
// zᵀ = W·hᵀ is the forward product's natural output and the next layer's input, and the
// backward step reads gᵀ and hᵀ where the row layout would need a transpose per layer.
bool Network::transposed_chain(Eigen::Index n) const {
#ifdef EMERGENT_DIRECT_CONV
  if (n <= 0 || n % 8 != 0) return false;
  for (const Layer& layer : architecture_.layers())
    if (layer.kind != LayerKind::Dense && layer.kind != LayerKind::Activation) return false;
  return !architecture_.layers().empty();
#else
  (void)n;
  return false;
#endif
}

#ifdef EMERGENT_DIRECT_CONV
void Network::run_forward_transposed(Tape& t) const {
  const auto& layers = architecture_.layers();
  const std::size_t L = layers.size();
  const Eigen::Index n = t.n;
  transpose_to(t.acts[0], t.in_t);
  // acts[i]ᵀ for 0 < i < L lives in acts[i], the output's in out_t (then transposed into acts[L])
  auto input_t = [&](std::size_t i) -> RowMatrix& { return i == 0 ? t.in_t : (i < L ? t.acts[i] : t.out_t); };
  std::size_t b = 0;
  std::ptrdiff_t done = -1;  // an activation layer whose output the product's epilogue wrote
  for (std::size_t l = 0; l < L; ++l) {
    const Layer& layer = layers[l];
    const Eigen::Index in_size = shapes_.shapes[l].size(), out_size = shapes_.shapes[l + 1].size();
    RowMatrix& out_t = input_t(l + 1);
    if (layer.kind == LayerKind::Activation) {
      if (done != static_cast<std::ptrdiff_t>(l)) {
        out_t.resize(out_size, n);
        apply_activation(layer.activation, input_t(l).data(), out_t.data(), out_t.size());
      }
      continue;
    }
    // Dense: zᵀ = scale·W·hᵀ + b·β, and a piecewise-linear activation after it, in the
    // product's epilogue (the same operations as separate passes)
    const ParameterBlock& block = blocks_[b++];
    const double scale = layer.w_std / std::sqrt(static_cast<double>(in_size));
    out_t.resize(out_size, n);
    TileEpilogue epilogue;
    if (block.bias_size > 0) {
      t.bias_row = layer.b_std * Eigen::Map<const Eigen::RowVectorXd>(parameters_.data() + block.bias_offset, out_size);
      epilogue.row_add = t.bias_row.data();
    }
    const bool fuse_act = l + 1 < L && layers[l + 1].kind == LayerKind::Activation &&
                          piecewise_linear(layers[l + 1].activation, epilogue.slope_neg, epilogue.slope_pos);
    if (fuse_act) {
      RowMatrix& act_t = input_t(l + 2);
      act_t.resize(out_size, n);
      epilogue.act = act_t.data();
      done = static_cast<std::ptrdiff_t>(l + 1);
    }
    const bool use_epilogue = epilogue.row_add != nullptr || epilogue.act != nullptr;
    const double* panels = t.panels != nullptr ? t.panels[b - 1] : nullptr;
    if (panels != nullptr)
      panel_product(panels, out_size, in_size, input_t(l).data(), n, scale, out_t.data(),
                    use_epilogue ? &epilogue : nullptr);
    else
      strided_product(parameters_.data() + block.weight_offset, in_size, 1, out_size, in_size, input_t(l).data(), n,
                      n, scale, false, out_t.data(), n, true, use_epilogue ? &epilogue : nullptr);
  }
  transpose_to(t.out_t, t.acts[L]);
}

// The backward pass of run_backward on the transposed tape. A dense layer with a fan-in that is
// a multiple of 8 whose input gradient is needed takes the one-pass step when descending; its
// other cases form dhᵀ = scale·Wᵀ·gᵀ (summed over the outputs j in order) and the weight
// gradient scale·gᵀ·h (over the examples in order) by the same tiles as the row layout.
void Network::run_backward_transposed(Tape& t, const double* cotangent, double* out, double descent) const {
  const auto& layers = architecture_.layers();
  const std::size_t L = layers.size();
  const Eigen::Index n = t.n;
  Eigen::Index widest = 0;
  for (std::size_t l = 0; l <= L; ++l) widest = std::max<Eigen::Index>(widest, shapes_.shapes[l].size());
  const std::size_t half = (static_cast<std::size_t>(widest * n) + 7) / 8 * 8;  // 64-byte aligned halves
  if (t.grad_store.size() < 2 * half) t.grad_store.resize(2 * half);
  double* g = t.grad_store.data();  // ∂/∂(output of layer l)ᵀ, (size × n)
  double* g_next = g + half;
  transpose_into(cotangent, n, shapes_.shapes[L].size(), g);
  auto input_t = [&](std::size_t i) -> const double* { return i == 0 ? t.in_t.data() : t.acts[i].data(); };
  std::size_t b = blocks_.size();
  std::ptrdiff_t done = -1;  // an activation layer whose backward pass a dense layer's step did
  for (std::size_t l = L; l-- > first_affine_;) {
    const Layer& layer = layers[l];
    const Eigen::Index in_size = shapes_.shapes[l].size(), out_size = shapes_.shapes[l + 1].size();
    if (layer.kind == LayerKind::Activation) {
      if (done != static_cast<std::ptrdiff_t>(l)) multiply_derivative(layer.activation, input_t(l), g, out_size * n);
      continue;
    }
    const ParameterBlock& block = blocks_[--b];
    const Eigen::Index J = out_size, K = in_size;
    const double scale = layer.w_std / std::sqrt(static_cast<double>(K));
    const bool need_input_grad = l > first_affine_, descend = descent != 0.0;
    double* W = out + block.weight_offset;
    if (K % 8 == 0 && need_input_grad && descend) {  // input gradient and update in one pass over W
      // a piecewise-linear activation before this layer: its φ' goes into dhᵀ panel by panel
      SlopeEpilogue slopes;
      const bool fuse_act = layers[l - 1].kind == LayerKind::Activation &&
                            piecewise_linear(layers[l - 1].activation, slopes.slope_neg, slopes.slope_pos);
      if (fuse_act) {
        slopes.pre = input_t(l - 1);
        slopes.at_zero = layers[l - 1].activation.derivative(0.0);
        done = static_cast<std::ptrdiff_t>(l - 1);
      }
      if (t.panels != nullptr && t.panels[b] != nullptr)
        descend_dense_panels(t.panels[b], J, K, g, input_t(l), n, scale, -descent * scale, g_next,
                             fuse_act ? &slopes : nullptr);
      else
        descend_dense_transposed(W, J, K, g, input_t(l), n, scale, -descent * scale, g_next,
                                 fuse_act ? &slopes : nullptr);
    } else {
      if (t.panels != nullptr && t.panels[b] != nullptr)  // PanelTraining packs one-pass layers only
        throw std::logic_error("Network: a layer in panels outside the one-pass descent step");
      if (need_input_grad)  // dhᵀ = scale·Wᵀ·gᵀ, before the weights change when descending
        strided_product(parameters_.data() + block.weight_offset, 1, K, K, J, g, n, n, scale, false, g_next, n, true);
      // the weight gradient scale·gᵀ·h (W −= η· of it when descending) needs h in rows
      const double* h = t.acts[0].data();
      if (l > 0) {
        t.h_rows.resize(n, K);
        transpose_into(input_t(l), K, n, t.h_rows.data());
        h = t.h_rows.data();
      }
      if (K % 8 == 0) {
        strided_product(g, n, 1, J, n, h, K, K, descend ? -descent * scale : scale, descend, W, K, true);
      } else {
        const ConstRowMap gt(g, J, n), hr(h, n, K);
        RowMap gW(W, J, K);
        if (descend) {
          gW.noalias() -= (descent * scale) * gt * hr;
        } else {
          gW.noalias() = scale * gt * hr;
        }
      }
    }
    if (block.bias_size > 0) {
      double* gb = out + block.bias_offset;
      thread_local std::vector<double> sums;
      sums.resize(static_cast<std::size_t>(J));
      row_sums(g, J, n, sums.data());
      for (Eigen::Index j = 0; j < J; ++j) {
        if (descend) {
          gb[j] -= (descent * layer.b_std) * sums[static_cast<std::size_t>(j)];
        } else {
          gb[j] = layer.b_std * sums[static_cast<std::size_t>(j)];
        }
      }
    }
    if (need_input_grad) std::swap(g, g_next);
  }
}
#else
void Network::run_forward_transposed(Tape&) const {}
void Network::run_backward_transposed(Tape&, const double*, double*, double) const {}
#endif

RowMatrix Network::forward(const Inputs& x) const {
  check_inputs(x, "Network::forward");
  const Eigen::Index N = x.count(), k = output_shape().size();
  RowMatrix out(N, k);
  thread_local Tape tape;
  const Eigen::Index in_size = input_.size();
  for (Eigen::Index start = 0; start < N; start += kForwardChunk) {
    const Eigen::Index m = std::min(kForwardChunk, N - start);
    run_forward(x.x.data() + start * in_size, m, tape);
    out.middleRows(start, m) = tape.acts.back();
  }
  return out;
}

void Network::vjp_into(const Inputs& x, const RowMatrix& cotangent, Eigen::VectorXd& gradient,
                       RowMatrix* outputs) const {
  check_inputs(x, "Network::vjp");
  const Eigen::Index N = x.count(), k = output_shape().size();
  if (cotangent.rows() != N || cotangent.cols() != k) {
    throw std::invalid_argument("Network::vjp: argument 'cotangent' is " + dims(cotangent.rows(), cotangent.cols()) +
                                ", expected " + dims(N, k) + " (examples × output size)");
  }
  thread_local Tape tape;
  run_forward(x.x.data(), N, tape);
  if (outputs != nullptr) *outputs = tape.acts.back();
  if (gradient.size() != parameter_count()) gradient.resize(parameter_count());
  run_backward(tape, cotangent.data(), gradient.data(), 0.0);
}

Eigen::VectorXd Network::vjp(const Inputs& x, const RowMatrix& cotangent, RowMatrix* outputs) const {
  Eigen::VectorXd gradient(parameter_count());
  vjp_into(x, cotangent, gradient, outputs);
  return gradient;
}

void Network::check_targets(const Inputs& x, const RowMatrix& targets, const char* where) const {
  check_inputs(x, where);
  const Eigen::Index N = x.count(), k = output_shape().size();
  if (targets.rows() != N || targets.cols() != k) {
    throw std::invalid_argument(std::string(where) + ": argument 'targets' is " + dims(targets.rows(), targets.cols()) +
                                ", expected " + dims(N, k) + " (examples × output size)");
  }
}

double mse_cotangent(const RowMatrix& f, const RowMatrix& targets, RowMatrix& cotangent) {
  // L = ½·(1/(N·k))·‖f − y‖², ∂L/∂f = (f − y)/(N·k) (docs/conventions.md §3).
  const double norm = f.size() > 0 ? 1.0 / static_cast<double>(f.size()) : 0.0;
  cotangent = f - targets;
  const double loss = 0.5 * norm * cotangent.squaredNorm();
  cotangent *= norm;
  return loss;
}

double Network::mse_loss_gradient(const Inputs& x, const RowMatrix& targets, Eigen::VectorXd& gradient,
                                  RowMatrix* outputs) const {
  check_targets(x, targets, "Network::mse_loss_gradient");
  thread_local Tape tape;
  thread_local RowMatrix residual;
  run_forward(x.x.data(), x.count(), tape);
  if (outputs != nullptr) *outputs = tape.acts.back();
  const double loss = mse_cotangent(tape.acts.back(), targets, residual);
  if (gradient.size() != parameter_count()) gradient.resize(parameter_count());
  run_backward(tape, residual.data(), gradient.data(), 0.0);
  return loss;
}

double Network::descent_step(const Inputs& x, double learning_rate, const LossFunction& loss, RowMatrix* outputs) {
  return descend(x, learning_rate, loss, outputs, nullptr);
}

double Network::descend(const Inputs& x, double learning_rate, const LossFunction& loss, RowMatrix* outputs,
                        double* const* panels) {
  check_inputs(x, "Network::descent_step");
  if (!(learning_rate > 0.0) || !std::isfinite(learning_rate)) {
    throw std::invalid_argument("Network::descent_step: argument 'learning_rate' = " + std::to_string(learning_rate) +
                                ", expected a finite number > 0");
  }
  if (panels != nullptr && !transposed_chain(x.count()))  // the row layout reads the parameter vector
    throw std::logic_error("Network: weights in panels on a batch that is not a transposed chain");
  thread_local Tape tape;
  thread_local RowMatrix cotangent;
  struct Unset {  // the tape outlives this call (and may see an exception from `loss`)
    Tape& t;
    ~Unset() { t.panels = nullptr; }
  } unset{tape};
  tape.panels = panels;
  run_forward(x.x.data(), x.count(), tape);
  if (outputs != nullptr) *outputs = tape.acts.back();
  const double value = loss(tape.acts.back(), cotangent);
  if (cotangent.rows() != x.count() || cotangent.cols() != output_shape().size()) {
    throw std::invalid_argument("Network::descent_step: the loss wrote a cotangent of " +
                                dims(cotangent.rows(), cotangent.cols()) + ", expected " +
                                dims(x.count(), output_shape().size()) + " (examples × output size)");
  }
  run_backward(tape, cotangent.data(), parameters_.data(), learning_rate);
  return value;
}

double Network::mse_descent_step(const Inputs& x, const RowMatrix& targets, double learning_rate, RowMatrix* outputs) {
  check_targets(x, targets, "Network::mse_descent_step");
  return descent_step(
      x, learning_rate, [&](const RowMatrix& f, RowMatrix& cotangent) { return mse_cotangent(f, targets, cotangent); },
      outputs);
}

RowMatrix Network::jacobian(const Inputs& x, Eigen::Index output) const {
  check_inputs(x, "Network::jacobian");
  const Eigen::Index k = output_shape().size();
  if (output < 0 || output >= k) {
    throw std::invalid_argument("Network::jacobian: argument 'output' = " + std::to_string(output) +
                                ", expected 0 <= output < " + std::to_string(k) + " (output size of " +
                                output_shape().to_string() + ")");
  }
  RowMatrix J(x.count(), parameter_count());
  Eigen::RowVectorXd onehot = Eigen::RowVectorXd::Zero(k);
  onehot(output) = 1.0;
  Tape tape;
  for (Eigen::Index i = 0; i < x.count(); ++i) {
    run_forward(x.x.data() + i * input_.size(), 1, tape);
    run_backward(tape, onehot.data(), J.row(i).data(), 0.0);
  }
  return J;
}

Eigen::MatrixXd empirical_ntk(const Network& net, const Inputs& x1, const Inputs& x2) {
  net.check_inputs(x1, "empirical_ntk (x1)");
  net.check_inputs(x2, "empirical_ntk (x2)");
  const Eigen::Index N1 = x1.count(), N2 = x2.count();
  const Eigen::Index k = net.output_shape().size(), P = net.parameter_count();
  const bool same = &x1 == &x2 || (N1 == N2 && x1.x == x2.x);
  const Eigen::Index d = net.input_shape().size();
  // One single-example tape per input, kept across the loop over output coordinates j.
  std::vector<Network::Tape> tapes1(N1), tapes2(same ? 0 : N2);
  for (Eigen::Index i = 0; i < N1; ++i) net.run_forward(x1.x.data() + i * d, 1, tapes1[i]);
  for (Eigen::Index i = 0; i < static_cast<Eigen::Index>(tapes2.size()); ++i)
    net.run_forward(x2.x.data() + i * d, 1, tapes2[i]);
  RowMatrix J1(N1, P), J2(same ? 0 : N2, P);
  Eigen::MatrixXd theta = Eigen::MatrixXd::Zero(N1, N2);
  Eigen::RowVectorXd onehot = Eigen::RowVectorXd::Zero(k);
  for (Eigen::Index j = 0; j < k; ++j) {
    onehot.setZero();
    onehot(j) = 1.0;
    for (Eigen::Index i = 0; i < N1; ++i) net.run_backward(tapes1[i], onehot.data(), J1.row(i).data(), 0.0);
    if (same) {
      theta.noalias() += J1 * J1.transpose();
    } else {
      for (Eigen::Index i = 0; i < N2; ++i) net.run_backward(tapes2[i], onehot.data(), J2.row(i).data(), 0.0);
      theta.noalias() += J1 * J2.transpose();
    }
  }
  if (k > 0) theta /= static_cast<double>(k);
  if (same) theta = (0.5 * (theta + theta.transpose())).eval();  // exact symmetry
  return theta;
}

namespace detail {

PanelTraining::PanelTraining(Network& net, Eigen::Index batch) : net_(net), batch_(batch) {
  panels_.assign(net_.blocks_.size(), nullptr);
  if (!net_.transposed_chain(batch_)) return;
  std::vector<Eigen::Index> offsets(net_.blocks_.size(), -1);
  Eigen::Index total = 0;
  for (std::size_t b = 0; b < net_.blocks_.size(); ++b) {
    const Network::ParameterBlock& block = net_.blocks_[b];
    const auto l = static_cast<std::size_t>(block.layer);
    const Eigen::Index K = net_.shapes_.shapes[l].size();
    // the layers that take the one-pass step (run_backward_transposed)
    if (l > net_.first_affine_ && K % 8 == 0) {
      offsets[b] = total;
      total += block.weight_size;
    }
  }
  if (total == 0) return;
  // the last buffer of this thread's previous PanelTraining (an ensemble's next member): no
  // fresh pages to fault in and clear per member
  storage_.swap(spare_storage());
  storage_.resize(static_cast<std::size_t>(total));
  for (std::size_t b = 0; b < offsets.size(); ++b)
    if (offsets[b] >= 0) panels_[b] = storage_.data() + offsets[b];
  copy(true);
}

PanelTraining::~PanelTraining() {
  sync();
  if (storage_.capacity() > spare_storage().capacity()) storage_.swap(spare_storage());
}

std::vector<double, Eigen::aligned_allocator<double>>& PanelTraining::spare_storage() {
  thread_local std::vector<double, Eigen::aligned_allocator<double>> spare;
  return spare;
}

void PanelTraining::copy(bool to_panels) {
  const auto& layers = net_.architecture_.layers();
  for (std::size_t b = 0; b < panels_.size(); ++b) {
    if (panels_[b] == nullptr) continue;
    const Network::ParameterBlock& block = net_.blocks_[b];
    const auto l = static_cast<std::size_t>(block.layer);
    double* W = net_.parameters_.data() + block.weight_offset;
    const Eigen::Index J = layers[l].width, K = net_.shapes_.shapes[l].size();
    if (to_panels)
      pack_panels(W, J, K, panels_[b]);
    else
      unpack_panels(panels_[b], J, K, W);
  }
  synced_ = true;
}

void PanelTraining::sync() {
  if (!synced_) copy(false);
}

double PanelTraining::descent_step(const Inputs& x, double learning_rate, const Network::LossFunction& loss) {
  if (!active()) return net_.descent_step(x, learning_rate, loss);
  if (x.count() != batch_)
    throw std::invalid_argument("PanelTraining: argument 'x' has " + std::to_string(x.count()) +
                                " examples, expected the " + std::to_string(batch_) + " it was built for");
  synced_ = false;
  return net_.descend(x, learning_rate, loss, nullptr, panels_.data());
}

double PanelTraining::mse_descent_step(const Inputs& x, const RowMatrix& targets, double learning_rate) {
  net_.check_targets(x, targets, "Network::mse_descent_step");
  return descent_step(x, learning_rate,
                      [&](const RowMatrix& f, RowMatrix& cotangent) { return mse_cotangent(f, targets, cotangent); });
}

}  // namespace detail

}  // namespace emergent
