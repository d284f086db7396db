// Group representations (stamped-out axiom tests for every group) and full-orbit augmentation.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <numbers>
#include <tuple>

#include <Eigen/Geometry>
#include <string>
#include <vector>

#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/data/npy.hpp"
#include "emergent/core/random.hpp"
#include "support/representation_axioms.hpp"
#include "support/test_support.hpp"

using namespace emergent;
using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using test::max_abs;
using test::normals;
using test::random_inputs;

namespace {

std::string temp_path(const char* name) { return test::temp_path("group", name); }

struct GroupCase {
  std::string name;
  ExampleShape shape;
  int expected_size;
};

// An orthogonal matrix group loaded from .npy: the 6 permutations of 3 coordinates (S3).
std::string write_s3_npy() {
  const int perms[6][3] = {{0, 1, 2}, {1, 2, 0}, {2, 0, 1}, {0, 2, 1}, {2, 1, 0}, {1, 0, 2}};
  std::vector<double> data(6 * 9, 0.0);
  for (int g = 0; g < 6; ++g)
    for (int i = 0; i < 3; ++i) data[g * 9 + i * 3 + perms[g][i]] = 1.0;
  const std::string path = temp_path("s3.npy");
  write_npy(path, {6, 3, 3}, data.data());
  return path;
}

}  // namespace

TEST_CASE("every exact group satisfies the representation axioms") {
  const std::string s3 = write_s3_npy();
  std::vector<GroupCase> cases = {
      {"c4", ExampleShape::image_hwc(5, 5, 2), 4},
      {"c4", ExampleShape::image_hwc(4, 4, 1), 4},
      {"d4", ExampleShape::image_hwc(4, 4, 3), 8},
      {"d4", ExampleShape::image_hwc(5, 5, 1), 8},
      {"flip", ExampleShape::image_hwc(3, 4, 2), 2},
      {"flip", ExampleShape::image_hwc(2, 5, 1), 2},
      {"translations", ExampleShape::image_hwc(3, 4, 2), 12},
      {"translations", ExampleShape::image_hwc(1, 5, 1), 5},
      {"sign", ExampleShape::vector(5), 2},
      {"sign", ExampleShape::vector(1), 2},
      {"cyclic", ExampleShape::vector(5), 5},
      {"cyclic", ExampleShape::vector(2), 2},
      {s3, ExampleShape::vector(3), 6},
  };
  // rot2(K) for several K, on one and on several coordinate pairs.
  for (int k : {2, 3, 4, 5, 6, 8, 12})
    for (int d : {2, 6}) cases.push_back({"rot2(" + std::to_string(k) + ")", ExampleShape::vector(d), k});
  // Finite subgroups of SO(3) on one ℝ³ vector and on pairs (x, y) ∈ ℝ⁶.
  for (int d : {3, 6}) {
    cases.push_back({"cube", ExampleShape::vector(d), 24});
    cases.push_back({"icosahedron", ExampleShape::vector(d), 60});
  }
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CAPTURE(c.shape.to_string());
    const Representation rho = make_group(c.name, c.shape);
    CHECK(rho.exact());
    CHECK(rho.size() == c.expected_size);
    CHECK(rho.dim() == c.shape.size());
    test::check_representation_axioms(rho);
  }
  std::remove(s3.c_str());
}

TEST_CASE("every output action is a homomorphism of its input group") {
  const std::vector<std::pair<std::string, ExampleShape>> inputs = {
      {"c4", ExampleShape::image_hwc(4, 4, 1)},    {"d4", ExampleShape::image_hwc(3, 3, 2)},
      {"flip", ExampleShape::image_hwc(2, 3, 1)},  {"translations", ExampleShape::image_hwc(2, 3, 1)},
      {"sign", ExampleShape::vector(3)},           {"cyclic", ExampleShape::vector(4)},
      {"rot2(3)", ExampleShape::vector(2)},        {"rot2(6)", ExampleShape::vector(4)},
      {"cube", ExampleShape::vector(6)},           {"icosahedron", ExampleShape::vector(3)},
  };
  for (const auto& [name, shape] : inputs) {
    CAPTURE(name);
    const Representation in = make_group(name, shape);
    for (int k : {1, 3}) test::check_output_action(in, trivial_output(in, k));
    if (shape.image) {
      for (int k : {1, 2})
        test::check_output_action(in, pixel_output(in, ExampleShape::image_hwc(shape.height, shape.width, k)));
    }
    // The input's own matrices (restricted to its first block for matrix groups) act on outputs.
    std::vector<MatrixXd> own;
    for (int g = 0; g < in.size(); ++g) own.push_back(in.block_matrix(g));
    test::check_output_action(in, matrix_output(in, own));
    // The built-in actions of --output-rep (docs/conventions.md §5).
    test::check_output_action(in, make_output_rep("sign", in, ExampleShape::vector(2)));
    test::check_output_action(in, make_output_rep("regular", in, ExampleShape::vector(in.size())));
    if (name.rfind("rot2", 0) == 0 || name == "cube" || name == "icosahedron")
      test::check_output_action(
          in, make_output_rep("rotation", in, ExampleShape::vector(name.rfind("rot2", 0) == 0 ? 2 : 3)));
  }
  // rot2(K) on 2-vectors drives a 2×2 rotation output (the Theorem 5.2 setting).
  for (int k : {3, 4, 5}) {
    const Representation in = make_group("rot2(" + std::to_string(k) + ")", ExampleShape::vector(4));
    std::vector<MatrixXd> ry;
    for (int g = 0; g < k; ++g) ry.push_back(in.block_matrix(g).topLeftCorner(2, 2));
    test::check_output_action(in, matrix_output(in, ry));
  }
}

TEST_CASE("negative controls: rot(K) and a non-homomorphic output fail the axiom checker") {
  for (int k : {3, 6, 8}) {
    const Representation rho = make_group("rot(" + std::to_string(k) + ")", ExampleShape::image_hwc(6, 6, 1));
    CAPTURE(rho.to_string());
    CHECK_FALSE(rho.exact());
    const test::AxiomViolations v = test::measure_axioms(rho);
    CAPTURE(v.to_string());
    CHECK_FALSE(v.holds());
    CHECK(v.identity <= v.tolerance);          // the identity comes first…
    CHECK(v.orthogonality > 1e6 * v.tolerance);  // …but interpolation is not orthogonal
    CHECK(v.closure > 1e6 * v.tolerance);        // and products leave the set
  }
  // Rotations by 2π/3 per step do not represent C4 (ρ(1)⁴ ≠ I).
  const Representation in = make_group("rot2(4)", ExampleShape::vector(2));
  std::vector<MatrixXd> wrong;
  for (int g = 0; g < 4; ++g) {
    const double th = 2 * std::numbers::pi / 3 * g;
    MatrixXd r(2, 2);
    r << std::cos(th), -std::sin(th), std::sin(th), std::cos(th);
    wrong.push_back(r);
  }
  const Representation out = matrix_output(in, wrong);
  CHECK_FALSE(out.exact());
  const test::AxiomViolations v = test::measure_axioms(out, &in.composition_table());
  CAPTURE(v.to_string());
  CHECK_FALSE(v.holds(false));
  CHECK(v.closure > 0.5);
}

TEST_CASE("image groups follow the numpy conventions") {
  const ExampleShape sh = ExampleShape::image_hwc(3, 3, 1);
  RowMatrix x(1, 9);
  for (int i = 0; i < 9; ++i) x(0, i) = i;  // x[h][w] = 3h + w
  // numpy.rot90: out[h][w] = in[w][n−1−h]; first row of rot90(arange(9).reshape(3,3)) is [2, 5, 8].
  const RowMatrix r = group_c4(sh).apply(1, x);
  CHECK(r(0, 0) == 2);
  CHECK(r(0, 1) == 5);
  CHECK(r(0, 2) == 8);
  CHECK(group_flip(sh).apply(1, x)(0, 0) == 2);  // horizontal flip: out[h][w] = in[h][W−1−w]
  // numpy.roll by (1, 0): out[h][w] = in[h−1][w].
  const Representation t = group_translations(sh);
  CHECK(t.label(3) == "shift(1,0)");
  CHECK(t.apply(3, x)(0, 3) == 0);
  // rot(4) with bilinear interpolation lands on grid points: it equals c4 on square images.
  const Representation rot4 = group_rotation(4, ExampleShape::image_hwc(4, 4, 2));
  const Representation c4 = group_c4(ExampleShape::image_hwc(4, 4, 2));
  const RowMatrix y = normals(2, 32, 3);
  for (int g = 0; g < 4; ++g) CHECK(max_abs(rot4.apply(g, y) - c4.apply(g, y)) <= 1e-12);
}

TEST_CASE("rot(K) is marked approximate and is not norm-preserving") {
  const Representation rho = make_group("rot(8)", ExampleShape::image_hwc(6, 6, 1));
  CHECK_FALSE(rho.exact());
  CHECK(rho.size() == 8);
  const RepresentationSummary chk = rho.verify();
  CHECK_FALSE(chk.exact());
  CHECK(chk.identity_first);
  CHECK(chk.orthogonality_violation > 1e-2);
  CHECK(chk.closure_violation > 1e-2);
  const RowMatrix x = normals(4, 36, 5);
  double worst = 0;
  for (Index r = 0; r < x.rows(); ++r)
    worst = std::max(worst, std::abs(rho.apply(1, x).row(r).norm() - x.row(r).norm()) / x.row(r).norm());
  CHECK(worst > 1e-3);
  CHECK_THROWS_AS(rho.compose(1, 1), std::invalid_argument);
  CHECK_THROWS_AS(rho.composition_table(), std::invalid_argument);
}

TEST_CASE("group names and shapes are validated") {
  auto message = [](const std::string& name, const ExampleShape& s) {
    try {
      make_group(name, s);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const ExampleShape img = ExampleShape::image_hwc(3, 2, 1), vec = ExampleShape::vector(5);
  CHECK(message("c4", img).find("(3, 2, 1)") != std::string::npos);
  CHECK(message("d4", img).find("square") != std::string::npos);
  CHECK(message("c5", vec).find("'c5'") != std::string::npos);
  CHECK(message("rot(0)", img).find("'0'") != std::string::npos);
  CHECK(message("rot(x)", img).find("'x'") != std::string::npos);
  CHECK(message("rot2(4)", vec).find("even") != std::string::npos);
  CHECK(message("sign", img).find("vector") != std::string::npos);
  CHECK(message("translations", vec).find("image") != std::string::npos);
  CHECK(message("rot2(4)", ExampleShape::vector(4)).empty());
  CHECK(message(" rot ( 3 ) ", img).empty());
  // User matrices: wrong size, identity not first.
  CHECK_THROWS_AS(group_from_matrices("m", vec, {MatrixXd::Identity(4, 4)}), std::invalid_argument);
  CHECK_THROWS_AS(group_from_matrices("m", vec, {-MatrixXd::Identity(5, 5), MatrixXd::Identity(5, 5)}),
                  std::invalid_argument);
  // A non-orthogonal, non-closed set is accepted but reported as not exact.
  MatrixXd a = MatrixXd::Identity(5, 5);
  a(0, 1) = 0.5;
  const Representation bad = group_from_matrices("shear", vec, {MatrixXd::Identity(5, 5), a});
  CHECK_FALSE(bad.exact());
  CHECK(bad.verify().orthogonality_violation > 0.1);
}

TEST_CASE("output actions carry the input's group law") {
  const Representation in = make_group("rot2(4)", ExampleShape::vector(4));
  auto rotations = [](double step) {
    std::vector<MatrixXd> m;
    for (int j = 0; j < 4; ++j) {
      const double th = step * j;
      MatrixXd r(2, 2);
      r << std::cos(th), -std::sin(th), std::sin(th), std::cos(th);
      m.push_back(r);
    }
    return m;
  };
  const Representation out = matrix_output(in, rotations(std::numbers::pi / 2));
  CHECK(out.exact());
  for (int g = 0; g < 4; ++g)
    for (int h = 0; h < 4; ++h) CHECK(out.compose(g, h) == in.compose(g, h));
  // Rotation by 2π/3 per step is no homomorphism of C4.
  CHECK_FALSE(matrix_output(in, rotations(2 * std::numbers::pi / 3)).exact());
  const Representation triv = trivial_output(in, 3);
  CHECK(triv.exact());
  CHECK(triv.size() == 4);
  CHECK(triv.compose(1, 2) == 3);
  const Representation c4 = make_group("c4", ExampleShape::image_hwc(4, 4, 2));
  const Representation pix = pixel_output(c4, ExampleShape::image_hwc(4, 4, 3));
  CHECK(pix.exact());
  CHECK(pix.dim() == 48);
  CHECK(pix.block_permutation(1) == c4.block_permutation(1));
  CHECK_THROWS_AS(pixel_output(c4, ExampleShape::image_hwc(3, 3, 1)), std::invalid_argument);
}

TEST_CASE("full-orbit augmentation keeps the index map") {
  const ExampleShape sh = ExampleShape::image_hwc(4, 4, 2);
  const Representation rho = make_group("d4", sh);
  const Representation out = trivial_output(rho, 2);
  const Inputs x = random_inputs(3, sh, 21);
  const RowMatrix y = normals(3, 2, 22);
  const AugmentedSet a = augment(x, y, rho, out);
  CHECK(a.x.count() == 24);
  CHECK(a.y.rows() == 24);
  CHECK(a.originals == 3);
  CHECK(a.group_size == 8);
  for (int g = 0; g < 8; ++g)
    for (Index i = 0; i < 3; ++i) {
      const Index r = a.row(g, i);
      CHECK(a.source[r] == i);
      CHECK(a.element[r] == g);
      CHECK(max_abs(a.x.x.row(r) - rho.apply(g, x.x).row(i)) == 0.0);
      CHECK(max_abs(a.y.row(r) - y.row(i)) == 0.0);
    }
  for (int h = 0; h < 8; ++h) {
    const auto p = row_permutation(a, rho, h);
    const RowMatrix hx = rho.apply(h, a.x.x);
    std::vector<char> seen(24, 0);
    for (Index r = 0; r < 24; ++r) {
      CHECK(max_abs(hx.row(r) - a.x.x.row(p[r])) == 0.0);
      seen[p[r]] = 1;
    }
    for (char s : seen) CHECK(s == 1);
  }
  CHECK_THROWS_AS(augment(x, normals(2, 2, 1), rho, out), std::invalid_argument);
  CHECK_THROWS_AS(augment(x, normals(3, 3, 1), rho, out), std::invalid_argument);
}

TEST_CASE("orbit_of stacks ρ(g)x element by element, the rows of augment()") {
  const Representation c4 = make_group("c4", ExampleShape::image_hwc(3, 3, 2));
  const Inputs x = test::random_inputs(5, c4.shape(), 17);
  const Inputs orbit = orbit_of(x, c4);
  REQUIRE(orbit.count() == 4 * 5);
  CHECK(orbit.shape == x.shape);
  for (int g = 0; g < c4.size(); ++g)
    CHECK(test::max_abs(orbit.x.middleRows(g * 5, 5) - c4.apply(g, x).x) == 0.0);
  const AugmentedSet set = augment(x, RowMatrix::Zero(5, 1), c4, trivial_output(c4, 1));
  CHECK(test::max_abs(set.x.x - orbit.x) == 0.0);
  CHECK_THROWS_AS(orbit_of(test::random_inputs(2, ExampleShape::vector(4), 1), c4), std::invalid_argument);
}

TEST_CASE("the SO(3) subgroups are the rotations of the cube and of the icosahedron") {
  for (const auto& [name, rotations, order] :
       {std::tuple{"cube", cube_rotations(), 24}, std::tuple{"icosahedron", icosahedron_rotations(), 60}}) {
    CAPTURE(name);
    REQUIRE(static_cast<int>(rotations.size()) == order);
    // Proper rotations, pairwise distinct.
    for (std::size_t g = 0; g < rotations.size(); ++g) {
      CHECK(std::abs(rotations[g].determinant() - 1) < 1e-14);
      CHECK(max_abs(rotations[g].transpose() * rotations[g] - Eigen::Matrix3d::Identity()) < 1e-15);
      for (std::size_t h = 0; h < g; ++h) CHECK(max_abs(rotations[g] - rotations[h]) > 0.1);
    }
    // Class equation by rotation angle: cube 1 + 9 (90°, 180° faces) + 8 (120°) + 6 (180° edges) + ...
    // counted as orders of elements: an element of order n has trace 1 + 2cos(2π/n).
    std::map<int, int> by_order;
    for (const auto& r : rotations) {
      int n = 1;
      Eigen::Matrix3d p = r;
      while (max_abs(p - Eigen::Matrix3d::Identity()) > 1e-9 && n < 100) p = p * r, ++n;
      ++by_order[n];
    }
    if (order == 24) CHECK(by_order == std::map<int, int>{{1, 1}, {2, 9}, {3, 8}, {4, 6}});
    if (order == 60) CHECK(by_order == std::map<int, int>{{1, 1}, {2, 15}, {3, 20}, {5, 24}});
  }
  // The cube group maps the cube's vertices (±1, ±1, ±1) to vertices; the icosahedral group the
  // icosahedron's 12 vertices (0, ±1, ±φ) and cyclic permutations to vertices.
  const double phi = std::numbers::phi;
  std::vector<Eigen::Vector3d> ico;
  for (double a : {-1.0, 1.0})
    for (double b : {-phi, phi}) {
      ico.emplace_back(0, a, b);
      ico.emplace_back(a, b, 0);
      ico.emplace_back(b, 0, a);
    }
  for (const auto& r : icosahedron_rotations())
    for (const auto& v : ico) {
      double best = INFINITY;
      for (const auto& w : ico) best = std::min(best, (r * v - w).norm());
      CHECK(best < 1e-14);
    }
  const Representation pairs = make_group("cube", ExampleShape::vector(6));
  const RowMatrix x = normals(2, 6, 3);
  const auto rot = cube_rotations();
  for (int g = 0; g < pairs.size(); ++g) {
    const RowMatrix gx = pairs.apply(g, x);
    // Each ℝ³ block is rotated by the same R_g.
    CHECK(max_abs(gx.leftCols(3).transpose() - rot[g] * x.leftCols(3).transpose()) < 1e-15);
    CHECK(max_abs(gx.rightCols(3).transpose() - rot[g] * x.rightCols(3).transpose()) < 1e-15);
  }
  CHECK_THROWS_WITH_AS(make_group("cube", ExampleShape::vector(4)), doctest::Contains("divisible by 3"),
                       std::invalid_argument);
  CHECK_THROWS_AS(make_group("icosahedron", ExampleShape::image_hwc(3, 3, 1)), std::invalid_argument);
}

TEST_CASE("output representations: built-in actions and checked user matrices") {
  const Representation c4 = make_group("rot2(4)", ExampleShape::vector(2));
  // The regular representation moves e_h to e_{g·h}.
  const Representation reg = make_output_rep("regular", c4, ExampleShape::vector(4));
  for (int g = 0; g < 4; ++g)
    for (int h = 0; h < 4; ++h) {
      VectorXd e = VectorXd::Zero(4);
      e[h] = 1;
      CHECK(reg.apply(g, e)[c4.compose(g, h)] == 1.0);
    }
  // Sign characters: −1 exactly on the reflections of d4 and on −x of sign.
  const Representation d4 = make_group("d4", ExampleShape::image_hwc(3, 3, 1));
  const Representation sd4 = make_output_rep("sign", d4, ExampleShape::vector(2));
  for (int g = 0; g < 8; ++g) CHECK(sd4.matrix(g)(1, 1) == (g < 4 ? 1.0 : -1.0));
  const Representation sg = make_output_rep("sign", make_group("sign", ExampleShape::vector(4)), ExampleShape::vector(3));
  CHECK(sg.matrix(1) == -MatrixXd::Identity(3, 3));
  // rotation on rot2(K): the 2 × 2 rotation by 2πj/K.
  const Representation r5 = make_group("rot2(5)", ExampleShape::vector(4));
  const Representation rot = make_output_rep("rotation", r5, ExampleShape::vector(2));
  for (int g = 0; g < 5; ++g) {
    const double th = 2 * std::numbers::pi * g / 5;
    CHECK(std::abs(rot.matrix(g)(1, 0) - std::sin(th)) < 1e-15);
  }
  // Errors name the option, the element and the defect.
  const auto err = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  std::vector<MatrixXd> shear(4, MatrixXd::Identity(2, 2));
  shear[2](0, 1) = 0.5;
  std::string m = err([&] { checked_matrix_output(c4, shear, "--output-rep 'S.npy'"); });
  CHECK(m.find("--output-rep 'S.npy'") != std::string::npos);
  CHECK(m.find("element 2") != std::string::npos);
  CHECK(m.find("not orthogonal") != std::string::npos);
  // Rotations by 2π/3 per step: orthogonal, but ρ(1)ρ(1) ≠ ρ(2) in C4... in fact ρ(1)ρ(3) ≠ ρ(0).
  std::vector<MatrixXd> wrong;
  for (int g = 0; g < 4; ++g) wrong.push_back(Eigen::Rotation2Dd(2 * std::numbers::pi / 3 * g).toRotationMatrix());
  m = err([&] { checked_matrix_output(c4, wrong, "--output-rep 'W.npy'"); });
  CHECK(m.find("not a homomorphism") != std::string::npos);
  CHECK(m.find("g·h") != std::string::npos);
  std::vector<MatrixXd> not_id(4, -MatrixXd::Identity(2, 2));
  m = err([&] { checked_matrix_output(c4, not_id, "X"); });
  CHECK(m.find("identity") != std::string::npos);
  // The same through a .npy file, and a file of the wrong shape.
  std::vector<double> data;
  for (const auto& w : wrong)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) data.push_back(w(i, j));
  const std::string path = temp_path("wrong_rep.npy");
  write_npy(path, {4, 2, 2}, data.data());
  m = err([&] { make_output_rep(path, c4, ExampleShape::vector(2)); });
  CHECK(m.find("output representation '" + path + "'") != std::string::npos);
  CHECK(m.find("not a homomorphism") != std::string::npos);
  m = err([&] { make_output_rep(path, c4, ExampleShape::vector(3)); });
  CHECK(m.find("expected (|G|, k, k) = (4, 3, 3)") != std::string::npos);
  std::remove(path.c_str());
  // Exact input groups only, vector outputs only, the right sizes.
  const Representation approx = make_group("rot(4)", ExampleShape::image_hwc(4, 4, 1));
  CHECK(err([&] { make_output_rep("sign", approx, ExampleShape::vector(1)); }).find("not an exact group") != std::string::npos);
  CHECK(make_output_rep("trivial", approx, ExampleShape::vector(1)).size() == 4);
  CHECK(err([&] { make_output_rep("regular", c4, ExampleShape::vector(3)); }).find("4-vectors") != std::string::npos);
  CHECK(err([&] { make_output_rep("rotation", c4, ExampleShape::vector(3)); }).find("2-vectors") != std::string::npos);
  CHECK(err([&] { make_output_rep("rotation", d4, ExampleShape::vector(2)); }).find("not made of rotations") !=
        std::string::npos);
  CHECK(err([&] { make_output_rep("sign", d4, ExampleShape::image_hwc(3, 3, 1)); }).find("expected 'pixels'") !=
        std::string::npos);
  CHECK(err([&] { make_output_rep("spin", c4, ExampleShape::vector(2)); }).find("unknown") != std::string::npos);
}
