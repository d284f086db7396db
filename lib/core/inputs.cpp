// Batches of examples: (N, d) vectors or (N, H, W, C) NHWC images, one example per row, in the
// C-order layout of the NumPy array they come from (so .npy data can be adopted without copying
// element by element).
#include "emergent/core/inputs.hpp"

#include <limits>
#include <stdexcept>
#include <utility>

namespace emergent {


std::string shape_string(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::string ExampleShape::to_string() const {
  std::string s = "(";  // appended piecewise: GCC 12 warns (-Wrestrict) on "(" + std::to_string(..)
  if (image) {
    s += std::to_string(height);
    s += ", ";
    s += std::to_string(width);
    s += ", ";
  }
  s += std::to_string(channels);
  s += ")";
  return s;
}

Inputs::Inputs(RowMatrix x_in, ExampleShape shape_in) : x(std::move(x_in)), shape(shape_in) {
  if (shape.channels <= 0 || shape.height <= 0 || shape.width <= 0 || (!shape.image && (shape.height != 1 || shape.width != 1)))
    throw std::invalid_argument("Inputs: shape " + shape.to_string() +
                                " is invalid; expected positive dimensions (and H = W = 1 for vectors)");
  if (x.cols() != static_cast<Eigen::Index>(shape.size()))
    throw std::invalid_argument("Inputs: x has " + std::to_string(x.cols()) + " columns but an example of shape " +
                                shape.to_string() + " has " + std::to_string(shape.size()) + " numbers");
}

Inputs Inputs::rows(const std::vector<Eigen::Index>& which) const {
  RowMatrix out(static_cast<Eigen::Index>(which.size()), x.cols());
  for (std::size_t r = 0; r < which.size(); ++r) {
    if (which[r] < 0 || which[r] >= x.rows())
      throw std::invalid_argument("Inputs::rows: index " + std::to_string(which[r]) + " (position " +
                                  std::to_string(r) + ") is out of range; expected 0 <= index < " +
                                  std::to_string(x.rows()));
    out.row(static_cast<Eigen::Index>(r)) = x.row(which[r]);
  }
  return Inputs(std::move(out), shape);
}

ExampleShape example_shape(const std::vector<std::size_t>& shape, const std::string& what) {
  const std::string s = shape_string(shape);
  if (shape.size() != 2 && shape.size() != 4)
    throw std::invalid_argument(what + ": array of shape " + s + " has rank " + std::to_string(shape.size()) +
                                "; expected (N, d) vectors or (N, H, W, C) images");
  for (std::size_t i = 1; i < shape.size(); ++i)
    // Each example dimension must fit an int (ExampleShape) and be positive.
    if (shape[i] == 0 || shape[i] > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      throw std::invalid_argument(what + ": array of shape " + s + " has a per-example dimension " +
                                  std::to_string(shape[i]) + "; expected 1 .. " +
                                  std::to_string(std::numeric_limits<int>::max()));
  if (shape[0] > static_cast<std::size_t>(std::numeric_limits<Eigen::Index>::max()))
    throw std::invalid_argument(what + ": array of shape " + s + " has too many examples");
  const ExampleShape es = shape.size() == 2
                              ? ExampleShape::vector(static_cast<int>(shape[1]))
                              : ExampleShape::image_hwc(static_cast<int>(shape[1]), static_cast<int>(shape[2]),
                                                        static_cast<int>(shape[3]));
  if (static_cast<std::size_t>(es.height) * es.width * es.channels > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw std::invalid_argument(what + ": examples of shape " + es.to_string() + " are too large");
  return es;
}

Inputs make_inputs(const std::vector<std::size_t>& shape, std::vector<double> data, const std::string& what) {
  const ExampleShape es = example_shape(shape, what);
  std::size_t total = 1;
  for (const std::size_t dim : shape) total *= dim;
  if (data.size() != total)
    throw std::invalid_argument(what + ": shape " + shape_string(shape) + " needs " + std::to_string(total) +
                                " numbers but " + std::to_string(data.size()) + " were given");
  const auto n = static_cast<Eigen::Index>(shape[0]);
  RowMatrix x = Eigen::Map<const RowMatrix>(data.data(), n, es.size());
  return Inputs(std::move(x), es);
}

}  // namespace emergent
