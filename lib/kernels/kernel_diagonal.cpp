// The pixel-diagonal path of the kernel engine: convolutions (any filter and padding) and
// activations, then flatten, without avgpools. A conv moves both pixels of a pair by the same tap,
// so offset 0 (a == b) is conserved and the flatten readout (1/P)·Σ_a Σ_aa needs only the P
// diagonal pairs (Novak et al. 2019 Sec. 3; Arora et al. 2019):
//   Σ'_aa = W²/(FH·FW)·Σ_taps Σ_{a+s, a+s} + B²,   Θ'_aa = Σ'_aa + W²/(FH·FW)·Σ_taps Θ_{a+s, a+s},
// then the activation's dual at (q1_a, q2_a, Σ_aa) (docs/conventions.md §2).
//
// Eight partner points x_j run in the 8 lanes of a vector against one point x_i: every map is
// pixel-major with the partners innermost ([pixel][8]) and a ring of zeros (or of the wrapped map,
// for circular convs) around it, so a window sum is aligned vector adds of neighbouring pixels,
// q2 (the partners' pixel variances) is one load and q1 one broadcast. A conv followed by a
// ReLU-family activation runs in one pass per output row: the H pass of the window into one row,
// then per pixel the W pass, the update and the dual (family_simd::dual_lanes, the arithmetic of
// ActivationDual::apply) in registers, four pixels at a time. Lanes the vector dual does not take
// (zero variance, extreme magnitudes) go through ActivationDual::apply one by one; other
// activations, and builds without AVX-512, take ActivationDual::apply on the 8 lanes of a pixel.
// Each lane's arithmetic is its own, so an entry's bits depend neither on its group, nor on the
// thread count or the memory cap.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <tuple>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "detail/parallel.hpp"
#include "kernels/kernel_engine.hpp"
#include "kernels/relu_family_avx512.hpp"

namespace emergent::detail {
namespace {

constexpr int kL = DiagonalWorkspace::kLanes;
constexpr Eigen::Index kRowsPerUnit = 32;  // rows x_i per scheduling unit (one group of partners)

inline int wrap(int i, int n) { return ((i % n) + n) % n; }

// The position of pixel (h, w) of a map in a workspace array (in doubles).
inline std::size_t at(const DiagonalWorkspace& ws, int h, int w) {
  return (static_cast<std::size_t>(h + ws.halo) * ws.ld + static_cast<std::size_t>(w + ws.halo)) * kL;
}

// After writing the h × w interior of an array, its ring of zeros is still the ring of a map
// at least as large; otherwise the write went over it.
inline void note_interior(int* ring, int h, int w) {
  if (ring[0] < h || ring[1] < w) ring[0] = ring[1] = -1;
}

// The halo of an h × w map before a conv reads it: zeros (kept from an earlier fill when `ring`
// says so) or, for a circular conv, the map wrapped around both axes.
void prepare_halo(const DiagonalWorkspace& ws, double* a, int* ring, int h, int w, bool circular) {
  const int B = ws.halo;
  if (B == 0) return;
  if (!circular && ring[0] == h && ring[1] == w) return;
  for (int r = -B; r < h + B; ++r) {
    const bool inside_row = r >= 0 && r < h;
    for (int c = -B; c < w + B; ++c) {
      if (inside_row && c >= 0 && c < w) {
        c = w - 1;  // skip the interior
        continue;
      }
      double* dst = a + at(ws, r, c);
      if (circular) {
        const double* src = a + at(ws, wrap(r, h), wrap(c, w));
        for (int l = 0; l < kL; ++l) dst[l] = src[l];
      } else {
        for (int l = 0; l < kL; ++l) dst[l] = 0.0;
      }
    }
  }
  ring[0] = circular ? -1 : h;
  ring[1] = circular ? -1 : w;
}

// hs[k] = Σ_{sh < taps} in[k + sh·row] for k < n doubles: the H pass of one output row.
inline void column_sums(const double* in, std::size_t row, int taps, std::size_t n, double* hs) {
#if defined(__AVX512F__)
  if (taps == 3) {
    for (std::size_t k = 0; k < n; k += kL)
      _mm512_store_pd(hs + k, _mm512_add_pd(_mm512_add_pd(_mm512_load_pd(in + k), _mm512_load_pd(in + k + row)),
                                            _mm512_load_pd(in + k + 2 * row)));
    return;
  }
#endif
  std::copy(in, in + n, hs);
  for (int sh = 1; sh < taps; ++sh) {
    const double* src = in + sh * row;
#pragma omp simd
    for (std::size_t k = 0; k < n; ++k) hs[k] += src[k];
  }
}

#if defined(__AVX512F__)
// One output row of a conv and the ReLU-family dual after it (conv = true: h/g are the H-pass
// rows of Σ/Θ, the W pass sums `taps` neighbours), or the dual alone on a row of a map (conv =
// false: h/g are the row of Σ/Θ itself, updated in place).
struct LaneRow {
  const double* h;
  const double* g;
  double* so;
  double* to;
  const double* q1;  // x_i's variances along the row
  const double* q2;  // the partners' variances along the row, [pixel][8]
  int taps;
  bool t_zero;  // Θ is zero (first conv): Θ' = Σ'
  __m512d scale, b2, ab2, d2, cross;
  __mmask8 self, wanted;
  const ActivationDual* dual;
};

template <int N, bool conv, int kTaps>
__attribute__((always_inline)) inline void lane_pixels(const LaneRow& r, int p) {
  __m512d a[N] = {}, b[N] = {}, sv[N] = {}, tv[N] = {};
  __mmask8 ok[N] = {};
  bool rare = false;
  const int taps = kTaps > 0 ? kTaps : r.taps;
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) {
    const std::size_t o = static_cast<std::size_t>(p + v) * kL;
    if (conv) {
      const double* h = r.h + o;
      __m512d hsum = _mm512_load_pd(h);
#pragma GCC unroll 4
      for (int sw = 1; sw < taps; ++sw) hsum = _mm512_add_pd(hsum, _mm512_load_pd(h + sw * kL));
      sv[v] = _mm512_fmadd_pd(hsum, r.scale, r.b2);
      if (r.t_zero) {
        tv[v] = sv[v];
      } else {
        const double* g = r.g + o;
        __m512d gsum = _mm512_load_pd(g);
#pragma GCC unroll 4
        for (int sw = 1; sw < taps; ++sw) gsum = _mm512_add_pd(gsum, _mm512_load_pd(g + sw * kL));
        tv[v] = _mm512_fmadd_pd(gsum, r.scale, sv[v]);
      }
    } else {
      sv[v] = _mm512_load_pd(r.h + o);
      tv[v] = _mm512_load_pd(r.g + o);
    }
    a[v] = _mm512_set1_pd(r.q1[p + v]);
    b[v] = _mm512_load_pd(r.q2 + o);
    sv[v] = _mm512_mask_mov_pd(sv[v], r.self, a[v]);  // a pixel against itself: exactly collinear
    ok[v] = family_simd::plain_lanes(a[v], b[v], sv[v]);
    rare |= (r.wanted & ~ok[v]) != 0;
  }
  if (__builtin_expect(rare, 0)) {  // zero variance, extreme magnitudes: the scalar path
    for (int v = 0; v < N; ++v) {
      const std::size_t o = static_cast<std::size_t>(p + v) * kL;
      _mm512_store_pd(r.so + o, sv[v]);
      _mm512_store_pd(r.to + o, tv[v]);
      const unsigned fix = r.wanted & ~ok[v];
      for (int l = 0; l < kL; ++l)
        if (fix >> l & 1u) r.dual->apply(1, r.q1 + p + v, 0, r.q2 + o + l, 0, r.so + o + l, r.to + o + l);
      ok[v] |= static_cast<__mmask8>(~r.wanted);  // the lanes nobody reads take the vector result
    }
  }
  family_simd::dual_lanes<N>(a, b, sv, tv, r.ab2, r.d2, r.cross);
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) {
    const std::size_t o = static_cast<std::size_t>(p + v) * kL;
    if (rare) {
      _mm512_mask_store_pd(r.so + o, ok[v], sv[v]);
      _mm512_mask_store_pd(r.to + o, ok[v], tv[v]);
    } else {
      _mm512_store_pd(r.so + o, sv[v]);
      _mm512_store_pd(r.to + o, tv[v]);
    }
  }
}

template <bool conv, int kTaps>
void lane_row(const LaneRow& r, int n) {
  int p = 0;
  for (; p + 4 <= n; p += 4) lane_pixels<4, conv, kTaps>(r, p);
  switch (n - p) {
    case 3: lane_pixels<3, conv, kTaps>(r, p); break;
    case 2: lane_pixels<2, conv, kTaps>(r, p); break;
    case 1: lane_pixels<1, conv, kTaps>(r, p); break;
    default: break;
  }
}

LaneRow lane_row_setup(const FamilyCoefficients& f, const ActivationDual& dual, unsigned self, unsigned wanted) {
  LaneRow r{};
  r.ab2 = _mm512_set1_pd(f.ab2);
  r.d2 = _mm512_set1_pd(f.d2);
  r.cross = _mm512_set1_pd(f.cross);
  r.self = static_cast<__mmask8>(self);
  r.wanted = static_cast<__mmask8>(wanted);
  r.dual = &dual;
  return r;
}
#endif

}  // namespace

DiagonalWorkspace::DiagonalWorkspace(int halo_, int h, int w, int channels, int record)
    : halo(halo_), ld(w + 2 * halo_), rows(h + 2 * halo_), store(doubles(halo_, h, w, channels, record), 0.0) {
  double* next = store.data();
  auto carve = [&](std::size_t n) {
    const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(next);
    double* view = reinterpret_cast<double*>((p + 63) & ~std::uintptr_t(63));
    next = view + n;
    return view;
  };
  const std::size_t map = static_cast<std::size_t>(rows) * ld * kL, row = static_cast<std::size_t>(ld) * kL;
  for (int k = 0; k < 2; ++k) s[k] = carve(map), t[k] = carve(map);
  hs = carve(row);
  ht = carve(row);
  x = carve(static_cast<std::size_t>(h) * w * channels * kL);
  q = carve(static_cast<std::size_t>(record) * kL);
}

std::size_t DiagonalWorkspace::doubles(int halo, int h, int w, int channels, int record) {
  const std::size_t map = static_cast<std::size_t>(h + 2 * halo) * (w + 2 * halo) * kL;
  const std::size_t row = static_cast<std::size_t>(w + 2 * halo) * kL;
  return 4 * map + 2 * row + static_cast<std::size_t>(h) * w * channels * kL + static_cast<std::size_t>(record) * kL +
         8 * 8;  // 8 views, each aligned to 64 bytes
}

bool Engine::uses_diagonal() const {
  return plan_.pixel_stage && plan_.readout == Readout::Flatten && !plan_.pooled;
}

int Engine::diagonal_halo() const {
  int halo = 0;
  for (const auto& op : plan_.spatial)
    if (op.kind == OpKind::Affine)
      for (const Axis* a : {&op.ah, &op.aw}) halo = std::max({halo, a->before, a->filter - 1 - a->before});
  return halo;
}

DiagonalWorkspace Engine::diagonal_workspace() const {
  return DiagonalWorkspace(diagonal_halo(), plan_.in_h, plan_.in_w, plan_.in_c, plan_.record);
}

std::size_t Engine::diagonal_workspace_bytes() const {
  return sizeof(double) * DiagonalWorkspace::doubles(diagonal_halo(), plan_.in_h, plan_.in_w, plan_.in_c, plan_.record);
}

void Engine::diagonal_group(Eigen::Index j0, DiagonalWorkspace& ws) const {
  const std::size_t features = static_cast<std::size_t>(plan_.in_h) * plan_.in_w * plan_.in_c;
  const std::size_t record = static_cast<std::size_t>(plan_.record);
  ws.group = j0;
  ws.lanes = static_cast<int>(std::min<Eigen::Index>(kL, n2_ - j0));
  for (int l = 0; l < kL; ++l) {
    if (l < ws.lanes) {
      const Eigen::Index point = second(j0 + l);
      const double* x = row_of(point);
      const double* r = this->record(point);
      for (std::size_t k = 0; k < features; ++k) ws.x[k * kL + l] = x[k];
      for (std::size_t e = 0; e < record; ++e) ws.q[e * kL + l] = r[e];
    } else {  // no partner: a zero image with unit variances, finite all the way
      for (std::size_t k = 0; k < features; ++k) ws.x[k * kL + l] = 0.0;
      for (std::size_t e = 0; e < record; ++e) ws.q[e * kL + l] = 1.0;
    }
  }
}

void Engine::diagonal_entries(Eigen::Index i, unsigned wanted, DiagonalWorkspace& ws, double* s_out,
                              double* t_out) const {
  const int C = plan_.in_c;
  int H = plan_.in_h, W = plan_.in_w;
  const double* x = row_of(i);
  const double* r1 = record(i);
  unsigned self = 0;
  for (int l = 0; l < ws.lanes; ++l)
    if (same_point(i, second(ws.group + l))) self |= 1u << l;
  int cur = 0;
  // Σ⁰_aa = x_a·x'_a / C, Θ⁰ = 0.
  {
    double* S = ws.s[0];
    double* T = ws.t[0];
    const double inv = 1.0 / C;
    for (int h = 0; h < H; ++h)
      for (int w = 0; w < W; ++w) {
        const std::size_t p = static_cast<std::size_t>(h) * W + w;
        const double* a = x + p * C;
        const double* b = ws.x + p * C * kL;
        double* sp = S + at(ws, h, w);
        double* tp = T + at(ws, h, w);
#if defined(__AVX512F__)
        __m512d acc = _mm512_mul_pd(_mm512_set1_pd(a[0]), _mm512_load_pd(b));
        for (int c = 1; c < C; ++c) acc = _mm512_fmadd_pd(_mm512_set1_pd(a[c]), _mm512_load_pd(b + c * kL), acc);
        _mm512_store_pd(sp, _mm512_mul_pd(acc, _mm512_set1_pd(inv)));
        _mm512_store_pd(tp, _mm512_setzero_pd());
#else
        for (int l = 0; l < kL; ++l) {
          double acc = 0;
          for (int c = 0; c < C; ++c) acc += a[c] * b[c * kL + l];
          sp[l] = acc * inv;
          tp[l] = 0.0;
        }
#endif
      }
    note_interior(ws.ring_s[0], H, W);
    note_interior(ws.ring_t[0], H, W);
  }
  bool t_zero = true;
  const std::size_t nops = plan_.spatial.size();
  for (std::size_t k = 0; k < nops; ++k) {
    const SpatialOp& op = plan_.spatial[k];
    double* S = ws.s[cur];
    double* T = ws.t[cur];
    if (op.kind == OpKind::Affine) {
      const Axis& ah = op.ah;
      const Axis& aw = op.aw;
      const int Ho = ah.n_out, Wo = aw.n_out, Fh = ah.filter, Fw = aw.filter;
      const double scale = op.w2 / (Fh * Fw), b2 = op.b2;
      prepare_halo(ws, S, ws.ring_s[cur], H, W, ah.circular);
      if (!t_zero) prepare_halo(ws, T, ws.ring_t[cur], H, W, ah.circular);
      double* So = ws.s[1 - cur];
      double* To = ws.t[1 - cur];
      const SpatialOp* act = k + 1 < nops && plan_.spatial[k + 1].kind == OpKind::Activation ? &plan_.spatial[k + 1]
                                                                                          : nullptr;
      bool fuse = false;
#if defined(__AVX512F__)
      FamilyCoefficients family;
      fuse = act && relu_family_coefficients(plan_.duals[act->dual].activation(), &family);
      LaneRow lr{};
      if (fuse) {
        lr = lane_row_setup(family, plan_.duals[act->dual], self, wanted);
        lr.h = ws.hs;
        lr.g = ws.ht;
        lr.taps = Fw;
        lr.t_zero = t_zero;
        lr.scale = _mm512_set1_pd(scale);
        lr.b2 = _mm512_set1_pd(b2);
      }
#else
      (void)act;
#endif
      const std::size_t row = static_cast<std::size_t>(ws.ld) * kL;
      const std::size_t n = static_cast<std::size_t>(Wo + Fw - 1) * kL;  // the input columns one output row reads
      for (int o = 0; o < Ho; ++o) {
        // H pass: input rows o − before .. o − before + Fh − 1, columns −before .. Wo − before + Fw − 2.
        column_sums(S + at(ws, o - ah.before, -aw.before), row, Fh, n, ws.hs);
        if (!t_zero) column_sums(T + at(ws, o - ah.before, -aw.before), row, Fh, n, ws.ht);
        double* so = So + at(ws, o, 0);
        double* to = To + at(ws, o, 0);
#if defined(__AVX512F__)
        if (fuse) {
          lr.so = so;
          lr.to = to;
          lr.q1 = r1 + act->q_offset + static_cast<std::size_t>(o) * Wo;
          lr.q2 = ws.q + (static_cast<std::size_t>(act->q_offset) + static_cast<std::size_t>(o) * Wo) * kL;
          if (Fw == 3) lane_row<true, 3>(lr, Wo);
          else lane_row<true, 0>(lr, Wo);
          continue;
        }
#endif
        // W pass and Σ' = W²·𝒞[Σ] + B², Θ' = Σ' + W²·𝒞[Θ].
        for (int p = 0; p < Wo; ++p) {
          const double* hp = ws.hs + static_cast<std::size_t>(p) * kL;
          const double* gp = ws.ht + static_cast<std::size_t>(p) * kL;
          double* sp = so + static_cast<std::size_t>(p) * kL;
          double* tp = to + static_cast<std::size_t>(p) * kL;
#pragma omp simd
          for (int l = 0; l < kL; ++l) {
            double hsum = hp[l], gsum = t_zero ? 0.0 : gp[l];
            for (int sw = 1; sw < Fw; ++sw) {
              hsum += hp[sw * kL + l];
              if (!t_zero) gsum += gp[sw * kL + l];
            }
            const double sv = hsum * scale + b2;
            sp[l] = sv;
            tp[l] = sv + gsum * scale;
          }
        }
      }
      note_interior(ws.ring_s[1 - cur], Ho, Wo);
      note_interior(ws.ring_t[1 - cur], Ho, Wo);
      cur = 1 - cur;
      H = Ho;
      W = Wo;
      t_zero = false;
      if (fuse) ++k;  // its activation is done
    } else if (op.kind == OpKind::Activation) {
      const ActivationDual& dual = plan_.duals[op.dual];
      const double* q1 = r1 + op.q_offset;
      const double* q2 = ws.q + static_cast<std::size_t>(op.q_offset) * kL;
#if defined(__AVX512F__)
      FamilyCoefficients family;
      if (relu_family_coefficients(dual.activation(), &family)) {
        LaneRow lr = lane_row_setup(family, dual, self, wanted);
        for (int h = 0; h < H; ++h) {
          lr.h = lr.so = S + at(ws, h, 0);
          lr.g = lr.to = T + at(ws, h, 0);
          lr.q1 = q1 + static_cast<std::size_t>(h) * W;
          lr.q2 = q2 + static_cast<std::size_t>(h) * W * kL;
          lane_row<false, 1>(lr, W);
        }
        t_zero = false;
        continue;
      }
#endif
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) {
          const std::size_t p = static_cast<std::size_t>(h) * W + w;
          double* sp = S + at(ws, h, w);
          for (int l = 0; l < kL; ++l)
            if (self >> l & 1u) sp[l] = q1[p];  // a pixel against itself: exactly collinear
          dual.apply(kL, q1 + p, 0, q2 + p * kL, 1, sp, T + at(ws, h, w));
        }
      t_zero = false;
    }
  }
  // Flatten: the mean over the pixel diagonal, then the tail per lane.
  const double* S = ws.s[cur];
  const double* T = ws.t[cur];
  double ss[kL] = {}, st[kL] = {};
  for (int h = 0; h < H; ++h)
    for (int w = 0; w < W; ++w) {
      const double* sp = S + at(ws, h, w);
      const double* tp = T + at(ws, h, w);
#pragma omp simd
      for (int l = 0; l < kL; ++l) ss[l] += sp[l], st[l] += tp[l];
    }
  const double m = static_cast<double>(H) * W;
  for (int l = 0; l < kL; ++l)
    if (wanted >> l & 1u) std::tie(s_out[l], t_out[l]) = tail_pair(i, second(ws.group + l), ss[l] / m, st[l] / m);
}

std::size_t Engine::diagonal_block(Eigen::Index r0, Eigen::Index r1, Eigen::Index c0, const DiagonalOutput& out,
                                   const std::function<void(std::size_t, std::size_t)>& progress) {
  struct Unit { Eigen::Index j0, i0, i1; };
  std::vector<Unit> units;
  std::size_t total = 0;
  for (Eigen::Index j0 = c0; j0 < n2_; j0 += kL) {
    const Eigen::Index lanes = std::min<Eigen::Index>(kL, n2_ - j0);
    const Eigen::Index end = symmetric_ ? std::min(r1, j0 + lanes) : r1;  // symmetric: only j ≥ i
    for (Eigen::Index i0 = r0; i0 < end; i0 += kRowsPerUnit) units.push_back({j0, i0, std::min(end, i0 + kRowsPerUnit)});
    for (Eigen::Index i = r0; i < end; ++i)
      total += static_cast<std::size_t>(symmetric_ ? j0 + lanes - std::max(i, j0) : lanes);
  }
  std::atomic<std::size_t> done{0};
  auto last_report = std::chrono::steady_clock::now();
  detail::ParallelErrors errors;
#pragma omp parallel num_threads(threads_)
  {
    DiagonalWorkspace ws = diagonal_workspace();
#pragma omp for schedule(dynamic, 1)
    for (std::size_t u = 0; u < units.size(); ++u) {
      errors.run(static_cast<long long>(u), [&] {
        const Unit& unit = units[u];
        if (ws.group != unit.j0) diagonal_group(unit.j0, ws);
        double s[kL], t[kL];
        std::size_t entries = 0;
        for (Eigen::Index i = unit.i0; i < unit.i1; ++i) {
          unsigned wanted = (1u << ws.lanes) - 1;
          if (symmetric_ && i > unit.j0) wanted &= ~((1u << (i - unit.j0)) - 1);
          diagonal_entries(i, wanted, ws, s, t);
          for (int l = 0; l < ws.lanes; ++l) {
            if (!(wanted >> l & 1u)) continue;
            const Eigen::Index j = unit.j0 + l;
            const std::size_t k = static_cast<std::size_t>(i - out.r0) * out.row_step +
                                  static_cast<std::size_t>(j - out.c0) * out.col_step;
            out.nngp[k] = s[l];
            out.ntk[k] = t[l];
            if (out.mirror && i != j) {
              const std::size_t mk = static_cast<std::size_t>(j - out.r0) * out.row_step +
                                     static_cast<std::size_t>(i - out.c0) * out.col_step;
              out.nngp[mk] = s[l];
              out.ntk[mk] = t[l];
            }
            ++entries;
          }
        }
        done += entries;
        if (progress && omp_get_thread_num() == 0) {  // progress from the calling thread only
          const auto now = std::chrono::steady_clock::now();
          if (now - last_report > std::chrono::milliseconds(250)) {
            last_report = now;
            progress(done.load(), total);
          }
        }
      });
    }
  }
  errors.rethrow();
  return units.size();
}

}  // namespace emergent::detail
