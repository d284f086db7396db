// The spec grammar of docs/conventions.md §1: parsing, canonical printing, shape checks, error messages.
#include <doctest/doctest.h>

#include "support/enum_names.hpp"
#include "support/test_support.hpp"

#include <emergent/core/architecture.hpp>

using namespace emergent;

namespace {
// The message of the SpecError thrown by parsing `spec` (empty if none).
std::string parse_error(const std::string& spec) {
  try {
    Architecture::parse(spec);
  } catch (const SpecError& e) {
    return e.what();
  }
  return "";
}
std::string shape_error(const std::string& spec, const ExampleShape& in) {
  try {
    Architecture::parse(spec).shapes(in);
  } catch (const SpecError& e) {
    return e.what();
  }
  return "";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("the example of docs/conventions.md §1 parses into the documented layers") {
  const auto a = Architecture::parse("conv(64, 3x3, padding=circular, w=1.4, b=0.1) relu flatten dense(1)");
  REQUIRE(a.layers().size() == 4);
  const Layer& c = a.layers()[0];
  CHECK(c.kind == LayerKind::Conv);
  CHECK(c.width == 64);
  CHECK(c.filter_h == 3);
  CHECK(c.filter_w == 3);
  CHECK(c.padding == Padding::Circular);
  CHECK(c.w_std == 1.4);
  CHECK(c.b_std == 0.1);
  CHECK(a.layers()[1].kind == LayerKind::Activation);
  CHECK(a.layers()[1].activation.kind == ActivationKind::Relu);
  CHECK(a.layers()[2].kind == LayerKind::Flatten);
  CHECK(a.layers()[3].width == 1);
  CHECK(a.outputs() == 1);
  CHECK(a.has_readout());
  CHECK(a.expects_images());
  const auto trace = a.shapes(ExampleShape::image_hwc(8, 8, 1));
  CHECK(trace.shapes.back() == ExampleShape::vector(1));
  CHECK(trace.shapes[1] == ExampleShape::image_hwc(8, 8, 64));
  CHECK(trace.shapes[3] == ExampleShape::vector(8 * 8 * 64));
}

TEST_CASE("defaults, every layer, and canonical printing that parses back") {
  const auto a = Architecture::parse(
      "dense(10) relu dense(5, w=2, b=0.5) leaky_relu(0.1) dense(4) abrelu(-0.5, 2) dense(3) abs erf identity gelu "
      "sin cos tanh sigmoid softplus swish dense(2)");
  CHECK(a.layers()[0].w_std == 1.0);
  CHECK(a.layers()[0].b_std == 0.0);
  CHECK(a.layers()[3].activation.kind == ActivationKind::LeakyRelu);
  CHECK(a.layers()[3].activation.a == 0.1);
  CHECK(a.layers()[5].activation.a == -0.5);
  CHECK(a.layers()[5].activation.b == 2.0);
  CHECK(a.outputs() == 2);
  CHECK_FALSE(a.has_readout());
  CHECK_FALSE(a.expects_images());
  const auto b = Architecture::parse(a.to_string());
  CHECK(b.to_string() == a.to_string());
  CHECK(b.layers().size() == a.layers().size());
  const auto c = Architecture::parse("conv(3, 2x5, padding=valid, w=0.3) gap dense(1, b=1e-3)");
  CHECK(Architecture::parse(c.to_string()).to_string() == c.to_string());
  CHECK(c.layers()[0].filter_h == 2);
  CHECK(c.layers()[0].filter_w == 5);
  CHECK(c.layers()[0].padding == Padding::Valid);
  // White space inside parentheses and an empty argument list are fine.
  CHECK(Architecture::parse("  dense( 4 ,w = 2 )   relu()  dense(1)").to_string() == "dense(4, w=2) relu dense(1)");
}

TEST_CASE("spec errors name the token, its column and what was expected") {
  auto e = parse_error("conv(64, 3, padding=same) relu");
  CHECK(contains(e, "conv: expected FHxFW at column 10, got '3'"));
  e = parse_error("dense(16) relu blah dense(1)");
  CHECK(contains(e, "column 16"));
  CHECK(contains(e, "'blah'"));
  e = parse_error("dense(0)");
  CHECK(contains(e, "WIDTH"));
  CHECK(contains(e, "'0'"));
  e = parse_error("dense() relu");
  CHECK(contains(e, "dense: expected WIDTH"));
  e = parse_error("dense(4, q=1)");
  CHECK(contains(e, "q=1"));
  CHECK(contains(e, "column 10"));
  e = parse_error("conv(4, 3x3, padding=reflect)");
  CHECK(contains(e, "padding=same|valid|circular"));
  CHECK(contains(e, "'reflect'"));
  e = parse_error("dense(4, w=abc)");
  CHECK(contains(e, "'abc'"));
  e = parse_error("dense(4, w=-1)");
  CHECK(contains(e, "w >= 0"));
  e = parse_error("dense(4");
  CHECK(contains(e, "')'"));
  e = parse_error("leaky_relu");
  CHECK(contains(e, "ALPHA"));
  e = parse_error("relu dense(1)");
  CHECK(contains(e, "nonlinearity before the first dense/conv layer"));
  CHECK(contains(e, "column 1"));
  e = parse_error("");
  CHECK(contains(e, "empty"));
  e = parse_error("flatten gap");
  CHECK(contains(e, "at least one dense or conv"));
  e = parse_error("dense(4) relu(2) dense(1)");
  CHECK(contains(e, "'2'"));
}

TEST_CASE("shape errors: the spec must fit its input") {
  auto e = shape_error("conv(4, 3x3) relu dense(1)", ExampleShape::image_hwc(8, 8, 1));
  CHECK(contains(e, "dense on image input"));
  CHECK(contains(e, "flatten or gap"));
  e = shape_error("dense(4) relu dense(1)", ExampleShape::image_hwc(8, 8, 1));
  CHECK(contains(e, "dense on image input"));
  e = shape_error("conv(4, 3x3) relu flatten dense(1)", ExampleShape::vector(5));
  CHECK(contains(e, "conv needs (H, W, C) image input"));
  e = shape_error("conv(4, 5x5, padding=valid) relu gap dense(1)", ExampleShape::image_hwc(4, 8, 1));
  CHECK(contains(e, "larger than its input"));
  CHECK(contains(e, "(4, 8, 1)"));
  e = shape_error("conv(4, 3x3, padding=valid) relu conv(4, 3x3, padding=valid) gap dense(1)",
                  ExampleShape::image_hwc(4, 4, 1));
  CHECK(contains(e, "column 34"));
  e = shape_error("conv(4, 3x3) flatten conv(2, 1x1)", ExampleShape::image_hwc(4, 4, 1));
  CHECK(contains(e, "conv needs"));
  CHECK(shape_error("conv(4, 3x3, padding=valid) relu gap dense(1)", ExampleShape::image_hwc(3, 3, 2)).empty());
  const auto trace = Architecture::parse("conv(4, 3x2, padding=valid) relu gap dense(7)").shapes(ExampleShape::image_hwc(5, 6, 2));
  CHECK(trace.shapes[1] == ExampleShape::image_hwc(3, 5, 4));
  CHECK(trace.shapes[3] == ExampleShape::vector(4));
  CHECK(trace.shapes[4] == ExampleShape::vector(7));
}

TEST_CASE("ActivationKind: to_string and parse_activation_kind are inverse, snake_case, and reject unknown names") {
  using E = emergent::ActivationKind;
  const std::vector<E> all = {E::Identity, E::Relu, E::Abs, E::LeakyRelu, E::AbRelu, E::Erf, E::Gelu, E::Sin, E::Cos, E::Tanh,
      E::Sigmoid, E::Softplus, E::Swish};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_activation_kind(s); });
}

TEST_CASE("LayerKind: to_string and parse_layer_kind are inverse, snake_case, and reject unknown names") {
  using E = emergent::LayerKind;
  const std::vector<E> all = {E::Dense, E::Conv, E::Activation, E::Flatten, E::GlobalAvgPool};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_layer_kind(s); });
}

TEST_CASE("Padding: to_string and parse_padding are inverse, snake_case, and reject unknown names") {
  using E = emergent::Padding;
  const std::vector<E> all = {E::Same, E::Valid, E::Circular};
  emergent::test::check_enum_names<E>(all, [](const std::string& s) { return emergent::parse_padding(s); });
}

TEST_CASE("avgpool, layernorm and residual blocks: parsing, canonical printing and shapes") {
  const Architecture a = Architecture::parse(
      "conv(8, 3x3) residual(relu conv(8, 3x3, padding=circular) residual(erf conv(8, 1x1)) layernorm) "
      "avgpool(2x2, stride=2) avgpool(3, padding=same) layernorm(eps=1e-6) flatten dense(1)");
  REQUIRE(a.layers().size() == 15);
  CHECK(a.layers()[1].kind == LayerKind::ResidualBegin);
  CHECK(a.layers()[4].kind == LayerKind::ResidualBegin);
  CHECK(a.layers()[7].kind == LayerKind::ResidualEnd);
  CHECK(a.layers()[9].kind == LayerKind::ResidualEnd);
  const Layer& pool = a.layers()[10];
  CHECK(pool.kind == LayerKind::AvgPool);
  CHECK(pool.filter_h == 2);
  CHECK(pool.stride_w == 2);
  CHECK(pool.padding == Padding::Valid);  // Neural Tangents' default
  CHECK(a.layers()[11].filter_w == 3);
  CHECK(a.layers()[11].stride_h == 1);
  CHECK(a.layers()[12].eps == 1e-6);
  CHECK(a.layers()[8].eps == 1e-12);
  CHECK(a.has_extended_layers());
  CHECK_FALSE(Architecture::parse("conv(2, 3x3) relu gap dense(1)").has_extended_layers());
  CHECK(a.to_string() ==
        "conv(8, 3x3) residual(relu conv(8, 3x3, padding=circular) residual(erf conv(8, 1x1)) layernorm) "
        "avgpool(2x2, stride=2x2) avgpool(3x3, padding=same) layernorm(eps=1e-06) flatten dense(1)");
  CHECK(Architecture::parse(a.to_string()).to_string() == a.to_string());
  const ShapeTrace t = a.shapes(ExampleShape::image_hwc(9, 8, 3));
  CHECK(t.shapes[11] == ExampleShape::image_hwc(4, 4, 8));  // ⌊(9−2)/2⌋+1 × ⌊(8−2)/2⌋+1
  CHECK(t.shapes[12] == ExampleShape::image_hwc(4, 4, 8));
  CHECK(t.shapes.back() == ExampleShape::vector(1));
  CHECK(Architecture::parse("avgpool(2x2) conv(1, 1x1)").expects_images());
  CHECK(pooled_size(7, 3, 2, Padding::Same) == 4);
  CHECK(pooled_pad_before(7, 3, 2, Padding::Same) == 1);
  CHECK(pooled_size(7, 3, 2, Padding::Valid) == 3);
  CHECK(pooled_size(2, 3, 1, Padding::Valid) == 0);
}

TEST_CASE("avgpool, layernorm and residual blocks: clear errors") {
  auto err = [](const std::string& spec, const ExampleShape* shape = nullptr) {
    return test::error_of<SpecError>([&] {
      const Architecture a = Architecture::parse(spec);
      if (shape) a.shapes(*shape);
    });
  };
  const ExampleShape img = ExampleShape::image_hwc(4, 4, 2), vec = ExampleShape::vector(3);
  CHECK(test::contains(err("conv(3, 3x3) residual(relu conv(4, 3x3))", &img), "keep the shape"));
  CHECK(test::contains(err("conv(3, 3x3) residual(relu conv(3, 3x3, padding=valid))", &img), "keep the shape"));
  CHECK(test::contains(err("dense(3) residual(dense(3) relu)"), "end with a dense or conv layer"));
  CHECK(test::contains(err("dense(3) residual(layernorm)"), "end with a dense or conv layer"));
  CHECK(test::contains(err("dense(3) relu layernorm dense(1)"), "layernorm at column 15"));
  CHECK(test::contains(err("layernorm dense(1)"), "raw inputs"));
  CHECK(test::contains(err("dense(3) relu residual(dense(3)) relu dense(1)"), "not a centred Gaussian"));
  CHECK(test::contains(err("dense(3) residual(dense(3)"), "')' closing the 'residual(' of column 10"));
  CHECK(test::contains(err("dense(3) )"), "no residual( block is open"));
  CHECK(test::contains(err("dense(3) dense(3))"), "white space after ')'"));
  CHECK(test::contains(err("dense(3) residual dense(3)"), "'(' directly after residual"));
  CHECK(test::contains(err("dense(3) residual(dense(3))relu"), "white space after ')'"));
  CHECK(test::contains(err("conv(2, 3x3) avgpool(0x2)"), "KHxKW"));
  CHECK(test::contains(err("conv(2, 3x3) avgpool(2x2, stride=0)"), "stride"));
  CHECK(test::contains(err("conv(2, 3x3) avgpool(2x2, padding=full)"), "padding=same|valid|circular"));
  CHECK(test::contains(err("conv(2, 3x3) avgpool(5x5)", &img), "larger than its input"));
  CHECK(test::contains(err("dense(2) avgpool(2x2)", &vec), "image input"));
  CHECK(test::contains(err("dense(2) layernorm(eps=-1)"), "eps >= 0"));
  CHECK(test::contains(err("dense(2) layernorm(1)"), "layernorm"));
  // Fine: the shortcut may be raw inputs or an activation's output if an affine layer follows the sum.
  CHECK(err("residual(dense(3)) dense(2)", &vec).empty());
  CHECK(err("dense(3) relu residual(dense(3)) dense(1) relu dense(1)", nullptr).empty());
}

TEST_CASE("the Myrtle-5/-7/-10 specs of docs/benchmarks.md parse and fit 32x32x3 images") {
  // Shankar et al. 2020, as Neural Tangents' Myrtle notebook builds them: conv+relu groups of
  // (2,1,1), (2,2,2), (3,3,3) blocks, a 2×2/2 pool after each group, two more, flatten, dense(10).
  const std::string conv = "conv(1, 3x3, w=1.4142135623730951) relu ", pool = "avgpool(2x2, stride=2) ";
  const int groups[3][3] = {{2, 1, 1}, {2, 2, 2}, {3, 3, 3}};
  for (const auto& g : groups) {
    std::string spec;
    for (int part = 0; part < 3; ++part) {
      for (int i = 0; i < g[part]; ++i) spec += conv;
      spec += pool;
    }
    spec += pool + pool + "flatten dense(10, w=1.4142135623730951)";
    CAPTURE(spec);
    const Architecture a = Architecture::parse(spec);
    const ShapeTrace t = a.shapes(ExampleShape::image_hwc(32, 32, 3));
    CHECK(t.shapes.back() == ExampleShape::vector(10));
    CHECK(t.shapes[t.shapes.size() - 3] == ExampleShape::image_hwc(1, 1, 1));  // 32 / 2⁵
    CHECK(Architecture::parse(a.to_string()).to_string() == a.to_string());
  }
}
