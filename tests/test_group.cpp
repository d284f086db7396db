// Group representations (stamped-out axiom tests for every group), augmentation and the
// checks of Gerken & Kessel (ICML 2024) Theorem 5.1, Lemmas 5.1/5.2 and Theorem 5.2.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>
#include <vector>

#include "emergent/group.hpp"
#include "emergent/npy.hpp"
#include "emergent/random.hpp"

using namespace emergent;
using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

RowMatrix normals(Index rows, Index cols, std::uint64_t seed) {
  NormalStream s(seed, 7);
  RowMatrix m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = s.normal(static_cast<std::uint64_t>(i));
  return m;
}

Inputs random_inputs(Index n, const ExampleShape& shape, std::uint64_t seed) {
  return Inputs(normals(n, shape.size(), seed), shape);
}

double max_abs(const RowMatrix& a) { return a.cwiseAbs().maxCoeff(); }

std::string temp_path(const char* name) { return std::string("/tmp/emergent_test_group_") + name; }

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
  const std::vector<GroupCase> cases = {
      {"c4", ExampleShape::image_hwc(5, 5, 2), 4},
      {"c4", ExampleShape::image_hwc(4, 4, 1), 4},
      {"d4", ExampleShape::image_hwc(4, 4, 3), 8},
      {"d4", ExampleShape::image_hwc(5, 5, 1), 8},
      {"flip", ExampleShape::image_hwc(3, 4, 2), 2},
      {"translations", ExampleShape::image_hwc(3, 4, 2), 12},
      {"sign", ExampleShape::vector(5), 2},
      {"cyclic", ExampleShape::vector(5), 5},
      {"rot2(6)", ExampleShape::vector(4), 6},
      {"rot2(4)", ExampleShape::vector(2), 4},
      {"rot2(5)", ExampleShape::vector(6), 5},
      {s3, ExampleShape::vector(3), 6},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CAPTURE(c.shape.to_string());
    const Representation rho = make_group(c.name, c.shape);
    CHECK(rho.exact());
    CHECK(rho.size() == c.expected_size);
    CHECK(rho.dim() == c.shape.size());
    const RepresentationCheck chk = rho.verify();
    CHECK(chk.exact());
    const RowMatrix x = normals(3, rho.dim(), 11);
    const double tol = 64 * 2.2e-16 * static_cast<double>(rho.dim());
    // Identity first, acting trivially.
    CHECK(max_abs(rho.apply(0, x) - x) == 0.0);
    for (int g = 0; g < rho.size(); ++g) {
      const RowMatrix gx = rho.apply(g, x);
      // Norm preservation (orthogonality).
      for (Index r = 0; r < x.rows(); ++r) CHECK(std::abs(gx.row(r).norm() - x.row(r).norm()) <= tol);
      // The dense matrix agrees with apply and is orthogonal.
      const MatrixXd m = rho.matrix(g);
      CHECK((m * x.transpose() - gx.transpose()).cwiseAbs().maxCoeff() <= tol);
      CHECK((m.transpose() * m - MatrixXd::Identity(rho.dim(), rho.dim())).cwiseAbs().maxCoeff() <= tol);
      // Inverse.
      CHECK(max_abs(rho.apply(rho.inverse(g), gx) - x) <= tol);
      CHECK(rho.compose(g, rho.inverse(g)) == 0);
      // Distinct elements (so |G| counts the group, not duplicates).
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
      // Permutation groups expose index maps consistent with the action.
      if (rho.is_permutation()) {
        const auto p = rho.permutation(g);
        for (Index i = 0; i < rho.dim(); ++i) CHECK(gx(0, i) == x(0, p[i]));
      }
    }
  }
  std::remove(s3.c_str());
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
  const RepresentationCheck chk = rho.verify();
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

namespace {

void expect_holds(const TheoremReport& r) {
  INFO(r.to_string());
  CHECK(r.holds);
  for (const auto& p : r.parts) {
    CHECK(p.max_violation <= p.tolerance);
    // Exact permutations: 0 is right; at t = 0 the mean is exactly 0 on both sides.
    if (p.name != "row permutation" && p.scale > 0) CHECK(p.tolerance > 0.0);
    // Round-off sized, not a loose constant; pairs of an input with itself get the √ε allowance of
    // the ReLU-family NTK factor at θ = 0.
    const bool collinear = p.name.find("collinear") != std::string::npos ||
                           (p.name.find("Lemma 5.2") != std::string::npos && r.parts.size() > 3 &&
                            r.parts[3].name.find("collinear") != std::string::npos && r.parts[3].max_violation > 1e-12);
    // The t = ∞ covariance bound carries the conditioning (1/λ_min)² of Θ.
    const bool conditioned = p.name.rfind("covariance t=inf", 0) == 0;
    CHECK(p.tolerance <= (collinear ? 1e-5 : conditioned ? 1e-6 : 1e-9) * std::max(p.scale, 1.0));
  }
}

// A negative control: the identity fails by far more than round-off.
void expect_fails(const TheoremReport& r) {
  INFO(r.to_string());
  CHECK_FALSE(r.holds);
  CHECK(r.max_ratio() > 1e6);
}

}  // namespace

TEST_CASE("Theorem 5.1: MLP kernels are invariant under orthogonal input maps") {
  const Architecture mlp = Architecture::parse("dense(16, w=1.5, b=0.1) relu dense(16, w=1.2, b=0.2) erf dense(1)");
  const ExampleShape v4 = ExampleShape::vector(4), v5 = ExampleShape::vector(5);
  expect_holds(check_theorem_5_1(mlp, random_inputs(4, v4, 1), make_group("rot2(6)", v4)));
  expect_holds(check_theorem_5_1(mlp, random_inputs(4, v5, 2), random_inputs(3, v5, 3), make_group("cyclic", v5)));
  expect_holds(check_theorem_5_1(mlp, random_inputs(4, v5, 4), make_group("sign", v5)));
  // Any orthogonal matrix (the set {I, Q} is not closed, the theorem needs only orthogonality).
  const MatrixXd q = Eigen::HouseholderQR<MatrixXd>(MatrixXd(normals(5, 5, 9))).householderQ();
  const Representation oq = group_from_matrices("Q", v5, {MatrixXd::Identity(5, 5), q});
  CHECK_FALSE(oq.exact());
  CHECK(oq.verify().orthogonal);
  expect_holds(check_theorem_5_1(Architecture::parse("dense(8, b=0.3) gelu dense(2)"), random_inputs(5, v5, 5), oq));
  // Negative control: a non-orthogonal linear map.
  MatrixXd a = MatrixXd::Identity(5, 5) + 0.3 * MatrixXd(normals(5, 5, 10));
  expect_fails(check_theorem_5_1(mlp, random_inputs(4, v5, 6), group_from_matrices("A", v5, {MatrixXd::Identity(5, 5), a})));
}

TEST_CASE("Theorem 5.1: CNN kernels transform by the pixel permutation") {
  const ExampleShape s5 = ExampleShape::image_hwc(5, 5, 2), s4 = ExampleShape::image_hwc(4, 4, 1);
  const Inputs x5 = random_inputs(3, s5, 31), x4 = random_inputs(3, s4, 32);
  const Inputs x5b = random_inputs(2, s5, 33);
  SUBCASE("circular padding and translations") {
    const char* specs[] = {"conv(4, 3x3, padding=circular, b=0.1) relu conv(2, 3x3, padding=circular)",
                           "conv(4, 2x3, padding=circular) erf conv(2, 3x2, padding=circular)",
                           "conv(4, 3x3, padding=circular) relu flatten dense(1)",
                           "conv(4, 3x3, padding=circular) relu conv(2, 3x3, padding=circular) gap dense(2)"};
    for (const char* s : specs) {
      CAPTURE(s);
      expect_holds(check_theorem_5_1(Architecture::parse(s), x5, x5b, make_group("translations", s5)));
    }
  }
  SUBCASE("c4, d4 and flip with square odd filters, same or circular padding") {
    const char* specs[] = {"conv(4, 3x3, w=1.3, b=0.2) relu conv(2, 3x3)",
                           "conv(4, 3x3, padding=circular) relu conv(2, 3x3, padding=circular)",
                           "conv(4, 3x3) relu conv(3, 1x1) abs gap dense(1)",
                           "conv(4, 5x5) erf flatten dense(1)"};
    for (const char* s : specs)
      for (const char* g : {"c4", "d4", "flip"}) {
        CAPTURE(s);
        CAPTURE(g);
        expect_holds(check_theorem_5_1(Architecture::parse(s), x5, make_group(g, s5)));
      }
    // Even square filters with circular padding keep c4 only up to a shift; after a readout
    // that shift is invisible.
    expect_holds(check_theorem_5_1(Architecture::parse("conv(4, 2x2, padding=circular) relu gap dense(1)"), x4,
                                   make_group("d4", s4)));
  }
  SUBCASE("negative controls") {
    // c4 with a 3×2 filter: the window is not rotation invariant.
    expect_fails(check_theorem_5_1(Architecture::parse("conv(4, 3x2) relu conv(2, 3x3)"), x5, make_group("c4", s5)));
    // translations with zero ('same') padding: the boundary breaks the symmetry.
    expect_fails(check_theorem_5_1(Architecture::parse("conv(4, 3x3) relu conv(2, 3x3)"), x5,
                                   make_group("translations", s5)));
    // flip with an even filter and same padding: the window is asymmetric.
    expect_fails(check_theorem_5_1(Architecture::parse("conv(4, 2x2) relu conv(1, 2x2)"), x4, make_group("flip", s4)));
    // rot(8) with interpolation: not a representation, so no exact equivariance, with or without readout.
    const Representation r8 = make_group("rot(8)", s5);
    expect_fails(check_theorem_5_1(Architecture::parse("conv(4, 3x3) relu conv(2, 3x3)"), x5, r8));
    expect_fails(check_theorem_5_1(Architecture::parse("conv(4, 3x3) relu flatten dense(1)"), x5, r8));
  }
  SUBCASE("shapes that do not fit are rejected") {
    CHECK_THROWS_AS(check_theorem_5_1(Architecture::parse("conv(2, 3x3, padding=valid) relu conv(1, 1x1)"), x5,
                                      make_group("c4", s5)),
                    std::invalid_argument);
    CHECK_THROWS_AS(check_theorem_5_1(Architecture::parse("conv(2, 3x3) relu conv(1, 1x1)"), x4, make_group("c4", s5)),
                    std::invalid_argument);
  }
}

TEST_CASE("Lemmas 5.1/5.2: augmentation permutes the rows, commuting with Θ, K and g_t(Θ)") {
  const ExampleShape s4 = ExampleShape::image_hwc(4, 4, 1);
  const Representation c4 = make_group("c4", s4);
  const Inputs x = random_inputs(3, s4, 41);
  const AugmentedSet a = augment(x, RowMatrix::Zero(3, 1), c4, trivial_output(c4, 1));
  LemmaCheckOptions o;
  o.times = {1.0, 30.0, 1000.0};
  SUBCASE("readout network") {
    const Architecture arch = Architecture::parse("conv(4, 3x3, b=0.1) relu gap dense(1)");
    expect_holds(check_lemmas_5_1_5_2(arch, a.x, c4, o));
    // Without augmentation ρ(g) does not map the training set to itself.
    const TheoremReport raw = check_lemmas_5_1_5_2(arch, x, c4, o);
    expect_fails(raw);
    CHECK_FALSE(raw.part("row permutation").holds);
    CHECK_FALSE(raw.part("Lemma 5.1 NTK").holds);
    CHECK_FALSE(raw.part("Lemma 5.2 g_t(Θ), t=30").holds);
    // Augmented, but the architecture breaks the symmetry (3×2 filter): the rows are permuted
    // yet Θ does not commute with the permutation.
    const TheoremReport broken = check_lemmas_5_1_5_2(Architecture::parse("conv(4, 3x2) relu flatten dense(1)"), a.x, c4, o);
    CHECK(broken.part("row permutation").holds);
    CHECK_FALSE(broken.part("Lemma 5.1 NTK").holds);
    CHECK(broken.part("Lemma 5.1 NTK").max_violation > 1e6 * broken.part("Lemma 5.1 NTK").tolerance);
  }
  SUBCASE("pixel-indexed kernels with translations") {
    // 4×4 (not 3×3): a 3×3 circular filter on a 3×3 map would see every pixel, making all pixel
    // pairs collinear after the first layer (the ReLU NTK factor is then √ε-conditioned everywhere).
    const ExampleShape s3 = ExampleShape::image_hwc(4, 4, 1);
    const Representation tr = make_group("translations", s3);
    const Inputs x3 = random_inputs(2, s3, 42);
    const AugmentedSet a3 = augment(x3, RowMatrix::Zero(2, 1), tr, trivial_output(tr, 1));
    const Architecture arch = Architecture::parse("conv(4, 3x3, padding=circular) relu conv(1, 3x3, padding=circular)");
    expect_holds(check_lemmas_5_1_5_2(arch, a3.x, tr, o));
    expect_fails(check_lemmas_5_1_5_2(arch, x3, tr, o));
  }
  SUBCASE("MLP with coordinate shifts") {
    const ExampleShape v = ExampleShape::vector(5);
    const Representation cy = make_group("cyclic", v);
    const Inputs xv = random_inputs(4, v, 43);
    const AugmentedSet av = augment(xv, RowMatrix::Zero(4, 1), cy, trivial_output(cy, 1));
    const Architecture mlp = Architecture::parse("dense(8, b=0.5) relu dense(1)");
    expect_holds(check_lemmas_5_1_5_2(mlp, av.x, cy, o));
    expect_fails(check_lemmas_5_1_5_2(mlp, xv, cy, o));
  }
}

TEST_CASE("Theorem 5.2: the ensemble is equivariant at all times only with augmentation") {
  const std::vector<double> times = {0.0, 5.0, 200.0, std::numeric_limits<double>::infinity()};
  SUBCASE("MLP, 2-D rotation of inputs and of 2-vector targets") {
    const ExampleShape v = ExampleShape::vector(4);
    const Representation rx = make_group("rot2(4)", v);
    std::vector<MatrixXd> ry;
    for (int j = 0; j < 4; ++j) ry.push_back(rx.block_matrix(j).topLeftCorner(2, 2));
    const Representation out = matrix_output(rx, ry);
    REQUIRE(out.exact());
    const Architecture mlp = Architecture::parse("dense(16, w=1.4, b=0.2) relu dense(2)");
    const Inputs x = random_inputs(5, v, 51), z = random_inputs(3, v, 52);
    const RowMatrix y = normals(5, 2, 53);
    Theorem52Options o;
    o.times = times;
    const TheoremReport with = check_theorem_5_2(mlp, x, y, z, rx, out, o);
    expect_holds(with);
    CHECK(with.parts.size() == 16);  // 4 times × {mean, covariance} × {test, noise}
    o.augment = false;
    const TheoremReport without = check_theorem_5_2(mlp, x, y, z, rx, out, o);
    INFO(without.to_string());
    CHECK_FALSE(without.holds);
    // At t = 0 the prior is equivariant either way; afterwards the violation is far above round-off.
    CHECK(without.part("mean t=0 test").holds);
    for (const char* p : {"mean t=5 test", "mean t=inf test", "mean t=200 noise", "covariance t=200 test",
                          "covariance t=inf noise"}) {
      CAPTURE(p);
      CHECK(without.part(p).max_violation > 1e6 * without.part(p).tolerance);
    }
  }
  SUBCASE("CNN without readout, c4 on pixels") {
    const ExampleShape s = ExampleShape::image_hwc(4, 4, 1);
    const Representation rx = make_group("c4", s);
    const Representation ry = pixel_output(rx, ExampleShape::image_hwc(4, 4, 1));
    const Architecture cnn = Architecture::parse("conv(4, 3x3, b=0.1) relu conv(1, 3x3)");
    const Inputs x = random_inputs(2, s, 61), z = random_inputs(2, s, 62);
    const RowMatrix y = normals(2, 16, 63);
    Theorem52Options o;
    o.times = {3.0, 100.0};
    o.noise_inputs = 2;
    expect_holds(check_theorem_5_2(cnn, x, y, z, rx, ry, o));
    o.augment = false;
    const TheoremReport without = check_theorem_5_2(cnn, x, y, z, rx, ry, o);
    INFO(without.to_string());
    CHECK_FALSE(without.holds);
    CHECK(without.max_ratio() > 1e6);
  }
}
