// `emergent predict`: closed-form mean and covariance of an infinitely wide ensemble trained by
// gradient flow (conventions §3; Lee et al. 2019 Eqs. 14–16), and the NNGP posterior.
#include <chrono>
#include <iostream>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "emergent/architecture.hpp"
#include "emergent/gradient_flow.hpp"
#include "emergent/memory.hpp"
#include "emergent/npy.hpp"
#include "io.hpp"

namespace emergent::cli {
namespace {

struct PredictArgs {
  std::string arch, train_x, train_y, test_x, times = "0,inf";
  double lr = 1.0, diag_reg = 0.0;
  bool diag_reg_relative = false;
  std::string mean, cov, posterior_mean, posterior_cov;
  std::string memory_cap = "25%";
  int threads = 0;
  bool quiet = false;
};

void run_predict(const PredictArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  for (const auto& [flag, path] : {std::pair{"--mean", a.mean}, {"--cov", a.cov}, {"--posterior-mean", a.posterior_mean},
                                   {"--posterior-cov", a.posterior_cov}})
    if (!path.empty()) check_output_path(flag, path);
  const std::vector<double> times = parse_times("--times", a.times);
  const Architecture arch = Architecture::parse(a.arch);
  const Inputs x = load_inputs("--train-x", a.train_x);
  const Inputs z = load_inputs("--test-x", a.test_x);
  if (!(z.shape == x.shape))
    throw std::invalid_argument("--test-x '" + a.test_x + "' holds examples of shape " + z.shape.to_string() +
                                " but --train-x holds " + x.shape.to_string() + "; expected the same example shape");
  const RowMatrix y = load_targets("--train-y", a.train_y, x.count());
  if (y.cols() != arch.outputs())
    throw std::invalid_argument("--train-y '" + a.train_y + "' has " + std::to_string(y.cols()) +
                                " output column(s) but the architecture has " + std::to_string(arch.outputs()) +
                                " outputs (the width of its last dense/conv layer); expected them to match");
  GradientFlowOptions gopt;
  gopt.learning_rate = a.lr;
  gopt.diag_reg = a.diag_reg;
  gopt.diag_reg_relative = a.diag_reg_relative;
  gopt.threads = a.threads;
  if (std::string why; !gopt.IsValid(&why)) {
    if (why.rfind("learning_rate", 0) == 0) why = "--lr" + why.substr(13);
    else if (why.rfind("diag_reg", 0) == 0) why = "--diag-reg" + why.substr(8);
    throw std::invalid_argument(why);
  }
  const KernelOptions kopt = kernel_options(a.memory_cap, a.threads, 0);
  const bool need_cov = !a.cov.empty() || !a.posterior_cov.empty();
  const Kernels train = kernels(arch, x, kopt);
  const Kernels cross = kernels(arch, z, x, kopt);
  Kernels test;
  if (need_cov) test = kernels(arch, z, kopt);

  const std::size_t nt = times.size(), n = static_cast<std::size_t>(z.count()), k = static_cast<std::size_t>(y.cols());
  std::ostringstream note;
  if (!a.mean.empty() || !a.cov.empty()) {
    const GradientFlow flow(train.ntk, train.nngp, y, gopt);
    note << "Θ(X,X): " << flow.summary().to_string();
    if (!a.mean.empty()) {
      const auto mean = stack(flow.mean(times, cross.ntk));
      check_finite("ensemble mean", mean.data(), mean.size());
      write_npy(a.mean, {nt, n, k}, mean.data());
    }
    if (!a.cov.empty()) {
      const auto cov = stack(flow.covariance(times, cross.ntk, cross.nngp, test.nngp));
      check_finite("ensemble covariance", cov.data(), cov.size());
      write_npy(a.cov, {nt, n, n}, cov.data());
    }
  }
  if (!a.posterior_mean.empty() || !a.posterior_cov.empty()) {
    const NngpPosterior posterior(train.nngp, y, gopt);
    note << (note.str().empty() ? "" : "; ") << "K(X,X): " << posterior.summary().to_string();
    if (!a.posterior_mean.empty()) {
      const RowMatrix m = posterior.mean(cross.nngp);
      check_finite("NNGP posterior mean", m.data(), static_cast<std::size_t>(m.size()));
      write_npy(a.posterior_mean, {n, k}, m.data());
    }
    if (!a.posterior_cov.empty()) {
      const RowMatrix c = posterior.covariance(cross.nngp, test.nngp);
      check_finite("NNGP posterior covariance", c.data(), static_cast<std::size_t>(c.size()));
      write_npy(a.posterior_cov, {n, n}, c.data());
    }
  }
  if (a.mean.empty() && a.cov.empty() && a.posterior_mean.empty() && a.posterior_cov.empty())
    throw std::invalid_argument("no output requested; give --mean M.npy (and optionally --cov, --posterior-mean, --posterior-cov)");
  if (a.quiet) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "predict: " << x.count() << " training points, " << z.count() << " test points, " << k << " output(s), "
            << nt << " time(s); " << note.str() << "; " << seconds << " s, peak " << format_bytes(peak_rss_bytes())
            << std::endl;
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand("predict", "Closed-form gradient-flow mean and covariance of an infinite ensemble");
  cmd->footer(
      "Time t counts gradient-descent steps of size --lr on the loss ½·(1/(N·k))·Σ‖f(x_i) − y_i‖²\n"
      "(Neural Tangents' gradient_descent_mse_ensemble). Outputs: --mean (n_times, N_test, k),\n"
      "--cov (n_times, N_test, N_test); --posterior-mean/--posterior-cov give exact Bayesian inference\n"
      "with the NNGP kernel (t = ∞ of Bayesian training), (N_test, k) and (N_test, N_test).\n"
      "\n"
      "Example:\n"
      "  emergent predict --arch 'dense(512) relu dense(1)' --train-x X.npy --train-y Y.npy \\\n"
      "      --test-x Z.npy --times 0,10,100,inf --mean M.npy --cov C.npy");
  cmd->add_option("--arch", args->arch, "Architecture spec")->required();
  cmd->add_option("--train-x", args->train_x, "Training inputs X.npy: (N, d) or (N, H, W, C)")->required();
  cmd->add_option("--train-y", args->train_y, "Training targets Y.npy: (N,) or (N, k)")->required();
  cmd->add_option("--test-x", args->test_x, "Test inputs Z.npy")->required();
  cmd->add_option("--times", args->times, "Times in steps, e.g. 0,1.5,10,inf")->capture_default_str();
  cmd->add_option("--lr", args->lr, "Learning rate η")->capture_default_str();
  cmd->add_option("--diag-reg", args->diag_reg, "Diagonal regulariser λ added to Θ(X,X) (absolute)")->capture_default_str();
  cmd->add_flag("--diag-reg-relative", args->diag_reg_relative, "Scale --diag-reg by tr(Θ)/N as Neural Tangents does");
  cmd->add_option("--mean", args->mean, "Output: ensemble mean (n_times, N_test, k)");
  cmd->add_option("--cov", args->cov, "Output: ensemble covariance (n_times, N_test, N_test)");
  cmd->add_option("--posterior-mean", args->posterior_mean, "Output: NNGP posterior mean (N_test, k)");
  cmd->add_option("--posterior-cov", args->posterior_cov, "Output: NNGP posterior covariance (N_test, N_test)");
  cmd->add_option("--memory-cap", args->memory_cap, "Memory cap for the kernels: 4G, 512M or 25%")->capture_default_str();
  cmd->add_option("--threads", args->threads, "OpenMP threads (0: default); results do not depend on it");
  cmd->add_flag("-q,--quiet", args->quiet, "Do not print the summary line on stderr");
  cmd->callback([args] { run_predict(*args); });
}

}  // namespace emergent::cli
