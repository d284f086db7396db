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
/// The 24 rotations of the cube (the octahedral group O ⊂ SO(3), all signed 3×3 permutation
/// matrices of determinant 1), acting on x ∈ ℝ^{3m} as m ℝ³ vectors (x_{3a}, x_{3a+1}, x_{3a+2}),
/// each rotated by the same R: ρ(g) = I_m ⊗ R_g. Needs d divisible by 3. Entries are exact.
Representation group_cube(const ExampleShape& shape);
/// The 60 rotations of the icosahedron with vertices (0, ±1, ±φ) and their cyclic permutations
/// (φ the golden ratio; the icosahedral group I ⊂ SO(3), which contains the 12 rotations of the
/// tetrahedron), acting on ℝ^{3m} as group_cube does. Entries in {0, ±½, ±1, ±φ/2, ±1/(2φ)},
/// each correctly rounded, so the axioms hold to round-off.
Representation group_icosahedron(const ExampleShape& shape);
/// The 3 × 3 rotations R_g of group_cube / group_icosahedron (element order as there).
std::vector<Eigen::Matrix3d> cube_rotations();
std::vector<Eigen::Matrix3d> icosahedron_rotations();
/// Any user set of d × d matrices (element 0 must be the identity); exact iff they are
/// orthogonal and closed to round-off. Throws std::invalid_argument on bad sizes.
Representation group_from_matrices(std::string name, const ExampleShape& shape,
                                   const std::vector<Eigen::MatrixXd>& matrices);
/// Matrices from a .npy of shape (|G|, d, d) with d = shape.size().
Representation group_from_npy(const std::string& path, const ExampleShape& shape);

/// Parse a group name of docs/conventions.md §5 (`c4`, `d4`, `flip`, `translations`, `rot(K)`,
/// `sign`, `cyclic`, `rot2(K)`, `cube`, `icosahedron`, or a path ending in .npy) for inputs of `shape`. Throws
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
/// ρ_Y(g)·e_h = e_{g·h} on ℝ^{|G|}: the regular representation (a permutation per element).
/// Needs an exact input group.
Representation regular_output(const Representation& input);
/// ρ_Y(g) = χ(g)·I_k with χ the sign character: −1 on the flip of `flip` and `d4` (elements
/// r^j∘f) and on −x of `sign`; for other exact groups χ(g) = det ρ_X(g) (block matrix), a
/// character of every linear group (trivial for rotation groups such as rot2(K) and cube).
Representation sign_output(const Representation& input, int outputs);
/// The rotation the input group is made of, on one output vector: the 2 × 2 rotation by 2πj/K for
/// rot2(K), the 3 × 3 R_g for cube and icosahedron (so x × y, x, y ∈ ℝ³, is equivariant).
Representation rotation_output(const Representation& input);

/// Parse an output action (docs/conventions.md §5) for an input group and outputs of shape
/// `output` (vector(k) for networks with a readout, (H, W, k) without): `trivial`, `pixels`,
/// `sign`, `regular`, `rotation`, or a .npy of shape (|G|, k, k). Every action is checked to be
/// orthogonal and a homomorphism of the input's group law; a defect throws std::invalid_argument
/// naming the element(s), the defect and its size.
Representation make_output_rep(std::string_view name, const Representation& input, const ExampleShape& output);
/// The same checks for user matrices, one per element of `input` (identity first, orthogonal,
/// ρ_Y(g)ρ_Y(h) = ρ_Y(g·h)); `what` names the source in messages. Returns matrix_output(…).
Representation checked_matrix_output(const Representation& input, const std::vector<Eigen::MatrixXd>& matrices,
                                     const std::string& what);

}  // namespace emergent
