// Inputs: a batch of examples, stored one example per row (float64).
//
// Vectors are (N, d); images are (N, H, W, C) in NHWC order, flattened per row so that
// element (h, w, c) of example i sits at column (h*W + w)*C + c, exactly the C-order
// layout of a NumPy array of that shape.
#pragma once

#include <Eigen/Dense>
#include <cstddef>
#include <string>
#include <vector>

namespace emergent {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Shape of one example: a vector of `features` numbers, or an H×W×C image.
struct ExampleShape {
  bool image = false;
  int height = 1;    ///< H (1 for vectors)
  int width = 1;     ///< W (1 for vectors)
  int channels = 0;  ///< C for images, d for vectors

  static ExampleShape vector(int features) { return {false, 1, 1, features}; }
  static ExampleShape image_hwc(int h, int w, int c) { return {true, h, w, c}; }

  int pixels() const { return height * width; }
  int size() const { return height * width * channels; }
  std::string to_string() const;  ///< "(d)" or "(H, W, C)"
  bool operator==(const ExampleShape&) const = default;
};

/// A batch of N examples of one shape.
struct Inputs {
  RowMatrix x;         ///< N × shape.size()
  ExampleShape shape;

  Inputs() = default;
  /// Throws std::invalid_argument if x.cols() != shape.size().
  Inputs(RowMatrix x, ExampleShape shape);

  Eigen::Index count() const { return x.rows(); }
  /// Inputs of the given rows (copies).
  Inputs rows(const std::vector<Eigen::Index>& which) const;
};

/// A shape as NumPy prints it: "(3, 4)", "(5,)", "()". Used in every shape message.
std::string shape_string(const std::vector<std::size_t>& shape);

/// The example shape of a NumPy-style array shape: (N, d) gives vectors, (N, H, W, C) images.
/// Throws std::invalid_argument naming `what` if the rank is not 2 or 4, a per-example dimension
/// is 0 or too large, or N does not fit an Eigen::Index.
ExampleShape example_shape(const std::vector<std::size_t>& shape, const std::string& what = "inputs");

/// Build inputs from a NumPy-style shape: (N, d) gives vectors, (N, H, W, C) images.
/// Throws std::invalid_argument naming `what` if the rank is not 2 or 4 or the data size is off.
Inputs make_inputs(const std::vector<std::size_t>& shape, std::vector<double> data,
                   const std::string& what = "inputs");

}  // namespace emergent
