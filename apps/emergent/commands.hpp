// Sub-commands of the `emergent` CLI. Each add_*_command registers one sub-command on the CLI11
// app and sets its callback; the callback does the work and reports failure by throwing.
// main.cpp turns every exception into one line on stderr ("emergent <cmd>: error: ...") and an
// exit code: 2 for std::invalid_argument (bad input: spec, .npy, options) and CLI11 usage
// errors, 1 for anything else (docs/conventions.md §4).
#pragma once

#include <CLI/CLI.hpp>

namespace emergent::cli {

/// `emergent kernel`: NNGP/NTK Gram matrices of an architecture to .npy (cmd_kernel.cpp).
void add_kernel_command(CLI::App& app);

/// `emergent bound`: ensemble-deviation bounds (cmd_bound.cpp).
void add_bound_command(CLI::App& app);

/// `emergent predict`: closed-form gradient-flow mean/covariance (cmd_predict.cpp).
void add_predict_command(CLI::App& app);

/// `emergent ensemble`: finite-width or linearized ensemble members (cmd_ensemble.cpp).
void add_ensemble_command(CLI::App& app);

/// `emergent verify`: theorem checks (cmd_verify.cpp).
void add_verify_command(CLI::App& app);

/// `emergent experiment`: the paper's experiments (cmd_experiment.cpp).
void add_experiment_command(CLI::App& app);
/// `emergent experiment fashion-mnist` (cmd_fashion_mnist.cpp), registered by add_experiment_command.
void add_fashion_mnist_experiment(CLI::App* experiment);
/// `emergent experiment cross-product` (cmd_cross_product.cpp), registered by add_experiment_command.
void add_cross_product_experiment(CLI::App* experiment);

/// `emergent demo`: the main job on a built-in example (cmd_demo.cpp).
void add_demo_command(CLI::App& app);

/// Every sub-command, in the order `emergent --help` lists them. main.cpp registers these;
/// a new sub-command adds its add_*_command above and one entry here.
inline constexpr void (*kAllCommands[])(CLI::App&) = {
    &add_kernel_command,
    &add_predict_command,
    &add_ensemble_command,
    &add_bound_command,
    &add_verify_command,
    &add_experiment_command,
    &add_demo_command,
};

}  // namespace emergent::cli
