// Internal: the Gram product c(i, j) = Σ_k a(i, k)·b(j, k) of two row sets (the input layer
// Σ⁰ = x·x'ᵀ/d of the analytic kernels), from rows packed once into panels and an AVX-512
// register-blocked micro-kernel (8 rows × 24 columns of c in 24 registers), blocked along k so
// the 24-column panel of b stays in L1 (Goto & van de Geijn, ACM TOMS 34(3), 2008).
//
// The contract that makes it usable for deterministic kernels: every entry is ONE chain of fused
// multiply-adds in k order from zero, c ← fma(a(i, k), b(j, k), c) for k = 0, 1, …, d − 1. An
// entry's bits are thus a function of its two rows alone: the same whatever tile, band, thread or
// k-block it is computed in, and the same in the portable build (std::fma in the same order).
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <memory>

namespace emergent::detail {

// Rows of a row-major matrix packed for packed_gram_tile(): panels of kPanel consecutive rows,
// each stored k-major (the kPanel values of column k contiguous, 64-byte aligned), the last
// panel padded with zero rows.
class PackedRows {
 public:
  static constexpr Eigen::Index kPanel = 8;

  PackedRows() = default;
  // Rows 0 .. rows − 1 of x (row-major, `cols` values each, leading dimension ld), packed on up
  // to `threads` threads (the layout does not depend on them).
  PackedRows(const double* x, Eigen::Index rows, Eigen::Index cols, Eigen::Index ld, int threads = 1);

  Eigen::Index rows() const { return rows_; }
  Eigen::Index cols() const { return cols_; }
  Eigen::Index panels() const { return (rows_ + kPanel - 1) / kPanel; }
  // Rows rounded up to whole panels (the rows packed_gram_tile may compute).
  Eigen::Index padded_rows() const { return panels() * kPanel; }
  const double* panel(Eigen::Index p) const { return data_.get() + p * kPanel * cols_; }
  // Bytes held for `rows` × `cols` (the memory plan's count).
  static std::size_t bytes(Eigen::Index rows, Eigen::Index cols);

 private:
  struct Free {
    void operator()(double* p) const;
  };
  Eigen::Index rows_ = 0, cols_ = 0;
  std::unique_ptr<double[], Free> data_;
};

// c(i, j) = Σ_k a(i0 + i, k)·b(j0 + j, k) for i < m, j < n, row-major with leading dimension
// ldc: a's rows i0 .. i0 + m − 1 against b's rows j0 .. j0 + n − 1 (a.cols() == b.cols()).
// i0 and j0 are multiples of PackedRows::kPanel; m and n are rounded up to whole panels inside
// a's and b's padded rows, and those entries (products with zero rows) are written too, so c
// needs round_up(m, 8) rows and ldc ≥ round_up(n, 8). Single-threaded; the order of each
// entry's sum is the one in the file comment.
void packed_gram_tile(const PackedRows& a, Eigen::Index i0, Eigen::Index m, const PackedRows& b, Eigen::Index j0,
                      Eigen::Index n, double* c, Eigen::Index ldc);

// True when packed_gram_tile runs the AVX-512 micro-kernel (else the portable loop, same bits).
bool packed_gram_vectorized();

}  // namespace emergent::detail
