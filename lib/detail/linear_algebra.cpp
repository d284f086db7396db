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
#include "detail/serial_blas.hpp"
#include "detail/tridiagonalization.hpp"
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
lapack_int lapack_size(Index n, const char* what) {
  if (n > static_cast<Index>(std::numeric_limits<lapack_int>::max()))
    throw std::invalid_argument(std::string(what) + ": dimension " + std::to_string(n) +
                                " exceeds the LAPACK integer range");
  return static_cast<lapack_int>(n);
}
#endif

constexpr Index kPanel = 256;  // columns per independent product (fixed: the bits depend on it)
constexpr Index kReflectorBlock = 128;  // reflectors per block of the back-transformation (fixed too)
constexpr Index kTrapezoidBlock = 256;  // factor columns per product in the trapezoidal products (fixed too)

}  // namespace

bool uses_lapack() {
#ifdef EMERGENT_USE_LAPACK
  return true;
#else
  return false;
#endif
}

namespace {
SymmetricEigen symmetric_eigen_impl(const MatrixXd& a, bool vectors, int threads, TridiagonalReduction reduction,
                                    const std::function<void()>& alongside, bool& ran_alongside) {
  SymmetricEigen out;
  const Index n = a.rows();
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
  // dsyevd = dsytrd (A = Q·T·Qᵀ) + dstedc (T = Z·Λ·Zᵀ) + dormtr (V = Q·Z). The reduction runs
  // on fixed pieces shared by the threads (detail/tridiagonalization.hpp), or as LAPACK's
  // single-threaded dsytrd; the back-transformation is a third of the flops and splits into
  // independent column panels of Z, each one single-threaded call. So the bits do not depend on
  // the thread count.
  MatrixXd qt = a;
  Eigen::VectorXd e(std::max<Index>(n - 1, 1)), tau(std::max<Index>(n - 1, 1));
  lapack_int info = 0;
  if (reduction == TridiagonalReduction::pieces) {
    Tridiagonal t = tridiagonalize(qt, threads);
    out.values = std::move(t.diagonal);
    e.head(n - 1) = t.off_diagonal;
    tau.head(n - 1) = t.tau;
  }
  // V = Q·Z. LAPACK's dormtr applies the reflectors in blocks of 32; applying them in blocks of
  // kReflectorBlock as H = I − Y·T·Yᵀ (dlarft once per block, then dlarfb on each panel; Schreiber
  // & Van Loan, SIAM J. Sci. Stat. Comput. 10, 1989) reads each panel of Z a quarter as often.
  // Blocks and panels are fixed by n; each call is single-threaded. The T factors need only Q, so
  // with two threads they are formed while dstedc runs.
  const bool blocked = reduction == TridiagonalReduction::pieces;
  const Index reflectors = n - 1, blocks = (reflectors + kReflectorBlock - 1) / kReflectorBlock;
  MatrixXd t_factors(kReflectorBlock, blocked ? kReflectorBlock * blocks : 0);
  bool failed = false, t_factors_pending = blocked;
  const auto compute_t_factors = [&](int team) {
    t_factors_pending = false;
    for (Index j = 0; j + 1 < n; ++j) qt(j + 1, j) = 1.0;  // Y's unit diagonal (e is saved apart)
    ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) num_threads(team) if (blocks > 1 && team > 1)
    for (Index b = 0; b < blocks; ++b) errors.run(static_cast<long long>(b), [&] {
      const Index k = b * kReflectorBlock, kb = std::min(kReflectorBlock, reflectors - k);
      SerialBlas serial;
      const lapack_int info = LAPACKE_dlarft_work(LAPACK_COL_MAJOR, 'F', 'C', static_cast<lapack_int>(n - k - 1),
                                             static_cast<lapack_int>(kb), qt.data() + k * n + k + 1, N, tau.data() + k,
                                             t_factors.data() + b * kReflectorBlock * kReflectorBlock,
                                             static_cast<lapack_int>(kReflectorBlock));
      if (info != 0) {
#pragma omp atomic write
        failed = true;
      }
    });
    errors.rethrow();
  };
  {
    SerialBlas serial;
    if (reduction == TridiagonalReduction::lapack)
      info = LAPACKE_dsytrd(LAPACK_COL_MAJOR, 'L', N, qt.data(), N, out.values.data(), e.data(), tau.data());
    throw_if_cancelled();
    if (info == 0) {
      out.vectors.resize(n, n);
      // dstedc runs on one thread; a second one forms the T factors and takes the caller's
      // independent work meanwhile (a region nested in another may get one thread: then both
      // run after).
      if ((alongside || t_factors_pending) && thread_count(threads) > 1) {
        ParallelErrors errors;
#pragma omp parallel num_threads(2)
        {
          if (omp_get_thread_num() == 0) {
            SerialBlas serial_dstedc;
            info = LAPACKE_dstedc(LAPACK_COL_MAJOR, 'I', N, out.values.data(), e.data(), out.vectors.data(), N);
          } else if (omp_get_thread_num() == 1) {
            errors.run(0, [&] {
              SerialBlas serial_second;
              if (t_factors_pending) compute_t_factors(1);
              if (alongside) {
                ran_alongside = true;
                alongside();
              }
            });
          }
        }
        errors.rethrow();
      } else {
        info = LAPACKE_dstedc(LAPACK_COL_MAJOR, 'I', N, out.values.data(), e.data(), out.vectors.data(), N);
      }
    }
    if (info != 0) {
      out.converged = false;
      out.vectors.resize(0, 0);
      return out;
    }
  }
  throw_if_cancelled();  // between the reductions and the back-transformation
  if (t_factors_pending) compute_t_factors(thread_count(threads));
  const Index panels = (n + kPanel - 1) / kPanel;
  ParallelErrors errors;  // cancellation is checked per panel
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads)) if (panels > 1)
  for (Index p = 0; p < panels; ++p) {
    errors.run(static_cast<long long>(p), [&] {
      const Index c0 = p * kPanel, w = std::min(kPanel, n - c0);
      double* z = out.vectors.data() + c0 * n;
      SerialBlas serial;
      lapack_int info = 0;
      // The _work entry points skip LAPACKE's NaN scan of the whole panel on every call.
      std::vector<double> work(blocked ? static_cast<std::size_t>(w * kReflectorBlock) : 0);
      if (!blocked)
        info = LAPACKE_dormtr(LAPACK_COL_MAJOR, 'L', 'L', 'N', N, static_cast<lapack_int>(w), qt.data(), N,
                              tau.data(), z, N);
      for (Index b = blocks - 1; blocked && b >= 0 && info == 0; --b) {  // Q·Z = H(0)···H(n−2)·Z
        const Index k = b * kReflectorBlock, kb = std::min(kReflectorBlock, reflectors - k);
        info = LAPACKE_dlarfb_work(LAPACK_COL_MAJOR, 'L', 'N', 'F', 'C', static_cast<lapack_int>(n - k - 1),
                                   static_cast<lapack_int>(w), static_cast<lapack_int>(kb), qt.data() + k * n + k + 1,
                                   N, t_factors.data() + b * kReflectorBlock * kReflectorBlock,
                                   static_cast<lapack_int>(kReflectorBlock), z + k + 1, N, work.data(),
                                   static_cast<lapack_int>(w));
      }
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
  (void)reduction;
  (void)alongside;
  (void)ran_alongside;
  Eigen::SelfAdjointEigenSolver<MatrixXd> solver(a, vectors ? Eigen::ComputeEigenvectors : Eigen::EigenvaluesOnly);
  out.converged = solver.info() == Eigen::Success;
  out.values = solver.eigenvalues();
  if (vectors) out.vectors = solver.eigenvectors();
  return out;
#endif
}
}  // namespace

SymmetricEigen symmetric_eigen(const MatrixXd& a, bool vectors, int threads, TridiagonalReduction reduction,
                               const std::function<void()>& alongside) {
  const Index n = a.rows();
  if (a.cols() != n) throw std::invalid_argument("symmetric_eigen: expected a square matrix");
  bool ran_alongside = false;
  SymmetricEigen out = symmetric_eigen_impl(a, vectors, threads, reduction, alongside, ran_alongside);
  if (alongside && !ran_alongside) alongside();
  return out;
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
  // Mirror the upper triangle by 64×64 tiles (a column-by-column mirror reads the rows with stride
  // n, one cache miss per entry); pure copies, so the bits do not depend on `threads`.
  constexpr Index kTile = 64;
  const Index tiles = (n + kTile - 1) / kTile;
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads)) if (tiles > 1)
  for (Index tj = 0; tj < tiles; ++tj) {
    const Index j0 = tj * kTile, j1 = std::min(n, j0 + kTile);
    for (Index i0 = j0; i0 < n; i0 += kTile) {
      const Index i1 = std::min(n, i0 + kTile);
      for (Index j = j0; j < j1; ++j)
        for (Index i = std::max(i0, j + 1); i < i1; ++i) c(i, j) = c(j, i);
    }
  }
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
// Swaps index j < p of the symmetric matrix held in the lower triangle of w, as dpstf2 does, but
// only within the current block's columns k0 ≤ c < j of the factor rows: the rows of the finished
// columns c < k0 are interchanged once at the end (apply_deferred_swaps), column by column. The
// strip between j and p (row p of w) is the one strided access left.
void symmetric_swap_lower(MatrixXd& w, Index k0, Index j, Index p) {
  const Index n = w.rows();
  for (Index c = k0; c < j; ++c) std::swap(w(j, c), w(p, c));
  std::swap(w(j, j), w(p, p));
  double* cj = w.col(j).data();
  double* cp = w.col(p).data();
  for (Index i = p + 1; i < n; ++i) std::swap(cj[i], cp[i]);
  for (Index i = j + 1; i < p; ++i) std::swap(cj[i], w(p, i));
}

// The row interchanges of steps ≥ k1 applied to the columns of the block [k0, k1), and the strict
// upper triangle zeroed: each column is contiguous, so this is one cached pass per column instead
// of a strided row swap per step. Pure data movement: the bits do not depend on `threads`.
void finish_factor(MatrixXd& w, const std::vector<Index>& swap_with, Index rank, Index block, int threads) {
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads) if (rank > block)
  for (Index c = 0; c < rank; ++c) {
    const Index k1 = std::min(rank, (c / block + 1) * block);
    double* col = w.col(c).data();
    std::fill(col, col + c, 0.0);
    for (Index j = k1; j < rank; ++j)
      if (swap_with[static_cast<std::size_t>(j)] != j) std::swap(col[j], col[swap_with[static_cast<std::size_t>(j)]]);
  }
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
  // Unlike dpstf2/dpstrf, the remaining diagonal is searched in a contiguous copy (not with stride
  // N + 1) and the finished columns' rows are interchanged once at the end (not per step, with
  // stride N): those strided passes cost more than the block's arithmetic at N in the thousands.
  constexpr Index kBlock = 64;
  MatrixXd w(n, n);
#pragma omp parallel for schedule(static) num_threads(thread_count(threads)) if (n > kBlock)
  for (Index c = 0; c < n; ++c) std::copy(a.col(c).data(), a.col(c).data() + n, w.col(c).data());
  Eigen::VectorXd diagonal = w.diagonal();  // of the trailing matrix as of the block's start
  Eigen::VectorXd done(n);  // per row, the squares of the current block's factor entries
  std::vector<Index> swap_with(static_cast<std::size_t>(n));
  Index rank = 0;
  bool stopped = false;
  for (Index k0 = 0; k0 < n && !stopped; k0 += kBlock) {
    throw_if_cancelled();
    const Index k1 = std::min(k0 + kBlock, n);
    done.tail(n - k0).setZero();
    for (Index j = k0; j < k1; ++j) {
      Index best = j;
      double top = diagonal(j) - done(j);
      for (Index i = j + 1; i < n; ++i) {
        const double d = diagonal(i) - done(i);
        if (d > top) top = d, best = i;
      }
      if (!(top > tolerance)) {
        stopped = true;
        break;
      }
      swap_with[static_cast<std::size_t>(j)] = best;
      if (best != j) {
        symmetric_swap_lower(w, k0, j, best);
        std::swap(diagonal(j), diagonal(best));
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
      for (Index c = c0; c < c0 + width; ++c) diagonal(c) = w(c, c);
    });
    errors.rethrow();
  }
  out.rank = rank;
  finish_factor(w, swap_with, rank, kBlock, thread_count(threads));
  if (rank == n) out.factor = std::move(w);
  else out.factor = w.leftCols(rank);
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
  MatrixXd c(m, r);
#ifdef EMERGENT_USE_LAPACK
  SerialBlas serial;
  // By column blocks of l: block [c0, c1) is zero above row c0, so its product is one dgemm over
  // rows c0..N of l (the block's upper triangle multiplied as the zeros it holds). OpenBLAS's
  // dtrmm runs at a fraction of its dgemm rate (9 against ≈ 40 GFLOP/s per core at N = 4000); the
  // zeros cost w·m·w flops per block, w/N of the total. kBlock is fixed, so the bits do not
  // depend on the caller's threads.
  const int lda = static_cast<int>(m), ldl = static_cast<int>(n);
  for (Index c0 = 0; c0 < r; c0 += kTrapezoidBlock) {
    const Index w = std::min(kTrapezoidBlock, r - c0);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, lda, static_cast<int>(w), static_cast<int>(n - c0), 1.0,
                a.data() + c0 * m, lda, l.data() + c0 + c0 * n, ldl, 0.0, c.data() + c0 * m, lda);
  }
#else
  c = a.leftCols(r) * l.topRows(r).triangularView<Eigen::Lower>();
  if (n > r) c.noalias() += a.rightCols(n - r).lazyProduct(l.bottomRows(n - r));  // see add_symmetric_rank2k_lower
#endif
  return c;
}

MatrixXd lower_trapezoidal_transpose_product(const MatrixXd& l, const MatrixXd& b, int threads) {
  const Index n = l.rows(), r = l.cols(), m = b.cols();
  if (b.rows() != n || r > n)
    throw std::invalid_argument("lower_trapezoidal_transpose_product: shapes (" + std::to_string(n) + ", " +
                                std::to_string(r) + ") and (" + std::to_string(b.rows()) + ", " + std::to_string(m) +
                                ") do not fit");
  if (m == 0 || r == 0) return MatrixXd::Zero(r, m);
  MatrixXd c(r, m);
#ifdef EMERGENT_USE_LAPACK
  // By fixed row blocks of lᵀ: block [c0, c1) is zero left of column c0, so it is one dgemm over
  // rows c0..N of l and b with all m columns (the longest first: they are handed out in order).
  const Index blocks = (r + kTrapezoidBlock - 1) / kTrapezoidBlock;
  ParallelErrors errors;  // cancellation is checked per block
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads)) if (blocks > 1)
  for (Index q = 0; q < blocks; ++q) errors.run(static_cast<long long>(q), [&] {
    const Index c0 = q * kTrapezoidBlock, w = std::min(kTrapezoidBlock, r - c0);
    SerialBlas serial;
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, static_cast<int>(w), static_cast<int>(m),
                static_cast<int>(n - c0), 1.0, l.data() + c0 + c0 * n, static_cast<int>(n), b.data() + c0,
                static_cast<int>(n), 0.0, c.data() + c0, static_cast<int>(r));
  });
#else
  const Index panels = (m + kPanel - 1) / kPanel;
  ParallelErrors errors;  // cancellation is checked per panel
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count(threads)) if (panels > 1)
  for (Index p = 0; p < panels; ++p) errors.run(static_cast<long long>(p), [&] {
    const Index p0 = p * kPanel, pw = std::min(kPanel, m - p0);
    c.middleCols(p0, pw) = l.topRows(r).transpose().triangularView<Eigen::Upper>() * b.block(0, p0, r, pw);
    if (n > r) c.middleCols(p0, pw).noalias() += l.bottomRows(n - r).transpose() * b.block(r, p0, n - r, pw);
  });
#endif
  errors.rethrow();
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

