// `mpirun -np P emergent kernel|predict` (lib/distributed, apps/emergent/distributed) against the
// single-process binary: the distributed kernel files are byte for byte the single-process ones;
// the ScaLAPACK solve agrees with GradientFlow/NngpPosterior to 1e-10 relative (only the order of
// the sums differs: PBLAS sums each product per block and process, then across processes, and
// pdsyevd's tridiagonal reduction is blocked differently, so eigenvectors differ at round-off);
// the same holds for predict from precomputed kernel files, each rank reading only its blocks;
// pixel-indexed kernels are distributed in bands with the single-process bytes; a rank that fails
// (bad input, out of memory inside or outside an agreement step) or is killed ends the job
// (exit ≠ 0, one line, no final output) and --resume on another rank count finishes it.
// Arguments after `--`: the emergent binary, then mpirun.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "emergent/data/npy.hpp"
#include "support/cli_harness.hpp"

namespace cli = emergent::test::cli;
using cli::contains;
using cli::g_dir;
using cli::quote;
using cli::Run;
using cli::slurp;

namespace {

std::string g_mpirun;

std::string path(const std::string& name) { return (g_dir / name).string(); }

// P ranks on localhost; as root (CI) Open MPI wants both variables. PASSIVE: waiting OpenMP
// threads must not spin on the shared cores. A hang fails the test (timeout) instead of stalling it.
// --quiet: without mpirun's own banners, stderr holds what emergent prints.
Run mpi(int ranks, const std::string& args, const std::string& env = "", bool quiet = true) {
  const std::string launcher = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE " + env +
                               " " + quote(g_mpirun) + " --oversubscribe " + (quiet ? "--quiet " : "") + "-np " +
                               std::to_string(ranks);
  return cli::run(args, {.env = launcher, .timeout_seconds = 240});
}
Run serial(const std::string& args) { return cli::run(args, {.env = "OMP_WAIT_POLICY=PASSIVE", .timeout_seconds = 240}); }

// Inputs from a fixed formula, rows `dup` copied from row 0 (exactly duplicated inputs).
std::string write_inputs(const std::string& name, const std::vector<std::size_t>& shape, double phase,
                         std::size_t duplicates = 0) {
  std::size_t n = shape[0], d = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) d *= shape[i];
  std::vector<double> v(n * d);
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = std::sin(1.37 * static_cast<double>(i) + phase) + 0.3 * std::cos(0.71 * static_cast<double>(i % 13));
  for (std::size_t r = 1; r <= duplicates && r < n; ++r) std::copy_n(v.begin(), d, v.begin() + r * d);
  emergent::write_npy(path(name), shape, v.data());
  return path(name);
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::abs(x));
  return m;
}

// max |a − b| / max |b|, with the shapes checked.
double relative_difference(const std::string& a, const std::string& b) {
  const emergent::NpyArray x = emergent::read_npy(a), y = emergent::read_npy(b);
  REQUIRE(x.shape == y.shape);
  double diff = 0;
  for (std::size_t i = 0; i < x.data.size(); ++i) diff = std::max(diff, std::abs(x.data[i] - y.data[i]));
  const double scale = max_abs(y.data);
  return scale > 0 ? diff / scale : diff;
}

int error_lines(const std::string& err) {
  int lines = 0;
  std::size_t at = 0;
  while ((at = err.find(": error: ", at)) != std::string::npos) ++lines, ++at;
  return lines;
}

std::string kernel_args(const std::string& arch, const std::string& x1, const std::string& out, const std::string& extra = "") {
  return "kernel -q --arch " + quote(arch) + " --x1 " + quote(x1) + " --nngp " + quote(path(out + "_K.npy")) +
         " --ntk " + quote(path(out + "_T.npy")) + " " + extra;
}

const char* kMlp = "dense(32, b=0.1) relu dense(32) erf dense(1)";
const char* kCnn = "conv(8, 3x3, padding=circular, b=0.2) relu conv(8, 3x3) relu flatten dense(1)";
const char* kCnnGap = "conv(8, 3x3, padding=circular) relu gap dense(1)";

}  // namespace

TEST_CASE("kernel: P = 1, 2, 4 ranks write the bytes of the single-process run (MLP and CNN, with and without --x2)") {
  const std::string x = write_inputs("x.npy", {300, 5}, 0.0), z = write_inputs("z.npy", {70, 5}, 1.0);
  const std::string images = write_inputs("img.npy", {140, 4, 4, 2}, 0.5);
  struct Case {
    std::string name, arch, x1, extra;
  };
  const std::vector<Case> cases = {{"mlp", kMlp, x, ""},
                                   {"mlp_x2", kMlp, x, "--x2 " + quote(z)},
                                   {"cnn", kCnn, images, ""},
                                   {"gap", kCnnGap, images, ""}};
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const Run one = serial(kernel_args(c.arch, c.x1, c.name + "_serial", c.extra));
    REQUIRE(one.code == 0);
    for (int p : {1, 2, 4}) {
      CAPTURE(p);
      const std::string out = c.name + "_p" + std::to_string(p);
      const Run r = mpi(p, kernel_args(c.arch, c.x1, out, c.extra));
      CHECK_MESSAGE(r.code == 0, r.err);
      CHECK(slurp(path(out + "_K.npy")) == slurp(path(c.name + "_serial_K.npy")));
      CHECK(slurp(path(out + "_T.npy")) == slurp(path(c.name + "_serial_T.npy")));
      CHECK(!cli::fs::exists(path(out + "_K.npy.resume")));
    }
  }
  // Pixel-indexed kernels (no readout): files (N1, N2, H, W, H, W), bands of ⌈N1/256⌉ rows whose
  // mirrored strips swap the pixel indices; the same bytes as one process, and a killed job
  // resumes on another rank count.
  const std::string small = write_inputs("pix.npy", {30, 3, 3, 1}, 0.7), small2 = write_inputs("pix2.npy", {7, 3, 3, 1}, 1.1);
  const char* kPix = "conv(4, 3x3, padding=circular, b=0.1) relu conv(4, 3x3, padding=circular) erf";
  for (const std::string& extra : {std::string(), "--x2 " + quote(small2)}) {
    CAPTURE(extra);
    const std::string name = extra.empty() ? "pix" : "pix_x2";
    REQUIRE(serial(kernel_args(kPix, small, name + "_serial", extra)).code == 0);
    CHECK(emergent::read_npy(path(name + "_serial_K.npy")).shape.size() == 6);
    for (int p : {1, 2, 4}) {
      CAPTURE(p);
      const std::string out = name + "_p" + std::to_string(p);
      const Run r = mpi(p, kernel_args(kPix, small, out, extra));
      CHECK_MESSAGE(r.code == 0, r.err);
      CHECK(slurp(path(out + "_K.npy")) == slurp(path(name + "_serial_K.npy")));
      CHECK(slurp(path(out + "_T.npy")) == slurp(path(name + "_serial_T.npy")));
    }
  }
  const Run cut = mpi(2, kernel_args(kPix, small, "pix_cut"), "EMERGENT_KERNEL_ABORT_AFTER_BANDS=3 EMERGENT_MPI_ABORT_RANK=1");
  CHECK(cut.code != 0);
  CHECK(!cli::fs::exists(path("pix_cut_K.npy")));
  REQUIRE(cli::fs::exists(path("pix_cut_K.npy.resume")));
  const Run resumed = mpi(4, kernel_args(kPix, small, "pix_cut", "--resume"));
  CHECK_MESSAGE(resumed.code == 0, resumed.err);
  CHECK(slurp(path("pix_cut_K.npy")) == slurp(path("pix_serial_K.npy")));
  CHECK(slurp(path("pix_cut_T.npy")) == slurp(path("pix_serial_T.npy")));
  // The summary line comes from rank 0 alone and names the split.
  const Run r = mpi(2, "kernel --arch " + quote(kMlp) + " --x1 " + quote(x) + " --ntk " + quote(path("summary_T.npy")));
  CHECK(r.code == 0);
  CHECK(cli::one_line(r.err));
  CHECK(contains(r.err, "2 MPI rank(s), 5 bands"));
}

TEST_CASE("kernel: a rank killed mid-way ends the job; --resume on another rank count gives the uninterrupted bytes") {
  const std::string x = write_inputs("xk.npy", {640, 6}, 2.0);
  REQUIRE(serial(kernel_args(kMlp, x, "whole")).code == 0);
  // Rank 1 dies (SIGKILL) after recording 2 bands, with its third band written but not recorded.
  const Run killed = mpi(2, kernel_args(kMlp, x, "cut"), "EMERGENT_KERNEL_ABORT_AFTER_BANDS=2 EMERGENT_MPI_ABORT_RANK=1");
  CHECK(killed.code != 0);
  CHECK(error_lines(killed.err) == 1);  // rank 0, ended by mpirun, says so in one line
  CHECK(contains(killed.err, "a rank failed or was killed"));
  CHECK(!cli::fs::exists(path("cut_K.npy")));  // nothing looks complete
  CHECK(!cli::fs::exists(path("cut_T.npy")));
  REQUIRE(cli::fs::exists(path("cut_K.npy.partial")));
  REQUIRE(cli::fs::exists(path("cut_K.npy.resume")));
  for (int p : {4, 1}) {  // 4 first: the record from 2 ranks; then 1 on a finished copy would be trivial
    CAPTURE(p);
    if (p == 1) {  // kill again, now with 4 ranks, and resume on one
      const Run again = mpi(4, kernel_args(kMlp, x, "cut"), "EMERGENT_KERNEL_ABORT_AFTER_BANDS=1 EMERGENT_MPI_ABORT_RANK=3");
      CHECK(again.code != 0);
      CHECK(!cli::fs::exists(path("cut_K.npy")));
    }
    const Run resumed = mpi(p, kernel_args(kMlp, x, "cut", "--resume"));
    CHECK_MESSAGE(resumed.code == 0, resumed.err);
    CHECK(slurp(path("cut_K.npy")) == slurp(path("whole_K.npy")));
    CHECK(slurp(path("cut_T.npy")) == slurp(path("whole_T.npy")));
    CHECK(!cli::fs::exists(path("cut_K.npy.resume")));
    if (p == 4) {
      cli::fs::remove(path("cut_K.npy"));
      cli::fs::remove(path("cut_T.npy"));
    }
  }
}

TEST_CASE("errors: one line from rank 0, a non-zero exit, no hang and no output") {
  const std::string x = write_inputs("xe.npy", {200, 4}, 3.0);
  SUBCASE("bad input on every rank") {
    const Run r = mpi(2, kernel_args(kMlp, path("missing.npy"), "e1"));
    CHECK(r.code == 2);
    CHECK(error_lines(r.err) == 1);
    CHECK(contains(r.err, "missing.npy"));
  }
  SUBCASE("one rank fails while the others compute") {
    const Run r = mpi(4, kernel_args(kMlp, x, "e2"), "EMERGENT_MPI_TEST_FAIL_RANK=2");
    CHECK(r.code == 1);
    CHECK(error_lines(r.err) == 1);
    CHECK(contains(r.err, "rank 2:"));
    CHECK(!cli::fs::exists(path("e2_K.npy")));
    CHECK(cli::fs::exists(path("e2_K.npy.partial")));  // resumable
  }
  SUBCASE("out of memory on one rank, inside an agreement step or between PBLAS calls: one line, exit 1, no hang") {
    // EMERGENT_MPI_TEST_BAD_ALLOC=R:site throws std::bad_alloc on rank R. "gather": in the step that
    // allocates the gather buffers, agreed by all ranks. "products": while the other ranks wait in
    // PBLAS calls for rank R, where no agreement is possible; the job is aborted, rank 0 prints the
    // line forwarded by rank R. A hang would fail by the harness's timeout.
    const std::string z = write_inputs("ze.npy", {9, 4}, 0.6);
    std::vector<double> y(200);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::cos(0.1 * static_cast<double>(i));
    emergent::write_npy(path("ye.npy"), {200, 1}, y.data());
    for (const std::string site : {"gather", "products"}) {
      CAPTURE(site);
      const Run r = mpi(4, "predict -q --arch " + quote(kMlp) + " --train-x " + quote(x) + " --train-y " + quote(path("ye.npy")) +
                               " --test-x " + quote(z) + " --mean " + quote(path("oom_m.npy")) + " --posterior-cov " +
                               quote(path("oom_pc.npy")),
                        "EMERGENT_SCALAPACK_BLOCK=16 EMERGENT_MPI_TEST_BAD_ALLOC=2:" + site);
      CHECK(r.code == 1);
      CHECK(error_lines(r.err) == 1);
      CHECK_MESSAGE(contains(r.err, "rank 2: out of memory"), r.err);
      CHECK(!cli::fs::exists(path("oom_m.npy")));
      CHECK(!cli::fs::exists(path("oom_pc.npy")));
    }
  }
  SUBCASE("a command that is not distributed") {
    const Run r = mpi(2, "verify all --arch 'dense(8) relu dense(1)' --group sign --data gaussian --shape 4");
    CHECK(r.code == 2);
    // Only rank 0 prints, and mpirun's SIGTERM after that adds no second line.
    CHECK(error_lines(r.err) == 1);
    CHECK(contains(r.err, "only 'kernel' and 'predict'"));
  }
}

TEST_CASE("predict: ScaLAPACK on 1, 2, 4 ranks equals the single-process solve to 1e-10 (t = 0, finite, inf; singular Θ)") {
  struct Case {
    std::string name, arch;
    std::vector<std::size_t> train, test;
    std::size_t duplicates;
  };
  const std::vector<Case> cases = {{"mlp", kMlp, {26, 5}, {9, 5}, 0},
                                   {"mlp_dup", kMlp, {26, 5}, {9, 5}, 3},  // rows 1..3 = row 0: Θ has rank N − 3
                                   {"cnn", kCnn, {18, 4, 4, 1}, {7, 4, 4, 1}, 0},
                                   {"cnn_dup", kCnnGap, {18, 4, 4, 1}, {7, 4, 4, 1}, 2}};
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string x = write_inputs(c.name + "_x.npy", c.train, 0.2, c.duplicates);
    const std::string z = write_inputs(c.name + "_z.npy", c.test, 1.9);
    std::vector<double> y(c.train[0] * 2);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::cos(0.37 * static_cast<double>(i));
    for (std::size_t r = 1; r <= c.duplicates; ++r) y[2 * r] = y[0], y[2 * r + 1] = y[1];  // consistent targets
    emergent::write_npy(path(c.name + "_y.npy"), {c.train[0], 2}, y.data());
    auto args = [&](const std::string& out) {
      std::string arch = c.arch;
      arch.replace(arch.rfind("dense(1)"), 8, "dense(2)");
      return "predict -q --arch " + quote(arch) + " --train-x " + quote(x) + " --train-y " + quote(path(c.name + "_y.npy")) +
             " --test-x " + quote(z) + " --times 0,0.5,7,inf --lr 2 --mean " + quote(path(out + "_m.npy")) + " --cov " +
             quote(path(out + "_c.npy")) + " --posterior-mean " + quote(path(out + "_pm.npy")) + " --posterior-cov " +
             quote(path(out + "_pc.npy"));
    };
    const Run one = serial(args(c.name + "_serial"));
    REQUIRE_MESSAGE(one.code == 0, one.err);
    for (int p : {1, 2, 4}) {
      CAPTURE(p);
      const std::string out = c.name + "_p" + std::to_string(p);
      // Blocks of 4 rows: every rank of the 2×2 grid holds parts of every matrix.
      const Run r = mpi(p, args(out), "EMERGENT_SCALAPACK_BLOCK=4");
      REQUIRE_MESSAGE(r.code == 0, r.err);
      for (const char* what : {"_m.npy", "_c.npy", "_pm.npy", "_pc.npy"}) {
        CAPTURE(what);
        CHECK(relative_difference(path(out + what), path(c.name + "_serial" + what)) <= 1e-10);
      }
      // t = 0: the mean is exactly the prior mean 0 on every rank count.
      const emergent::NpyArray m = emergent::read_npy(path(out + "_m.npy"));
      const std::size_t per_time = m.data.size() / 4;
      CHECK(max_abs(std::vector<double>(m.data.begin(), m.data.begin() + static_cast<long>(per_time))) == 0.0);
    }
  }
}

TEST_CASE("predict from precomputed kernels: each rank reads its blocks from the files; 1, 2, 4 ranks equal one process to 1e-10") {
  // The kernel files come from the single-process `kernel` command; the serial predict reads them
  // whole, the ranks read only their block-cyclic blocks. Same solve, sums in another order.
  struct Case {
    std::string name, arch;
    std::vector<std::size_t> train, test;
    std::size_t duplicates;
  };
  const std::vector<Case> cases = {{"fk_mlp_dup", "dense(32, b=0.1) relu dense(32) erf dense(2)", {30, 5}, {11, 5}, 3},
                                   {"fk_cnn", "conv(8, 3x3, padding=circular) relu gap dense(2)", {16, 4, 4, 1}, {6, 4, 4, 1}, 0}};
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string x = write_inputs(c.name + "_x.npy", c.train, 0.4, c.duplicates);
    const std::string z = write_inputs(c.name + "_z.npy", c.test, 2.3);
    std::vector<double> y(c.train[0] * 2);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::sin(0.53 * static_cast<double>(i));
    for (std::size_t r = 1; r <= c.duplicates; ++r) y[2 * r] = y[0], y[2 * r + 1] = y[1];
    emergent::write_npy(path(c.name + "_y.npy"), {c.train[0], 2}, y.data());
    auto kernel = [&](const std::string& x1, const std::string& x2, const std::string& out) {
      const Run r = serial("kernel -q --arch " + quote(c.arch) + " --x1 " + quote(x1) + (x2.empty() ? "" : " --x2 " + quote(x2)) +
                           " --nngp " + quote(path(c.name + "_K" + out + ".npy")) + " --ntk " + quote(path(c.name + "_T" + out + ".npy")));
      REQUIRE_MESSAGE(r.code == 0, r.err);
    };
    kernel(x, "", "xx");
    kernel(z, x, "zx");
    kernel(z, "", "zz");
    const std::string kernels_args = " --ntk-train " + quote(path(c.name + "_Txx.npy")) + " --nngp-train " +
                                     quote(path(c.name + "_Kxx.npy")) + " --ntk-test " + quote(path(c.name + "_Tzx.npy")) +
                                     " --nngp-test " + quote(path(c.name + "_Kzx.npy")) + " --nngp-test-test " +
                                     quote(path(c.name + "_Kzz.npy")) + " --train-y " + quote(path(c.name + "_y.npy"));
    auto args = [&](const std::string& out) {
      return "predict -q" + kernels_args + " --times 0,0.5,7,inf --lr 2 --mean " + quote(path(out + "_m.npy")) + " --cov " +
             quote(path(out + "_c.npy")) + " --posterior-mean " + quote(path(out + "_pm.npy")) + " --posterior-cov " +
             quote(path(out + "_pc.npy"));
    };
    const Run one = serial(args(c.name + "_serial"));
    REQUIRE_MESSAGE(one.code == 0, one.err);
    for (int p : {1, 2, 4}) {
      CAPTURE(p);
      const std::string out = c.name + "_p" + std::to_string(p);
      const Run r = mpi(p, args(out), "EMERGENT_SCALAPACK_BLOCK=4");
      REQUIRE_MESSAGE(r.code == 0, r.err);
      for (const char* what : {"_m.npy", "_c.npy", "_pm.npy", "_pc.npy"}) {
        CAPTURE(what);
        CHECK(relative_difference(path(out + what), path(c.name + "_serial" + what)) <= 1e-10);
      }
      const emergent::NpyArray m = emergent::read_npy(path(out + "_m.npy"));
      const std::size_t per_time = m.data.size() / 4;
      CHECK(max_abs(std::vector<double>(m.data.begin(), m.data.begin() + static_cast<long>(per_time))) == 0.0);
    }
    // The posterior alone reads no NTK file: only the NNGP options are given.
    const std::string posterior_only = "predict -q --nngp-train " + quote(path(c.name + "_Kxx.npy")) + " --nngp-test " +
                                       quote(path(c.name + "_Kzx.npy")) + " --train-y " + quote(path(c.name + "_y.npy")) +
                                       " --posterior-mean " + quote(path(c.name + "_po_pm.npy"));
    const Run po = mpi(2, posterior_only, "EMERGENT_SCALAPACK_BLOCK=4");
    REQUIRE_MESSAGE(po.code == 0, po.err);
    CHECK(relative_difference(path(c.name + "_po_pm.npy"), path(c.name + "_serial_pm.npy")) <= 1e-10);
  }
  {  // A bad entry in one rank's block, an asymmetric Θ, a wrong shape: one line, exit 2, no output.
    const std::string base = " --ntk-test " + quote(path("fk_mlp_dup_Tzx.npy")) + " --train-y " + quote(path("fk_mlp_dup_y.npy")) +
                             " --mean " + quote(path("fk_bad_m.npy"));
    emergent::NpyArray t = emergent::read_npy(path("fk_mlp_dup_Txx.npy"));
    const std::size_t n = t.shape[0];
    emergent::NpyArray nan = t;
    nan.data[(n - 1) * n + (n - 2)] = std::nan("");  // entry (N-1, N-2): in the last block, not rank 0's on 2×2
    emergent::write_npy(path("fk_nan.npy"), nan.shape, nan.data.data());
    emergent::NpyArray asym = t;
    asym.data[1] += 1e-3;  // entry (0, 1) only
    emergent::write_npy(path("fk_asym.npy"), asym.shape, asym.data.data());
    struct Bad {
      std::string file, expect;
    };
    for (const Bad& b : {Bad{"fk_nan.npy", "--ntk-train"}, Bad{"fk_asym.npy", "not symmetric"},
                         Bad{"fk_mlp_dup_Tzx.npy", "--ntk-train"}}) {
      CAPTURE(b.file);
      const Run r = mpi(4, "predict -q --ntk-train " + quote(path(b.file)) + base, "EMERGENT_SCALAPACK_BLOCK=4");
      CHECK(r.code == 2);
      CHECK(error_lines(r.err) == 1);
      CHECK_MESSAGE(contains(r.err, b.expect), r.err);
      CHECK(!cli::fs::exists(path("fk_bad_m.npy")));
    }
  }
}

int main(int argc, char** argv) {
  // The arguments after `--`: emergent, then mpirun.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--" && i + 2 < argc) {
      rest.push_back(argv[i]);
      rest.push_back(argv[i + 1]);
      g_mpirun = argv[i + 2];
      i += 2;
      continue;
    }
    rest.push_back(argv[i]);
  }
  return cli::run_suite(static_cast<int>(rest.size()), rest.data(), "mpi");
}
