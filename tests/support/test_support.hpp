// Shared helpers of the test suites: one seeded RNG style (NormalStream, counter-based, so a
// test's data do not depend on the order in which it draws them) and small matrix utilities.
// Never include Ceres or glog here: glog's CHECK would silently replace doctest's.
#pragma once

#include <Eigen/Dense>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

#include "emergent/core/inputs.hpp"
#include "emergent/core/random.hpp"

namespace emergent::test {

/// rows × cols standard normal entries, a pure function of (seed, stream): entry i (row-major)
/// is NormalStream(seed, stream).normal(i).
inline RowMatrix normals(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed, std::uint64_t stream = 7) {
  NormalStream s(seed, stream);
  RowMatrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = s.normal(static_cast<std::uint64_t>(i));
  return m;
}

/// n examples of the given shape with standard normal entries.
inline Inputs random_inputs(Eigen::Index n, const ExampleShape& shape, std::uint64_t seed, std::uint64_t stream = 7) {
  return Inputs(normals(n, shape.size(), seed, stream), shape);
}

template <class Derived>
double max_abs(const Eigen::MatrixBase<Derived>& a) {
  return a.size() ? a.cwiseAbs().maxCoeff() : 0.0;
}

/// A path in the temporary folder, unique per suite and name.
inline std::string temp_path(const std::string& suite, const std::string& name) {
  return "/tmp/emergent_test_" + suite + "_" + name;
}

/// A fresh, empty folder in the temporary directory, unique per suite, tag and process.
inline std::filesystem::path temp_dir(const std::string& suite, const std::string& tag = "") {
  const std::filesystem::path d = std::filesystem::temp_directory_path() /
                                  ("emergent_test_" + suite + (tag.empty() ? "" : "_" + tag) + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

/// The message of the E that f throws, or "" if it throws none.
template <class E, class F>
std::string error_of(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace emergent::test
