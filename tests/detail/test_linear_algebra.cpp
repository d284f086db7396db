// The internal dense linear algebra (lib/detail): the tridiagonal reduction against its
// definition (A = Q·T·Qᵀ with Q the product of the stored reflectors, rebuilt here with Eigen),
// the eigendecomposition against its definition (A·V = V·Λ, VᵀV = I) and against LAPACK's own
// dsytrd-based one, and bit-identical results at any thread count.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <Eigen/Dense>
#include <cmath>
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
