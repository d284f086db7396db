#include "detail/tridiagonalization.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "detail/parallel.hpp"
#include "detail/lanes.hpp"
#include "detail/serial_blas.hpp"
#include "emergent/core/cancellation.hpp"

#ifdef EMERGENT_USE_LAPACK
#include <cblas.h>
#endif

namespace emergent::detail {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"  // vector values never cross the library's interface
#endif

// x·y over n entries, eight partial sums then a fixed tree.
double dot(const double* x, const double* y, Index n) {
  Lanes acc = splat_lanes(0.0);
  Index i = 0;
  for (; i + 8 <= n; i += 8) acc += load_lanes(x + i) * load_lanes(y + i);
  double tail = 0.0;
  for (; i < n; ++i) tail += x[i] * y[i];
  return sum_lanes(acc) + tail;
}

// y += alpha·x over n entries.
void axpy(double alpha, const double* x, double* y, Index n) {
  const Lanes a = splat_lanes(alpha);
  Index i = 0;
  for (; i + 8 <= n; i += 8) store_lanes(y + i, load_lanes(y + i) + a * load_lanes(x + i));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

// One piece of y = B·x for the symmetric B (m×m, lower triangle, column stride ld): the columns
// c0..c1 of the lower triangle, accumulated into y (rows c0..m, zeroed here). Every stored entry
// is read once and used twice, as B(i,j)·x(j) into y(i) and as B(i,j)·x(i) into y(j). Four
// columns at a time, so y is read and written once per four columns.
void symv_piece(const double* b, Index ld, Index m, Index c0, Index c1, const double* x, double* y) {
  std::fill(y + c0, y + m, 0.0);
  Index j = c0;
  for (; j + 4 <= c1; j += 4) {
    const double* col[4] = {b + j * ld, b + (j + 1) * ld, b + (j + 2) * ld, b + (j + 3) * ld};
    double near[4];  // the 4×4 diagonal block's contributions to y(j..j+3)
    for (int c = 0; c < 4; ++c) {
      near[c] = col[c][j + c] * x[j + c];
      for (int r = c + 1; r < 4; ++r) {
        y[j + r] += col[c][j + r] * x[j + c];
        near[c] += col[c][j + r] * x[j + r];
      }
    }
    const Lanes x0 = splat_lanes(x[j]), x1 = splat_lanes(x[j + 1]), x2 = splat_lanes(x[j + 2]), x3 = splat_lanes(x[j + 3]);
    Lanes t0 = splat_lanes(0.0), t1 = t0, t2 = t0, t3 = t0;
    Index i = j + 4;
    for (; i + 8 <= m; i += 8) {
      const Lanes a0 = load_lanes(col[0] + i), a1 = load_lanes(col[1] + i), a2 = load_lanes(col[2] + i), a3 = load_lanes(col[3] + i);
      const Lanes xi = load_lanes(x + i);
      Lanes yi = load_lanes(y + i);
      yi += a0 * x0;
      yi += a1 * x1;
      yi += a2 * x2;
      yi += a3 * x3;
      store_lanes(y + i, yi);
      t0 += a0 * xi;
      t1 += a1 * xi;
      t2 += a2 * xi;
      t3 += a3 * xi;
    }
    double s[4] = {sum_lanes(t0), sum_lanes(t1), sum_lanes(t2), sum_lanes(t3)};
    for (; i < m; ++i) {
      y[i] += col[0][i] * x[j] + col[1][i] * x[j + 1] + col[2][i] * x[j + 2] + col[3][i] * x[j + 3];
      for (int c = 0; c < 4; ++c) s[c] += col[c][i] * x[i];
    }
    for (int c = 0; c < 4; ++c) y[j + c] += near[c] + s[c];
  }
  for (; j < c1; ++j) {  // fewer than four columns left
    const double* cj = b + j * ld;
    const Index len = m - j - 1;
    axpy(x[j], cj + j + 1, y + j + 1, len);
    y[j] += cj[j] * x[j] + dot(cj + j + 1, x + j + 1, len);
  }
}

// Column boundaries of the pieces of a size-m product: equal areas of the lower triangle,
// multiples of four columns. A function of m alone.
std::vector<Index> symv_pieces(Index m) {
  const Index count = std::clamp<Index>(m / 64, 1, 8);
  std::vector<Index> edge(static_cast<std::size_t>(count) + 1, m);
  edge[0] = 0;
  for (Index p = 1; p < count; ++p) {
    const double f = 1.0 - std::sqrt(1.0 - static_cast<double>(p) / static_cast<double>(count));
    const Index c = static_cast<Index>(std::llround(f * static_cast<double>(m) / 4.0)) * 4;
    edge[static_cast<std::size_t>(p)] = std::clamp(c, edge[static_cast<std::size_t>(p) - 1], m);
  }
  return edge;
}

int thread_count(int requested) { return requested > 0 ? requested : omp_get_max_threads(); }

// Products smaller than this run their pieces on the calling thread (waking a thread costs more).
constexpr Index kParallelSymv = 384;

// The product y = B·x of the symmetric B (m×m, lower triangle, stride ld), over the fixed pieces;
// `partial` holds one length-m vector per piece (column stride m).
void symmetric_product_pieces(const double* b, Index ld, Index m, const double* x, double* y, double* partial,
                              int threads) {
  const std::vector<Index> edge = symv_pieces(m);
  const Index count = static_cast<Index>(edge.size()) - 1;
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && m >= kParallelSymv)
  for (Index p = 0; p < count; ++p)
    errors.run(p, [&] {
      symv_piece(b, ld, m, edge[static_cast<std::size_t>(p)], edge[static_cast<std::size_t>(p) + 1], x, partial + p * m);
    });
  errors.rethrow();
  // Row i has contributions from the pieces that start at or before it, summed in piece order.
  std::copy(partial, partial + m, y);
  for (Index p = 1; p < count; ++p) {
    const Index r0 = edge[static_cast<std::size_t>(p)];
    const double* yp = partial + p * m;
    for (Index i = r0; i < m; ++i) y[i] += yp[i];
  }
}

// dlarfg: the reflector H = I − tau·(1; v)(1; v)ᵀ with H·(alpha; x) = (beta; 0). x (n entries)
// is overwritten by v; returns tau and sets alpha = beta. Same scaling rules as LAPACK's
// (Anderson et al., LAPACK Users' Guide §5.4): beta is rescaled when it would underflow.
double householder(double& alpha, double* x, Index n) {
  if (n <= 0) return 0.0;
  double big = 0.0;
  for (Index i = 0; i < n; ++i) big = std::max(big, std::abs(x[i]));
  if (big == 0.0) return 0.0;
  auto norm = [&] {  // scaled, so neither the squares overflow nor they underflow
    double m = 0.0;
    for (Index i = 0; i < n; ++i) m = std::max(m, std::abs(x[i]));
    double s = 0.0;
    for (Index i = 0; i < n; ++i) {
      const double r = x[i] / m;
      s += r * r;
    }
    return m * std::sqrt(s);
  };
  double xnorm = norm();
  double beta = -std::copysign(std::hypot(alpha, xnorm), alpha);
  const double safe_min = std::numeric_limits<double>::min() / std::numeric_limits<double>::epsilon();
  int rescaled = 0;
  if (std::abs(beta) < safe_min) {
    const double inverse = 1.0 / safe_min;
    do {
      ++rescaled;
      for (Index i = 0; i < n; ++i) x[i] *= inverse;
      beta *= inverse;
      alpha *= inverse;
    } while (std::abs(beta) < safe_min && rescaled < 20);
    xnorm = norm();
    beta = -std::copysign(std::hypot(alpha, xnorm), alpha);
  }
  const double tau = (beta - alpha) / beta;
  const double scale = 1.0 / (alpha - beta);
  for (Index i = 0; i < n; ++i) x[i] *= scale;
  for (int k = 0; k < rescaled; ++k) beta *= safe_min;
  alpha = beta;
  return tau;
}

// Panel width of the trailing update (fixed: the bits depend on it).
constexpr Index kUpdatePanel = 192;

// M ← M − U(:,0:k)·U(:,k:2k)ᵀ − U(:,k:2k)·U(:,0:k)ᵀ on the lower triangle of the trailing matrix
// M (r×r, stride ld), U = [V W] (r × 2k, stride r) and Z = [W V]: fixed column panels, the
// diagonal block by a rank-2k update, the rows below by one product with inner size 2k.
void trailing_update(double* m, Index ld, Index r, const double* u, const double* z, Index k, int threads) {
  const Index panels = (r + kUpdatePanel - 1) / kUpdatePanel;
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && panels > 1)
  for (Index p = 0; p < panels; ++p)
    errors.run(p, [&] {
      const Index c0 = p * kUpdatePanel, w = std::min(kUpdatePanel, r - c0), below = r - c0 - w;
      double* block = m + c0 * ld + c0;
#ifdef EMERGENT_USE_LAPACK
      cblas_dsyr2k(CblasColMajor, CblasLower, CblasNoTrans, static_cast<int>(w), static_cast<int>(k), -1.0, u + c0,
                   static_cast<int>(r), u + k * r + c0, static_cast<int>(r), 1.0, block, static_cast<int>(ld));
      if (below > 0)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, static_cast<int>(below), static_cast<int>(w),
                    static_cast<int>(2 * k), -1.0, u + c0 + w, static_cast<int>(r), z + c0, static_cast<int>(r), 1.0,
                    block + w, static_cast<int>(ld));
#else
      using Stride = Eigen::OuterStride<>;
      const Eigen::Map<const MatrixXd, 0, Stride> U(u, r, 2 * k, Stride(r)), Z(z, r, 2 * k, Stride(r));
      Eigen::Map<MatrixXd, 0, Stride> M(block, r - c0, w, Stride(ld));
      const MatrixXd diagonal = U.middleRows(c0, w) * Z.middleRows(c0, w).transpose();
      M.topRows(w).triangularView<Eigen::Lower>() -= diagonal;
      if (below > 0) M.bottomRows(below).noalias() -= U.middleRows(c0 + w, below) * Z.middleRows(c0, w).transpose();
#endif
    });
  errors.rethrow();
}


}  // namespace

Tridiagonal tridiagonalize(MatrixXd& a, int threads) {
  const Index n = a.rows();
  if (a.cols() != n) throw std::invalid_argument("tridiagonalize: expected a square matrix, got " +
                                                 std::to_string(a.rows()) + " x " + std::to_string(a.cols()));
  Tridiagonal t;
  t.diagonal.resize(n);
  t.off_diagonal.resize(std::max<Index>(n - 1, 0));
  t.tau.resize(std::max<Index>(n - 1, 0));
  if (n == 0) return t;
  const int team = thread_count(threads);
  const SerialBlas serial;  // every BLAS call below, in our regions too, runs on one thread
  double* A = a.data();
  const Index ld = n;
  auto at = [&](Index i, Index j) -> double& { return A[j * ld + i]; };
  const Index nb = kTridiagonalPanel;
  MatrixXd w_panel(n, nb);                      // dlatrd's W, rows k0..n of the current panel
  MatrixXd partial(n, 8);                       // the product's per-piece vectors
  MatrixXd u(n, 2 * nb), z(n, 2 * nb);          // [V W] and [W V] of the trailing update
  std::vector<double> tmp(static_cast<std::size_t>(2 * nb));
  for (Index k0 = 0; k0 < n - 1; k0 += nb) {
    throw_if_cancelled();
    const Index b = std::min(nb, n - 1 - k0);
    // Entry (row, c) of W, row a global row index ≥ k0.
    auto wat = [&](Index row, Index c) { return w_panel.data() + c * n + (row - k0); };
    for (Index i = 0; i < b; ++i) {
      const Index j = k0 + i;
      double* aj = A + j * ld;  // column j, indexed by global row
      // Bring column j up to date with the panel's earlier reflectors: a −= V·W(j,:)ᵀ + W·V(j,:)ᵀ.
      for (Index c = 0; c < i; ++c) {
        axpy(-*wat(j, c), A + (k0 + c) * ld + j, aj + j, n - j);
        axpy(-at(j, k0 + c), wat(j, c), aj + j, n - j);
      }
      // The reflector that zeroes a(j+2:n, j).
      const Index len = n - j - 1;
      double alpha = aj[j + 1];
      const double tau = householder(alpha, aj + j + 2, len - 1);
      t.tau(j) = tau;
      t.off_diagonal(j) = alpha;
      aj[j + 1] = 1.0;
      const double* v = aj + j + 1;
      // w = tau·(A₂₂ − V·Wᵀ − W·Vᵀ)·v, A₂₂ the trailing matrix as it stood at the panel's start.
      double* wj = wat(j + 1, i);
      symmetric_product_pieces(A + (j + 1) * ld + j + 1, ld, len, v, wj, partial.data(), team);
      for (Index c = 0; c < i; ++c) {
        tmp[static_cast<std::size_t>(c)] = dot(wat(j + 1, c), v, len);
        tmp[static_cast<std::size_t>(nb + c)] = dot(A + (k0 + c) * ld + j + 1, v, len);
      }
      for (Index c = 0; c < i; ++c) axpy(-tmp[static_cast<std::size_t>(c)], A + (k0 + c) * ld + j + 1, wj, len);
      for (Index c = 0; c < i; ++c) axpy(-tmp[static_cast<std::size_t>(nb + c)], wat(j + 1, c), wj, len);
      for (Index r = 0; r < len; ++r) wj[r] *= tau;
      // w −= ½·tau·(wᵀv)·v makes the two-sided update A − v·wᵀ − w·vᵀ equal H·A·H.
      axpy(-0.5 * tau * dot(wj, v, len), v, wj, len);
    }
    // Trailing matrix rows/columns q..n: M −= V·Wᵀ + W·Vᵀ.
    const Index q = k0 + b, r = n - q;
    if (r > 0) {
      for (Index c = 0; c < b; ++c) {
        const double* vc = A + (k0 + c) * ld + q;
        const double* wc = wat(q, c);
        std::copy(vc, vc + r, u.data() + c * r);
        std::copy(wc, wc + r, u.data() + (b + c) * r);
        std::copy(wc, wc + r, z.data() + c * r);
        std::copy(vc, vc + r, z.data() + (b + c) * r);
      }
      trailing_update(A + q * ld + q, ld, r, u.data(), z.data(), b, team);
    }
    for (Index c = 0; c < b; ++c) {
      const Index j = k0 + c;
      at(j + 1, j) = t.off_diagonal(j);
      t.diagonal(j) = at(j, j);
    }
  }
  t.diagonal(n - 1) = at(n - 1, n - 1);
  return t;
}

}  // namespace emergent::detail
