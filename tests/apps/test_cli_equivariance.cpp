// Equivariant outputs from the command line: --output-rep of verify, predict --augment and bound
// violation (docs/conventions.md §5), its errors, and `experiment cross-product` at a tiny scale.
// The binary's path comes after `--` on our command line (tests/meson.build).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <Eigen/Dense>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emergent/data/npy.hpp"
#include "emergent/symmetry/groups.hpp"
#include "support/cli_harness.hpp"

namespace fs = std::filesystem;
using namespace emergent::test::cli;

namespace {

std::vector<double> pattern(std::size_t n, double phase) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = std::sin(1.37 * static_cast<double>(i) + phase) + 0.1 * std::cos(0.29 * static_cast<double>(i * i));
  return v;
}

std::string write(const std::string& name, const std::vector<std::size_t>& shape, const std::vector<double>& data) {
  const std::string path = (g_dir / name).string();
  emergent::write_npy(path, shape, data.data());
  return path;
}

// (|G|, k, k) matrices of rot2(4) acting on 2-vectors, with a defect.
std::string rotations_npy(const std::string& name, double step, double shear) {
  std::vector<double> d;
  for (int g = 0; g < 4; ++g) {
    const double c = std::cos(step * g), s = std::sin(step * g);
    for (double v : {c, -s + (g == 1 ? shear : 0.0), s, c}) d.push_back(v);
  }
  return write(name, {4, 2, 2}, d);
}

void expect_usage_error(const Run& r, const std::vector<std::string>& words) {
  CAPTURE(r.err);
  CHECK(r.code == 2);
  CHECK(one_line(r.err));
  for (const auto& w : words) {
    CAPTURE(w);
    CHECK(contains(r.err, w));
  }
}

// Rows of a CSV file as maps column → text.
std::vector<std::map<std::string, std::string>> read_csv(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::vector<std::string> head;
  std::vector<std::map<std::string, std::string>> rows;
  auto split = [](const std::string& l) {
    std::vector<std::string> out;
    std::stringstream s(l);
    std::string cell;
    while (std::getline(s, cell, ',')) out.push_back(cell);
    return out;
  };
  if (std::getline(in, line)) head = split(line);
  while (std::getline(in, line)) {
    const auto cells = split(line);
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < head.size() && i < cells.size(); ++i) row[head[i]] = cells[i];
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

TEST_CASE("verify --output-rep: Theorem 5.2 holds with equivariant targets, and fails without augmentation") {
  for (const auto& [group, shape, arch] :
       {std::tuple{"rot2(4)", "4", "dense(16) erf dense(2)"}, std::tuple{"cube", "6", "dense(16) relu dense(3)"}}) {
    CAPTURE(group);
    const Run r = run(std::string("verify equivariance --arch '") + arch + "' --group '" + group + "' --shape " + shape +
                      " --n 2 --n-test 2 --noise 1 --times 10,inf --members 0 --finite-members 0 --output-rep rotation --json");
    CAPTURE(r.err);
    REQUIRE(r.code == 0);
    const nlohmann::json j = nlohmann::json::parse(r.out);
    CHECK(j["holds"].get<bool>());
    CHECK(j["output_rep"].get<std::string>() == "rotation");
    CHECK(j["max_violation"].get<double>() < 1e-9);
    REQUIRE(j["without_augmentation"].size() == 1);
    const auto& contrast = j["without_augmentation"][0];
    CHECK_FALSE(contrast["holds"].get<bool>());
    CHECK(contrast["max_ratio"].get<double>() > 1e6);
  }
}

TEST_CASE("--output-rep errors name the option, the element and the defect") {
  const std::string x = write("x2.npy", {3, 2}, pattern(6, 0.3));
  const std::string y = write("y2.npy", {3, 2}, pattern(6, 1.1));
  const std::string z = write("z2.npy", {2, 2}, pattern(4, 2.0));
  const std::string shear = rotations_npy("shear.npy", std::numbers::pi / 2, 0.5);
  const std::string third = rotations_npy("third.npy", 2 * std::numbers::pi / 3, 0.0);
  const std::string arch = "--arch 'dense(8) relu dense(2)' ";
  const std::vector<std::string> commands = {
      "verify equivariance " + arch + "--group 'rot2(4)' --x " + quote(x) + " --output-rep ",
      "predict " + arch + "--train-x " + quote(x) + " --train-y " + quote(y) + " --test-x " + quote(z) +
          " --augment 'rot2(4)' --mean " + quote((g_dir / "m.npy").string()) + " --output-rep ",
      "bound violation " + arch + "--train-x " + quote(x) + " --train-y " + quote(y) + " --test-x " + quote(z) +
          " --group 'rot2(4)' --members 4 --delta 0.1 --output-rep "};
  for (const auto& c : commands) {
    CAPTURE(c);
    expect_usage_error(run(c + quote(shear)), {"--output-rep", "element 1", "not orthogonal"});
    expect_usage_error(run(c + quote(third)), {"--output-rep", "not a homomorphism", "g·h"});
    expect_usage_error(run(c + "regular"), {"--output-rep", "4-vectors", "2 output(s)"});
    expect_usage_error(run(c + "spin"), {"--output-rep", "unknown"});
  }
  CHECK_FALSE(fs::exists(g_dir / "m.npy"));
  expect_usage_error(run("predict " + arch + "--train-x " + quote(x) + " --train-y " + quote(y) + " --test-x " +
                         quote(z) + " --mean " + quote((g_dir / "m.npy").string()) + " --output-rep rotation"),
                     {"--output-rep", "needs --augment"});
}

TEST_CASE("predict --augment cube --output-rep rotation: the mean rotates with its inputs") {
  // Test pairs z and their images under every rotation of the cube: μ(R z) = R μ(z) to round-off.
  const std::vector<Eigen::Matrix3d> cube = emergent::cube_rotations();
  const std::vector<double> xs = pattern(4 * 6, 0.7), zs = pattern(6, 1.9);
  std::vector<double> ys;
  for (int i = 0; i < 4; ++i) {
    const double* p = &xs[6 * i];
    const Eigen::Vector3d a(p[0], p[1], p[2]), b(p[3], p[4], p[5]);
    const Eigen::Vector3d c = a.cross(b);
    ys.insert(ys.end(), {c[0], c[1], c[2]});
  }
  std::vector<double> probe;
  for (const auto& r : cube) {
    const Eigen::Vector3d a = r * Eigen::Vector3d(zs[0], zs[1], zs[2]), b = r * Eigen::Vector3d(zs[3], zs[4], zs[5]);
    probe.insert(probe.end(), {a[0], a[1], a[2], b[0], b[1], b[2]});
  }
  const std::string x = write("xy.npy", {4, 6}, xs), y = write("c.npy", {4, 3}, ys),
                    z = write("probe.npy", {cube.size(), 6}, probe);
  for (const std::string rep : {"rotation", "trivial"}) {
    CAPTURE(rep);
    const std::string m = (g_dir / ("m_" + rep + ".npy")).string();
    const Run r = run("predict --arch 'dense(32) relu dense(3)' --train-x " + quote(x) + " --train-y " + quote(y) +
                      " --test-x " + quote(z) + " --times 5,inf --augment cube --output-rep " + rep + " --mean " + quote(m));
    CAPTURE(r.err);
    REQUIRE(r.code == 0);
    const emergent::NpyArray a = emergent::read_npy(m);
    REQUIRE(a.shape == std::vector<std::size_t>{2, cube.size(), 3});
    double equivariance = 0, invariance = 0, scale = 0;
    for (std::size_t t = 0; t < 2; ++t) {
      const double* base = &a.data[(t * cube.size()) * 3];
      const Eigen::Vector3d f0(base[0], base[1], base[2]);
      scale = std::max(scale, f0.norm());
      for (std::size_t g = 0; g < cube.size(); ++g) {
        const double* p = &a.data[(t * cube.size() + g) * 3];
        const Eigen::Vector3d fg(p[0], p[1], p[2]);
        equivariance = std::max(equivariance, (fg - cube[g] * f0).norm());
        invariance = std::max(invariance, (fg - f0).norm());
      }
    }
    CHECK(scale > 0.01);
    if (rep == "rotation") {
      CHECK(equivariance < 1e-10 * std::max(1.0, scale));  // Theorem 5.2 with ρ_Y = R
      CHECK(invariance > 1e-3);
    } else {
      CHECK(invariance < 1e-10 * std::max(1.0, scale));    // invariant targets: an invariant mean
    }
  }
}

TEST_CASE("bound violation --output-rep: the equivariant mean violation vanishes only with augmentation") {
  const std::string x = write("bx.npy", {3, 6}, pattern(18, 0.2));
  const std::string y = write("by.npy", {3, 3}, pattern(9, 0.9));
  const std::string z = write("bz.npy", {2, 6}, pattern(12, 2.4));
  const std::string base = "bound violation --arch 'dense(16) relu dense(3)' --train-x " + quote(x) + " --train-y " +
                           quote(y) + " --test-x " + quote(z) + " --group cube --output-rep rotation --members 10 "
                           "--delta 0.5 --times 3,inf --json";
  const Run with = run(base + " --augment cube");
  CAPTURE(with.err);
  REQUIRE(with.code == 0);
  const nlohmann::json j = nlohmann::json::parse(with.out);
  CHECK(j["output_rep"].get<std::string>() == "rotation");
  REQUIRE(j["per_time"].size() == 2);
  for (const auto& t : j["per_time"]) {
    CHECK(t["mean_violation_max"].get<double>() < 1e-10);
    const double p = t["exact_probability"].get<double>();
    CHECK(p > 0);
    CHECK(p <= t["upper_bound"].get<double>() + 1e-12);
  }
  const Run without = run(base);
  REQUIRE(without.code == 0);
  const nlohmann::json k = nlohmann::json::parse(without.out);
  for (const auto& t : k["per_time"]) CHECK(t["mean_violation_max"].get<double>() > 1e-3);
}

TEST_CASE("bound group --group cube|icosahedron: the SO(3) bound holds; arguments outside its derivation are refused") {
  // Pairs on S² × S² and their cross products (equivariant under R ⊕ R → R).
  std::vector<double> xs = pattern(24, 0.3), zs = pattern(18, 1.1), ys;
  for (std::vector<double>* v : {&xs, &zs})
    for (std::size_t i = 0; i < v->size(); i += 3) {
      const double n = std::sqrt((*v)[i] * (*v)[i] + (*v)[i + 1] * (*v)[i + 1] + (*v)[i + 2] * (*v)[i + 2]);
      for (int c = 0; c < 3; ++c) (*v)[i + c] /= n;
    }
  for (std::size_t r = 0; r < 4; ++r) {
    const double* u = &xs[6 * r];
    const double* w = u + 3;
    for (double c : {u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]}) ys.push_back(c);
  }
  const std::string x = write("gx.npy", {4, 6}, xs), y = write("gy.npy", {4, 3}, ys), z = write("gz.npy", {3, 6}, zs);
  const std::string data = " --train-x " + quote(x) + " --train-y " + quote(y) + " --test-x " + quote(z);
  for (const char* group : {"cube", "icosahedron"}) {
    CAPTURE(group);
    const Run r = run("bound group --arch 'dense(32) relu dense(3)'" + data + " --group " + group +
                      " --output-rep rotation --rotations 64 --times 10,inf --json");
    CAPTURE(r.err);
    REQUIRE(r.code == 0);
    const nlohmann::json j = nlohmann::json::parse(r.out);
    CHECK(j["group_size"].get<int>() == (std::string(group) == "cube" ? 24 : 60));
    CHECK(std::abs(j["covering_angle_deg"].get<double>() - (std::string(group) == "cube" ? 62.7994 : 44.4775)) < 1e-3);
    REQUIRE(j["points"].size() == 6);
    for (const auto& p : j["points"]) {
      CHECK(p["measured"].get<double>() > 0);
      CHECK(p["bound"].get<double>() >= p["measured"].get<double>());
      CHECK(p["group_defect"].get<double>() < 1e-9);
      CHECK(p["worst_distance_deg"].get<double>() <= j["covering_angle_deg"].get<double>() + 1e-9);
    }
  }
  // The table form names the group and the covering angle.
  const Run t = run("bound group --arch 'dense(32) relu dense(3)'" + data + " --group cube --output-rep rotation --rotations 16");
  REQUIRE(t.code == 0);
  CHECK(contains(t.out, "cube augmentation (24 rotations)"));
  CHECK(contains(t.out, "covering angle 62.7994"));
  // Outside the derivation: both or neither of --order/--group, an output action that does not
  // extend to SO(3), a non-MLP, a group that does not rotate triples, SO(2)-only options.
  const std::string base = "bound group --arch 'dense(32) relu dense(3)'" + data;
  expect_usage_error(run(base + " --group cube --order 4"), {"--order", "--group", "expected one"});
  expect_usage_error(run(base), {"neither --order nor --group"});
  expect_usage_error(run("bound group --arch 'dense(32) relu dense(24)'" + data.substr(0, data.find(" --train-y")) +
                         " --train-y " + quote(write("g24.npy", {4, 24}, pattern(96, 0.5))) + " --test-x " + quote(z) +
                         " --group cube --output-rep regular"),
                     {"subgroup_output", "SO(3)"});
  expect_usage_error(run("bound group --arch 'dense(32) layernorm relu dense(3)'" + data + " --group cube --output-rep rotation"),
                     {"layernorm", "MLP"});
  expect_usage_error(run(base + " --group 'rot2(2)' --output-rep trivial"), {"I_m ⊗ R"});
  expect_usage_error(run(base + " --group cube --scan-points 64"), {"--scan-points", "--order"});
  expect_usage_error(run(base + " --order 4 --output-rep rotation"), {"--output-rep", "--group"});
  expect_usage_error(run(base + " --group cube --rotations 0"), {"--rotations"});
}

TEST_CASE("experiment cross-product at a tiny scale: the NTK limit is B-equivariant, members are not") {
  const fs::path dir = g_dir / "cross";
  const Run r = run("experiment cross-product --scale 0.25 --widths 16 --steps 40 --out " + quote(dir.string()));
  CAPTURE(r.err);
  REQUIRE(r.code == 0);
  for (const char* f : {"cross_product_summary.csv", "cross_product_bound.csv", "cross_product.csv", "run.txt"}) {
    CAPTURE(f);
    CHECK(fs::exists(dir / f));
  }
  const auto rows = read_csv(dir / "cross_product_summary.csv");
  REQUIRE(!rows.empty());
  int ntk = 0, members = 0, contrast = 0;
  for (const auto& row : rows) {
    const std::string model = row.at("model");
    const double group_max = std::stod(row.at("group_max_violation")), haar = std::stod(row.at("haar_mean_violation"));
    CAPTURE(model);
    if (model == "ntk") {
      ++ntk;
      CHECK(group_max < 1e-10);  // exactly equivariant under the 24 rotations of the cube (Theorem 5.2)
      CHECK(haar > 1e3 * group_max);  // only approximately under the rest of SO(3)
    } else if (model == "members") {
      ++members;
      CHECK(group_max > 1e-3);   // a single trained network is not
    } else if (model == "ntk_not_augmented") {
      ++contrast;
      CHECK(group_max > 1e-3);   // and without augmentation neither is the NTK limit
    }
  }
  CHECK(ntk == 4);   // 2 times × on/off the manifold
  CHECK(members == 2);
  CHECK(contrast == 4);
  // The SO(3) bound is never below the measured worst case.
  for (const auto& row : read_csv(dir / "cross_product_bound.csv")) {
    CHECK(std::stod(row.at("bound_max")) >= std::stod(row.at("measured_max")));
    CHECK(std::abs(std::stod(row.at("covering_angle_deg")) - 62.8) < 0.05);  // Mackenzie's cubic angle
  }
  expect_usage_error(run("experiment cross-product --group d4 --out " + quote(dir.string())), {"--group", "cube"});
}

int main(int argc, char** argv) { return emergent::test::cli::run_suite(argc, argv, "test_cli_equivariance"); }
