// Finite subgroups of SO(3) approximating the continuous group (Gerken & Kessel, ICML 2024,
// "Emergent Equivariance in Deep Ensembles", section on continuous groups, and the appendix's
// cross-product experiment): training with the finite group B ⊂ SO(3) (the cube's 24 or the
// icosahedron's 60 rotations) makes the infinite ensemble exactly B-equivariant (Theorem 5.2) and
// approximately SO(3)-equivariant,
//   ‖μ_t(ρ_X(R)x) − ρ_Y(R)μ_t(x)‖ ≤ ‖f‖_Θ·√(2(F_x(q) − c_Y·F_x(q cos θ_B))),   R ∈ SO(3),
// with θ_B the covering angle of B (computed exactly), q = ‖x‖², c_Y = cos θ_B for ρ_Y = R on
// output triples and 1 for invariant outputs. Setting and every assumption:
// docs/continuous_bound_derivation.md §9. The measured worst case is a maximum over Haar-random
// rotations and the deepest holes of B, so bound/measured is the tightness of the bound.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/symmetry/representation.hpp"

namespace emergent {

/// How well a finite set of rotations covers SO(3).
struct So3Covering {
  /// θ_B = max_{R ∈ SO(3)} min_{b ∈ B} angle(b⁻¹R), in radians (π if B does not bound it, e.g. the
  /// rotations about one axis). κ = max_R min_b ‖R − b‖₂ = 2 sin(θ_B/2).
  double angle = 0.0;
  /// The rotations at distance θ_B from B that are nearest to the identity (the vertices of the
  /// identity's Voronoi cell of largest angle), one per vertex.
  std::vector<Eigen::Matrix3d> deepest;
  bool group = false;  ///< the set is closed under products (one Voronoi cell suffices)
};

/// Exact covering angle. In Rodrigues coordinates r = tan(φ/2)·n the rotations nearer to the
/// identity than to b (angle(b⁻¹R) = 2 arccos|⟨q_b, q_R⟩| with unit quaternions) form the
/// half-spaces |w_b + v_b·r| ≤ 1 (q_b = (w_b, v_b)), so the identity's Voronoi cell is a convex
/// polytope and angle = 2 arctan‖r‖, convex in r, is largest at one of its vertices. The vertices are
/// enumerated from all triples of planes. For a group every cell is congruent to the identity's;
/// for another set every element's cell is searched (cost |B|·(2|B|)³·|B|). Closed forms it
/// reproduces: 2 arctan √(23 − 16√2) = 62.7994° for the cube (Mackenzie 1958), 44.4775° for the
/// icosahedron. Throws std::invalid_argument on an empty set or a matrix that is not a rotation.
So3Covering so3_covering(const std::vector<Eigen::Matrix3d>& rotations);

/// so3_covering(rotations).angle.
double so3_covering_angle(const std::vector<Eigen::Matrix3d>& rotations);

/// A Haar-random rotation: the unit quaternion of 4 standard normals (NormalStream(seed, stream), draws
/// 4i..4i+3), which is uniform on S³ and hence Haar on SO(3).
Eigen::Matrix3d haar_rotation(std::uint64_t seed, std::uint64_t stream, std::uint64_t i);

/// min_{b ∈ B} angle(b⁻¹R): how far R is from the finite set.
double so3_distance_to_set(const Eigen::Matrix3d& r, const std::vector<Eigen::Matrix3d>& rotations);

/// The 3 × 3 rotations R_b of a representation acting on ℝ^{3m} as I_m ⊗ R_b (cube, icosahedron or a
/// .npy group of that form). Throws std::invalid_argument (naming the element) otherwise.
std::vector<Eigen::Matrix3d> so3_rotations_of(const Representation& group);

struct So3BoundOptions {
  /// Training times (t ≥ 0, +∞ allowed), in gradient-descent steps as docs/conventions.md §3.
  std::vector<double> times = {std::numeric_limits<double>::infinity()};
  GradientFlowOptions flow;
  KernelOptions kernel;
  /// The measured worst case: max over this many Haar rotations (haar_rotation(seed, 4, ·), the
  /// stream `emergent experiment cross-product` uses) and the deepest holes of B. ≥ 1.
  int haar_rotations = 512;
  std::uint64_t seed = 2024;
  /// 0: the exact covering angle of B. > 0: use this angle (radians, ≤ π/2) instead; any upper
  /// estimate of θ_B keeps the bound valid, a smaller one is a negative control.
  double covering_angle = 0.0;
  bool IsValid(std::string* error) const;
};

/// Bound and measured worst case for one test point and one time.
struct So3BoundPoint {
  Eigen::Index test_index = 0;
  double time = 0.0;
  double f_norm = 0.0;        ///< ‖f‖_Θ = √(Σ_c α_cᵀΘα_c): RKHS norm of the mean (all outputs)
  double split_bound = 0.0;   ///< ‖f‖·√(2(F(q) − F(q cos θ_B))) + κ‖μ_t(x)‖ (derivation §9, two terms)
  double joint_bound = 0.0;   ///< ‖f‖·√(2(F(q) − c_Y F(q cos θ_B))) (derivation §9, one Cauchy–Schwarz)
  double roundoff = 0.0;      ///< 2·max_b ‖μ_t(ρ_X(b)x) − ρ_Y(b)μ_t(x)‖: the computed mean's B-defect
  double bound = 0.0;         ///< min(split_bound, joint_bound) + roundoff
  double measured = 0.0;      ///< max over the probe rotations of ‖μ_t(ρ_X(R)x) − ρ_Y(R)μ_t(x)‖
  double worst_distance = 0.0;  ///< min_b angle(b⁻¹R) of the rotation attaining `measured` (radians)
  double group_defect = 0.0;  ///< max_b ‖μ_t(ρ_X(b)x) − ρ_Y(b)μ_t(x)‖ (0 up to round-off)
  double ratio = 0.0;         ///< bound/measured (+∞ if measured is 0)
};

struct So3BoundResult {
  std::string group;               ///< name of B
  int group_size = 0;
  bool equivariant = false;        ///< ρ_Y = R on output triples (false: invariant outputs)
  double covering_angle = 0.0;     ///< θ_B used (radians)
  double exact_covering_angle = 0.0;  ///< θ_B of B (equal unless options.covering_angle overrides it)
  double kappa = 0.0;              ///< 2 sin(θ_B/2)
  Eigen::Index train_size = 0;     ///< N (before augmentation)
  Eigen::Index augmented_size = 0; ///< |B|·N
  int rotations = 0;               ///< probe rotations besides the identity (Haar + deepest holes)
  std::vector<double> times;
  /// points[t·N_test + i]: time-major.
  std::vector<So3BoundPoint> points;
  SpectralSummary spectral;        ///< of Θ on the augmented set
  double max_ratio = 0.0, min_ratio = 0.0;  ///< over points with measured > 0
  std::string to_string() const;   ///< one line for logs
  const So3BoundPoint& at(std::size_t time_index, Eigen::Index test_index) const;
};

/// Trains the infinite ensemble (NTK gradient flow, mean only) on the training set augmented by
/// `subgroup` (targets transformed by `subgroup_output`) and evaluates the bound and the measured
/// worst case at every test point and time. Needs (derivation §9): an MLP (dense layers and
/// activations) on vectors in ℝ^{3m}; ρ_X(b) = I_m ⊗ R_b; ρ_Y(b) = I_k (invariant targets) or
/// I_{k/3} ⊗ R_b (rotation of every output triple); an exact group B; θ_B ≤ 90°. Throws
/// std::invalid_argument (SpecError for an architecture that is not an MLP) otherwise.
So3BoundResult so3_group_bound(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                               const Inputs& test_x, const Representation& subgroup,
                               const Representation& subgroup_output, const So3BoundOptions& options = {});

}  // namespace emergent
