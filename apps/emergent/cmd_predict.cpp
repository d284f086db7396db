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
#include "support/kernel_matrices.hpp"

namespace emergent::cli {
namespace {

struct PredictArgs : TrainingFiles {
  std::string times = "0,inf";
  double lr = 1.0, diag_reg = 0.0;
  bool diag_reg_relative = false;
  std::string mean, cov, posterior_mean, posterior_cov;
  std::string memory_cap = "25%";
  std::string augment, route = "auto", output_rep;
  int threads = 0;
  bool quiet = false;
  KernelFiles kernel_files;  // --ntk-train …: precomputed kernels instead of --arch/--train-x/--test-x
};

// The kernels every output below is computed from, however they were obtained.
struct KernelSet {
  const Eigen::MatrixXd &ntk_train, &nngp_train, &ntk_test, &nngp_test, &nngp_test_test;
};

void check_outputs_requested(const PredictArgs& a) {
  if (a.mean.empty() && a.cov.empty() && a.posterior_mean.empty() && a.posterior_cov.empty())
    throw std::invalid_argument("no output requested; give --mean M.npy (and optionally --cov, --posterior-mean, --posterior-cov)");
}

// No test points: every output is empty, with the documented shape.
void write_empty_outputs(const PredictArgs& a, std::size_t nt, std::size_t k) {
  if (!a.mean.empty()) write_npy(a.mean, {nt, 0, k}, nullptr);
  if (!a.cov.empty()) write_npy(a.cov, {nt, 0, 0}, nullptr);
  if (!a.posterior_mean.empty()) write_npy(a.posterior_mean, {0, k}, nullptr);
  if (!a.posterior_cov.empty()) write_npy(a.posterior_cov, {0, 0}, nullptr);
  if (!a.quiet) std::cerr << "predict: 0 test points: wrote empty outputs" << std::endl;
}

// --mean and --cov of the plain gradient flow (docs/conventions.md §3) from Θ and K.
void write_flow_outputs(const PredictArgs& a, const KernelSet& k, const RowMatrix& y, const std::vector<double>& times,
                        const GradientFlowOptions& gopt, std::ostringstream& note) {
  const std::size_t nt = times.size(), n = static_cast<std::size_t>(k.ntk_test.rows()),
                    outs = static_cast<std::size_t>(y.cols());
  // K(X,X) only when a covariance is asked for: the flow then skips its Vᵀ·K·V projection.
  const GradientFlow flow(k.ntk_train, a.cov.empty() ? Eigen::MatrixXd() : k.nngp_train, y, gopt);
  note << "Θ(X,X): " << flow.summary().to_string();
  if (!a.mean.empty()) {
    const auto mean = stack(flow.mean(times, k.ntk_test));
    check_finite("ensemble mean", mean.data(), mean.size());
    write_npy(a.mean, {nt, n, outs}, mean.data());
  }
  if (!a.cov.empty()) {
    note << "; covariance factor of Vᵀ·K(X,X)·V: " << flow.covariance_factor().to_string();
    const auto cov = stack(flow.covariance(times, k.ntk_test, k.nngp_test, k.nngp_test_test));
    check_finite("ensemble covariance", cov.data(), cov.size());
    write_npy(a.cov, {nt, n, n}, cov.data());
  }
}

// --posterior-mean and --posterior-cov: exact NNGP inference from K.
void write_posterior_outputs(const PredictArgs& a, const KernelSet& k, const RowMatrix& y,
                             const GradientFlowOptions& gopt, std::ostringstream& note) {
  if (a.posterior_mean.empty() && a.posterior_cov.empty()) return;
  const std::size_t n = static_cast<std::size_t>(k.nngp_test.rows()), outs = static_cast<std::size_t>(y.cols());
  const NngpPosterior posterior(k.nngp_train, y, gopt);
  note << (note.str().empty() ? "" : "; ") << "K(X,X): " << posterior.summary().to_string();
  if (!a.posterior_mean.empty()) {
    const RowMatrix m = posterior.mean(k.nngp_test);
    check_finite("NNGP posterior mean", m.data(), static_cast<std::size_t>(m.size()));
    write_npy(a.posterior_mean, {n, outs}, m.data());
  }
  if (!a.posterior_cov.empty()) {
    const RowMatrix c = posterior.covariance(k.nngp_test, k.nngp_test_test);
    check_finite("NNGP posterior covariance", c.data(), static_cast<std::size_t>(c.size()));
    write_npy(a.posterior_cov, {n, n}, c.data());
  }
}

// Under mpirun: the gathered results, written by rank 0 as the single-process command writes them.
void write_distributed_outputs(const PredictArgs& a, const mpi::PredictOutputs& r, std::size_t nt, std::size_t n,
                               std::size_t k, bool flow) {
  if (!mpi::prints()) return;
  const std::vector<std::pair<std::string, std::pair<const char*, std::vector<double>>>> outputs = {
      {a.mean, {"ensemble mean", stack(r.mean)}},
      {a.cov, {"ensemble covariance", stack(r.covariance)}},
      {a.posterior_mean, {"NNGP posterior mean", stack({r.posterior_mean})}},
      {a.posterior_cov, {"NNGP posterior covariance", stack({r.posterior_covariance})}}};
  const std::vector<std::vector<std::size_t>> shapes = {{nt, n, k}, {nt, n, n}, {n, k}, {n, n}};
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& [path, named] = outputs[i];
    if (path.empty() || (i < 2 && !flow)) continue;
    check_finite(named.first, named.second.data(), named.second.size());
    write_npy(path, shapes[i], named.second.data());
  }
}

// predict from precomputed kernels (--ntk-train, --nngp-train, --ntk-test, --nngp-test,
// --nngp-test-test; docs/cli.md): the same solve as from inputs, on the matrices of the files.
void run_predict_from_kernels(const PredictArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  for (const auto& [flag, value] : {std::pair{"--arch", a.arch}, {"--train-x", a.train_x}, {"--test-x", a.test_x},
                                    {"--augment", a.augment}, {"--output-rep", a.output_rep}})
    if (!value.empty())
      throw std::invalid_argument(std::string(flag) + " '" + value +
                                  "' was given with precomputed kernels (--ntk-train …); expected either the kernels "
                                  "or --arch/--train-x/--test-x, not both" +
                                  (std::string(flag) == "--augment" || std::string(flag) == "--output-rep"
                                       ? std::string(" (") + flag + " needs the inputs to act on)"
                                       : std::string()));
  if (a.route != "auto") throw std::invalid_argument("--route '" + a.route + "' needs --augment GROUP");
  for (const auto& [flag, path] : {std::pair{"--mean", a.mean}, {"--cov", a.cov}, {"--posterior-mean", a.posterior_mean},
                                   {"--posterior-cov", a.posterior_cov}})
    if (!path.empty()) check_output_path(flag, path);
  check_outputs_requested(a);
  const std::vector<double> times = parse_times("--times", a.times);
  const GradientFlowOptions gopt = flow_options(a.lr, a.diag_reg, a.diag_reg_relative, a.threads);
  KernelNeeds needs;
  needs.flow_mean = !a.mean.empty();
  needs.flow_cov = !a.cov.empty();
  needs.posterior_mean = !a.posterior_mean.empty();
  needs.posterior_cov = !a.posterior_cov.empty();
  if (mpi::active()) {
    // mpirun: each rank maps the files and reads only its block-cyclic blocks (distributed/mpi.hpp).
    const MappedKernelMatrices files = open_kernel_matrices(a.kernel_files, needs);
    if (files.n_train == 0) throw std::invalid_argument("the training kernels are 0 × 0; expected at least one training point");
    const RowMatrix y = load_targets("--train-y", a.train_y, files.n_train);
    const std::size_t k = static_cast<std::size_t>(y.cols()), n = static_cast<std::size_t>(files.n_test);
    if (files.n_test == 0) {
      if (mpi::prints()) write_empty_outputs(a, times.size(), k);
      return;
    }
    std::string note;
    const mpi::PredictOutputs r =
        mpi::predict_from_kernels(files, y, times, needs.flow_mean, needs.flow_cov, needs.posterior_mean,
                                  needs.posterior_cov, gopt, note);
    write_distributed_outputs(a, r, times.size(), n, k, needs.flow_mean || needs.flow_cov);
    if (a.quiet || !mpi::prints()) return;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << "predict: precomputed kernels, " << files.n_train << " training points, " << files.n_test
              << " test points, " << k << " output(s), " << times.size() << " time(s); " << note << "; " << seconds
              << " s, peak " << format_bytes(peak_rss_bytes()) << " (rank 0)" << std::endl;
    return;
  }
  const KernelMatrices k = load_kernel_matrices(a.kernel_files, needs);
  if (k.n_train == 0) throw std::invalid_argument("the training kernels are 0 × 0; expected at least one training point");
  const RowMatrix y = load_targets("--train-y", a.train_y, k.n_train);
  if (k.n_test == 0) return write_empty_outputs(a, times.size(), static_cast<std::size_t>(y.cols()));
  const KernelSet set{k.ntk_train, k.nngp_train, k.ntk_test, k.nngp_test, k.nngp_test_test};
  std::ostringstream note;
  if (needs.flow_mean || needs.flow_cov) write_flow_outputs(a, set, y, times, gopt, note);
  write_posterior_outputs(a, set, y, gopt, note);
  if (a.quiet) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "predict: precomputed kernels, " << k.n_train << " training points, " << k.n_test << " test points, "
            << y.cols() << " output(s), " << times.size() << " time(s); " << note.str() << "; " << seconds
            << " s, peak " << format_bytes(peak_rss_bytes()) << std::endl;
}

void run_predict(const PredictArgs& a) {
  if (a.kernel_files.any()) return run_predict_from_kernels(a);
  for (const auto& [flag, value] : {std::pair{"--arch", a.arch}, {"--train-x", a.train_x}, {"--test-x", a.test_x}})
    if (value.empty())
      throw std::invalid_argument(std::string("missing ") + flag +
                                  ": give --arch, --train-x, --train-y and --test-x, or precomputed kernels "
                                  "(--ntk-train, --nngp-train, --ntk-test, --nngp-test, --nngp-test-test) and --train-y");
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
  check_outputs_requested(a);
  std::ostringstream note;

  // --augment: train on the full orbit {(ρ(g)x_i, ρ_Y(g)y_i)} (ρ_Y trivial unless --output-rep), by the fastest exact
  // route of orbit_flow.hpp (group Fourier blocks, group-averaged kernel, or the dense augmented set).
  if (!a.augment.empty() && a.route != "auto" && a.route != "dense" && a.route != "fourier" && a.route != "averaged")
    throw std::invalid_argument("--route '" + a.route + "': expected auto, dense, fourier or averaged");
  if (a.augment.empty() && a.route != "auto")
    throw std::invalid_argument("--route '" + a.route + "' needs --augment GROUP");
  if (a.augment.empty() && !a.output_rep.empty())
    throw std::invalid_argument("--output-rep '" + a.output_rep + "' needs --augment GROUP (it is the targets' action)");
  std::optional<Representation> rho, rho_y;
  if (!a.augment.empty()) {
    try {
      rho = make_group(a.augment, x.shape);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--augment: ") + e.what());
    }
    try {
      rho_y = make_output_rep(a.output_rep.empty() ? "trivial" : a.output_rep, *rho,
                              ExampleShape::vector(static_cast<int>(k)));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--output-rep: ") + e.what());
    }
  }
  if (n == 0) {
    if (!mpi::prints()) return;  // under mpirun, rank 0 writes
    return write_empty_outputs(a, nt, k);
  }
  // Under mpirun the orbit routes run on rank 0 alone (one process).
  if (rho && (!a.mean.empty() || !a.cov.empty()) && mpi::prints()) {
    OrbitFlowOptions oopt;
    oopt.kernel = kopt;
    oopt.flow = gopt;
    oopt.route = a.route == "dense"     ? OrbitRoute::Dense
                 : a.route == "fourier" ? OrbitRoute::Fourier
                 : a.route == "averaged" ? OrbitRoute::Averaged
                                         : OrbitRoute::Automatic;
    const OrbitFlowResult pred = predict_augmented(arch, x, y, z, *rho, *rho_y, times, !a.cov.empty(), oopt);
    note << "augmented with " << rho->to_string() << " (outputs: " << rho_y->name() << "), " << pred.to_string();
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
    AugmentedSet aug = augment(x, y, *rho, *rho_y);
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
    write_distributed_outputs(a, r, nt, n, k, plain_flow);
  }
  Kernels train, cross, test;
  if (!mpi::active() && (plain_flow || want_posterior)) {
    train = kernels(arch, xt, kopt);
    cross = kernels(arch, z, xt, kopt);
    if ((plain_flow && !a.cov.empty()) || !a.posterior_cov.empty()) test = kernels(arch, z, kopt);
  }
  if (!mpi::active()) {
    const KernelSet set{train.ntk, train.nngp, cross.ntk, cross.nngp, test.nngp};
    if (plain_flow) write_flow_outputs(a, set, y, times, gopt, note);
    write_posterior_outputs(a, set, yt, gopt, note);
  }
  if (a.quiet || !mpi::prints()) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "predict: " << x.count() << " training points" << (rho ? " (before augmentation)" : "") << ", " << z.count()
            << " test points, " << k << " output(s), "
            << nt << " time(s); " << note.str() << "; " << seconds << " s, peak " << format_bytes(peak_rss_bytes())
            << std::endl;
}

// Precomputed kernels in place of --arch/--train-x/--test-x (which then are not required).
void add_kernel_file_options(CLI::App* cmd, KernelFiles& files) {
  for (const char* name : {"--arch", "--train-x", "--test-x"}) cmd->get_option(name)->required(false);
  cmd->add_option("--ntk-train", files.ntk_train, "Precomputed Θ(X,X) (N, N) .npy instead of --arch/--train-x/--test-x");
  cmd->add_option("--nngp-train", files.nngp_train, "Precomputed K(X,X) (N, N) .npy (for --cov and --posterior-*)");
  cmd->add_option("--ntk-test", files.ntk_test, "Precomputed Θ(x,X) (N_test, N) .npy (for --mean and --cov)");
  cmd->add_option("--nngp-test", files.nngp_test, "Precomputed K(x,X) (N_test, N) .npy (for --cov and --posterior-*)");
  cmd->add_option("--nngp-test-test", files.nngp_test_test,
                  "Precomputed K(x,x) (N_test, N_test) .npy (for --cov and --posterior-cov)");
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
      "      --train-x X.npy --train-y Y.npy --test-x Z.npy --augment translations --mean M.npy\n"
      "--output-rep REP makes the targets equivariant instead: the orbit is {(ρ(g)x_i, ρ_Y(g)y_i)} with\n"
      "ρ_Y = sign, regular, rotation (rot2(K): 2-D, cube/icosahedron: 3-D) or R.npy (|G|, k, k),\n"
      "checked to be orthogonal and a homomorphism (docs/conventions.md §5); e.g. x × y:\n"
      "  emergent predict --arch 'dense(512) relu dense(3)' --train-x XY.npy --train-y C.npy \\\n"
      "      --test-x Z.npy --augment cube --output-rep rotation --mean M.npy\n"
      "\n"
      "Precomputed kernels (Neural Tangents' k_train_train, k_test_train, k_test_test; memory-mapped,\n"
      "'<f8' or '<f4') replace --arch/--train-x/--test-x: --mean needs --ntk-train and --ntk-test;\n"
      "--cov also --nngp-train, --nngp-test and --nngp-test-test; --posterior-mean needs --nngp-train\n"
      "and --nngp-test, --posterior-cov also --nngp-test-test. Test kernels are (N_test, N), as\n"
      "`emergent kernel --x1 Z.npy --x2 X.npy` writes them.\n"
      "  emergent kernel --arch A --x1 X.npy --nngp K.npy --ntk T.npy\n"
      "  emergent kernel --arch A --x1 Z.npy --x2 X.npy --nngp Kx.npy --ntk Tx.npy\n"
      "  emergent kernel --arch A --x1 Z.npy --nngp Kxx.npy\n"
      "  emergent predict --ntk-train T.npy --nngp-train K.npy --ntk-test Tx.npy --nngp-test Kx.npy \\\n"
      "      --nngp-test-test Kxx.npy --train-y Y.npy --times 0,10,inf --mean M.npy --cov C.npy");
  add_training_options(cmd, *args, "Training targets Y.npy: (N,) or (N, k)");
  add_kernel_file_options(cmd, args->kernel_files);
  cmd->add_option("--times", args->times, "Times in steps, e.g. 0,1.5,10,inf")->capture_default_str();
  cmd->add_option("--lr", args->lr, "Learning rate η")->capture_default_str();
  cmd->add_option("--diag-reg", args->diag_reg, "Diagonal regularizer λ added to Θ(X,X) (absolute)")->capture_default_str();
  cmd->add_flag("--diag-reg-relative", args->diag_reg_relative, "Scale --diag-reg by tr(Θ)/N as Neural Tangents does");
  cmd->add_option("--mean", args->mean, "Output: ensemble mean (n_times, N_test, k)");
  cmd->add_option("--cov", args->cov, "Output: ensemble covariance (n_times, N_test, N_test)");
  cmd->add_option("--posterior-mean", args->posterior_mean, "Output: NNGP posterior mean (N_test, k)");
  cmd->add_option("--posterior-cov", args->posterior_cov, "Output: NNGP posterior covariance (N_test, N_test)");
  cmd->add_option("--augment", args->augment,
                  "Train on the full orbit under GROUP: c4, d4, flip, translations, rot(K), sign, cyclic, rot2(K), "
                  "cube, icosahedron or G.npy (|G|, d, d)");
  cmd->add_option("--output-rep", args->output_rep,
                  "With --augment: the targets' action ρ_Y: trivial (default), sign, regular, rotation or R.npy "
                  "(|G|, k, k)");
  cmd->add_option("--route", args->route, "With --augment: auto (fastest exact), dense, fourier or averaged")
      ->capture_default_str();
  cmd->add_option("--memory-cap", args->memory_cap, "Memory cap for the kernels: 4G, 512M or 25%")->capture_default_str();
  cmd->add_option("--threads", args->threads, "OpenMP threads (0: default); results do not depend on it");
  cmd->add_flag("-q,--quiet", args->quiet, "Do not print the summary line on stderr");
  cmd->callback([args] { run_predict(*args); });
}

}  // namespace emergent::cli
