#include "commands.hpp"
namespace emergent::cli { void add_experiment_command(CLI::App&) {} }
