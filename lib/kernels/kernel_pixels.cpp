// The pixel paths of the kernel engine: pixel-diagonal (convolutions then flatten) and
// pixel-pairs (convolutions then gap, or no readout); Novak et al. 2019 Sec. 3 / Eq. 7,
// Garriga-Alonso et al. 2019, Arora et al. 2019. The conv window sum is separable.
#include "kernels/kernel_engine.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "detail/parallel.hpp"
#include "kernels/relu_family_avx512.hpp"

namespace emergent::detail {
namespace {

// out[o][p] = scale · Σ_{sh,sw} in[ih(o,sh)][iw(p,sw)]  — the conv window sum on the pixel
// diagonal, separably. tmp holds n_out_h × n_in_w doubles.
void box_diagonal(const double* in, double* out, double* tmp, const Axis& ah, const Axis& aw, double scale) {
  const int Wi = aw.n_in, Ho = ah.n_out, Wo = aw.n_out, Fh = ah.filter, Fw = aw.filter;
  for (int o = 0; o < Ho; ++o) {
    double* t = tmp + static_cast<std::size_t>(o) * Wi;
    std::fill(t, t + Wi, 0.0);
    for (int s = 0; s < Fh; ++s) {
      const int i = ah.source[static_cast<std::size_t>(o) * Fh + s];
      if (i < 0) continue;
      const double* row = in + static_cast<std::size_t>(i) * Wi;
      for (int c = 0; c < Wi; ++c) t[c] += row[c];
    }
  }
  for (int o = 0; o < Ho; ++o) {
    const double* t = tmp + static_cast<std::size_t>(o) * Wi;
    double* r = out + static_cast<std::size_t>(o) * Wo;
    std::fill(r, r + Wo, 0.0);
    for (int s = 0; s < Fw; ++s)
      for (const auto& run : aw.runs[static_cast<std::size_t>(s)])
        for (int l = 0; l < run.len; ++l) r[run.out + l] += t[run.in + l];
    for (int p = 0; p < Wo; ++p) r[p] *= scale;
  }
}

// out[(o1,p1),(o2,p2)] = scale · Σ_{sh,sw} in[(ih(o1,sh), iw(p1,sw)), (ih(o2,sh), iw(p2,sw))]
// — the conv window sum on all pixel pairs; both pixels move by the same tap (Novak et al.
// 2019 Eq. 7). Separable: a pass along H (into tmp, Ho·Wi·Ho·Wi doubles), then along W.
void box_pairs(const double* in, double* out, double* tmp, const Axis& ah, const Axis& aw, double scale) {
  const int Hi = ah.n_in, Wi = aw.n_in, Ho = ah.n_out, Wo = aw.n_out, Fh = ah.filter, Fw = aw.filter;
  std::fill(tmp, tmp + static_cast<std::size_t>(Ho) * Wi * Ho * Wi, 0.0);
  for (int o1 = 0; o1 < Ho; ++o1)
    for (int s = 0; s < Fh; ++s) {
      const int i1 = ah.source[static_cast<std::size_t>(o1) * Fh + s];
      if (i1 < 0) continue;
      for (int w1 = 0; w1 < Wi; ++w1)
        for (int o2 = 0; o2 < Ho; ++o2) {
          const int i2 = ah.source[static_cast<std::size_t>(o2) * Fh + s];
          if (i2 < 0) continue;
          const double* src = in + ((static_cast<std::size_t>(i1) * Wi + w1) * Hi + i2) * Wi;
          double* dst = tmp + ((static_cast<std::size_t>(o1) * Wi + w1) * Ho + o2) * Wi;
          for (int w2 = 0; w2 < Wi; ++w2) dst[w2] += src[w2];
        }
    }
  for (int o1 = 0; o1 < Ho; ++o1)
    for (int p1 = 0; p1 < Wo; ++p1)
      for (int o2 = 0; o2 < Ho; ++o2) {
        double* dst = out + ((static_cast<std::size_t>(o1) * Wo + p1) * Ho + o2) * Wo;
        std::fill(dst, dst + Wo, 0.0);
        for (int s = 0; s < Fw; ++s) {
          const int j1 = aw.source[static_cast<std::size_t>(p1) * Fw + s];
          if (j1 < 0) continue;
          const double* row = tmp + ((static_cast<std::size_t>(o1) * Wi + j1) * Ho + o2) * Wi;
          for (const auto& run : aw.runs[static_cast<std::size_t>(s)])
            for (int l = 0; l < run.len; ++l) dst[run.out + l] += row[run.in + l];
        }
        for (int p2 = 0; p2 < Wo; ++p2) dst[p2] *= scale;
      }
}

}  // namespace

// Pixel diagonal Σ(x,x)_aa through the spatial stage; returns the flatten readout mean.
double Engine::spatial_diagonal(const double* x, double* rec, std::vector<double>& a, std::vector<double>& b,
                        std::vector<double>& tmp) const {
  const int P = plan_.in_h * plan_.in_w, C = plan_.in_c;
  for (int p = 0; p < P; ++p) {
    double acc = 0;
    for (int c = 0; c < C; ++c) acc += x[p * C + c] * x[p * C + c];
    a[p] = acc / C;
  }
  for (const auto& op : plan_.spatial) {
    const int n = op.height * op.width;
    if (op.kind == OpKind::Affine) {
      const double scale = op.w2 / (op.ah.filter * op.aw.filter);
      box_diagonal(a.data(), b.data(), tmp.data(), op.ah, op.aw, scale);
      const int m = op.ah.n_out * op.aw.n_out;
      for (int p = 0; p < m; ++p) a[p] = b[p] + op.b2;
    } else {
      const ActivationDual& dual = plan_.duals[op.dual];
      for (int p = 0; p < n; ++p) {
        rec[op.q_offset + p] = a[p];
        a[p] = dual(a[p], a[p], a[p]).nngp;
      }
    }
  }
  const int m = plan_.out_h * plan_.out_w;
  double mean = 0;
  for (int p = 0; p < m; ++p) mean += a[p];
  return mean / m;
}

void Engine::compute_records() {
  records_.assign(static_cast<std::size_t>(point_count()) * plan_.record, 0.0);
  if (!plan_.pixel_stage) return;  // the vector path fills its records from reduced inputs
  const std::size_t P0 = static_cast<std::size_t>(plan_.in_h) * plan_.in_w;
  const Eigen::Index n = point_count();
  detail::ParallelErrors errors;
  if (plan_.pooled) {
    // After an avgpool a pixel's variance averages the pairs of its window, so the pixel
    // diagonal alone does not recur: each point runs with itself, stage by stage, and records
    // the variances on the way (the offset-0 slice of each stage comes first). The sums are
    // kept for the Gram diagonal, which is the same computation.
    self_sums_.assign(static_cast<std::size_t>(n), {0.0, 0.0});
    const double m = static_cast<double>(plan_.out_h) * plan_.out_w;
    const double count = plan_.readout == Readout::Flatten ? m : m * m;
    // The whole run (all offsets the output needs) only where its sums are read: the Gram
    // diagonal (a symmetric Gram, or a point of x1 that also occurs in x2) and a tail activation's
    // own variance; elsewhere the offsets the pixel variances need (Plan::Stage::rec_*): for
    // Myrtle's 32×32 stage 4 row offsets of 32.
    const bool tail_activation = std::any_of(plan_.tail.begin(), plan_.tail.end(),
                                             [](const VectorOp& op) { return op.kind == OpKind::Activation; });
    std::vector<char> whole(static_cast<std::size_t>(n), symmetric_ || (tail_activation && plan_.readout != Readout::None));
    if (!symmetric_) {  // x1_i's own sums are the entry (i, j) when x2_j is the same point
      std::vector<char> in_x2(static_cast<std::size_t>(n), 0);
      for (Eigen::Index j = n1_; j < n; ++j) in_x2[static_cast<std::size_t>(identity_[static_cast<std::size_t>(j)])] = 1;
      for (Eigen::Index i = 0; i < n1_; ++i)
        if (in_x2[static_cast<std::size_t>(identity_[static_cast<std::size_t>(i)])]) whole[static_cast<std::size_t>(i)] = 1;
    }
#pragma omp parallel num_threads(threads_)
    {
      SliceWorkspace sw = slice_workspace();
#pragma omp for schedule(dynamic, 1)
      for (Eigen::Index i = 0; i < n; ++i) {
        errors.run(static_cast<long long>(i), [&] {
          double* rec = records_.data() + static_cast<std::size_t>(i) * plan_.record;
          if (!whole[static_cast<std::size_t>(i)]) {
            pair_stages(i, i, sw, nullptr, nullptr, rec, true);
            return;
          }
          const auto sums = pair_stages(i, i, sw, nullptr, nullptr, rec);
          self_sums_[static_cast<std::size_t>(i)] = sums;
          if (plan_.readout != Readout::None) tail_diagonal(sums.first / count, rec);
        });
      }
    }
    errors.rethrow();
    return;
  }
#pragma omp parallel num_threads(threads_)
  {
    std::vector<double> a(P0), b(P0), tmp(P0);
#pragma omp for schedule(static)
    for (Eigen::Index i = 0; i < n; ++i) {
      errors.run(static_cast<long long>(i), [&] {
        double* rec = records_.data() + static_cast<std::size_t>(i) * plan_.record;
        const double q = spatial_diagonal(row_of(i), rec, a, b, tmp);
        if (plan_.readout == Readout::Flatten) tail_diagonal(q, rec);
      });
    }
  }
  errors.rethrow();
}

// Σ⁰_ab(x, x') = x_a·x'_b / C on the pixel diagonal (a == b) or on all pairs.
void Engine::input_pairs(const double* x, const double* y, double* s, bool diagonal) const {
  const int P = plan_.in_h * plan_.in_w, C = plan_.in_c;
  const double inv = 1.0 / C;
  if (diagonal) {
    for (int p = 0; p < P; ++p) {
      double acc = 0;
      for (int c = 0; c < C; ++c) acc += x[p * C + c] * y[p * C + c];
      s[p] = acc * inv;
    }
    return;
  }
  Eigen::Map<const RowMatrix> xm(x, P, C), ym(y, P, C);
  Eigen::Map<RowMatrix> sm(s, P, P);
  sm.noalias() = xm * ym.transpose();
  sm *= inv;
}

// Runs the spatial stage for the pair (p1, p2); leaves Σ and Θ in ws.s / ws.t.
void Engine::spatial_pair(Eigen::Index p1, Eigen::Index p2, Workspace& ws, bool diagonal) const {
  const int P0 = plan_.in_h * plan_.in_w;
  input_pairs(row_of(p1), row_of(p2), ws.s.data(), diagonal);
  std::fill(ws.t.begin(), ws.t.begin() + (diagonal ? P0 : static_cast<std::size_t>(P0) * P0), 0.0);
  const double* r1 = record(p1);
  const double* r2 = record(p2);
  for (const auto& op : plan_.spatial) {
    if (op.kind == OpKind::Affine) {
      const double scale = op.w2 / (op.ah.filter * op.aw.filter);
      const std::size_t m = static_cast<std::size_t>(op.ah.n_out) * op.aw.n_out;
      const std::size_t n = diagonal ? m : m * m;
      if (diagonal) {
        box_diagonal(ws.s.data(), ws.s2.data(), ws.tmp.data(), op.ah, op.aw, scale);
        box_diagonal(ws.t.data(), ws.t2.data(), ws.tmp.data(), op.ah, op.aw, scale);
      } else {
        box_pairs(ws.s.data(), ws.s2.data(), ws.tmp.data(), op.ah, op.aw, scale);
        box_pairs(ws.t.data(), ws.t2.data(), ws.tmp.data(), op.ah, op.aw, scale);
      }
      // Σ' = W²·𝒞[Σ] + B²,  Θ' = Σ' + W²·𝒞[Θ]
      for (std::size_t k = 0; k < n; ++k) {
        const double sv = ws.s2[k] + op.b2;
        ws.s[k] = sv;
        ws.t[k] = sv + ws.t2[k];
      }
    } else {
      const ActivationDual& dual = plan_.duals[op.dual];
      const int m = op.height * op.width;
      const double* q1 = r1 + op.q_offset;
      const double* q2 = r2 + op.q_offset;
      if (same_point(p1, p2)) {  // pixel a of a point against itself is exactly collinear
        const std::size_t step = diagonal ? 1 : static_cast<std::size_t>(m) + 1;
        for (int a = 0; a < m; ++a) ws.s[a * step] = q1[a];
      }
      if (diagonal) {
        dual.apply(static_cast<std::size_t>(m), q1, 1, q2, 1, ws.s.data(), ws.t.data());
      } else {
        for (int a = 0; a < m; ++a) {
          const std::size_t row = static_cast<std::size_t>(a) * m;
          dual.apply(static_cast<std::size_t>(m), q1 + a, 0, q2, 1, ws.s.data() + row, ws.t.data() + row);
        }
      }
    }
  }
}

// Readout and tail for one pair: returns (Σ, Θ) of the network output.
std::pair<double, double> Engine::readout_pair(Eigen::Index p1, Eigen::Index p2, const Workspace& ws) const {
  const std::size_t m = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
  const std::size_t n = plan_.readout == Readout::Flatten ? m : m * m;
  double s = 0, t = 0;
  for (std::size_t k = 0; k < n; ++k) {
    s += ws.s[k];
    t += ws.t[k];
  }
  s /= static_cast<double>(n);
  t /= static_cast<double>(n);
  for (const auto& op : plan_.tail) {
    if (op.kind == OpKind::Affine) {
      s = op.w2 * s + op.b2;
      t = s + op.w2 * t;
    } else {
      if (same_point(p1, p2)) s = record(p1)[op.q_offset];
      const DualValue v = plan_.duals[op.dual](record(p1)[op.q_offset], record(p2)[op.q_offset], s);
      s = v.nngp;
      t *= v.ntk_scale;
    }
  }
  return {s, t};
}

// Pixel-diagonal and pixel-pair paths. `stride` is 1 for Gram outputs (N1 × N2, column-major
// Eigen storage) and P² for spatial outputs (C order (N1, N2, P, P)).
// Per-point records of the pixel paths: pixel variances, and for gap followed by a tail with an
// activation each point's own gap value (shared by run_pixels and stream_pixels).
void Engine::prepare_pixels() {
  const bool slices = uses_slices();
  const std::size_t P0 = static_cast<std::size_t>(plan_.in_h) * plan_.in_w;
  compute_records();
  const bool tail_activation = std::any_of(plan_.tail.begin(), plan_.tail.end(),
                                           [](const VectorOp& op) { return op.kind == OpKind::Activation; });
  if (plan_.readout == Readout::Gap && tail_activation && !plan_.pooled) {  // pooled: done by compute_records
    // The tail after gap needs each point's own gap value (1/P²)Σ_ab Σ(x,x)_ab, which uses
    // all pixel pairs of (x, x): one pair computation per point.
    const Eigen::Index n = point_count();
    detail::ParallelErrors errors2;
#pragma omp parallel num_threads(threads_)
    {
      Workspace ws(slices ? 0 : P0 * P0);
      SliceWorkspace sw = slice_workspace();
#pragma omp for schedule(dynamic, 1)
      for (Eigen::Index i = 0; i < n; ++i) {
        errors2.run(static_cast<long long>(i), [&] {
          const std::size_t m = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
          double q = 0;
          if (slices) {
            q = pair_slices(i, i, sw, nullptr, nullptr).first;
          } else {
            spatial_pair(i, i, ws, false);
            for (std::size_t k = 0; k < m * m; ++k) q += ws.s[k];
          }
          tail_diagonal(q / static_cast<double>(m * m),
                        records_.data() + static_cast<std::size_t>(i) * plan_.record);
        });
      }
    }
    errors2.rethrow();
  }
}

bool Engine::uses_slices() const { return plan_.slices; }

Workspace Engine::pixel_workspace() const {
  const std::size_t P0 = static_cast<std::size_t>(plan_.in_h) * plan_.in_w;
  return Workspace(uses_slices() ? 0 : plan_.readout == Readout::Flatten ? P0 : P0 * P0);
}

// One entry (x1_i, x2_j) of the pixel paths, the same arithmetic for run_pixels and stream_pixels:
// m² values each (C order over the output pixel pair) when pixel-indexed, else one value each.
void Engine::pixel_entry(Eigen::Index i, Eigen::Index j, Workspace& ws, SliceWorkspace& sw, double* s,
                         double* t) const {
  const bool diagonal = plan_.readout == Readout::Flatten;
  const std::size_t m = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
  if (plan_.readout == Readout::None) {
    if (uses_slices()) {
      pair_slices(i, second(j), sw, s, t);
    } else {
      spatial_pair(i, second(j), ws, diagonal);
      std::copy(ws.s.begin(), ws.s.begin() + m * m, s);
      std::copy(ws.t.begin(), ws.t.begin() + m * m, t);
    }
  } else if (uses_slices()) {
    const auto [ss, st] = plan_.pooled && same_point(i, second(j)) ? self_sums_[static_cast<std::size_t>(i)]
                                                                   : pair_slices(i, second(j), sw, nullptr, nullptr);
    const double n = static_cast<double>(plan_.readout == Readout::Flatten ? m : m * m);
    std::tie(*s, *t) = tail_pair(i, second(j), ss / n, st / n);
  } else {
    spatial_pair(i, second(j), ws, diagonal);
    std::tie(*s, *t) = readout_pair(i, second(j), ws);
  }
}

void Engine::run_pixels(double* nngp, double* ntk, std::size_t stride) {
  const bool spatial = plan_.readout == Readout::None;
  prepare_pixels();
  if (uses_diagonal()) {  // flatten without avgpools: 8 partners at a time on the pixel diagonal
    DiagonalOutput out{nngp, ntk, 0, 0, 1, static_cast<std::size_t>(n1_), symmetric_};
    blocks_ = diagonal_block(0, n1_, 0, out, {});
    return;
  }
  // Units of work: up to block_ consecutive j for one i, and 32 or more units per thread (as in
  // stream_pixels), so the threads end within a few entries of each other.
  struct Unit { Eigen::Index i, j0, j1; };
  std::vector<Unit> units;
  std::size_t entries = 0;
  for (Eigen::Index i = 0; i < n1_; ++i) entries += static_cast<std::size_t>(n2_ - (symmetric_ ? i : 0));
  const Eigen::Index B = static_cast<Eigen::Index>(
      std::clamp<std::size_t>(entries / (32 * static_cast<std::size_t>(threads_)), 1, block_));
  for (Eigen::Index i = 0; i < n1_; ++i)
    for (Eigen::Index j = symmetric_ ? i : 0; j < n2_; j += B) units.push_back({i, j, std::min(n2_, j + B)});
  blocks_ = units.size();
  const std::size_t m = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
  detail::ParallelErrors errors3;
#pragma omp parallel num_threads(threads_)
  {
    Workspace ws = pixel_workspace();
    SliceWorkspace sw = slice_workspace();
#pragma omp for schedule(dynamic, 1)
    for (std::size_t u = 0; u < units.size(); ++u) {
      errors3.run(static_cast<long long>(u), [&] {
        const Eigen::Index i = units[u].i;
        for (Eigen::Index j = units[u].j0; j < units[u].j1; ++j) {
          if (spatial) {
            const std::size_t base = (static_cast<std::size_t>(i) * n2_ + j) * stride;
            const double* s = nngp + base;
            const double* t = ntk + base;
            pixel_entry(i, j, ws, sw, nngp + base, ntk + base);
            if (symmetric_ && j != i) {  // K(x_j, x_i)_ab = K(x_i, x_j)_ba
              const std::size_t mirror = (static_cast<std::size_t>(j) * n2_ + i) * stride;
              for (std::size_t a = 0; a < m; ++a)
                for (std::size_t b = 0; b < m; ++b) {
                  nngp[mirror + b * m + a] = s[a * m + b];
                  ntk[mirror + b * m + a] = t[a * m + b];
                }
            }
          } else {
            double s = 0, t = 0;
            pixel_entry(i, j, ws, sw, &s, &t);
            nngp[i + j * n1_] = s;  // Eigen default storage is column-major
            ntk[i + j * n1_] = t;
            if (symmetric_) {
              nngp[j + i * n1_] = s;
              ntk[j + i * n1_] = t;
            }
          }
        }
      });
    }
  }
  errors3.rethrow();
}


// --- offset slices ---------------------------------------------------------------------------
// A conv moves both pixels of a pair by the same tap, so the offset (d, e) = a − b of a pixel
// pair (a, b) is conserved by every layer (modulo the map size when all convs are circular),
// and the activation acts pointwise. The P² pixel pairs therefore split into (2H−1)(2W−1)
// independent slices, each a (H−|d|) × (W−|e|) map that goes through all layers with a plain
// 2-D window sum: a few KiB of Σ and Θ that stay in L1 through the whole network, instead of
// P² arrays streamed through memory once per layer. For a point with itself, slice (d, e) is
// the transpose of slice (−d, −e) (Σ(x,x)_ab = Σ(x,x)_ba), so half of them suffice for gap.
// An avgpool ends a stage of conserved offsets (Plan::stages): each pixel of a pair averages over
// its own window, so the finished slices are scattered onto the coarse pixel pairs, from which
// the next stage's slices start (pair_stages). Where a stage's convs are all `same`, the slices
// of one row offset d are run together as a row slab (run_slab): long contiguous rows instead of
// short slice rows.
namespace {
struct Range {
  int lo, hi;
  bool empty() const { return lo >= hi; }
};
// Rows h1 of slice offset d on a map of n rows: those with partner h1 − d on the map too.
inline Range slice_range(int n, int d, bool circular) {
  return circular ? Range{0, n} : Range{std::max(0, d), std::min(n, n + d)};
}
inline int wrap(int i, int n, bool circular) { return circular ? ((i % n) + n) % n : i; }
// Short rows (a slice row is at most one map row): copied and zeroed inline, without a call to
// memmove/memset per row.
inline void copy_row(const double* src, int n, double* dst) {
#if defined(__AVX512F__)
  for (int c = 0; c < n; c += 8) {
    const __mmask8 m = n - c >= 8 ? __mmask8(0xFF) : __mmask8((1u << (n - c)) - 1);
    _mm512_mask_storeu_pd(dst + c, m, _mm512_maskz_loadu_pd(m, src + c));
  }
#else
  std::copy(src, src + n, dst);
#endif
}
inline void zero_row(double* dst, int n) {
  for (int c = 0; c < n; ++c) dst[c] = 0.0;
}
// out[j] = (Σ_c a[c]·y[c·ystride + j]) / C for j < n: Σ⁰ along a row of partners from a
// channel-major row of y. The sum goes channel by channel from 0 in fma (what `acc += a·y`
// contracts to), then × 1/C; 4 vectors per broadcast of a[c], in registers.
inline void sigma0_row(const double* a, const double* y, std::size_t ystride, int C, int n, double inv, double* out) {
#if defined(__AVX512F__)
  for (int w0 = 0; w0 < n; w0 += 32) {
    __m512d acc[4];
    __mmask8 m[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      const int left = n - w0 - 8 * v;
      m[v] = left >= 8 ? __mmask8(0xFF) : left <= 0 ? __mmask8(0) : __mmask8((1u << left) - 1);
      acc[v] = _mm512_setzero_pd();
    }
    for (int c = 0; c < C; ++c) {
      const __m512d ac = _mm512_set1_pd(a[c]);
      const double* yc = y + static_cast<std::size_t>(c) * ystride + w0;
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc[v] = _mm512_fmadd_pd(ac, _mm512_maskz_loadu_pd(m[v], yc + 8 * v), acc[v]);
    }
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) _mm512_mask_storeu_pd(out + w0 + 8 * v, m[v], _mm512_mul_pd(acc[v], _mm512_set1_pd(inv)));
  }
#else
  for (int j = 0; j < n; ++j) out[j] = 0.0;
  for (int c = 0; c < C; ++c) {
    const double ac = a[c];
    const double* yc = y + static_cast<std::size_t>(c) * ystride;
#pragma omp simd
    for (int j = 0; j < n; ++j) out[j] += ac * yc[j];
  }
#pragma omp simd
  for (int j = 0; j < n; ++j) out[j] *= inv;
#endif
}
#if defined(__AVX512F__)
// The lanes of a vector with `left` entries still to go.
inline __mmask8 tail_mask(int left) { return left >= 8 ? __mmask8(0xFF) : __mmask8((1u << left) - 1); }
// Σ⁰ of one slab row: out[w1·L + w2] = (Σ_c x[w1·C + c]·y[c·W + w2]) / C for w1, w2 < W, with
// y's row (channel-major, NC channels, V vectors) held in registers; per line NC broadcasts,
// NC·V fma and V stores, no loads of y. The same fma chain from 0 and × 1/C as sigma0_row.
template <int NC, int V>
inline void sigma0_lines_nv(const double* x, const double* y, int W, int L, double inv, double* out) {
  const __mmask8 tail = tail_mask(W - 8 * (V - 1));
  __m512d yv[NC][V];
  for (int c = 0; c < NC; ++c)
    for (int v = 0; v < V; ++v)
      yv[c][v] = v + 1 < V ? _mm512_loadu_pd(y + static_cast<std::size_t>(c) * W + 8 * v)
                           : _mm512_maskz_loadu_pd(tail, y + static_cast<std::size_t>(c) * W + 8 * v);
  const __m512d vinv = _mm512_set1_pd(inv);
  for (int w1 = 0; w1 < W; ++w1, x += NC, out += L) {
    __m512d acc[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[v] = _mm512_setzero_pd();
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) {
      const __m512d a = _mm512_set1_pd(x[c]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[v] = _mm512_fmadd_pd(a, yv[c][v], acc[v]);
    }
#pragma GCC unroll 4
    for (int v = 0; v + 1 < V; ++v) _mm512_storeu_pd(out + 8 * v, _mm512_mul_pd(acc[v], vinv));
    _mm512_mask_storeu_pd(out + 8 * (V - 1), tail, _mm512_mul_pd(acc[V - 1], vinv));
  }
}
template <int NC>
inline void sigma0_lines_n(const double* x, const double* y, int W, int L, double inv, double* out) {
  switch ((W + 7) / 8) {
    case 1: return sigma0_lines_nv<NC, 1>(x, y, W, L, inv, out);
    case 2: return sigma0_lines_nv<NC, 2>(x, y, W, L, inv, out);
    case 3: return sigma0_lines_nv<NC, 3>(x, y, W, L, inv, out);
    default: return sigma0_lines_nv<NC, 4>(x, y, W, L, inv, out);
  }
}
// 1 ≤ C ≤ 4 channels, 1 ≤ W ≤ 32 partners (x: W pixels of C channels; y: C rows of W).
inline void sigma0_lines(const double* x, const double* y, int C, int W, int L, double inv, double* out) {
  switch (C) {
    case 1: return sigma0_lines_n<1>(x, y, W, L, inv, out);
    case 2: return sigma0_lines_n<2>(x, y, W, L, inv, out);
    case 3: return sigma0_lines_n<3>(x, y, W, L, inv, out);
    default: return sigma0_lines_n<4>(x, y, W, L, inv, out);
  }
}
#endif
// The 3-tap H pass of Σ and Θ: hs = (s0 + s1) + s2, ht = (t0 + t1) + t2 on n entries. The
// pointers live in registers (no reload per vector: the compiler cannot prove the rows do not
// alias the pointer arrays they came from), full zmm vectors and one masked tail.
template <bool with_t = true>  // false: Σ only, as sum3_pair
__attribute__((always_inline)) inline void sum3_rows(const double* __restrict s0, const double* __restrict s1,
                                                     const double* __restrict s2, const double* __restrict t0,
                                                     const double* __restrict t1, const double* __restrict t2,
                                                     double* __restrict hs, double* __restrict ht, std::size_t n) {
  std::size_t c = 0;
#if defined(__AVX512F__)
  for (; c + 8 <= n; c += 8) {
    _mm512_storeu_pd(hs + c, _mm512_add_pd(_mm512_add_pd(_mm512_loadu_pd(s0 + c), _mm512_loadu_pd(s1 + c)),
                                           _mm512_loadu_pd(s2 + c)));
    if constexpr (with_t) _mm512_storeu_pd(ht + c, _mm512_add_pd(_mm512_add_pd(_mm512_loadu_pd(t0 + c), _mm512_loadu_pd(t1 + c)),
                                           _mm512_loadu_pd(t2 + c)));
  }
  if (c < n) {
    const __mmask8 m = static_cast<__mmask8>((1u << (n - c)) - 1);
    _mm512_mask_storeu_pd(hs + c, m, _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, s0 + c), _mm512_maskz_loadu_pd(m, s1 + c)),
                                                   _mm512_maskz_loadu_pd(m, s2 + c)));
    if constexpr (with_t) _mm512_mask_storeu_pd(ht + c, m, _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, t0 + c), _mm512_maskz_loadu_pd(m, t1 + c)),
                                                   _mm512_maskz_loadu_pd(m, t2 + c)));
  }
#else
  for (; c < n; ++c) {
    hs[c] = (s0[c] + s1[c]) + s2[c];
    if constexpr (with_t) ht[c] = (t0[c] + t1[c]) + t2[c];
  }
#endif
}
// The H passes of two neighbouring output rows from four input rows r0 < r1 < r2 < r3 (each for
// Σ and Θ): lo = (r0 + r1) + r2, hi = (r1 + r2) + r3, the sums of sum3_rows; four loads per
// entry instead of six.
struct FourRows {
  const double* s[4];
  const double* t[4];
};
// with_t = false: Σ only (Θ is zero: the first conv of a stage from the inputs).
template <bool with_t = true>
__attribute__((always_inline)) inline void sum3_pair(const FourRows& r, std::size_t c0, std::size_t c1,
                                                     double* __restrict los, double* __restrict lot,
                                                     double* __restrict his, double* __restrict hit) {
  const double* __restrict s0 = r.s[0];
  const double* __restrict s1 = r.s[1];
  const double* __restrict s2 = r.s[2];
  const double* __restrict s3 = r.s[3];
  const double* __restrict t0 = r.t[0];
  const double* __restrict t1 = r.t[1];
  const double* __restrict t2 = r.t[2];
  const double* __restrict t3 = r.t[3];
  std::size_t c = c0;
#if defined(__AVX512F__)
  auto step = [&](__mmask8 m) __attribute__((always_inline)) {
    const __m512d a1 = _mm512_maskz_loadu_pd(m, s1 + c), a2 = _mm512_maskz_loadu_pd(m, s2 + c);
    _mm512_mask_storeu_pd(los + c, m, _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, s0 + c), a1), a2));
    _mm512_mask_storeu_pd(his + c, m, _mm512_add_pd(_mm512_add_pd(a1, a2), _mm512_maskz_loadu_pd(m, s3 + c)));
    if constexpr (with_t) {
      const __m512d b1 = _mm512_maskz_loadu_pd(m, t1 + c), b2 = _mm512_maskz_loadu_pd(m, t2 + c);
      _mm512_mask_storeu_pd(lot + c, m, _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, t0 + c), b1), b2));
      _mm512_mask_storeu_pd(hit + c, m, _mm512_add_pd(_mm512_add_pd(b1, b2), _mm512_maskz_loadu_pd(m, t3 + c)));
    }
  };
  for (; c + 8 <= c1; c += 8) step(__mmask8(0xFF));  // whole vectors: no mask arithmetic per vector
  if (c < c1) step(static_cast<__mmask8>((1u << (c1 - c)) - 1));
#else
  for (; c < c1; ++c) {
    los[c] = (s0[c] + s1[c]) + s2[c], his[c] = (s1[c] + s2[c]) + s3[c];
    if constexpr (with_t) lot[c] = (t0[c] + t1[c]) + t2[c], hit[c] = (t1[c] + t2[c]) + t3[c];
  }
#endif
}
}  // namespace

SliceWorkspace Engine::slice_workspace() const {
  int filter = 1;
  for (const auto& op : plan_.spatial)
    if (op.kind == OpKind::Affine) filter = std::max({filter, op.ah.filter, op.aw.filter});
  SliceWorkspace ws(plan_.in_h, plan_.in_w, filter + 1, plan_.coarse_pairs, plan_.slab_doubles, plan_.slab_row);
  ws.ring.resize(plan_.ring_doubles);
  if (!plan_.stages.empty() && plan_.stages.front().slab && plan_.in_c <= 4)
    ws.yt.resize(static_cast<std::size_t>(plan_.in_h) * plan_.in_w * plan_.in_c);
  return ws;
}

#if defined(__AVX512F__)
namespace {
// A 3×3 conv and the ReLU-family activation after it in one pass over an output row: for each
// vector of 8 entries at c, the window sums h0[c] + h0[c+s] + h0[c+2s] of the H-pass row (s = 1
// on a slice row, the diagonal shift L + 1 on a slab row), the update Σ' = W²·𝒞[Σ] + B²,
// Θ' = Σ' + W²·𝒞[Θ], then the dual at (q1, q2, Σ') on the same lanes as ActivationDual::apply
// (family_simd::dual_lanes), so the same bits as the separate passes. Vectors go through the
// dual four at a time (their chains overlap). Lanes whose arguments the vector dual does not
// take go through ActivationDual::apply one by one.
struct FusedVector {
  std::size_t c;     // entry offset in the row
  const double* q1;  // q1 of the lanes (one value for all of them if broadcast)
  const double* q2;
  __mmask8 mask;
};

struct FusedRow {
  const double* h0;
  const double* g0;
  std::ptrdiff_t step;
  double* so;
  double* to;
  __m512d scale, b2, ab2, d2, cross;
  const ActivationDual* dual;
  bool checked = false;  // every (q1, q2) of the row passed plain_rows: the lanes need only Σ' finite
  // Rooted rows (FusedBatch<…, true>): 1/√q of each q1[i], q2[j] sits at q1 + roots, q2 + roots,
  // and the dual takes r = (1/√q1)(1/√q2) (dual_lanes_r) instead of a root per pair.
  std::ptrdiff_t roots = 0;
  bool zero_theta = false;  // Θ = 0 on the conv's input (the g rows are not computed): Θ' = Σ'
};

// True when every pair q1[i], q2[j] passes family_simd::plain_lanes whatever Σ': all positive,
// normal and finite, and the extreme products inside (1e-280, 1e280) — rounding is monotone, so
// then every product is. One check per row instead of one per vector; the same lanes take the
// same path. (Normal, so that the per-pixel inverse roots of rooted rows exist: vrsqrt14 takes a
// subnormal as zero.)
// The extremes of q[0..n) in *lo, *hi; false if some value is not positive and finite (NaN included).
inline bool positive_extremes(const double* q, int n, double* lo, double* hi) {
  const __m512d one = _mm512_set1_pd(1.0), zero = _mm512_setzero_pd();
  const __m512d inf = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  __m512d vlo = inf, vhi = zero;
  __mmask8 good = 0xFF;
  for (int i = 0; i < n; i += 8) {
    const __mmask8 m = n - i >= 8 ? __mmask8(0xFF) : __mmask8((1u << (n - i)) - 1);
    const __m512d v = _mm512_mask_loadu_pd(one, m, q + i);  // masked-off lanes 1: harmless
    good &= _mm512_cmp_pd_mask(v, zero, _CMP_GT_OQ) & _mm512_cmp_pd_mask(v, inf, _CMP_LT_OQ);
    vlo = _mm512_min_pd(vlo, v), vhi = _mm512_max_pd(vhi, v);
  }
  *lo = _mm512_reduce_min_pd(vlo), *hi = _mm512_reduce_max_pd(vhi);
  return good == 0xFF;
}

inline bool plain_rows(const double* q1, int n1, const double* q2, int n2) {
  double lo1 = 0, hi1 = 0, lo2 = 0, hi2 = 0;
  if (!positive_extremes(q1, n1, &lo1, &hi1) || !positive_extremes(q2, n2, &lo2, &hi2)) return false;
  return lo1 * lo2 > 1e-280 && hi1 * hi2 < 1e280 && lo1 >= std::numeric_limits<double>::min() &&
         lo2 >= std::numeric_limits<double>::min();
}

// The rooted copy of a row of n variances (FusedRow::roots): q at out[0, n), 1/√q at out[roots, roots + n),
// for rows that passed plain_rows; both padded with 1 to whole vectors (roots ≥ n rounded up to 8),
// so that the open rows load whole vectors.
inline void rooted_row(const double* q, int n, double* out, std::ptrdiff_t roots) {
  const __m512d one = _mm512_set1_pd(1.0);
  for (int i = 0; i < n; i += 8) {
    const __mmask8 m = n - i >= 8 ? __mmask8(0xFF) : __mmask8((1u << (n - i)) - 1);
    const __m512d v = _mm512_mask_loadu_pd(one, m, q + i);
    _mm512_storeu_pd(out + i, v);
    _mm512_storeu_pd(out + roots + i, family_simd::inverse_root(v));
  }
}

// The vectors of `lines` consecutive slab lines w1 … (V vectors of 8 w2 each, the last one
// masked to the row's W): a group of 4 described by its first line alone, so that the unrolled
// group keeps its addresses in registers (FusedBatch's queue lives in memory).
template <int V>
struct LineJobs {
  std::size_t base;  // entry offset of line w1 in the row
  std::size_t L;     // entries per line
  const double* q1;  // q1 of line w1 (broadcast along the line)
  const double* q2;  // q2 of line w1
  __mmask8 tail;     // the last vector of a line
  std::ptrdiff_t q2_line = 0;  // q2 moves by this per line (slabs 0; ring blocks −1: q2 at e − w1)
  __attribute__((always_inline)) FusedVector operator[](int v) const {
    const int l = v / V, j = v % V;
    return {base + static_cast<std::size_t>(l) * L + static_cast<std::size_t>(8 * j), q1 + l, q2 + l * q2_line + 8 * j,
            j == V - 1 ? tail : __mmask8(0xFF)};
  }
};

// The fused rows of checked, rooted slab lines with the scaled dual of flat rows
// (family_simd::dual_rinv_open / dual_rinv_close, docs/conventions.md §2): no per-lane argument
// test, one test per group of 4 vectors (σ ≥ kOpenSigma on every lane, and c ≥ 0 where the
// layer's input is a relu-like output: nonneg), and the outputs divided by μ = (a − b)²/(2π) when
// the next op is a conv that multiplies μ back into its scale (scaled), or times μ·(1/μ) = the
// dual's own values otherwise. A group that fails the test runs through open_fallback: the exact
// (snapping) path, which gives the passing lanes the same bits, and ActivationDual::apply for the
// lanes whose Σ' is not finite.
struct OpenRow {
  const double* h0;
  const double* g0;
  std::ptrdiff_t step;
  double* so;
  double* to;
  std::ptrdiff_t roots;  // 1/√q of qa[i], qb[j] at qa + roots, qb + roots (rooted_row)
  __m512d scale, b2, kappa_up, kappa_down, mu;
  family_simd::UpTable up;
  double mu_s, inv_mu_s;
  const ActivationDual* dual;
  bool zero_theta;
};

// Σ' and Θ' of vector job on its lanes m (0 elsewhere: Σ' = 0 with q = 1 keeps the dual's
// arguments plain).
template <bool zero_t, class Job>
__attribute__((always_inline)) inline __m512d open_sigma(const OpenRow& r, const Job& job, __mmask8 m) {
  const double* h = r.h0 + job.c;
  const std::ptrdiff_t s1 = r.step, s2 = 2 * r.step;
  __m512d hsum;
  if (m == 0xFF) hsum = _mm512_add_pd(_mm512_add_pd(_mm512_loadu_pd(h), _mm512_loadu_pd(h + s1)), _mm512_loadu_pd(h + s2));
  else hsum = _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, h), _mm512_maskz_loadu_pd(m, h + s1)), _mm512_maskz_loadu_pd(m, h + s2));
  return _mm512_maskz_fmadd_pd(m, hsum, r.scale, r.b2);
}
template <bool zero_t, class Job>
__attribute__((always_inline)) inline __m512d open_theta(const OpenRow& r, const Job& job, __mmask8 m, __m512d sv) {
  if constexpr (zero_t) {
    return _mm512_fmadd_pd(_mm512_setzero_pd(), r.scale, sv);  // as a zero window sum: Σ' (and +0 for −0)
  } else {
    const double* g = r.g0 + job.c;
    const std::ptrdiff_t s1 = r.step, s2 = 2 * r.step;
    __m512d gsum;
    if (m == 0xFF) gsum = _mm512_add_pd(_mm512_add_pd(_mm512_loadu_pd(g), _mm512_loadu_pd(g + s1)), _mm512_loadu_pd(g + s2));
    else gsum = _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, g), _mm512_maskz_loadu_pd(m, g + s1)), _mm512_maskz_loadu_pd(m, g + s2));
    return _mm512_fmadd_pd(gsum, r.scale, sv);
  }
}

template <bool zero_t, bool nonneg, bool scaled, class Jobs>
__attribute__((noinline)) void open_fallback(const OpenRow& r, Jobs job) {
  constexpr int N = 4;
  __m512d a[N], b[N], rinv[N], sv[N], tv[N], c_out[N], tk_out[N];
  __mmask8 ok[N];
  for (int v = 0; v < N; ++v) {
    const __mmask8 m = job[v].mask;
    sv[v] = open_sigma<zero_t>(r, job[v], m);
    tv[v] = open_theta<zero_t>(r, job[v], m, sv[v]);
    a[v] = _mm512_set1_pd(job[v].q1[0]);
    b[v] = _mm512_loadu_pd(job[v].q2);
    rinv[v] = _mm512_mul_pd(_mm512_set1_pd(job[v].q1[r.roots]), _mm512_loadu_pd(job[v].q2 + r.roots));
    ok[v] = _mm512_cmp_pd_mask(_mm512_abs_pd(sv[v]), _mm512_set1_pd(std::numeric_limits<double>::infinity()), _CMP_LT_OQ) & m;
  }
  family_simd::dual_lanes_rinv<N, true, nonneg>(a, b, rinv, sv, tv, c_out, tk_out, r.kappa_up, r.kappa_down, r.up);
  for (int v = 0; v < N; ++v) {
    if constexpr (!scaled) c_out[v] = _mm512_mul_pd(c_out[v], r.mu), tk_out[v] = _mm512_mul_pd(tk_out[v], r.mu);
    _mm512_mask_storeu_pd(r.so + job[v].c, ok[v], c_out[v]);
    _mm512_mask_storeu_pd(r.to + job[v].c, ok[v], tk_out[v]);
    const __mmask8 rare = job[v].mask & ~ok[v];
    if (!rare) continue;
    alignas(64) double s[8], t[8];
    _mm512_store_pd(s, sv[v]);
    _mm512_store_pd(t, tv[v]);
    for (int l = 0; l < 8; ++l) {
      if (!(rare >> l & 1u)) continue;
      r.dual->apply(1, job[v].q1, 0, job[v].q2 + l, 0, s + l, t + l);
      const double f = scaled ? r.inv_mu_s : 1.0;
      r.so[job[v].c + l] = s[l] * f;
      r.to[job[v].c + l] = t[l] * f;
    }
  }
}

template <bool zero_t, bool nonneg, bool scaled, class Jobs>
__attribute__((always_inline)) inline void open_vectors(const OpenRow& r, const Jobs& job) {
  constexpr int N = 4;
  __m512d a[N], b[N], rinv[N], sv[N];
  family_simd::RinvState<N> st;
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) {
    sv[v] = open_sigma<zero_t>(r, job[v], job[v].mask);
    a[v] = _mm512_set1_pd(job[v].q1[0]);
    b[v] = _mm512_loadu_pd(job[v].q2);
    rinv[v] = _mm512_mul_pd(_mm512_set1_pd(job[v].q1[r.roots]), _mm512_loadu_pd(job[v].q2 + r.roots));
  }
  if (__builtin_expect(!family_simd::dual_rinv_open<N, false, nonneg>(a, b, rinv, sv, st), 0)) {
    open_fallback<zero_t, nonneg, scaled>(r, job);
    return;
  }
  __m512d tv[N], c_out[N], tk_out[N];
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) tv[v] = open_theta<zero_t>(r, job[v], job[v].mask, sv[v]);
  family_simd::dual_rinv_close<N, false, nonneg>(st, tv, c_out, tk_out, r.kappa_up, r.kappa_down, r.up);
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) {
    if constexpr (!scaled) c_out[v] = _mm512_mul_pd(c_out[v], r.mu), tk_out[v] = _mm512_mul_pd(tk_out[v], r.mu);
    if (job[v].mask == 0xFF) {
      _mm512_storeu_pd(r.so + job[v].c, c_out[v]);
      _mm512_storeu_pd(r.to + job[v].c, tk_out[v]);
    } else {
      _mm512_mask_storeu_pd(r.so + job[v].c, job[v].mask, c_out[v]);
      _mm512_mask_storeu_pd(r.to + job[v].c, job[v].mask, tk_out[v]);
    }
  }
}

template <bool broadcast, class Jobs>
__attribute__((noinline)) void rare_lanes(const FusedRow& r, Jobs job, unsigned ok, int n) {
  const std::ptrdiff_t s1 = r.step, s2 = 2 * r.step;
  for (int v = 0; v < n; ++v) {
    const __mmask8 m = job[v].mask & ~static_cast<__mmask8>(ok >> (8 * v));
    if (!m) continue;
    const double* h = r.h0 + job[v].c;
    const double* g = r.g0 + job[v].c;
    const __m512d hsum = _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, h), _mm512_maskz_loadu_pd(m, h + s1)),
                                       _mm512_maskz_loadu_pd(m, h + s2));
    const __m512d gsum = r.zero_theta ? _mm512_setzero_pd()
                                      : _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, g), _mm512_maskz_loadu_pd(m, g + s1)),
                                                      _mm512_maskz_loadu_pd(m, g + s2));
    const __m512d sv = _mm512_fmadd_pd(hsum, r.scale, r.b2);
    double* so = r.so + job[v].c;
    double* to = r.to + job[v].c;
    _mm512_mask_storeu_pd(so, m, sv);
    _mm512_mask_storeu_pd(to, m, _mm512_fmadd_pd(gsum, r.scale, sv));
    for (int l = 0; l < 8; ++l)
      if (m >> l & 1u) r.dual->apply(1, job[v].q1 + (broadcast ? 0 : l), 0, job[v].q2 + l, 0, so + l, to + l);
  }
}

template <int N, bool broadcast, bool rooted, bool zero_t = false, class Jobs = const FusedVector*>
__attribute__((always_inline)) inline void fused_vectors(const FusedRow& r, const Jobs& job) {
  const __m512d one = _mm512_set1_pd(1.0);
  __m512d a[N] = {}, b[N] = {}, sv[N] = {}, tv[N] = {}, root[N] = {};
  __mmask8 ok[N] = {};
  bool rare = false;
  const std::ptrdiff_t s1 = r.step, s2 = 2 * r.step;
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) {
    const __mmask8 m = job[v].mask;
    const double* h = r.h0 + job[v].c;
    const double* g = r.g0 + job[v].c;
    const __m512d hsum = _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, h), _mm512_maskz_loadu_pd(m, h + s1)),
                                       _mm512_maskz_loadu_pd(m, h + s2));
    sv[v] = _mm512_fmadd_pd(hsum, r.scale, r.b2);
    if constexpr (zero_t) {
      tv[v] = _mm512_fmadd_pd(_mm512_setzero_pd(), r.scale, sv[v]);  // as a zero window sum: Σ' (and +0 for −0)
    } else {
      const __m512d gsum = _mm512_add_pd(_mm512_add_pd(_mm512_maskz_loadu_pd(m, g), _mm512_maskz_loadu_pd(m, g + s1)),
                                         _mm512_maskz_loadu_pd(m, g + s2));
      tv[v] = _mm512_fmadd_pd(gsum, r.scale, sv[v]);
    }
    a[v] = broadcast ? _mm512_set1_pd(job[v].q1[0]) : _mm512_mask_loadu_pd(one, m, job[v].q1);
    b[v] = _mm512_mask_loadu_pd(one, m, job[v].q2);
    if constexpr (rooted)
      root[v] = _mm512_mul_pd(broadcast ? _mm512_set1_pd(job[v].q1[r.roots]) : _mm512_mask_loadu_pd(one, m, job[v].q1 + r.roots),
                              _mm512_mask_loadu_pd(one, m, job[v].q2 + r.roots));
    // Rows checked beforehand (FusedRow::checked): only Σ' can still be non-finite.
    ok[v] = (r.checked ? _mm512_cmp_pd_mask(_mm512_abs_pd(sv[v]), _mm512_set1_pd(std::numeric_limits<double>::infinity()),
                                            _CMP_LT_OQ)
                       : family_simd::plain_lanes(a[v], b[v], sv[v])) &
            m;
    rare |= ok[v] != m;
  }
  if constexpr (rooted) family_simd::dual_lanes_r<N>(a, b, root, sv, tv, r.ab2, r.d2, r.cross);
  else family_simd::dual_lanes<N>(a, b, sv, tv, r.ab2, r.d2, r.cross);
#pragma GCC unroll 4
  for (int v = 0; v < N; ++v) {
    _mm512_mask_storeu_pd(r.so + job[v].c, ok[v], sv[v]);
    _mm512_mask_storeu_pd(r.to + job[v].c, ok[v], tv[v]);
  }
  // Zero variance, non-finite values, extreme magnitudes: the other lanes' window sums once more
  // (the same arithmetic; the H-pass rows are not the output rows), then ActivationDual::apply.
  // After the dual rather than before, so the window sums need not stay live across it.
  if (__builtin_expect(rare, 0)) {
    unsigned bits = 0;
    for (int v = 0; v < N; ++v) bits |= static_cast<unsigned>(ok[v]) << (8 * v);
    rare_lanes<broadcast>(r, job, bits, N);
  }
}

// Collects the vectors of a row and runs them four at a time.
template <bool broadcast, bool rooted = false, bool zero_t = false>
class FusedBatch {
  static constexpr int kGroup = 4;  // measured: 4 beats 2 (fewer stalls) despite some spills
 public:
  explicit FusedBatch(const FusedRow& row) : row_(row) {}
  __attribute__((always_inline)) void add(std::size_t c, const double* q1, const double* q2, __mmask8 mask) {
    job_[n_++] = {c, q1, q2, mask};
    if (n_ == kGroup) fused_vectors<kGroup, broadcast, rooted, zero_t>(row_, job_), n_ = 0;
  }
  void finish() {
    if (n_ == 3) fused_vectors<3, broadcast, rooted, zero_t>(row_, job_);
    else if (n_ == 2) fused_vectors<2, broadcast, rooted, zero_t>(row_, job_);
    else if (n_ == 1) fused_vectors<1, broadcast, rooted, zero_t>(row_, job_);
    n_ = 0;
  }

 private:
  FusedRow row_;
  FusedVector job_[4];
  int n_ = 0;
};

inline FusedRow fused_row(const double* h0, const double* g0, std::ptrdiff_t step, double scale, double b2,
                          const ActivationDual& dual, const FamilyCoefficients& f, double* so, double* to) {
  return {h0, g0, step, so, to, _mm512_set1_pd(scale), _mm512_set1_pd(b2), _mm512_set1_pd(f.ab2),
          _mm512_set1_pd(f.d2), _mm512_set1_pd(f.cross), &dual};
}

}  // namespace
#endif

bool Engine::run_slice(const Plan::Stage& stage, int d, int e, const SliceSource& src, const double* r1,
                       const double* r2, bool self, double* rec, SliceWorkspace& ws, const double** s_out,
                       const double** t_out) const {
  // The slice is stored compactly, row-major over its extent: entry (h1, w1) at
  // (h1 − rows.lo)·width + (w1 − cols.lo), so each activation is one contiguous batch.
  const bool circ = plan_.circular;
  const int C = plan_.in_c;
  int H = stage.h, W = stage.w;
  Range rows = slice_range(H, d, circ), cols = slice_range(W, e, circ);
  if (rows.empty() || cols.empty()) return false;
  double* S = ws.s.data();
  double* T = ws.t.data();
  double* S2 = ws.s2.data();
  double* T2 = ws.t2.data();
  const double* x = src.x;
  const double* y = src.y;
  // Σ⁰_ab = x_a·x'_b / C on the slice.
  const double inv = 1.0 / C;
  int width = cols.hi - cols.lo;
  if (src.s) {  // after an avgpool: the slice of the pooled pixel-pair kernels
    for (int h1 = rows.lo; h1 < rows.hi; ++h1) {
      const int h2 = wrap(h1 - d, H, circ);
      double* srow = S + (h1 - rows.lo) * width;
      double* trow = T + (h1 - rows.lo) * width;
      for (int w1 = cols.lo; w1 < cols.hi; ++w1) {
        const std::size_t k = ((static_cast<std::size_t>(h1) * H + h2) * W + w1) * W + wrap(w1 - e, W, circ);
        srow[w1 - cols.lo] = src.scale * src.s[k];
        trow[w1 - cols.lo] = src.scale * src.t[k];
      }
    }
  } else if (C == 1 && !circ) {  // one channel (grey images): contiguous rows, no inner loop
    for (int h1 = rows.lo; h1 < rows.hi; ++h1) {
      const double* a = x + static_cast<std::size_t>(h1) * W + cols.lo;
      const double* b = y + static_cast<std::size_t>(h1 - d) * W + (cols.lo - e);
      double* srow = S + (h1 - rows.lo) * width;
      double* trow = T + (h1 - rows.lo) * width;
#pragma omp simd
      for (int c = 0; c < width; ++c) srow[c] = (0.0 + a[c] * b[c]) * inv, trow[c] = 0.0;  // as the loop below
    }
  } else
  for (int h1 = rows.lo; h1 < rows.hi; ++h1) {
    const int h2 = wrap(h1 - d, H, circ);
    double* srow = S + (h1 - rows.lo) * width;
    double* trow = T + (h1 - rows.lo) * width;
    for (int w1 = cols.lo; w1 < cols.hi; ++w1) {
      const int w2 = wrap(w1 - e, W, circ);
      const double* a = x + (static_cast<std::size_t>(h1) * W + w1) * C;
      const double* b = y + (static_cast<std::size_t>(h2) * W + w2) * C;
      double acc = 0;
      for (int c = 0; c < C; ++c) acc += a[c] * b[c];
      srow[w1 - cols.lo] = acc * inv;
      trow[w1 - cols.lo] = 0.0;
    }
  }
  double* hs = ws.hs.data() + ws.pad;  // one row of the H pass, indexed by input column
  double* ht = ws.ht.data() + ws.pad;
  for (int k = stage.begin; k < stage.end; ++k) {
    const SpatialOp& op = plan_.spatial[static_cast<std::size_t>(k)];
    if (op.kind == OpKind::Affine) {
      const Axis& ah = op.ah;
      const Axis& aw = op.aw;
      const Range orows = slice_range(ah.n_out, d, circ), ocols = slice_range(aw.n_out, e, circ);
      if (orows.empty() || ocols.empty()) return false;
      const int owidth = ocols.hi - ocols.lo;
      const double scale = op.w2 / (ah.filter * aw.filter);
      const int Fh = ah.filter, Fw = aw.filter;
      const int c0 = ocols.lo - aw.before, c1 = ocols.hi - aw.before + Fw - 1;  // columns the W pass reads
      const int a0 = std::max(c0, cols.lo), a1 = std::min(c1, cols.hi);
      const int len = a1 - a0;
      const double b2 = op.b2;
#if defined(__AVX512F__)
      // A ReLU-family activation right after the conv runs in the same pass (FusedBatch),
      // except for offset 0 of a point with itself (its diagonal and records) and circular maps.
      FamilyCoefficients family;
      const SpatialOp* act = k + 1 < stage.end ? &plan_.spatial[static_cast<std::size_t>(k) + 1] : nullptr;
      const bool fuse = Fw == 3 && !circ && !(self && d == 0 && e == 0) && act &&
                        act->kind == OpKind::Activation &&
                        relu_family_coefficients(plan_.duals[act->dual].activation(), &family);
#endif
      for (int o = orows.lo; o < orows.hi; ++o) {
        // H pass: the taps whose row has its partner on the map, in tap order (as box_pairs sums
        // them), into one row — one pass over the taps' rows, no read-modify-write of hs.
        const double* sr[3];
        const double* tr[3];
        int nk = 0;
        bool many = false;
        for (int sh = 0; sh < Fh; ++sh) {
          const int i = ah.source[static_cast<std::size_t>(o) * Fh + sh];
          if (i < rows.lo || i >= rows.hi) continue;  // also i = −1 (padding)
          if (nk == 3) {
            many = true;
            break;
          }
          sr[nk] = S + (i - rows.lo) * width + (a0 - cols.lo);
          tr[nk] = T + (i - rows.lo) * width + (a0 - cols.lo);
          ++nk;
        }
        double* hsa = hs + a0;
        double* hta = ht + a0;
        if (many) {  // more than three taps: the general form
          std::fill(hsa, hsa + len, 0.0);
          std::fill(hta, hta + len, 0.0);
          for (int sh = 0; sh < Fh; ++sh) {
            const int i = ah.source[static_cast<std::size_t>(o) * Fh + sh];
            if (i < rows.lo || i >= rows.hi) continue;
            const double* srow = S + (i - rows.lo) * width + (a0 - cols.lo);
            const double* trow = T + (i - rows.lo) * width + (a0 - cols.lo);
#pragma omp simd
            for (int c = 0; c < len; ++c) hsa[c] += srow[c], hta[c] += trow[c];
          }
        } else if (nk == 3) {
          int c = 0;
#if defined(__AVX512F__)
          // 8 lanes, the tail masked: the same sums in the same order as the scalar loop.
          for (; c < len; c += 8) {
            const __mmask8 m = len - c >= 8 ? __mmask8(0xFF) : __mmask8((1u << (len - c)) - 1);
            const __m512d a = _mm512_add_pd(_mm512_maskz_loadu_pd(m, sr[0] + c), _mm512_maskz_loadu_pd(m, sr[1] + c));
            _mm512_mask_storeu_pd(hsa + c, m, _mm512_add_pd(a, _mm512_maskz_loadu_pd(m, sr[2] + c)));
            const __m512d b = _mm512_add_pd(_mm512_maskz_loadu_pd(m, tr[0] + c), _mm512_maskz_loadu_pd(m, tr[1] + c));
            _mm512_mask_storeu_pd(hta + c, m, _mm512_add_pd(b, _mm512_maskz_loadu_pd(m, tr[2] + c)));
          }
#endif
          for (; c < len; ++c) {
            hsa[c] = (sr[0][c] + sr[1][c]) + sr[2][c];
            hta[c] = (tr[0][c] + tr[1][c]) + tr[2][c];
          }
        } else if (nk == 2) {
#pragma omp simd
          for (int c = 0; c < len; ++c) hsa[c] = sr[0][c] + sr[1][c], hta[c] = tr[0][c] + tr[1][c];
        } else if (nk == 1) {
          copy_row(sr[0], len, hsa);
          copy_row(tr[0], len, hta);
        } else {
          std::fill(hsa, hsa + len, 0.0);
          std::fill(hta, hta + len, 0.0);
        }
        // Columns the W pass reads outside the slice: zero padding, or wrapped.
        zero_row(hs + c0, a0 - c0);
        zero_row(ht + c0, a0 - c0);
        zero_row(hs + a1, c1 - a1);
        zero_row(ht + a1, c1 - a1);
        if (circ) {  // the halo columns wrap around
          for (int c = c0; c < 0; ++c) hs[c] = hs[wrap(c, W, true)], ht[c] = ht[wrap(c, W, true)];
          for (int c = W; c < c1; ++c) hs[c] = hs[wrap(c, W, true)], ht[c] = ht[wrap(c, W, true)];
        }
        // W pass and the update Σ' = W²·𝒞[Σ] + B², Θ' = Σ' + W²·𝒞[Θ] in one pass.
        double* so = S2 + (o - orows.lo) * owidth;
        double* to = T2 + (o - orows.lo) * owidth;
        const double* h0 = hs + ocols.lo - aw.before;
        const double* g0 = ht + ocols.lo - aw.before;
#if defined(__AVX512F__)
        if (fuse) {
          const std::size_t Wn = static_cast<std::size_t>(aw.n_out);
          const double* q1 = r1 + act->q_offset + static_cast<std::size_t>(o) * Wn + ocols.lo;
          const double* q2 = r2 + act->q_offset + static_cast<std::size_t>(o - d) * Wn + (ocols.lo - e);
          FusedBatch<false> batch(fused_row(h0, g0, 1, scale, b2, plan_.duals[act->dual], family, so, to));
          for (int p = 0; p < owidth; p += 8) batch.add(static_cast<std::size_t>(p), q1 + p, q2 + p, tail_mask(owidth - p));
          batch.finish();
          continue;
        }
#endif
        if (Fw == 3) {
          int p = 0;
#if defined(__AVX512F__)
          const __m512d vs = _mm512_set1_pd(scale), vb = _mm512_set1_pd(b2);
          for (; p < owidth; p += 8) {
            const __mmask8 m = owidth - p >= 8 ? __mmask8(0xFF) : __mmask8((1u << (owidth - p)) - 1);
            const __m512d hsum = _mm512_add_pd(
                _mm512_add_pd(_mm512_maskz_loadu_pd(m, h0 + p), _mm512_maskz_loadu_pd(m, h0 + p + 1)),
                _mm512_maskz_loadu_pd(m, h0 + p + 2));
            const __m512d gsum = _mm512_add_pd(
                _mm512_add_pd(_mm512_maskz_loadu_pd(m, g0 + p), _mm512_maskz_loadu_pd(m, g0 + p + 1)),
                _mm512_maskz_loadu_pd(m, g0 + p + 2));
            const __m512d sv = _mm512_fmadd_pd(hsum, vs, vb);
            _mm512_mask_storeu_pd(so + p, m, sv);
            _mm512_mask_storeu_pd(to + p, m, _mm512_fmadd_pd(gsum, vs, sv));
          }
#endif
          for (; p < owidth; ++p) {
            const double sv = ((h0[p] + h0[p + 1]) + h0[p + 2]) * scale + b2;
            so[p] = sv;
            to[p] = sv + ((g0[p] + g0[p + 1]) + g0[p + 2]) * scale;
          }
        } else {
          std::copy(h0, h0 + owidth, so);
          std::copy(g0, g0 + owidth, to);
          for (int sw = 1; sw < Fw; ++sw) {
#pragma omp simd
            for (int p = 0; p < owidth; ++p) so[p] += h0[p + sw], to[p] += g0[p + sw];
          }
#pragma omp simd
          for (int p = 0; p < owidth; ++p) {
            const double sv = so[p] * scale + b2;
            so[p] = sv;
            to[p] = sv + to[p] * scale;
          }
        }
      }
#if defined(__AVX512F__)
      if (fuse) ++k;  // its activation is done
#endif
      std::swap(S, S2);
      std::swap(T, T2);
      rows = orows;
      cols = ocols;
      width = owidth;
      H = ah.n_out;
      W = aw.n_out;
    } else {
      // The pixel variances of both points on the slice, packed like it: one batch per layer.
      const ActivationDual& dual = plan_.duals[op.dual];
      // Recording a point's own variances: slice 0 of x with itself is the pixel diagonal,
      // stored row-major over the whole map like the record.
      if (rec && self && d == 0 && e == 0) std::copy(S, S + static_cast<std::size_t>(H) * W, rec + op.q_offset);
      const double* q1 = r1 + op.q_offset;
      const double* q2 = r2 + op.q_offset;
      double* q1p = ws.q1.data();
      double* q2p = ws.q2.data();
      for (int h1 = rows.lo; h1 < rows.hi; ++h1) {
        const int h2 = wrap(h1 - d, H, circ);
        const double* q1row = q1 + static_cast<std::size_t>(h1) * W;
        const double* q2row = q2 + static_cast<std::size_t>(h2) * W;
        double* a = q1p + (h1 - rows.lo) * width;
        double* b = q2p + (h1 - rows.lo) * width;
        copy_row(q1row + cols.lo, cols.hi - cols.lo, a);
        if (!circ) copy_row(q2row + cols.lo - e, cols.hi - cols.lo, b);
        else
          for (int w1 = cols.lo; w1 < cols.hi; ++w1) b[w1 - cols.lo] = q2row[wrap(w1 - e, W, true)];
      }
      const std::size_t n = static_cast<std::size_t>(rows.hi - rows.lo) * width;
      // Pixel a of a point against itself is exactly collinear: its variance, not the product.
      if (self && d == 0 && e == 0) std::copy(q1p, q1p + n, S);
      dual.apply(n, q1p, 1, q2p, 1, S, T);
    }
  }
  ws.out_rows_lo = rows.lo, ws.out_rows_hi = rows.hi, ws.out_cols_lo = cols.lo, ws.out_cols_hi = cols.hi;
  ws.out_h = H, ws.out_w = W;
  *s_out = S;
  *t_out = T;
  return true;
}

std::pair<double, double> Engine::pair_slices(Eigen::Index p1, Eigen::Index p2, SliceWorkspace& ws, double* full_s,
                                              double* full_t) const {
  if (plan_.pooled || plan_.stages.front().slab || plan_.readout == Readout::Flatten)
    return pair_stages(p1, p2, ws, full_s, full_t, nullptr);
  if (plan_.stages.front().ring) return pair_ring(p1, p2, ws, full_s, full_t);
  const bool circ = plan_.circular;
  const int H0 = plan_.in_h, W0 = plan_.in_w, Ho = plan_.out_h, Wo = plan_.out_w;
  const std::size_t m = static_cast<std::size_t>(Ho) * Wo;
  const bool self = same_point(p1, p2);
  const bool half = self && full_s == nullptr;
  if (full_s) {
    std::fill(full_s, full_s + m * m, 0.0);
    std::fill(full_t, full_t + m * m, 0.0);
  }
  const double* x = row_of(p1);
  const double* y = row_of(p2);
  const double* r1 = record(p1);
  const double* r2 = record(p2);
  const int dlo = circ ? 0 : -(H0 - 1), dhi = circ ? H0 - 1 : H0 - 1;
  const int elo = circ ? 0 : -(W0 - 1), ehi = circ ? W0 - 1 : W0 - 1;
  double sum_s = 0, sum_t = 0;
  for (int d = dlo; d <= dhi; ++d)
    for (int e = elo; e <= ehi; ++e) {
      double weight = 1.0;
      if (half) {  // slice (d, e) stands for its mirror (−d, −e) too
        const int md = circ ? (H0 - d) % H0 : -d, me = circ ? (W0 - e) % W0 : -e;
        if (d > md || (d == md && e > me)) continue;
        weight = (d == md && e == me) ? 1.0 : 2.0;
      }
      const double* S = nullptr;
      const double* T = nullptr;
      SliceSource src;
      src.x = x;
      src.y = y;
      if (!run_slice(plan_.stages.front(), d, e, src, r1, r2, self, nullptr, ws, &S, &T)) continue;
      double ss = 0, st = 0;
      const int width = ws.out_cols_hi - ws.out_cols_lo;
      for (int h1 = ws.out_rows_lo; h1 < ws.out_rows_hi; ++h1) {
        const double* srow = S + (h1 - ws.out_rows_lo) * width;
        const double* trow = T + (h1 - ws.out_rows_lo) * width;
        for (int w1 = ws.out_cols_lo; w1 < ws.out_cols_hi; ++w1) {
          ss += srow[w1 - ws.out_cols_lo];
          st += trow[w1 - ws.out_cols_lo];
        }
        if (full_s) {
          const int h2 = wrap(h1 - d, Ho, circ);
          for (int w1 = ws.out_cols_lo; w1 < ws.out_cols_hi; ++w1) {
            const int w2 = wrap(w1 - e, Wo, circ);
            const std::size_t k = (static_cast<std::size_t>(h1) * Wo + w1) * m + static_cast<std::size_t>(h2) * Wo + w2;
            full_s[k] = srow[w1 - ws.out_cols_lo];
            full_t[k] = trow[w1 - ws.out_cols_lo];
          }
        }
      }
      sum_s += weight * ss;
      sum_t += weight * st;
    }
  return {sum_s, sum_t};
}

// --- ring blocks (circular maps) -------------------------------------------------------------
// With every conv circular there is no boundary: block d holds all pairs ((h1, w1), (h1 − d,
// w1 − e)) (mod the map) at (h1·W + w1)·W + e, and a conv tap moves a whole row of e (the H pass
// a plane of W² doubles, the W pass a row of W). Block d of a point with itself is the
// transpose of block −d, so half of them suffice for gap. The second point's variances at
// (h2, w1 − e) for e = 0…W−1 are one contiguous run of its reflected row
// D[h2][j] = q2[h2][(W − 1 − j) mod W], j = e − w1 + W − 1 (built once per pair and activation).
std::pair<double, double> Engine::pair_ring(Eigen::Index p1, Eigen::Index p2, SliceWorkspace& ws, double* full_s,
                                            double* full_t) const {
  const int H = plan_.in_h, W = plan_.in_w;
  const bool self = same_point(p1, p2);
  const bool half = self && full_s == nullptr;
  const double* r2 = record(p2);
  const std::size_t block = static_cast<std::size_t>(H) * W * W;
  double* D = ws.ring.data() + 4 * block;  // then Y (below), then run_ring's H-pass rows
  for (const auto& op : plan_.spatial) {
    if (op.kind != OpKind::Activation) continue;
    const std::size_t a = static_cast<std::size_t>(op.q_offset) / (static_cast<std::size_t>(H) * W);
    for (int h2 = 0; h2 < H; ++h2) {
      const double* q2 = r2 + op.q_offset + static_cast<std::size_t>(h2) * W;
      double* row = D + (a * H + h2) * 2 * W;
      for (int j = 0; j < 2 * W - 1; ++j) row[j] = q2[wrap(W - 1 - j, W, true)];
      row[2 * W - 1] = 1.0;
    }
  }
  {  // the second input reflected the same way, channel-major: Y[h2][c][j] = y[h2][(W − 1 − j) mod W][c]
    const int C = plan_.in_c;
    const double* y = row_of(p2);
    double* Y = D + acts_in_ring() * H * 2 * W;
    for (int h2 = 0; h2 < H; ++h2)
      for (int c = 0; c < C; ++c) {
        double* row = Y + (static_cast<std::size_t>(h2) * C + c) * 2 * W;
        for (int j = 0; j < 2 * W - 1; ++j)
          row[j] = y[(static_cast<std::size_t>(h2) * W + wrap(W - 1 - j, W, true)) * C + c];
        row[2 * W - 1] = 0.0;
      }
  }
  double sum_s = 0, sum_t = 0;
  for (int d = 0; d < H; ++d) {
    double weight = 1.0;
    if (half) {  // block d stands for its mirror −d too
      const int md = (H - d) % H;
      if (d > md) continue;
      weight = d == md ? 1.0 : 2.0;
    }
    const auto sums = run_ring(d, row_of(p1), record(p1), D, self, ws, full_s, full_t);
    sum_s += weight * sums.first;
    sum_t += weight * sums.second;
  }
  return {sum_s, sum_t};
}

std::pair<double, double> Engine::run_ring(int d, const double* x, const double* r1, const double* D,
                                           bool self, SliceWorkspace& ws, double* full_s, double* full_t) const {
  const int H = plan_.in_h, W = plan_.in_w, C = plan_.in_c;
  const std::size_t plane = static_cast<std::size_t>(W) * W, block = static_cast<std::size_t>(H) * plane;
  const std::size_t tables = (acts_in_ring() + static_cast<std::size_t>(C)) * H * 2 * W;
  double* S = ws.ring.data();
  double* T = S + block;
  double* S2 = T + block;
  double* T2 = S2 + block;
  const double* Y = D + acts_in_ring() * H * 2 * W;  // the reflected second input (pair_ring)
  double* es = T2 + block + tables;  // the H pass of one output row, extended by the W pass's wrap
  const std::size_t ext = (plan_.ring_doubles - 16 - 4 * block - tables) / 2;
  double* et = es + ext;
  // Σ⁰ = x_a·x'_b / C, Θ⁰ = 0; y at (h2, w1 − e) is the run Y[h2][c][e − w1 + W − 1].
  const double inv = 1.0 / C;
  for (int h1 = 0; h1 < H; ++h1) {
    const int h2 = wrap(h1 - d, H, true);
    for (int w1 = 0; w1 < W; ++w1) {
      const double* a = x + (static_cast<std::size_t>(h1) * W + w1) * C;
      double* srow = S + (static_cast<std::size_t>(h1) * W + w1) * W;
      double* trow = T + (static_cast<std::size_t>(h1) * W + w1) * W;
      const double* yb = Y + static_cast<std::size_t>(h2) * C * 2 * W + (W - 1 - w1);
      zero_row(trow, W);
      sigma0_row(a, yb, static_cast<std::size_t>(2) * W, C, W, inv, srow);
    }
  }
  const int n_ops = static_cast<int>(plan_.spatial.size());
  for (int k = 0; k < n_ops; ++k) {
    const SpatialOp& op = plan_.spatial[static_cast<std::size_t>(k)];
    if (op.kind == OpKind::Affine) {
      const Axis& ah = op.ah;
      const Axis& aw = op.aw;
      const int Fh = ah.filter, Fw = aw.filter, before = aw.before;
      const double scale = op.w2 / (Fh * Fw), b2 = op.b2;
#if defined(__AVX512F__)
      FamilyCoefficients family;
      const SpatialOp* act = k + 1 < n_ops ? &plan_.spatial[static_cast<std::size_t>(k) + 1] : nullptr;
      const bool fuse = Fw == 3 && !(self && d == 0) && act && act->kind == OpKind::Activation &&
                        relu_family_coefficients(plan_.duals[act->dual].activation(), &family);
#endif
      for (int o = 0; o < H; ++o) {
        // H pass over the plane of output row o, in tap order; ext row r is plane row r − before (mod W).
        double* hs = es + static_cast<std::size_t>(before) * W;
        double* ht = et + static_cast<std::size_t>(before) * W;
        const double* sr = S + static_cast<std::size_t>(ah.source[static_cast<std::size_t>(o) * Fh]) * plane;
        const double* tr = T + static_cast<std::size_t>(ah.source[static_cast<std::size_t>(o) * Fh]) * plane;
        if (Fh == 3) {
          const double* s1 = S + static_cast<std::size_t>(ah.source[static_cast<std::size_t>(o) * Fh + 1]) * plane;
          const double* s2 = S + static_cast<std::size_t>(ah.source[static_cast<std::size_t>(o) * Fh + 2]) * plane;
          const double* t1 = T + static_cast<std::size_t>(ah.source[static_cast<std::size_t>(o) * Fh + 1]) * plane;
          const double* t2 = T + static_cast<std::size_t>(ah.source[static_cast<std::size_t>(o) * Fh + 2]) * plane;
          sum3_rows(sr, s1, s2, tr, t1, t2, hs, ht, plane);
        } else {
          for (std::size_t j = 0; j < plane; ++j) hs[j] = sr[j], ht[j] = tr[j];
          for (int sh = 1; sh < Fh; ++sh) {
            const std::size_t i = static_cast<std::size_t>(ah.source[static_cast<std::size_t>(o) * Fh + sh]);
            const double* sa = S + i * plane;
            const double* ta = T + i * plane;
#pragma omp simd
            for (std::size_t j = 0; j < plane; ++j) hs[j] += sa[j], ht[j] += ta[j];
          }
        }
        for (int r = 0; r < before; ++r) {  // the wrap rows
          copy_row(hs + static_cast<std::size_t>(r - before + W) * W, W, es + static_cast<std::size_t>(r) * W);
          copy_row(ht + static_cast<std::size_t>(r - before + W) * W, W, et + static_cast<std::size_t>(r) * W);
        }
        for (int r = before + W; r < W + Fw - 1; ++r) {
          copy_row(hs + static_cast<std::size_t>(r - before - W) * W, W, es + static_cast<std::size_t>(r) * W);
          copy_row(ht + static_cast<std::size_t>(r - before - W) * W, W, et + static_cast<std::size_t>(r) * W);
        }
        // W pass and Σ' = W²·𝒞[Σ] + B², Θ' = Σ' + W²·𝒞[Θ]: output column w1 reads ext rows w1 … w1 + Fw − 1.
        double* so = S2 + static_cast<std::size_t>(o) * plane;
        double* to = T2 + static_cast<std::size_t>(o) * plane;
#if defined(__AVX512F__)
        if (fuse) {
          const double* q1 = r1 + act->q_offset + static_cast<std::size_t>(o) * W;
          const std::size_t a = static_cast<std::size_t>(act->q_offset) / (static_cast<std::size_t>(H) * W);
          const double* q2 = D + (a * H + static_cast<std::size_t>(wrap(o - d, H, true))) * 2 * W + (W - 1);
          FusedRow row = fused_row(es, et, W, scale, b2, plan_.duals[act->dual], family, so, to);
          row.checked = plain_rows(q1, W, q2 - (W - 1), 2 * W - 1);
          // Lines of 1, 2 or 4 vectors in groups of 4 straight from the line index (LineJobs, as
          // on the slabs): the same groups as FusedBatch's.
          const int V = (W + 7) / 8;
          auto run = [&](auto v_tag) __attribute__((always_inline)) {
            constexpr int kV = decltype(v_tag)::value, kLines = 4 / kV;
            const __mmask8 tail = tail_mask(W - 8 * (kV - 1));
            for (int w1 = 0; w1 < W; w1 += kLines) {
              const LineJobs<kV> jobs{static_cast<std::size_t>(w1) * W, static_cast<std::size_t>(W), q1 + w1, q2 - w1, tail, -1};
              fused_vectors<4, true, false>(row, jobs);
            }
          };
          if (V == 4) {
            run(std::integral_constant<int, 4>{});
          } else if (V == 2 && W % 2 == 0) {
            run(std::integral_constant<int, 2>{});
          } else if (V == 1 && W % 4 == 0) {
            run(std::integral_constant<int, 1>{});
          } else {
            FusedBatch<true> batch(row);
            for (int w1 = 0; w1 < W; ++w1)
              for (int e = 0; e < W; e += 8)
                batch.add(static_cast<std::size_t>(w1) * W + e, q1 + w1, q2 + e - w1, tail_mask(W - e));
            batch.finish();
          }
          continue;
        }
#endif
        for (int w1 = 0; w1 < W; ++w1) {
          const double* h0 = es + static_cast<std::size_t>(w1) * W;
          const double* g0 = et + static_cast<std::size_t>(w1) * W;
          double* sb = so + static_cast<std::size_t>(w1) * W;
          double* tb = to + static_cast<std::size_t>(w1) * W;
          if (Fw == 3) {
#pragma omp simd
            for (int e = 0; e < W; ++e) {
              const double sv = ((h0[e] + h0[e + W]) + h0[e + 2 * W]) * scale + b2;
              sb[e] = sv;
              tb[e] = sv + ((g0[e] + g0[e + W]) + g0[e + 2 * W]) * scale;
            }
          } else {
            for (int e = 0; e < W; ++e) {
              double hsum = h0[e], gsum = g0[e];
              for (int sw = 1; sw < Fw; ++sw) hsum += h0[e + sw * W], gsum += g0[e + sw * W];
              const double sv = hsum * scale + b2;
              sb[e] = sv;
              tb[e] = sv + gsum * scale;
            }
          }
        }
      }
#if defined(__AVX512F__)
      if (fuse) ++k;  // its activation is done
#endif
      std::swap(S, S2);
      std::swap(T, T2);
    } else {
      const ActivationDual& dual = plan_.duals[op.dual];
      const double* q1 = r1 + op.q_offset;
      const std::size_t a = static_cast<std::size_t>(op.q_offset) / (static_cast<std::size_t>(H) * W);
      for (int h1 = 0; h1 < H; ++h1) {
        const double* q2 = D + (a * H + static_cast<std::size_t>(wrap(h1 - d, H, true))) * 2 * W + (W - 1);
        for (int w1 = 0; w1 < W; ++w1) {
          double* srow = S + (static_cast<std::size_t>(h1) * W + w1) * W;
          double* trow = T + (static_cast<std::size_t>(h1) * W + w1) * W;
          // Pixel a of a point against itself is exactly collinear: its variance, not the product.
          if (self && d == 0) srow[0] = q1[static_cast<std::size_t>(h1) * W + w1];
          dual.apply(static_cast<std::size_t>(W), q1 + static_cast<std::size_t>(h1) * W + w1, 0, q2 - w1, 1, srow, trow);
        }
      }
    }
  }
  double ss = 0, st = 0;
#pragma omp simd reduction(+ : ss, st)
  for (std::size_t j = 0; j < block; ++j) ss += S[j], st += T[j];
  if (full_s) {
    const std::size_t m = static_cast<std::size_t>(H) * W;
    for (int h1 = 0; h1 < H; ++h1) {
      const int h2 = wrap(h1 - d, H, true);
      for (int w1 = 0; w1 < W; ++w1)
        for (int e = 0; e < W; ++e) {
          const std::size_t at = (static_cast<std::size_t>(h1) * W + w1) * m + static_cast<std::size_t>(h2) * W +
                                 static_cast<std::size_t>(w1 - e < 0 ? w1 - e + W : w1 - e);
          const std::size_t from = (static_cast<std::size_t>(h1) * W + w1) * W + e;
          full_s[at] = S[from];
          full_t[at] = T[from];
        }
    }
  }
  return {ss, st};
}

// The inputs of slab d (run_slab): Σ⁰ of the two points, or the pooled kernels of the previous
// stage, in rows G … G + rows − 1 of ws.bs (Σ) and ws.bt (Θ), and zeros wherever run_slab reads
// what no layer writes — the pads (the P lines before and after each row's W lines and the P
// columns after each line) and, with `theta_read` (a first conv that sums Θ⁰ = 0), Θ's body.
// Nothing in run_slab writes a pad (the rows keep them zero), so they are zeroed only when
// the row layout R changes (ws.slab_pads), not per slab.
void Engine::slab_inputs(const Plan::Stage& stage, int d, const SliceSource& src, bool theta_read,
                         SliceWorkspace& ws) const {
  const int H = stage.h, W = stage.w, P = stage.pad, L = W + P, C = plan_.in_c;
  const std::size_t R = static_cast<std::size_t>(W + 2 * P) * L, body = static_cast<std::size_t>(W) * L;
  const std::size_t first = static_cast<std::size_t>(P) * L;  // (w1 = 0, w2 = 0)
  const Range rows = slice_range(H, d, false);
  const int G = stage.row_guard;
  const std::size_t n = static_cast<std::size_t>(rows.hi - rows.lo + G) * R;
  double* const S0 = ws.bs.data();
  double* const T0 = ws.bt.data();
  // The stage's rows (at most h + G) of this layout; more of them if a taller stage comes later.
  const std::size_t want = static_cast<std::size_t>(H + G);
  if (ws.slab_pads != R) ws.slab_pads = R, ws.slab_pad_rows = 0;
  if (ws.slab_pad_rows < want) {
    for (double* A0 : {S0, T0})
      for (std::size_t row = ws.slab_pad_rows; row < want; ++row) {
        double* A = A0 + row * R;
        std::fill(A, A + first, 0.0);
        for (int w1 = 0; w1 < W; ++w1) zero_row(A + first + static_cast<std::size_t>(w1) * L + W, P);
        std::fill(A + first + body, A + R, 0.0);
      }
    ws.slab_pad_rows = want;
  }
  if (theta_read) std::fill(T0, T0 + n, 0.0);
  double* S = S0 + static_cast<std::size_t>(G) * R;
  double* T = T0 + static_cast<std::size_t>(G) * R;
  // Σ⁰ (or the pooled kernels of the previous stage); Θ⁰ = 0 from the inputs.
  const double inv = 1.0 / C;
  const bool transposed = !src.s && C <= 16 && static_cast<std::size_t>(C) * W <= ws.bq1.size();
#if defined(__AVX512F__)
  // Up to 4 channels and 4 vectors of partners: y's row in registers (sigma0_lines).
  const bool held = transposed && C <= 4 && W <= 32 && ws.yt.size() == static_cast<std::size_t>(H) * W * C;
  if (held && ws.yt_of != src.y) {
    for (int h = 0; h < H; ++h)
      for (int c = 0; c < C; ++c)
        for (int w = 0; w < W; ++w)
          ws.yt[(static_cast<std::size_t>(h) * C + c) * W + w] = src.y[(static_cast<std::size_t>(h) * W + w) * C + c];
    ws.yt_of = src.y;
  }
#endif
  for (int h1 = rows.lo; h1 < rows.hi; ++h1) {
    const int h2 = h1 - d;
    double* srow = S + static_cast<std::size_t>(h1 - rows.lo) * R + first;
    double* trow = T + static_cast<std::size_t>(h1 - rows.lo) * R + first;
#if defined(__AVX512F__)
    if (held) {  // y's rows channel-major once per point (ws.yt), not per slab row
      sigma0_lines(src.x + static_cast<std::size_t>(h1) * W * C, ws.yt.data() + static_cast<std::size_t>(h2) * C * W, C,
                   W, L, inv, srow);
      continue;
    }
#endif
    if (transposed)
      for (int w2 = 0; w2 < W; ++w2)
        for (int c = 0; c < C; ++c)
          ws.bq1[static_cast<std::size_t>(c) * W + w2] = src.y[(static_cast<std::size_t>(h2) * W + w2) * C + c];
#if defined(__AVX512F__)
    if (src.s) {  // the pooled kernels of the previous stage, scaled (explicit vectors: the rows may alias for all the compiler knows)
      const __m512d scale = _mm512_set1_pd(src.scale);
      for (int w1 = 0; w1 < W; ++w1) {
        const std::size_t k = ((static_cast<std::size_t>(h1) * H + h2) * W + w1) * W;
        double* sr = srow + static_cast<std::size_t>(w1) * L;
        double* tr = trow + static_cast<std::size_t>(w1) * L;
        for (int w2 = 0; w2 < W; w2 += 8) {
          const __mmask8 m = tail_mask(W - w2);
          _mm512_mask_storeu_pd(sr + w2, m, _mm512_mul_pd(scale, _mm512_maskz_loadu_pd(m, src.s + k + w2)));
          _mm512_mask_storeu_pd(tr + w2, m, _mm512_mul_pd(scale, _mm512_maskz_loadu_pd(m, src.t + k + w2)));
        }
      }
      continue;
    }
#endif
    for (int w1 = 0; w1 < W; ++w1) {
      double* sr = srow + static_cast<std::size_t>(w1) * L;
      if (src.s) {
        const std::size_t k = ((static_cast<std::size_t>(h1) * H + h2) * W + w1) * W;
        double* tr = trow + static_cast<std::size_t>(w1) * L;
        for (int w2 = 0; w2 < W; ++w2) sr[w2] = src.scale * src.s[k + w2], tr[w2] = src.scale * src.t[k + w2];
      } else if (transposed) {  // y's row h2 channel-major: the w2 loop vectorizes
        const double* a = src.x + (static_cast<std::size_t>(h1) * W + w1) * C;
        const double* yt = ws.bq1.data();
        sigma0_row(a, yt, static_cast<std::size_t>(W), C, W, inv, sr);
      } else {
        const double* a = src.x + (static_cast<std::size_t>(h1) * W + w1) * C;
        for (int w2 = 0; w2 < W; ++w2) {
          const double* b = src.y + (static_cast<std::size_t>(h2) * W + w2) * C;
          double acc = 0;
          for (int c = 0; c < C; ++c) acc += a[c] * b[c];
          sr[w2] = acc * inv;
        }
      }
    }
  }
}

bool Engine::run_slab(const Plan::Stage& stage, int d, const SliceSource& src, const double* r1, const double* r2,
                      bool self, double* rec, SliceWorkspace& ws, double** s_out, double** t_out) const {
  const int H = stage.h, W = stage.w, P = stage.pad, L = W + P;
  const std::size_t R = static_cast<std::size_t>(W + 2 * P) * L, body = static_cast<std::size_t>(W) * L;
  const std::size_t first = static_cast<std::size_t>(P) * L;  // (w1 = 0, w2 = 0)
  const Range rows = slice_range(H, d, false);
  if (rows.empty()) return false;
  // Σ and Θ each in one array of the slab's rows plus G guard rows, updated in place: a conv
  // writes output row o over input row o − G (rows in ascending order; then the rows sit G lower)
  // or o + G (descending; back up): G is more than the conv reads on either side, so that row is
  // read by no later output. Half the footprint of a second array, so a 32×32 slab stays in L2.
  const int G = stage.row_guard;
  double* const S0 = ws.bs.data();
  double* const T0 = ws.bt.data();
  // A 3×3 conv whose ReLU-family activation runs in the same pass (FusedBatch): each output
  // entry goes from the window sum through the dual in registers. Not for offset 0 of a point
  // with itself (its diagonal takes the variances and writes the records first).
  auto fusable = [&](int k, FamilyCoefficients* family) {
#if defined(__AVX512F__)
    const SpatialOp& op = plan_.spatial[static_cast<std::size_t>(k)];
    const SpatialOp* act = k + 1 < stage.end ? &plan_.spatial[static_cast<std::size_t>(k) + 1] : nullptr;
    return op.kind == OpKind::Affine && op.aw.filter == 3 && !(self && d == 0) && act &&
           act->kind == OpKind::Activation && relu_family_coefficients(plan_.duals[act->dual].activation(), family);
#else
    (void)k, (void)family;
    return false;
#endif
  };
  {
    FamilyCoefficients unused;
    slab_inputs(stage, d, src, !src.s && !fusable(stage.begin, &unused), ws);
  }
  int shift = G;  // row h sits at index h − rows.lo + shift
  double* S = S0 + static_cast<std::size_t>(shift) * R;
  double* T = T0 + static_cast<std::size_t>(shift) * R;
  // One row of the H pass, with zero guards for the diagonal shifts of the W pass.
  const std::size_t guard = static_cast<std::size_t>(P + 8);  // ≥ the largest shift; bh holds 3R + 128
  double* hs = ws.bh.data() + guard;
  double* ht = ws.bg.data() + guard;
  // A second row (two output rows share their H pass: sum3_pair); bh holds 3R + 128.
  double* hs_next = hs + R + guard;
  double* ht_next = ht + R + guard;
  // Every H pass writes its whole row [0, R) before the W pass reads it; only the zero guards
  // around the two rows (which the diagonal shifts reach) need clearing.
  for (std::vector<double>* h : {&ws.bh, &ws.bg})
    for (std::size_t at : {std::size_t(0), guard + R, 2 * guard + 2 * R}) std::fill(h->data() + at, h->data() + at + guard, 0.0);
  auto zero_pads = [&](double* row) {  // the pad columns w2 = W … W+P−1 of every w1
    for (int w1 = 0; w1 < W; ++w1) zero_row(row + first + static_cast<std::size_t>(w1) * L + W, P);
  };
  bool theta0 = !src.s;  // Θ = 0 (from the inputs, before the first op)
  // Open rows (open_vectors): the μ by which the last fused activation divided Σ and Θ (the next
  // conv multiplies it back), and whether that activation's outputs are ≥ 0 (relu-like: a·b = 0).
  double carry_mu = 1.0;
  bool carry_nonneg = false;
  for (int k = stage.begin; k < stage.end; ++k, theta0 = false) {
    const SpatialOp& op = plan_.spatial[static_cast<std::size_t>(k)];
    if (op.kind == OpKind::Affine) {
      const Axis& ah = op.ah;
      const Axis& aw = op.aw;
      const int Fh = ah.filter, Fw = aw.filter;
      const double scale = op.w2 / (Fh * Fw) * carry_mu, b2 = op.b2;
      const bool input_nonneg = carry_nonneg && b2 >= 0.0;
      carry_mu = 1.0, carry_nonneg = false;
      const std::ptrdiff_t step = L + 1;  // both pixels move by the same tap: a diagonal shift
#if defined(__AVX512F__)
      FamilyCoefficients family;
      const SpatialOp* act = k + 1 < stage.end ? &plan_.spatial[static_cast<std::size_t>(k) + 1] : nullptr;
      const bool fuse = fusable(k, &family);
      // A fused first conv from the inputs skips Θ altogether (its window sums are zero): the
      // H pass and the fused rows work on Σ alone, and Θ' = Σ' as the zero sums give it.
      const bool skip_t = theta0 && fuse;
      // Open rows (open_vectors) for the checked, rooted lines of a family member with a ≠ b; with
      // scaled outputs (Σ, Θ / μ) when the op after the activation is a conv of this stage. Every
      // row of a scaled layer is stored divided by μ (the rows the open path does not take too).
      const int V = (W + 7) / 8;
      const bool lines = (V == 4 || (V == 2 && W % 2 == 0) || (V == 1 && W % 4 == 0));
      const family_simd::ScaledFamily sf =
          fuse && family.d2 > 0.0 ? family_simd::scaled_family(family.d2, family.cross) : family_simd::ScaledFamily{};
      const bool open_layer = fuse && V == 4 && family.d2 > 0.0 && std::isnormal(sf.mu) && std::isfinite(sf.kappa) &&
                              std::isnormal(1.0 / sf.mu);
      const bool scaled = open_layer && k + 2 < stage.end &&
                          plan_.spatial[static_cast<std::size_t>(k) + 2].kind == OpKind::Affine;
#else
      const bool skip_t = false;
      (void)theta0;
#endif
      const bool down = shift == G;  // ascending rows, written G lower
      const int next = down ? 0 : G;
      double* const S2 = S0 + static_cast<std::size_t>(next) * R;
      double* const T2 = T0 + static_cast<std::size_t>(next) * R;
      bool ready = false;  // the next row's H pass is done (pair)
      for (int j = 0; j < rows.hi - rows.lo; ++j) {
        const int o = down ? rows.lo + j : rows.hi - 1 - j;
        const bool have = ready;  // this row's H pass is in hs_next
        if (have) std::swap(hs, hs_next), std::swap(ht, ht_next);
        // H pass over the whole slab row (its pads are zero, so the sum's pads are too); three
        // taps (3×3 convs) in one pass, in tap order.
        int nk = 0;
        const double* sr3[3];
        const double* tr3[3];
        for (int sh = 0; sh < Fh; ++sh) {
          const int i = ah.source[static_cast<std::size_t>(o) * Fh + sh];
          if (i < rows.lo || i >= rows.hi) continue;  // also i = −1 (padding)
          const double* sr = S + static_cast<std::size_t>(i - rows.lo) * R;
          const double* tr = T + static_cast<std::size_t>(i - rows.lo) * R;
          if (Fh == 3) {
            sr3[nk] = sr, tr3[nk] = tr;
          } else if (nk == 0) {
            copy_row(sr, static_cast<int>(R), hs);
            copy_row(tr, static_cast<int>(R), ht);
          } else {
#pragma omp simd
            for (std::size_t c = 0; c < R; ++c) hs[c] += sr[c], ht[c] += tr[c];
          }
          ++nk;
        }
        // The 3-tap H pass on entries [c0, c1) of the row.
        auto hpass3 = [&](std::size_t c0, std::size_t c1) __attribute__((always_inline)) {
          if (nk == 3) {
            if (skip_t) sum3_rows<false>(sr3[0] + c0, sr3[1] + c0, sr3[2] + c0, nullptr, nullptr, nullptr, hs + c0, nullptr, c1 - c0);
            else sum3_rows(sr3[0] + c0, sr3[1] + c0, sr3[2] + c0, tr3[0] + c0, tr3[1] + c0, tr3[2] + c0, hs + c0, ht + c0, c1 - c0);
          } else if (nk == 2) {
#pragma omp simd
            for (std::size_t c = c0; c < c1; ++c) hs[c] = sr3[0][c] + sr3[1][c];
            if (!skip_t) {
#pragma omp simd
              for (std::size_t c = c0; c < c1; ++c) ht[c] = tr3[0][c] + tr3[1][c];
            }
          } else if (nk == 1) {
            copy_row(sr3[0] + c0, static_cast<int>(c1 - c0), hs + c0);
            if (!skip_t) copy_row(tr3[0] + c0, static_cast<int>(c1 - c0), ht + c0);
          } else {
            std::fill(hs + c0, hs + c1, 0.0);
            if (!skip_t) std::fill(ht + c0, ht + c1, 0.0);
          }
        };
#if defined(__AVX512F__)
        const bool chunked = fuse && Fh == 3 && !have;  // the H pass runs in chunks between the fused vectors
#else
        const bool chunked = false;
#endif
        // Pair this row with the next when both read three rows, the next's shifted by one: its
        // H pass comes along with this one's (into hs_next) from four rows.
        bool pair = false;
        FourRows four{};
        if (chunked && nk == 3 && j + 1 < rows.hi - rows.lo) {
          const int on = down ? o + 1 : o - 1;
          const int lo_row = down ? o - 1 : o - 2;  // the four rows lo_row … lo_row + 3
          pair = lo_row >= rows.lo && lo_row + 3 < rows.hi;
          for (int sh = 0; sh < Fh && pair; ++sh)
            pair = ah.source[static_cast<std::size_t>(o) * Fh + sh] == (down ? lo_row : lo_row + 1) + sh &&
                   ah.source[static_cast<std::size_t>(on) * Fh + sh] == (down ? lo_row + 1 : lo_row) + sh;
          for (int r = 0; r < 4 && pair; ++r) {
            four.s[r] = S + static_cast<std::size_t>(lo_row + r - rows.lo) * R;
            four.t[r] = T + static_cast<std::size_t>(lo_row + r - rows.lo) * R;
          }
        }
        auto hpass = [&](std::size_t c0, std::size_t c1) __attribute__((always_inline)) {
          if (!pair) hpass3(c0, c1);
          else if (skip_t) down ? sum3_pair<false>(four, c0, c1, hs, ht, hs_next, ht_next)
                                : sum3_pair<false>(four, c0, c1, hs_next, ht_next, hs, ht);
          else if (down) sum3_pair(four, c0, c1, hs, ht, hs_next, ht_next);
          else sum3_pair(four, c0, c1, hs_next, ht_next, hs, ht);
        };
        (void)hpass;  // only the AVX-512 rows are chunked
        ready = pair;
        if (Fh == 3 && !chunked && !have) hpass3(0, R);
        if (Fh != 3 && nk == 0) {
          std::fill(hs, hs + R, 0.0);
          std::fill(ht, ht + R, 0.0);
        }
        // W pass along the diagonal and Σ' = W²·𝒞[Σ] + B², Θ' = Σ' + W²·𝒞[Θ].
        double* so = S2 + static_cast<std::size_t>(o - rows.lo) * R;
        double* to = T2 + static_cast<std::size_t>(o - rows.lo) * R;
        const double* h0 = hs + first - aw.before * step;
        const double* g0 = ht + first - aw.before * step;
        double* sb = so + first;
        double* tb = to + first;
#if defined(__AVX512F__)
        if (fuse) {
          const double* q1 = r1 + act->q_offset + static_cast<std::size_t>(o) * W;
          const double* q2 = r2 + act->q_offset + static_cast<std::size_t>(o - d) * W;
          FusedRow row = fused_row(h0, g0, step, scale, b2, plan_.duals[act->dual], family, sb, tb);
          row.checked = plain_rows(q1, W, q2, W);
          // Rooted rows: copies of q1, q2 and their inverse roots in the spare end of bh / bg,
          // past the H-pass rows and their zero guards (3·guard + 2R doubles).
          const std::size_t spare = (3 * guard + 2 * R + 7) & ~std::size_t(7);
          const std::ptrdiff_t roots = (W + 7) & ~7;
          const bool rooted = row.checked && spare + 2 * static_cast<std::size_t>(roots) <= ws.bh.size();
          // The W pass at body entry c reads the H-pass row up to index first − before·step + c + 2·step:
          // before each w1, the H pass is brought that far (in chunks the core overlaps with the duals).
          std::size_t done = 0;
          const std::ptrdiff_t reach = static_cast<std::ptrdiff_t>(first) + (2 - aw.before) * step + W;
          auto bring = [&](int w1) __attribute__((always_inline)) {  // the H pass far enough for line w1
            if (!chunked) return;
            const std::ptrdiff_t want = reach + static_cast<std::ptrdiff_t>(w1 + 1) * L;
            // chunk ends rounded up to whole vectors: no masked tail per chunk
            const std::size_t upto =
                std::min(R, (static_cast<std::size_t>(std::max<std::ptrdiff_t>(want, 0)) + 7) & ~std::size_t(7));
            if (w1 + 1 == W) hpass(done, R), done = R;
            else if (upto > done) hpass(done, upto), done = upto;
          };
          auto sweep = [&](auto& batch, const double* qa, const double* qb) __attribute__((always_inline)) {
            for (int w1 = 0; w1 < W; ++w1) {
              bring(w1);
              for (int w2 = 0; w2 < W; w2 += 8)
                batch.add(static_cast<std::size_t>(w1) * L + w2, qa + w1, qb + w2, tail_mask(W - w2));
            }
            batch.finish();
          };
          // Lines of 1, 2 or 4 vectors (W ≤ 8, ≤ 16, 25…32) in groups of 4 vectors over 4, 2 or
          // 1 lines (V, lines above): the same vectors in the same groups as FusedBatch, without its queue.
          auto sweep_lines = [&](auto rooted_tag, auto zero_tag, const double* qa, const double* qb) __attribute__((always_inline)) {
            constexpr bool kRooted = decltype(rooted_tag)::value, kZero = decltype(zero_tag)::value;
            const __mmask8 tail = tail_mask(W - 8 * (V - 1));
            auto run = [&](auto v_tag) __attribute__((always_inline)) {
              constexpr int kV = decltype(v_tag)::value, kLines = 4 / kV;
              for (int w1 = 0; w1 < W; w1 += kLines) {
                bring(w1 + kLines - 1);
                const LineJobs<kV> jobs{static_cast<std::size_t>(w1) * L, static_cast<std::size_t>(L), qa + w1, qb, tail};
                fused_vectors<4, true, kRooted, kZero>(row, jobs);
              }
            };
            if (V == 4) run(std::integral_constant<int, 4>{});
            else if (V == 2) run(std::integral_constant<int, 2>{});
            else run(std::integral_constant<int, 1>{});
          };
          auto go = [&](auto rooted_tag, auto zero_tag, const double* qa, const double* qb) __attribute__((always_inline)) {
            if (lines) {
              sweep_lines(rooted_tag, zero_tag, qa, qb);
            } else {
              FusedBatch<true, decltype(rooted_tag)::value, decltype(zero_tag)::value> batch(row);
              sweep(batch, qa, qb);
            }
          };
          row.zero_theta = skip_t;
          if (rooted && open_layer) {
            double* qa = ws.bh.data() + spare;
            double* qb = ws.bg.data() + spare;
            rooted_row(q1, W, qa, roots);
            rooted_row(q2, W, qb, roots);
            OpenRow orow{h0, g0, step, sb, tb, roots, _mm512_set1_pd(scale), _mm512_set1_pd(b2),
                         _mm512_set1_pd(sf.kappa + family_simd::kPi), _mm512_set1_pd(sf.kappa), _mm512_set1_pd(sf.mu),
                         family_simd::up_table(sf.kappa), sf.mu, 1.0 / sf.mu, &plan_.duals[act->dual], skip_t};
            auto open_lines = [&](auto zero_tag, auto nonneg_tag, auto scaled_tag) __attribute__((always_inline)) {
              constexpr bool kZero = decltype(zero_tag)::value, kNonneg = decltype(nonneg_tag)::value,
                             kScaled = decltype(scaled_tag)::value;
              const __mmask8 tail = tail_mask(W - 8 * (V - 1));
              auto run = [&](auto v_tag) __attribute__((always_inline)) {
                constexpr int kV = decltype(v_tag)::value, kLines = 4 / kV;
                for (int w1 = 0; w1 < W; w1 += kLines) {
                  bring(w1 + kLines - 1);
                  const LineJobs<kV> jobs{static_cast<std::size_t>(w1) * L, static_cast<std::size_t>(L), qa + w1, qb, tail};
                  open_vectors<kZero, kNonneg, kScaled>(orow, jobs);
                }
              };
              run(std::integral_constant<int, 4>{});  // open_layer: V = 4
            };
            using T1 = std::true_type;
            using F0 = std::false_type;
            if (skip_t) {  // the first conv from the inputs: c of either sign
              if (scaled) open_lines(T1{}, F0{}, T1{});
              else open_lines(T1{}, F0{}, F0{});
            } else if (input_nonneg) {
              if (scaled) open_lines(F0{}, T1{}, T1{});
              else open_lines(F0{}, T1{}, F0{});
            } else {
              if (scaled) open_lines(F0{}, F0{}, T1{});
              else open_lines(F0{}, F0{}, F0{});
            }
            continue;
          }
          if (rooted) {
            double* qa = ws.bh.data() + spare;
            double* qb = ws.bg.data() + spare;
            rooted_row(q1, W, qa, roots);
            rooted_row(q2, W, qb, roots);
            row.roots = roots;
            if (skip_t) go(std::true_type{}, std::true_type{}, qa, qb);
            else go(std::true_type{}, std::false_type{}, qa, qb);
          } else if (skip_t) {
            go(std::false_type{}, std::true_type{}, q1, q2);
          } else {
            go(std::false_type{}, std::false_type{}, q1, q2);
          }
          if (scaled) {  // a row the open path did not take, in a scaled layer
            const double inv_mu = 1.0 / sf.mu;
            for (int w1 = 0; w1 < W; ++w1)
              for (int w2 = 0; w2 < W; ++w2) {
                const std::size_t c = static_cast<std::size_t>(w1) * L + w2;
                sb[c] *= inv_mu, tb[c] *= inv_mu;
              }
          }
          continue;  // the pads of so / to stay zero
        }
#endif
        if (Fw == 3) {
          const std::ptrdiff_t s1 = step, s2 = 2 * step;
#pragma omp simd
          for (std::size_t c = 0; c < body; ++c) {
            const double sv = ((h0[c] + h0[c + s1]) + h0[c + s2]) * scale + b2;
            sb[c] = sv;
            tb[c] = sv + ((g0[c] + g0[c + s1]) + g0[c + s2]) * scale;
          }
        } else {
#pragma omp simd
          for (std::size_t c = 0; c < body; ++c) sb[c] = h0[c], tb[c] = g0[c];
          for (int sw = 1; sw < Fw; ++sw) {
            const double* hsw = h0 + sw * step;
            const double* gsw = g0 + sw * step;
#pragma omp simd
            for (std::size_t c = 0; c < body; ++c) sb[c] += hsw[c], tb[c] += gsw[c];
          }
#pragma omp simd
          for (std::size_t c = 0; c < body; ++c) {
            const double sv = sb[c] * scale + b2;
            sb[c] = sv;
            tb[c] = sv + tb[c] * scale;
          }
        }
        zero_pads(so);
        zero_pads(to);
      }
#if defined(__AVX512F__)
      if (fuse) ++k;  // its activation is done
      if (scaled) carry_mu = sf.mu;
      carry_nonneg = fuse && family.cross == 0.0;  // a·b = 0: φ has one sign, so E[φφ] ≥ 0
#else
      (void)input_nonneg;
#endif
      S = S2, T = T2, shift = next;
    } else {
      const ActivationDual& dual = plan_.duals[op.dual];
      const double* q1 = r1 + op.q_offset;
      const double* q2 = r2 + op.q_offset;
      double* q1p = ws.bq1.data();
      double* q2p = ws.bq2.data();
      for (int h1 = rows.lo; h1 < rows.hi; ++h1) {
        const int h2 = h1 - d;
        double* srow = S + static_cast<std::size_t>(h1 - rows.lo) * R;
        double* trow = T + static_cast<std::size_t>(h1 - rows.lo) * R;
        if (self && d == 0) {  // pixel a of a point against itself: its variance (and the record)
          for (int w = 0; w < W; ++w) {
            double& diag = srow[first + static_cast<std::size_t>(w) * L + w];
            if (rec) rec[op.q_offset + static_cast<std::size_t>(h1) * W + w] = diag;
            diag = q1[static_cast<std::size_t>(h1) * W + w];
          }
        }
        // The variances of both pixels, packed like the row; pads 1 (harmless, zeroed after).
        for (int w1 = 0; w1 < W; ++w1) {
          double* a = q1p + first + static_cast<std::size_t>(w1) * L;
          double* b = q2p + first + static_cast<std::size_t>(w1) * L;
          const double v = q1[static_cast<std::size_t>(h1) * W + w1];
          for (int w2 = 0; w2 < W; ++w2) a[w2] = v;
          copy_row(q2 + static_cast<std::size_t>(h2) * W, W, b);
          for (int w2 = W; w2 < L; ++w2) a[w2] = 1.0, b[w2] = 1.0;
        }
        dual.apply(body, q1p + first, 1, q2p + first, 1, srow + first, trow + first);
        zero_pads(srow);
        zero_pads(trow);
      }
    }
  }
  *s_out = S;
  *t_out = T;
  return true;
}

// The avgpool between two stages on one finished slice (d, e): every pixel pair ((h1,w1),(h2,w2))
// of the fine map adds its value to each coarse pair ((A1,B1),(A2,B2)) whose windows read it —
// each pixel of the pair through its own window (docs/conventions.md §2, avgpool), so offsets
// are not conserved and the next stage starts from all coarse pairs. With `mirror` the slice
// also stands for its transpose (a point with itself).
namespace {
void pool_slice(const double* S, const double* T, SliceWorkspace& ws, int d, int e, bool circ,
                const SpatialOp& pool, bool mirror, double* ns, double* nt) {
  const PoolAxis& ph = pool.ph;
  const PoolAxis& pw = pool.pw;
  const int Hf = ws.out_h, Wf = ws.out_w, width = ws.out_cols_hi - ws.out_cols_lo;
  const std::size_t Wo = static_cast<std::size_t>(pw.n_out), Ho = static_cast<std::size_t>(ph.n_out);
  if (ph.single && pw.single) {
    // Windows no wider than the stride (Myrtle's 2×2/2): each fine pixel feeds at most one
    // coarse one, so each column of the slice has one destination, the same in every row.
    std::ptrdiff_t* dest = ws.dest.data();
    std::ptrdiff_t* dm = ws.mirror.data();
    for (int w1 = ws.out_cols_lo; w1 < ws.out_cols_hi; ++w1) {
      const int B1 = pw.owner[w1], B2 = pw.owner[wrap(w1 - e, Wf, circ)];
      dest[w1 - ws.out_cols_lo] = (B1 < 0 || B2 < 0) ? -1 : static_cast<std::ptrdiff_t>(B1 * Wo + B2);
      dm[w1 - ws.out_cols_lo] = static_cast<std::ptrdiff_t>(B2 * Wo + B1);
    }
    for (int h1 = ws.out_rows_lo; h1 < ws.out_rows_hi; ++h1) {
      const int A1 = ph.owner[h1], A2 = ph.owner[wrap(h1 - d, Hf, circ)];
      if (A1 < 0 || A2 < 0) continue;
      const double* srow = S + (h1 - ws.out_rows_lo) * width;
      const double* trow = T + (h1 - ws.out_rows_lo) * width;
      double* s = ns + (A1 * Ho + A2) * Wo * Wo;
      double* t = nt + (A1 * Ho + A2) * Wo * Wo;
      for (int c = 0; c < width; ++c)
        if (dest[c] >= 0) s[dest[c]] += srow[c], t[dest[c]] += trow[c];
      if (mirror) {
        double* sm = ns + (A2 * Ho + A1) * Wo * Wo;
        double* tm = nt + (A2 * Ho + A1) * Wo * Wo;
        for (int c = 0; c < width; ++c)
          if (dest[c] >= 0) sm[dm[c]] += srow[c], tm[dm[c]] += trow[c];
      }
    }
    return;
  }
  for (int h1 = ws.out_rows_lo; h1 < ws.out_rows_hi; ++h1) {
    const int h2 = wrap(h1 - d, Hf, circ);
    const double* srow = S + (h1 - ws.out_rows_lo) * width - ws.out_cols_lo;
    const double* trow = T + (h1 - ws.out_rows_lo) * width - ws.out_cols_lo;
    for (int ia = ph.first[h1]; ia < ph.first[h1 + 1]; ++ia)
      for (int ib = ph.first[h2]; ib < ph.first[h2 + 1]; ++ib) {
        const std::size_t A1 = ph.coarse[ia], A2 = ph.coarse[ib];
        double* s = ns + (A1 * Ho + A2) * Wo * Wo;   // + B1·Wo + B2
        double* t = nt + (A1 * Ho + A2) * Wo * Wo;
        double* sm = ns + (A2 * Ho + A1) * Wo * Wo;  // + B2·Wo + B1
        double* tm = nt + (A2 * Ho + A1) * Wo * Wo;
        for (int w1 = ws.out_cols_lo; w1 < ws.out_cols_hi; ++w1) {
          const int w2 = wrap(w1 - e, Wf, circ);
          const double v = srow[w1], u = trow[w1];
          for (int jb = pw.first[w1]; jb < pw.first[w1 + 1]; ++jb)
            for (int jc = pw.first[w2]; jc < pw.first[w2 + 1]; ++jc) {
              const std::size_t B1 = pw.coarse[jb], B2 = pw.coarse[jc];
              s[B1 * Wo + B2] += v;
              t[B1 * Wo + B2] += u;
              if (mirror) {
                sm[B2 * Wo + B1] += v;
                tm[B2 * Wo + B1] += u;
              }
            }
        }
      }
  }
}

}  // namespace

#if defined(__AVX512F__)
namespace {
// The 2×2 stride-2 pool of one slab d (no mirror): row h1's line w1 at S + (h1 − lo)·R + w1·L,
// partner w2 at + dest0 + w2 − … (window B2 = columns dest0 + 2·B2, + 1). Each coarse entry is
// loaded once per pair of rows of one window and gets its four lines' column-pair sums
// (rows in order, lines in order within a row): the same additions in the same order as the
// line-by-line scatter, so the same bits.
// With `fresh` (one flag per coarse block (A1, A2)), a block still flagged starts from zero
// instead of being loaded, and loses its flag.
void pool_slab_pairs(const double* S, const double* T, std::size_t R, int L, int lo, int hi, int d,
                     const SpatialOp& pool, std::ptrdiff_t dest0, char* fresh, double* next_s, double* next_t) {
  const std::size_t Wo = static_cast<std::size_t>(pool.pw.n_out), Ho = static_cast<std::size_t>(pool.ph.n_out);
  const std::vector<int>& oh = pool.ph.owner;
  const std::vector<int>& ow = pool.pw.owner;
  const int W = static_cast<int>(ow.size());
  const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  // The fine lines of each coarse column B1, in order (one or two: a window cut by the map edge).
  int lines[64][2], nlines[64];
  for (std::size_t B = 0; B < Wo; ++B) nlines[B] = 0;
  for (int w1 = 0; w1 < W; ++w1)
    if (ow[static_cast<std::size_t>(w1)] >= 0) {
      const int B = ow[static_cast<std::size_t>(w1)];
      lines[B][nlines[B]++] = w1;
    }
  for (int h1 = lo; h1 < hi;) {
    const int A1 = oh[static_cast<std::size_t>(h1)], A2 = oh[static_cast<std::size_t>(h1 - d)];
    if (A1 < 0 || A2 < 0) {
      ++h1;
      continue;
    }
    const bool two = h1 + 1 < hi && oh[static_cast<std::size_t>(h1 + 1)] == A1 && oh[static_cast<std::size_t>(h1 + 1 - d)] == A2;
    const int nrows = two ? 2 : 1;
    double* sn = next_s + (A1 * Ho + A2) * Wo * Wo;
    double* tn = next_t + (A1 * Ho + A2) * Wo * Wo;
    const std::size_t r0 = static_cast<std::size_t>(h1 - lo) * R;
    const bool zero = fresh && fresh[A1 * Ho + A2];
    if (zero) fresh[A1 * Ho + A2] = 0;
    for (std::size_t B1 = 0; B1 < Wo; ++B1) {
      const int nl = nlines[B1];
      for (std::size_t B2 = 0; B2 < Wo; B2 += 8) {
        const unsigned nb = static_cast<unsigned>(std::min<std::size_t>(8, Wo - B2));
        const __mmask8 m0 = nb >= 4 ? __mmask8(0xFF) : __mmask8((1u << (2 * nb)) - 1);
        const __mmask8 m1 = nb <= 4 ? __mmask8(0) : __mmask8((1u << (2 * nb - 8)) - 1);
        const __mmask8 mb = __mmask8((1u << nb) - 1);
        double* ds = sn + B1 * Wo + B2;
        double* dt = tn + B1 * Wo + B2;
        __m512d as = zero ? _mm512_setzero_pd() : _mm512_maskz_loadu_pd(mb, ds);
        __m512d at = zero ? _mm512_setzero_pd() : _mm512_maskz_loadu_pd(mb, dt);
        for (int r = 0; r < nrows; ++r)
          for (int l = 0; l < nl; ++l) {
            const std::size_t at0 = r0 + static_cast<std::size_t>(r) * R + static_cast<std::size_t>(lines[B1][l]) * L +
                                    static_cast<std::size_t>(dest0) + 2 * B2;
            const __m512d s0 = _mm512_maskz_loadu_pd(m0, S + at0), s1 = _mm512_maskz_loadu_pd(m1, S + at0 + 8);
            const __m512d t0 = _mm512_maskz_loadu_pd(m0, T + at0), t1 = _mm512_maskz_loadu_pd(m1, T + at0 + 8);
            as = _mm512_add_pd(as, _mm512_add_pd(_mm512_permutex2var_pd(s0, even, s1), _mm512_permutex2var_pd(s0, odd, s1)));
            at = _mm512_add_pd(at, _mm512_add_pd(_mm512_permutex2var_pd(t0, even, t1), _mm512_permutex2var_pd(t0, odd, t1)));
          }
        _mm512_mask_storeu_pd(ds, mb, as);
        _mm512_mask_storeu_pd(dt, mb, at);
      }
    }
    h1 += nrows;
  }
}
}  // namespace
#endif

// One slab stage of pair_stages: every row offset d (0 first; for a point with itself d ≥ 0, the
// mirror −d being the transpose), each slab then pooled into the next stage, or summed (gap),
// or written out (no readout).
std::pair<double, double> Engine::stage_slabs(const Plan::Stage& st, int dlo, int dhi, const SpatialOp* pool,
                                              const SliceSource& src, const double* r1, const double* r2, bool self,
                                              bool half, double* rec,
                                              SliceWorkspace& ws, double* full_s, double* full_t, double* next_s,
                                              double* next_t) const {
  const int H = st.h, W = st.w, P = st.pad, L = W + P;
  const std::size_t R = static_cast<std::size_t>(W + 2 * P) * L, body = static_cast<std::size_t>(W) * L;
  const std::size_t first = static_cast<std::size_t>(P) * L;
  std::ptrdiff_t* dest = ws.bdest.data();
  std::size_t Wo = 1, Ho = 1;
  if (pool) {  // the fine columns of each coarse one (windows do not overlap): a run [lo, hi)
    Wo = static_cast<std::size_t>(pool->pw.n_out);
    Ho = static_cast<std::size_t>(pool->ph.n_out);
    for (std::size_t B = 0; B < Wo; ++B) dest[B] = 0, dest[Wo + B] = 0;
    for (int w = W - 1; w >= 0; --w)
      if (pool->pw.owner[w] >= 0) dest[pool->pw.owner[w]] = w;
    for (int w = 0; w < W; ++w)
      if (pool->pw.owner[w] >= 0) dest[Wo + pool->pw.owner[w]] = w + 1;
  }
  // Every window two adjacent columns, window B2 at dest[0] + 2·B2 (Myrtle's 2×2, stride 2).
  bool pairs = pool != nullptr && Wo > 0;
  for (std::size_t B = 0; B < Wo && pairs; ++B)
    pairs = dest[B] == dest[0] + 2 * static_cast<std::ptrdiff_t>(B) && dest[Wo + B] == dest[B] + 2;
  // The coarse arrays start at zero. When every slab goes through pool_slab_pairs (no mirror),
  // a coarse block starts from zero in registers at its first visit instead (ws.fresh; the same
  // bits: 0 + x = x), and only blocks no slab visited are zeroed at the end: no memset of
  // 2·(h·w/4)² doubles that the slabs' rows have evicted by the time a block is reached.
#if defined(__AVX512F__)
  const bool lazy = pairs && !half && Wo <= 64;
#else
  const bool lazy = false;
#endif
  if (pool) {
    const std::size_t cn = Ho * Wo;
    if (lazy) {
      ws.fresh.assign(Ho * Ho, 1);
    } else {
      std::fill(next_s, next_s + cn * cn, 0.0);
      std::fill(next_t, next_t + cn * cn, 0.0);
    }
  }
  const std::size_t m = static_cast<std::size_t>(H) * W;
  double sum_s = 0, sum_t = 0;
  for (int idx = -1; idx <= dhi - dlo; ++idx) {
    const int d = idx < 0 ? 0 : dlo + idx;
    if (idx >= 0 && d == 0) continue;
    if (half && d < 0) continue;
    const bool twice = half && d != 0;
    double* S = nullptr;
    double* T = nullptr;
    if (!run_slab(st, d, src, r1, r2, self, rec, ws, &S, &T)) continue;
    const Range rows = slice_range(H, d, false);
#if defined(__AVX512F__)
    if (pool && pairs && !twice && Wo <= 64) {  // Myrtle's 2×2 windows, each coarse entry summed in registers
      pool_slab_pairs(S + first, T + first, R, L, rows.lo, rows.hi, d, *pool, dest[0], lazy ? ws.fresh.data() : nullptr,
                      next_s, next_t);
      continue;
    }
#endif
    double ss = 0, stt = 0;
    for (int h1 = rows.lo; h1 < rows.hi; ++h1) {
      const int h2 = h1 - d;
      const double* srow = S + static_cast<std::size_t>(h1 - rows.lo) * R + first;
      const double* trow = T + static_cast<std::size_t>(h1 - rows.lo) * R + first;
      if (pool) {
        const int A1 = pool->ph.owner[h1], A2 = pool->ph.owner[h2];
        if (A1 < 0 || A2 < 0) continue;
        double* sn = next_s + (A1 * Ho + A2) * Wo * Wo;
        double* tn = next_t + (A1 * Ho + A2) * Wo * Wo;
        double* sm = next_s + (A2 * Ho + A1) * Wo * Wo;
        double* tm = next_t + (A2 * Ho + A1) * Wo * Wo;
        // Each window's entries summed in registers, then added once to its coarse pair (and,
        // for a point with itself, to the mirrored pair).
#if defined(__AVX512F__)
        if (pairs) {  // windows of two adjacent columns (2×2, stride 2): 8 coarse columns per pair of vectors
          const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
          const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
          for (int w1 = 0; w1 < W; ++w1) {
            const int B1 = pool->pw.owner[w1];
            if (B1 < 0) continue;
            const double* sr = srow + static_cast<std::size_t>(w1) * L + dest[0];
            const double* tr = trow + static_cast<std::size_t>(w1) * L + dest[0];
            for (std::size_t B2 = 0; B2 < Wo; B2 += 8) {
              const unsigned nb = static_cast<unsigned>(std::min<std::size_t>(8, Wo - B2));
              const __mmask8 m0 = nb >= 4 ? __mmask8(0xFF) : __mmask8((1u << (2 * nb)) - 1);
              const __mmask8 m1 = nb <= 4 ? __mmask8(0) : __mmask8((1u << (2 * nb - 8)) - 1);
              const __mmask8 mb = __mmask8((1u << nb) - 1);
              const __m512d s0 = _mm512_maskz_loadu_pd(m0, sr + 2 * B2), s1 = _mm512_maskz_loadu_pd(m1, sr + 2 * B2 + 8);
              const __m512d t0 = _mm512_maskz_loadu_pd(m0, tr + 2 * B2), t1 = _mm512_maskz_loadu_pd(m1, tr + 2 * B2 + 8);
              const __m512d as = _mm512_add_pd(_mm512_permutex2var_pd(s0, even, s1), _mm512_permutex2var_pd(s0, odd, s1));
              const __m512d at = _mm512_add_pd(_mm512_permutex2var_pd(t0, even, t1), _mm512_permutex2var_pd(t0, odd, t1));
              double* ds = sn + B1 * Wo + B2;
              double* dt = tn + B1 * Wo + B2;
              _mm512_mask_storeu_pd(ds, mb, _mm512_add_pd(_mm512_maskz_loadu_pd(mb, ds), as));
              _mm512_mask_storeu_pd(dt, mb, _mm512_add_pd(_mm512_maskz_loadu_pd(mb, dt), at));
              if (twice) {
                alignas(64) double vs[8], vt[8];
                _mm512_store_pd(vs, as);
                _mm512_store_pd(vt, at);
                for (unsigned b = 0; b < nb; ++b) sm[(B2 + b) * Wo + B1] += vs[b], tm[(B2 + b) * Wo + B1] += vt[b];
              }
            }
          }
          continue;
        }
#endif
        for (int w1 = 0; w1 < W; ++w1) {
          const int B1 = pool->pw.owner[w1];
          if (B1 < 0) continue;
          const double* sr = srow + static_cast<std::size_t>(w1) * L;
          const double* tr = trow + static_cast<std::size_t>(w1) * L;
          for (std::size_t B2 = 0; B2 < Wo; ++B2) {
            const std::ptrdiff_t lo = dest[B2], hi = dest[Wo + B2];
            if (lo >= hi) continue;
            double as = sr[lo], at = tr[lo];
            for (std::ptrdiff_t w2 = lo + 1; w2 < hi; ++w2) as += sr[w2], at += tr[w2];
            sn[B1 * Wo + B2] += as, tn[B1 * Wo + B2] += at;
            if (twice) sm[B2 * Wo + B1] += as, tm[B2 * Wo + B1] += at;
          }
        }
        continue;
      }
      double rs = 0, rt = 0;  // pads are zero; 8 lanes of partial sums (a fixed order)
#pragma omp simd reduction(+ : rs, rt)
      for (std::size_t c = 0; c < body; ++c) rs += srow[c], rt += trow[c];
      ss += rs, stt += rt;
      if (full_s)
        for (int w1 = 0; w1 < W; ++w1)
          for (int w2 = 0; w2 < W; ++w2) {
            const std::size_t at = (static_cast<std::size_t>(h1) * W + w1) * m + static_cast<std::size_t>(h2) * W + w2;
            full_s[at] = srow[static_cast<std::size_t>(w1) * L + w2];
            full_t[at] = trow[static_cast<std::size_t>(w1) * L + w2];
          }
    }
    const double weight = twice ? 2.0 : 1.0;
    sum_s += weight * ss;
    sum_t += weight * stt;
  }
  if (pool && lazy)
    for (std::size_t b = 0; b < Ho * Ho; ++b)
      if (ws.fresh[b]) {
        std::fill(next_s + b * Wo * Wo, next_s + (b + 1) * Wo * Wo, 0.0);
        std::fill(next_t + b * Wo * Wo, next_t + (b + 1) * Wo * Wo, 0.0);
      }
  return {sum_s, sum_t};
}

std::pair<double, double> Engine::pair_stages(Eigen::Index p1, Eigen::Index p2, SliceWorkspace& ws, double* full_s,
                                              double* full_t, double* rec, bool records_only) const {
  const bool circ = plan_.circular;
  const int Ho = plan_.out_h, Wo = plan_.out_w;
  const std::size_t m = static_cast<std::size_t>(Ho) * Wo;
  const bool self = same_point(p1, p2);
  const double* r1 = rec ? rec : record(p1);
  const double* r2 = rec ? rec : record(p2);
  SliceSource src;
  src.x = row_of(p1);
  src.y = row_of(p2);
  double* cur_s = ws.cs.data();
  double* cur_t = ws.ct.data();
  double* next_s = ws.ns.data();
  double* next_t = ws.nt.data();
  double sum_s = 0, sum_t = 0;
  for (std::size_t k = 0; k < plan_.stages.size(); ++k) {
    const Plan::Stage& st = plan_.stages[k];
    const bool last = k + 1 == plan_.stages.size();
    const SpatialOp* pool = last ? nullptr : &plan_.spatial[static_cast<std::size_t>(st.end)];
    // The offsets this run needs: what the output needs, or (records_only) what the later pixel
    // variances need; no pool into a stage that then needs nothing.
    const int dlo = records_only ? st.rec_dlo : st.dlo, dhi = records_only ? st.rec_dhi : st.dhi;
    const int elo = records_only ? st.rec_elo : st.elo, ehi = records_only ? st.rec_ehi : st.ehi;
    if (dlo > dhi) break;
    if (records_only && pool && plan_.stages[k + 1].rec_dlo > plan_.stages[k + 1].rec_dhi) pool = nullptr;
    if (pool && !st.slab) {  // stage_slabs zeroes its own
      const std::size_t n = static_cast<std::size_t>(pool->ph.n_out) * pool->pw.n_out;
      std::fill(next_s, next_s + n * n, 0.0);
      std::fill(next_t, next_t + n * n, 0.0);
    }
    const bool full = last && full_s;
    if (full) {
      std::fill(full_s, full_s + m * m, 0.0);
      std::fill(full_t, full_t + m * m, 0.0);
    }
    const bool half = self && !full;
    if (st.slab) {
      const auto sums = stage_slabs(st, dlo, dhi, pool, src, r1, r2, self, half, rec, ws, full ? full_s : nullptr,
                                    full ? full_t : nullptr, next_s, next_t);
      sum_s += sums.first;
      sum_t += sums.second;
    } else
    // Offset 0 first (it records the variances the other slices' activations read), then the rest.
    for (int idx = -1; idx < (dhi - dlo + 1) * (ehi - elo + 1); ++idx) {
      int d = 0, e = 0;
      if (idx >= 0) {
        d = dlo + idx / (ehi - elo + 1);
        e = elo + idx % (ehi - elo + 1);
        if (d == 0 && e == 0) continue;
      }
      double weight = 1.0;
      if (half) {  // slice (d, e) stands for its mirror (−d, −e) too
        const int md = circ ? (st.h - d) % st.h : -d, me = circ ? (st.w - e) % st.w : -e;
        if (d > md || (d == md && e > me)) continue;
        weight = (d == md && e == me) ? 1.0 : 2.0;
      }
      const double* S = nullptr;
      const double* T = nullptr;
      if (!run_slice(st, d, e, src, r1, r2, self, rec, ws, &S, &T)) continue;
      if (pool) {
        pool_slice(S, T, ws, d, e, circ, *pool, weight == 2.0, next_s, next_t);
        continue;
      }
      double ss = 0, stt = 0;
      const int width = ws.out_cols_hi - ws.out_cols_lo;
      for (int h1 = ws.out_rows_lo; h1 < ws.out_rows_hi; ++h1) {
        const double* srow = S + (h1 - ws.out_rows_lo) * width;
        const double* trow = T + (h1 - ws.out_rows_lo) * width;
        for (int c = 0; c < width; ++c) {
          ss += srow[c];
          stt += trow[c];
        }
        if (full) {
          const int h2 = wrap(h1 - d, Ho, circ);
          for (int w1 = ws.out_cols_lo; w1 < ws.out_cols_hi; ++w1) {
            const int w2 = wrap(w1 - e, Wo, circ);
            const std::size_t at = (static_cast<std::size_t>(h1) * Wo + w1) * m + static_cast<std::size_t>(h2) * Wo + w2;
            full_s[at] = srow[w1 - ws.out_cols_lo];
            full_t[at] = trow[w1 - ws.out_cols_lo];
          }
        }
      }
      sum_s += weight * ss;
      sum_t += weight * stt;
    }
    if (pool) {
      std::swap(cur_s, next_s);
      std::swap(cur_t, next_t);
      src.s = cur_s;
      src.t = cur_t;
      src.scale = pool->pool_scale;
    }
  }
  return {sum_s, sum_t};
}

std::pair<double, double> Engine::tail_pair(Eigen::Index p1, Eigen::Index p2, double s, double t) const {
  for (const auto& op : plan_.tail) {
    if (op.kind == OpKind::Affine) {
      s = op.w2 * s + op.b2;
      t = s + op.w2 * t;
    } else {
      if (same_point(p1, p2)) s = record(p1)[op.q_offset];
      const DualValue v = plan_.duals[op.dual](record(p1)[op.q_offset], record(p2)[op.q_offset], s);
      s = v.nngp;
      t *= v.ntk_scale;
    }
  }
  return {s, t};
}

}  // namespace emergent::detail
