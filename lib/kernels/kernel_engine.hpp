// The analytic kernel engine behind kernels(), spatial_kernels() and stream_kernels()
// (include/emergent/kernels/kernel.hpp). Internal, never installed.
//
// Three paths, chosen from the architecture:
//  * "vector"          — MLPs (and CNN specs that start with flatten/gap): Σ⁰ = x·x'/d from a
//                        GEMM per tile, then a scalar recursion per entry (Lee et al. 2018 Eq. 4,
//                        Jacot et al. 2018 Thm. 1).
//  * "pixel-diagonal"  — convolutions followed by flatten: a conv couples pixel pair (a, b) only
//                        to (a+s, b+s), so the offset a−b is conserved and a flatten readout needs
//                        only the P diagonal pairs (Novak et al. 2019, Sec. 3; Arora et al. 2019).
//  * "pixel-pairs"     — convolutions followed by gap, or no readout: all P² pixel pairs
//                        (Novak et al. 2019 Eq. 7; Garriga-Alonso et al. 2019).
// The conv window sum is separable: one pass along H, one along W, O(FH+FW) per entry.
// Every Gram entry is computed by one thread from its inputs alone, and the input Gram Σ⁰ of the
// vector path in GEMM tiles whose every entry is one fused multiply-add chain in a fixed k order
// (lib/detail/packed_gram.hpp), so results depend neither on the thread count nor on the memory cap.
//
// The engine's methods live in four files by concept: kernel_engine.cpp (validation, memory
// plan, per-point identities), kernel_vector.cpp (the vector path and its bands),
// kernel_pixels.cpp (the pixel-pair paths) and kernel_diagonal.cpp (the pixel-diagonal path).
#pragma once

#include <chrono>
#include <cstddef>
#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include <omp.h>

#include "emergent/kernels/kernel.hpp"
#include "detail/packed_gram.hpp"
#include "kernels/kernel_plan.hpp"

namespace emergent::detail {

// Progress of a parallel loop, reported from the calling thread (OpenMP thread 0) at most every
// 250 ms, so a callback never runs concurrently with itself and never floods stderr.
class ProgressThrottle {
 public:
  bool due() {
    if (omp_get_thread_num() != 0) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ <= std::chrono::milliseconds(250)) return false;
    last_ = now;
    return true;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

// Per-thread scratch for one pixel-pair computation.
struct Workspace {
  std::vector<double> s, t, s2, t2, tmp;
  explicit Workspace(std::size_t n) : s(n), t(n), s2(n), t2(n), tmp(n) {}
};

// Per-thread scratch for the offset slices of the pixel-pair path: two layers of Σ and Θ on one
// slice (at most rows × ld doubles each, stored compactly), the packed pixel variances of the
// two points and the two rows of the separable window sum.
// With avgpools, also Σ and Θ on all pixel pairs of the current stage's input map and of the next
// one (`coarse` doubles each: the maps after the first pool).
struct SliceWorkspace {
  int rows = 0, ld = 0, pad = 0;
  int out_rows_lo = 0, out_rows_hi = 0, out_cols_lo = 0, out_cols_hi = 0;  // the last slice's extent
  int out_h = 0, out_w = 0;                                                // and its map size
  std::vector<double> s, t, s2, t2, q1, q2, hs, ht;
  std::vector<double> cs, ct, ns, nt;
  std::vector<std::ptrdiff_t> dest, mirror;  // per column of a slice: where the pool adds it
  // Row slabs (run_slab): Σ and Θ (updated in place), one row of the H pass for each (with
  // guard entries), the packed variances of one row and the pool's window runs of one row.
  std::vector<double> bs, bt, bh, bg, bq1, bq2;
  std::vector<std::ptrdiff_t> bdest;
  std::vector<char> fresh;  // per coarse block: not yet visited by the pool of this stage (stage_slabs)
  std::vector<double> yt;  // the second point's inputs channel-major per row ([h][c][w]) for Σ⁰ (slab_inputs)
  const double* yt_of = nullptr;  // the inputs yt holds
  std::size_t slab_pads = 0, slab_pad_rows = 0;  // rows [0, slab_pad_rows) of bs and bt have zero pads for rows of R = slab_pads
  // Ring blocks (run_ring): Σ and Θ of one row offset (two layers each), the rotated variances
  // of the second point and the H-pass rows (Plan::ring_doubles).
  std::vector<double> ring;
  SliceWorkspace(int rows_, int ld_, int pad_, std::size_t coarse = 0, std::size_t slab = 0, std::size_t slab_row = 0)
      : rows(rows_), ld(ld_), pad(pad_), s(std::size_t(rows_) * ld_), t(s.size()), s2(s.size()), t2(s.size()),
        q1(s.size()), q2(s.size()), hs(std::size_t(ld_) + 2 * pad_), ht(hs.size()), cs(coarse), ct(coarse),
        ns(coarse), nt(coarse), dest(coarse ? ld_ : 0), mirror(dest.size()), bs(slab), bt(slab),
        bh(slab_row ? 3 * slab_row + 128 : 0), bg(bh.size()), bq1(slab_row),
        bq2(slab_row), bdest(coarse ? slab_row : 0) {}
};

// Per-thread scratch of the pixel-diagonal path (kernel_diagonal.cpp): one point x_i against a
// group of 8 partner points x_j, the partners in the lanes. Every map row is pixel-major with the
// 8 lanes innermost ([pixel][8]) and `halo` pixels of zeros on either side, so a conv window sum
// is aligned vector adds of neighbouring pixels.
//  * Rows route (no circular conv): the levels — Σ⁰, then the map after each conv and the
//    activations after it — are made row by row in a fixed order (steps), each level keeping only the rows
//    its consumer conv reads (a ring of FH rows), so everything stays in L1.
//  * Maps route (a circular conv): whole maps with a ring of `halo` pixels around them, zeros or
//    the wrapped map; pixel (h, w) at ((h + halo)·ld + w + halo)·8.
struct DiagonalWorkspace {
  static constexpr int kLanes = 8;
  struct Level {
    int conv = -1;                  // the conv op that makes it (−1: Σ⁰ of the inputs)
    int acts_begin = 0, acts_end = 0;  // the activation ops applied after it, row by row
    int h = 0, w = 0, cap = 1;      // map size; rows kept (the next conv's FH)
    double* s = nullptr;            // cap rows of Σ and Θ, ld·8 doubles each
    double* t = nullptr;
    bool scaled = false;            // rows hold Σ/λ and Θ/λ (a 3×3 conv + one ReLU-family activation)
    double lambda = 1.0;            // λ: what the consumer (next conv, readout) multiplies the rows by
    double inv_mu = 1.0, kappa = 0.0;  // scaled: 1/λ and κ of dual_lanes_rinv
  };
  int halo = 0, ld = 0, rows = 0, taps = 1;
  bool rows_route = true;
  std::vector<Level> levels;
  std::vector<std::pair<int, int>> steps;  // rows route: (level, row) in the order they are made
  // The steps again with what their rows read and write, made once (kernel_diagonal.cpp,
  // RowPipeline::run_steps; empty without AVX-512 or on the maps route). Pointers into `store`:
  // the workspace is moved, never copied.
  struct ScaledStep {
    const double* in_s[3];  // the three input rows of Σ/λ and Θ/λ from column −1 (kind 1: of x_i and of the group)
    const double* in_t[3];
    double* so;             // the output row (column 0)
    double* to;
    std::size_t q0;         // the row's first pixel in the level's part of a record
    int level, n;           // level and row width
    int kind;               // 0: a scaled level's row (Θ, covariances ≥ 0), 1: from the inputs (products), 2: from Σ⁰ rows (Θ⁰ = 0), −1: not scaled
    bool last;              // a row of the last level (the readout sums it)
  };
  std::vector<ScaledStep> scaled_steps;
  // Rows route, one input channel, the first conv scaled (3×3 + one ReLU-family activation, no
  // activation on Σ⁰): its column sums are made from the inputs, x_a·x'_a, without Σ⁰ rows.
  bool products = false;
  int xld = 0;           // products: the columns of a row of xp and xi (in_w + 2·halo)
  double* xp = nullptr;  // products: the group's inputs with a zero halo, [row][column][8]
  double* xi = nullptr;  // products: x_i's inputs with a zero halo, [row][column]
  std::vector<double> store;  // one allocation, 64-byte aligned views below
  double* s[2] = {nullptr, nullptr};  // maps route: Σ of the current and the next map
  double* t[2] = {nullptr, nullptr};  // Θ
  int ring_s[2][2] = {{-1, -1}, {-1, -1}}, ring_t[2][2] = {{-1, -1}, {-1, -1}};  // map whose zero ring each holds
  double* zero = nullptr;  // rows route: a row of zeros (rows above and below a map)
  double* hs = nullptr;    // one row of the H pass of Σ and of Θ
  double* ht = nullptr;
  double* x = nullptr;  // the group's inputs, [pixel][channel][8]
  double* q = nullptr;  // the group's records (pixel variances), [record entry][8]
  double* rq = nullptr; // 1/√q of the group's records, [record entry][8]
  std::vector<const double*> taps_s, taps_t;  // the rows one output row reads
  Eigen::Index group = -1;  // first partner column j of the group in x and q (−1: none yet)
  int lanes = 0;            // partners in the group (the others are zero images with unit variances)
  bool bounded = false;     // all of the group's variances in [1e-139, 1e139] (kernel_diagonal.cpp)
  explicit DiagonalWorkspace(const Plan& plan);
  DiagonalWorkspace(const DiagonalWorkspace&) = delete;  // the views above point into `store`
  DiagonalWorkspace& operator=(const DiagonalWorkspace&) = delete;
  DiagonalWorkspace(DiagonalWorkspace&&) = default;  // a moved vector keeps its buffer
  static std::size_t doubles(const Plan& plan);
};

// Where the pixel-diagonal path writes entry (i, j): (i − r0)·row_step + (j − c0)·col_step, and
// when `mirror`, also (j − r0)·row_step + (i − c0)·col_step (a symmetric Gram matrix in memory).
struct DiagonalOutput {
  double* nngp = nullptr;
  double* ntk = nullptr;
  Eigen::Index r0 = 0, c0 = 0;
  std::size_t row_step = 1, col_step = 1;
  bool mirror = false;
};

// Where a stage's slices start: the two inputs (Σ⁰ = x·x'/C, Θ⁰ = 0) or, after an avgpool,
// Σ and Θ on all pixel pairs of the stage's map, times `scale`: pair ((h1, w1), (h2, w2)) at
// ((h1·h + h2)·w + w1)·w + w2, so the pairs of one row pair are one contiguous block (the pool
// scatter adds whole blocks, the next stage reads them).
struct SliceSource {
  const double* x = nullptr;
  const double* y = nullptr;
  const double* s = nullptr;
  const double* t = nullptr;
  double scale = 1;
};

class Engine {
 public:
  Engine(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options, bool spatial,
         bool streamed = false);
  Kernels run_gram();
  SpatialKernels run_spatial();
  // Band by band into `sink` (stream_kernels); the same tiles as run_vector.
  KernelSummary stream_vector(KernelBandSink& sink);
  // Band by band into `sink` (stream_kernels, kernel_stream.cpp); the same entries as run_pixels.
  KernelSummary stream_pixels(KernelBandSink& sink);

 private:
  // --- memory plan, summary (kernel_engine.cpp) ---------------------------------------------
  void plan_memory();
  [[noreturn]] void refuse(std::size_t smallest_workspace) const;
  KernelSummary summary(std::chrono::steady_clock::time_point start) const;

  // --- per-point records ---------------------------------------------------------------------
  // For every point: the variances Σ(x,x) that each activation sees (per pixel for spatial
  // activations, a scalar for tail ones). Only the pixel diagonal is needed for them.
  const double* record(Eigen::Index point) const {
    return records_.data() + static_cast<std::size_t>(point) * plan_.record;
  }
  // Point index of row j of x2 (x2 rows follow x1 rows unless symmetric).
  Eigen::Index second(Eigen::Index j) const { return symmetric_ ? j : n1_ + j; }
  const double* row_of(Eigen::Index point) const {
    return point < n1_ ? x1_.x.row(point).data() : x2_.x.row(point - n1_).data();
  }
  Eigen::Index point_count() const { return symmetric_ ? n1_ : n1_ + n2_; }
  void identify_points();
  bool same_point(Eigen::Index a, Eigen::Index b) const {
    return identity_[static_cast<std::size_t>(a)] == identity_[static_cast<std::size_t>(b)];
  }
  void tail_diagonal(double q, double* rec) const;

  // --- vector path (kernel_vector.cpp) ---------------------------------------------------------
  std::size_t reduced_features() const;
  RowMatrix reduce(const Inputs& in) const;
  void tail_tile(double* s, double* t, std::size_t rows, std::size_t cols, std::size_t ld, const Eigen::Index* p1,
                 const Eigen::Index* p2, double d) const;
  static Eigen::Index padded_rows(Eigen::Index n);
  PackedRows packed_reduced(const Inputs& in, std::vector<double>& squared_norms) const;
  void prepare_vector();
  std::pair<Eigen::Index, Eigen::Index> vector_tile(Eigen::Index bi, Eigen::Index j0, double* s, double* t) const;
  std::vector<Eigen::Index> tile_columns(Eigen::Index bi) const;  // first columns of row block bi's tiles
  // Leading dimension of the per-thread tile buffers: no wider than the padded columns.
  Eigen::Index tile_ld() const { return std::min<Eigen::Index>(kTileCols, padded_rows(n2_)); }
  void run_vector(Eigen::MatrixXd& nngp, Eigen::MatrixXd& ntk);
  /// use(i0, j0, r, c, s, t): a finished tile, rows i0.. and columns j0.. of extent r × c, in s / t.
  using VectorTileUse = std::function<void(Eigen::Index, Eigen::Index, Eigen::Index, Eigen::Index, RowMatrix&, RowMatrix&)>;
  /// rows_final(e): rows r0 .. e − 1 are done (every tile of their row blocks, and of the row
  /// blocks above them in the band, has been used); from the calling thread, in increasing e,
  /// the last call with e = r0 + rows.
  void for_each_vector_tile(Eigen::Index r0, Eigen::Index rows, const VectorTileUse& use,
                            const std::function<void(std::size_t, std::size_t)>& progress,
                            const std::function<void(Eigen::Index)>& rows_final = {});
  void vector_tiles_into(Eigen::Index r0, Eigen::Index rows, double* nngp, double* ntk, bool check,
                         const std::function<void(std::size_t, std::size_t)>& progress,
                         const std::function<void(Eigen::Index)>& rows_final = {});

  // --- pixel paths (kernel_pixels.cpp) ---------------------------------------------------------
  double spatial_diagonal(const double* x, double* rec, std::vector<double>& a, std::vector<double>& b,
                          std::vector<double>& tmp) const;
  void compute_records();
  void input_pairs(const double* x, const double* y, double* s, bool diagonal) const;
  void spatial_pair(Eigen::Index p1, Eigen::Index p2, Workspace& ws, bool diagonal) const;
  std::pair<double, double> readout_pair(Eigen::Index p1, Eigen::Index p2, const Workspace& ws) const;
  void prepare_pixels();
  bool uses_slices() const;  // the offset-slice route of the pixel-pair path (not flatten)
  Workspace pixel_workspace() const;
  void pixel_entry(Eigen::Index i, Eigen::Index j, Workspace& ws, SliceWorkspace& sw, double* s, double* t) const;
  void run_pixels(double* nngp, double* ntk, std::size_t stride);
  SliceWorkspace slice_workspace() const;
  // Σ and Θ of the pair (p1, p2) summed over all output pixel pairs, slice by slice; with
  // `full_s`/`full_t` (m² doubles each) also every pixel pair, in the layout of spatial_pair.
  std::pair<double, double> pair_slices(Eigen::Index p1, Eigen::Index p2, SliceWorkspace& ws, double* full_s,
                                        double* full_t) const;
  // The same with avgpools, stage by stage (Plan::stages). With `rec` (a point with itself), the
  // offset-0 slice of every stage, run first, writes the pixel variances of its activations there;
  // `records_only` then runs only the offsets those need (Plan::Stage::rec_*) and the sums it
  // returns are not the Gram diagonal.
  std::pair<double, double> pair_stages(Eigen::Index p1, Eigen::Index p2, SliceWorkspace& ws, double* full_s,
                                        double* full_t, double* rec, bool records_only = false) const;
  // All offsets (d, ·) of one stage at once (Plan::Stage::slab); returns false if it vanishes.
  // Entry (h1, w1, w2) of the pair ((h1, w1), (h1 − d, w2)) sits at
  // (h1 − lo)·R + (w1 + pad)·L + w2 with L = w + pad, R = (w + 2·pad)·L; the pads are zero.
  bool run_slab(const Plan::Stage& stage, int d, const SliceSource& src, const double* r1, const double* r2,
                bool self, double* rec, SliceWorkspace& ws, double** s_out, double** t_out) const;
  // The inputs of slab d into ws.bs / ws.bt (Σ⁰ or the pooled kernels), and the zeros run_slab reads.
  void slab_inputs(const Plan::Stage& stage, int d, const SliceSource& src, bool theta_read, SliceWorkspace& ws) const;
  // Row offsets d ∈ [dlo, dhi] (offset 0 first) of one slab stage.
  std::pair<double, double> stage_slabs(const Plan::Stage& st, int dlo, int dhi, const SpatialOp* pool,
                                        const SliceSource& src, const double* r1, const double* r2, bool self,
                                        bool half, double* rec,
                                        SliceWorkspace& ws, double* full_s, double* full_t, double* next_s,
                                        double* next_t) const;
  // Circular maps (Plan::Stage::ring): all offsets (d, ·) of one row offset at once; returns Σ
  // and Θ summed over the block's output pairs and, with full_s/full_t, writes every pair.
  std::pair<double, double> run_ring(int d, const double* x, const double* r1, const double* D,
                                     bool self, SliceWorkspace& ws, double* full_s, double* full_t) const;
  std::size_t acts_in_ring() const {  // spatial activations (each has its reflected variance table)
    std::size_t n = 0;
    for (const auto& op : plan_.spatial) n += op.kind == OpKind::Activation ? 1 : 0;
    return n;
  }
  std::pair<double, double> pair_ring(Eigen::Index p1, Eigen::Index p2, SliceWorkspace& ws, double* full_s,
                                      double* full_t) const;
  // One offset slice (d, e) through one stage; returns false if it vanishes.
  bool run_slice(const Plan::Stage& stage, int d, int e, const SliceSource& src, const double* r1, const double* r2,
                 bool self, double* rec, SliceWorkspace& ws, const double** s_out, const double** t_out) const;
  std::pair<double, double> tail_pair(Eigen::Index p1, Eigen::Index p2, double s, double t) const;

  // --- pixel-diagonal path (kernel_diagonal.cpp) ---------------------------------------------
  // Flatten readouts without avgpools: only offset 0 (a == b) of the pixel pairs, which every conv
  // conserves. 8 partners x_j run in the lanes against one x_i, fused conv + dual in registers.
  bool uses_diagonal() const;
  DiagonalWorkspace diagonal_workspace() const;
  std::size_t diagonal_workspace_bytes() const;
  // The group of partners j0 .. j0 + lanes − 1 (columns of x2) into ws.x and ws.q.
  void diagonal_group(Eigen::Index j0, DiagonalWorkspace& ws) const;
  // Entries (i, j) for the lanes of ws's group: s[l], t[l] for l < ws.lanes; only the lanes in
  // `wanted` are guaranteed (the others may be skipped by the scalar fix-ups).
  void diagonal_entries(Eigen::Index i, unsigned wanted, DiagonalWorkspace& ws, double* s, double* t) const;
  // Rows [r0, r1) against columns [c0, n2) (symmetric: only j ≥ i), into `out`; progress(done,
  // total) from the calling thread. Returns the number of scheduling units.
  std::size_t diagonal_block(Eigen::Index r0, Eigen::Index r1, Eigen::Index c0, const DiagonalOutput& out,
                             const std::function<void(std::size_t, std::size_t)>& progress);


  // Σ⁰ GEMM tiles: kTile rows (bands start on this grid) by up to kTileCols columns on a grid
  // fixed by the sizes; an entry's arithmetic does not depend on the tiles (packed_gram.hpp).
  static constexpr std::size_t kTile = 64;
  static constexpr std::size_t kTileCols = 384;  // 16 micro-panels of packed_gram_tile
  static constexpr std::size_t kPixelBands = 64;  // streamed pixel paths: at least this many bands

  const Inputs& x1_;
  const Inputs& x2_;
  bool symmetric_;
  bool streamed_ = false;
  PackedRows a_, b_;  // reduced inputs packed for the Σ⁰ tiles (vector path)
  std::vector<Eigen::Index> ids1_, ids2_;
  std::size_t band_rows_ = 0;  // streamed: rows per band (fixed by the sizes and the cap)
  std::size_t requested_band_rows_ = 0;  // streamed: KernelOptions::band_rows (0: the engine's choice)
  Plan plan_;
  Eigen::Index n1_ = 0, n2_ = 0;
  int threads_ = 1;
  std::size_t cap_ = 0, output_bytes_ = 0, fixed_bytes_ = 0, per_thread_bytes_ = 0, peak_bytes_ = 0;
  std::size_t block_ = 0, blocks_ = 0;
  std::vector<double> records_;
  std::vector<std::pair<double, double>> self_sums_;  // avgpool plans: each point's own readout sums
  std::vector<Eigen::Index> identity_;  // per point: the first point with the same bits
  std::vector<unsigned char> bounded_;  // pixel-diagonal path: per point, all variances in [1e-139, 1e139]
  std::vector<double> rinv_;            // pixel-diagonal path: 1/√q of every record entry, per point
};

}  // namespace emergent::detail
