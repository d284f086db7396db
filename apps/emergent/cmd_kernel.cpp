#include "commands.hpp"
namespace emergent::cli { void add_kernel_command(CLI::App&) {} }
