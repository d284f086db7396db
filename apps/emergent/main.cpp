#include "commands.hpp"
int main() { return 0; }
