// The hooks of mpi.hpp in a build with MPI (lib/distributed).
#include "mpi.hpp"

#include <mpi.h>
#include <omp.h>

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "emergent/distributed/collective.hpp"
#include "emergent/distributed/gradient_flow.hpp"
#include "emergent/distributed/kernels.hpp"
#include "shared_kernel_files.hpp"

namespace emergent::cli::mpi {

namespace {

bool g_active = false;
int g_rank = 0, g_size = 1;

// mpirun / mpiexec (Open MPI, MPICH/Hydra, PMIx launchers) tell their processes who they are.
bool launched_by_mpirun() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(name)) return true;
  return false;
}

int local_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"})
    if (const char* v = std::getenv(name)) return std::max(1, std::atoi(v));
  return 1;
}

// When a rank dies, mpirun ends the others with SIGTERM: rank 0 says so in one line (the
// handler only writes a prepared text and exits, both async-signal-safe).
// Once rank 0 has printed the job's one error line, a later SIGTERM (mpirun ending the job because
// another rank exited non-zero) must not add a second one: the length is reset to 0 then.
char g_terminated_text[512] = {};
volatile std::sig_atomic_t g_terminated_length = 0;
char g_fatal_text[512] = {};  // rank 0: a line forwarded by a rank that failed without agreement
std::atomic<bool> g_fatal_printed{false};
extern "C" void on_terminate(int) {
  if (g_fatal_printed.load()) ::_exit(143);  // the watcher below has printed the job's line
  std::size_t forwarded = 0;
  while (forwarded < sizeof g_fatal_text && g_fatal_text[forwarded] != '\0') ++forwarded;
  if (g_terminated_length > 0 && forwarded > 0) {
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, g_fatal_text, forwarded);
  } else if (g_terminated_length > 0) {
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, g_terminated_text, g_terminated_length);
  }
  ::_exit(143);
}

// A failure where no agreement is possible (distributed::without_agreement) reaches rank 0 as a
// message on a communicator of its own: rank 0 keeps a receive posted for it the whole run, which
// MPI completes while rank 0 waits in any collective call (that wait is what the failure would
// otherwise turn into a hang). The failing rank sends synchronously and waits until rank 0 has
// matched it, then aborts the job; mpirun's SIGTERM makes rank 0 print that message as the job's
// one line. If rank 0 does not match it in time (it is computing, not waiting), the failing rank
// prints the line itself.
constexpr int kFatalTag = 7301;
MPI_Comm g_fatal_comm = MPI_COMM_NULL;
MPI_Request g_fatal_request = MPI_REQUEST_NULL;
std::string g_command;

void forward_fatal(int rank, distributed::FailureKind, const std::string& message) {
  std::string line = "emergent " + g_command + ": error: " + message;
  if (line.size() > sizeof g_fatal_text - 2) line.resize(sizeof g_fatal_text - 2);
  line += "\n";
  if (rank == 0 || g_fatal_comm == MPI_COMM_NULL) {
    g_terminated_length = 0;  // this is the job's one line; SIGTERM adds none
    std::cerr << line << std::flush;
    return;
  }
  MPI_Request request;
  MPI_Issend(line.data(), static_cast<int>(line.size()), MPI_CHAR, 0, kFatalTag, g_fatal_comm, &request);
  double wait = 30.0;
  if (const char* v = std::getenv("EMERGENT_MPI_FATAL_WAIT_SECONDS")) wait = std::atof(v);
  const double until = MPI_Wtime() + wait;
  int delivered = 0;
  while (!delivered && MPI_Wtime() < until) {
    MPI_Test(&request, &delivered, MPI_STATUS_IGNORE);
    if (!delivered) ::usleep(2000);
  }
  if (!delivered) std::cerr << line << std::flush;  // rank 0 never listened: say it here
  ::usleep(300000);  // let rank 0's watcher print the line before the abort ends rank 0
}

// Rank 0: the forwarded line arrives while rank 0 waits inside some MPI call (MPI fills the posted
// receive), and mpirun may end rank 0 right after; a thread watching the buffer prints it at once
// (memory reads and write(2) only, no MPI), the SIGTERM handler only if the thread has not.
std::atomic<bool> g_watching{false};
std::thread g_watcher;
void watch_forwarded() {
  while (g_watching.load()) {
    std::size_t length = 0;
    while (length < sizeof g_fatal_text && g_fatal_text[length] != '\0') ++length;
    if (length > 0 && g_fatal_text[length - 1] == '\n' && !g_fatal_printed.exchange(true)) {
      g_terminated_length = 0;
      [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, g_fatal_text, length);
      return;
    }
    ::usleep(5000);
  }
}

int exit_code(const std::exception& e) {
  return dynamic_cast<const std::invalid_argument*>(&e) ? 2 : 1;
}

}  // namespace

Session::Session(int& argc, char**& argv) {
  if (!launched_by_mpirun()) return;
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  g_active = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  // One core per thread across the ranks on this node, unless the user said otherwise.
  if (!std::getenv("OMP_NUM_THREADS")) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    omp_set_num_threads(std::max(1, cores / local_ranks()));
  }
  // Only the distributed commands make sense on several ranks (the others would each do the whole
  // work and write the same files).
  std::string command;
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-') {
      command = argv[i];
      break;
    }
  const bool help = command.empty();
  g_command = command;
  MPI_Comm_dup(MPI_COMM_WORLD, &g_fatal_comm);
  if (g_rank == 0 && g_size > 1)
    MPI_Irecv(g_fatal_text, static_cast<int>(sizeof g_fatal_text - 1), MPI_CHAR, MPI_ANY_SOURCE, kFatalTag, g_fatal_comm,
              &g_fatal_request);
  distributed::set_fatal_handler(&forward_fatal);
  if (g_rank == 0 && g_size > 1) {
    g_watching = true;
    g_watcher = std::thread(watch_forwarded);
  }
  if (g_rank == 0 && g_size > 1) {
    const std::string text = "emergent " + command + ": error: the MPI job was ended: a rank failed or was killed" +
                             (command == "kernel" ? "; finished bands are kept, continue with --resume" : "") + "\n";
    const std::size_t length = std::min(text.size(), sizeof g_terminated_text);
    std::memcpy(g_terminated_text, text.data(), length);
    g_terminated_length = static_cast<std::sig_atomic_t>(length);
    std::signal(SIGTERM, on_terminate);
  }
  if (g_size > 1 && !help && command != "kernel" && command != "predict") {
    g_terminated_length = 0;  // this line is the job's one error line
    if (g_rank == 0)
      std::cerr << "emergent " << command << ": error: runs on one process; under mpirun only 'kernel' and 'predict' "
                << "are distributed (got " << g_size << " ranks)" << std::endl;
    refused_ = 2;
  }
}

Session::~Session() {
  if (!g_active) return;
  g_watching = false;
  if (g_watcher.joinable()) g_watcher.join();
  if (g_fatal_request != MPI_REQUEST_NULL) {
    MPI_Cancel(&g_fatal_request);
    MPI_Wait(&g_fatal_request, MPI_STATUS_IGNORE);
  }
  if (g_fatal_comm != MPI_COMM_NULL) MPI_Comm_free(&g_fatal_comm);
  MPI_Finalize();
}

bool active() { return g_active; }
int rank() { return g_rank; }
int size() { return g_size; }
bool prints() { return g_rank == 0; }

void agree_success() {
  if (g_active) distributed::collectively(MPI_COMM_WORLD, [] {});
}

bool agree_failure(std::string& message, int& code) {
  if (!g_active) return true;
  const std::exception_ptr current = std::current_exception();
  bool agreed = false;
  try {
    if (current) std::rethrow_exception(current);
  } catch (const std::exception& e) {
    agreed = distributed::is_agreed(e);
  } catch (...) {
  }
  if (!agreed) {
    // Join the other ranks at their next agreement: they end with this rank's error (or theirs).
    try {
      distributed::collectively(MPI_COMM_WORLD, [&] {
        if (code == 2) throw std::invalid_argument(message);
        throw std::runtime_error(message);
      });
    } catch (const std::exception& e) {
      message = e.what();
      code = exit_code(e);
    }
  } else if (current) {
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& e) {
      code = exit_code(e);
    }
  }
  if (g_rank == 0) g_terminated_length = 0;  // rank 0 now prints the job's one error line
  return g_rank == 0;
}

KernelSummary kernel_files(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options,
                           const std::string& nngp, const std::string& ntk, std::uint64_t key, bool resume,
                           bool progress, std::vector<std::size_t>& shape) {
  SharedKernelFiles files(nngp, ntk, key, resume, progress && g_rank == 0, MPI_COMM_WORLD);
  distributed::DistributedKernelOptions o;
  o.kernel = options;
  o.band_rows = files.recorded_band_rows();
  KernelSummary summary = distributed::stream_kernels(arch, x1, x2, o, files, MPI_COMM_WORLD);
  files.finish();
  unsigned long long blocks = summary.blocks, total = 0;
  MPI_Allreduce(&blocks, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  summary.blocks = static_cast<std::size_t>(total);
  summary.n1 = x1.count();
  summary.n2 = x2 ? x2->count() : x1.count();
  if (summary.path.empty()) summary.path = "vector";
  shape = files.shape();
  summary.path += ", " + std::to_string(g_size) + " MPI rank(s), " + std::to_string(files.bands_total()) + " bands" +
                  (files.bands_resumed() ? " (" + std::to_string(files.bands_resumed()) + " resumed)" : "");
  return summary;
}

namespace {

PredictOutputs solve(const distributed::KernelProblem& problem, const RowMatrix& y_train,
                     const std::vector<double>& times, bool mean, bool covariance, bool posterior_mean,
                     bool posterior_covariance, const GradientFlowOptions& flow, std::string& note) {
  distributed::DistributedPredictRequest request;
  request.times = times;
  request.mean = mean;
  request.covariance = covariance;
  request.posterior_mean = posterior_mean;
  request.posterior_covariance = posterior_covariance;
  distributed::DistributedSolveOptions options;
  options.flow = flow;
  if (const char* v = std::getenv("EMERGENT_SCALAPACK_BLOCK")) options.block_size = std::atoi(v);
  distributed::DistributedPredictResult r =
      distributed::predict(MPI_COMM_WORLD, problem, Eigen::MatrixXd(y_train), request, options);
  std::ostringstream text;
  text << "ScaLAPACK on " << r.process_rows << "x" << r.process_cols << " ranks, blocks of " << options.block_size;
  if (mean || covariance) text << "; Θ(X,X): " << r.flow_summary.to_string();
  if (posterior_mean || posterior_covariance) text << "; K(X,X): " << r.posterior_summary.to_string();
  note = text.str();
  PredictOutputs out;
  out.mean = std::move(r.mean);
  out.covariance = std::move(r.covariance);
  out.posterior_mean = std::move(r.posterior_mean);
  out.posterior_covariance = std::move(r.posterior_covariance);
  return out;
}

}  // namespace

PredictOutputs predict(const Architecture& arch, const Inputs& x_train, const RowMatrix& y_train, const Inputs& x_test,
                       const std::vector<double>& times, bool mean, bool covariance, bool posterior_mean,
                       bool posterior_covariance, const GradientFlowOptions& flow, const KernelOptions& kernel,
                       std::string& note) {
  distributed::KernelProblem problem;
  problem.n_train = x_train.count();
  problem.n_test = x_test.count();
  problem.train_train = distributed::architecture_kernels(arch, x_train, x_train, kernel);
  problem.test_train = distributed::architecture_kernels(arch, x_test, x_train, kernel);
  problem.test_test = distributed::architecture_kernels(arch, x_test, x_test, kernel);
  return solve(problem, y_train, times, mean, covariance, posterior_mean, posterior_covariance, flow, note);
}

PredictOutputs predict_from_kernels(const MappedKernelMatrices& files, const RowMatrix& y_train,
                                    const std::vector<double>& times, bool mean, bool covariance, bool posterior_mean,
                                    bool posterior_covariance, const GradientFlowOptions& flow, std::string& note) {
  auto file = [](const std::optional<MappedNpy>& f) { return f ? &*f : nullptr; };
  distributed::KernelProblem problem;
  problem.n_train = files.n_train;
  problem.n_test = files.n_test;
  problem.train_train =
      distributed::mapped_kernels(file(files.ntk_train), file(files.nngp_train), "--ntk-train", "--nngp-train");
  problem.test_train =
      distributed::mapped_kernels(file(files.ntk_test), file(files.nngp_test), "--ntk-test", "--nngp-test");
  problem.test_test = distributed::mapped_kernels(nullptr, file(files.nngp_test_test), "", "--nngp-test-test");
  return solve(problem, y_train, times, mean, covariance, posterior_mean, posterior_covariance, flow, note);
}

}  // namespace emergent::cli::mpi
