// Internal: Householder reduction of a symmetric matrix to tridiagonal form, A = Q·T·Qᵀ, on
// several cores with bits that do not depend on the thread count.
//
// The algorithm is the blocked one of LAPACK's dsytrd/dlatrd (Dongarra, Hammarling & Sorensen,
// "Block reduction of matrices to condensed forms for eigenvalue computations", J. Comput. Appl.
// Math. 27, 1989; Golub & Van Loan, Matrix Computations §8.3.1): a panel of kTridiagonalPanel
// columns is reduced one reflector at a time, each needing one symmetric matrix-vector product
// with the not yet updated trailing matrix plus rank-(2·i) corrections; then the trailing matrix
// receives the panel's rank-2·nb update A ← A − V·Wᵀ − W·Vᵀ at matrix-matrix speed.
//
// Both expensive parts are split into pieces fixed by the matrix size alone — column blocks of
// equal area for the matrix-vector product, each accumulating into its own partial vector, the
// partial vectors summed in piece order; fixed column panels for the rank-2·nb update, each one
// single-threaded call — and the pieces are shared among the threads. So every floating-point
// operation and its order is the same at any thread count.
#pragma once

#include <Eigen/Core>

namespace emergent::detail {

// Columns per panel (dlatrd's nb). Fixed: the bits of the result depend on it.
inline constexpr Eigen::Index kTridiagonalPanel = 32;

struct Tridiagonal {
  Eigen::VectorXd diagonal;      // T's diagonal, n entries
  Eigen::VectorXd off_diagonal;  // T's first subdiagonal, n − 1 entries
  Eigen::VectorXd tau;           // the reflectors' scalars, n − 1 entries
};

// Reduces the symmetric matrix `a` (n×n; only its lower triangle is read) in place to dsytrd's
// output with UPLO = 'L': Q = H(0)·H(1)···H(n−2), H(j) = I − tau(j)·v·vᵀ with v(0:j+1) = 0,
// v(j+1) = 1 and v(j+2:n) stored in a(j+2:n, j); a's diagonal and subdiagonal hold T, its strict
// upper triangle is left alone. So LAPACK's dstedc/dormtr('L') take the result unchanged.
// `threads` (0: OpenMP default) shares the pieces out; the result does not depend on it.
Tridiagonal tridiagonalize(Eigen::MatrixXd& a, int threads = 1);

}  // namespace emergent::detail
