// The hooks of mpi.hpp in a build without MPI: one process, nothing changes.
#include <stdexcept>

#include "mpi.hpp"

namespace emergent::cli::mpi {

Session::Session(int&, char**&) {}
Session::~Session() = default;
bool active() { return false; }
int rank() { return 0; }
int size() { return 1; }
void agree_success() {}
bool agree_failure(std::string&, int&) { return true; }
bool prints() { return true; }

KernelSummary kernel_files(const Architecture&, const Inputs&, const Inputs*, const KernelOptions&, const std::string&,
                           const std::string&, std::uint64_t, bool, bool, std::vector<std::size_t>&) {
  throw std::logic_error("kernel_files: this emergent was built without MPI");
}

PredictOutputs predict(const Architecture&, const Inputs&, const RowMatrix&, const Inputs&, const std::vector<double>&,
                       bool, bool, bool, bool, const GradientFlowOptions&, const KernelOptions&, std::string&) {
  throw std::logic_error("predict: this emergent was built without MPI");
}

PredictOutputs predict_from_kernels(const MappedKernelMatrices&, const RowMatrix&, const std::vector<double>&, bool,
                                    bool, bool, bool, const GradientFlowOptions&, std::string&) {
  throw std::logic_error("predict_from_kernels: this emergent was built without MPI");
}

}  // namespace emergent::cli::mpi
