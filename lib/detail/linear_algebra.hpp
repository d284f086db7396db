// Internal: the dense linear algebra whose speed matters — symmetric eigendecompositions of
// kernel matrices and the large products — on LAPACK/BLAS (OpenBLAS) when the build has them
// (meson option `blas`), on Eigen otherwise.
//
// Determinism: every BLAS/LAPACK call here runs on one thread. OpenBLAS splits a product
// differently for each thread count, and so rounds differently; parallel work is split instead
// into fixed panels (depending on the shapes only), one single-threaded call each, so the bits
// of every result are the same at any thread count.
#pragma once

#include <functional>

#include <Eigen/Core>

namespace emergent::detail {

// True when built against LAPACK/BLAS, false for the Eigen-only build.
bool uses_lapack();

struct SymmetricEigen {
  Eigen::VectorXd values;   // ascending
  Eigen::MatrixXd vectors;  // column i belongs to values(i); empty when only values were asked
  bool converged = true;
};

// How symmetric_eigen reduces to tridiagonal form: on fixed pieces shared by the threads
// (detail/tridiagonalization.hpp), or by LAPACK's dsytrd on one thread (the reference).
enum class TridiagonalReduction { pieces, lapack };

// Eigendecomposition of the symmetric matrix `a` (only its lower triangle is read): LAPACK's
// divide and conquer dsyevd (Demmel, Applied Numerical Linear Algebra §5.3.3) with its
// reduction and back-transformation split into fixed pieces, or Eigen's SelfAdjointEigenSolver
// in the Eigen-only build. `threads` (0: OpenMP default) shares out the pieces; the result does
// not depend on it. Values only (vectors = false): dsyevd itself, on one thread.
//
// `alongside`, when given, is run once on a second thread while the tridiagonal eigensolver
// (dstedc, single-threaded) runs, when `threads` allows two and vectors are asked; otherwise after
// the decomposition. It must give the same result on any thread (single-threaded calls only); an
// exception it throws is rethrown here.
SymmetricEigen symmetric_eigen(const Eigen::MatrixXd& a, bool vectors = true, int threads = 1,
                               TridiagonalReduction reduction = TridiagonalReduction::pieces,
                               const std::function<void()>& alongside = {});

// op(a)·op(b) with op = transpose where asked, computed over fixed column panels of the result
// on up to `threads` threads (0: OpenMP default); bits independent of `threads`.
Eigen::MatrixXd product(const Eigen::MatrixXd& a, bool transpose_a, const Eigen::MatrixXd& b,
                        bool transpose_b, int threads = 1);

// aᵀ·b for a product known to be symmetric, such as Vᵀ·(K·V) with K symmetric: only the column
// panels' parts on and above the diagonal are multiplied (half the flops of product()), each
// diagonal block is averaged with its transpose and the upper triangle mirrored, so the result is
// exactly symmetric. Fixed panels: bits independent of `threads`.
Eigen::MatrixXd symmetric_product(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, int threads = 1);

// Row-major C(m×n) = alpha·A(m×k)·B(n×k)ᵀ, one single-threaded call (the Gram tile of the
// kernels' input layer).
void gemm_abt_rowmajor(Eigen::Index m, Eigen::Index n, Eigen::Index k, double alpha, const double* a,
                       Eigen::Index lda, const double* b, Eigen::Index ldb, double* c, Eigen::Index ldc);

// Pivoted Cholesky of a symmetric positive semidefinite matrix (only the lower triangle of `a`
// is read): a[π, π] = L·Lᵀ + [0 0; 0 S] with L N×rank lower trapezoidal, π the pivot order
// (largest remaining diagonal first) and S the Schur complement left when every remaining
// diagonal is ≤ `tolerance` (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.,
// §10.3, whose stopping rule LAPACK's dpstrf implements), blocked as dpstrf with the trailing
// updates over fixed column panels on up to `threads` threads: bits independent of `threads`.
// S is not returned: callers that need it recompute it from `a` (pivoted_cholesky_remainder).
struct PivotedCholesky {
  Eigen::MatrixXd factor;                 // L: N×rank, rows in pivot order, zero above the diagonal
  Eigen::VectorXi pivots;                 // π: row i of L belongs to row pivots(i) of a
  Eigen::Index rank = 0;
};
PivotedCholesky pivoted_cholesky(const Eigen::MatrixXd& a, double tolerance, int threads = 1);

// S = a[π₂, π₂] − L₂·L₂ᵀ, the (N − rank)² Schur complement a pivoted Cholesky leaves (π₂ the pivots
// after `rank`, L₂ the factor's last N − rank rows), exactly symmetric; fixed panels, bits
// independent of `threads`.
Eigen::MatrixXd pivoted_cholesky_remainder(const Eigen::MatrixXd& a, const PivotedCholesky& f, int threads = 1);

// a·l with l N×r lower trapezoidal (zero above its diagonal; N ≥ r): by fixed column blocks of l,
// one dgemm each over the rows of l from the block's diagonal down, ≈ m·r·(2N − r) flops instead
// of 2·m·N·r. One thread.
Eigen::MatrixXd lower_trapezoidal_product(const Eigen::MatrixXd& a, const Eigen::MatrixXd& l);

// lᵀ·b with l N×r lower trapezoidal (zero above its diagonal; N ≥ r) and b N×m: by fixed row
// blocks of lᵀ (shared by up to `threads` threads), one dgemm each over the rows of l and b from
// the block's diagonal down, ≈ m·r·(2N − r) flops; bits independent of `threads`.
Eigen::MatrixXd lower_trapezoidal_transpose_product(const Eigen::MatrixXd& l, const Eigen::MatrixXd& b,
                                                    int threads = 1);

// Lower triangle of c += alpha·b·bᵀ (dsyrk, m²·k flops); the upper triangle is not touched. One thread.
void add_gram_lower(Eigen::MatrixXd& c, const Eigen::MatrixXd& b, double alpha);

// Lower triangle of c += alpha·(a·bᵀ + b·aᵀ) (dsyr2k, 2·m²·k flops); the upper triangle is not
// touched. One thread.
void add_symmetric_rank2k_lower(Eigen::MatrixXd& c, const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, double alpha);

}  // namespace emergent::detail
