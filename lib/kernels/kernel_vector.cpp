// The vector path of the kernel engine (MLPs, and CNN specs that start with flatten/gap):
// Σ⁰ = x·x'/d from packed Gram tiles (lib/detail/packed_gram.hpp), then the scalar recursion of
// docs/conventions.md §2 per entry (Lee et al. 2018 Eq. 4, Jacot et al. 2018 Thm. 1).
#include "kernels/kernel_engine.hpp"

#include <omp.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include "detail/packed_gram.hpp"
#include "detail/parallel.hpp"

namespace emergent::detail {

std::size_t Engine::reduced_features() const {
  if (plan_.reduce_gap) return static_cast<std::size_t>(plan_.in_c);
  return static_cast<std::size_t>(x1_.shape.size());
}

RowMatrix Engine::reduce(const Inputs& in) const {
  if (!plan_.reduce_gap) return in.x;  // vectors, or flatten: the same numbers
  const int P = plan_.in_h * plan_.in_w, C = plan_.in_c;
  RowMatrix r = RowMatrix::Zero(in.count(), C);
  for (Eigen::Index i = 0; i < in.count(); ++i)
    for (int p = 0; p < P; ++p)
      for (int c = 0; c < C; ++c) r(i, c) += in.x(i, p * C + c);
  return r / P;
}

// Scalar recursion over a tile: s holds the GEMM's x·x' on entry (divided by `d` here), t is set
// to 0; both hold the output on exit. Row by row through every layer, so a row (cols ≤
// kTileCols doubles of each) stays in L1 from Σ⁰ to the readout; every entry sees the same
// operations in the same order as a layer-by-layer pass over the tile would apply.
void Engine::tail_tile(double* s, double* t, std::size_t rows, std::size_t cols, std::size_t ld, const Eigen::Index* p1,
               const Eigen::Index* p2, double d) const {
  // When every point of the tile is its own identity (no bitwise duplicates), a point meets
  // itself only where the ids agree, at c = p1[r] − p2[0] (a tile's ids are consecutive): no
  // compare per entry, which took three quarters of this function.
  bool unique = true;
  for (std::size_t r = 0; r < rows; ++r) unique &= identity_[static_cast<std::size_t>(p1[r])] == p1[r];
  for (std::size_t c = 0; c < cols; ++c) unique &= identity_[static_cast<std::size_t>(p2[c])] == p2[c];
  // The second points' variances, per activation layer (no allocation per tile once grown).
  thread_local std::vector<double> q2;
  q2.resize(plan_.tail.size() * cols);
  for (std::size_t k = 0; k < plan_.tail.size(); ++k)
    if (plan_.tail[k].kind != OpKind::Affine)
      for (std::size_t c = 0; c < cols; ++c) q2[k * cols + c] = record(p2[c])[plan_.tail[k].q_offset];
  for (std::size_t r = 0; r < rows; ++r) {
    double* sr = s + r * ld;
    double* tr = t + r * ld;
    std::size_t first = 0;
    if (!plan_.tail.empty() && plan_.tail[0].kind == OpKind::Affine) {
      // Σ⁰ = s/d, Θ⁰ = 0 and the first affine layer in one pass (the same operations per entry).
      const auto& op = plan_.tail[0];
      for (std::size_t c = 0; c < cols; ++c) {
        const double sv = op.w2 * (sr[c] / d) + op.b2;
        sr[c] = sv;
        tr[c] = sv + op.w2 * 0.0;
      }
      first = 1;
    } else {
      for (std::size_t c = 0; c < cols; ++c) sr[c] /= d;
      std::fill(tr, tr + cols, 0.0);
    }
    for (std::size_t k = first; k < plan_.tail.size(); ++k) {
      const auto& op = plan_.tail[k];
      if (op.kind == OpKind::Affine) {
        for (std::size_t c = 0; c < cols; ++c) {
          const double sv = op.w2 * sr[c] + op.b2;
          sr[c] = sv;
          tr[c] = sv + op.w2 * tr[c];
        }
        continue;
      }
      const double q1 = record(p1[r])[op.q_offset];
      // A point paired with itself is exactly collinear: use its variance, not the
      // GEMM's covariance, which may differ in the last bit and would cost √ε in θ.
      if (unique) {
        const Eigen::Index c = p1[r] - p2[0];
        if (c >= 0 && static_cast<std::size_t>(c) < cols && p2[c] == p1[r]) sr[static_cast<std::size_t>(c)] = q1;
      } else {
        for (std::size_t c = 0; c < cols; ++c)
          if (same_point(p1[r], p2[c])) sr[c] = q1;
      }
      plan_.duals[op.dual].apply(cols, &q1, 0, q2.data() + k * cols, 1, sr, tr);
    }
  }
}

// Rows of x1/x2 rounded up to whole tiles.
Eigen::Index Engine::padded_rows(Eigen::Index n) {
  const Eigen::Index t = static_cast<Eigen::Index>(kTile);
  return (n + t - 1) / t * t;
}

// The reduced inputs packed for the Σ⁰ tiles (lib/detail/packed_gram.hpp), and each row's
// squared norm (its Σ⁰(x, x)·d, from which the records start).
PackedRows Engine::packed_reduced(const Inputs& in, std::vector<double>& squared_norms) const {
  const RowMatrix reduced = plan_.reduce_gap ? reduce(in) : RowMatrix();
  const RowMatrix& x = plan_.reduce_gap ? reduced : in.x;  // vectors, or flatten: no copy
  squared_norms.resize(static_cast<std::size_t>(x.rows()));
  for (Eigen::Index i = 0; i < x.rows(); ++i) squared_norms[static_cast<std::size_t>(i)] = x.row(i).squaredNorm();
  return PackedRows(x.data(), x.rows(), x.cols(), x.cols(), threads_);
}

void Engine::prepare_vector() {
  std::vector<double> norms1, norms2;
  a_ = packed_reduced(x1_, norms1);
  if (!symmetric_) b_ = packed_reduced(x2_, norms2);
  const double d = static_cast<double>(a_.cols());
  records_.assign(static_cast<std::size_t>(point_count()) * plan_.record, 0.0);
  for (Eigen::Index i = 0; i < point_count(); ++i) {
    const double q = (i < n1_ ? norms1[static_cast<std::size_t>(i)] : norms2[static_cast<std::size_t>(i - n1_)]) / d;
    tail_diagonal(q, records_.data() + static_cast<std::size_t>(i) * plan_.record);
  }
  ids1_.resize(static_cast<std::size_t>(n1_));
  ids2_.resize(static_cast<std::size_t>(n2_));
  for (Eigen::Index i = 0; i < n1_; ++i) ids1_[i] = i;
  for (Eigen::Index j = 0; j < n2_; ++j) ids2_[j] = second(j);
}

// Tile (bi, j0): Σ and Θ of rows bi·kTile.. of x1 against rows j0.. of x2 (j0 on the tile grid,
// at most kTileCols), row-major in s and t (leading dimension tile_ld()); returns the
// tile's true extent.
std::pair<Eigen::Index, Eigen::Index> Engine::vector_tile(Eigen::Index bi, Eigen::Index j0, double* s, double* t) const {
  const Eigen::Index T = static_cast<Eigen::Index>(kTile), W = static_cast<Eigen::Index>(kTileCols);
  const PackedRows& bb = symmetric_ ? a_ : b_;
  const Eigen::Index i0 = bi * T, k = a_.cols(), ld = tile_ld();
  const Eigen::Index r = std::min(T, n1_ - i0), c = std::min(W, n2_ - j0);
  packed_gram_tile(a_, i0, r, bb, j0, c, s, ld);
  tail_tile(s, t, static_cast<std::size_t>(r), static_cast<std::size_t>(c), static_cast<std::size_t>(ld), ids1_.data() + i0,
            ids2_.data() + j0, static_cast<double>(k));
  return {r, c};
}

// The tiles of row block bi: kTile rows by up to kTileCols columns, from column bi·kTile
// (symmetric: the upper part) or 0 on; a function of the sizes alone, never of the bands, the
// cap or the thread count (an entry's bits would not depend on it anyway: packed_gram.hpp).
std::vector<Eigen::Index> Engine::tile_columns(Eigen::Index bi) const {
  const Eigen::Index T = static_cast<Eigen::Index>(kTile), W = static_cast<Eigen::Index>(kTileCols);
  std::vector<Eigen::Index> starts;
  for (Eigen::Index j0 = symmetric_ ? bi * T : 0; j0 < n2_; j0 += W) starts.push_back(j0);
  return starts;
}

// The tiles covering rows [r0, r0 + rows) (tile_columns), computed in
// parallel into per-thread kTile × kTileCols buffers and handed to `use` with their extent (r, c);
// `progress(done, total)` from the calling thread, entries counted by the tiles' extents. The
// one loop of run_vector, vector_tiles_into and the buffered bands of stream_vector: they differ
// only in where a finished tile goes.
void Engine::for_each_vector_tile(Eigen::Index r0, Eigen::Index rows, const VectorTileUse& use,
                                  const std::function<void(std::size_t, std::size_t)>& progress,
                                  const std::function<void(Eigen::Index)>& rows_final) {
  const Eigen::Index T = static_cast<Eigen::Index>(kTile), W = static_cast<Eigen::Index>(kTileCols);
  const Eigen::Index ld = tile_ld();
  std::vector<std::pair<Eigen::Index, Eigen::Index>> tiles;
  std::size_t total = 0;
  for (Eigen::Index bi = r0 / T; bi * T < r0 + rows; ++bi)
    for (const Eigen::Index j0 : tile_columns(bi)) {
      tiles.emplace_back(bi, j0);
      total += static_cast<std::size_t>(std::min(T, n1_ - bi * T) * std::min(W, n2_ - j0));
    }
  blocks_ += tiles.size();
  // Tiles still to finish per row block of the band: the row blocks whose count (and that of
  // every block above them) reached 0 are final, since a symmetric tile's mirror image lands in
  // rows below its own.
  const Eigen::Index first_block = r0 / T, row_blocks = (r0 + rows + T - 1) / T - first_block;
  std::vector<std::atomic<int>> pending(static_cast<std::size_t>(row_blocks));
  for (const auto& tile : tiles) pending[static_cast<std::size_t>(tile.first - first_block)].fetch_add(1);
  Eigen::Index final_blocks = 0;
  std::atomic<std::size_t> done{0};
  ProgressThrottle throttle;
  detail::ParallelErrors errors;
#pragma omp parallel num_threads(threads_)
  {
    RowMatrix s(T, ld), t(T, ld);
#pragma omp for schedule(dynamic, 1)
    for (std::size_t k = 0; k < tiles.size(); ++k) {
      errors.run(static_cast<long long>(k), [&] {
        const auto [bi, j0] = tiles[k];
        const auto [r, c] = vector_tile(bi, j0, s.data(), t.data());
        use(bi * T, j0, r, c, s, t);
        pending[static_cast<std::size_t>(bi - first_block)].fetch_sub(1, std::memory_order_release);
        done += static_cast<std::size_t>(r * c);
        if (rows_final && omp_get_thread_num() == 0) {
          const Eigen::Index before = final_blocks;
          while (final_blocks < row_blocks &&
                 pending[static_cast<std::size_t>(final_blocks)].load(std::memory_order_acquire) == 0)
            ++final_blocks;
          if (final_blocks > before) rows_final(std::min(r0 + rows, (first_block + final_blocks) * T));
        }
        if (progress && throttle.due()) progress(done.load(), total);
      });
    }
  }
  errors.rethrow();
  // Thread 0 only announces the blocks it saw finished; those another thread finished last are
  // announced here, so every row of the band is reported final before the band is written.
  if (rows_final && final_blocks < row_blocks) rows_final(r0 + rows);
}

namespace {

// The outputs' rows are written once and not read again here: whole aligned 64-byte lines are
// stored around the cache (no read for ownership of lines about to be overwritten, no eviction
// of the tiles in L2); written_lines_fence() orders them before the tile is reported done.
#if defined(__AVX512F__)
inline void write_line(double* to, __m512d v) {
  if (reinterpret_cast<std::uintptr_t>(to) % 64 == 0) _mm512_stream_pd(to, v);
  else _mm512_storeu_pd(to, v);
}
#endif

void write_row(double* to, const double* from, Eigen::Index n) {
#if defined(__AVX512F__)
  Eigen::Index k = 0;
  for (; k < n && reinterpret_cast<std::uintptr_t>(to + k) % 64 != 0; ++k) to[k] = from[k];
  for (; k + 8 <= n; k += 8) _mm512_stream_pd(to + k, _mm512_loadu_pd(from + k));
  for (; k < n; ++k) to[k] = from[k];
#else
  std::copy_n(from, n, to);
#endif
}

// to[l·ld + m] = from[m·ld_from + l] for l, m < 8.
void write_transposed_8x8(double* to, std::size_t ld, const double* from, std::size_t ld_from) {
#if defined(__AVX512F__)
  __m512d r[8], t[8];
  for (int m = 0; m < 8; ++m) r[m] = _mm512_loadu_pd(from + m * ld_from);
  for (int m = 0; m < 8; m += 2) {
    t[m] = _mm512_unpacklo_pd(r[m], r[m + 1]);      // columns 0 2 4 6 of rows m, m + 1
    t[m + 1] = _mm512_unpackhi_pd(r[m], r[m + 1]);  // columns 1 3 5 7
  }
  for (int odd = 0; odd < 2; ++odd) {
    const __m512d lo01 = _mm512_shuffle_f64x2(t[odd], t[2 + odd], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512d hi01 = _mm512_shuffle_f64x2(t[odd], t[2 + odd], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512d lo45 = _mm512_shuffle_f64x2(t[4 + odd], t[6 + odd], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512d hi45 = _mm512_shuffle_f64x2(t[4 + odd], t[6 + odd], _MM_SHUFFLE(3, 1, 3, 1));
    write_line(to + static_cast<std::size_t>(0 + odd) * ld, _mm512_shuffle_f64x2(lo01, lo45, _MM_SHUFFLE(2, 0, 2, 0)));
    write_line(to + static_cast<std::size_t>(4 + odd) * ld, _mm512_shuffle_f64x2(lo01, lo45, _MM_SHUFFLE(3, 1, 3, 1)));
    write_line(to + static_cast<std::size_t>(2 + odd) * ld, _mm512_shuffle_f64x2(hi01, hi45, _MM_SHUFFLE(2, 0, 2, 0)));
    write_line(to + static_cast<std::size_t>(6 + odd) * ld, _mm512_shuffle_f64x2(hi01, hi45, _MM_SHUFFLE(3, 1, 3, 1)));
  }
#else
  for (std::size_t l = 0; l < 8; ++l)
    for (std::size_t m = 0; m < 8; ++m) to[l * ld + m] = from[m * ld_from + l];
#endif
}

void written_lines_fence() {
#if defined(__AVX512F__)
  _mm_sfence();
#endif
}

}  // namespace

// Tiles of rows [r0, r0 + rows) straight into row-major n1 × n2 matrices (leading dimension
// n2; either may be null): each tile, and for a symmetric kernel also its mirror image below the
// diagonal, written while it is in cache. The band's rows from column r0 on (all columns if not
// symmetric) and, symmetric, the strip below it (rows r0 + rows.., columns r0..r0 + rows) are
// then complete. `check`: a non-finite entry throws (nothing of the band is trusted).
void Engine::vector_tiles_into(Eigen::Index r0, Eigen::Index rows, double* nngp, double* ntk, bool check,
                               const std::function<void(std::size_t, std::size_t)>& progress,
                               const std::function<void(Eigen::Index)>& rows_final) {
  const std::size_t ld = static_cast<std::size_t>(n2_);
  const Eigen::Index W = tile_ld();
  for_each_vector_tile(r0, rows, [&](Eigen::Index ti, Eigen::Index tj, Eigen::Index r, Eigen::Index c,
                                     RowMatrix& s, RowMatrix& t) {
    const std::size_t i0 = static_cast<std::size_t>(ti), j0 = static_cast<std::size_t>(tj);
    // A symmetric tile starting on the diagonal: the lower triangle of its first kTile columns
    // mirrors the upper one; the mirror images below go to columns from kTile on.
    const Eigen::Index mirror_from = symmetric_ && i0 == j0 ? std::min<Eigen::Index>(r, c) : 0;
    if (mirror_from > 0)
      for (Eigen::Index x = 0; x < r; ++x)
        for (Eigen::Index y = 0; y < x; ++y) s(x, y) = s(y, x), t(x, y) = t(y, x);
    if (check) {
      bool finite = true;
      for (Eigen::Index x = 0; x < r; ++x)
        for (Eigen::Index y = 0; y < c; ++y) finite &= std::isfinite(s(x, y)) & std::isfinite(t(x, y));
      if (!finite)
        throw std::runtime_error("kernel: a non-finite value in rows " + std::to_string(i0) + ".." +
                                 std::to_string(i0 + static_cast<std::size_t>(r) - 1) +
                                 " (numerical failure; nothing trusted)");
    }
    for (const auto& [tile, out] : {std::pair<const RowMatrix*, double*>{&s, nngp}, {&t, ntk}}) {
      if (!out) continue;
      for (Eigen::Index x = 0; x < r; ++x) write_row(out + (i0 + x) * ld + j0, tile->data() + x * W, c);
      if (symmetric_)  // the mirror tile, in 8 × 8 blocks: a column of the tile is W doubles apart
        for (Eigen::Index y = mirror_from; y < c; y += 8) {
          const Eigen::Index yl = std::min<Eigen::Index>(8, c - y);
          for (Eigen::Index x0 = 0; x0 < r; x0 += 8) {
            const Eigen::Index xl = std::min<Eigen::Index>(8, r - x0);
            const double* from = tile->data() + x0 * W + y;
            double* to = out + (j0 + static_cast<std::size_t>(y)) * ld + i0 + static_cast<std::size_t>(x0);
            if (xl == 8 && yl == 8) {
              write_transposed_8x8(to, ld, from, static_cast<std::size_t>(W));
              continue;
            }
            for (Eigen::Index l = 0; l < yl; ++l)
              for (Eigen::Index m = 0; m < xl; ++m) to[static_cast<std::size_t>(l) * ld + m] = from[m * W + l];
          }
        }
    }
    written_lines_fence();
  }, progress, rows_final);
}

void Engine::run_vector(Eigen::MatrixXd& nngp, Eigen::MatrixXd& ntk) {
  prepare_vector();
  if (symmetric_) {
    // Column-major storage of a symmetric matrix is its row-major storage: the tiles go straight
    // in, each with its mirror image.
    vector_tiles_into(0, n1_, nngp.data(), ntk.data(), false, {});
    return;
  }
  for_each_vector_tile(0, n1_, [&](Eigen::Index i0, Eigen::Index j0, Eigen::Index r, Eigen::Index c,
                                   RowMatrix& s, RowMatrix& t) {
    nngp.block(i0, j0, r, c) = s.topLeftCorner(r, c);
    ntk.block(i0, j0, r, c) = t.topLeftCorner(r, c);
  }, {});
}

// Band by band into `sink` (stream_kernels); the same tiles as run_vector.
KernelSummary Engine::stream_vector(KernelBandSink& sink) {
  const auto start = std::chrono::steady_clock::now();
  prepare_vector();
  const Eigen::Index W = tile_ld();
  const Eigen::Index band_rows = static_cast<Eigen::Index>(band_rows_);
  const Eigen::Index bands = (n1_ + band_rows - 1) / band_rows;
  KernelBandLayout layout;
  layout.n1 = n1_;
  layout.n2 = n2_;
  layout.symmetric = symmetric_;
  layout.band_rows = band_rows;
  sink.start(layout);
  if (const KernelOutputMatrices direct = sink.direct_output(layout); direct.direct) {
    // Straight into the sink's matrices: no band buffer, no copy, the mirror tiles written from cache.
    for (Eigen::Index band = 0; band < bands; ++band) {
      if (!sink.wanted(band)) continue;
      const Eigen::Index r0 = band * band_rows, rows = std::min(band_rows, n1_ - r0);
      vector_tiles_into(r0, rows, direct.nngp, direct.ntk, true,
                        [&](std::size_t done, std::size_t total) { sink.progress(band, done, total); },
                        [&](Eigen::Index rows_end) { sink.rows_final(band, rows_end); });
      KernelBand out;
      out.index = band;
      out.row_begin = r0;
      out.rows = rows;
      out.col_begin = symmetric_ ? r0 : 0;
      out.cols = n2_ - out.col_begin;
      out.in_place = true;
      sink.write(out);
    }
    return summary(start);
  }
  std::vector<double> nngp, ntk;
  for (Eigen::Index band = 0; band < bands; ++band) {
    if (!sink.wanted(band)) continue;
    const Eigen::Index r0 = band * band_rows, rows = std::min(band_rows, n1_ - r0);
    const Eigen::Index c0 = symmetric_ ? r0 : 0, cols = n2_ - c0;
    nngp.assign(static_cast<std::size_t>(rows * cols), 0.0);
    ntk.assign(nngp.size(), 0.0);
    for_each_vector_tile(r0, rows, [&](Eigen::Index ti, Eigen::Index tj, Eigen::Index r, Eigen::Index c,
                                       RowMatrix& s, RowMatrix& t) {
      const Eigen::Index i = ti - r0, j = tj - c0;
      for (Eigen::Index x = 0; x < r; ++x) {
        std::copy_n(s.data() + x * W, c, nngp.data() + (i + x) * cols + j);
        std::copy_n(t.data() + x * W, c, ntk.data() + (i + x) * cols + j);
      }
    }, [&](std::size_t done, std::size_t total) { sink.progress(band, done, total); });
    if (symmetric_)  // the band's part left of the diagonal mirrors its upper part, as run_vector does
      for (Eigen::Index x = 0; x < rows; ++x)
        for (Eigen::Index y = 0; y < x; ++y) {
          nngp[x * cols + y] = nngp[y * cols + x];
          ntk[x * cols + y] = ntk[y * cols + x];
        }
    KernelBand out;
    out.index = band;
    out.row_begin = r0;
    out.rows = rows;
    out.col_begin = c0;
    out.cols = cols;
    out.nngp = nngp.data();
    out.ntk = ntk.data();
    sink.write(out);
  }
  return summary(start);
}

}  // namespace emergent::detail
