// Analytic NNGP and NTK kernels by the layer recursions of docs/conventions.md §2.
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
// vector path in fixed kTile × kTile GEMM tiles of zero-padded inputs (one single-threaded BLAS
// call each), so results depend neither on the thread count nor on the memory cap.
#include "emergent/kernels/kernel.hpp"
#include "emergent/kernels/activation_dual.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <limits>
#include <unordered_map>

#include "emergent/core/memory.hpp"
#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/parallel.hpp"
#include "detail/linear_algebra.hpp"

namespace emergent {
namespace {

// How a convolution reads one spatial axis: output index o and filter tap s read input index
// source[o*filter + s], or nothing (−1) where the padding supplies zeros.
struct Axis {
  int n_in = 0, n_out = 0, filter = 1;
  std::vector<int> source;
  // The same map as contiguous runs per tap: output out..out+len−1 reads input in..in+len−1.
  struct Run { int out, in, len; };
  std::vector<std::vector<Run>> runs;
};

Axis make_axis(int n_in, int filter, Padding padding) {
  Axis a;
  a.n_in = n_in;
  a.filter = filter;
  // 'same' and 'circular' pad (F−1)//2 before and the rest after (docs/conventions.md §2).
  const int before = padding == Padding::Valid ? 0 : (filter - 1) / 2;
  a.n_out = padding == Padding::Valid ? n_in - filter + 1 : n_in;
  a.source.resize(static_cast<std::size_t>(a.n_out) * filter);
  for (int o = 0; o < a.n_out; ++o)
    for (int s = 0; s < filter; ++s) {
      int i = o + s - before;
      if (padding == Padding::Circular) i = ((i % n_in) + n_in) % n_in;
      else if (i < 0 || i >= n_in) i = -1;
      a.source[static_cast<std::size_t>(o) * filter + s] = i;
    }
  a.runs.resize(static_cast<std::size_t>(filter));
  for (int s = 0; s < filter; ++s)
    for (int o = 0; o < a.n_out; ++o) {
      const int i = a.source[static_cast<std::size_t>(o) * filter + s];
      if (i < 0) continue;
      auto& runs = a.runs[static_cast<std::size_t>(s)];
      if (!runs.empty() && runs.back().out + runs.back().len == o && runs.back().in + runs.back().len == i) ++runs.back().len;
      else runs.push_back({o, i, 1});
    }
  return a;
}

enum class OpKind { Affine, Activation };

struct SpatialOp {
  OpKind kind = OpKind::Affine;
  double w2 = 1, b2 = 0;  // W², B²
  Axis ah, aw;            // conv geometry (Affine)
  int dual = -1;          // index into Plan::duals (Activation)
  int q_offset = 0;       // where this activation's pixel variances sit in a point's record
  int height = 0, width = 0;  // map size at the op's input
};

struct VectorOp {
  OpKind kind = OpKind::Affine;
  double w2 = 1, b2 = 0;
  int dual = -1;
  int q_offset = 0;
};

enum class Readout { None, Flatten, Gap };

struct Plan {
  bool pixel_stage = false;  // conv layers act on pixels before the readout
  Readout readout = Readout::None;
  // Vector path: inputs reduced to d features with Σ⁰ = x·x'/d.
  bool reduce_flatten = false, reduce_gap = false;
  int in_h = 1, in_w = 1, in_c = 1;
  int out_h = 1, out_w = 1;  // map size at the readout (or the output without readout)
  std::vector<SpatialOp> spatial;
  std::vector<VectorOp> tail;
  std::vector<ActivationDual> duals;
  int record = 0;       // doubles per point: pixel variances of every spatial activation, then tail ones
  std::string path;
};

Plan make_plan(const Architecture& arch, const ExampleShape& in, int quadrature_order) {
  arch.shapes(in);  // throws SpecError if the spec does not fit the input
  Plan plan;
  plan.in_h = in.height;
  plan.in_w = in.width;
  plan.in_c = in.channels;
  int h = in.height, w = in.width;
  bool readout_seen = !in.image;
  for (const auto& layer : arch.layers()) {
    switch (layer.kind) {
      case LayerKind::Conv: {
        SpatialOp op;
        op.kind = OpKind::Affine;
        op.w2 = layer.w_std * layer.w_std;
        op.b2 = layer.b_std * layer.b_std;
        op.height = h;
        op.width = w;
        op.ah = make_axis(h, layer.filter_h, layer.padding);
        op.aw = make_axis(w, layer.filter_w, layer.padding);
        h = op.ah.n_out;
        w = op.aw.n_out;
        plan.spatial.push_back(std::move(op));
        plan.pixel_stage = true;
        break;
      }
      case LayerKind::Dense: {
        VectorOp op;
        op.w2 = layer.w_std * layer.w_std;
        op.b2 = layer.b_std * layer.b_std;
        plan.tail.push_back(op);
        break;
      }
      case LayerKind::Activation: {
        plan.duals.emplace_back(layer.activation, quadrature_order);
        const int d = static_cast<int>(plan.duals.size()) - 1;
        if (!readout_seen) {
          SpatialOp op;
          op.kind = OpKind::Activation;
          op.dual = d;
          op.q_offset = plan.record;
          op.height = h;
          op.width = w;
          plan.record += h * w;
          plan.spatial.push_back(std::move(op));
        } else {
          VectorOp op;
          op.kind = OpKind::Activation;
          op.dual = d;
          plan.tail.push_back(op);
        }
        break;
      }
      case LayerKind::Flatten:
      case LayerKind::GlobalAvgPool: {
        const bool flat = layer.kind == LayerKind::Flatten;
        if (plan.pixel_stage) {
          plan.readout = flat ? Readout::Flatten : Readout::Gap;
        } else {
          plan.reduce_flatten = flat;
          plan.reduce_gap = !flat;
        }
        readout_seen = true;
        plan.out_h = h;
        plan.out_w = w;
        break;
      }
    }
  }
  if (!readout_seen) {
    plan.out_h = h;
    plan.out_w = w;
  }
  for (auto& op : plan.tail)
    if (op.kind == OpKind::Activation) op.q_offset = plan.record++;
  plan.path = !plan.pixel_stage ? "vector" : plan.readout == Readout::Flatten ? "pixel-diagonal" : "pixel-pairs";
  return plan;
}

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

// Per-thread scratch for one pixel-pair computation.
struct Workspace {
  std::vector<double> s, t, s2, t2, tmp;
  explicit Workspace(std::size_t n) : s(n), t(n), s2(n), t2(n), tmp(n) {}
};

class Engine {
 public:
  Engine(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options, bool spatial,
         bool streamed = false)
      : x1_(x1), x2_(x2 ? *x2 : x1), symmetric_(x2 == nullptr), streamed_(streamed) {
    std::string why;
    if (!options.IsValid(&why)) throw std::invalid_argument("kernel options: " + why);
    if (x2 && !(x1.shape == x2->shape))
      throw std::invalid_argument("x2: expected the example shape of x1 " + x1.shape.to_string() + ", got " +
                                  x2->shape.to_string());
    for (const Inputs* in : {&x1, x2}) {
      if (!in) continue;
      if (in->x.cols() != in->shape.size())
        throw std::invalid_argument("inputs: expected " + std::to_string(in->shape.size()) + " columns for shape " +
                                    in->shape.to_string() + ", got " + std::to_string(in->x.cols()));
      if (!in->x.allFinite()) throw std::invalid_argument("inputs: expected finite values, got NaN or Inf");
    }
    if (arch.expects_images() != x1.shape.image)
      throw SpecError(std::string("spec: the architecture expects ") +
                      (arch.expects_images() ? "(N, H, W, C) images" : "(N, d) vectors") + ", got examples of shape " +
                      x1.shape.to_string());
    plan_ = make_plan(arch, x1.shape, options.quadrature_order);
    const bool keeps_pixels = plan_.pixel_stage && plan_.readout == Readout::None;
    if (spatial && !keeps_pixels)
      throw std::invalid_argument("spatial_kernels: the architecture '" + arch.to_string() +
                                  "' has no pixel indices at its output (use kernels)");
    if (streamed && plan_.pixel_stage)
      throw std::invalid_argument("stream_kernels: the architecture '" + arch.to_string() +
                                  "' takes the " + plan_.path + " path; only the vector path (MLPs, flatten/gap "
                                  "first) is computed in bands, use kernels or spatial_kernels");
    if (!spatial && keeps_pixels)
      throw std::invalid_argument("kernels: the architecture '" + arch.to_string() +
                                  "' has no flatten/gap readout, so its kernel keeps pixel indices "
                                  "(N1, N2, H, W, H, W): use spatial_kernels");
    n1_ = x1.count();
    n2_ = x2 ? x2->count() : n1_;
    threads_ = options.threads > 0 ? options.threads : omp_get_max_threads();
    cap_ = options.memory_cap_bytes > 0 ? options.memory_cap_bytes : default_memory_cap_bytes();
    plan_memory();
    identify_points();
  }

  Kernels run_gram() {
    const auto start = std::chrono::steady_clock::now();
    Kernels k;
    k.nngp.resize(n1_, n2_);
    k.ntk.resize(n1_, n2_);
    if (plan_.pixel_stage) run_pixels(k.nngp.data(), k.ntk.data(), 1);
    else run_vector(k.nngp, k.ntk);
    k.summary = summary(start);
    return k;
  }

  SpatialKernels run_spatial() {
    const auto start = std::chrono::steady_clock::now();
    SpatialKernels k;
    k.n1 = n1_;
    k.n2 = n2_;
    k.height = plan_.out_h;
    k.width = plan_.out_w;
    const std::size_t P = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
    k.nngp.assign(static_cast<std::size_t>(n1_) * n2_ * P * P, 0.0);
    k.ntk.assign(k.nngp.size(), 0.0);
    run_pixels(k.nngp.data(), k.ntk.data(), P * P);
    k.summary = summary(start);
    return k;
  }

 private:
  // --- memory plan -------------------------------------------------------------------------
  void plan_memory() {
    const std::size_t d = sizeof(double);
    const std::size_t points = static_cast<std::size_t>(symmetric_ ? n1_ : n1_ + n2_);
    const std::size_t P0 = static_cast<std::size_t>(plan_.in_h) * plan_.in_w;
    const std::size_t Pout = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
    const bool keeps_pixels = plan_.pixel_stage && plan_.readout == Readout::None;
    output_bytes_ = streamed_ ? 0 : 2 * d * static_cast<std::size_t>(n1_) * n2_ * (keeps_pixels ? Pout * Pout : 1);
    fixed_bytes_ = output_bytes_ + points * (plan_.record + 1) * d +
                   d * static_cast<std::size_t>(x1_.x.size() + (symmetric_ ? 0 : x2_.x.size()));
    if (!plan_.pixel_stage) {
      // Zero-padded reduced copies of the inputs, then one tile of Σ and Θ per thread; fewer
      // threads if need be (the tile never shrinks: its shape fixes the arithmetic).
      const std::size_t padded = static_cast<std::size_t>(padded_rows(n1_) + (symmetric_ ? 0 : padded_rows(n2_)));
      fixed_bytes_ += padded * reduced_features() * d;
      block_ = kTile;
      per_thread_bytes_ = 3 * kTile * kTile * d;
      // Streamed: one band of Σ and Θ (kTile rows at least) besides the tiles.
      const std::size_t band_row_bytes = streamed_ ? 2 * d * static_cast<std::size_t>(n2_) : 0;
      const std::size_t smallest = per_thread_bytes_ + kTile * band_row_bytes;
      if (fixed_bytes_ + smallest > cap_) refuse(smallest);
      while (threads_ > 1 && fixed_bytes_ + threads_ * per_thread_bytes_ + kTile * band_row_bytes > cap_) --threads_;
      band_rows_ = static_cast<std::size_t>(padded_rows(n1_));
      if (streamed_) {
        const std::size_t room = cap_ - fixed_bytes_ - threads_ * per_thread_bytes_;
        band_rows_ = std::min(band_rows_, room / band_row_bytes / kTile * kTile);
      }
      fixed_bytes_ += band_rows_ * band_row_bytes;
    } else {
      const std::size_t n = plan_.readout == Readout::Flatten ? P0 : P0 * P0;
      per_thread_bytes_ = 5 * n * d;
      block_ = 32;  // pairs per scheduling unit
      if (fixed_bytes_ + threads_ * per_thread_bytes_ > cap_) {
        threads_ = 1;
        if (fixed_bytes_ + per_thread_bytes_ > cap_) refuse(per_thread_bytes_);
      }
    }
    peak_bytes_ = fixed_bytes_ + threads_ * per_thread_bytes_;
  }

  [[noreturn]] void refuse(std::size_t smallest_workspace) const {
    std::ostringstream os;
    os << "kernel: the computation needs at least " << format_bytes(fixed_bytes_ + smallest_workspace)
       << " (output " << (streamed_ ? std::string("streamed to disk") : format_bytes(output_bytes_))
       << ", inputs and per-point data " << format_bytes(fixed_bytes_ - output_bytes_)
       << (streamed_ ? ", one band and one tile " : ", one block ") << format_bytes(smallest_workspace)
       << ") but the memory cap is " << format_bytes(cap_)
       << "; raise the memory cap (--memory-cap) or split x1/x2 into smaller batches";
    throw MemoryCapError(os.str());
  }

  KernelSummary summary(std::chrono::steady_clock::time_point start) const {
    KernelSummary s;
    s.n1 = n1_;
    s.n2 = n2_;
    s.symmetric = symmetric_;
    s.path = plan_.path;
    s.blocks = blocks_;
    s.block_size = block_;
    s.estimated_peak_bytes = peak_bytes_;
    s.memory_cap_bytes = cap_;
    s.threads = threads_;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return s;
  }

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

  // Bitwise-identical inputs (x1 == x2, or duplicates after augmentation) get one id, so their
  // pairs are treated as exactly collinear (see tail_tile).
  void identify_points() {
    const Eigen::Index n = point_count();
    const std::size_t bytes = sizeof(double) * static_cast<std::size_t>(x1_.x.cols());
    identity_.resize(static_cast<std::size_t>(n));
    std::unordered_map<std::uint64_t, std::vector<Eigen::Index>> seen;
    for (Eigen::Index i = 0; i < n; ++i) {
      const double* row = row_of(i);
      std::uint64_t h = 0x9E3779B97F4A7C15ULL;
      for (Eigen::Index c = 0; c < x1_.x.cols(); ++c) {
        std::uint64_t bits;
        std::memcpy(&bits, row + c, sizeof bits);
        h = (h ^ bits) * 0x100000001B3ULL;
        h ^= h >> 29;
      }
      identity_[static_cast<std::size_t>(i)] = i;
      for (Eigen::Index j : seen[h])
        if (std::memcmp(row_of(j), row, bytes) == 0) {
          identity_[static_cast<std::size_t>(i)] = identity_[static_cast<std::size_t>(j)];
          break;
        }
      if (identity_[static_cast<std::size_t>(i)] == i) seen[h].push_back(i);
    }
  }
  bool same_point(Eigen::Index a, Eigen::Index b) const {
    return identity_[static_cast<std::size_t>(a)] == identity_[static_cast<std::size_t>(b)];
  }

  // Tail (after readout / whole MLP): q' = W²q + B², activation q' = E[φ(u)²].
  void tail_diagonal(double q, double* rec) const {
    for (const auto& op : plan_.tail) {
      if (op.kind == OpKind::Affine) {
        q = op.w2 * q + op.b2;
      } else {
        rec[op.q_offset] = q;
        q = plan_.duals[op.dual](q, q, q).nngp;
      }
    }
  }

  // Pixel diagonal Σ(x,x)_aa through the spatial stage; returns the flatten readout mean.
  double spatial_diagonal(const double* x, double* rec, std::vector<double>& a, std::vector<double>& b,
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

  void compute_records() {
    records_.assign(static_cast<std::size_t>(point_count()) * plan_.record, 0.0);
    if (!plan_.pixel_stage) return;  // the vector path fills its records from reduced inputs
    const std::size_t P0 = static_cast<std::size_t>(plan_.in_h) * plan_.in_w;
    const Eigen::Index n = point_count();
    detail::ParallelErrors errors;
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

  // --- vector path -----------------------------------------------------------------------------
  std::size_t reduced_features() const {
    if (plan_.reduce_gap) return static_cast<std::size_t>(plan_.in_c);
    return static_cast<std::size_t>(x1_.shape.size());
  }

  RowMatrix reduce(const Inputs& in) const {
    if (!plan_.reduce_gap) return in.x;  // vectors, or flatten: the same numbers
    const int P = plan_.in_h * plan_.in_w, C = plan_.in_c;
    RowMatrix r = RowMatrix::Zero(in.count(), C);
    for (Eigen::Index i = 0; i < in.count(); ++i)
      for (int p = 0; p < P; ++p)
        for (int c = 0; c < C; ++c) r(i, c) += in.x(i, p * C + c);
    return r / P;
  }

  // Scalar recursion over a tile: s holds Σ⁰ on entry, t is set to 0; both hold the output on exit.
  void tail_tile(double* s, double* t, std::size_t rows, std::size_t cols, std::size_t ld, const Eigen::Index* p1,
                 const Eigen::Index* p2) const {
    for (std::size_t r = 0; r < rows; ++r) std::fill(t + r * ld, t + r * ld + cols, 0.0);
    for (const auto& op : plan_.tail) {
      if (op.kind == OpKind::Affine) {
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t c = 0; c < cols; ++c) {
            const double sv = op.w2 * s[r * ld + c] + op.b2;
            s[r * ld + c] = sv;
            t[r * ld + c] = sv + op.w2 * t[r * ld + c];
          }
      } else {
        const ActivationDual& dual = plan_.duals[op.dual];
        std::vector<double> q2(cols);
        for (std::size_t c = 0; c < cols; ++c) q2[c] = record(p2[c])[op.q_offset];
        for (std::size_t r = 0; r < rows; ++r) {
          const double q1 = record(p1[r])[op.q_offset];
          // A point paired with itself is exactly collinear: use its variance, not the
          // GEMM's covariance, which may differ in the last bit and would cost √ε in θ.
          for (std::size_t c = 0; c < cols; ++c)
            if (same_point(p1[r], p2[c])) s[r * ld + c] = q1;
          dual.apply(cols, &q1, 0, q2.data(), 1, s + r * ld, t + r * ld);
        }
      }
    }
  }

  // Rows of x1/x2 rounded up to whole tiles.
  static Eigen::Index padded_rows(Eigen::Index n) {
    const Eigen::Index t = static_cast<Eigen::Index>(kTile);
    return (n + t - 1) / t * t;
  }

  // Reduced inputs with zero rows up to whole tiles: every Σ⁰ tile is then one GEMM of the same
  // kTile × kTile × d shape, so an entry's bits do not depend on where the tiles or bands end.
  RowMatrix padded_reduced(const Inputs& in) const {
    RowMatrix r = reduce(in);
    const Eigen::Index n = r.rows();
    r.conservativeResize(padded_rows(n), r.cols());
    r.bottomRows(r.rows() - n).setZero();
    return r;
  }

  void prepare_vector() {
    a_ = padded_reduced(x1_);
    if (!symmetric_) b_ = padded_reduced(x2_);
    const RowMatrix& bb = symmetric_ ? a_ : b_;
    const double d = static_cast<double>(a_.cols());
    records_.assign(static_cast<std::size_t>(point_count()) * plan_.record, 0.0);
    for (Eigen::Index i = 0; i < point_count(); ++i) {
      const double q = (i < n1_ ? a_.row(i).squaredNorm() : bb.row(i - n1_).squaredNorm()) / d;
      tail_diagonal(q, records_.data() + static_cast<std::size_t>(i) * plan_.record);
    }
    ids1_.resize(static_cast<std::size_t>(n1_));
    ids2_.resize(static_cast<std::size_t>(n2_));
    for (Eigen::Index i = 0; i < n1_; ++i) ids1_[i] = i;
    for (Eigen::Index j = 0; j < n2_; ++j) ids2_[j] = second(j);
  }

  // Tile (bi, bj): Σ and Θ of rows bi·kTile.. of x1 against rows bj·kTile.. of x2, row-major in
  // s and t (leading dimension kTile); returns the tile's true extent.
  std::pair<Eigen::Index, Eigen::Index> vector_tile(Eigen::Index bi, Eigen::Index bj, double* s, double* t) const {
    const Eigen::Index T = static_cast<Eigen::Index>(kTile);
    const RowMatrix& bb = symmetric_ ? a_ : b_;
    const Eigen::Index i0 = bi * T, j0 = bj * T, k = a_.cols();
    const Eigen::Index r = std::min(T, n1_ - i0), c = std::min(T, n2_ - j0);
    detail::gemm_abt_rowmajor(T, T, k, 1.0, a_.data() + i0 * k, k, bb.data() + j0 * k, k, s, T);
    const double d = static_cast<double>(k);
    for (Eigen::Index x = 0; x < r; ++x)
      for (Eigen::Index y = 0; y < c; ++y) s[x * T + y] /= d;
    tail_tile(s, t, static_cast<std::size_t>(r), static_cast<std::size_t>(c), kTile, ids1_.data() + i0,
              ids2_.data() + j0);
    return {r, c};
  }

  void run_vector(Eigen::MatrixXd& nngp, Eigen::MatrixXd& ntk) {
    prepare_vector();
    const Eigen::Index T = static_cast<Eigen::Index>(kTile);
    const Eigen::Index nb1 = (n1_ + T - 1) / T, nb2 = (n2_ + T - 1) / T;
    std::vector<std::pair<Eigen::Index, Eigen::Index>> tiles;
    for (Eigen::Index bi = 0; bi < nb1; ++bi)
      for (Eigen::Index bj = symmetric_ ? bi : 0; bj < nb2; ++bj) tiles.emplace_back(bi, bj);
    blocks_ = tiles.size();
    detail::ParallelErrors errors1;
#pragma omp parallel num_threads(threads_)
    {
      RowMatrix s(T, T), t(T, T);
#pragma omp for schedule(dynamic, 1)
      for (std::size_t k = 0; k < tiles.size(); ++k) {
        errors1.run(static_cast<long long>(k), [&] {
          const auto [r, c] = vector_tile(tiles[k].first, tiles[k].second, s.data(), t.data());
          const Eigen::Index i0 = tiles[k].first * T, j0 = tiles[k].second * T;
          nngp.block(i0, j0, r, c) = s.topLeftCorner(r, c);
          ntk.block(i0, j0, r, c) = t.topLeftCorner(r, c);
        });
      }
    }
    errors1.rethrow();
    if (symmetric_) mirror(nngp, ntk);
  }

 public:
  // Band by band into `sink` (stream_kernels); the same tiles as run_vector.
  KernelSummary stream_vector(KernelBandSink& sink) {
    const auto start = std::chrono::steady_clock::now();
    prepare_vector();
    const Eigen::Index T = static_cast<Eigen::Index>(kTile);
    const Eigen::Index band_rows = static_cast<Eigen::Index>(band_rows_);
    const Eigen::Index bands = (n1_ + band_rows - 1) / band_rows, nb2 = (n2_ + T - 1) / T;
    sink.begin(n1_, n2_, symmetric_, band_rows);
    std::vector<double> nngp, ntk;
    for (Eigen::Index band = 0; band < bands; ++band) {
      if (!sink.wanted(band)) continue;
      const Eigen::Index r0 = band * band_rows, rows = std::min(band_rows, n1_ - r0);
      const Eigen::Index c0 = symmetric_ ? r0 : 0, cols = n2_ - c0;
      nngp.assign(static_cast<std::size_t>(rows * cols), 0.0);
      ntk.assign(nngp.size(), 0.0);
      std::vector<std::pair<Eigen::Index, Eigen::Index>> tiles;
      for (Eigen::Index bi = r0 / T; bi * T < r0 + rows; ++bi)
        for (Eigen::Index bj = symmetric_ ? bi : 0; bj < nb2; ++bj) tiles.emplace_back(bi, bj);
      blocks_ += tiles.size();
      detail::ParallelErrors errors;
#pragma omp parallel num_threads(threads_)
      {
        RowMatrix s(T, T), t(T, T);
#pragma omp for schedule(dynamic, 1)
        for (std::size_t k = 0; k < tiles.size(); ++k) {
          errors.run(static_cast<long long>(k), [&] {
            const auto [r, c] = vector_tile(tiles[k].first, tiles[k].second, s.data(), t.data());
            const Eigen::Index i = tiles[k].first * T - r0, j = tiles[k].second * T - c0;
            for (Eigen::Index x = 0; x < r; ++x) {
              std::copy_n(s.data() + x * T, c, nngp.data() + (i + x) * cols + j);
              std::copy_n(t.data() + x * T, c, ntk.data() + (i + x) * cols + j);
            }
          });
        }
      }
      errors.rethrow();
      if (symmetric_)  // the band's part left of the diagonal, as mirror() does in memory
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

 private:
  static void mirror(Eigen::MatrixXd& nngp, Eigen::MatrixXd& ntk) {
    for (Eigen::Index j = 0; j < nngp.cols(); ++j)
      for (Eigen::Index i = j + 1; i < nngp.rows(); ++i) {
        nngp(i, j) = nngp(j, i);
        ntk(i, j) = ntk(j, i);
      }
  }

  // --- pixel paths -----------------------------------------------------------------------------
  // Σ⁰_ab(x, x') = x_a·x'_b / C on the pixel diagonal (a == b) or on all pairs.
  void input_pairs(const double* x, const double* y, double* s, bool diagonal) const {
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
  void spatial_pair(Eigen::Index p1, Eigen::Index p2, Workspace& ws, bool diagonal) const {
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
  std::pair<double, double> readout_pair(Eigen::Index p1, Eigen::Index p2, const Workspace& ws) const {
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
  void run_pixels(double* nngp, double* ntk, std::size_t stride) {
    const bool diagonal = plan_.readout == Readout::Flatten;
    const bool spatial = plan_.readout == Readout::None;
    const std::size_t P0 = static_cast<std::size_t>(plan_.in_h) * plan_.in_w;
    compute_records();
    const bool tail_activation = std::any_of(plan_.tail.begin(), plan_.tail.end(),
                                             [](const VectorOp& op) { return op.kind == OpKind::Activation; });
    if (plan_.readout == Readout::Gap && tail_activation) {
      // The tail after gap needs each point's own gap value (1/P²)Σ_ab Σ(x,x)_ab, which uses
      // all pixel pairs of (x, x): one pair computation per point.
      const Eigen::Index n = point_count();
      detail::ParallelErrors errors2;
#pragma omp parallel num_threads(threads_)
      {
        Workspace ws(P0 * P0);
#pragma omp for schedule(dynamic, 1)
        for (Eigen::Index i = 0; i < n; ++i) {
          errors2.run(static_cast<long long>(i), [&] {
            spatial_pair(i, i, ws, false);
            const std::size_t m = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
            double q = 0;
            for (std::size_t k = 0; k < m * m; ++k) q += ws.s[k];
            tail_diagonal(q / static_cast<double>(m * m),
                          records_.data() + static_cast<std::size_t>(i) * plan_.record);
          });
        }
      }
      errors2.rethrow();
    }
    // Units of work: up to block_ consecutive j for one i.
    struct Unit { Eigen::Index i, j0, j1; };
    std::vector<Unit> units;
    const Eigen::Index B = static_cast<Eigen::Index>(block_);
    for (Eigen::Index i = 0; i < n1_; ++i)
      for (Eigen::Index j = symmetric_ ? i : 0; j < n2_; j += B) units.push_back({i, j, std::min(n2_, j + B)});
    blocks_ = units.size();
    const std::size_t m = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
    detail::ParallelErrors errors3;
#pragma omp parallel num_threads(threads_)
    {
      Workspace ws(diagonal ? P0 : P0 * P0);
#pragma omp for schedule(dynamic, 1)
      for (std::size_t u = 0; u < units.size(); ++u) {
        errors3.run(static_cast<long long>(u), [&] {
          const Eigen::Index i = units[u].i;
          for (Eigen::Index j = units[u].j0; j < units[u].j1; ++j) {
            spatial_pair(i, second(j), ws, diagonal);
            if (spatial) {
              const std::size_t base = (static_cast<std::size_t>(i) * n2_ + j) * stride;
              std::copy(ws.s.begin(), ws.s.begin() + m * m, nngp + base);
              std::copy(ws.t.begin(), ws.t.begin() + m * m, ntk + base);
              if (symmetric_ && j != i) {  // K(x_j, x_i)_ab = K(x_i, x_j)_ba
                const std::size_t mirror = (static_cast<std::size_t>(j) * n2_ + i) * stride;
                for (std::size_t a = 0; a < m; ++a)
                  for (std::size_t b = 0; b < m; ++b) {
                    nngp[mirror + b * m + a] = ws.s[a * m + b];
                    ntk[mirror + b * m + a] = ws.t[a * m + b];
                  }
              }
            } else {
              const auto [s, t] = readout_pair(i, second(j), ws);
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

  static constexpr std::size_t kTile = 64;  // Σ⁰ GEMM tile edge: fixed, it sets the arithmetic

  const Inputs& x1_;
  const Inputs& x2_;
  bool symmetric_;
  bool streamed_ = false;
  RowMatrix a_, b_;  // padded reduced inputs (vector path)
  std::vector<Eigen::Index> ids1_, ids2_;
  std::size_t band_rows_ = 0;
  Plan plan_;
  Eigen::Index n1_ = 0, n2_ = 0;
  int threads_ = 1;
  std::size_t cap_ = 0, output_bytes_ = 0, fixed_bytes_ = 0, per_thread_bytes_ = 0, peak_bytes_ = 0;
  std::size_t block_ = 0, blocks_ = 0;
  std::vector<double> records_;
  std::vector<Eigen::Index> identity_;  // per point: the first point with the same bits
};

}  // namespace

bool KernelOptions::IsValid(std::string* error) const {
  auto bad = [&](const std::string& why) {
    if (error) *error = why;
    return false;
  };
  if (threads < 0 || threads > detail::kMaxThreads)
    return bad("threads: expected 0 (OpenMP default) to " + std::to_string(detail::kMaxThreads) + ", got " +
               std::to_string(threads));
  if (quadrature_order < 0 || quadrature_order > kMaxQuadratureOrder)
    return bad("quadrature_order: expected 0 (default) to " + std::to_string(kMaxQuadratureOrder) + ", got " +
               std::to_string(quadrature_order));
  if (memory_cap_bytes != 0 && memory_cap_bytes < (1u << 20))
    return bad("memory_cap_bytes: expected 0 (25% of RAM) or at least 1 MiB, got " + std::to_string(memory_cap_bytes));
  return true;
}

std::string KernelSummary::to_string() const {
  std::ostringstream os;
  os << n1 << " x " << n2 << (symmetric ? " (symmetric)" : "") << ", " << path << ", " << blocks << " blocks, "
     << threads << " threads, estimated peak " << format_bytes(estimated_peak_bytes) << " of cap "
     << format_bytes(memory_cap_bytes) << ", " << seconds << " s";
  return os.str();
}

namespace {
// Refuses, naming the layer, an architecture and inputs whose kernel variances leave float64.
// The diagonal recursion of docs/conventions.md §2 is run on the largest per-entry variance
// max x² of the inputs: affine layers average over their window (conv) or features (dense), so
// this bounds every point's variance from above and costs O(layers). Without it the overflow
// surfaces as an ActivationDual error deep inside a parallel region, naming no layer.
void check_magnitudes(const Architecture& arch, const Inputs& x1, const Inputs* x2, int quadrature_order) {
  double max_abs = 0;
  for (const Inputs* in : {&x1, x2})
    if (in && in->x.size() > 0) max_abs = std::max(max_abs, in->x.cwiseAbs().maxCoeff());
  if (!std::isfinite(max_abs))
    detail::bad("the inputs hold a non-finite entry; expected finite numbers");
  double q = max_abs * max_abs;
  if (!std::isfinite(q))
    detail::bad("the inputs: the covariance overflowed (inf) with max |x| = " + detail::num(max_abs) +
                "; expected |x| < 1e154 (rescale the inputs, see docs/robustness.md)");
  int dense = 0, conv = 0, act = 0;
  for (const auto& layer : arch.layers()) {
    std::string name;
    if (layer.kind == LayerKind::Dense || layer.kind == LayerKind::Conv) {
      name = layer.kind == LayerKind::Dense ? "dense #" + std::to_string(++dense) : "conv #" + std::to_string(++conv);
      q = layer.w_std * layer.w_std * q + layer.b_std * layer.b_std;
      if (!std::isfinite(q))
        detail::bad(name + ": the covariance overflowed (inf) with w = " + detail::num(layer.w_std) +
                    ", b = " + detail::num(layer.b_std) + " and inputs up to |x| = " + detail::num(max_abs) +
                    "; the kernel is not representable in float64 (see docs/robustness.md)");
    } else if (layer.kind == LayerKind::Activation) {
      name = layer.activation.name() + " #" + std::to_string(++act);
      double next = 0;
      try {
        next = ActivationDual(layer.activation, quadrature_order)(q, q, q).nngp;
      } catch (const std::invalid_argument&) {
        next = std::numeric_limits<double>::infinity();
      }
      if (!std::isfinite(next))
        detail::bad(name + ": the covariance overflowed (inf) at input variance " + detail::num(q) +
                    "; the kernel is not representable in float64 (see docs/robustness.md)");
      q = next;
    }
  }
}
// Bias-free networks whose activations are positively homogeneous of degree 1 (the ReLU family
// a·min(x,0) + b·max(x,0)) have K(cx, cx') = c²·K(x, x') and Θ(cx, cx') = c²·Θ(x, x') for c > 0
// (every step of the recursion of docs/conventions.md §2 is homogeneous of degree 2). For such
// networks, inputs far from scale 1 are rescaled by a power of two — exact in floating point —
// and the kernels scaled back, so 1e-100 inputs do not underflow inside the dual's q1·q2 and give
// the scale-1 answer times c² (docs/robustness.md). Returns the exponent e of the factor 2^e by
// which the inputs are divided, or 0 when the rescaling does not apply or is not needed.
int homogeneous_exponent(const Architecture& arch, const Inputs& x1, const Inputs* x2) {
  for (const auto& layer : arch.layers()) {
    if (layer.affine() && layer.b_std != 0.0) return 0;
    if (layer.kind == LayerKind::Activation) {
      const ActivationKind k = layer.activation.kind;
      if (k != ActivationKind::Identity && k != ActivationKind::Relu && k != ActivationKind::Abs &&
          k != ActivationKind::LeakyRelu && k != ActivationKind::AbRelu)
        return 0;
    }
  }
  double max_abs = 0;
  for (const Inputs* in : {&x1, x2})
    if (in && in->x.size() > 0) max_abs = std::max(max_abs, in->x.cwiseAbs().maxCoeff());
  if (!(max_abs > 0) || !std::isfinite(max_abs)) return 0;
  const int e = std::ilogb(max_abs);
  return (e < -16 || e > 16) ? e : 0;
}

Inputs scaled(const Inputs& in, int e) { return Inputs(RowMatrix(in.x.array() * std::ldexp(1.0, -e)), in.shape); }

Kernels rescaled(Kernels r, int e) {
  const double f = std::ldexp(1.0, 2 * e);
  r.nngp *= f;
  r.ntk *= f;
  return r;
}
}  // namespace

Kernels kernels(const Architecture& arch, const Inputs& x1, const Inputs& x2, const KernelOptions& options) {
  check_magnitudes(arch, x1, &x2, options.quadrature_order);
  if (const int e = homogeneous_exponent(arch, x1, &x2)) {
    const Inputs a = scaled(x1, e), b = scaled(x2, e);
    return rescaled(kernels(arch, a, b, options), e);
  }
  return Engine(arch, x1, &x2, options, false).run_gram();
}

Kernels kernels(const Architecture& arch, const Inputs& x, const KernelOptions& options) {
  check_magnitudes(arch, x, nullptr, options.quadrature_order);
  if (const int e = homogeneous_exponent(arch, x, nullptr)) return rescaled(kernels(arch, scaled(x, e), options), e);
  return Engine(arch, x, nullptr, options, false).run_gram();
}

namespace {
// Passes bands on scaled back by 2^(2e), as rescaled() does in memory (the same products, so the
// streamed entries keep the bits of kernels()).
class RescalingSink final : public KernelBandSink {
 public:
  RescalingSink(KernelBandSink& inner, int e) : inner_(inner), factor_(std::ldexp(1.0, 2 * e)) {}
  void begin(Eigen::Index n1, Eigen::Index n2, bool symmetric, Eigen::Index band_rows) override {
    inner_.begin(n1, n2, symmetric, band_rows);
  }
  bool wanted(Eigen::Index band) override { return inner_.wanted(band); }
  void write(const KernelBand& band) override {
    const std::size_t n = static_cast<std::size_t>(band.rows * band.cols);
    nngp_.assign(band.nngp, band.nngp + n);
    ntk_.assign(band.ntk, band.ntk + n);
    for (std::size_t i = 0; i < n; ++i) nngp_[i] *= factor_, ntk_[i] *= factor_;
    KernelBand out = band;
    out.nngp = nngp_.data();
    out.ntk = ntk_.data();
    inner_.write(out);
  }

 private:
  KernelBandSink& inner_;
  double factor_;
  std::vector<double> nngp_, ntk_;
};
}  // namespace

KernelSummary stream_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2,
                             const KernelOptions& options, KernelBandSink& sink) {
  check_magnitudes(arch, x1, x2, options.quadrature_order);
  if (const int e = homogeneous_exponent(arch, x1, x2)) {
    const Inputs a = scaled(x1, e);
    const Inputs b = x2 ? scaled(*x2, e) : Inputs();
    RescalingSink rescaling(sink, e);
    return Engine(arch, a, x2 ? &b : nullptr, options, false, true).stream_vector(rescaling);
  }
  return Engine(arch, x1, x2, options, false, true).stream_vector(sink);
}

bool streams_in_bands(const Architecture& arch, const ExampleShape& shape) {
  if (arch.expects_images() != shape.image) return false;
  return !make_plan(arch, shape, 0).pixel_stage;
}

SpatialKernels spatial_kernels(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                               const KernelOptions& options) {
  check_magnitudes(arch, x1, &x2, options.quadrature_order);
  return Engine(arch, x1, &x2, options, true).run_spatial();
}

SpatialKernels spatial_kernels(const Architecture& arch, const Inputs& x, const KernelOptions& options) {
  check_magnitudes(arch, x, nullptr, options.quadrature_order);
  return Engine(arch, x, nullptr, options, true).run_spatial();
}

}  // namespace emergent
