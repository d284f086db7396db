// The internal dense linear algebra (lib/detail): the tridiagonal reduction against its
// definition (A = Q·T·Qᵀ with Q the product of the stored reflectors, rebuilt here with Eigen),
// the eigendecomposition against its definition (A·V = V·Λ, VᵀV = I) and against LAPACK's own
// dsytrd-based one, and bit-identical results at any thread count.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <Eigen/Dense>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "detail/linear_algebra.hpp"
#include "detail/tridiagonalization.hpp"

using emergent::detail::kTridiagonalPanel;
using emergent::detail::symmetric_eigen;
using emergent::detail::SymmetricEigen;
using emergent::detail::Tridiagonal;
using emergent::detail::TridiagonalReduction;
using emergent::detail::tridiagonalize;
using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

const double kEps = std::numeric_limits<double>::epsilon();

// A random symmetric matrix with a spread spectrum (a Wishart-like Gram plus a diagonal).
MatrixXd random_symmetric(Index n, std::uint64_t seed) {
  const MatrixXd g = emergent::test::normals(n, n, seed);
  MatrixXd a = (g + g.transpose()) / 2.0;
  for (Index i = 0; i < n; ++i) a(i, i) += static_cast<double>(i % 7) - 3.0;
  return a;
}

// Q·T·Qᵀ from dsytrd's lower storage, rebuilt independently: Q = H(0)···H(n−2), each
// H(j) = I − tau(j)·v·vᵀ with v = (0…0, 1, a(j+2:n, j)), applied to T from the innermost out.
MatrixXd rebuild(const MatrixXd& reduced, const Tridiagonal& t, MatrixXd* q_out = nullptr) {
  const Index n = reduced.rows();
  MatrixXd m = MatrixXd::Zero(n, n);
  for (Index i = 0; i < n; ++i) {
    m(i, i) = t.diagonal(i);
    if (i + 1 < n) m(i + 1, i) = m(i, i + 1) = t.off_diagonal(i);
  }
  MatrixXd q = MatrixXd::Identity(n, n);
  for (Index j = n - 2; j >= 0; --j) {
    VectorXd v = VectorXd::Zero(n);
    v(j + 1) = 1.0;
    for (Index i = j + 2; i < n; ++i) v(i) = reduced(i, j);
    const double tau = t.tau(j);
    const Eigen::RowVectorXd vm = v.transpose() * m;  // m ← H·m·H as two rank-one updates
    m.noalias() -= tau * v * vm;
    const VectorXd mv = m * v;
    m.noalias() -= tau * mv * v.transpose();
    const Eigen::RowVectorXd vq = v.transpose() * q;
    q.noalias() -= tau * v * vq;
  }
  if (q_out) *q_out = q;
  return m;
}

bool same_bits(const MatrixXd& a, const MatrixXd& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}
bool same_bits(const VectorXd& a, const VectorXd& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}

// Sizes around the panel width and the parallel thresholds, none of them a multiple of the panel
// except one.
std::vector<Index> odd_sizes() {
  const Index nb = kTridiagonalPanel;
  return {1, 2, 3, 5, nb - 1, nb, nb + 1, 2 * nb + 1, 3 * nb - 1, 97, 401};
}

}  // namespace

TEST_CASE("tridiagonalize: A = Q·T·Qᵀ, Q orthogonal, in dsytrd's lower storage") {
  for (const Index n : odd_sizes()) {
    CAPTURE(n);
    const MatrixXd a = random_symmetric(n, 11 + static_cast<std::uint64_t>(n));
    MatrixXd reduced = a;
    // The strict upper triangle is neither read nor written: fill it with garbage.
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < j; ++i) reduced(i, j) = 1e300;
    const Tridiagonal t = tridiagonalize(reduced, 2);
    REQUIRE(t.diagonal.size() == n);
    REQUIRE(t.off_diagonal.size() == n - 1);
    REQUIRE(t.tau.size() == n - 1);
    MatrixXd q;
    const MatrixXd qtq = rebuild(reduced, t, &q);
    const double bound = 10.0 * static_cast<double>(n) * kEps;
    CHECK((a - qtq).norm() / a.norm() < bound);
    CHECK((q.transpose() * q - MatrixXd::Identity(n, n)).norm() < bound);
    // dsytrd's layout: T's diagonal and subdiagonal sit in the matrix too, the upper part is untouched.
    for (Index j = 0; j < n; ++j) {
      CHECK(reduced(j, j) == t.diagonal(j));
      if (j + 1 < n) CHECK(reduced(j + 1, j) == t.off_diagonal(j));
      for (Index i = 0; i < j; ++i) CHECK(reduced(i, j) == 1e300);
    }
    // Each H(j) is orthogonal: tau = 0 (identity) or tau·vᵀv = 2.
    for (Index j = 0; j + 1 < n; ++j) {
      double vv = 1.0;
      for (Index i = j + 2; i < n; ++i) vv += reduced(i, j) * reduced(i, j);
      if (t.tau(j) != 0.0) CHECK(std::abs(t.tau(j) * vv - 2.0) < 1e-13);
    }
  }
}

TEST_CASE("tridiagonalize: a tridiagonal matrix comes back unchanged, with identity reflectors") {
  const Index n = 2 * kTridiagonalPanel + 7;
  MatrixXd a = MatrixXd::Zero(n, n);
  for (Index i = 0; i < n; ++i) {
    a(i, i) = 1.0 + 0.25 * static_cast<double>(i);
    if (i + 1 < n) a(i + 1, i) = a(i, i + 1) = std::sin(static_cast<double>(i) + 1.0);
  }
  MatrixXd reduced = a;
  const Tridiagonal t = tridiagonalize(reduced, 2);
  CHECK(t.tau.cwiseAbs().maxCoeff() == 0.0);
  CHECK(t.diagonal == a.diagonal());
  CHECK(t.off_diagonal == a.diagonal(-1));
  CHECK(same_bits(reduced, a));
}

TEST_CASE("tridiagonalize: magnitudes near underflow and overflow keep their relative accuracy") {
  const Index n = kTridiagonalPanel + 9;
  const MatrixXd a = random_symmetric(n, 5);
  MatrixXd unit = a;
  const Tridiagonal t = tridiagonalize(unit, 1);
  for (const double scale : {1e-300, 1e300}) {
    CAPTURE(scale);
    MatrixXd scaled = a * scale;
    const Tridiagonal s = tridiagonalize(scaled, 1);
    REQUIRE(s.diagonal.allFinite());
    REQUIRE(s.off_diagonal.allFinite());
    const MatrixXd back = rebuild(scaled, s) / scale;
    CHECK((a - back).norm() / a.norm() < 10.0 * static_cast<double>(n) * kEps);
    // T is unique up to the signs of its off-diagonal: compare |e| with the unscaled reduction.
    CHECK((s.diagonal / scale - t.diagonal).norm() / t.diagonal.norm() < 1e-13);
    CHECK((s.off_diagonal.cwiseAbs() / scale - t.off_diagonal.cwiseAbs()).norm() / t.off_diagonal.norm() < 1e-13);
  }
}

TEST_CASE("tridiagonalize: empty, bad shapes and the zero matrix") {
  MatrixXd empty(0, 0);
  const Tridiagonal t0 = tridiagonalize(empty, 2);
  CHECK(t0.diagonal.size() == 0);
  CHECK(t0.off_diagonal.size() == 0);
  MatrixXd rectangle(3, 4);
  rectangle.setOnes();
  const std::string message = emergent::test::error_of<std::invalid_argument>([&] { tridiagonalize(rectangle, 1); });
  CHECK(message.find("3 x 4") != std::string::npos);
  MatrixXd zero = MatrixXd::Zero(40, 40);
  const Tridiagonal tz = tridiagonalize(zero, 2);
  CHECK(tz.diagonal.cwiseAbs().maxCoeff() == 0.0);
  CHECK(tz.off_diagonal.cwiseAbs().maxCoeff() == 0.0);
  CHECK(tz.tau.cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("tridiagonalize and symmetric_eigen: bit-identical at 1, 2 and 3 threads") {
  // Large enough that the products run their pieces in parallel (several symv pieces, several
  // trailing-update panels) and not a multiple of the panel width.
  const Index n = 700;
  const MatrixXd a = random_symmetric(n, 3);
  MatrixXd r1 = a, r2 = a, r3 = a;
  const Tridiagonal t1 = tridiagonalize(r1, 1), t2 = tridiagonalize(r2, 2), t3 = tridiagonalize(r3, 3);
  CHECK(same_bits(r1, r2));
  CHECK(same_bits(r1, r3));
  CHECK(same_bits(t1.diagonal, t2.diagonal));
  CHECK(same_bits(t1.off_diagonal, t3.off_diagonal));
  CHECK(same_bits(t1.tau, t2.tau));
  CHECK(same_bits(t1.tau, t3.tau));
  const SymmetricEigen e1 = symmetric_eigen(a, true, 1), e2 = symmetric_eigen(a, true, 2), e3 = symmetric_eigen(a, true, 3);
  REQUIRE(e1.converged);
  CHECK(same_bits(e1.values, e2.values));
  CHECK(same_bits(e1.values, e3.values));
  CHECK(same_bits(e1.vectors, e2.vectors));
  CHECK(same_bits(e1.vectors, e3.vectors));
}

TEST_CASE("symmetric_eigen: A·V = V·Λ, VᵀV = I, values equal LAPACK's dsytrd-based ones to 1e-12") {
  std::vector<Index> sizes = odd_sizes();
  sizes.push_back(520);
  for (const Index n : sizes) {
    CAPTURE(n);
    const MatrixXd a = random_symmetric(n, 29 + static_cast<std::uint64_t>(n));
    const SymmetricEigen e = symmetric_eigen(a, true, 2);
    REQUIRE(e.converged);
    REQUIRE(e.vectors.rows() == n);
    REQUIRE(e.vectors.cols() == n);
    const double scale = e.values.cwiseAbs().maxCoeff();
    const double bound = 10.0 * static_cast<double>(n) * kEps;
    CHECK((a * e.vectors - e.vectors * e.values.asDiagonal()).norm() / (scale * std::sqrt(static_cast<double>(n))) < bound);
    CHECK((e.vectors.transpose() * e.vectors - MatrixXd::Identity(n, n)).norm() < bound);
    for (Index i = 1; i < n; ++i) CHECK(e.values(i - 1) <= e.values(i));
    // Against the reference reduction (LAPACK's dsytrd; Eigen's solver in the Eigen-only build).
    const SymmetricEigen ref = symmetric_eigen(a, true, 1, TridiagonalReduction::lapack);
    REQUIRE(ref.converged);
    CHECK((e.values - ref.values).cwiseAbs().maxCoeff() / scale < 1e-12);
    const Eigen::SelfAdjointEigenSolver<MatrixXd> eigen(a, Eigen::EigenvaluesOnly);
    CHECK((e.values - eigen.eigenvalues()).cwiseAbs().maxCoeff() / scale < 1e-12);
    // Eigenvectors agree up to sign where the eigenvalue is well separated.
    for (Index i = 0; i < n; ++i) {
      const double gap = std::min(i > 0 ? e.values(i) - e.values(i - 1) : scale, i + 1 < n ? e.values(i + 1) - e.values(i) : scale);
      if (gap < 1e-3 * scale) continue;
      CHECK(std::abs(std::abs(e.vectors.col(i).dot(ref.vectors.col(i))) - 1.0) < 1e-9);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pivoted Cholesky and the trapezoidal products

namespace {

using emergent::detail::lower_trapezoidal_product;
using emergent::detail::lower_trapezoidal_transpose_product;
using emergent::detail::pivoted_cholesky;
using emergent::detail::PivotedCholesky;

// A PSD matrix of rank min(n, k) with a spread of scales: G·Gᵀ with G n×k.
MatrixXd random_psd(Index n, Index k, std::uint64_t seed) {
  MatrixXd g = emergent::test::normals(n, k, seed);
  for (Index i = 0; i < n; ++i) g.row(i) *= 1.0 + static_cast<double>(i % 5);
  return g * g.transpose();
}

// The textbook outer-product pivoted Cholesky (Higham, Accuracy and Stability of Numerical
// Algorithms, 2nd ed., Alg. 10.3 with complete pivoting), unblocked, on the whole matrix: the
// independent reference. Same rule: largest remaining diagonal (first on ties), stop at ≤ tol.
PivotedCholesky reference_pivoted_cholesky(MatrixXd a, double tol) {
  const Index n = a.rows();
  PivotedCholesky out;
  out.pivots = Eigen::VectorXi::LinSpaced(n, 0, static_cast<int>(n) - 1);
  Index j = 0;
  for (; j < n; ++j) {
    Index p = j;
    for (Index i = j + 1; i < n; ++i)
      if (a(i, i) > a(p, p)) p = i;
    if (!(a(p, p) > tol)) break;
    a.row(j).swap(a.row(p));
    a.col(j).swap(a.col(p));
    std::swap(out.pivots(j), out.pivots(p));
    a(j, j) = std::sqrt(a(j, j));
    a.col(j).tail(n - j - 1) /= a(j, j);
    a.row(j).tail(n - j - 1).setZero();
    a.bottomRightCorner(n - j - 1, n - j - 1).noalias() -=
        a.col(j).tail(n - j - 1) * a.col(j).tail(n - j - 1).transpose();
  }
  out.rank = j;
  out.factor = a.leftCols(j).triangularView<Eigen::Lower>();
  return out;
}

MatrixXd permuted(const MatrixXd& a, const Eigen::VectorXi& pi) {
  MatrixXd out(a.rows(), a.cols());
  for (Index j = 0; j < a.cols(); ++j)
    for (Index i = 0; i < a.rows(); ++i) out(i, j) = a(pi(i), pi(j));
  return out;
}

// Around the factorization's 64-column blocks and the 256-column panels.
std::vector<Index> cholesky_sizes() { return {1, 2, 3, 63, 64, 65, 129, 257, 300}; }

}  // namespace

TEST_CASE("pivoted_cholesky: a[π, π] = L·Lᵀ, complete-pivoting bounds, equal to the textbook algorithm") {
  for (const Index n : cholesky_sizes()) {
    CAPTURE(n);
    const MatrixXd a = random_psd(n, n + 3, 41 + static_cast<std::uint64_t>(n));
    const double top = a.diagonal().maxCoeff(), tol = static_cast<double>(n) * kEps * top;
    const PivotedCholesky f = pivoted_cholesky(a, tol, 2);
    REQUIRE(f.rank == n);
    REQUIRE(f.factor.rows() == n);
    REQUIRE(f.factor.cols() == n);
    CHECK(f.factor.triangularView<Eigen::StrictlyUpper>().toDenseMatrix().cwiseAbs().maxCoeff() == 0.0);
    std::vector<int> seen(static_cast<std::size_t>(n), 0);
    for (Index i = 0; i < n; ++i) ++seen[static_cast<std::size_t>(f.pivots(i))];
    CHECK(std::count(seen.begin(), seen.end(), 1) == n);  // a permutation
    CHECK((permuted(a, f.pivots) - f.factor * f.factor.transpose()).cwiseAbs().maxCoeff() < 10.0 * n * kEps * top);
    for (Index j = 0; j < n; ++j) {  // L(j,j) nonincreasing, |L(i,j)| ≤ L(j,j) (Higham Lemma 10.12)
      if (j + 1 < n) CHECK(f.factor(j + 1, j + 1) <= f.factor(j, j) * (1.0 + 1e-12));
      CHECK(f.factor.col(j).tail(n - j).cwiseAbs().maxCoeff() <= f.factor(j, j) * (1.0 + 1e-12));
    }
    const PivotedCholesky ref = reference_pivoted_cholesky(a, tol);
    REQUIRE(ref.rank == n);
    CHECK(f.pivots == ref.pivots);
    CHECK((f.factor - ref.factor).cwiseAbs().maxCoeff() < 1e-12 * std::sqrt(top));
  }
}

TEST_CASE("pivoted_cholesky: rank-deficient and zero matrices stop at the tolerance") {
  for (const Index n : {Index(5), Index(70), Index(300)}) {
    for (const Index k : {Index(1), Index(3), n / 2 + 1}) {
      CAPTURE(n);
      CAPTURE(k);
      const MatrixXd a = random_psd(n, k, 7 + static_cast<std::uint64_t>(n + k));
      const double top = a.diagonal().maxCoeff(), tol = static_cast<double>(n) * kEps * top;
      const PivotedCholesky f = pivoted_cholesky(a, tol, 2);
      CHECK(f.rank == std::min(n, k));
      REQUIRE(f.factor.cols() == f.rank);
      const MatrixXd s = emergent::detail::pivoted_cholesky_remainder(a, f, 2);
      CHECK(s.rows() == n - f.rank);
      if (s.size() > 0) CHECK(s.cwiseAbs().maxCoeff() <= 4.0 * tol);  // round-off only (Higham Thm. 10.14)
      CHECK((permuted(a, f.pivots).leftCols(f.rank) - f.factor * f.factor.topRows(f.rank).transpose())
                .cwiseAbs()
                .maxCoeff() < 10.0 * n * kEps * top);
      const PivotedCholesky ref = reference_pivoted_cholesky(a, tol);
      CHECK(ref.rank == f.rank);
    }
  }
  const PivotedCholesky z = pivoted_cholesky(MatrixXd::Zero(90, 90), 0.0, 2);
  CHECK(z.rank == 0);
  CHECK(z.factor.cols() == 0);
  CHECK(pivoted_cholesky(MatrixXd(0, 0), 0.0, 2).rank == 0);
  CHECK_THROWS_AS(pivoted_cholesky(MatrixXd::Zero(3, 4), 0.0, 2), std::invalid_argument);
}

TEST_CASE("pivoted_cholesky: bit-identical at 1, 2 and 3 threads, full rank and rank-deficient") {
  for (const Index k : {Index(700), Index(260)}) {
    CAPTURE(k);
    const MatrixXd a = random_psd(700, k, 99);
    const double tol = 700.0 * kEps * a.diagonal().maxCoeff();
    const PivotedCholesky f1 = pivoted_cholesky(a, tol, 1), f2 = pivoted_cholesky(a, tol, 2),
                          f3 = pivoted_cholesky(a, tol, 3);
    CHECK(f1.rank == std::min<Index>(700, k));
    CHECK(f1.rank == f2.rank);
    CHECK(f1.rank == f3.rank);
    CHECK(f1.pivots == f2.pivots);
    CHECK(f1.pivots == f3.pivots);
    CHECK(same_bits(f1.factor, f2.factor));
    CHECK(same_bits(f1.factor, f3.factor));
  }
}

TEST_CASE("trapezoidal products: a·l and lᵀ·b equal the dense products, bits independent of threads") {
  for (const Index n : {Index(1), Index(200), Index(257), Index(600)}) {
    for (const Index r : {n, (n + 1) / 2}) {
      CAPTURE(n);
      CAPTURE(r);
      const MatrixXd l = emergent::test::normals(n, r, 5 + static_cast<std::uint64_t>(n)).triangularView<Eigen::Lower>();
      const MatrixXd a = emergent::test::normals(37, n, 6), b = emergent::test::normals(n, 300, 8);
      const MatrixXd al = a.lazyProduct(l), ltb = l.transpose().lazyProduct(b);  // plain sums, Eigen only
      const double scale = std::sqrt(static_cast<double>(n));
      CHECK((lower_trapezoidal_product(a, l) - al).cwiseAbs().maxCoeff() < 1e-13 * scale * 10.0);
      const MatrixXd t1 = lower_trapezoidal_transpose_product(l, b, 1);
      CHECK((t1 - ltb).cwiseAbs().maxCoeff() < 1e-13 * scale * 10.0);
      CHECK(same_bits(t1, lower_trapezoidal_transpose_product(l, b, 2)));
      CHECK(same_bits(t1, lower_trapezoidal_transpose_product(l, b, 3)));
    }
  }
  CHECK_THROWS_AS(lower_trapezoidal_transpose_product(MatrixXd::Zero(4, 5), MatrixXd::Zero(4, 2)), std::invalid_argument);
  CHECK_THROWS_AS(lower_trapezoidal_transpose_product(MatrixXd::Zero(4, 3), MatrixXd::Zero(5, 2)), std::invalid_argument);
  CHECK(lower_trapezoidal_transpose_product(MatrixXd::Zero(4, 3), MatrixXd::Zero(4, 0)).cols() == 0);
}

TEST_CASE("symmetric_eigen: the alongside task runs exactly once and changes nothing; its exception comes back") {
  const MatrixXd a = random_symmetric(300, 12);
  const SymmetricEigen plain = symmetric_eigen(a, true, 2);
  for (const int threads : {1, 2, 3}) {
    CAPTURE(threads);
    int runs = 0;
    MatrixXd product_alongside;
    const SymmetricEigen e = symmetric_eigen(a, true, threads, TridiagonalReduction::pieces, [&] {
      ++runs;
      product_alongside = a * a;  // work of the caller's that does not touch the decomposition
    });
    CHECK(runs == 1);
    CHECK((product_alongside - a * a).cwiseAbs().maxCoeff() == 0.0);
    CHECK(same_bits(e.values, plain.values));
    CHECK(same_bits(e.vectors, plain.vectors));
    CHECK_THROWS_AS(symmetric_eigen(a, true, threads, TridiagonalReduction::pieces,
                                    [] { throw std::invalid_argument("alongside"); }),
                    std::invalid_argument);
  }
  int runs = 0;
  (void)symmetric_eigen(MatrixXd(0, 0), true, 2, TridiagonalReduction::pieces, [&] { ++runs; });
  CHECK(runs == 1);
}
