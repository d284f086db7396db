// The pixel paths of the kernel engine: pixel-diagonal (convolutions then flatten) and
// pixel-pairs (convolutions then gap, or no readout); Novak et al. 2019 Sec. 3 / Eq. 7,
// Garriga-Alonso et al. 2019, Arora et al. 2019. The conv window sum is separable.
#include "kernels/kernel_engine.hpp"

#include <omp.h>

#include <algorithm>

#include "detail/parallel.hpp"

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
}

void Engine::run_pixels(double* nngp, double* ntk, std::size_t stride) {
  const bool diagonal = plan_.readout == Readout::Flatten;
  const bool spatial = plan_.readout == Readout::None;
  const std::size_t P0 = static_cast<std::size_t>(plan_.in_h) * plan_.in_w;
  prepare_pixels();
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

}  // namespace emergent::detail
