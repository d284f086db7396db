#include "commands.hpp"
namespace emergent::cli { void add_verify_command(CLI::App&) {} }
