// `emergent` under mpirun: the hooks main.cpp, cmd_kernel.cpp and cmd_predict.cpp call. They exist
// in every build; without MPI (meson option `mpi`) active() is false and the commands run as
// before. With MPI, a process started by mpirun runs `kernel` and `predict` as one rank of the job
// (lib/distributed), and every failure ends the job with one line from rank 0 (collective.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/kernels/kernel.hpp"
#include "support/kernel_matrices.hpp"

namespace emergent::cli::mpi {

/// MPI_Init if this process was started by mpirun/mpiexec (and the build has MPI); MPI_Finalize
/// at the end. Under MPI the OpenMP default is the cores of the node divided by the ranks on it.
class Session {
 public:
  Session(int& argc, char**& argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  /// Under more than one rank, commands other than kernel and predict are refused: ≥ 0 is the
  /// exit code main() returns (rank 0 has printed the one line), −1 to go on.
  int refused() const { return refused_; }

 private:
  int refused_ = -1;
};

bool active();  ///< running as one rank of an MPI job
int rank();     ///< 0 without MPI
int size();     ///< 1 without MPI

/// main() after a command succeeded on this rank: agrees with the other ranks (throws the agreed
/// error if one of them failed). No-op without MPI.
void agree_success();

/// main() with a failure in hand (`message`, exit `code`): agrees with the other ranks on one
/// error, updates message and code to it; returns true if this process prints the line (rank 0).
/// Without MPI: true, unchanged.
bool agree_failure(std::string& message, int& code);

/// True if this process prints summaries and progress (rank 0).
bool prints();

/// `emergent kernel` (Gram matrices, or pixel-indexed kernels of a CNN without readout), the
/// bands split over the ranks and written into the one pair of output files, with the resumable
/// band record of kernel_files.hpp (a run resumes on any rank count, or without MPI). Returns this
/// job's summary (tiles of all ranks) and the file shape in `shape`. Throws std::logic_error
/// without MPI.
KernelSummary kernel_files(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options,
                           const std::string& nngp, const std::string& ntk, std::uint64_t key, bool resume,
                           bool progress, std::vector<std::size_t>& shape);

/// The kernels and results of `emergent predict` without --augment (the plain flow and the NNGP
/// posterior) on ScaLAPACK: outputs as from GradientFlow / NngpPosterior, on rank 0 (empty on the
/// other ranks). `note` gets the summary text. Throws std::logic_error without MPI.
struct PredictOutputs {
  std::vector<Eigen::MatrixXd> mean, covariance;
  Eigen::MatrixXd posterior_mean, posterior_covariance;
};
PredictOutputs predict(const Architecture& arch, const Inputs& x_train, const RowMatrix& y_train, const Inputs& x_test,
                       const std::vector<double>& times, bool mean, bool covariance, bool posterior_mean,
                       bool posterior_covariance, const GradientFlowOptions& flow, const KernelOptions& kernel,
                       std::string& note);

/// The same from precomputed kernels (`predict --ntk-train …`): every rank reads only its
/// block-cyclic blocks from the memory-mapped files (distributed::mapped_kernels), then the same
/// ScaLAPACK solve. `files` as open_kernel_matrices returns them (shapes checked).
PredictOutputs predict_from_kernels(const MappedKernelMatrices& files, const RowMatrix& y_train,
                                    const std::vector<double>& times, bool mean, bool covariance, bool posterior_mean,
                                    bool posterior_covariance, const GradientFlowOptions& flow, std::string& note);

}  // namespace emergent::cli::mpi
