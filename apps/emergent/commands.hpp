// Sub-commands of the `emergent` CLI. Each registers itself on the CLI11 app and returns the
// callback state it needs; main.cpp turns exceptions into one line on stderr and exit code 2.
#pragma once

#include <CLI/CLI.hpp>

namespace emergent::cli {

void add_kernel_command(CLI::App& app);

}  // namespace emergent::cli
