// Internal: the dense linear algebra whose speed matters — symmetric eigendecompositions of
// kernel matrices and the large products — on LAPACK/BLAS (OpenBLAS) when the build has them
// (meson option `blas`), on Eigen otherwise.
//
// Determinism: every BLAS/LAPACK call here runs on one thread. OpenBLAS splits a product
// differently for each thread count, and so rounds differently; parallel work is split instead
// into fixed panels (depending on the shapes only), one single-threaded call each, so the bits
// of every result are the same at any thread count.
#pragma once

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
SymmetricEigen symmetric_eigen(const Eigen::MatrixXd& a, bool vectors = true, int threads = 1,
                               TridiagonalReduction reduction = TridiagonalReduction::pieces);

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

}  // namespace emergent::detail
