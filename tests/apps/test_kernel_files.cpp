// `emergent kernel` streamed to disk and `emergent predict`, run as a user runs them: the bytes of
// the output files do not depend on --threads or --memory-cap, a streamed kernel equals the
// in-process one, an interrupted run resumes to the same bytes, and a corrupted partial output
// is refused. The binary's path comes after `--` (tests/meson.build).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/data/npy.hpp"
#include "emergent/kernels/kernel.hpp"

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

Run run(const std::string& args, const std::string& env = "") { return cli::run(args, {.env = env}); }

std::string path(const std::string& name) { return (g_dir / name).string(); }

// Pairwise distinct inputs from a fixed formula (no RNG needed).
std::string write_inputs(const std::string& name, std::size_t n, std::size_t d, double phase) {
  std::vector<double> v(n * d);
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = std::sin(1.37 * static_cast<double>(i) + phase) + 0.1 * std::cos(0.29 * static_cast<double>(i % 977) * (i % 31));
  emergent::write_npy(path(name), {n, d}, v.data());
  return path(name);
}

const char* kArch = "'dense(64, b=0.1) relu dense(64) relu dense(1)'";

std::string kernel_args(const std::string& x1, const std::string& out, const std::string& extra) {
  return "kernel --arch " + std::string(kArch) + " --x1 " + quote(x1) + " --nngp " + quote(path(out + "_K.npy")) +
         " --ntk " + quote(path(out + "_T.npy")) + " " + extra;
}

}  // namespace

TEST_CASE("kernel: the same bytes at --threads 1 and 2 and under any --memory-cap") {
  const std::string x = write_inputs("L.npy", 1200, 32, 0.0);
  const std::string z = write_inputs("Z.npy", 130, 32, 1.0);
  const struct { const char* name; const char* extra; } runs[] = {
      {"t1_big", "--threads 1 --memory-cap 1G"},  {"t2_big", "--threads 2 --memory-cap 1G"},
      {"t1_25M", "--threads 1 --memory-cap 25M"}, {"t2_25M", "--threads 2 --memory-cap 25M"},
      {"t2_3M", "--threads 2 --memory-cap 3M"},
  };
  for (const auto& r : runs) {
    const Run out = run(kernel_args(x, r.name, r.extra));
    CAPTURE(r.name);
    CAPTURE(out.err);
    REQUIRE(out.code == 0);
  }
  const std::string k0 = slurp(path("t1_big_K.npy")), t0 = slurp(path("t1_big_T.npy"));
  CHECK(k0.size() == 128 + 8u * 1200 * 1200);
  for (const auto& r : runs) {
    CAPTURE(r.name);
    CHECK(slurp(path(std::string(r.name) + "_K.npy")) == k0);
    CHECK(slurp(path(std::string(r.name) + "_T.npy")) == t0);
  }
  // The streamed file equals the in-process kernels bitwise.
  const auto arch = emergent::Architecture::parse("dense(64, b=0.1) relu dense(64) relu dense(1)");
  const emergent::NpyArray xa = emergent::read_npy(x);
  emergent::RowMatrix xm = Eigen::Map<const emergent::RowMatrix>(xa.data.data(), 1200, 32);
  const emergent::Inputs xi(xm, emergent::ExampleShape::vector(32));
  const emergent::Kernels ref = emergent::kernels(arch, xi);
  const emergent::NpyArray streamed = emergent::read_npy(path("t2_3M_T.npy"));
  REQUIRE(streamed.data.size() == 1200u * 1200u);
  double worst = 0;
  for (Eigen::Index i = 0; i < 1200; ++i)
    for (Eigen::Index j = 0; j < 1200; ++j) worst = std::max(worst, std::abs(streamed.data[i * 1200 + j] - ref.ntk(i, j)));
  CHECK(worst == 0.0);
  // A cross kernel, rectangular bands.
  for (const char* extra : {"--threads 1 --memory-cap 1G", "--threads 2 --memory-cap 3M"}) {
    const std::string name = std::string("x_") + (extra[10] == '1' ? "1" : "2");
    REQUIRE(run(kernel_args(z, name, std::string("--x2 ") + quote(x) + " " + extra)).code == 0);
  }
  CHECK(slurp(path("x_1_T.npy")) == slurp(path("x_2_T.npy")));
  CHECK(slurp(path("x_1_K.npy")) == slurp(path("x_2_K.npy")));
  // A cap below one band: the clear error of the memory plan, naming the smallest cap.
  const Run tight = run(kernel_args(write_inputs("W.npy", 40000, 2, 0.5), "w", "--memory-cap 1M"));
  CAPTURE(tight.err);
  CHECK(tight.code == 2);
  CHECK(contains(tight.err, "needs at least"));
}

TEST_CASE("kernel --resume: a run killed after some bands resumes to the uninterrupted bytes") {
  const std::string x = write_inputs("R.npy", 900, 16, 0.2);
  REQUIRE(run(kernel_args(x, "full", "--memory-cap 3M -q")).code == 0);
  // The hook ends the process (like kill -9) after 2 bands, with the third band's data written
  // but not recorded: it must be computed again, the first two must not.
  const Run killed = run(kernel_args(x, "part", "--memory-cap 3M -q"), "EMERGENT_KERNEL_ABORT_AFTER_BANDS=2");
  CHECK(killed.code == 75);
  CHECK(!fs::exists(path("part_T.npy")));
  CHECK(fs::exists(path("part_T.npy.partial")));
  REQUIRE(fs::exists(path("part_K.npy.resume")));
  const std::string record = slurp(path("part_K.npy.resume"));
  const fs::path saved = g_dir / "saved";
  fs::create_directories(saved);
  for (const char* f : {"part_K.npy.partial", "part_T.npy.partial", "part_K.npy.resume"})
    fs::copy_file(g_dir / f, saved / f, fs::copy_options::overwrite_existing);

  const Run resumed = run(kernel_args(x, "part", "--memory-cap 3M --resume"));
  CAPTURE(resumed.err);
  REQUIRE(resumed.code == 0);
  CHECK(contains(resumed.err, "2 of"));  // two bands verified and kept
  CHECK(slurp(path("part_K.npy")) == slurp(path("full_K.npy")));
  CHECK(slurp(path("part_T.npy")) == slurp(path("full_T.npy")));
  CHECK(!fs::exists(path("part_K.npy.resume")));
  CHECK(!fs::exists(path("part_T.npy.partial")));

  auto restore = [&] {
    for (const char* f : {"part_K.npy.partial", "part_T.npy.partial", "part_K.npy.resume"})
      fs::copy_file(saved / f, g_dir / f, fs::copy_options::overwrite_existing);
  };
  // One flipped byte inside a recorded band: detected, not trusted.
  restore();
  {
    std::fstream f(path("part_T.npy.partial"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(128 + 8 * 5);
    f.put('\x5a');
  }
  const Run corrupt = run(kernel_args(x, "part", "--memory-cap 3M --resume"));
  CAPTURE(corrupt.err);
  CHECK(corrupt.code == 2);
  CHECK(contains(corrupt.err, "corrupted"));
  // A truncated partial file.
  restore();
  fs::resize_file(path("part_K.npy.partial"), 4096);
  const Run truncated = run(kernel_args(x, "part", "--memory-cap 3M --resume"));
  CHECK(truncated.code == 2);
  CHECK(contains(truncated.err, "truncated"));
  // A resume with other settings is refused instead of mixing bands of two layouts.
  restore();
  const Run other = run(kernel_args(x, "part", "--memory-cap 1G --resume"));
  CHECK(other.code == 2);
  CHECK(contains(other.err, "different computation"));
  // A record cut in the middle of a line: that band is recomputed, the result still exact.
  restore();
  {
    std::ofstream f(path("part_K.npy.resume"), std::ios::app | std::ios::binary);
    f << "band 2 0123";
  }
  REQUIRE(run(kernel_args(x, "part", "--memory-cap 3M --resume -q")).code == 0);
  CHECK(slurp(path("part_T.npy")) == slurp(path("full_T.npy")));
  CHECK(record.find("band 0 ") != std::string::npos);

  // One band (the output fits the cap): written in place into the mapped files. Killed after it
  // is written, nothing is recorded, nothing is under the final names, and --resume computes it
  // again to the bytes of the banded run.
  const Run one_killed = run(kernel_args(x, "one", "--memory-cap 1G -q"), "EMERGENT_KERNEL_ABORT_AFTER_BANDS=0");
  CHECK(one_killed.code == 75);
  CHECK(!fs::exists(path("one_K.npy")));
  CHECK(fs::exists(path("one_K.npy.partial")));
  REQUIRE(fs::exists(path("one_K.npy.resume")));
  CHECK(slurp(path("one_K.npy.resume")).find("band ") == std::string::npos);
  const Run one_resumed = run(kernel_args(x, "one", "--memory-cap 1G --resume"));
  CAPTURE(one_resumed.err);
  REQUIRE(one_resumed.code == 0);
  CHECK(contains(one_resumed.err, "0 of 1 bands verified"));
  CHECK(slurp(path("one_K.npy")) == slurp(path("full_K.npy")));
  CHECK(slurp(path("one_T.npy")) == slurp(path("full_T.npy")));
  CHECK(!fs::exists(path("one_K.npy.resume")));
}

TEST_CASE("kernel --sync: the same bytes; a run refused before its first band leaves no files behind") {
  const std::string x = write_inputs("S.npy", 700, 12, 0.4);
  REQUIRE(run(kernel_args(x, "plain", "-q")).code == 0);
  const Run synced = run(kernel_args(x, "synced", "--sync -q"));
  CAPTURE(synced.err);
  REQUIRE(synced.code == 0);
  CHECK(slurp(path("synced_K.npy")) == slurp(path("plain_K.npy")));
  CHECK(slurp(path("synced_T.npy")) == slurp(path("plain_T.npy")));
  // Over an existing output: replaced whole, the same bytes again.
  REQUIRE(run(kernel_args(x, "plain", "-q")).code == 0);
  CHECK(slurp(path("plain_T.npy")) == slurp(path("synced_T.npy")));
  for (const char* f : {"plain_K.npy.partial", "plain_T.npy.partial", "plain_K.npy.resume"}) CHECK(!fs::exists(path(f)));
  // The partial files are made before the engine has checked the inputs (so that their pages are
  // faulted in meanwhile): inputs it refuses (the covariance overflows float64) leave none.
  std::vector<double> big(40 * 4, 1e160);
  emergent::write_npy(path("big.npy"), {40, 4}, big.data());
  const Run refused = run(kernel_args(path("big.npy"), "big", ""));
  CAPTURE(refused.err);
  CHECK(refused.code == 2);
  CHECK(contains(refused.err, "overflow"));
  for (const char* f : {"big_K.npy", "big_T.npy", "big_K.npy.partial", "big_T.npy.partial", "big_K.npy.resume"}) {
    CAPTURE(f);
    CHECK(!fs::exists(path(f)));
  }
}

TEST_CASE("predict: the same bytes at --threads 1 and 2") {
  const std::string x = write_inputs("P_x.npy", 700, 8, 0.4), z = write_inputs("P_z.npy", 50, 8, 1.3);
  std::vector<double> y(700);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::sin(0.1 * static_cast<double>(i));
  emergent::write_npy(path("P_y.npy"), {700}, y.data());
  for (int t : {1, 2}) {
    const std::string s = std::to_string(t);
    const Run r = run("predict --arch " + std::string(kArch) + " --train-x " + quote(x) + " --train-y " +
                      quote(path("P_y.npy")) + " --test-x " + quote(z) + " --times 0,10,1000,inf --threads " + s +
                      " --mean " + quote(path("P_m" + s + ".npy")) + " --cov " + quote(path("P_c" + s + ".npy")));
    CAPTURE(r.err);
    REQUIRE(r.code == 0);
  }
  CHECK(slurp(path("P_m1.npy")) == slurp(path("P_m2.npy")));
  CHECK(slurp(path("P_c1.npy")) == slurp(path("P_c2.npy")));
}

namespace {
// The bytes of a '<f8' .npy rewritten as '<f4' (values rounded to float32), and the '<f8' file of
// those rounded values: a float32 kernel must give exactly the predictions of its float64 image.
void write_float32_pair(const std::string& f8, const std::string& f4_out, const std::string& f8_rounded_out) {
  const emergent::NpyArray a = emergent::read_npy(f8);
  std::vector<double> rounded(a.data.size());
  std::string data;
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    const float v = static_cast<float>(a.data[i]);
    rounded[i] = v;
    char b[4];
    std::memcpy(b, &v, 4);
    data.append(b, 4);
  }
  emergent::write_npy(f8_rounded_out, a.shape, rounded.data());
  std::string header = emergent::encode_npy_header(a.shape);
  header.replace(header.find("<f8"), 3, "<f4");
  std::ofstream(f4_out, std::ios::binary) << header << data;
}

struct PredictCase {
  const char* name;
  const char* arch;
  std::size_t n, n_test, d;  // d: features, or H = W for the image case (C = 2)
  bool image;
};

std::string write_images(const std::string& name, std::size_t n, std::size_t hw, double phase) {
  std::vector<double> v(n * hw * hw * 2);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.91 * static_cast<double>(i) + phase) * (1 + (i % 5) * 0.1);
  emergent::write_npy(path(name), {n, hw, hw, 2}, v.data());
  return path(name);
}
}  // namespace

TEST_CASE("predict from precomputed kernels: the bytes of predict from inputs, float32 kernels converted") {
  const PredictCase cases[] = {
      {"mlp", "'dense(64, b=0.1) relu dense(64) relu dense(2)'", 300, 40, 12, false},
      {"cnn", "'conv(8, 3x3, padding=same) relu conv(8, 2x2) erf gap dense(2)'", 40, 9, 5, true},
  };
  for (const PredictCase& c : cases) {
    CAPTURE(c.name);
    const std::string p = std::string("pk_") + c.name + "_";
    const std::string x = c.image ? write_images(p + "x.npy", c.n, c.d, 0.3) : write_inputs(p + "x.npy", c.n, c.d, 0.3);
    const std::string z = c.image ? write_images(p + "z.npy", c.n_test, c.d, 2.1)
                                  : write_inputs(p + "z.npy", c.n_test, c.d, 2.1);
    std::vector<double> y(c.n * 2);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::cos(0.37 * static_cast<double>(i));
    emergent::write_npy(path(p + "y.npy"), {c.n, 2}, y.data());
    const std::string arch = std::string("--arch ") + c.arch;
    auto kernel = [&](const std::string& args) {
      const Run r = run("kernel " + arch + " -q " + args);
      CAPTURE(r.err);
      REQUIRE(r.code == 0);
    };
    kernel("--x1 " + quote(x) + " --nngp " + quote(path(p + "K.npy")) + " --ntk " + quote(path(p + "T.npy")));
    kernel("--x1 " + quote(z) + " --x2 " + quote(x) + " --nngp " + quote(path(p + "Kx.npy")) + " --ntk " +
           quote(path(p + "Tx.npy")));
    kernel("--x1 " + quote(z) + " --nngp " + quote(path(p + "Kxx.npy")));
    const std::string outs = " --times 0,3,100,inf --diag-reg 1e-4 ";
    auto outputs = [&](const std::string& tag) {
      return " --mean " + quote(path(p + tag + "_m.npy")) + " --cov " + quote(path(p + tag + "_c.npy")) +
             " --posterior-mean " + quote(path(p + tag + "_pm.npy")) + " --posterior-cov " +
             quote(path(p + tag + "_pc.npy"));
    };
    const Run from_inputs = run("predict " + arch + " --train-x " + quote(x) + " --train-y " + quote(path(p + "y.npy")) +
                                " --test-x " + quote(z) + outs + outputs("in"));
    CAPTURE(from_inputs.err);
    REQUIRE(from_inputs.code == 0);
    auto from_kernels = [&](const std::string& tag, const std::string& suffix) {
      const Run r = run("predict --ntk-train " + quote(path(p + "T" + suffix)) + " --nngp-train " +
                        quote(path(p + "K" + suffix)) + " --ntk-test " + quote(path(p + "Tx" + suffix)) +
                        " --nngp-test " + quote(path(p + "Kx" + suffix)) + " --nngp-test-test " +
                        quote(path(p + "Kxx" + suffix)) + " --train-y " + quote(path(p + "y.npy")) + outs +
                        outputs(tag));
      CAPTURE(r.err);
      REQUIRE(r.code == 0);
      CHECK(contains(r.err, "precomputed kernels"));
    };
    from_kernels("k", ".npy");
    for (const char* out : {"_m.npy", "_c.npy", "_pm.npy", "_pc.npy"}) {
      CAPTURE(out);
      const std::string a = slurp(path(p + "in" + out)), b = slurp(path(p + "k" + out));
      CHECK(a.size() > 128);
      CHECK(a == b);  // the same matrices reach the same solver: bitwise
    }
    // float32 files: converted exactly, so the same bytes as the float64 files of the rounded values.
    for (const char* k : {"T", "K", "Tx", "Kx", "Kxx"})
      write_float32_pair(path(p + k + ".npy"), path(p + k + ".f4.npy"), path(p + k + ".r8.npy"));
    from_kernels("f4", ".f4.npy");
    from_kernels("r8", ".r8.npy");
    for (const char* out : {"_m.npy", "_c.npy", "_pm.npy", "_pc.npy"}) {
      CAPTURE(out);
      CHECK(slurp(path(p + "f4" + out)) == slurp(path(p + "r8" + out)));
      CHECK(slurp(path(p + "f4" + out)) != slurp(path(p + "k" + out)));  // float32 really rounded something
    }
  }
}

TEST_CASE("predict from precomputed kernels: a missing or misshapen kernel is named, nothing is written") {
  const std::string p = "pk_mlp_";  // the files of the test case above
  const std::string T = quote(path(p + "T.npy")), K = quote(path(p + "K.npy")), Tx = quote(path(p + "Tx.npy")),
                    Kx = quote(path(p + "Kx.npy")), Kxx = quote(path(p + "Kxx.npy")), Y = quote(path(p + "y.npy"));
  const std::string out = quote(path("pk_bad.npy"));
  REQUIRE(fs::exists(path(p + "T.npy")));
  struct Case {
    std::string args;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {"--ntk-train " + T + " --train-y " + Y + " --mean " + out, {"--ntk-test", "missing"}},
      {"--ntk-train " + T + " --ntk-test " + Tx + " --train-y " + Y + " --cov " + out, {"--nngp-train", "missing"}},
      {"--ntk-train " + T + " --ntk-test " + Tx + " --nngp-train " + K + " --nngp-test " + Kx + " --train-y " + Y +
           " --cov " + out,
       {"--nngp-test-test", "missing"}},
      {"--nngp-train " + K + " --train-y " + Y + " --posterior-mean " + out, {"--nngp-test", "missing"}},
      // The test kernel in the wrong orientation: named, with the hint.
      {"--ntk-train " + T + " --ntk-test " + quote(path(p + "Tx_t.npy")) + " --train-y " + Y + " --mean " + out,
       {"--ntk-test", "(300, 40)", "transpose"}},
      // A non-square training kernel, a training kernel of another N, a vector instead of a matrix.
      {"--ntk-train " + Tx + " --ntk-test " + Tx + " --train-y " + Y + " --mean " + out, {"--ntk-train", "square"}},
      {"--ntk-train " + T + " --ntk-test " + Tx + " --nngp-train " + Kxx + " --nngp-test " + Kx + " --nngp-test-test " +
           Kxx + " --train-y " + Y + " --cov " + out,
       {"--nngp-train", "(40, 40)", "(300, 300)"}},
      {"--ntk-train " + quote(path(p + "y.npy")) + " --ntk-test " + Tx + " --train-y " + Y + " --mean " + out,
       {"--ntk-train", "(300, 2)"}},
      {"--ntk-train " + T + " --ntk-test " + Tx + " --train-y " + quote(path(p + "z.npy")) + " --mean " + out,
       {"--train-y"}},
      // Kernels and inputs together, or --augment on kernels.
      {"--ntk-train " + T + " --ntk-test " + Tx + " --train-y " + Y + " --arch 'dense(1)' --mean " + out,
       {"--arch", "not both"}},
      {"--ntk-train " + T + " --ntk-test " + Tx + " --train-y " + Y + " --augment flip --mean " + out, {"--augment"}},
      // Neither kernels nor inputs.
      {"--train-y " + Y + " --mean " + out, {"missing --arch"}},
      // A truncated kernel file names the option and the file.
      {"--ntk-train " + quote(path(p + "T_cut.npy")) + " --ntk-test " + Tx + " --train-y " + Y + " --mean " + out,
       {"--ntk-train", "T_cut.npy", "truncated"}},
  };
  {  // the transposed test kernel and a truncated training kernel
    const emergent::NpyArray tx = emergent::read_npy(path(p + "Tx.npy"));
    std::vector<double> t(tx.data.size());
    for (std::size_t i = 0; i < 40; ++i)
      for (std::size_t j = 0; j < 300; ++j) t[j * 40 + i] = tx.data[i * 300 + j];
    emergent::write_npy(path(p + "Tx_t.npy"), {300, 40}, t.data());
    const std::string full = slurp(path(p + "T.npy"));
    std::ofstream(path(p + "T_cut.npy"), std::ios::binary) << full.substr(0, full.size() / 2);
  }
  for (const Case& c : cases) {
    CAPTURE(c.args);
    const Run r = run("predict " + c.args);
    CAPTURE(r.err);
    CHECK(r.code == 2);
    CHECK(one_line(r.err));
    for (const std::string& e : c.expect) CHECK(contains(r.err, e));
    CHECK(!fs::exists(path("pk_bad.npy")));
  }
}

TEST_CASE("kernel on the pixel paths: streamed bytes equal the in-process kernels, a killed run resumes to them") {
  const std::string x = write_images("C_x.npy", 40, 5, 0.7);
  const emergent::NpyArray xa = emergent::read_npy(x);
  const emergent::Inputs xi(emergent::RowMatrix(Eigen::Map<const emergent::RowMatrix>(xa.data.data(), 40, 50)),
                            emergent::ExampleShape::image_hwc(5, 5, 2));
  const struct { const char* name; const char* arch; bool pixels; } cases[] = {
      {"gap", "'conv(4, 3x3) relu conv(4, 3x3, padding=circular) erf gap dense(1)'", false},
      {"flat", "'conv(4, 2x2, padding=valid) relu flatten dense(2)'", false},
      {"pix", "'conv(3, 3x3) relu conv(2, 3x3, padding=valid)'", true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const std::string pre = std::string("C_") + c.name;
    auto args = [&](const std::string& tag, const std::string& extra) {
      return "kernel --arch " + std::string(c.arch) + " --x1 " + quote(x) + " --nngp " +
             quote(path(pre + tag + "_K.npy")) + " --ntk " + quote(path(pre + tag + "_T.npy")) + " " + extra;
    };
    for (const char* run_args : {"--threads 1 --memory-cap 1G", "--threads 2 --memory-cap 2M"}) {
      const Run r = run(args(run_args[10] == '1' ? "a" : "b", run_args));
      CAPTURE(r.err);
      REQUIRE(r.code == 0);
    }
    CHECK(slurp(path(pre + "a_T.npy")) == slurp(path(pre + "b_T.npy")));
    CHECK(slurp(path(pre + "a_K.npy")) == slurp(path(pre + "b_K.npy")));
    // The files hold the in-process kernels bitwise.
    const auto arch = emergent::Architecture::parse(std::string(c.arch).substr(1, std::string(c.arch).size() - 2));
    const emergent::NpyArray got = emergent::read_npy(path(pre + "a_T.npy"));
    const emergent::NpyArray got_k = emergent::read_npy(path(pre + "a_K.npy"));
    if (c.pixels) {
      const emergent::SpatialKernels ref = emergent::spatial_kernels(arch, xi);
      CHECK(got.shape == ref.shape());
      CHECK(got.data == ref.ntk);
      CHECK(got_k.data == ref.nngp);
    } else {
      const emergent::Kernels ref = emergent::kernels(arch, xi);
      REQUIRE(got.data.size() == 1600u);
      double worst = 0;
      for (Eigen::Index i = 0; i < 40; ++i)
        for (Eigen::Index j = 0; j < 40; ++j) {
          worst = std::max(worst, std::abs(got.data[i * 40 + j] - ref.ntk(i, j)));
          worst = std::max(worst, std::abs(got_k.data[i * 40 + j] - ref.nngp(i, j)));
        }
      CHECK(worst == 0.0);
    }
    // Killed after 3 bands (the fourth written, not recorded), resumed: the uninterrupted bytes.
    const Run killed = run(args("r", "--memory-cap 2M -q"), "EMERGENT_KERNEL_ABORT_AFTER_BANDS=3");
    CHECK(killed.code == 75);
    REQUIRE(fs::exists(path(pre + "r_K.npy.resume")));
    const fs::path saved = g_dir / (pre + "_saved");
    fs::create_directories(saved);
    for (const std::string& f : {pre + "r_K.npy.partial", pre + "r_T.npy.partial", pre + "r_K.npy.resume"})
      fs::copy_file(g_dir / f, saved / f, fs::copy_options::overwrite_existing);
    const Run resumed = run(args("r", "--memory-cap 2M --resume"));
    CAPTURE(resumed.err);
    REQUIRE(resumed.code == 0);
    CHECK(contains(resumed.err, "3 of"));
    CHECK(slurp(path(pre + "r_T.npy")) == slurp(path(pre + "a_T.npy")));
    CHECK(slurp(path(pre + "r_K.npy")) == slurp(path(pre + "a_K.npy")));
    // A flipped byte in a recorded band, and a truncated partial: detected, not trusted.
    for (const std::string& f : {pre + "r_K.npy.partial", pre + "r_T.npy.partial", pre + "r_K.npy.resume"})
      fs::copy_file(saved / f, g_dir / f, fs::copy_options::overwrite_existing);
    {
      std::fstream f(path(pre + "r_T.npy.partial"), std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(128 + 8 * 3);
      const char was = static_cast<char>(f.get());
      f.seekp(128 + 8 * 3);
      f.put(static_cast<char>(was ^ 0x10));
    }
    const Run corrupt = run(args("r", "--memory-cap 2M --resume"));
    CHECK(corrupt.code == 2);
    CHECK(contains(corrupt.err, "corrupted"));
    for (const std::string& f : {pre + "r_K.npy.partial", pre + "r_T.npy.partial", pre + "r_K.npy.resume"})
      fs::copy_file(saved / f, g_dir / f, fs::copy_options::overwrite_existing);
    fs::resize_file(path(pre + "r_K.npy.partial"), 1000);
    const Run truncated = run(args("r", "--memory-cap 2M --resume"));
    CHECK(truncated.code == 2);
    CHECK(contains(truncated.err, "truncated"));
  }
}

TEST_CASE("kernel: a progress line with rate and ETA (after the quiet period), none with -q") {
  // EMERGENT_PROGRESS_AFTER_SECONDS=0 ends the quiet period (3 s by default) at once, so the
  // line's contents are tested without a test that depends on the machine's speed.
  const std::string x = write_images("G_x.npy", 30, 6, 0.1);
  const std::string arch = "'conv(4, 3x3) relu conv(4, 3x3) relu gap dense(1)'";
  for (const char* what : {"gap", "mlp"}) {
    CAPTURE(what);
    const bool mlp = what[0] == 'm';
    const std::string cmd = mlp ? kernel_args(write_inputs("G_v.npy", 500, 8, 0.3), "G_mlp", "--memory-cap 3M")
                                : "kernel --arch " + arch + " --x1 " + quote(x) + " --ntk " + quote(path("G_T.npy"));
    const Run r = run(cmd, "EMERGENT_PROGRESS_AFTER_SECONDS=0");
    CAPTURE(r.err);
    REQUIRE(r.code == 0);
    CHECK(contains(r.err, "kernel: "));
    CHECK(contains(r.err, "entries/s"));
    CHECK(contains(r.err, "ETA"));
    const Run q = run(cmd + " -q", "EMERGENT_PROGRESS_AFTER_SECONDS=0");
    CHECK(q.code == 0);
    CHECK(q.err.empty());
    const Run quiet_period = run(cmd);  // a sub-second run: only the summary line
    CHECK(quiet_period.code == 0);
    CHECK(!contains(quiet_period.err, "entries/s"));
  }
}

int main(int argc, char** argv) { return emergent::test::cli::run_suite(argc, argv, "test_kernel_files"); }
