#include "detail/linear_algebra.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Eigenvalues>

#include "detail/parallel.hpp"
#include "emergent/core/cancellation.hpp"

#ifdef EMERGENT_USE_LAPACK
#include <cblas.h>
#include <lapacke.h>
#endif

namespace emergent::detail {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;

int thread_count(int requested) { return requested > 0 ? requested : omp_get_max_threads(); }

#ifdef EMERGENT_USE_LAPACK
// OpenBLAS (OpenMP build) sizes each call by omp_get_max_threads(), and runs single-threaded
// inside an active parallel region. This pins the calling task's count to 1 for the scope, so a
// call gives the same bits whether or not it sits in one of our parallel loops.
class SerialBlas {
 public:
  SerialBlas() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SerialBlas() { omp_set_num_threads(saved_); }
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  int saved_;
};

lapack_int lapack_size(Index n, const char* what) {
  if (n > static_cast<Index>(std::numeric_limits<lapack_int>::max()))
    throw std::invalid_argument(std::string(what) + ": dimension " + std::to_string(n) +
                                " exceeds the LAPACK integer range");
  return static_cast<lapack_int>(n);
}
#endif

constexpr Index kPanel = 256;  // columns per independent product (fixed: the bits depend on it)

}  // namespace

bool uses_lapack() {
#ifdef EMERGENT_USE_LAPACK
  return true;
#else
  return false;
#endif
}

SymmetricEigen symmetric_eigen(const MatrixXd& a, bool vectors, int threads) {
  SymmetricEigen out;
  const Index n = a.rows();
  if (a.cols() != n) throw std::invalid_argument("symmetric_eigen: expected a square matrix");
  if (n == 0) return out;
  throw_if_cancelled();
#ifdef EMERGENT_USE_LAPACK
  const lapack_int N = lapack_size(n, "symmetric_eigen");
  out.values.resize(n);
  if (!vectors) {
    MatrixXd work = a;
    SerialBlas serial;
    const lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'L', N, work.data(), N, out.values.data());
    out.converged = info == 0;
    return out;
  }
  // dsyevd = dsytrd (A = Q·T·Qᵀ) + dstedc (T = Z·Λ·Zᵀ) + dormtr (V = Q·Z). The back-transformation
  // is a third of the flops and splits into independent column panels of Z: those run in
  // parallel, each one single-threaded call, so the bits do not depend on the thread count.
  MatrixXd qt = a;
  Eigen::VectorXd e(std::max<Index>(n - 1, 1)), tau(std::max<Index>(n - 1, 1));
  {
    SerialBlas serial;
    lapack_int info = LAPACKE_dsytrd(LAPACK_COL_MAJOR, 'L', N, qt.data(), N, out.values.data(), e.data(), tau.data());
    throw_if_cancelled();
    if (info == 0) {
      out.vectors.resize(n, n);
      info = LAPACKE_dstedc(LAPACK_COL_MAJOR, 'I', N, out.values.data(), e.data(), out.vectors.data(), N);
    }
    if (info != 0) {
      out.converged = false;
      out.vectors.resize(0, 0);
      return out;
    }
  }
  throw_if_cancelled();  // between the reductions and the back-transformation
  const Index panels = (n + kPanel - 1) / kPanel;
  bool failed = false;
  ParallelErrors errors;  // cancellation is checked per panel
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads)) if (panels > 1)
  for (Index p = 0; p < panels; ++p) {
    errors.run(static_cast<long long>(p), [&] {
      const Index c0 = p * kPanel, w = std::min(kPanel, n - c0);
      SerialBlas serial;
      const lapack_int info = LAPACKE_dormtr(LAPACK_COL_MAJOR, 'L', 'L', 'N', N, static_cast<lapack_int>(w),
                                             qt.data(), N, tau.data(), out.vectors.data() + c0 * n, N);
      if (info != 0) {
#pragma omp atomic write
        failed = true;
      }
    });
  }
  errors.rethrow();
  out.converged = !failed;
  return out;
#else
  (void)threads;
  Eigen::SelfAdjointEigenSolver<MatrixXd> solver(a, vectors ? Eigen::ComputeEigenvectors : Eigen::EigenvaluesOnly);
  out.converged = solver.info() == Eigen::Success;
  out.values = solver.eigenvalues();
  if (vectors) out.vectors = solver.eigenvectors();
  return out;
#endif
}

MatrixXd product(const MatrixXd& a, bool transpose_a, const MatrixXd& b, bool transpose_b, int threads) {
  const Index m = transpose_a ? a.cols() : a.rows(), k = transpose_a ? a.rows() : a.cols();
  const Index kb = transpose_b ? b.cols() : b.rows(), n = transpose_b ? b.rows() : b.cols();
  if (k != kb)
    throw std::invalid_argument("product: inner dimensions " + std::to_string(k) + " and " + std::to_string(kb) +
                                " differ");
  MatrixXd c(m, n);
  if (m == 0 || n == 0) return c;
  if (k == 0) return MatrixXd::Zero(m, n);
  const Index panels = (n + kPanel - 1) / kPanel;
  ParallelErrors errors;  // cancellation is checked per panel
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads)) if (panels > 1)
  for (Index p = 0; p < panels; ++p) errors.run(static_cast<long long>(p), [&] {
    const Index c0 = p * kPanel, w = std::min(kPanel, n - c0);
#ifdef EMERGENT_USE_LAPACK
    // Column panel c0..c0+w of op(b): columns of b, or rows of b when transposed.
    const double* bp = transpose_b ? b.data() + c0 : b.data() + c0 * b.rows();
    SerialBlas serial;
    cblas_dgemm(CblasColMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(w), static_cast<int>(k), 1.0, a.data(),
                static_cast<int>(a.rows()), bp, static_cast<int>(b.rows()), 0.0, c.data() + c0 * m,
                static_cast<int>(m));
#else
    if (transpose_a && transpose_b) c.middleCols(c0, w).noalias() = a.transpose() * b.middleRows(c0, w).transpose();
    else if (transpose_a) c.middleCols(c0, w).noalias() = a.transpose() * b.middleCols(c0, w);
    else if (transpose_b) c.middleCols(c0, w).noalias() = a * b.middleRows(c0, w).transpose();
    else c.middleCols(c0, w).noalias() = a * b.middleCols(c0, w);
#endif
  });
  errors.rethrow();
  return c;
}

MatrixXd symmetric_product(const MatrixXd& a, const MatrixXd& b, int threads) {
  const Index n = a.cols(), k = a.rows();
  if (b.rows() != k || b.cols() != n)
    throw std::invalid_argument("symmetric_product: shapes (" + std::to_string(k) + ", " + std::to_string(n) +
                                ") and (" + std::to_string(b.rows()) + ", " + std::to_string(b.cols()) +
                                ") differ");
  MatrixXd c(n, n);
  if (n == 0) return c;
  if (k == 0) return MatrixXd::Zero(n, n);
  const Index panels = (n + kPanel - 1) / kPanel;
  ParallelErrors errors;
  // Panel p needs rows 0..c0+w of its columns, so late panels cost most: hand them out first.
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads)) if (panels > 1)
  for (Index q = 0; q < panels; ++q) errors.run(static_cast<long long>(q), [&] {
    const Index p = panels - 1 - q;
    const Index c0 = p * kPanel, w = std::min(kPanel, n - c0), rows = c0 + w;
#ifdef EMERGENT_USE_LAPACK
    SerialBlas serial;
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(w),
                static_cast<int>(k), 1.0, a.data(), static_cast<int>(k), b.data() + c0 * k, static_cast<int>(k), 0.0,
                c.data() + c0 * n, static_cast<int>(n));
#else
    c.block(0, c0, rows, w).noalias() = a.leftCols(rows).transpose() * b.middleCols(c0, w);
#endif
    const MatrixXd diagonal = c.block(c0, c0, w, w);
    c.block(c0, c0, w, w) = 0.5 * (diagonal + diagonal.transpose());
  });
  errors.rethrow();
  for (Index j = 0; j < n; ++j)
    for (Index i = j + 1; i < n; ++i) c(i, j) = c(j, i);
  return c;
}

void gemm_abt_rowmajor(Index m, Index n, Index k, double alpha, const double* a, Index lda, const double* b,
                       Index ldb, double* c, Index ldc) {
  if (m == 0 || n == 0) return;
#ifdef EMERGENT_USE_LAPACK
  SerialBlas serial;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), 0.0, c, static_cast<int>(ldc));
#else
  using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  Eigen::Map<const RowMatrix, 0, Stride> A(a, m, k, Stride(lda)), B(b, n, k, Stride(ldb));
  Eigen::Map<RowMatrix, 0, Stride> C(c, m, n, Stride(ldc));
  C.noalias() = alpha * (A * B.transpose());
#endif
}

namespace {
// Swaps index j < p of the symmetric matrix held in the lower triangle of w whose columns < j
// are finished factor columns (dpstf2's three swaps: factor rows, the column below p, the strip
// between j and p).
void symmetric_swap_lower(MatrixXd& w, Index j, Index p) {
  const Index n = w.rows();
  for (Index c = 0; c < j; ++c) std::swap(w(j, c), w(p, c));
  std::swap(w(j, j), w(p, p));
  for (Index i = p + 1; i < n; ++i) std::swap(w(i, j), w(i, p));
  for (Index i = j + 1; i < p; ++i) std::swap(w(i, j), w(p, i));
}
}  // namespace

PivotedCholesky pivoted_cholesky(const MatrixXd& a, double tolerance, int threads) {
  const Index n = a.rows();
  if (a.cols() != n) throw std::invalid_argument("pivoted_cholesky: expected a square matrix");
  PivotedCholesky out;
  out.pivots = Eigen::VectorXi::LinSpaced(n, 0, static_cast<int>(n) - 1);
  if (n == 0) return out;
  // Blocked right-looking as LAPACK dpstrf: within a block of kBlock columns, each column is
  // picked (largest remaining diagonal), swapped in and computed from the block's earlier columns
  // (dgemv); after the block the trailing matrix gets one rank-kBlock update, split into fixed
  // column panels (one single-threaded dgemm each), so the bits do not depend on `threads`.
  constexpr Index kBlock = 64;
  MatrixXd w = a;
  Eigen::VectorXd done(n);  // per row, the squares of the current block's factor entries
  Index rank = 0;
  bool stopped = false;
  for (Index k0 = 0; k0 < n && !stopped; k0 += kBlock) {
    throw_if_cancelled();
    const Index k1 = std::min(k0 + kBlock, n);
    done.tail(n - k0).setZero();
    for (Index j = k0; j < k1; ++j) {
      Index best = j;
      double top = w(j, j) - done(j);
      for (Index i = j + 1; i < n; ++i)
        if (w(i, i) - done(i) > top) top = w(i, i) - done(i), best = i;
      if (!(top > tolerance)) {
        stopped = true;
        break;
      }
      if (best != j) {
        symmetric_swap_lower(w, j, best);
        std::swap(done(j), done(best));
        std::swap(out.pivots(j), out.pivots(best));
      }
      const double pivot = std::sqrt(top);
      w(j, j) = pivot;
      rank = j + 1;
      if (j + 1 == n) break;
      if (j > k0)
        w.col(j).tail(n - j - 1).noalias() -=
            w.block(j + 1, k0, n - j - 1, j - k0) * w.row(j).segment(k0, j - k0).transpose();
      w.col(j).tail(n - j - 1) /= pivot;
      done.tail(n - j - 1) += w.col(j).tail(n - j - 1).cwiseAbs2();
    }
    if (stopped || k1 == n) break;
    // Trailing update W(k1:, k1:) −= W(k1:, k0:k1)·W(k1:, k0:k1)ᵀ, lower part, by column panels.
    const Index trailing = n - k1, nb = k1 - k0, panels = (trailing + kPanel - 1) / kPanel;
    ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads)) if (panels > 1)
    for (Index q = 0; q < panels; ++q) errors.run(static_cast<long long>(q), [&] {
      const Index c0 = k1 + q * kPanel, width = std::min(kPanel, n - c0), rows = n - c0;
#ifdef EMERGENT_USE_LAPACK
      SerialBlas serial;
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(width),
                  static_cast<int>(nb), -1.0, w.data() + k0 * n + c0, static_cast<int>(n),
                  w.data() + k0 * n + c0, static_cast<int>(n), 1.0, w.data() + c0 * n + c0, static_cast<int>(n));
#else
      w.block(c0, c0, rows, width).noalias() -= w.block(c0, k0, rows, nb) * w.block(c0, k0, width, nb).transpose();
#endif
    });
    errors.rethrow();
  }
  out.rank = rank;
  out.factor = w.leftCols(rank).triangularView<Eigen::Lower>();
  return out;
}

MatrixXd pivoted_cholesky_remainder(const MatrixXd& a, const PivotedCholesky& f, int threads) {
  const Index n = a.rows(), r = f.rank, rest = n - r;
  MatrixXd s(rest, rest);
  for (Index j = 0; j < rest; ++j)
    for (Index i = 0; i < rest; ++i) {
      const Index p = f.pivots(r + i), q = f.pivots(r + j);
      s(i, j) = p >= q ? a(p, q) : a(q, p);
    }
  if (rest == 0 || r == 0) return s;
  const MatrixXd l2t = f.factor.bottomRows(rest).transpose();  // rank × (N − rank)
  return s - symmetric_product(l2t, l2t, threads);
}

MatrixXd lower_trapezoidal_product(const MatrixXd& a, const MatrixXd& l) {
  const Index m = a.rows(), n = l.rows(), r = l.cols();
  if (a.cols() != n || r > n)
    throw std::invalid_argument("lower_trapezoidal_product: shapes (" + std::to_string(m) + ", " +
                                std::to_string(a.cols()) + ") and (" + std::to_string(n) + ", " + std::to_string(r) +
                                ") do not fit");
  if (m == 0 || r == 0) return MatrixXd::Zero(m, r);
  MatrixXd c = a.leftCols(r);
#ifdef EMERGENT_USE_LAPACK
  SerialBlas serial;
  cblas_dtrmm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, static_cast<int>(m),
              static_cast<int>(r), 1.0, l.data(), static_cast<int>(n), c.data(), static_cast<int>(m));
  if (n > r)
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(r),
                static_cast<int>(n - r), 1.0, a.data() + r * m, static_cast<int>(m), l.data() + r,
                static_cast<int>(n), 1.0, c.data(), static_cast<int>(m));
#else
  c = c * l.topRows(r).triangularView<Eigen::Lower>();
  if (n > r) c.noalias() += a.rightCols(n - r).lazyProduct(l.bottomRows(n - r));  // see add_symmetric_rank2k_lower
#endif
  return c;
}

void add_gram_lower(MatrixXd& c, const MatrixXd& b, double alpha) {
  const Index m = b.rows(), k = b.cols();
  if (c.rows() != m || c.cols() != m) throw std::invalid_argument("add_gram_lower: shapes do not fit");
  if (m == 0 || k == 0) return;
#ifdef EMERGENT_USE_LAPACK
  SerialBlas serial;
  cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, static_cast<int>(m), static_cast<int>(k), alpha, b.data(),
              static_cast<int>(m), 1.0, c.data(), static_cast<int>(m));
#else
  c.selfadjointView<Eigen::Lower>().rankUpdate(b, alpha);
#endif
}

void add_symmetric_rank2k_lower(MatrixXd& c, const MatrixXd& a, const MatrixXd& b, double alpha) {
  const Index m = a.rows(), k = a.cols();
  if (b.rows() != m || b.cols() != k || c.rows() != m || c.cols() != m)
    throw std::invalid_argument("add_symmetric_rank2k_lower: shapes do not fit");
  if (m == 0 || k == 0) return;
#ifdef EMERGENT_USE_LAPACK
  SerialBlas serial;
  cblas_dsyr2k(CblasColMajor, CblasLower, CblasNoTrans, static_cast<int>(m), static_cast<int>(k), alpha, a.data(),
               static_cast<int>(m), b.data(), static_cast<int>(m), 1.0, c.data(), static_cast<int>(m));
#else
  // A coefficient-wise (lazy) product: Eigen's blocked general product is also instantiated,
  // without EIGEN_DONT_PARALLELIZE, by consumers of the library and may be the copy the linker
  // keeps, whose blocking (and so rounding) depends on the OpenMP thread count.
  const MatrixXd ab = a.lazyProduct(b.transpose());
  c.triangularView<Eigen::Lower>() += alpha * (ab + ab.transpose());
#endif
}

}  // namespace emergent::detail

