// Shared harness of the suites that run the `emergent` binary as a user does (tests/apps/): the
// binary's path comes after `--` on the test's command line, each suite works in its own
// temporary folder, and a run captures exit code, stdout and stderr.
#pragma once

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace emergent::test::cli {

namespace fs = std::filesystem;

inline std::string g_emergent;  ///< absolute path of the binary under test
inline fs::path g_dir;          ///< this run's temporary folder

/// Single-quoted for the shell.
inline std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Run {
  int code = -1;  ///< exit status; 124 ran out of time (timeout), >= 128 died of a signal
  std::string out, err;
};

struct RunOptions {
  std::string env;          ///< VAR=value … prefixed to the command
  int timeout_seconds = 0;  ///< > 0: run under `timeout`, so a hang fails the test instead of stalling it
  bool in_dir = false;      ///< run with g_dir as the working folder
};

/// `emergent ARGS` through the shell.
inline Run run(const std::string& args, const RunOptions& o = {}) {
  const fs::path out = g_dir / "stdout.txt", err = g_dir / "stderr.txt";
  std::string cmd = o.in_dir ? "cd " + quote(g_dir.string()) + " && " : "";
  if (!o.env.empty()) cmd += "env " + o.env + " ";
  if (o.timeout_seconds > 0) cmd += "timeout " + std::to_string(o.timeout_seconds) + " ";
  cmd += quote(g_emergent) + " " + args + " >" + quote(out.string()) + " 2>" + quote(err.string());
  const int status = std::system(cmd.c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

inline bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }
inline bool one_line(const std::string& s) {
  return !s.empty() && s.back() == '\n' && std::count(s.begin(), s.end(), '\n') == 1;
}

/// The main() of a CLI suite: takes the binary after `--`, makes the temporary folder, runs
/// doctest with the other arguments, removes the folder.
inline int run_suite(int argc, char** argv, const std::string& suite) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::string(argv[i]) == "--" && i + 1 < argc) {
      g_emergent = fs::absolute(argv[++i]).string();
      continue;
    }
    args.push_back(argv[i]);
  }
  if (g_emergent.empty()) {
    std::cerr << "usage: " << suite << " [doctest options] -- /path/to/emergent\n";
    return 2;
  }
  g_dir = fs::temp_directory_path() / ("emergent_" + suite + "_" + std::to_string(::getpid()));
  fs::create_directories(g_dir);
  doctest::Context context;
  context.applyCommandLine(static_cast<int>(args.size()), args.data());
  const int result = context.run();
  std::error_code ec;
  fs::remove_all(g_dir, ec);
  return result;
}

}  // namespace emergent::test::cli
