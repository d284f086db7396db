// Shared pieces of the CLI sub-commands: reading and writing .npy, option lists, progress.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"

namespace CLI {
class App;
}

namespace emergent::cli {

/// --arch, --train-x, --train-y, --test-x: the training set and test points of predict, ensemble
/// and bound.
struct TrainingFiles {
  std::string arch, train_x, train_y, test_x;
};

/// Declares the four options of TrainingFiles on `cmd`, all required.
void add_training_options(CLI::App* cmd, TrainingFiles& files, const std::string& targets_help);

/// What --train-y's column count must match.
enum class TargetColumns {
  ArchitectureOutputs,  ///< arch.outputs(): kernels and the gradient flow work per output channel
  NetworkOutputs,       ///< the size of the finite network's output shape (pixels × channels without a readout)
};

/// The files of TrainingFiles, loaded and checked against each other: the spec parses, test and
/// training examples have the same shape, targets are (N, k) with k as `columns` says.
struct TrainingData {
  Architecture arch;
  Inputs x, z;
  RowMatrix y;
};
TrainingData load_training_data(const TrainingFiles& files, TargetColumns columns);

/// Inputs from a .npy of shape (N, d) or (N, H, W, C); errors name the option and the file.
Inputs load_inputs(const std::string& option, const std::string& path);

/// Targets from a .npy of shape (N,) or (N, k), with N = `rows`.
RowMatrix load_targets(const std::string& option, const std::string& path, Eigen::Index rows);

/// Fail before a long computation if `path` cannot be an output file, or names the same file as
/// an output claimed earlier in this run (two options writing one path would overwrite each other).
void check_output_path(const std::string& option, const std::string& path);

/// Outputs are written to a temporary file next to their destination and renamed only when the
/// whole command succeeded (main.cpp calls commit_outputs), so a failure half-way leaves nothing
/// that looks like a result. This write_npy hides emergent::write_npy inside emergent::cli, so
/// every command's unqualified write_npy(...) stages.
void write_npy(const std::string& path, const std::vector<std::size_t>& shape, const double* data);
/// A text output (CSV, notes), staged like write_npy. Throws std::runtime_error if it cannot be written.
void write_text(const std::string& path, const std::string& contents);
/// The same staging for any file a command writes (CSV, gnuplot scripts, PNG/SVG, text): returns
/// the temporary path to write instead of `destination` (same folder, so the rename is atomic).
/// Every experiment driver writes through this (or open_staged / write_npy / write_figure).
std::string stage_output(const std::string& destination);
/// An open stream on stage_output(destination); throws std::runtime_error naming `destination`
/// if it cannot be opened.
std::ofstream open_staged(const std::string& destination);
/// Drops one staged output and removes its temporary (e.g. a PNG that gnuplot failed to render).
void unstage_output(const std::string& temporary) noexcept;
/// Renames every staged output onto its destination. All destinations are checked first (none
/// may be a directory, every temporary must exist), so a refusal renames nothing.
void commit_outputs();
/// Removes every staged output (on failure); safe to call after commit_outputs.
void discard_outputs() noexcept;

/// A seed option: a decimal integer in [0, 2^64 − 1], nothing else (no sign, exponent or
/// saturation: "-1", "1e23" and 2^64 are refused naming the option).
std::uint64_t parse_seed(const std::string& option, const std::string& text);

/// Never write NaN: a non-finite result is an internal numerical failure (std::runtime_error).
void check_finite(const std::string& what, const double* data, std::size_t n);

/// Write an Eigen matrix as a C-order (rows, cols) '<f8' .npy.
void write_matrix(const std::string& path, const Eigen::MatrixXd& m);

/// "0,1.5,10,inf" → times ≥ 0 (inf allowed).
std::vector<double> parse_times(const std::string& option, const std::string& text);

/// "0,100,300" → increasing integers ≥ 0.
std::vector<int> parse_steps(const std::string& option, const std::string& text);

/// KernelOptions from the common flags, with errors naming the flag.
KernelOptions kernel_options(const std::string& memory_cap, int threads, int quadrature_order);

/// GradientFlowOptions from the common flags (--lr, --diag-reg, --diag-reg-relative, --threads),
/// with errors naming the flag.
GradientFlowOptions flow_options(double lr, double diag_reg, bool diag_reg_relative, int threads);

/// A progress bar on stderr, drawn only when stderr is a terminal.
class Progress {
 public:
  explicit Progress(std::string label);
  void operator()(long done, long total);
  ~Progress();

 private:
  std::string label_;
  bool tty_;
  int last_ = -1;
};

}  // namespace emergent::cli
