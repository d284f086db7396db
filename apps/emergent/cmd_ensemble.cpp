// `emergent ensemble`: members of an ensemble, either finite-width networks trained by gradient
// descent (ensemble.hpp) or linearized infinite-width members (gradient_flow.hpp).
#include <chrono>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/networks/ensemble.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/core/memory.hpp"
#include "emergent/data/npy.hpp"
#include "support/io.hpp"

namespace emergent::cli {
namespace {

struct EnsembleArgs : TrainingFiles {
  std::string checkpoints, out, loss = "mse";
  int members = 0, steps = 0, batch_size = 0, threads = 0;
  double lr = 1.0;
  std::string seed;
  bool linearized = false, quiet = false;
  std::string memory_cap = "25%";
};

void run_ensemble(const EnsembleArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  check_output_path("--out", a.out);
  const std::vector<int> checkpoints = parse_steps("--checkpoints", a.checkpoints);
  if (checkpoints.back() > a.steps)
    throw std::invalid_argument("--checkpoints: expected steps <= --steps " + std::to_string(a.steps) + ", got " +
                                std::to_string(checkpoints.back()));
  if (a.members < 1) throw std::invalid_argument("--members: expected >= 1, got " + std::to_string(a.members));
  if (!(a.lr > 0)) throw std::invalid_argument("--lr: expected > 0, got " + std::to_string(a.lr));
  const TrainingData data = load_training_data(a, TargetColumns::NetworkOutputs);
  const Architecture& arch = data.arch;
  const Inputs &x = data.x, &z = data.z;
  const RowMatrix& y = data.y;
  std::vector<double> values;
  std::vector<std::size_t> shape;
  std::string kind;
  if (a.linearized) {
    if (a.batch_size != 0 || a.loss != "mse")
      throw std::invalid_argument("--linearized members follow gradient flow on the MSE loss; --batch-size and --loss "
                                  "apply only to finite-width members");
    const KernelOptions kopt = kernel_options(a.memory_cap, a.threads, 0);
    if (z.count() == 0) {  // no test points: (M, n_checkpoints, 0, k)
      write_npy(a.out, {static_cast<std::size_t>(a.members), checkpoints.size(), 0, static_cast<std::size_t>(y.cols())},
                nullptr);
      return;
    }
    const Kernels train = kernels(arch, x, kopt), cross = kernels(arch, z, x, kopt), test = kernels(arch, z, kopt);
    GradientFlowOptions gopt;
    gopt.learning_rate = a.lr;
    gopt.threads = a.threads;
    const GradientFlow flow(train.ntk, train.nngp, y, gopt);
    const std::vector<double> times(checkpoints.begin(), checkpoints.end());
    const LinearizedEnsemble e = flow.sample_members(times, cross.ntk, cross.nngp, test.nngp, a.members, parse_seed("--seed", a.seed));
    values = e.values;
    shape = e.shape();
    kind = "linearized infinite-width members; Θ(X,X): " + flow.summary().to_string();
  } else {
    TrainingOptions opt;
    opt.members = a.members;
    opt.steps = a.steps;
    opt.learning_rate = a.lr;
    opt.seed = parse_seed("--seed", a.seed);
    opt.checkpoints = checkpoints;
    opt.batch_size = a.batch_size;
    opt.threads = a.threads;
    if (a.loss == "mse") opt.loss = TrainingLoss::MeanSquaredError;
    else if (a.loss == "cross-entropy") opt.loss = TrainingLoss::SoftmaxCrossEntropy;
    else throw std::invalid_argument("--loss: expected mse or cross-entropy, got '" + a.loss + "'");
    Progress bar("training");
    EnsembleResult r = train_ensemble(arch, x, y, z, opt, [&](long d, long t) { bar(d, t); });
    values = std::move(r.predictions);
    shape = r.shape();
    kind = "finite-width members, " + std::string(a.batch_size ? "minibatch SGD" : "full-batch gradient descent");
  }
  check_finite("member predictions", values.data(), values.size());
  write_npy(a.out, shape, values.data());
  if (a.quiet) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "ensemble: " << a.members << " members, " << checkpoints.size() << " checkpoint(s), " << z.count()
            << " test points; " << kind << "; " << seconds << " s, peak " << format_bytes(peak_rss_bytes()) << " -> "
            << a.out << std::endl;
}

}  // namespace

void add_ensemble_command(CLI::App& app) {
  auto args = std::make_shared<EnsembleArgs>();
  CLI::App* cmd = app.add_subcommand("ensemble", "Train the members of an ensemble and record their predictions");
  cmd->footer(
      "Finite-width members (default) are the networks of --arch in the NTK parameterization, trained by\n"
      "full-batch gradient descent on ½·(1/(N·k))·Σ‖f − y‖², so step S is gradient-flow time t = S of\n"
      "`emergent predict`. --linearized draws exact infinite-width linearized members instead\n"
      "(f₀ ~ GP(0, K), then the linear gradient flow). Output P: (M, n_checkpoints, N_test, k).\n"
      "\n"
      "Example:\n"
      "  emergent ensemble --arch 'dense(1024) relu dense(1)' --train-x X.npy --train-y Y.npy \\\n"
      "      --test-x Z.npy --members 64 --steps 300 --lr 1 --seed 0 --checkpoints 0,100,300 --out P.npy");
  add_training_options(cmd, *args, "Training targets Y.npy: (N,) or (N, k)");
  cmd->add_option("--members", args->members, "Ensemble size M")->required();
  cmd->add_option("--steps", args->steps, "Gradient steps S")->required();
  cmd->add_option("--lr", args->lr, "Learning rate η")->required();
  cmd->add_option("--seed", args->seed, "Seed; member m uses a hash of (seed, m)")->required();
  cmd->add_option("--checkpoints", args->checkpoints, "Steps at which to record predictions, e.g. 0,100,300")->required();
  cmd->add_option("--out", args->out, "Output P.npy: (M, n_checkpoints, N_test, k)")->required();
  cmd->add_flag("--linearized,--linearised", args->linearized,
                "Linearized infinite-width members instead of finite networks (--linearised: the old spelling)");
  cmd->add_option("--batch-size", args->batch_size, "Minibatch size for SGD (0: full batch)")->capture_default_str();
  cmd->add_option("--loss", args->loss, "mse or cross-entropy (targets are class probabilities)")->capture_default_str();
  cmd->add_option("--memory-cap", args->memory_cap, "Memory cap for --linearized kernels")->capture_default_str();
  cmd->add_option("--threads", args->threads, "OpenMP threads over members (0: default); results do not depend on it");
  cmd->add_flag("-q,--quiet", args->quiet, "Do not print the summary line on stderr");
  cmd->callback([args] { run_ensemble(*args); });
}

}  // namespace emergent::cli
