// Finite subgroups of SO(3) (so3_bound.hpp; docs/continuous_bound_derivation.md §9): the exact
// covering angle against closed forms and Haar samples; the bound on the SO(3) violation of an
// ensemble trained with cube / icosahedron augmentation against an independent evaluation of the
// mean at Haar rotations, and negative controls (too small a covering angle; no augmentation).
#include <doctest/doctest.h>

#include <Eigen/Geometry>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include "emergent/bounds/so3_bound.hpp"
#include "emergent/data/npy.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "support/test_support.hpp"

using namespace emergent;
using Eigen::Matrix3d;
using Eigen::MatrixXd;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kDeg = 180 / std::numbers::pi;

// Pairs (x, y) ∈ S² × S² and their cross products.
Inputs sphere_pairs(int n, std::uint64_t seed) {
  RowMatrix x = test::normals(n, 6, seed);
  for (int i = 0; i < n; ++i)
    for (int b = 0; b < 2; ++b) x.row(i).segment<3>(3 * b).normalize();
  return Inputs(x, ExampleShape::vector(6));
}
RowMatrix cross_products(const RowMatrix& x) {
  RowMatrix y(x.rows(), 3);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    const Eigen::Vector3d u = x.row(i).segment<3>(0).transpose(), v = x.row(i).segment<3>(3).transpose();
    y.row(i) = u.cross(v).transpose();
  }
  return y;
}
Eigen::VectorXd rotate6(const Matrix3d& r, const Eigen::VectorXd& z) {
  Eigen::VectorXd out(6);
  out << r * z.head<3>(), r * z.tail<3>();
  return out;
}

// The 12 rotations of the tetrahedron {(1,1,1), (1,−1,−1), (−1,1,−1), (−1,−1,1)} inside the cube's 24.
std::vector<Matrix3d> tetrahedron_rotations() {
  std::vector<Matrix3d> t;
  for (const Matrix3d& r : cube_rotations()) {
    const Eigen::Vector3d v = r * Eigen::Vector3d(1, 1, 1);
    if (v[0] * v[1] * v[2] > 0) t.push_back(r);
  }
  return t;
}

// An independent evaluation of the trained mean at Haar rotations: max_R ‖μ_t(ρ_X(R)z) − ρ_Y(R)μ_t(z)‖.
double independent_violation(const Architecture& arch, const AugmentedSet& set, double t, const Eigen::VectorXd& z,
                             bool equivariant, int rotations, std::uint64_t seed) {
  const Kernels train = kernels(arch, set.x);
  const GradientFlow flow(train.ntk, MatrixXd(), set.y, {});
  RowMatrix rows(rotations + 1, 6);
  std::vector<Matrix3d> rs = {Matrix3d::Identity()};
  for (int r = 0; r < rotations; ++r) rs.push_back(haar_rotation(seed, 11, static_cast<std::uint64_t>(r)));
  for (int r = 0; r <= rotations; ++r) rows.row(r) = rotate6(rs[r], z).transpose();
  const MatrixXd mu = flow.mean({t}, kernels(arch, Inputs(rows, ExampleShape::vector(6)), set.x).ntk)[0];
  double worst = 0;
  for (int r = 1; r <= rotations; ++r) {
    const Eigen::VectorXd f0 = mu.row(0).transpose(), fr = mu.row(r).transpose();
    worst = std::max(worst, (fr - (equivariant ? MatrixXd(rs[r]) : MatrixXd::Identity(f0.size(), f0.size())) * f0).norm());
  }
  return worst;
}

}  // namespace

TEST_CASE("SO(3) covering angle: exact closed forms for cube, icosahedron and tetrahedron; above every Haar sample") {
  const auto cube = cube_rotations(), ico = icosahedron_rotations(), tet = tetrahedron_rotations();
  REQUIRE(tet.size() == 12);
  const So3Covering c_cube = so3_covering(cube), c_ico = so3_covering(ico), c_tet = so3_covering(tet);
  CHECK(c_cube.group);
  CHECK(c_ico.group);
  CHECK(c_tet.group);
  // Cube: the fundamental zone |r_i| ≤ √2 − 1, Σ|r_i| ≤ 1 has the vertex (√2−1, √2−1, 3−2√2), ‖r‖² = 23 − 16√2.
  CHECK(std::abs(c_cube.angle - 2 * std::atan(std::sqrt(23 - 16 * std::numbers::sqrt2))) < 1e-12);
  CHECK(std::abs(c_cube.angle * kDeg - 62.7994) < 1e-3);  // Mackenzie (1958)
  // Icosahedron: a dodecahedron of inradius tan(π/10), whose vertices lie at circumradius
  // R = inradius · (√3 (1 + √5)/4) / (√((25 + 11√5)/10)/2).
  const double s5 = std::sqrt(5.0);
  const double r_ico = std::tan(std::numbers::pi / 10) * (std::sqrt(3.0) * (1 + s5) / 4) / (std::sqrt((25 + 11 * s5) / 10) / 2);
  CHECK(std::abs(c_ico.angle - 2 * std::atan(r_ico)) < 1e-12);
  // Tetrahedron: the octahedron Σ|r_i| ≤ 1 with vertices at ‖r‖ = 1: exactly 90°.
  CHECK(std::abs(c_tet.angle - std::numbers::pi / 2) < 1e-12);
  CHECK(so3_covering_angle({Matrix3d::Identity()}) * kDeg == doctest::Approx(180).epsilon(1e-6));
  std::vector<Matrix3d> c4;
  for (int j = 0; j < 4; ++j) c4.push_back(Eigen::AngleAxisd(j * std::numbers::pi / 2, Eigen::Vector3d::UnitZ()).toRotationMatrix());
  CHECK(so3_covering_angle(c4) * kDeg == doctest::Approx(180).epsilon(1e-6));
  // The deepest holes are at distance θ_B from B, and every Haar sample is within θ_B.
  for (const auto& [set, cov] : {std::pair{cube, c_cube}, std::pair{ico, c_ico}, std::pair{tet, c_tet}}) {
    CHECK(!cov.deepest.empty());
    for (const Matrix3d& r : cov.deepest) CHECK(std::abs(so3_distance_to_set(r, set) - cov.angle) < 1e-9);
    double worst = 0;
    for (int i = 0; i < 4000; ++i) {
      const Matrix3d r = haar_rotation(5, 0, static_cast<std::uint64_t>(i));
      CHECK(std::abs(r.determinant() - 1) < 1e-12);
      worst = std::max(worst, so3_distance_to_set(r, set));
    }
    CHECK(worst <= cov.angle + 1e-12);
    CHECK(worst > cov.angle - 6 / kDeg);
    for (const auto& b : set) CHECK(so3_distance_to_set(b, set) < 1e-6);
  }
  // A set that is not a group: every element's cell is searched; still above every sample.
  std::vector<Matrix3d> some;
  for (int i = 0; i < 7; ++i) some.push_back(haar_rotation(17, 1, static_cast<std::uint64_t>(i)));
  const So3Covering c_some = so3_covering(some);
  CHECK(!c_some.group);
  double worst = 0;
  for (int i = 0; i < 20000; ++i) worst = std::max(worst, so3_distance_to_set(haar_rotation(6, 0, static_cast<std::uint64_t>(i)), some));
  CHECK(worst <= c_some.angle + 1e-12);
  CHECK(worst > c_some.angle - 6 / kDeg);
  for (const Matrix3d& r : c_some.deepest) CHECK(std::abs(so3_distance_to_set(r, some) - c_some.angle) < 1e-9);
  CHECK_THROWS_AS(so3_covering_angle({}), std::invalid_argument);
  CHECK_THROWS_AS(so3_covering_angle({-Matrix3d::Identity()}), std::invalid_argument);
}

TEST_CASE("SO(3) bound >= independently measured violation at Haar rotations (cube, icosahedron; relu, erf; t = 10, inf)") {
  struct Case {
    std::string group, arch;
    bool equivariant;
  };
  for (const Case& c : {Case{"cube", "dense(64) relu dense(3)", true}, Case{"cube", "dense(32, b=0.3) erf dense(32) relu dense(3)", true},
                        Case{"icosahedron", "dense(64) relu dense(3)", true}, Case{"cube", "dense(64) erf dense(2)", false}}) {
    CAPTURE(c.group);
    CAPTURE(c.arch);
    const Architecture arch = Architecture::parse(c.arch);
    const Inputs x = sphere_pairs(c.group == "cube" ? 5 : 3, 3);
    const RowMatrix y = c.equivariant ? cross_products(x.x) : test::normals(x.count(), 2, 4);
    RowMatrix zrows(6, 6);
    zrows << sphere_pairs(3, 8).x, test::normals(3, 6, 9);  // on and off the data manifold
    const Inputs z(zrows, ExampleShape::vector(6));
    const Representation bx = make_group(c.group, x.shape);
    const Representation by = make_output_rep(c.equivariant ? "rotation" : "trivial", bx, ExampleShape::vector(arch.outputs()));
    So3BoundOptions o;
    o.times = {10, kInf};
    o.haar_rotations = 64;
    const So3BoundResult r = so3_group_bound(arch, x, y, z, bx, by, o);
    CHECK(r.equivariant == c.equivariant);
    CHECK(r.covering_angle == r.exact_covering_angle);
    CHECK(r.kappa == doctest::Approx(2 * std::sin(r.covering_angle / 2)));
    CHECK(r.augmented_size == bx.size() * x.count());
    CHECK(r.rotations >= 64);
    const AugmentedSet set = augment(x, y, bx, by);
    for (std::size_t t = 0; t < o.times.size(); ++t)
      for (Eigen::Index i = 0; i < z.count(); ++i) {
        CAPTURE(t);
        CAPTURE(i);
        const So3BoundPoint& p = r.at(t, i);
        CHECK(p.group_defect < 1e-6);  // Theorem 5.2: B-equivariant up to round-off (t = ∞ is ill-conditioned)
        CHECK(p.measured > 0);
        CHECK(p.bound >= p.measured);
        CHECK(p.bound <= std::min(p.split_bound, p.joint_bound) + p.roundoff);
        const double independent = independent_violation(arch, set, o.times[t], z.x.row(i).transpose(), c.equivariant, 300, 21 + i);
        CHECK(independent > 0);
        CHECK(independent <= p.bound);
      }
  }
}

TEST_CASE("SO(3) bound: the formula re-derived here, and negative controls") {
  const Architecture arch = Architecture::parse("dense(64) relu dense(3)");
  const Inputs x = sphere_pairs(4, 31);
  const RowMatrix y = cross_products(x.x);
  const Inputs z = sphere_pairs(4, 32);
  const Representation bx = make_group("cube", x.shape), by = make_output_rep("rotation", bx, ExampleShape::vector(3));
  So3BoundOptions o;
  o.times = {kInf};
  o.haar_rotations = 128;
  const So3BoundResult r = so3_group_bound(arch, x, y, z, bx, by, o);
  // ‖f‖² = Σ_c α_cᵀΘα_c and the joint form ‖f‖·√(2(Θ(z,z) − cos θ_B Θ(z,w))) with w at angle θ_B.
  const AugmentedSet set = augment(x, y, bx, by);
  const Kernels train = kernels(arch, set.x);
  const GradientFlow flow(train.ntk, MatrixXd(), set.y, {});
  const MatrixXd alpha = flow.mean({kInf}, MatrixXd::Identity(set.x.count(), set.x.count()))[0];
  const double f_norm = std::sqrt((alpha.transpose() * train.ntk * alpha).trace());
  const double th = r.covering_angle;
  for (Eigen::Index i = 0; i < z.count(); ++i) {
    const So3BoundPoint& p = r.at(0, i);
    CHECK(p.f_norm == doctest::Approx(f_norm).epsilon(1e-10));
    // w = R z for a rotation R by θ_B about an axis orthogonal to both halves? Any w with the
    // same norm and z·w = ‖z‖² cos θ_B: here a rotation in the plane of z and a unit vector e ⊥ z.
    const Eigen::VectorXd zi = z.x.row(i).transpose();
    Eigen::VectorXd e = test::normals(1, 6, 40 + i).row(0).transpose();
    e -= e.dot(zi) / zi.squaredNorm() * zi;
    e *= zi.norm() / e.norm();
    RowMatrix zw(2, 6);
    zw.row(0) = zi.transpose();
    zw.row(1) = (std::cos(th) * zi + std::sin(th) * e).transpose();
    const MatrixXd k = kernels(arch, Inputs(zw, z.shape)).ntk;
    CHECK(p.joint_bound == doctest::Approx(f_norm * std::sqrt(2 * (k(0, 0) - std::cos(th) * k(0, 1)))).epsilon(1e-9));
    CHECK(p.bound >= p.measured);
  }
  // Negative control 1: a covering angle far below θ_B gives a "bound" the measured violation
  // breaks: for erf (F smooth, the bound ∝ θ) at θ_B/1000, for relu (F(q) − F(q cos φ) ∝ φ, the bound
  // ∝ √θ) at θ_B·10⁻⁶.
  for (const auto& [spec, factor] : {std::pair{"dense(64) erf dense(3)", 1e-3}, std::pair{"dense(64) relu dense(3)", 1e-6}}) {
    CAPTURE(spec);
    So3BoundOptions small = o;
    small.times = {10, kInf};
    small.covering_angle = r.covering_angle * factor;
    const So3BoundResult s = so3_group_bound(Architecture::parse(spec), x, y, z, bx, by, small);
    CHECK(s.exact_covering_angle == r.exact_covering_angle);
    int broken = 0;
    for (const So3BoundPoint& p : s.points) broken += p.bound < p.measured;
    CHECK(broken == static_cast<int>(s.points.size()));
    // With the exact angle the same setting holds.
    small.covering_angle = 0;
    for (const So3BoundPoint& p : so3_group_bound(Architecture::parse(spec), x, y, z, bx, by, small).points)
      CHECK(p.bound >= p.measured);
  }
  // Negative control 2: without augmentation the premise (exact B-equivariance, Theorem 5.2) fails:
  // the unaugmented mean violates B itself by far more than the round-off allowance.
  {
    const Kernels plain = kernels(arch, x);
    const GradientFlow fp(plain.ntk, MatrixXd(), y, {});
    const std::vector<Matrix3d> cube = cube_rotations();
    for (Eigen::Index i = 0; i < z.count(); ++i) {
      const Eigen::VectorXd zi = z.x.row(i).transpose();
      RowMatrix rows(static_cast<Eigen::Index>(cube.size()) + 1, 6);
      rows.row(0) = zi.transpose();
      for (std::size_t j = 0; j < cube.size(); ++j) rows.row(static_cast<Eigen::Index>(j) + 1) = rotate6(cube[j], zi).transpose();
      const MatrixXd mu = fp.mean({kInf}, kernels(arch, Inputs(rows, z.shape), x).ntk)[0];
      double defect = 0;
      for (std::size_t j = 0; j < cube.size(); ++j)
        defect = std::max(defect, (mu.row(static_cast<Eigen::Index>(j) + 1).transpose() - cube[j] * Eigen::Vector3d(mu.row(0).transpose())).norm());
      CHECK(defect > 1e6 * r.at(0, i).roundoff);
    }
  }
}

TEST_CASE("SO(3) bound: arguments outside the derivation are refused with a message naming them") {
  const Architecture mlp = Architecture::parse("dense(16) relu dense(3)");
  const Inputs x = sphere_pairs(3, 1), z = sphere_pairs(2, 2);
  const RowMatrix y = cross_products(x.x);
  const Representation bx = make_group("cube", x.shape), by = make_output_rep("rotation", bx, ExampleShape::vector(3));
  // Not an MLP.
  CHECK_THROWS_AS(so3_group_bound(Architecture::parse("dense(16) relu layernorm dense(3)"), x, y, z, bx, by), SpecError);
  // The regular representation does not extend to SO(3).
  const Architecture wide = Architecture::parse("dense(16) relu dense(24)");
  const Representation reg = regular_output(bx);
  const std::string e1 = test::error_of<std::invalid_argument>(
      [&] { so3_group_bound(wide, x, RowMatrix::Zero(3, 24), z, bx, reg); });
  CHECK(test::contains(e1, "subgroup_output"));
  CHECK(test::contains(e1, "SO(3)"));
  // rot2 does not act by I ⊗ R on triples.
  const Representation r2 = make_group("rot2(4)", x.shape);
  const std::string e2 = test::error_of<std::invalid_argument>(
      [&] { so3_group_bound(mlp, x, y, z, r2, make_output_rep("trivial", r2, ExampleShape::vector(3))); });
  CHECK(test::contains(e2, "I_m ⊗ R"));
  // A group whose covering angle exceeds 90°: the quarter turns about z, from a .npy.
  const std::string path = test::temp_path("so3_bound", "c4.npy");
  std::vector<double> data;
  for (int j = 0; j < 4; ++j) {
    Eigen::MatrixXd m = Eigen::MatrixXd::Zero(6, 6);
    const Matrix3d q = Eigen::AngleAxisd(j * std::numbers::pi / 2, Eigen::Vector3d::UnitZ()).toRotationMatrix();
    m.topLeftCorner<3, 3>() = q, m.bottomRightCorner<3, 3>() = q;
    for (int a = 0; a < 6; ++a)
      for (int b = 0; b < 6; ++b) data.push_back(std::round(m(a, b)));
  }
  write_npy(path, {4, 6, 6}, data.data());
  const Representation c4 = make_group(path, x.shape);
  const std::string e3 = test::error_of<std::invalid_argument>(
      [&] { so3_group_bound(mlp, x, y, z, c4, make_output_rep("trivial", c4, ExampleShape::vector(3))); });
  CHECK(test::contains(e3, "90°"));
  // Options.
  So3BoundOptions bad;
  bad.covering_angle = 2.0;
  CHECK(test::contains(test::error_of<std::invalid_argument>([&] { so3_group_bound(mlp, x, y, z, bx, by, bad); }), "covering_angle"));
  bad = {};
  bad.haar_rotations = 0;
  CHECK(test::contains(test::error_of<std::invalid_argument>([&] { so3_group_bound(mlp, x, y, z, bx, by, bad); }), "haar_rotations"));
  // Shapes.
  CHECK_THROWS_AS(so3_group_bound(mlp, x, RowMatrix::Zero(2, 3), z, bx, by), std::invalid_argument);
}
