// NumPy arrays in and out of the extension (see common.hpp).
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common.hpp"

namespace emergent::python {

namespace {

std::vector<std::size_t> shape_of(const InArray& a) {
  std::vector<std::size_t> s(a.ndim());
  for (std::size_t i = 0; i < a.ndim(); ++i) s[i] = a.shape(i);
  return s;
}

// "(3, 1)" for flat index i of an array of the given shape (as the .npy reader prints it).
std::string flat_index_string(std::size_t i, const std::vector<std::size_t>& shape) {
  std::vector<std::size_t> idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? i % shape[d] : 0;
    if (shape[d]) i /= shape[d];
  }
  return shape_string(idx);
}

}  // namespace

void require_finite(const InArray& a, const std::string& what) {
  const double* p = a.data();
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(p[i]))
      throw std::invalid_argument(what + ": element " + flat_index_string(i, shape_of(a)) + " is " +
                                  (std::isnan(p[i]) ? "NaN" : p[i] > 0 ? "+Inf" : "-Inf") +
                                  "; only finite values are accepted");
  }
}

Inputs to_inputs(const InArray& a, const std::string& what) {
  const auto shape = shape_of(a);
  bool ok = shape.size() == 2 || shape.size() == 4;
  for (std::size_t i = 1; ok && i < shape.size(); ++i) ok = shape[i] > 0;
  if (!ok) make_inputs(shape, {}, what);  // throws its message for this shape
  require_finite(a, what);
  const ExampleShape es = shape.size() == 2 ? ExampleShape::vector(static_cast<int>(shape[1]))
                                            : ExampleShape::image_hwc(static_cast<int>(shape[1]),
                                                                      static_cast<int>(shape[2]),
                                                                      static_cast<int>(shape[3]));
  const auto n = static_cast<Eigen::Index>(shape[0]);
  RowMatrix x = Eigen::Map<const RowMatrix>(a.data(), n, es.size());
  return Inputs(std::move(x), es);
}

RowMatrix to_row_matrix(const InArray& a, const std::string& what) {
  if (a.ndim() != 2)
    throw std::invalid_argument(what + ": array of shape " + shape_string(shape_of(a)) + " has rank " +
                                std::to_string(a.ndim()) + "; expected a matrix (rank 2)");
  require_finite(a, what);
  return Eigen::Map<const RowMatrix>(a.data(), static_cast<Eigen::Index>(a.shape(0)),
                                     static_cast<Eigen::Index>(a.shape(1)));
}

Eigen::MatrixXd to_matrix(const InArray& a, const std::string& what) {
  if (a.ndim() != 2) return to_row_matrix(a, what);  // throws the rank message
  require_finite(a, what);
  return Eigen::Map<const RowMatrix>(a.data(), static_cast<Eigen::Index>(a.shape(0)),
                                     static_cast<Eigen::Index>(a.shape(1)));
}

OutArray to_numpy(std::vector<double>&& data, const std::vector<std::size_t>& shape) {
  auto* owner = new std::vector<double>(std::move(data));
  nb::capsule del(owner, [](void* p) noexcept { delete static_cast<std::vector<double>*>(p); });
  return OutArray(owner->data(), shape.size(), shape.data(), del);
}

OutArray to_numpy(Eigen::MatrixXd&& m) {
  auto* owner = new Eigen::MatrixXd(std::move(m));
  nb::capsule del(owner, [](void* p) noexcept { delete static_cast<Eigen::MatrixXd*>(p); });
  const std::size_t shape[2] = {static_cast<std::size_t>(owner->rows()), static_cast<std::size_t>(owner->cols())};
  const std::int64_t strides[2] = {1, static_cast<std::int64_t>(owner->rows())};
  return OutArray(owner->data(), 2, shape, del, strides);
}

OutArray to_numpy(RowMatrix&& m) {
  auto* owner = new RowMatrix(std::move(m));
  nb::capsule del(owner, [](void* p) noexcept { delete static_cast<RowMatrix*>(p); });
  const std::size_t shape[2] = {static_cast<std::size_t>(owner->rows()), static_cast<std::size_t>(owner->cols())};
  return OutArray(owner->data(), 2, shape, del);
}

OutArray to_numpy(Eigen::VectorXd&& v) {
  auto* owner = new Eigen::VectorXd(std::move(v));
  nb::capsule del(owner, [](void* p) noexcept { delete static_cast<Eigen::VectorXd*>(p); });
  const std::size_t shape[1] = {static_cast<std::size_t>(owner->size())};
  return OutArray(owner->data(), 1, shape, del);
}

}  // namespace emergent::python
