// The checks of Gerken & Kessel (ICML 2024) Theorem 5.1, Lemmas 5.1/5.2 and Theorem 5.2.
#include <doctest/doctest.h>

#include "support/enum_names.hpp"

#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>
#include <limits>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"
#include "emergent/data/npy.hpp"
#include "emergent/core/random.hpp"
#include "support/test_support.hpp"

using namespace emergent;
using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using test::max_abs;
using test::normals;
using test::random_inputs;

namespace {

void expect_holds(const TheoremResult& r) {
  INFO(r.to_string());
  CHECK(r.holds);
  for (const auto& p : r.parts) {
    CHECK(p.max_violation <= p.tolerance);
    // Exact permutations: 0 is right; at t = 0 the mean is exactly 0 on both sides.
    if (p.quantity != Quantity::RowPermutation && p.scale > 0) CHECK(p.tolerance > 0.0);
    // Round-off sized, not a loose constant; pairs of an input with itself get the √ε allowance of
    // the ReLU-family NTK factor at θ = 0 (and g_t(Θ) inherits it when those pairs carry round-off).
    const CheckResult* ntk_collinear = r.find(Quantity::Ntk, InputSet::Collinear);
    const bool collinear = p.inputs == InputSet::Collinear ||
                           (p.quantity == Quantity::SpectralFilter && ntk_collinear && ntk_collinear->max_violation > 1e-12);
    // The t = ∞ covariance bound carries the conditioning (1/λ_min)² of Θ.
    const bool conditioned = p.quantity == Quantity::Covariance && std::isinf(p.time);
    CHECK(p.tolerance <= (collinear ? 1e-5 : conditioned ? 1e-6 : 1e-9) * std::max(p.scale, 1.0));
  }
}

// A negative control: the identity fails by far more than round-off.
void expect_fails(const TheoremResult& r) {
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
    const TheoremResult raw = check_lemmas_5_1_5_2(arch, x, c4, o);
    expect_fails(raw);
    CHECK_FALSE(raw.part(Quantity::RowPermutation, InputSet::Train).holds);
    CHECK_FALSE(raw.part(Quantity::Ntk, InputSet::Train).holds);
    CHECK_FALSE(raw.part(Quantity::SpectralFilter, InputSet::Train, 30.0).holds);
    // Augmented, but the architecture breaks the symmetry (3×2 filter): the rows are permuted
    // yet Θ does not commute with the permutation.
    const TheoremResult broken = check_lemmas_5_1_5_2(Architecture::parse("conv(4, 3x2) relu flatten dense(1)"), a.x, c4, o);
    CHECK(broken.part(Quantity::RowPermutation, InputSet::Train).holds);
    CHECK_FALSE(broken.part(Quantity::Ntk, InputSet::Train).holds);
    CHECK(broken.part(Quantity::Ntk, InputSet::Train).max_violation > 1e6 * broken.part(Quantity::Ntk, InputSet::Train).tolerance);
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
    const TheoremResult with = check_theorem_5_2(mlp, x, y, z, rx, out, o);
    expect_holds(with);
    CHECK(with.parts.size() == 16);  // 4 times × {mean, covariance} × {test, noise}
    o.augment = false;
    const TheoremResult without = check_theorem_5_2(mlp, x, y, z, rx, out, o);
    INFO(without.to_string());
    CHECK_FALSE(without.holds);
    // At t = 0 the prior is equivariant either way; afterwards the violation is far above round-off.
    CHECK(without.part(Quantity::Mean, InputSet::Test, 0.0).holds);
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<std::tuple<Quantity, InputSet, double>> far = {{Quantity::Mean, InputSet::Test, 5.0},
                                                                     {Quantity::Mean, InputSet::Test, inf},
                                                                     {Quantity::Mean, InputSet::Noise, 200.0},
                                                                     {Quantity::Covariance, InputSet::Test, 200.0},
                                                                     {Quantity::Covariance, InputSet::Noise, inf}};
    for (const auto& [quantity, inputs, time] : far) {
      const CheckResult& p = without.part(quantity, inputs, time);
      CAPTURE(p.name());
      CHECK(p.max_violation > 1e6 * p.tolerance);
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
    const TheoremResult without = check_theorem_5_2(cnn, x, y, z, rx, ry, o);
    INFO(without.to_string());
    CHECK_FALSE(without.holds);
    CHECK(without.max_ratio() > 1e6);
  }
}

TEST_CASE("Theorem 5.2 with non-trivial output representations of --output-rep") {
  const std::vector<double> times = {0.0, 10.0, std::numeric_limits<double>::infinity()};
  struct Case {
    std::string group, rep;
    int dim, outputs, train;
  };
  // ρ_Y: the 2-D rotation of rot2(K), the 3-D rotation of the cube and icosahedral groups on
  // pairs (x, y) ∈ ℝ⁶ (the cross-product setting), the regular representation and a sign.
  // (The icosahedral orbit of one pair is 60 points of ℝ⁶: more would make Θ ill-conditioned.)
  const std::vector<Case> cases = {{"rot2(5)", "rotation", 4, 2, 3},    {"cube", "rotation", 6, 3, 3},
                                   {"icosahedron", "rotation", 6, 3, 1}, {"rot2(3)", "regular", 2, 3, 3},
                                   {"sign", "sign", 3, 2, 3}};
  for (const auto& c : cases) {
    CAPTURE(c.group);
    CAPTURE(c.rep);
    const ExampleShape v = ExampleShape::vector(c.dim);
    const Representation rx = make_group(c.group, v);
    const Representation ry = make_output_rep(c.rep, rx, ExampleShape::vector(c.outputs));
    REQUIRE(ry.exact());
    const Architecture mlp =
        Architecture::parse("dense(16, w=1.3, b=0.3) erf dense(" + std::to_string(c.outputs) + ")");
    const Inputs x = random_inputs(c.train, v, 71), z = random_inputs(2, v, 72);
    const RowMatrix y = normals(c.train, c.outputs, 73);
    Theorem52Options o;
    o.times = times;
    o.noise_inputs = 2;
    expect_holds(check_theorem_5_2(mlp, x, y, z, rx, ry, o));
    o.augment = false;
    const TheoremResult without = check_theorem_5_2(mlp, x, y, z, rx, ry, o);
    INFO(without.to_string());
    CHECK_FALSE(without.holds);
    // The prior (t = 0) is equivariant either way; the trained mean is not, far above round-off.
    CHECK(without.part(Quantity::Mean, InputSet::Test, 0.0).holds);
    for (double t : {10.0, std::numeric_limits<double>::infinity()}) {
      const CheckResult& p = without.part(Quantity::Mean, InputSet::Test, t);
      CAPTURE(t);
      CHECK(p.max_violation > 1e6 * p.tolerance);
    }
  }
  // A target action that is not the group's (the 3-D rotation of the cube paired with the
  // icosahedral input group is not even the right size) is refused before training.
  const Representation ico = make_group("icosahedron", ExampleShape::vector(6));
  std::vector<MatrixXd> cube_on_ico;
  for (const auto& r : cube_rotations()) cube_on_ico.push_back(r);
  CHECK_THROWS_AS(checked_matrix_output(ico, cube_on_ico, "m"), std::invalid_argument);
}

TEST_CASE("Theorem results are selected by their typed fields; names are derived from them") {
  const ExampleShape v = ExampleShape::vector(3);
  const Representation cy = make_group("cyclic", v);
  const Inputs x = random_inputs(3, v, 71);
  const AugmentedSet a = augment(x, RowMatrix::Zero(3, 1), cy, trivial_output(cy, 1));
  LemmaCheckOptions o;
  o.times = {2.0, 40.0};
  const TheoremResult r = check_lemmas_5_1_5_2(Architecture::parse("dense(4) relu dense(1)"), a.x, cy, o);
  const CheckResult& rows = r.part(Quantity::RowPermutation, InputSet::Train);
  CHECK(rows.theorem == Theorem::Lemma51);
  CHECK_FALSE(rows.has_time());
  CHECK(rows.name() == "row permutation");
  CHECK(r.part(Quantity::Nngp, InputSet::Train).name() == "Lemma 5.1 NNGP");
  CHECK(r.part(Quantity::Ntk, InputSet::Collinear).name() == "Lemma 5.1 NTK collinear pairs");
  const CheckResult& g40 = r.part(Quantity::SpectralFilter, InputSet::Train, 40.0);
  CHECK(g40.theorem == Theorem::Lemma52);
  CHECK(g40.time == 40.0);
  CHECK(g40.name() == "Lemma 5.2 g_t(Θ), t=40");
  // A time that was not requested, a quantity the lemmas do not compare, a part without time
  // asked for at a time: no part, and part() says which fields it looked for.
  CHECK(r.find(Quantity::SpectralFilter, InputSet::Train, 41.0) == nullptr);
  CHECK(r.find(Quantity::Mean, InputSet::Test, 2.0) == nullptr);
  CHECK(r.find(Quantity::RowPermutation, InputSet::Train, 2.0) == nullptr);
  CHECK_THROWS_AS(r.part(Quantity::Mean, InputSet::Test, 2.0), std::out_of_range);
  try {
    (void)r.part(Quantity::Covariance, InputSet::Noise, 2.0);
  } catch (const std::out_of_range& e) {
    CHECK(std::string(e.what()).find("covariance") != std::string::npos);
    CHECK(std::string(e.what()).find("noise") != std::string::npos);
  }
  // Every part is found by its own fields (the fields identify a part uniquely).
  for (const auto& p : r.parts) CHECK(&r.part(p.quantity, p.inputs, p.time) == &p);
}

TEST_CASE("Theorem: to_string and parse_theorem are inverse, snake_case, and reject unknown names") {
  using E = emergent::Theorem;
  const std::vector<E> all = {E::KernelTransform51, E::Lemma51, E::Lemma52, E::Ensemble52};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_theorem(s); });
}

TEST_CASE("Quantity: to_string and parse_quantity are inverse, snake_case, and reject unknown names") {
  using E = emergent::Quantity;
  const std::vector<E> all = {E::RowPermutation, E::Nngp, E::Ntk, E::SpectralFilter, E::Mean, E::Covariance};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_quantity(s); });
}

TEST_CASE("InputSet: to_string and parse_input_set are inverse, snake_case, and reject unknown names") {
  using E = emergent::InputSet;
  const std::vector<E> all = {E::Given, E::Train, E::Collinear, E::Test, E::Noise};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_input_set(s); });
}
