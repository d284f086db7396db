// The packed Gram product (lib/detail/packed_gram.hpp): against a naive double loop, and its
// contract: every entry is the chain c ← fma(a_k, b_k, c), k = 0 … d − 1, bit for bit, so any
// split of the output into tiles (and of the work into threads) gives the same bits.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "detail/packed_gram.hpp"

using emergent::RowMatrix;
using emergent::detail::packed_gram_tile;
using emergent::detail::PackedRows;
using Eigen::Index;

namespace {

Index round8(Index n) { return (n + 7) / 8 * 8; }

// The whole product of a's and b's rows in one call, into an m × n matrix (c has the padded
// rows and columns the tile writes).
RowMatrix gram_one_call(const PackedRows& a, const PackedRows& b) {
  RowMatrix c = RowMatrix::Constant(round8(a.rows()), round8(b.rows()), std::nan(""));
  packed_gram_tile(a, 0, a.rows(), b, 0, b.rows(), c.data(), c.cols());
  return c.topLeftCorner(a.rows(), b.rows());
}

// The same product tile by tile: rows in steps of `ts`, columns in steps of `us` (multiples of 8).
RowMatrix gram_tiled(const PackedRows& a, const PackedRows& b, Index ts, Index us) {
  RowMatrix out(a.rows(), b.rows());
  std::vector<double> c(static_cast<std::size_t>(round8(ts) * round8(us)));
  for (Index i0 = 0; i0 < a.rows(); i0 += ts)
    for (Index j0 = 0; j0 < b.rows(); j0 += us) {
      const Index m = std::min(ts, a.rows() - i0), n = std::min(us, b.rows() - j0);
      std::fill(c.begin(), c.end(), std::nan(""));
      packed_gram_tile(a, i0, m, b, j0, n, c.data(), round8(us));
      for (Index i = 0; i < m; ++i)
        for (Index j = 0; j < n; ++j) out(i0 + i, j0 + j) = c[static_cast<std::size_t>(i * round8(us) + j)];
    }
  return out;
}

bool same_bits(const RowMatrix& x, const RowMatrix& y) {
  return x.rows() == y.rows() && x.cols() == y.cols() &&
         std::memcmp(x.data(), y.data(), sizeof(double) * static_cast<std::size_t>(x.size())) == 0;
}

}  // namespace

TEST_CASE("packed Gram tiles equal a naive double loop and, bitwise, one fma chain per entry in k order") {
  // Odd sizes: rows not multiples of 8 (nor of the 24-column micro-panel), d below, across and
  // not a multiple of the 8-wide panels and of the 160-deep k-blocks; x1 ≠ x2 and N1 ≠ N2.
  for (const Index d : {Index(1), Index(7), Index(13), Index(160), Index(161), Index(333), Index(784)}) {
    CAPTURE(d);
    const RowMatrix x = emergent::test::normals(37, d, 5), y = emergent::test::normals(53, d, 6);
    const PackedRows px(x.data(), x.rows(), d, d), py(y.data(), y.rows(), d, d);
    REQUIRE(px.rows() == 37);
    REQUIRE(px.padded_rows() == 40);
    const RowMatrix c = gram_one_call(px, py);
    double worst = 0;
    bool chain = true;
    for (Index i = 0; i < x.rows(); ++i)
      for (Index j = 0; j < y.rows(); ++j) {
        double naive = 0, scale = 0, fma_chain = 0;
        for (Index k = 0; k < d; ++k) {
          naive += x(i, k) * y(j, k);
          scale += std::abs(x(i, k) * y(j, k));
          fma_chain = std::fma(x(i, k), y(j, k), fma_chain);
        }
        // Relative to Σ|a_k·b_k|, the scale of a sum's round-off (the entries may cancel to ~0).
        worst = std::max(worst, std::abs(c(i, j) - naive) / scale);
        chain &= c(i, j) == fma_chain;
      }
    CHECK(worst <= 1e-13);
    CHECK(chain);
    // Positive-definite case: the Gram of x with itself, plain relative error on the diagonal.
    const RowMatrix g = gram_one_call(px, px);
    for (Index i = 0; i < x.rows(); ++i) CHECK(std::abs(g(i, i) - x.row(i).squaredNorm()) <= 1e-13 * g(i, i));
  }
}

TEST_CASE("packed Gram tiles: the bits do not depend on the tile split, the packing threads or the padding") {
  const Index d = 211;  // not a multiple of 8, two k-blocks
  const RowMatrix x = emergent::test::normals(131, d, 8), y = emergent::test::normals(77, d, 9);
  const PackedRows px(x.data(), x.rows(), d, d, 1), py(y.data(), y.rows(), d, d, 1);
  const RowMatrix whole = gram_one_call(px, py);
  // Tiles of 8 × 8 (single micro-panels), 16 × 40, 64 × 24 and 24 × 64 (micro-panel edges inside
  // the tiles), rows and columns ending in partial panels.
  for (const auto& [ts, us] : {std::pair<Index, Index>{8, 8}, {16, 40}, {64, 24}, {24, 64}, {128, 72}}) {
    CAPTURE(ts);
    CAPTURE(us);
    CHECK(same_bits(gram_tiled(px, py, ts, us), whole));
  }
  // Packing on two threads gives the same panels.
  const PackedRows px2(x.data(), x.rows(), d, d, 2);
  CHECK(std::memcmp(px2.panel(0), px.panel(0), sizeof(double) * static_cast<std::size_t>(px.padded_rows() * d)) == 0);
  // A row's entries do not depend on its neighbours: the rows of x from 11 on, packed from a
  // different start (so in different panels and lanes), give the same entries.
  const PackedRows shifted(x.data() + 11 * d, x.rows() - 11, d, d);
  CHECK(same_bits(gram_one_call(shifted, py), whole.bottomRows(x.rows() - 11)));
  // Symmetric: the Gram of x with itself is bitwise symmetric (fma(a, b, c) = fma(b, a, c)).
  const RowMatrix g = gram_one_call(px, px);
  CHECK(same_bits(g, g.transpose().eval()));
  // The padding rows (zeros) give zero entries, and the leading dimension may exceed the columns.
  RowMatrix c = RowMatrix::Constant(136, 100, std::nan(""));
  packed_gram_tile(px, 128, 3, py, 0, 77, c.data(), c.cols());
  for (Index i = 0; i < 3; ++i) CHECK(same_bits(c.row(i).head(77), whole.row(128 + i)));
  for (Index i = 3; i < 8; ++i) CHECK(c.row(i).head(80).cwiseAbs().maxCoeff() == 0.0);
  CHECK(std::isnan(c(0, 80)));  // nothing beyond the rounded-up columns is touched
}

TEST_CASE("packed Gram tiles: sums over no features are zero") {
  const RowMatrix x(5, 0);
  const PackedRows px(x.data(), 5, 0, 0);
  RowMatrix c = RowMatrix::Constant(8, 8, 1.0);
  packed_gram_tile(px, 0, 5, px, 0, 5, c.data(), 8);
  CHECK(c.cwiseAbs().maxCoeff() == 0.0);
}
