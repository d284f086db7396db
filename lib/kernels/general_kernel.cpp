// The general kernel path (include/emergent/kernels/general_kernel.hpp): every layer of the spec
// on all pixel pairs, one pair of inputs per thread at a time. Two passes: first each point with
// itself, which records the pixel variances Σ(x,x)_aa that its activations and layer norms see;
// then every pair, reading those records (Lee et al. 2018 Eq. 5 needs the variances of both
// points). Each Gram entry is computed by one thread from its two inputs alone, so the result
// does not depend on the thread count.
#include "emergent/kernels/general_kernel.hpp"

#include "kernels/kernel_plan.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "emergent/core/memory.hpp"
#include "emergent/kernels/activation_dual.hpp"
#include "detail/parallel.hpp"

namespace emergent {
namespace {

// Input index read by output o at window tap s along one axis, or −1 in the zero padding.
// Convolutions are the stride-1 case: `same`/`circular` pad (F−1)//2 before (docs/conventions.md §2).
std::vector<int> axis_taps(int n_in, int n_out, int window, int stride, Padding padding) {
  const int before = pooled_pad_before(n_in, window, stride, padding);
  std::vector<int> taps(static_cast<std::size_t>(n_out) * window);
  for (int o = 0; o < n_out; ++o)
    for (int s = 0; s < window; ++s) {
      int i = o * stride + s - before;
      if (padding == Padding::Circular) i = ((i % n_in) + n_in) % n_in;
      else if (i < 0 || i >= n_in) i = -1;
      taps[static_cast<std::size_t>(o) * window + s] = i;
    }
  return taps;
}

struct Op {
  LayerKind kind = LayerKind::Dense;
  int hi = 1, wi = 1, ho = 1, wo = 1;  // map size before and after
  double w2 = 1, b2 = 0, eps = 0;
  int fh = 1, fw = 1;
  std::vector<int> th, tw;  // conv / avgpool taps
  int dual = -1;
  int record = 0;           // offset of this layer's pixel variances in a point's record
};

struct Program {
  std::vector<Op> ops;
  std::vector<ActivationDual> duals;
  int record = 0;           // doubles per point
  int in_p = 1, in_c = 1;   // pixels and channels (features) of the input
  int out_h = 1, out_w = 1;
  std::size_t largest = 1;  // largest P² over the layers
  int depth = 0;            // deepest nesting of residual blocks
  bool keeps_pixels = false;
  bool diagonal = false;    // the pixel-diagonal route: P entries per layer instead of P²
};

Program compile(const Architecture& arch, const ExampleShape& in, int quadrature_order, GeneralRoute route) {
  const ShapeTrace trace = arch.shapes(in);
  Program prog;
  prog.in_p = in.pixels();
  prog.in_c = in.channels;
  int depth = 0;
  const auto& layers = arch.layers();
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Layer& layer = layers[l];
    const ExampleShape& a = trace.shapes[l];
    const ExampleShape& b = trace.shapes[l + 1];
    Op op;
    op.kind = layer.kind;
    op.hi = a.height;
    op.wi = a.width;
    op.ho = b.height;
    op.wo = b.width;
    op.w2 = layer.w_std * layer.w_std;
    op.b2 = layer.b_std * layer.b_std;
    op.eps = layer.eps;
    op.fh = layer.filter_h;
    op.fw = layer.filter_w;
    if (layer.kind == LayerKind::Conv) {
      op.th = axis_taps(a.height, b.height, layer.filter_h, 1, layer.padding);
      op.tw = axis_taps(a.width, b.width, layer.filter_w, 1, layer.padding);
    } else if (layer.kind == LayerKind::AvgPool) {
      op.th = axis_taps(a.height, b.height, layer.filter_h, layer.stride_h, layer.padding);
      op.tw = axis_taps(a.width, b.width, layer.filter_w, layer.stride_w, layer.padding);
    } else if (layer.kind == LayerKind::Activation || layer.kind == LayerKind::LayerNorm) {
      if (layer.kind == LayerKind::Activation) {
        prog.duals.emplace_back(layer.activation, quadrature_order);
        op.dual = static_cast<int>(prog.duals.size()) - 1;
      }
      op.record = prog.record;
      prog.record += a.pixels();
    } else if (layer.kind == LayerKind::ResidualBegin) {
      prog.depth = std::max(prog.depth, ++depth);
    } else if (layer.kind == LayerKind::ResidualEnd) {
      --depth;
    }
    const std::size_t p = static_cast<std::size_t>(a.pixels());
    prog.largest = std::max(prog.largest, p * p);
    prog.ops.push_back(std::move(op));
  }
  const ExampleShape& out = trace.shapes.back();
  prog.out_h = out.height;
  prog.out_w = out.width;
  prog.keeps_pixels = in.image && !arch.has_readout();
  // The pixel-diagonal route: with a flatten readout and no avgpool/gap before it, every layer
  // maps the offset b − a of a pixel pair to itself — a conv moves both pixels by the same tap
  // (Σ'_{ab} = Σ_s Σ_{a+s, b+s}, with the same zero padding or wrap for both), activations and
  // layer norms act on each pair with the variances of its own two pixels, residual blocks add —
  // and flatten reads only a = b. So the diagonal pairs (a, a) determine the kernel: P numbers
  // per layer instead of P². (avgpool gives each pixel of a pair its own window and gap reads all
  // pairs: those stay on all pairs.)
  if (route == GeneralRoute::Auto && in.image && !prog.keeps_pixels) {
    bool pooled = false, flattened = false;
    std::size_t largest = 1;
    for (std::size_t l = 0; l < prog.ops.size() && !flattened; ++l) {
      const Op& op = prog.ops[l];
      pooled = pooled || op.kind == LayerKind::AvgPool || op.kind == LayerKind::GlobalAvgPool;
      flattened = op.kind == LayerKind::Flatten;
      largest = std::max(largest, static_cast<std::size_t>(op.hi) * op.wi);
    }
    if (flattened && !pooled) {
      prog.diagonal = true;
      prog.largest = largest;
    }
  }
  return prog;
}

// Scratch of one thread: Σ, Θ, two temporaries and the shortcut copies of open residual blocks.
struct Work {
  std::vector<double> s, t, u, v;
  std::vector<std::vector<double>> saved_s, saved_t;
  Work(std::size_t n, int depth) : s(n), t(n), u(n), v(n), saved_s(depth, std::vector<double>(n)),
                                   saved_t(depth, std::vector<double>(n)) {}
};

// The conv window sum on the diagonal pairs (a, a) only: out[o] = Σ_s in[taps(o, s)] (pixel-diagonal route).
void conv_diagonal(std::vector<double>& x, std::vector<double>& y, const Op& op) {
  for (int oh = 0; oh < op.ho; ++oh)
    for (int ow = 0; ow < op.wo; ++ow) {
      double sum = 0;
      for (int sh = 0; sh < op.fh; ++sh) {
        const int ih = op.th[static_cast<std::size_t>(oh) * op.fh + sh];
        if (ih < 0) continue;
        for (int sw = 0; sw < op.fw; ++sw) {
          const int iw = op.tw[static_cast<std::size_t>(ow) * op.fw + sw];
          if (iw >= 0) sum += x[static_cast<std::size_t>(ih) * op.wi + iw];
        }
      }
      y[static_cast<std::size_t>(oh) * op.wo + ow] = sum;
    }
  std::copy_n(y.begin(), static_cast<std::size_t>(op.ho) * op.wo, x.begin());
}

// out[..][o][..] = scale · Σ_s in[..][taps(o, s)][..] along one axis of a row-major tensor with
// `outer` entries before the axis and `inner` after it (avgpool: each pixel of a pair has its own tap).
void pool_axis(const double* in, double* out, std::size_t outer, int n_in, int n_out, std::size_t inner,
               const std::vector<int>& taps, int window, double scale) {
  for (std::size_t a = 0; a < outer; ++a)
    for (int o = 0; o < n_out; ++o) {
      double* dst = out + (a * n_out + o) * inner;
      std::fill(dst, dst + inner, 0.0);
      for (int s = 0; s < window; ++s) {
        const int i = taps[static_cast<std::size_t>(o) * window + s];
        if (i < 0) continue;
        const double* src = in + (a * n_in + i) * inner;
        for (std::size_t k = 0; k < inner; ++k) dst[k] += src[k];
      }
      for (std::size_t k = 0; k < inner; ++k) dst[k] *= scale;
    }
}

// avgpool on Σ (or Θ) of shape (Hi, Wi, Hi, Wi) in x, result (Ho, Wo, Ho, Wo) in x; y is scratch.
void avgpool_pairs(std::vector<double>& x, std::vector<double>& y, const Op& op) {
  const std::size_t Hi = op.hi, Wi = op.wi, Ho = op.ho, Wo = op.wo;
  const double kh = 1.0 / op.fh, kw = 1.0 / op.fw;
  pool_axis(x.data(), y.data(), Hi * Wi * Hi, op.wi, op.wo, 1, op.tw, op.fw, kw);   // w2
  pool_axis(y.data(), x.data(), Hi * Wi, op.hi, op.ho, Wo, op.th, op.fh, kh);       // h2
  pool_axis(x.data(), y.data(), Hi, op.wi, op.wo, Ho * Wo, op.tw, op.fw, kw);       // w1
  pool_axis(y.data(), x.data(), 1, op.hi, op.ho, Wo * Ho * Wo, op.th, op.fh, kh);   // h1
}

// The conv window sum on all pixel pairs: both pixels move by the same tap (Novak et al. 2019
// Eq. 7): out[o1,p1,o2,p2] = Σ_{sh,sw} in[ih(o1,sh), iw(p1,sw), ih(o2,sh), iw(p2,sw)]. x → x, y scratch.
void conv_pairs(std::vector<double>& x, std::vector<double>& y, const Op& op) {
  const std::size_t Hi = op.hi, Wi = op.wi, Ho = op.ho, Wo = op.wo;
  std::fill(y.begin(), y.begin() + Ho * Wi * Ho * Wi, 0.0);
  for (std::size_t o1 = 0; o1 < Ho; ++o1)
    for (int s = 0; s < op.fh; ++s) {
      const int i1 = op.th[o1 * op.fh + s];
      if (i1 < 0) continue;
      for (std::size_t o2 = 0; o2 < Ho; ++o2) {
        const int i2 = op.th[o2 * op.fh + s];
        if (i2 < 0) continue;
        for (std::size_t w1 = 0; w1 < Wi; ++w1) {
          const double* src = x.data() + ((i1 * Wi + w1) * Hi + i2) * Wi;
          double* dst = y.data() + ((o1 * Wi + w1) * Ho + o2) * Wi;
          for (std::size_t w2 = 0; w2 < Wi; ++w2) dst[w2] += src[w2];
        }
      }
    }
  for (std::size_t o1 = 0; o1 < Ho; ++o1)
    for (std::size_t p1 = 0; p1 < Wo; ++p1)
      for (std::size_t o2 = 0; o2 < Ho; ++o2) {
        double* dst = x.data() + ((o1 * Wo + p1) * Ho + o2) * Wo;
        std::fill(dst, dst + Wo, 0.0);
        for (int s = 0; s < op.fw; ++s) {
          const int j1 = op.tw[p1 * op.fw + s];
          if (j1 < 0) continue;
          const double* row = y.data() + ((o1 * Wi + j1) * Ho + o2) * Wi;
          for (std::size_t p2 = 0; p2 < Wo; ++p2) {
            const int j2 = op.tw[p2 * op.fw + s];
            if (j2 >= 0) dst[p2] += row[j2];
          }
        }
      }
}

class GeneralEngine {
 public:
  GeneralEngine(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options,
                bool spatial, GeneralRoute route = GeneralRoute::Auto)
      : x1_(x1), x2_(x2 ? *x2 : x1), symmetric_(x2 == nullptr) {
    detail::check_kernel_arguments(arch, x1, x2, options);
    prog_ = compile(arch, x1.shape, options.quadrature_order, route);
    if (spatial && !prog_.keeps_pixels)
      throw std::invalid_argument("spatial_kernels: the architecture '" + arch.to_string() +
                                  "' has no pixel indices at its output (use kernels)");
    if (!spatial && prog_.keeps_pixels)
      throw std::invalid_argument("kernels: the architecture '" + arch.to_string() +
                                  "' has no flatten/gap readout, so its kernel keeps pixel indices "
                                  "(N1, N2, H, W, H, W): use spatial_kernels");
    n1_ = x1.count();
    n2_ = x2 ? x2->count() : n1_;
    threads_ = options.threads > 0 ? options.threads : omp_get_max_threads();
    cap_ = options.memory_cap_bytes > 0 ? options.memory_cap_bytes : default_memory_cap_bytes();
    plan_memory(spatial);
  }

  Kernels gram() {
    const auto start = std::chrono::steady_clock::now();
    Kernels k;
    k.nngp.resize(n1_, n2_);
    k.ntk.resize(n1_, n2_);
    run([&](Eigen::Index i, Eigen::Index j, const Work& w) {
      k.nngp(i, j) = w.s[0];
      k.ntk(i, j) = w.t[0];
      if (symmetric_) {
        k.nngp(j, i) = w.s[0];
        k.ntk(j, i) = w.t[0];
      }
    });
    k.summary = summary(start);
    return k;
  }

  SpatialKernels spatial() {
    const auto start = std::chrono::steady_clock::now();
    SpatialKernels k;
    k.n1 = n1_;
    k.n2 = n2_;
    k.height = prog_.out_h;
    k.width = prog_.out_w;
    const std::size_t P = static_cast<std::size_t>(prog_.out_h) * prog_.out_w;
    k.nngp.assign(static_cast<std::size_t>(n1_) * n2_ * P * P, 0.0);
    k.ntk.assign(k.nngp.size(), 0.0);
    run([&](Eigen::Index i, Eigen::Index j, const Work& w) {
      const std::size_t base = (static_cast<std::size_t>(i) * n2_ + j) * P * P;
      std::copy_n(w.s.begin(), P * P, k.nngp.begin() + base);
      std::copy_n(w.t.begin(), P * P, k.ntk.begin() + base);
      if (symmetric_ && i != j) {  // K(x_j, x_i)_ab = K(x_i, x_j)_ba
        const std::size_t mirror = (static_cast<std::size_t>(j) * n2_ + i) * P * P;
        for (std::size_t a = 0; a < P; ++a)
          for (std::size_t b = 0; b < P; ++b) {
            k.nngp[mirror + b * P + a] = w.s[a * P + b];
            k.ntk[mirror + b * P + a] = w.t[a * P + b];
          }
      }
    });
    k.summary = summary(start);
    return k;
  }

 private:
  void plan_memory(bool spatial) {
    const std::size_t d = sizeof(double);
    const std::size_t points = static_cast<std::size_t>(symmetric_ ? n1_ : n1_ + n2_);
    const std::size_t P = static_cast<std::size_t>(prog_.out_h) * prog_.out_w;
    output_bytes_ = 2 * d * static_cast<std::size_t>(n1_) * n2_ * (spatial ? P * P : 1);
    fixed_bytes_ = output_bytes_ + points * static_cast<std::size_t>(prog_.record) * d;
    per_thread_bytes_ = (4 + 2 * static_cast<std::size_t>(prog_.depth)) * prog_.largest * d;
    if (fixed_bytes_ + per_thread_bytes_ > cap_) {
      std::ostringstream os;
      os << "kernel: the computation needs at least " << format_bytes(fixed_bytes_ + per_thread_bytes_)
         << " (output " << format_bytes(output_bytes_) << ", per-point variances "
         << format_bytes(fixed_bytes_ - output_bytes_) << ", one pair's workspace " << format_bytes(per_thread_bytes_)
         << ") but the memory cap is " << format_bytes(cap_)
         << "; raise the memory cap (--memory-cap) or split x1/x2 into smaller batches";
      throw MemoryCapError(os.str());
    }
    while (threads_ > 1 && fixed_bytes_ + static_cast<std::size_t>(threads_) * per_thread_bytes_ > cap_) --threads_;
  }

  KernelSummary summary(std::chrono::steady_clock::time_point start) const {
    KernelSummary s;
    s.n1 = n1_;
    s.n2 = n2_;
    s.symmetric = symmetric_;
    s.path = prog_.diagonal ? "general, pixel-diagonal" : "general";
    s.blocks = blocks_;
    s.block_size = 1;
    s.estimated_peak_bytes = fixed_bytes_ + static_cast<std::size_t>(threads_) * per_thread_bytes_;
    s.memory_cap_bytes = cap_;
    s.threads = threads_;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return s;
  }

  Eigen::Index point_count() const { return symmetric_ ? n1_ : n1_ + n2_; }
  Eigen::Index second(Eigen::Index j) const { return symmetric_ ? j : n1_ + j; }
  const double* row_of(Eigen::Index p) const {
    return p < n1_ ? x1_.x.row(p).data() : x2_.x.row(p - n1_).data();
  }
  double* record(Eigen::Index p) { return records_.data() + static_cast<std::size_t>(p) * prog_.record; }
  bool same_bits(Eigen::Index a, Eigen::Index b) const {
    return a == b || std::memcmp(row_of(a), row_of(b), sizeof(double) * static_cast<std::size_t>(x1_.x.cols())) == 0;
  }

  // Σ and Θ of the pair (x, y) through all layers into w.s / w.t. `self` (x is y): the pixel
  // variances are read off the diagonal as the recursion goes and written to r1 (= r2).
  // `same`: x and y have the same bits, so pixel a of one is exactly collinear with pixel a of
  // the other and the diagonal is set to the recorded variance (as the fast paths do).
  void propagate(const double* x, const double* y, const double* r1, const double* r2, double* self, bool same,
                 Work& w) const {
    const int P0 = prog_.in_p, C = prog_.in_c;
    {
      Eigen::Map<const RowMatrix> xm(x, P0, C), ym(y, P0, C);
      Eigen::Map<RowMatrix> sm(w.s.data(), P0, P0);
      sm.noalias() = xm * ym.transpose();
      sm *= 1.0 / C;
      std::fill(w.t.begin(), w.t.begin() + static_cast<std::size_t>(P0) * P0, 0.0);
    }
    int depth = 0;
    for (const Op& op : prog_.ops) {
      const std::size_t Pi = static_cast<std::size_t>(op.hi) * op.wi, Po = static_cast<std::size_t>(op.ho) * op.wo;
      switch (op.kind) {
        case LayerKind::Dense:  // Σ' = W²Σ + B², Θ' = Σ' + W²Θ (maps are 1×1 here)
        case LayerKind::Conv: {
          double scale = op.w2;
          if (op.kind == LayerKind::Conv) {
            conv_pairs(w.s, w.u, op);
            conv_pairs(w.t, w.u, op);
            scale /= static_cast<double>(op.fh * op.fw);
          }
          for (std::size_t k = 0; k < Po * Po; ++k) {
            const double sv = scale * w.s[k] + op.b2;
            w.s[k] = sv;
            w.t[k] = sv + scale * w.t[k];
          }
          break;
        }
        case LayerKind::Activation:
        case LayerKind::LayerNorm: {
          if (self)
            for (std::size_t a = 0; a < Pi; ++a) self[op.record + a] = w.s[a * Pi + a];
          const double* q1 = r1 + op.record;
          const double* q2 = r2 + op.record;
          if (same)
            for (std::size_t a = 0; a < Pi; ++a) w.s[a * Pi + a] = q1[a];
          if (op.kind == LayerKind::Activation) {
            const ActivationDual& dual = prog_.duals[static_cast<std::size_t>(op.dual)];
            for (std::size_t a = 0; a < Pi; ++a) dual.apply(Pi, q1 + a, 0, q2, 1, w.s.data() + a * Pi, w.t.data() + a * Pi);
          } else {  // Σ_ab / √((ε + q1_a)(ε + q2_b)), the same for Θ (NT's LayerNorm)
            for (std::size_t a = 0; a < Pi; ++a)
              for (std::size_t b = 0; b < Pi; ++b) {
                const double f = 1.0 / std::sqrt((op.eps + q1[a]) * (op.eps + q2[b]));
                w.s[a * Pi + b] *= f;
                w.t[a * Pi + b] *= f;
              }
          }
          break;
        }
        case LayerKind::Flatten:
        case LayerKind::GlobalAvgPool: {
          double s = 0, t = 0;
          if (op.kind == LayerKind::Flatten) {
            for (std::size_t a = 0; a < Pi; ++a) s += w.s[a * Pi + a], t += w.t[a * Pi + a];
            s /= static_cast<double>(Pi);
            t /= static_cast<double>(Pi);
          } else {
            for (std::size_t k = 0; k < Pi * Pi; ++k) s += w.s[k], t += w.t[k];
            s /= static_cast<double>(Pi * Pi);
            t /= static_cast<double>(Pi * Pi);
          }
          w.s[0] = s;
          w.t[0] = t;
          break;
        }
        case LayerKind::AvgPool:
          avgpool_pairs(w.s, w.u, op);
          avgpool_pairs(w.t, w.u, op);
          break;
        case LayerKind::ResidualBegin:
          std::copy_n(w.s.begin(), Pi * Pi, w.saved_s[static_cast<std::size_t>(depth)].begin());
          std::copy_n(w.t.begin(), Pi * Pi, w.saved_t[static_cast<std::size_t>(depth)].begin());
          ++depth;
          break;
        case LayerKind::ResidualEnd: {  // independent branches: the kernels add (NT's FanInSum)
          --depth;
          const std::vector<double>& ss = w.saved_s[static_cast<std::size_t>(depth)];
          const std::vector<double>& st = w.saved_t[static_cast<std::size_t>(depth)];
          for (std::size_t k = 0; k < Pi * Pi; ++k) w.s[k] += ss[k], w.t[k] += st[k];
          break;
        }
      }
    }
  }

  // The pixel-diagonal route (Program::diagonal): the same recursion as propagate() on the P
  // diagonal pairs (a, a) of each layer until the flatten, then on the 1 × 1 maps after it.
  void propagate_diagonal(const double* x, const double* y, const double* r1, const double* r2, double* self,
                          bool same, Work& w) const {
    const int P0 = prog_.in_p, C = prog_.in_c;
    for (int a = 0; a < P0; ++a) {
      double d = 0;
      for (int c = 0; c < C; ++c) d += x[a * C + c] * y[a * C + c];
      w.s[a] = d * (1.0 / C);
      w.t[a] = 0.0;
    }
    int depth = 0;
    for (const Op& op : prog_.ops) {
      const std::size_t Pi = static_cast<std::size_t>(op.hi) * op.wi, Po = static_cast<std::size_t>(op.ho) * op.wo;
      switch (op.kind) {
        case LayerKind::Dense:
        case LayerKind::Conv: {
          double scale = op.w2;
          if (op.kind == LayerKind::Conv) {
            conv_diagonal(w.s, w.u, op);
            conv_diagonal(w.t, w.u, op);
            scale /= static_cast<double>(op.fh * op.fw);
          }
          for (std::size_t k = 0; k < Po; ++k) {
            const double sv = scale * w.s[k] + op.b2;
            w.s[k] = sv;
            w.t[k] = sv + scale * w.t[k];
          }
          break;
        }
        case LayerKind::Activation:
        case LayerKind::LayerNorm: {
          if (self)
            for (std::size_t a = 0; a < Pi; ++a) self[op.record + a] = w.s[a];
          const double* q1 = r1 + op.record;
          const double* q2 = r2 + op.record;
          if (same)
            for (std::size_t a = 0; a < Pi; ++a) w.s[a] = q1[a];
          if (op.kind == LayerKind::Activation) {
            prog_.duals[static_cast<std::size_t>(op.dual)].apply(Pi, q1, 1, q2, 1, w.s.data(), w.t.data());
          } else {
            for (std::size_t a = 0; a < Pi; ++a) {
              const double f = 1.0 / std::sqrt((op.eps + q1[a]) * (op.eps + q2[a]));
              w.s[a] *= f;
              w.t[a] *= f;
            }
          }
          break;
        }
        case LayerKind::Flatten: {
          double s = 0, t = 0;
          for (std::size_t a = 0; a < Pi; ++a) s += w.s[a], t += w.t[a];
          w.s[0] = s / static_cast<double>(Pi);
          w.t[0] = t / static_cast<double>(Pi);
          break;
        }
        case LayerKind::ResidualBegin:
          std::copy_n(w.s.begin(), Pi, w.saved_s[static_cast<std::size_t>(depth)].begin());
          std::copy_n(w.t.begin(), Pi, w.saved_t[static_cast<std::size_t>(depth)].begin());
          ++depth;
          break;
        case LayerKind::ResidualEnd: {
          --depth;
          const std::vector<double>& ss = w.saved_s[static_cast<std::size_t>(depth)];
          const std::vector<double>& st = w.saved_t[static_cast<std::size_t>(depth)];
          for (std::size_t k = 0; k < Pi; ++k) w.s[k] += ss[k], w.t[k] += st[k];
          break;
        }
        case LayerKind::GlobalAvgPool:
        case LayerKind::AvgPool:
          throw std::logic_error("general kernel: avgpool/gap on the pixel-diagonal route");  // excluded by compile()
      }
    }
  }

  void propagate_any(const double* x, const double* y, const double* r1, const double* r2, double* self, bool same,
                     Work& w) const {
    if (prog_.diagonal) propagate_diagonal(x, y, r1, r2, self, same, w);
    else propagate(x, y, r1, r2, self, same, w);
  }

  template <class Store>
  void run(Store store) {
    const Eigen::Index n = point_count();
    records_.assign(static_cast<std::size_t>(n) * prog_.record, 0.0);
    const std::size_t size = prog_.largest;
    detail::ParallelErrors errors1;
#pragma omp parallel num_threads(threads_)
    {
      Work w(size, prog_.depth);
#pragma omp for schedule(dynamic, 1)
      for (Eigen::Index p = 0; p < n; ++p)
        errors1.run(static_cast<long long>(p), [&] {
          double* r = record(p);
          propagate_any(row_of(p), row_of(p), r, r, r, true, w);
        });
    }
    errors1.rethrow();
    struct Pair { Eigen::Index i, j; };
    std::vector<Pair> pairs;
    for (Eigen::Index i = 0; i < n1_; ++i)
      for (Eigen::Index j = symmetric_ ? i : 0; j < n2_; ++j) pairs.push_back({i, j});
    blocks_ = pairs.size();
    detail::ParallelErrors errors2;
#pragma omp parallel num_threads(threads_)
    {
      Work w(size, prog_.depth);
#pragma omp for schedule(dynamic, 16)
      for (std::size_t k = 0; k < pairs.size(); ++k)
        errors2.run(static_cast<long long>(k), [&] {
          const Eigen::Index a = pairs[k].i, b = second(pairs[k].j);
          propagate_any(row_of(a), row_of(b), record(a), record(b), nullptr, same_bits(a, b), w);
          const std::size_t m = static_cast<std::size_t>(prog_.out_h) * prog_.out_w;
          for (std::size_t q = 0; q < m * m; ++q)
            if (!std::isfinite(w.s[q]) || !std::isfinite(w.t[q]))
              throw std::invalid_argument("kernel: the covariance of inputs " + std::to_string(pairs[k].i) + " and " +
                                          std::to_string(pairs[k].j) +
                                          " left float64 (inf or NaN); rescale the inputs (docs/robustness.md)");
          store(pairs[k].i, pairs[k].j, w);
        });
    }
    errors2.rethrow();
  }

  const Inputs& x1_;
  const Inputs& x2_;
  bool symmetric_;
  Program prog_;
  Eigen::Index n1_ = 0, n2_ = 0;
  int threads_ = 1;
  std::size_t cap_ = 0, output_bytes_ = 0, fixed_bytes_ = 0, per_thread_bytes_ = 0, blocks_ = 0;
  std::vector<double> records_;
};

}  // namespace

// avgpool alone takes the offset slices of the fast engine (lib/kernels/kernel_pixels.cpp),
// except with circular and non-circular convs mixed (their offsets are not conserved).
bool uses_general_path(const Architecture& arch) {
  int convs = 0, circular = 0;
  bool pool = false;
  for (const auto& l : arch.layers()) {
    if (l.kind == LayerKind::LayerNorm || l.marker()) return true;
    if (l.kind == LayerKind::AvgPool) pool = true;
    if (l.kind == LayerKind::Conv) ++convs, circular += l.padding == Padding::Circular ? 1 : 0;
  }
  return pool && circular != 0 && circular != convs;
}

Kernels general_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options,
                        GeneralRoute route) {
  if (const int e = detail::homogeneous_exponent(arch, x1, x2)) {
    const double down = std::ldexp(1.0, -e), up = std::ldexp(1.0, 2 * e);
    const Inputs a(RowMatrix(x1.x.array() * down), x1.shape);
    const Inputs b = x2 ? Inputs(RowMatrix(x2->x.array() * down), x2->shape) : Inputs();
    Kernels k = GeneralEngine(arch, a, x2 ? &b : nullptr, options, false, route).gram();
    k.nngp *= up;
    k.ntk *= up;
    return k;
  }
  return GeneralEngine(arch, x1, x2, options, false, route).gram();
}

SpatialKernels general_spatial_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2,
                                       const KernelOptions& options) {
  return GeneralEngine(arch, x1, x2, options, true).spatial();
}

}  // namespace emergent
