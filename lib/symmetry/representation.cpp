// Representation: validation, action and the group axioms (include/emergent/symmetry/representation.hpp).
#include "emergent/symmetry/representation.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <map>
#include <sstream>

#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/permutation.hpp"

namespace emergent {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using detail::bad;
using detail::compose_maps;
using detail::identity_map;
using detail::num;
using detail::Perm;

constexpr double kEps = std::numeric_limits<double>::epsilon();


double max_abs(const MatrixXd& a) { return a.size() ? a.cwiseAbs().maxCoeff() : 0.0; }

}  // namespace

// ---- RepresentationSummary / Representation ------------------------------------------------

std::string RepresentationSummary::to_string() const {
  std::ostringstream s;
  s << (exact() ? "exact" : "not exact") << " (identity " << num(identity_violation) << ", orthogonality "
    << num(orthogonality_violation) << ", closure " << num(closure_violation) << ", inverses "
    << num(inverse_violation) << ", tolerance " << num(tolerance) << ")";
  return s.str();
}

Representation::Representation(std::string name, ExampleShape shape, std::vector<Element> elements, bool claim_exact,
                               const std::vector<std::vector<int>>* law)
    : name_(std::move(name)), shape_(shape), elements_(std::move(elements)) {
  if (elements_.empty()) bad("Representation '" + name_ + "': elements: expected at least one element, got 0");
  if (shape_.size() < 1) bad("Representation '" + name_ + "': shape " + shape_.to_string() + " is empty");
  // Blocks: pixels × channels for image actions given per pixel, otherwise single entries
  // (vectors, or d × d matrices on flattened images).
  const Index first = elements_[0].permutation.empty() ? elements_[0].matrix.rows()
                                                       : static_cast<Index>(elements_[0].permutation.size());
  if (shape_.image && first == shape_.pixels()) {
    blocks_ = shape_.pixels();
    block_size_ = shape_.channels;
  } else {
    blocks_ = shape_.size();
    block_size_ = 1;
  }
  for (std::size_t g = 0; g < elements_.size(); ++g) {
    Element& e = elements_[g];
    const std::string where = "Representation '" + name_ + "': element " + std::to_string(g) + " ('" + e.label + "')";
    if (!e.permutation.empty()) {
      if (static_cast<Index>(e.permutation.size()) != blocks_)
        bad(where + ": permutation of length " + std::to_string(e.permutation.size()) + ", expected " +
            std::to_string(blocks_));
      std::vector<char> seen(static_cast<std::size_t>(blocks_), 0);
      for (Index v : e.permutation) {
        if (v < 0 || v >= blocks_ || seen[v]) bad(where + ": permutation is not a bijection of 0.." + std::to_string(blocks_ - 1));
        seen[v] = 1;
      }
      if (!e.signs.empty() && static_cast<Index>(e.signs.size()) != blocks_)
        bad(where + ": signs of length " + std::to_string(e.signs.size()) + ", expected " + std::to_string(blocks_));
      for (double s : e.signs)
        if (s != 1.0 && s != -1.0) bad(where + ": signs must be ±1, got " + num(s));
      e.matrix.resize(0, 0);
    } else {
      if (e.matrix.rows() != blocks_ || e.matrix.cols() != blocks_)
        bad(where + ": matrix of shape (" + std::to_string(e.matrix.rows()) + ", " + std::to_string(e.matrix.cols()) +
            "), expected (" + std::to_string(blocks_) + ", " + std::to_string(blocks_) + ")");
      if (!e.matrix.allFinite()) bad(where + ": matrix has a non-finite entry");
    }
  }
  if (law && (static_cast<int>(law->size()) != size()))
    bad("Representation '" + name_ + "': group law of size " + std::to_string(law->size()) + ", expected " +
        std::to_string(size()));
  if (claim_exact) {
    check_ = verify_impl(law, &table_);
    exact_ = check_.exact();
    if (!exact_) table_.clear();
    if (exact_) {
      inverse_.assign(size(), -1);
      for (int g = 0; g < size(); ++g)
        for (int h = 0; h < size(); ++h)
          if (table_[g][h] == 0) { inverse_[g] = h; break; }
    }
  }
}

bool Representation::is_permutation() const {
  for (const auto& e : elements_) {
    if (e.permutation.empty()) return false;
    for (double s : e.signs)
      if (s != 1.0) return false;
  }
  return true;
}

const Representation::Element& Representation::element(int g) const {
  if (g < 0 || g >= size())
    bad("Representation '" + name_ + "': element index g = " + std::to_string(g) + ", expected 0.." +
        std::to_string(size() - 1));
  return elements_[g];
}

const std::vector<Index>& Representation::block_permutation(int g) const {
  const Element& e = element(g);
  bool plain = !e.permutation.empty();
  for (double s : e.signs) plain = plain && s == 1.0;
  if (!plain) bad("Representation '" + name_ + "': element " + std::to_string(g) + " ('" + e.label + "') is not a permutation");
  return e.permutation;
}

std::vector<Index> Representation::permutation(int g) const {
  const Perm& p = block_permutation(g);
  std::vector<Index> out(static_cast<std::size_t>(dim()));
  for (Index a = 0; a < blocks_; ++a)
    for (Index c = 0; c < block_size_; ++c) out[a * block_size_ + c] = p[a] * block_size_ + c;
  return out;
}

MatrixXd Representation::block_matrix(int g) const {
  const Element& e = element(g);
  if (e.permutation.empty()) return e.matrix;
  MatrixXd m = MatrixXd::Zero(blocks_, blocks_);
  for (Index a = 0; a < blocks_; ++a) m(a, e.permutation[a]) = e.signs.empty() ? 1.0 : e.signs[a];
  return m;
}

MatrixXd Representation::matrix(int g) const {
  const MatrixXd m = block_matrix(g);
  MatrixXd out = MatrixXd::Zero(dim(), dim());
  for (Index a = 0; a < blocks_; ++a)
    for (Index b = 0; b < blocks_; ++b)
      if (m(a, b) != 0.0)
        for (Index c = 0; c < block_size_; ++c) out(a * block_size_ + c, b * block_size_ + c) = m(a, b);
  return out;
}

RowMatrix Representation::apply(int g, const RowMatrix& rows) const {
  const Element& e = element(g);
  if (rows.cols() != dim())
    bad("Representation '" + name_ + "'::apply: rows have " + std::to_string(rows.cols()) + " columns, expected d = " +
        std::to_string(dim()));
  RowMatrix out(rows.rows(), rows.cols());
  const Index B = block_size_;
  if (!e.permutation.empty()) {
    for (Index r = 0; r < rows.rows(); ++r)
      for (Index a = 0; a < blocks_; ++a) {
        const double s = e.signs.empty() ? 1.0 : e.signs[a];
        for (Index c = 0; c < B; ++c) out(r, a * B + c) = s * rows(r, e.permutation[a] * B + c);
      }
    return out;
  }
  // (M ⊗ I_B)·x for each row: view a row as a blocks × B matrix X, result M·X.
  for (Index r = 0; r < rows.rows(); ++r) {
    Eigen::Map<const RowMatrix> X(rows.row(r).data(), blocks_, B);
    Eigen::Map<RowMatrix> Y(out.row(r).data(), blocks_, B);
    Y.noalias() = e.matrix * X;
  }
  return out;
}

VectorXd Representation::apply(int g, const VectorXd& x) const {
  RowMatrix row = x.transpose();
  return apply(g, row).row(0).transpose();
}

Inputs Representation::apply(int g, const Inputs& x) const {
  if (!(x.shape == shape_))
    bad("Representation '" + name_ + "'::apply: inputs of shape " + x.shape.to_string() + ", expected " +
        shape_.to_string());
  return Inputs(apply(g, x.x), x.shape);
}

int Representation::compose(int g, int h) const {
  element(g);
  element(h);
  if (!exact_) bad("Representation '" + name_ + "'::compose: the set is not an exact group (" + check_.to_string() + ")");
  return table_[g][h];
}

int Representation::inverse(int g) const {
  element(g);
  if (!exact_) bad("Representation '" + name_ + "'::inverse: the set is not an exact group");
  return inverse_[g];
}

const std::vector<std::vector<int>>& Representation::composition_table() const {
  if (!exact_) bad("Representation '" + name_ + "'::composition_table: the set is not an exact group");
  return table_;
}

RepresentationSummary Representation::verify() const {
  if (exact_) return check_;
  return verify_impl(nullptr, nullptr);
}

RepresentationSummary Representation::verify_impl(const std::vector<std::vector<int>>* law,
                                                std::vector<std::vector<int>>* table) const {
  RepresentationSummary c;
  const int n = size();
  std::vector<std::vector<int>> t(n, std::vector<int>(n, -1));
  bool all_perm = true;
  for (const auto& e : elements_) all_perm = all_perm && !e.permutation.empty();
  if (all_perm) {
    // Signed permutations: compare exactly; key = 2·π(a) + (sign < 0).
    auto key_of = [&](const Perm& p, const std::vector<double>& s) {
      std::vector<Index> k(p.size());
      for (std::size_t a = 0; a < p.size(); ++a) k[a] = 2 * p[a] + ((!s.empty() && s[a] < 0) ? 1 : 0);
      return k;
    };
    std::map<std::vector<Index>, int> index;
    for (int g = n - 1; g >= 0; --g) index[key_of(elements_[g].permutation, elements_[g].signs)] = g;
    const std::vector<Index> id = key_of(identity_map(blocks_), {});
    c.identity_violation = key_of(elements_[0].permutation, elements_[0].signs) == id ? 0.0 : 1.0;
    c.orthogonality_violation = 0.0;
    c.closure_violation = 0.0;
    for (int g = 0; g < n; ++g)
      for (int h = 0; h < n; ++h) {
        const Element& eg = elements_[g];
        const Element& eh = elements_[h];
        Perm p = compose_maps(eg.permutation, eh.permutation);
        std::vector<double> s(p.size(), 1.0);
        for (std::size_t a = 0; a < p.size(); ++a)
          s[a] = (eg.signs.empty() ? 1.0 : eg.signs[a]) * (eh.signs.empty() ? 1.0 : eh.signs[eg.permutation[a]]);
        const auto k = key_of(p, s);
        if (law) {
          const int want = (*law)[g][h];
          if (key_of(elements_[want].permutation, elements_[want].signs) != k) c.closure_violation = 1.0;
          t[g][h] = want;
        } else {
          auto it = index.find(k);
          if (it == index.end()) c.closure_violation = 1.0;
          else t[g][h] = it->second;
        }
      }
    c.tolerance = 0.0;
  } else {
    std::vector<MatrixXd> m(n);
    double mx = 1.0;
    for (int g = 0; g < n; ++g) {
      m[g] = block_matrix(g);
      mx = std::max(mx, max_abs(m[g]));
    }
    // Round-off of one product of two blocks×blocks matrices with entries ≤ mx.
    c.tolerance = 8.0 * kEps * static_cast<double>(blocks_) * mx * mx;
    const MatrixXd I = MatrixXd::Identity(blocks_, blocks_);
    c.identity_violation = max_abs(m[0] - I);
    for (int g = 0; g < n; ++g) c.orthogonality_violation = std::max(c.orthogonality_violation, max_abs(m[g].transpose() * m[g] - I));
    for (int g = 0; g < n; ++g)
      for (int h = 0; h < n; ++h) {
        const MatrixXd p = m[g] * m[h];
        if (law) {
          t[g][h] = (*law)[g][h];
          c.closure_violation = std::max(c.closure_violation, max_abs(p - m[t[g][h]]));
          continue;
        }
        double best = std::numeric_limits<double>::infinity();
        for (int k = 0; k < n; ++k) {
          const double d = max_abs(p - m[k]);
          if (d < best) {
            best = d;
            t[g][h] = k;
          }
        }
        c.closure_violation = std::max(c.closure_violation, best);
      }
  }
  // Inverses: some k with ρ(g)ρ(k) = I (read off the table when closed).
  double inv = 0.0;
  for (int g = 0; g < n; ++g) {
    double best = std::numeric_limits<double>::infinity();
    const MatrixXd mg = block_matrix(g);
    for (int k = 0; k < n; ++k)
      best = std::min(best, max_abs(mg * block_matrix(k) - MatrixXd::Identity(blocks_, blocks_)));
    inv = std::max(inv, best);
  }
  c.inverse_violation = inv;
  // A tolerance that is not finite (entries near float64's limit) certifies nothing.
  if (!std::isfinite(c.tolerance)) c.tolerance = 0.0;
  c.identity_first = c.identity_violation <= c.tolerance;
  c.orthogonal = c.orthogonality_violation <= c.tolerance;
  c.closed = c.closure_violation <= c.tolerance;
  c.has_inverses = c.inverse_violation <= c.tolerance;
  if (table) *table = std::move(t);
  return c;
}

std::string Representation::to_string() const {
  return name_ + " on " + shape_.to_string() + ": " + std::to_string(size()) + " elements, " +
         (exact_ ? "exact" : "approximate/not a group");
}

}  // namespace emergent
