// A finite group acting linearly on examples (inputs or outputs).
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
#include <string>
#include <vector>

#include "emergent/core/inputs.hpp"

namespace emergent {

/// What verifying the group axioms of a Representation found. All violations are max-abs
/// entry differences of matrices (0 exactly for permutations that agree).
struct RepresentationSummary {
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
  RepresentationSummary verify() const;
  const RepresentationSummary& check() const { return check_; }  ///< from the constructor (empty if not claimed exact)
  std::string to_string() const;                                ///< "c4 on (5, 5, 2): 4 elements, exact"

 private:
  RepresentationSummary verify_impl(const std::vector<std::vector<int>>* law, std::vector<std::vector<int>>* table) const;
  std::string name_;
  ExampleShape shape_;
  Eigen::Index blocks_ = 0, block_size_ = 1;
  std::vector<Element> elements_;
  bool exact_ = false;
  RepresentationSummary check_;
  std::vector<std::vector<int>> table_;
  std::vector<int> inverse_;
};

}  // namespace emergent
