// `emergent predict`: closed-form mean and covariance of an infinitely wide ensemble trained by
// gradient flow (docs/conventions.md §3; Lee et al. 2019 Eqs. 14–16), and the NNGP posterior.
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "commands.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"
#include "emergent/dynamics/orbit_flow.hpp"
#include "emergent/core/memory.hpp"
#include "emergent/data/npy.hpp"
#include "distributed/mpi.hpp"
#include "support/io.hpp"

namespace emergent::cli {
namespace {

struct PredictArgs : TrainingFiles {
  std::string times = "0,inf";
  double lr = 1.0, diag_reg = 0.0;
  bool diag_reg_relative = false;
  std::string mean, cov, posterior_mean, posterior_cov;
  std::string memory_cap = "25%";
  std::string augment, route = "auto";
  int threads = 0;
  bool quiet = false;
};

void run_predict(const PredictArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  for (const auto& [flag, path] : {std::pair{"--mean", a.mean}, {"--cov", a.cov}, {"--posterior-mean", a.posterior_mean},
                                   {"--posterior-cov", a.posterior_cov}})
    if (!path.empty()) check_output_path(flag, path);
  const std::vector<double> times = parse_times("--times", a.times);
  const TrainingData data = load_training_data(a, TargetColumns::ArchitectureOutputs);
  const Architecture& arch = data.arch;
  const Inputs &x = data.x, &z = data.z;
  const RowMatrix& y = data.y;
  const GradientFlowOptions gopt = flow_options(a.lr, a.diag_reg, a.diag_reg_relative, a.threads);
  const KernelOptions kopt = kernel_options(a.memory_cap, a.threads, 0);
  const std::size_t nt = times.size(), n = static_cast<std::size_t>(z.count()), k = static_cast<std::size_t>(y.cols());
  if (a.mean.empty() && a.cov.empty() && a.posterior_mean.empty() && a.posterior_cov.empty())
    throw std::invalid_argument("no output requested; give --mean M.npy (and optionally --cov, --posterior-mean, --posterior-cov)");
  std::ostringstream note;

  // --augment: train on the full orbit with invariant targets (ρ_Y trivial), by the fastest exact
  // route of orbit_flow.hpp (group Fourier blocks, group-averaged kernel, or the dense augmented set).
  if (!a.augment.empty() && a.route != "auto" && a.route != "dense" && a.route != "fourier" && a.route != "averaged")
    throw std::invalid_argument("--route '" + a.route + "': expected auto, dense, fourier or averaged");
  if (a.augment.empty() && a.route != "auto")
    throw std::invalid_argument("--route '" + a.route + "' needs --augment GROUP");
  std::optional<Representation> rho;
  if (!a.augment.empty()) {
    try {
      rho = make_group(a.augment, x.shape);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--augment: ") + e.what());
    }
  }
  if (n == 0) {  // no test points: every output is empty, with the documented shape
    if (!mpi::prints()) return;  // under mpirun, rank 0 writes
    if (!a.mean.empty()) write_npy(a.mean, {nt, 0, k}, nullptr);
    if (!a.cov.empty()) write_npy(a.cov, {nt, 0, 0}, nullptr);
    if (!a.posterior_mean.empty()) write_npy(a.posterior_mean, {0, k}, nullptr);
    if (!a.posterior_cov.empty()) write_npy(a.posterior_cov, {0, 0}, nullptr);
    if (!a.quiet) std::cerr << "predict: 0 test points: wrote empty outputs" << std::endl;
    return;
  }
  // Under mpirun the orbit routes run on rank 0 alone (one process).
  if (rho && (!a.mean.empty() || !a.cov.empty()) && mpi::prints()) {
    const Representation rho_y = trivial_output(*rho, static_cast<int>(k));
    OrbitFlowOptions oopt;
    oopt.kernel = kopt;
    oopt.flow = gopt;
    oopt.route = a.route == "dense"     ? OrbitRoute::Dense
                 : a.route == "fourier" ? OrbitRoute::Fourier
                 : a.route == "averaged" ? OrbitRoute::Averaged
                                         : OrbitRoute::Automatic;
    const OrbitFlowResult pred = predict_augmented(arch, x, y, z, *rho, rho_y, times, !a.cov.empty(), oopt);
    note << "augmented with " << rho->to_string() << ", " << pred.to_string();
    if (!a.mean.empty()) {
      const auto mean = stack(pred.mean);
      check_finite("ensemble mean", mean.data(), mean.size());
      write_npy(a.mean, {nt, n, k}, mean.data());
    }
    if (!a.cov.empty()) {
      const auto cov = stack(pred.covariance);
      check_finite("ensemble covariance", cov.data(), cov.size());
      write_npy(a.cov, {nt, n, n}, cov.data());
    }
  }
  // Everything else works on the explicit training set (augmented if asked: the NNGP posterior).
  Inputs xt = x;
  RowMatrix yt = y;
  if (rho && (!a.posterior_mean.empty() || !a.posterior_cov.empty())) {
    AugmentedSet aug = augment(x, y, *rho, trivial_output(*rho, static_cast<int>(k)));
    xt = std::move(aug.x);
    yt = std::move(aug.y);
  }
  const bool plain_flow = !rho && (!a.mean.empty() || !a.cov.empty());
  const bool want_posterior = !a.posterior_mean.empty() || !a.posterior_cov.empty();
  if (mpi::active() && (plain_flow || want_posterior)) {
    // mpirun: the kernels block-cyclic over the ranks, ScaLAPACK's eigensolver (distributed/mpi.hpp).
    std::string mpi_note;
    const mpi::PredictOutputs r =
        mpi::predict(arch, xt, yt, z, times, plain_flow && !a.mean.empty(), plain_flow && !a.cov.empty(),
                     !a.posterior_mean.empty(), !a.posterior_cov.empty(), gopt, kopt, mpi_note);
    note << (note.str().empty() ? "" : "; ") << mpi_note;
    if (mpi::prints()) {
      const std::vector<std::pair<std::string, std::pair<const char*, std::vector<double>>>> outputs = {
          {a.mean, {"ensemble mean", stack(r.mean)}},
          {a.cov, {"ensemble covariance", stack(r.covariance)}},
          {a.posterior_mean, {"NNGP posterior mean", stack({r.posterior_mean})}},
          {a.posterior_cov, {"NNGP posterior covariance", stack({r.posterior_covariance})}}};
      const std::vector<std::vector<std::size_t>> shapes = {{nt, n, k}, {nt, n, n}, {n, k}, {n, n}};
      for (std::size_t i = 0; i < outputs.size(); ++i) {
        const auto& [path, named] = outputs[i];
        if (path.empty() || (i < 2 && !plain_flow)) continue;
        check_finite(named.first, named.second.data(), named.second.size());
        write_npy(path, shapes[i], named.second.data());
      }
    }
  }
  Kernels train, cross, test;
  if (!mpi::active() && (plain_flow || want_posterior)) {
    train = kernels(arch, xt, kopt);
    cross = kernels(arch, z, xt, kopt);
    if ((plain_flow && !a.cov.empty()) || !a.posterior_cov.empty()) test = kernels(arch, z, kopt);
  }
  if (plain_flow && !mpi::active()) {
    // K(X,X) only when a covariance is asked for: the flow then skips its Vᵀ·K·V projection.
    const GradientFlow flow(train.ntk, a.cov.empty() ? Eigen::MatrixXd() : train.nngp, y, gopt);
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
  if (want_posterior && !mpi::active()) {
    const NngpPosterior posterior(train.nngp, yt, gopt);
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
  if (a.quiet || !mpi::prints()) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "predict: " << x.count() << " training points" << (rho ? " (before augmentation)" : "") << ", " << z.count()
            << " test points, " << k << " output(s), "
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
      "      --test-x Z.npy --times 0,10,100,inf --mean M.npy --cov C.npy\n"
      "\n"
      "--augment GROUP trains on the full orbit {(ρ(g)x_i, y_i)} (invariant targets) without forming\n"
      "the |G|·N-point Gram matrix when it can: abelian exact groups (c4, flip, translations, sign,\n"
      "cyclic, rot2(K)) split into |G| blocks of size N by the group Fourier transform; d4 with --mean\n"
      "only uses the group-averaged kernel on the N base points; rot(K), d4 with --cov and kernels\n"
      "that are not invariant use the dense augmented solve. The summary line names the route.\n"
      "  emergent predict --arch 'conv(64, 3x3, padding=circular) relu flatten dense(1)' \\\n"
      "      --train-x X.npy --train-y Y.npy --test-x Z.npy --augment translations --mean M.npy");
  add_training_options(cmd, *args, "Training targets Y.npy: (N,) or (N, k)");
  cmd->add_option("--times", args->times, "Times in steps, e.g. 0,1.5,10,inf")->capture_default_str();
  cmd->add_option("--lr", args->lr, "Learning rate η")->capture_default_str();
  cmd->add_option("--diag-reg", args->diag_reg, "Diagonal regularizer λ added to Θ(X,X) (absolute)")->capture_default_str();
  cmd->add_flag("--diag-reg-relative", args->diag_reg_relative, "Scale --diag-reg by tr(Θ)/N as Neural Tangents does");
  cmd->add_option("--mean", args->mean, "Output: ensemble mean (n_times, N_test, k)");
  cmd->add_option("--cov", args->cov, "Output: ensemble covariance (n_times, N_test, N_test)");
  cmd->add_option("--posterior-mean", args->posterior_mean, "Output: NNGP posterior mean (N_test, k)");
  cmd->add_option("--posterior-cov", args->posterior_cov, "Output: NNGP posterior covariance (N_test, N_test)");
  cmd->add_option("--augment", args->augment,
                  "Train on the full orbit under GROUP: c4, d4, flip, translations, rot(K), sign, cyclic, rot2(K) "
                  "or G.npy (|G|, d, d)");
  cmd->add_option("--route", args->route, "With --augment: auto (fastest exact), dense, fourier or averaged")
      ->capture_default_str();
  cmd->add_option("--memory-cap", args->memory_cap, "Memory cap for the kernels: 4G, 512M or 25%")->capture_default_str();
  cmd->add_option("--threads", args->threads, "OpenMP threads (0: default); results do not depend on it");
  cmd->add_flag("-q,--quiet", args->quiet, "Do not print the summary line on stderr");
  cmd->callback([args] { run_predict(*args); });
}

}  // namespace emergent::cli
