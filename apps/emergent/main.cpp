// The `emergent` command line: builds the CLI11 app, registers the sub-commands of
// commands.hpp and maps every failure to one line on stderr plus an exit code
// (docs/conventions.md §4: 0 success, 2 bad input or usage, 1 internal failure). No stack traces.
// Exceptions are described by emergent::describe_failure, the same words the Python package uses.
#include <exception>
#include <iostream>
#include <new>
#include <stdexcept>
#include <string>

#include "commands.hpp"
#include "emergent/core/errors.hpp"
#include "distributed/mpi.hpp"
#include "support/io.hpp"
#include "support/phase_log.hpp"

#ifndef EMERGENT_VERSION
#define EMERGENT_VERSION "0.1.0"
#endif

namespace {

// "emergent kernel" (or "emergent bound ensemble"): the sub-commands the user selected.
std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  const CLI::App* current = &app;
  while (true) {
    const auto selected = current->get_subcommands();
    if (selected.empty()) break;
    current = selected.front();
    path += " " + current->get_name();
  }
  return path;
}

// One line: newlines in a message (e.g. from a library) must not break the one-line contract.
std::string one_line(std::string message) {
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  while (!message.empty() && message.back() == ' ') message.pop_back();
  return message;
}

int report(const CLI::App& app, std::string message, int code, bool usage_hint) {
  // Under mpirun: one error for the whole job, printed by rank 0 (distributed/mpi.hpp).
  if (!emergent::cli::mpi::agree_failure(message, code)) return code;
  const std::string cmd = command_path(app);
  std::cerr << cmd << ": error: " << one_line(message);
  if (usage_hint) std::cerr << " (run '" << cmd << " --help' for usage)";
  std::cerr << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  emergent::cli::phase_mark("main");
  emergent::cli::mpi::Session mpi(argc, argv);
  if (mpi.refused() >= 0) return mpi.refused();
  CLI::App app{
      "emergent: infinite-width NNGP/NTK kernels of MLPs and CNNs, closed-form gradient flow of wide\n"
      "ensembles and the emergent equivariance of deep ensembles (Gerken & Kessel, ICML 2024).",
      "emergent"};
  app.set_version_flag("--version", std::string("emergent ") + EMERGENT_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  for (auto add : emergent::cli::kAllCommands) add(app);

  // Staged outputs (io.hpp) become files only if the whole command succeeds.
  struct DiscardOnExit {
    ~DiscardOnExit() { emergent::cli::discard_outputs(); }
  } discard;
  try {
    app.parse(argc, argv);
    emergent::cli::commit_outputs();
    emergent::cli::mpi::agree_success();
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // unknown option, missing value, failed validator ...
    // CLI11 says "A subcommand is required" for `emergent frobnicate`: name the word instead.
    const auto extra = app.remaining();
    if (app.get_subcommands().empty() && !extra.empty()) {
      std::string known;
      for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
        known += (known.empty() ? "" : ", ") + sub->get_name();
      return report(app, "unknown command '" + extra.front() + "' (expected one of: " + known + ")", 2, true);
    }
    return report(app, e.what(), 2, true);
  } catch (...) {  // ours and every dependency's (Boost.Math, std, nlohmann::json ...), in our words
    const emergent::Failure f = emergent::describe_failure(std::current_exception());
    return report(app, f.message, f.kind == emergent::FailureKind::BadInput ? 2 : 1, false);
  }
  return 0;
}
