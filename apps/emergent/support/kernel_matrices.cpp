#include "support/kernel_matrices.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "emergent/core/inputs.hpp"
#include "emergent/data/npy.hpp"

namespace emergent::cli {

namespace {

std::string extent(Eigen::Index n, const char* name) { return n < 0 ? std::string(name) : std::to_string(n); }

}  // namespace

MappedNpy open_kernel_matrix(const std::string& option, const std::string& path, Eigen::Index rows,
                             Eigen::Index cols, const std::string& meaning) {
  MappedNpy file = [&] {
    try {
      return MappedNpy(path);
    } catch (const NpyError& e) {
      throw NpyError(option + ": " + e.what());
    }
  }();
  const std::vector<std::size_t>& shape = file.shape();
  // Test kernels have N_test rows; N_test in the columns only for K(X_test, X_test).
  const bool test_rows = meaning.find("(X_test") != std::string::npos;
  const bool test_cols = meaning.find("X_test)") != std::string::npos;
  const std::string expected =
      "(" + extent(rows, test_rows ? "N_test" : "N") + ", " + extent(cols, test_cols ? "N_test" : "N") + ")";
  const std::string got = shape_string(shape);
  if (shape.size() != 2)
    throw std::invalid_argument(option + " '" + path + "' holds an array of shape " + got + "; expected a " + meaning +
                                " matrix of shape " + expected);
  const auto r = static_cast<Eigen::Index>(shape[0]), c = static_cast<Eigen::Index>(shape[1]);
  if ((rows >= 0 && r != rows) || (cols >= 0 && c != cols)) {
    const bool swapped = cols >= 0 && c != cols && r == cols && (rows < 0 || c == rows);
    throw std::invalid_argument(
        option + " '" + path + "' has shape " + got + "; expected " + meaning + " of shape " + expected +
        (swapped ? " (the transpose was given: `emergent kernel --x1 TEST --x2 TRAIN` writes K(x_test, X_train))"
                 : ""));
  }
  return file;
}

namespace {

// C order in the file, column-major in Eigen: copy a block of rows at a time, converting.
Eigen::MatrixXd read_all(const std::string& option, const MappedNpy& file) {
  const auto r = static_cast<Eigen::Index>(file.shape()[0]), c = static_cast<Eigen::Index>(file.shape()[1]);
  Eigen::MatrixXd m(r, c);
  const Eigen::Index block = std::max<Eigen::Index>(1, (Eigen::Index{1} << 20) / std::max<Eigen::Index>(1, c));
  std::vector<double> buffer;
  for (Eigen::Index i0 = 0; i0 < r; i0 += block) {
    const Eigen::Index n = std::min(block, r - i0);
    buffer.resize(static_cast<std::size_t>(n * c));
    try {
      file.read(static_cast<std::size_t>(i0 * c), buffer.size(), buffer.data());
    } catch (const NpyError& e) {
      throw NpyError(option + ": " + e.what());
    }
    m.middleRows(i0, n) = Eigen::Map<const RowMatrix>(buffer.data(), n, c);
  }
  return m;
}

}  // namespace

Eigen::MatrixXd load_kernel_matrix(const std::string& option, const std::string& path, Eigen::Index rows,
                                   Eigen::Index cols, const std::string& meaning) {
  return read_all(option, open_kernel_matrix(option, path, rows, cols, meaning));
}

MappedKernelMatrices open_kernel_matrices(const KernelFiles& f, const KernelNeeds& needs) {
  const bool cov = needs.flow_cov || needs.posterior_cov;
  struct Need {
    const char* option;
    const std::string& path;
    bool needed;
    const char* for_what;
  };
  const Need list[] = {
      {"--ntk-train", f.ntk_train, needs.flow_mean || needs.flow_cov, "--mean and --cov"},
      {"--ntk-test", f.ntk_test, needs.flow_mean || needs.flow_cov, "--mean and --cov"},
      {"--nngp-train", f.nngp_train, needs.flow_cov || needs.posterior_mean || needs.posterior_cov,
       "--cov, --posterior-mean and --posterior-cov"},
      {"--nngp-test", f.nngp_test, needs.flow_cov || needs.posterior_mean || needs.posterior_cov,
       "--cov, --posterior-mean and --posterior-cov"},
      {"--nngp-test-test", f.nngp_test_test, cov, "--cov and --posterior-cov"},
  };
  for (const Need& n : list)
    if (n.needed && n.path.empty())
      throw std::invalid_argument(std::string("missing ") + n.option + ": with precomputed kernels, " + n.for_what +
                                  " need " + n.option + " (docs/cli.md, predict from kernels)");
  MappedKernelMatrices k;
  // N from the first training kernel needed, N_test from the first test kernel needed.
  Eigen::Index n = -1, nt = -1;
  const bool want_ntk = needs.flow_mean || needs.flow_cov;
  const bool want_nngp = needs.flow_cov || needs.posterior_mean || needs.posterior_cov;
  auto square = [](const MappedNpy& m, const char* option, const std::string& path, const char* meaning) {
    if (m.shape()[0] != m.shape()[1])
      throw std::invalid_argument(std::string(option) + " '" + path + "' has shape (" + std::to_string(m.shape()[0]) +
                                  ", " + std::to_string(m.shape()[1]) + "); expected a square " + meaning +
                                  " of shape (N, N)");
    return static_cast<Eigen::Index>(m.shape()[0]);
  };
  if (want_ntk) {
    k.ntk_train = open_kernel_matrix("--ntk-train", f.ntk_train, -1, -1, "Θ(X_train, X_train)");
    n = square(*k.ntk_train, "--ntk-train", f.ntk_train, "Θ(X_train, X_train)");
  }
  if (want_nngp) {
    k.nngp_train = open_kernel_matrix("--nngp-train", f.nngp_train, n, n, "K(X_train, X_train)");
    n = square(*k.nngp_train, "--nngp-train", f.nngp_train, "K(X_train, X_train)");
  }
  if (want_ntk) {
    k.ntk_test = open_kernel_matrix("--ntk-test", f.ntk_test, -1, n, "Θ(X_test, X_train)");
    nt = static_cast<Eigen::Index>(k.ntk_test->shape()[0]);
  }
  if (want_nngp) {
    k.nngp_test = open_kernel_matrix("--nngp-test", f.nngp_test, nt, n, "K(X_test, X_train)");
    nt = static_cast<Eigen::Index>(k.nngp_test->shape()[0]);
  }
  if (cov) k.nngp_test_test = open_kernel_matrix("--nngp-test-test", f.nngp_test_test, nt, nt, "K(X_test, X_test)");
  k.n_train = n;
  k.n_test = nt;
  return k;
}

KernelMatrices load_kernel_matrices(const KernelFiles& f, const KernelNeeds& needs) {
  const MappedKernelMatrices m = open_kernel_matrices(f, needs);
  KernelMatrices k;
  if (m.ntk_train) k.ntk_train = read_all("--ntk-train", *m.ntk_train);
  if (m.nngp_train) k.nngp_train = read_all("--nngp-train", *m.nngp_train);
  if (m.ntk_test) k.ntk_test = read_all("--ntk-test", *m.ntk_test);
  if (m.nngp_test) k.nngp_test = read_all("--nngp-test", *m.nngp_test);
  if (m.nngp_test_test) k.nngp_test_test = read_all("--nngp-test-test", *m.nngp_test_test);
  k.n_train = m.n_train;
  k.n_test = m.n_test;
  return k;
}

}  // namespace emergent::cli
