// `emergent kernel`: NNGP (Σ) and NTK (Θ) Gram matrices of an architecture (docs/conventions.md §2, §5),
// read from and written to NumPy .npy files.
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <utility>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/core/memory.hpp"
#include "emergent/data/npy.hpp"
#include "distributed/mpi.hpp"
#include "kernel_files.hpp"
#include "support/io.hpp"
#include "support/phase_log.hpp"

namespace emergent::cli {

namespace {

struct KernelArgs {
  std::string arch;
  std::string x1, x2;
  std::string nngp, ntk;
  std::string memory_cap = "25%";
  int threads = 0;
  int quadrature_order = 0;
  bool quiet = false;
  bool resume = false;
  bool sync = false;
};

#ifndef EMERGENT_VERSION
#define EMERGENT_VERSION "0.1.0"
#endif

// The kernels' arithmetic: bumped whenever a change in lib/kernels changes the rounding of an
// entry (2: the packed Σ⁰ GEMM, one fma chain per entry in feature order; 3: the pixel diagonal's
// scaled dual takes asin x as x·Q(x²), and pixel-pair rows of 25-32 pixels are stored divided by μ
// before a conv), so that a run is never resumed by a binary whose bands
// would differ in their last bits from the recorded ones.
constexpr int kKernelArithmetic = 3;

// A 64-bit digest of the inputs' bytes for the resume key: fnv1a's word step on four interleaved
// chains, folded at the end. One chain is a serial multiply per word (4.5 ms on 3000 × 784
// inputs); four independent ones overlap in the pipeline (2.4 ms). The empty asm keeps the
// chains in scalar registers: vectorised, the 64-bit multiply's latency made it slower than one.
std::uint64_t input_digest(const double* x, std::size_t n, std::uint64_t h) {
  auto step = [](std::uint64_t v, const double* p) {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    v = (v ^ w) * 0x100000001B3ULL;
    return v ^ (v >> 32);
  };
  std::uint64_t a = h, b = h ^ 0x9E3779B97F4A7C15ULL, c = h ^ 0xC2B2AE3D27D4EB4FULL, d = h ^ 0x165667B19E3779F9ULL;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a = step(a, x + i);
    b = step(b, x + i + 1);
    c = step(c, x + i + 2);
    d = step(d, x + i + 3);
#if defined(__GNUC__)
    __asm__("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
#endif
  }
  const std::uint64_t lanes[4] = {a, b, c, d};
  return fnv1a(x + i, sizeof(double) * (n - i), fnv1a(lanes, sizeof lanes, h));
}

// Everything a resumed run must share with the interrupted one, the binary's arithmetic included.
std::uint64_t computation_key(const KernelArgs& a, const Architecture& arch, const Inputs& x1, const Inputs* x2) {
  const std::string text = std::string("emergent ") + EMERGENT_VERSION + " arithmetic " +
                           std::to_string(kKernelArithmetic) + "|" + arch.to_string() + "|q=" +
                           std::to_string(a.quadrature_order) + "|" + a.nngp + "|" + a.ntk;
  std::uint64_t h = fnv1a(text.data(), text.size());
  for (const Inputs* in : {&x1, x2}) {
    if (!in) continue;
    const std::string shape = in->shape.to_string() + "#" + std::to_string(in->count());
    h = fnv1a(shape.data(), shape.size(), h);
    h = input_digest(in->x.data(), static_cast<std::size_t>(in->x.size()), h);
  }
  return h;
}

// The number of examples of an (N, d) .npy file, 0 if it is not a readable one.
Eigen::Index vector_rows(const std::string& path) {
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec)) return 0;
  try {
    const MappedNpy file(path);
    return file.shape().size() == 2 ? static_cast<Eigen::Index>(file.shape()[0]) : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

void run_kernel(const KernelArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  phase_mark("parsed");
  if (a.nngp.empty() && a.ntk.empty())
    throw std::invalid_argument("no output requested; give --nngp K.npy and/or --ntk T.npy");
  if (!a.nngp.empty() && a.nngp == a.ntk)
    throw std::invalid_argument("--nngp and --ntk are both '" + a.nngp + "'; expected two different files");
  if (!a.nngp.empty()) check_output_path("--nngp", a.nngp);
  if (!a.ntk.empty()) check_output_path("--ntk", a.ntk);

  const KernelOptions options = kernel_options(a.memory_cap, a.threads, a.quadrature_order);

  const Architecture arch = Architecture::parse(a.arch);
  // Vector inputs give (N1, N2) Gram matrices: the output files can be made ready (created,
  // mapped, their pages faulted in on a background thread) while the inputs are read and the
  // engine plans. The sizes come from the .npy headers; a file that is not a readable (N, d)
  // array is left to load_inputs to report.
  std::optional<KernelFileWriter> files;
  auto writer = [&] {
    files.emplace(a.nngp, a.ntk, 0, a.resume, !a.quiet, a.threads > 0 ? a.threads : omp_get_max_threads(), a.sync);
  };
  if (!mpi::active() && !arch.expects_images()) {
    const Eigen::Index n1 = vector_rows(a.x1), n2 = a.x2.empty() ? n1 : vector_rows(a.x2);
    if (n1 > 0 && n2 > 0) {
      writer();
      files->expect_gram(n1, n2);
    }
  }
  const Inputs x1 = load_inputs("--x1", a.x1);
  phase_mark("read");
  arch.shapes(x1.shape);  // throws SpecError naming the layer that does not fit
  std::optional<Inputs> x2;
  if (!a.x2.empty()) {
    x2 = load_inputs("--x2", a.x2);
    if (!(x2->shape == x1.shape))
      throw std::invalid_argument("--x2 '" + a.x2 + "' holds examples of shape " + x2->shape.to_string() +
                                  " but --x1 '" + a.x1 + "' holds " + x1.shape.to_string() +
                                  "; expected the same example shape");
  }

  KernelSummary summary;
  std::vector<std::size_t> out_shape;
  if (!streams_in_bands(arch, x1.shape)) files.reset();  // computed in memory: the early files go
  if (mpi::active()) {
    // mpirun: the ranks share the bands of one pair of files (distributed/mpi.hpp).
    summary = mpi::kernel_files(arch, x1, x2 ? &*x2 : nullptr, options, a.nngp, a.ntk,
                                computation_key(a, arch, x1, x2 ? &*x2 : nullptr), a.resume, !a.quiet, out_shape);
  } else if (streams_in_bands(arch, x1.shape)) {
    // Band by band into the files (MLPs and CNNs, Gram or pixel-indexed): the memory cap bounds
    // the working set, not the output.
    if (!files) writer();
    files->set_key(computation_key(a, arch, x1, x2 ? &*x2 : nullptr));
    summary = stream_kernels(arch, x1, x2 ? &*x2 : nullptr, options, *files);
    files->finish();
    phase_mark("finished");
    out_shape = files->shape();
  } else if (!arch.has_readout() && arch.expects_images()) {
    // A CNN without flatten/gap: the kernel keeps its pixel indices, (N1, N2, H, W, H, W).
    const SpatialKernels k = x2 ? spatial_kernels(arch, x1, *x2, options) : spatial_kernels(arch, x1, options);
    out_shape = k.shape();
    if (!a.nngp.empty()) check_finite("NNGP kernel", k.nngp.data(), k.nngp.size());
    if (!a.ntk.empty()) check_finite("NTK", k.ntk.data(), k.ntk.size());
    if (!a.nngp.empty()) write_npy(a.nngp, out_shape, k.nngp.data());
    if (!a.ntk.empty()) write_npy(a.ntk, out_shape, k.ntk.data());
    summary = k.summary;
  } else {
    const Kernels k = x2 ? kernels(arch, x1, *x2, options) : kernels(arch, x1, options);
    out_shape = {static_cast<std::size_t>(k.nngp.rows()), static_cast<std::size_t>(k.nngp.cols())};
    if (!a.nngp.empty()) check_finite("NNGP kernel", k.nngp.data(), static_cast<std::size_t>(k.nngp.size()));
    if (!a.ntk.empty()) check_finite("NTK", k.ntk.data(), static_cast<std::size_t>(k.ntk.size()));
    if (!a.nngp.empty()) write_matrix(a.nngp, k.nngp);
    if (!a.ntk.empty()) write_matrix(a.ntk, k.ntk);
    summary = k.summary;
  }

  if (a.quiet || !mpi::prints()) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream line;
  line.precision(3);
  line << "kernel: ";
  for (std::size_t i = 0; i < out_shape.size(); ++i) line << (i ? " x " : "") << out_shape[i];
  if (!summary.path.empty()) line << ", " << summary.path;
  if (summary.blocks > 1) line << ", " << summary.blocks << " blocks";
  line << ", " << seconds << " s, peak " << format_bytes(peak_rss_bytes());
  line << " -> ";
  if (!a.nngp.empty()) line << a.nngp << (a.ntk.empty() ? "" : ", ");
  if (!a.ntk.empty()) line << a.ntk;
  std::cerr << line.str() << std::endl;
}

}  // namespace

void add_kernel_command(CLI::App& app) {
  auto args = std::make_shared<KernelArgs>();
  CLI::App* cmd = app.add_subcommand("kernel", "NNGP and NTK Gram matrices of an architecture, as .npy");
  cmd->footer(
      "Inputs are (N, d) vectors for networks that start with dense, (N, H, W, C) images for\n"
      "networks that start with conv/flatten; '<f8' or '<f4' .npy (other numeric dtypes are\n"
      "converted). Outputs are '<f8' .npy of shape (N1, N2), or (N1, N2, H, W, H, W) for a CNN\n"
      "without flatten/gap. Without --x2 the kernel of --x1 with itself is computed.\n"
      "\n"
      "Example:\n"
      "  emergent kernel --arch 'conv(64, 3x3, padding=circular) relu flatten dense(1)' \\\n"
      "      --x1 train.npy --x2 test.npy --nngp K.npy --ntk T.npy --memory-cap 4G");
  cmd->add_option("--arch", args->arch, "Architecture spec, e.g. 'dense(512, w=1.5, b=0.1) relu dense(1)'")
      ->required();
  cmd->add_option("--x1", args->x1, "Inputs A.npy: (N1, d) or (N1, H, W, C)")->required();
  cmd->add_option("--x2", args->x2, "Inputs B.npy (default: --x1, symmetric kernel)");
  cmd->add_option("--nngp", args->nngp, "Output: NNGP kernel K(x1, x2) as .npy");
  cmd->add_option("--ntk", args->ntk, "Output: NTK Θ(x1, x2) as .npy");
  cmd->add_option("--memory-cap", args->memory_cap,
                  "Largest working set (kernels stream to the output files, which may be larger): 4G, 512M, "
                  "1.5GiB, bytes or 25% of RAM")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "OpenMP threads (0: OpenMP default); results do not depend on it")
      ->capture_default_str();
  cmd->add_option("--quadrature-order", args->quadrature_order,
                  "Gauss–Hermite nodes per dimension for tanh/sigmoid/softplus/swish (0: default)")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", args->quiet, "Do not print the progress and summary lines on stderr");
  cmd->add_flag("--resume", args->resume,
                "Continue an interrupted run: keep the bands recorded in <first output>.resume (checked against "
                "their checksums), compute the rest");
  cmd->add_flag("--sync", args->sync,
                "fsync the outputs before renaming them into place, so that they survive a power loss or an OS "
                "crash right after the command (without it they are complete for every reader at once and "
                "reach the disk by the system's write-back, as numpy.save's do)");
  cmd->callback([args] { run_kernel(*args); });
}

}  // namespace emergent::cli
