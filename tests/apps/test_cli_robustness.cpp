// The `emergent` command line under hostile-but-plausible input: empty sets, absurd sizes, extreme
// magnitudes and failures half-way (docs/robustness.md). Every case runs the binary as a user does
// and asserts the contract of docs/conventions.md §4: no signal, ever; bad input exits 2 with one
// line naming the option or layer; nothing that looks like a result is left behind on failure.
// Each run is bounded by `timeout` so that work sized by the request before any check fails the
// test instead of hanging it. The binary's path comes after `--` (tests/meson.build).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "emergent/data/npy.hpp"
#include "support/io.hpp"
#include "support/plot.hpp"

namespace fs = std::filesystem;

#include "support/cli_harness.hpp"

namespace cli = emergent::test::cli;
using cli::contains;
using cli::g_dir;
using cli::one_line;
using cli::quote;
using cli::Run;
using cli::slurp;

namespace {

constexpr int kTimeoutSeconds = 30;

// `emergent ARGS` in the suite's folder under `timeout`: work sized by the request before any
// check fails the test instead of hanging it.
Run run(const std::string& args) { return cli::run(args, {.env = {}, .timeout_seconds = kTimeoutSeconds, .in_dir = true}); }


// Neither a signal nor a timeout nor an uncaught exception.
void check_no_crash(const Run& r) {
  CAPTURE(r.err);
  CHECK(r.code >= 0);
  CHECK(r.code != 124);
  CHECK(r.code < 128);
  CHECK(!contains(r.err, "terminate called"));
  CHECK(!contains(r.err, "Segmentation"));
}

// Refused as bad input: exit 2, one line, naming one of `needles`, no library internals.
void check_refused(const Run& r, const std::vector<std::string>& needles) {
  check_no_crash(r);
  CAPTURE(r.err);
  CHECK(r.code == 2);
  CHECK(one_line(r.err));
  CHECK(contains(r.err, ": error: "));
  bool named = false;
  for (const auto& n : needles) named = named || contains(r.err, n);
  CHECK(named);
  for (const char* internal : {"toms748", "boost::", "max_size()", "std::bad_alloc", "Eigen"}) CHECK(!contains(r.err, internal));
  CHECK(!std::regex_search(r.err, std::regex(" -[0-9]{4,}")));  // no overflowed (negative) sizes
}

std::vector<double> pattern(std::size_t n, double phase, double scale = 1.0) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = scale * (std::sin(1.37 * static_cast<double>(i) + phase) + 0.1 * std::cos(0.29 * static_cast<double>(i * i)));
  return v;
}

std::string npy(const std::string& name, const std::vector<std::size_t>& shape, const std::vector<double>& data) {
  const std::string path = (g_dir / name).string();
  emergent::write_npy(path, shape, data.data());
  return quote(path);
}

std::string npy(const std::string& name, const std::vector<std::size_t>& shape, double phase, double scale = 1.0) {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  return npy(name, shape, pattern(n, phase, scale));
}

// The files of the issue: X 12 × 4, Y 12, Z 5 × 4, Z0 and X0 with zero rows.
struct Files {
  std::string x = npy("X.npy", {12, 4}, 0.1), y = npy("Y.npy", {12}, 0.7), z = npy("Z.npy", {5, 4}, 0.3);
  std::string z0 = npy("Z0.npy", {0, 4}, 0.0), x0 = npy("X0.npy", {0, 4}, 0.0), y0 = npy("Y0.npy", {0}, 0.0);
  std::string img = npy("img.npy", {3, 4, 4, 1}, 0.2), yimg = npy("Yimg.npy", {3}, 0.5);
  std::string training = " --train-x " + x + " --train-y " + y + " --test-x " + z;
};

const std::string kDense = "--arch 'dense(8) relu dense(1)'";
std::string out(const std::string& name) { return quote((g_dir / name).string()); }

// Cyclic shifts of 4 coordinates, times `scale`.
std::vector<double> shifts(int copies, double scale) {
  std::vector<double> g;
  for (int c = 0; c < copies; ++c)
    for (int s = 0; s < 4; ++s)
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) g.push_back(j == (i + s) % 4 ? scale : 0.0);
  return g;
}

}  // namespace

TEST_CASE("absurd --threads is refused, not a segmentation fault") {
  const Files f;
  for (const char* cmd : {"kernel", "predict"}) {
    CAPTURE(cmd);
    const std::string io = std::string(cmd) == "kernel" ? " --x1 " + f.x + " --ntk " + out("T.npy")
                                                        : f.training + " --mean " + out("M.npy");
    check_refused(run(std::string(cmd) + " " + kDense + io + " --threads 100000"), {"--threads"});
  }
  const Run ok = run("kernel " + kDense + " --x1 " + f.x + " --ntk " + out("T.npy") + " --threads 3");
  CAPTURE(ok.err);
  CHECK(ok.code == 0);
}

TEST_CASE("an overflowing layer is named, never an exception escaping an OpenMP region") {
  const Files f;
  fs::remove(g_dir / "T.npy");
  const Run conv = run("kernel --arch 'conv(2, 3x3, w=1e200) relu gap dense(1)' --x1 " + f.img + " --ntk " + out("T.npy"));
  check_refused(conv, {"conv #1"});
  CHECK(contains(conv.err, "overflow"));
  CHECK(!fs::exists(g_dir / "T.npy"));
  const std::string big = npy("big.npy", {6, 4}, 0.4, 1e200);
  const Run huge = run("kernel " + kDense + " --x1 " + big + " --ntk " + out("T.npy"));
  check_refused(huge, {"overflow"});
  CHECK(!fs::exists(g_dir / "T.npy"));
}

TEST_CASE("a network too large for memory is refused before allocation; sizes never overflow") {
  const Files f;
  const std::string common = " --members 2 --steps 1 --lr 0.1 --seed 0 --checkpoints 0,1 --out " + out("P.npy");
  check_refused(run("ensemble --arch 'dense(2000000000) relu dense(1)'" + f.training + common), {"dense #1", "memory"});
  const Run conv = run("ensemble --arch 'conv(1000000000, 3x3) relu' --train-x " + f.img + " --train-y " + f.yimg +
                       " --test-x " + f.img + common);
  check_refused(conv, {"conv #1", "memory", "too large"});
  CHECK(!fs::exists(g_dir / "P.npy"));
}

TEST_CASE("zero test rows give empty outputs of the right shape") {
  const Files f;
  const std::string empty_test = " --train-x " + f.x + " --train-y " + f.y + " --test-x " + f.z0;
  {
    const Run r = run("predict " + kDense + empty_test + " --times 0,1,inf --mean " + out("M.npy") + " --cov " + out("C.npy"));
    check_no_crash(r);
    REQUIRE(r.code == 0);
    CHECK(emergent::read_npy((g_dir / "M.npy").string()).shape == std::vector<std::size_t>{3, 0, 1});
    CHECK(emergent::read_npy((g_dir / "C.npy").string()).shape == std::vector<std::size_t>{3, 0, 0});
  }
  {
    const Run r = run("predict " + kDense + empty_test + " --posterior-mean " + out("PM.npy") + " --posterior-cov " + out("PC.npy"));
    check_no_crash(r);
    REQUIRE(r.code == 0);
    CHECK(emergent::read_npy((g_dir / "PM.npy").string()).shape == std::vector<std::size_t>{0, 1});
    CHECK(emergent::read_npy((g_dir / "PC.npy").string()).shape == std::vector<std::size_t>{0, 0});
  }
  {
    const Run r = run("ensemble " + kDense + empty_test + " --linearized --members 2 --steps 1 --lr 0.1 --seed 0 "
                      "--checkpoints 0,1 --out " + out("P.npy"));
    check_no_crash(r);
    REQUIRE(r.code == 0);
    CHECK(emergent::read_npy((g_dir / "P.npy").string()).shape == std::vector<std::size_t>{2, 2, 0, 1});
  }
  check_refused(run("verify all " + kDense + " --group cyclic --x " + f.x + " --test-x " + f.z0), {"--test-x"});
}

TEST_CASE("zero training rows exit 2 naming the option") {
  const Files f;
  fs::remove(g_dir / "M.npy");
  check_refused(run("predict " + kDense + " --train-x " + f.x0 + " --train-y " + f.y0 + " --test-x " + f.z +
                    " --augment cyclic --mean " + out("M.npy")),
                {"--train-x"});
  check_refused(run("predict " + kDense + " --train-x " + f.x0 + " --train-y " + f.y0 + " --test-x " + f.z + " --mean " +
                    out("M.npy")),
                {"--train-x"});
  check_refused(run("verify lemmas " + kDense + " --group cyclic --x " + f.x0), {"--x"});
  CHECK(!fs::exists(g_dir / "M.npy"));
}

TEST_CASE("group orders, scan points and --n are checked before any work") {
  const Files f;
  check_refused(run("predict " + kDense + f.training + " --augment 'rot2(1000000000)' --mean " + out("M.npy")),
                {"rot2", "--augment"});
  check_refused(run("predict " + kDense + f.training + " --augment 'rot(1000000000)' --mean " + out("M.npy")),
                {"rot", "--augment"});
  check_refused(run("bound group " + kDense + f.training + " --order 100000"), {"--order"});
  check_refused(run("bound group " + kDense + f.training + " --order 4 --scan-points 100000000"), {"--scan-points"});
  check_refused(run("verify " + kDense + " --group cyclic --shape 4 --n 100000000"), {"--n"});
  const std::string many = npy("Gmany.npy", {100000, 4, 4}, shifts(25000, 1.0));
  check_refused(run("predict " + kDense + f.training + " --augment " + many + " --mean " + out("M.npy")), {"--augment"});
}

TEST_CASE("group matrices of extreme magnitude are refused, never read out of bounds") {
  const Files f;
  fs::remove(g_dir / "M.npy");
  for (double scale : {1e155, 1e200}) {
    CAPTURE(scale);
    const std::string g = npy("G.npy", {4, 4, 4}, shifts(1, scale));
    check_refused(run("predict " + kDense + f.training + " --augment " + g + " --mean " + out("M.npy")), {"--augment"});
  }
  CHECK(!fs::exists(g_dir / "M.npy"));
}

TEST_CASE("bound ensemble with an enormous --delta answers, or refuses in our words") {
  const std::string s = npy("S.npy", {2, 2}, std::vector<double>{1, 0.2, 0.2, 0.5});
  const Run r = run("bound ensemble --covariance " + s + " --members 20 --delta 1e200");
  check_no_crash(r);
  CAPTURE(r.err);
  CHECK(!contains(r.err, "toms748"));
  CHECK(r.code != 1);
  if (r.code == 2) CHECK(contains(r.err, "--delta"));
}

TEST_CASE("inputs of 1e-100 with a bias-free ReLU network: the same verdict as at scale 1, no NaN") {
  const std::string tiny = npy("tiny.npy", {6, 4}, 0.4, 1e-100);
  const Run r = run("verify equivariance --arch 'dense(16) relu dense(1)' --group cyclic --x " + tiny);
  check_no_crash(r);
  CAPTURE(r.out);
  CHECK(r.code == 0);
  CHECK(!contains(r.out, "nan"));
  CHECK(contains(r.out, "Theorem 5.2 (cyclic, augmented, 24 training examples): HOLDS"));
  CHECK(contains(r.out, "overall: HOLDS"));
}

TEST_CASE("a failure half-way leaves no output behind; two outputs on one path are refused") {
  const Files f;
  // The posterior fails after the ensemble mean was computed: K(X,X) = 0 cannot be conditioned on.
  const Run r = run("predict --arch 'dense(8) relu dense(1, w=0)'" + f.training + " --mean " + out("M2.npy") +
                    " --posterior-mean " + out("PM2.npy"));
  check_no_crash(r);
  CAPTURE(r.err);
  if (r.code != 0) {
    CHECK(!fs::exists(g_dir / "M2.npy"));
    CHECK(!fs::exists(g_dir / "PM2.npy"));
  }
  for (const auto& e : fs::directory_iterator(g_dir)) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  const Run same = run("predict " + kDense + f.training + " --mean " + out("same.npy") + " --cov " + out("same.npy"));
  check_refused(same, {"--mean", "--cov"});
  CHECK(contains(same.err, "same"));
  CHECK(!fs::exists(g_dir / "same.npy"));
  const Run same_kernel = run("kernel " + kDense + " --x1 " + f.x + " --ntk " + out("K.npy") + " --nngp ./K.npy");
  check_refused(same_kernel, {"--ntk", "--nngp"});
}

TEST_CASE("staged outputs: nothing appears until commit, nothing remains after discard") {
  namespace cli = emergent::cli;
  const fs::path dir = g_dir / "staging";
  fs::create_directories(dir);
  const double v[3] = {1, 2, 3};
  const std::string a = (dir / "a.npy").string(), b = (dir / "b.npy").string();
  cli::check_output_path("--a", a);
  cli::check_output_path("--b", b);
  CHECK_THROWS_AS(cli::check_output_path("--c", (dir / "." / "a.npy").string()), std::invalid_argument);
  cli::write_npy(a, {3}, v);
  cli::write_npy(b, {3}, v);
  CHECK(!fs::exists(a));  // a command that fails now (after writing a and b) leaves nothing
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 2);
  cli::discard_outputs();
  CHECK(fs::is_empty(dir));
  cli::write_npy(a, {3}, v);
  cli::commit_outputs();
  REQUIRE(fs::exists(a));
  CHECK(emergent::read_npy(a).data == std::vector<double>{1, 2, 3});
  CHECK(!fs::exists(b));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
}

TEST_CASE("figures are staged: no CSV, script or PNG looks complete before the command succeeds") {
  namespace cli = emergent::cli;
  const fs::path dir = g_dir / "staged_figure";
  fs::create_directories(dir);
  cli::Figure f;
  f.title = "staging";
  cli::Panel p;
  p.title = "panel";
  p.series.push_back(cli::Series{"line", {0, 1, 2}, {1, 4, 9}, {}, "", false, true});
  f.panels.push_back(p);
  const std::string stem = (dir / "fig").string();
  auto final_files = [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind(".emergent-", 0) != 0) names.push_back(e.path().filename().string());
    return names;
  };
  // A command that fails after writing its figure (and an .npy) leaves nothing at all.
  cli::FigureFiles files = cli::write_figure(f, stem);
  const double v[2] = {1, 2};
  cli::write_npy((dir / "data.npy").string(), {2}, v);
  CHECK(final_files().empty());
  CHECK(!fs::exists(files.csv));
  CHECK(!fs::exists(files.script));
  CHECK(!fs::exists(files.png));
  cli::discard_outputs();
  CHECK(fs::is_empty(dir));
  // One that succeeds gets every file under its name, and the script renders the final names.
  files = cli::write_figure(f, stem);
  cli::commit_outputs();
  REQUIRE(fs::exists(files.csv));
  CHECK(slurp(files.csv).rfind("panel,series,x,y,error\n\"panel\",\"line\",0,1,", 0) == 0);
  REQUIRE(fs::exists(files.script));
  CHECK(contains(slurp(files.script), "png_file = \"" + files.png + "\""));
  CHECK(fs::exists(files.png) == files.rendered);
  CHECK(fs::exists(files.svg) == files.rendered);
  if (cli::gnuplot_available()) CHECK(files.rendered);
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  // A destination that cannot be written (a directory) is found before anything is renamed.
  fs::remove_all(dir);
  fs::create_directories(dir / "late.svg");
  cli::write_npy((dir / "early.npy").string(), {2}, v);
  files = cli::write_figure(f, (dir / "late").string());
  CHECK_THROWS_AS(cli::commit_outputs(), std::runtime_error);
  cli::discard_outputs();
  CHECK(final_files() == std::vector<std::string>{"late.svg"});
}

TEST_CASE("experiment ising that fails at the end leaves no figure, CSV or PNG behind") {
  const fs::path dir = g_dir / "ising_fails";
  fs::create_directories(dir / "figure5_ising_ntk_difference.csv");  // the last output cannot be written
  const Run r = run("experiment ising --scale 0.05 --widths 4 --out " + quote(dir.string()));
  check_no_crash(r);
  CAPTURE(r.err);
  CHECK(r.code == 1);
  CHECK(one_line(r.err));
  CHECK(contains(r.err, "figure5_ising_ntk_difference.csv"));
  CHECK(contains(r.err, "nothing was written"));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
  CHECK(left == std::vector<std::string>{"figure5_ising_ntk_difference.csv"});
  // The same run into a clean folder writes both figures completely.
  fs::remove_all(dir);
  const Run ok = run("experiment ising --scale 0.05 --widths 4 --out " + quote(dir.string()));
  CAPTURE(ok.err);
  REQUIRE(ok.code == 0);
  for (const char* name : {"figure1_ising_invariance.csv", "figure5_ising_ntk_difference.csv",
                           "figure1_ising_invariance.gp", "figure5_ising_ntk_difference.gp"}) {
    CAPTURE(name);
    CHECK(fs::file_size(dir / name) > 0);
  }
}

TEST_CASE("diverged finite members are reported as such, not as violation 0") {
  const Files f;
  const Run r = run("verify equivariance --arch 'dense(16) relu dense(1)' --group cyclic --x " + f.x +
                    " --finite-members 2 --finite-steps 100 --finite-lr 20 --members 0");
  check_no_crash(r);
  CAPTURE(r.out);
  CAPTURE(r.err);
  CHECK(r.code != 0);
  CHECK((contains(r.out, "diverged") || contains(r.err, "diverged")));
}

TEST_CASE("--finite-lr and --seed outside their range are refused") {
  const std::string base = "verify equivariance " + kDense + " --group cyclic --shape 4 --n 4 --members 0 --finite-steps 1";
  check_refused(run(base + " --finite-lr 0"), {"--finite-lr"});
  check_refused(run(base + " --finite-lr -1"), {"--finite-lr"});
  for (const char* seed : {"-1", "18446744073709551616", "1e23"}) {
    CAPTURE(seed);
    check_refused(run(base + " --seed " + seed), {"--seed"});
  }
}

int main(int argc, char** argv) { return emergent::test::cli::run_suite(argc, argv, "test_robust"); }
