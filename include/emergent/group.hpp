// Finite groups acting on inputs and outputs, full-orbit data augmentation, and numerical checks
// of the emergent-equivariance results of Gerken & Kessel, "Emergent Equivariance in Deep
// Ensembles" (ICML 2024): Theorem 5.1 (kernels transform covariantly), Lemmas 5.1/5.2 (on an
// augmented training set every g permutes the rows, and the permutation commutes with Θ, K and
// any spectral function of Θ) and Theorem 5.2 (the ensemble mean and covariance are equivariant
// at every training time).
//
// One concept, Representation, covers every group: a list of linear maps ρ(g) on one example,
// the identity first. An example is `blocks` blocks of `block_size` numbers (images: pixels ×
// channels in the NHWC layout of inputs.hpp; vectors: d blocks of 1). Each ρ(g) is either a
// signed block permutation, (ρ(g)x)[a] = s_g[a]·x[π_g(a)] (pixel permutations, sign flips,
// coordinate shifts), or a block matrix, ρ(g) = M_g ⊗ I_block (interpolated rotations, pair
// rotations, user matrices). Exact groups carry their composition and inverse tables;
// approximate sets (rot(K)) are marked so and carry none.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/architecture.hpp"
#include "emergent/ensemble.hpp"
#include "emergent/gradient_flow.hpp"
#include "emergent/inputs.hpp"
#include "emergent/kernel.hpp"

namespace emergent {

/// What verifying the group axioms of a Representation found. All violations are max-abs
/// entry differences of matrices (0 exactly for permutations that agree).
struct RepresentationCheck {
  double identity_violation = 0;       ///< max|ρ(e) − I|, e = element 0
  double orthogonality_violation = 0;  ///< max_g max|ρ(g)ᵀρ(g) − I|
  double closure_violation = 0;        ///< max_{g,h} min_k max|ρ(g)ρ(h) − ρ(k)| (or − ρ(law[g][h]))
  double inverse_violation = 0;        ///< max_g min_k max|ρ(g)ρ(k) − I|
  double tolerance = 0;                ///< round-off allowance: 8·ε·blocks·max(1, max|M|²)
  bool identity_first = false, orthogonal = false, closed = false, has_inverses = false;
  bool exact() const { return identity_first && orthogonal && closed && has_inverses; }
  std::string to_string() const;
};

class Representation {
 public:
  /// One group element. `permutation` non-empty: a signed block permutation (signs empty
  /// means all +1); otherwise `matrix` (blocks × blocks) acts as matrix ⊗ I_block.
  struct Element {
    std::string label;
    std::vector<Eigen::Index> permutation;
    std::vector<double> signs;
    Eigen::MatrixXd matrix;
  };

  Representation() = default;
  /// Validates the elements (sizes, permutations being bijections, finite entries) and, if
  /// `claim_exact`, verifies the axioms: the set is exact iff they hold to round-off, and then
  /// the composition table is built. `law`, if given (|G|×|G|), is the group law of another
  /// representation of the same group (e.g. the input action of an output action): closure is
  /// then the homomorphism property ρ(g)ρ(h) = ρ(law[g][h]). Throws std::invalid_argument.
  Representation(std::string name, ExampleShape shape, std::vector<Element> elements, bool claim_exact,
                 const std::vector<std::vector<int>>* law = nullptr);

  const std::string& name() const { return name_; }
  const ExampleShape& shape() const { return shape_; }
  int size() const { return static_cast<int>(elements_.size()); }  ///< |G|
  Eigen::Index dim() const { return blocks_ * block_size_; }          ///< d = shape().size()
  Eigen::Index blocks() const { return blocks_; }                     ///< pixels (images) or d (vectors)
  Eigen::Index block_size() const { return block_size_; }             ///< channels (images) or 1
  /// True for a verified finite group of orthogonal maps (composition/inverse tables exist).
  bool exact() const { return exact_; }
  /// Every element is an unsigned block permutation (pixel/coordinate index map).
  bool is_permutation() const;
  const Element& element(int g) const;
  const std::string& label(int g) const { return element(g).label; }

  /// Block index map π_g with (ρ(g)x)[a] = x[π_g(a)]; throws unless element g is an unsigned
  /// permutation. For image groups this is the pixel map, usable as ρ_K on pixel-indexed kernels.
  const std::vector<Eigen::Index>& block_permutation(int g) const;
  /// Full index map over the d entries, (ρ(g)x)[i] = x[p(i)] (same precondition).
  std::vector<Eigen::Index> permutation(int g) const;
  /// ρ_K(g): the blocks × blocks matrix M_g (a 0/±1 matrix for permutations).
  Eigen::MatrixXd block_matrix(int g) const;
  /// The full d × d matrix ρ(g) = M_g ⊗ I_block.
  Eigen::MatrixXd matrix(int g) const;

  /// ρ(g) applied to every row (one example per row, rows.cols() == dim()).
  RowMatrix apply(int g, const RowMatrix& rows) const;
  Eigen::VectorXd apply(int g, const Eigen::VectorXd& x) const;
  Inputs apply(int g, const Inputs& x) const;  ///< checks x.shape against shape()

  /// Index of g∘h (ρ(g∘h) = ρ(g)ρ(h)) and of g⁻¹; throw std::invalid_argument unless exact().
  int compose(int g, int h) const;
  int inverse(int g) const;
  const std::vector<std::vector<int>>& composition_table() const;

  /// Measure the axioms (costs |G|³ matrix comparisons for matrix groups; cached for exact
  /// groups, recomputed for approximate ones).
  RepresentationCheck verify() const;
  const RepresentationCheck& check() const { return check_; }  ///< from the constructor (empty if not claimed exact)
  std::string to_string() const;                                ///< "c4 on (5, 5, 2): 4 elements, exact"

 private:
  RepresentationCheck verify_impl(const std::vector<std::vector<int>>* law, std::vector<std::vector<int>>* table) const;
  std::string name_;
  ExampleShape shape_;
  Eigen::Index blocks_ = 0, block_size_ = 1;
  std::vector<Element> elements_;
  bool exact_ = false;
  RepresentationCheck check_;
  std::vector<std::vector<int>> table_;
  std::vector<int> inverse_;
};

// ---- Input groups (conventions §5) --------------------------------------------------------

/// Quarter turns of an H×W×C image (H = W), counter-clockwise as numpy.rot90: r^0..r^3.
Representation group_c4(const ExampleShape& shape);
/// Dihedral group of the square: r^j (j = 0..3), then r^j∘f with f the horizontal flip.
Representation group_d4(const ExampleShape& shape);
/// {e, f}, f(x)[h, w] = x[h, W−1−w].
Representation group_flip(const ExampleShape& shape);
/// All H·W cyclic shifts as numpy.roll: element i·W + j moves pixel (h, w) to (h+i, w+j) mod (H, W).
Representation group_translations(const ExampleShape& shape);
/// Rotation by 2πj/K (j = 0..K−1) about the image centre ((H−1)/2, (W−1)/2) with bilinear
/// interpolation and zeros outside. Approximate: not closed, not norm-preserving.
Representation group_rotation(int k, const ExampleShape& shape);

/// One input pixel feeding an output pixel of an interpolated image map.
struct PixelTap {
  int source;     ///< input pixel h·W + w
  double weight;  ///< bilinear weight
};
/// Bilinear rotation of an H×W grid by `angle` about its centre, zeros outside: output pixel p
/// is Σ weight·(input pixel source) over taps[p]. The source of an output pixel is its centred
/// coordinates rotated by −angle, snapped to the grid when that is exact (π/2 is numpy.rot90).
/// Shared by rot(K) and datasets' rotate_images.
std::vector<std::vector<PixelTap>> bilinear_rotation(int height, int width, double angle);
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

/// Parse a group name of conventions §5 (`c4`, `d4`, `flip`, `translations`, `rot(K)`,
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

/// Throws std::invalid_argument if y.rows() ≠ N, the representations differ in size, or their
/// dimensions do not fit x and y.
AugmentedSet augment(const Inputs& x, const RowMatrix& y, const Representation& rho_x, const Representation& rho_y);

/// Rows permuted by h on an augmented set: perm[r] is the row holding h·(row r), i.e.
/// row(h∘g, i) for r = row(g, i) (Lemma 5.1). Needs an exact group.
std::vector<Eigen::Index> row_permutation(const AugmentedSet& set, const Representation& rho_x, int h);

// ---- Theorem checks ----------------------------------------------------------------------

/// Largest violation of one identity for one group element.
struct ElementViolation {
  int element = 0;
  std::string label;
  double violation = 0;  ///< max-abs entry difference
};

/// One checked identity: holds iff max_violation ≤ tolerance.
struct CheckReport {
  std::string name;              ///< e.g. "Theorem 5.1 NTK"
  bool holds = false;
  double max_violation = 0;      ///< absolute, over all elements and entries
  double scale = 0;              ///< max |entry| of the quantity compared
  double tolerance = 0;          ///< absolute
  std::string tolerance_rule;    ///< how the tolerance was derived
  int worst_element = 0;
  std::vector<ElementViolation> elements;
  double relative_violation() const { return scale > 0 ? max_violation / scale : max_violation; }
  std::string to_string() const;
};

/// A theorem is several identities (NNGP and NTK, means and covariances at several times…).
struct TheoremReport {
  std::string theorem;
  bool holds = false;            ///< every part holds
  std::string status;            ///< notes: group not exact, rows not permuted, …
  std::vector<CheckReport> parts;
  const CheckReport& part(std::string_view name) const;  ///< throws std::out_of_range
  double max_ratio() const;      ///< max over parts of violation / tolerance
  std::string to_string() const;
};

struct EquivarianceCheckOptions {
  KernelOptions kernel;
  /// Multiplies the derived round-off bound; ≥ 1. The bound is 2·ε·ops·scale, ops counting
  /// the additions that the kernel recursion performs per entry (see kernel_roundoff_ops).
  double safety = 4.0;
  bool IsValid(std::string* error) const;
};

/// Number of floating-point operations accumulated into one kernel entry, the conditioning
/// factor of the kernel tolerance: input dot product (C), the transform (blocks, for matrix
/// groups), per conv the filter taps, per activation 16 (closed forms) or the quadrature
/// nodes, flatten P, gap P².
double kernel_roundoff_ops(const Architecture& arch, const ExampleShape& shape, const Representation* rho);

/// Theorem 5.1: Θ(ρ_X(g)x, ρ_X(g)x') = ρ_K(g)Θ(x,x')ρ_K(g)ᵀ and the same for K, for every g.
/// With a readout or for MLPs ρ_K is trivial (invariance); without readout ρ_K(g) is the
/// pixel action of rho_x on both pixel indices (the output map must keep the input's size).
/// Parts "NNGP" and "NTK".
TheoremReport check_theorem_5_1(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                                const Representation& rho_x, const EquivarianceCheckOptions& options = {});
TheoremReport check_theorem_5_1(const Architecture& arch, const Inputs& x, const Representation& rho_x,
                                const EquivarianceCheckOptions& options = {});

struct LemmaCheckOptions {
  EquivarianceCheckOptions equivariance;
  double learning_rate = 1.0;            ///< η of g_t
  int outputs = 1;                       ///< k in ηt/(N·k)
  std::vector<double> times = {1.0, 100.0};  ///< t for g_t(Θ) (finite, ≥ 0)
  bool IsValid(std::string* error) const;
};

/// Lemmas 5.1/5.2 on a training set X: for each g, σ_g maps row r to the row equal to ρ_X(g)x_r
/// (nearest row); parts "row permutation" (max distance of ρ(g)x_r to its row; fails on sets
/// that are not augmented), "Lemma 5.1 NNGP"/"Lemma 5.1 NTK" (Θ[σr, σs] = Θ[r, s], with pixel
/// indices moved by ρ_K for spatial kernels) and "Lemma 5.2 g_t(Θ), t=…" for
/// g_t(Θ) = V·diag((1 − e^{−ηtλ/(Nk)})/λ)·Vᵀ computed here with Eigen.
TheoremReport check_lemmas_5_1_5_2(const Architecture& arch, const Inputs& train_x, const Representation& rho_x,
                                   const LemmaCheckOptions& options = {});

struct Theorem52Options {
  KernelOptions kernel;
  GradientFlowOptions flow;
  std::vector<double> times = {1.0, 100.0, std::numeric_limits<double>::infinity()};
  bool augment = true;          ///< train on the full orbit (the theorem's hypothesis)
  int noise_inputs = 3;         ///< off-manifold test inputs: N(0, s²) entries, s = RMS of train_x
  std::uint64_t seed = 1;
  double safety = 4.0;          ///< multiplies the measured/derived round-off, ≥ 1
  bool IsValid(std::string* error) const;
};

/// Theorem 5.2: μ_t(ρ_X(g)x) = ρ_Y(g)μ_t(x) and Σ_t(ρ_X(g)x, ρ_X(g)x') = ρ_K Σ_t ρ_Kᵀ at every
/// requested t, on test_x ("test") and on noise ("noise"), using GradientFlow. train_y is
/// (N, k) with a readout, (N, H·W·k) without (then rows are (example, pixel) pairs with k
/// outputs). The tolerance is safety × (round-off measured by recomputing with the training rows
/// reversed + kernel round-off propagated through g_t). Parts "mean t=… test", "covariance t=… noise", ….
TheoremReport check_theorem_5_2(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                                const Theorem52Options& options = {});

// ---- Members are not equivariant (Gerken & Kessel §5: only the ensemble is) ----------------

/// Violation of equivariance by individual members, at each time/checkpoint: for member m,
/// v_m = max_{g, x} |f_m(ρ_X(g)x) − ρ_Y(g)f_m(x)| over the given inputs and all elements.
struct MemberViolationReport {
  std::string kind;                      ///< "linearised (infinite width)" or "finite width (…)"
  int members = 0;
  std::vector<double> times;             ///< t (linearised) or gradient steps (finite width)
  std::vector<double> member_max;        ///< max_m v_m, per time
  std::vector<double> member_mean;       ///< (1/M)Σ_m v_m, per time
  std::vector<double> sample_mean;       ///< the same violation of the M-member average (→ 0 as M → ∞)
  std::vector<double> scale;             ///< max |f_m(x)| over members, inputs, elements, per time
  std::string to_string() const;
};

/// Linearised infinite-width members (GradientFlow::sample_members) trained on the full orbit of
/// (train_x, train_y): their priors f_0 are drawn jointly on the augmented set and on every ρ(g)x,
/// so each member is one function. Readout/MLP architectures only; exact or approximate groups.
MemberViolationReport linearized_member_violation(const Architecture& arch, const Inputs& train_x,
                                                  const RowMatrix& train_y, const Inputs& inputs,
                                                  const Representation& rho_x, const Representation& rho_y,
                                                  const std::vector<double>& times, int members, std::uint64_t seed,
                                                  const KernelOptions& kernel = {}, const GradientFlowOptions& flow = {});

/// Finite-width members (train_ensemble, full-batch GD on the loss of conventions §3) trained on
/// the full orbit; options.checkpoints are the reported steps. Readout/MLP architectures only.
MemberViolationReport finite_member_violation(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                              const Inputs& inputs, const Representation& rho_x,
                                              const Representation& rho_y, const TrainingOptions& options);

}  // namespace emergent
