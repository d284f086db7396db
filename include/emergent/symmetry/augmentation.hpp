// Full-orbit data augmentation and the row permutation it induces (Lemma 5.1).
#pragma once

#include <Eigen/Dense>
#include <vector>

#include "emergent/core/inputs.hpp"
#include "emergent/symmetry/representation.hpp"

namespace emergent {

// ---- Augmentation ------------------------------------------------------------------------

/// The full orbit of a training set: row g·N + i is (ρ_X(g)x_i, ρ_Y(g)y_i).
struct AugmentedSet {
  Inputs x;
  RowMatrix y;
  Eigen::Index originals = 0;     ///< N
  int group_size = 0;             ///< |G|
  std::vector<Eigen::Index> source;  ///< source[r] = i
  std::vector<int> element;          ///< element[r] = g
  Eigen::Index row(int g, Eigen::Index i) const { return g * originals + i; }
};

/// The orbit of x under ρ_X stacked element by element: row g·N + i is ρ_X(g)x_i (the row
/// layout of AugmentedSet::x). Throws std::invalid_argument if rho_x does not act on x's shape.
Inputs orbit_of(const Inputs& x, const Representation& rho_x);

/// Throws std::invalid_argument if y.rows() ≠ N, the representations differ in size, or their
/// dimensions do not fit x and y.
AugmentedSet augment(const Inputs& x, const RowMatrix& y, const Representation& rho_x, const Representation& rho_y);

/// Rows permuted by h on an augmented set: perm[r] is the row holding h·(row r), i.e.
/// row(h∘g, i) for r = row(g, i) (Lemma 5.1). Needs an exact group.
std::vector<Eigen::Index> row_permutation(const AugmentedSet& set, const Representation& rho_x, int h);

}  // namespace emergent
