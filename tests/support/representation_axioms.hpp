// The group axioms of a Representation, checked independently of the library's own verify() and
// tables (from the dense matrices ρ(g) and from apply alone), so that one checker can be stamped
// over every built-in group and output action, as Sophus stamps one Lie-group test over every
// group. measure_axioms reports without asserting (for negative controls such as rot(K));
// check_representation_axioms and check_output_action assert each axiom per element.
#pragma once

#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "emergent/symmetry/representation.hpp"
#include "support/test_support.hpp"

namespace emergent::test {

using Table = std::vector<std::vector<int>>;

/// What the axioms look like when measured from the matrices. All violations are max-abs
/// entry differences; the table is the nearest-element product (or the given law).
struct AxiomViolations {
  double identity = 0;        ///< max|ρ(0) − I|
  double orthogonality = 0;   ///< max_g max|ρ(g)ᵀρ(g) − I|
  double apply_mismatch = 0;  ///< max_g max|ρ(g)·x − apply(g, x)| on random x
  double closure = 0;         ///< max_{g,h} max|ρ(g)ρ(h) − ρ(table[g][h])|
  double inverse = 0;         ///< max_g min_k max|ρ(g)ρ(k) − I|
  double separation = 0;      ///< min_{g≠h} max|ρ(g) − ρ(h)| (distinct elements)
  bool latin_square = false;  ///< every row and column of the table is a permutation
  bool associative = false;   ///< table[table[g][h]][k] == table[g][table[h][k]]
  double tolerance = 0;       ///< 64·ε·dim·max(1, max|ρ|²)
  Table table;
  /// faithful: distinct elements act distinctly (groups; an output action may repeat maps).
  bool holds(bool faithful = true) const {
    return identity <= tolerance && orthogonality <= tolerance && apply_mismatch <= tolerance &&
           closure <= tolerance && inverse <= tolerance && (!faithful || separation > 1e3 * tolerance) &&
           latin_square && associative;
  }
  std::string to_string() const {
    std::ostringstream s;
    s << "identity " << identity << ", orthogonality " << orthogonality << ", apply " << apply_mismatch << ", closure "
      << closure << ", inverse " << inverse << ", separation " << separation << ", latin " << latin_square
      << ", associative " << associative << ", tolerance " << tolerance;
    return s.str();
  }
};

/// Measures the axioms of rho. law: the group law the products must follow (the input's table,
/// for an output action: the homomorphism property); nullptr: the nearest element.
inline AxiomViolations measure_axioms(const Representation& rho, const Table* law = nullptr) {
  const int n = rho.size();
  const Eigen::Index d = rho.dim();
  std::vector<Eigen::MatrixXd> m(n);
  double big = 1;
  for (int g = 0; g < n; ++g) {
    m[g] = rho.matrix(g);
    big = std::max(big, max_abs(m[g]));
  }
  AxiomViolations v;
  v.tolerance = 64 * std::numeric_limits<double>::epsilon() * static_cast<double>(d) * big * big;
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(d, d);
  const RowMatrix x = normals(3, d, 29);
  v.identity = max_abs(m[0] - I);
  v.separation = n > 1 ? INFINITY : 0.0;
  for (int g = 0; g < n; ++g) {
    v.orthogonality = std::max(v.orthogonality, max_abs(m[g].transpose() * m[g] - I));
    const Eigen::MatrixXd applied = rho.apply(g, x).transpose();
    v.apply_mismatch = std::max(v.apply_mismatch, max_abs(m[g] * x.transpose() - applied));
    for (int h = 0; h < g; ++h) v.separation = std::min(v.separation, max_abs(m[g] - m[h]));
  }
  v.table.assign(n, std::vector<int>(n, 0));
  for (int g = 0; g < n; ++g) {
    double inv = INFINITY;
    for (int h = 0; h < n; ++h) {
      const Eigen::MatrixXd gh = m[g] * m[h];
      inv = std::min(inv, max_abs(gh - I));
      if (law) {
        v.table[g][h] = (*law)[g][h];
      } else {
        double best = INFINITY;
        for (int k = 0; k < n; ++k) {
          const double e = max_abs(gh - m[k]);
          if (e < best) best = e, v.table[g][h] = k;
        }
      }
      v.closure = std::max(v.closure, max_abs(gh - m[v.table[g][h]]));
    }
    v.inverse = std::max(v.inverse, inv);
  }
  v.latin_square = true;
  for (int g = 0; g < n; ++g) {
    std::vector<char> row(n, 0), col(n, 0);
    for (int h = 0; h < n; ++h) {
      row[v.table[g][h]] = 1;
      col[v.table[h][g]] = 1;
    }
    v.latin_square = v.latin_square && std::all_of(row.begin(), row.end(), [](char c) { return c; }) &&
                     std::all_of(col.begin(), col.end(), [](char c) { return c; });
  }
  v.associative = true;
  for (int g = 0; g < n && v.associative; ++g)
    for (int h = 0; h < n; ++h)
      for (int k = 0; k < n; ++k)
        if (v.table[v.table[g][h]][k] != v.table[g][v.table[h][k]]) v.associative = false;
  return v;
}

/// Asserts every axiom of an exact group, per element: identity first and acting trivially,
/// orthogonality (norms kept, ρᵀρ = I), apply = matrix, inverses (table and action), distinct
/// elements, closure found independently of the table and named by it, an associative table
/// equal to the library's, and index maps consistent with the action for permutation groups.
inline void check_representation_axioms(const Representation& rho) {
  CAPTURE(rho.to_string());
  REQUIRE(rho.exact());
  const AxiomViolations v = measure_axioms(rho);
  CAPTURE(v.to_string());
  CHECK(v.holds());
  CHECK(rho.verify().exact());
  CHECK(v.associative);
  CHECK(v.latin_square);
  CHECK(v.table == rho.composition_table());
  const RowMatrix x = normals(3, rho.dim(), 11);
  const double tol = v.tolerance;
  CHECK(max_abs(rho.apply(0, x) - x) == 0.0);
  for (int g = 0; g < rho.size(); ++g) {
    CAPTURE(g);
    const RowMatrix gx = rho.apply(g, x);
    for (Eigen::Index r = 0; r < x.rows(); ++r) CHECK(std::abs(gx.row(r).norm() - x.row(r).norm()) <= tol);
    const Eigen::MatrixXd m = rho.matrix(g);
    CHECK(max_abs(m * x.transpose() - gx.transpose()) <= tol);
    CHECK(max_abs(m.transpose() * m - Eigen::MatrixXd::Identity(rho.dim(), rho.dim())) <= tol);
    CHECK(max_abs(rho.apply(rho.inverse(g), gx) - x) <= tol);
    CHECK(rho.compose(g, rho.inverse(g)) == 0);
    CHECK(rho.compose(rho.inverse(g), g) == 0);
    for (int h = 0; h < g; ++h) CHECK(max_abs(rho.apply(h, x) - gx) > 1e-6);
    for (int h = 0; h < rho.size(); ++h) {
      // Closure: ρ(g)ρ(h) is, independently of the table, some element of the set…
      const RowMatrix ghx = rho.apply(g, rho.apply(h, x));
      double best = INFINITY;
      for (int k = 0; k < rho.size(); ++k) best = std::min(best, max_abs(rho.apply(k, x) - ghx));
      CHECK(best <= tol);
      // …and the table names it.
      CHECK(max_abs(rho.apply(rho.compose(g, h), x) - ghx) <= tol);
    }
    if (rho.is_permutation()) {
      const auto p = rho.permutation(g);
      for (Eigen::Index i = 0; i < rho.dim(); ++i) CHECK(gx(0, i) == x(0, p[i]));
    }
  }
}

/// Asserts that output is an action of input's group: the same size and law (a homomorphism,
/// ρ_Y(g)ρ_Y(h) = ρ_Y(g·h) with g·h from input's table), orthogonal, identity first.
inline void check_output_action(const Representation& input, const Representation& output) {
  CAPTURE(input.to_string());
  CAPTURE(output.to_string());
  REQUIRE(input.exact());
  REQUIRE(output.exact());
  CHECK(output.size() == input.size());
  const AxiomViolations v = measure_axioms(output, &input.composition_table());
  CAPTURE(v.to_string());
  CHECK(v.holds(false));
  CHECK(v.closure <= v.tolerance);
  for (int g = 0; g < input.size(); ++g) {
    CHECK(output.inverse(g) == input.inverse(g));
    for (int h = 0; h < input.size(); ++h) CHECK(output.compose(g, h) == input.compose(g, h));
  }
}

}  // namespace emergent::test
