// Precomputed kernel matrices as inputs of the CLI (`predict --ntk-train …`): .npy files
// memory-mapped read-only and copied once into the column-major matrices the library takes,
// with shapes checked against each other and errors that name the option.
#pragma once

#include <Eigen/Dense>
#include <optional>
#include <string>

#include "emergent/data/npy.hpp"

namespace emergent::cli {

/// One kernel matrix from `path` (MappedNpy: read-only mmap, float32 and other numeric dtypes
/// converted to float64, NaN/Inf refused naming the element). `rows`/`cols` < 0 accept any
/// extent. `meaning` says what the matrix is, e.g. "Θ(X_test, X_train)", for the messages.
/// A 2-d array of the transposed shape gets a hint that x1/x2 were swapped.
Eigen::MatrixXd load_kernel_matrix(const std::string& option, const std::string& path, Eigen::Index rows,
                                   Eigen::Index cols, const std::string& meaning);

/// The file of load_kernel_matrix mapped and its shape checked (the same messages), not read:
/// for readers that take only parts of it (the MPI ranks their blocks).
MappedNpy open_kernel_matrix(const std::string& option, const std::string& path, Eigen::Index rows,
                             Eigen::Index cols, const std::string& meaning);

/// The kernel files of `predict` in place of --arch/--train-x/--test-x, as Neural Tangents'
/// predict functions take them (k_train_train, k_test_train, k_test_test; docs/conventions.md §4).
struct KernelFiles {
  std::string ntk_train, nngp_train, ntk_test, nngp_test, nngp_test_test;
  bool any() const {
    return !ntk_train.empty() || !nngp_train.empty() || !ntk_test.empty() || !nngp_test.empty() ||
           !nngp_test_test.empty();
  }
};

/// What the outputs of a predict run need from the kernels.
struct KernelNeeds {
  bool flow_mean = false, flow_cov = false, posterior_mean = false, posterior_cov = false;
};

/// The kernel matrices, loaded and checked against each other; a matrix no output needs stays
/// empty (and its file unread). Rows of the training kernels fix N; the test kernels fix N_test.
struct KernelMatrices {
  Eigen::MatrixXd ntk_train, nngp_train;  ///< Θ(X,X), K(X,X): N × N
  Eigen::MatrixXd ntk_test, nngp_test;    ///< Θ(x,X), K(x,X): N_test × N
  Eigen::MatrixXd nngp_test_test;         ///< K(x,x): N_test × N_test
  Eigen::Index n_train = 0, n_test = 0;
};

/// Throws std::invalid_argument naming the missing option when an output needs a kernel that
/// was not given, or naming the file whose shape does not fit the others.
KernelMatrices load_kernel_matrices(const KernelFiles& files, const KernelNeeds& needs);

/// The same files mapped and checked against each other (the same errors as
/// load_kernel_matrices), not read; a file no output needs stays closed.
struct MappedKernelMatrices {
  std::optional<MappedNpy> ntk_train, nngp_train, ntk_test, nngp_test, nngp_test_test;
  Eigen::Index n_train = 0, n_test = 0;
};
MappedKernelMatrices open_kernel_matrices(const KernelFiles& files, const KernelNeeds& needs);

}  // namespace emergent::cli
