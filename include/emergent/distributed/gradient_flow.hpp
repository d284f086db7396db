// Closed-form gradient flow and NNGP posterior (dynamics/gradient_flow.hpp, the same formulas:
// Lee et al. 2019 Eqs. 14–16; Rasmussen & Williams 2006 Eqs. 2.23–2.24) with the kernel matrices
// distributed block-cyclically over the ranks of an MPI communicator: ScaLAPACK's divide-and-conquer
// symmetric eigensolver pdsyevd (Tisseur & Dongarra 1999) and PBLAS products, results gathered
// on rank 0. Compiled only in builds with MPI (meson option `mpi`).
#pragma once

#include <mpi.h>

#include <functional>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/data/npy.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/kernels/kernel.hpp"

namespace emergent::distributed {

/// Fills one rank's block of a pair of kernel matrices: entries (rows[i], cols[j]) (global
/// indices, increasing) into `ntk` / `nngp`, each resized to rows.size() × cols.size(); either
/// pointer may be null (not wanted). Called once per matrix on every rank that owns entries.
using KernelBlockSource = std::function<void(const std::vector<Eigen::Index>& rows,
                                             const std::vector<Eigen::Index>& cols, Eigen::MatrixXd* ntk,
                                             Eigen::MatrixXd* nngp)>;

/// The source that computes kernels(arch, a.rows(rows), b.rows(cols), options) (kernels/kernel.hpp).
/// Keeps references: arch, a and b must outlive it.
KernelBlockSource architecture_kernels(const Architecture& arch, const Inputs& a, const Inputs& b,
                                       const KernelOptions& options);

/// The source that reads the blocks from precomputed kernel matrices in .npy files (data/npy.hpp:
/// memory-mapped, C order, any numeric dtype converted to float64): entry (i, j) of the NTK from
/// `ntk`, of the NNGP kernel from `nngp`; a null file may not be asked for. Each rank touches
/// only the pages of its own blocks (one read per row and run of consecutive columns). A NaN or
/// Inf throws NpyError naming the element, prefixed with `ntk_name` / `nngp_name` (e.g. the CLI
/// option) if given. Keeps the pointers: the files must outlive the source.
KernelBlockSource mapped_kernels(const MappedNpy* ntk, const MappedNpy* nngp, const std::string& ntk_name = "",
                                 const std::string& nngp_name = "");

/// A training set and a test set, seen through their kernel blocks.
struct KernelProblem {
  Eigen::Index n_train = 0, n_test = 0;
  KernelBlockSource train_train;  ///< Θ(X,X), K(X,X): N×N
  KernelBlockSource test_train;   ///< Θ(x,X), K(x,X): N_test×N
  KernelBlockSource test_test;    ///< K(x,x): N_test×N_test (only nngp is asked for)
};

/// What to compute: the gradient-flow mean and covariance at `times`, the NNGP posterior.
struct DistributedPredictRequest {
  std::vector<double> times;
  bool mean = false, covariance = false, posterior_mean = false, posterior_covariance = false;
};

struct DistributedSolveOptions {
  GradientFlowOptions flow;  ///< threads is ignored: one BLAS thread per rank (one rank per core)
  int block_size = 64;       ///< edge of the square blocks of the block-cyclic distribution

  /// True if the options make sense; otherwise false with the reason in *error.
  bool IsValid(std::string* error) const;
};

/// The results, on rank 0 (empty matrices elsewhere); the summaries on every rank.
struct DistributedPredictResult {
  std::vector<Eigen::MatrixXd> mean;        ///< per time: N_test×k
  std::vector<Eigen::MatrixXd> covariance;  ///< per time: N_test×N_test
  Eigen::MatrixXd posterior_mean;           ///< N_test×k
  Eigen::MatrixXd posterior_covariance;     ///< N_test×N_test
  SpectralSummary flow_summary;             ///< of Θ(X,X) (if mean or covariance was asked)
  SpectralSummary posterior_summary;        ///< of K(X,X) (if the posterior was asked)
  int process_rows = 1, process_cols = 1;   ///< the ScaLAPACK process grid
};

/// GradientFlow::mean/covariance and NngpPosterior::mean/covariance of `problem` over all ranks of
/// `comm` (collective; every rank passes the same arguments, `y_train` N×k included). Each rank
/// computes only its blocks of the kernels; Θ(X,X) and K(X,X) are eigendecomposed by pdsyevd
/// and the same directions are kept as in the single-process solve (summarize_spectrum), so the
/// results agree with it to round-off: the sums of every product run in a different order (per
/// block and process, then across processes) and the eigenvectors come from a differently blocked
/// tridiagonal reduction. Θ(X,X), K(X,X) and K(x,x) are symmetrized after the check of
/// GradientFlow (symmetry_rtol). Errors on any rank end the call on every rank (collective.hpp):
/// in agreement steps (inputs, kernel blocks, allocations, the eigensolver's status) as a
/// CollectiveError / CollectiveInvalidArgument on every rank; inside the PBLAS and ScaLAPACK
/// stretches, where the other ranks wait in collective calls, through without_agreement
/// (MPI_Abort after the fatal handler). Test hook: EMERGENT_MPI_TEST_BAD_ALLOC="R:gather" or
/// "R:products" throws std::bad_alloc on rank R in the gather step or before the products.
DistributedPredictResult predict(MPI_Comm comm, const KernelProblem& problem, const Eigen::MatrixXd& y_train,
                                 const DistributedPredictRequest& request, const DistributedSolveOptions& options);

}  // namespace emergent::distributed
