// Full-orbit augmentation (include/emergent/symmetry/augmentation.hpp).
#include "emergent/symmetry/augmentation.hpp"

#include <stdexcept>
#include <string>

#include "detail/errors.hpp"

namespace emergent {

using Eigen::Index;
using detail::bad;

// ---- augmentation -------------------------------------------------------------------------

Inputs orbit_of(const Inputs& x, const Representation& rho_x) {
  const Index N = x.count();
  RowMatrix all(static_cast<Index>(rho_x.size()) * N, x.x.cols());
  for (int g = 0; g < rho_x.size(); ++g) all.middleRows(g * N, N) = rho_x.apply(g, x).x;
  return Inputs(std::move(all), x.shape);
}

AugmentedSet augment(const Inputs& x, const RowMatrix& y, const Representation& rho_x, const Representation& rho_y) {
  if (y.rows() != x.count())
    bad("augment: y has " + std::to_string(y.rows()) + " rows, expected N = " + std::to_string(x.count()));
  if (rho_x.size() != rho_y.size())
    bad("augment: rho_y has " + std::to_string(rho_y.size()) + " elements, expected |G| = " + std::to_string(rho_x.size()));
  if (y.cols() != rho_y.dim())
    bad("augment: y has " + std::to_string(y.cols()) + " columns, expected rho_y's dimension " + std::to_string(rho_y.dim()));
  AugmentedSet s;
  s.originals = x.count();
  s.group_size = rho_x.size();
  const Index N = x.count();
  s.x = orbit_of(x, rho_x);
  s.y.resize(N * s.group_size, y.cols());
  for (int g = 0; g < s.group_size; ++g) {
    s.y.middleRows(g * N, N) = rho_y.apply(g, y);
    for (Index i = 0; i < N; ++i) {
      s.source.push_back(i);
      s.element.push_back(g);
    }
  }
  return s;
}

std::vector<Index> row_permutation(const AugmentedSet& set, const Representation& rho_x, int h) {
  if (rho_x.size() != set.group_size)
    bad("row_permutation: rho_x has " + std::to_string(rho_x.size()) + " elements, the set was augmented with " +
        std::to_string(set.group_size));
  std::vector<Index> p(set.source.size());
  for (std::size_t r = 0; r < p.size(); ++r) p[r] = set.row(rho_x.compose(h, set.element[r]), set.source[r]);
  return p;
}

}  // namespace emergent
