// The built-in groups (docs/conventions.md §5) and the output actions that pair with them.
#pragma once

#include <Eigen/Dense>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/core/inputs.hpp"
#include "emergent/symmetry/representation.hpp"

namespace emergent {

// ---- Input groups (docs/conventions.md §5) --------------------------------------------------------

/// Quarter turns of an H×W×C image (H = W), counter-clockwise as numpy.rot90: r^0..r^3.
Representation group_c4(const ExampleShape& shape);
/// Dihedral group of the square: r^j (j = 0..3), then r^j∘f with f the horizontal flip.
Representation group_d4(const ExampleShape& shape);
/// {e, f}, f(x)[h, w] = x[h, W−1−w].
Representation group_flip(const ExampleShape& shape);
/// All H·W cyclic shifts as numpy.roll: element i·W + j moves pixel (h, w) to (h+i, w+j) mod (H, W).
Representation group_translations(const ExampleShape& shape);
/// Rotation by 2πj/K (j = 0..K−1) about the image center ((H−1)/2, (W−1)/2) with bilinear
/// interpolation and zeros outside. Approximate: not closed, not norm-preserving.
Representation group_rotation(int k, const ExampleShape& shape);

/// {x, −x} on vectors.
Representation group_sign(const ExampleShape& shape);
/// Cyclic coordinate shifts x ↦ numpy.roll(x, j), j = 0..d−1.
Representation group_cyclic(const ExampleShape& shape);
/// Rotation of every consecutive coordinate pair (x_{2m}, x_{2m+1}) by 2πj/K; needs even d.
Representation group_rot2(int k, const ExampleShape& shape);
/// Any user set of d × d matrices (element 0 must be the identity); exact iff they are
/// orthogonal and closed to round-off. Throws std::invalid_argument on bad sizes.
Representation group_from_matrices(std::string name, const ExampleShape& shape,
                                   const std::vector<Eigen::MatrixXd>& matrices);
/// Matrices from a .npy of shape (|G|, d, d) with d = shape.size().
Representation group_from_npy(const std::string& path, const ExampleShape& shape);

/// Parse a group name of docs/conventions.md §5 (`c4`, `d4`, `flip`, `translations`, `rot(K)`,
/// `sign`, `cyclic`, `rot2(K)`, or a path ending in .npy) for inputs of `shape`. Throws
/// std::invalid_argument naming the bad name/argument or the shape that does not fit.
Representation make_group(std::string_view name, const ExampleShape& shape);

// ---- Output actions (same element order and group law as the input action) -----------------

/// ρ_Y(g) = I_k for every g: invariant targets.
Representation trivial_output(const Representation& input, int outputs);
/// The input's pixel action on spatial outputs of shape (H, W, k) (CNNs without readout with
/// `same`/`circular` padding, whose output map has the input's size).
Representation pixel_output(const Representation& input, const ExampleShape& output);
/// Given k × k matrices, one per element in the input's order (e.g. a 2-D rotation of a
/// 2-vector target); exact iff orthogonal and a homomorphism of the input's group law.
Representation matrix_output(const Representation& input, const std::vector<Eigen::MatrixXd>& matrices);

}  // namespace emergent
