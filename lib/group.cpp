// Group representations, augmentation and the checks of Gerken & Kessel (ICML 2024)
// Theorem 5.1, Lemmas 5.1/5.2 and Theorem 5.2; see include/emergent/group.hpp.
#include "emergent/group.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numbers>
#include <sstream>
#include <stdexcept>

#include "emergent/npy.hpp"
#include "emergent/random.hpp"

namespace emergent {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using Perm = std::vector<Index>;

constexpr double kEps = std::numeric_limits<double>::epsilon();

std::string num(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}

[[noreturn]] void bad(const std::string& message) { throw std::invalid_argument(message); }

double max_abs(const MatrixXd& a) { return a.size() ? a.cwiseAbs().maxCoeff() : 0.0; }

// ---- image geometry --------------------------------------------------------------------

void require_image(const ExampleShape& shape, const std::string& group) {
  if (!shape.image || shape.channels < 1 || shape.height < 1 || shape.width < 1)
    bad("group '" + group + "': expected an image input (H, W, C), got shape " + shape.to_string());
}

void require_vector(const ExampleShape& shape, const std::string& group) {
  if (shape.image || shape.channels < 1)
    bad("group '" + group + "': expected a vector input (d), got shape " + shape.to_string());
}

// Pixel maps as gathers: (ρx)[a] = x[π(a)], pixels a = h·W + w.
Perm rot90_map(int n) {
  Perm p(static_cast<std::size_t>(n) * n);
  for (int h = 0; h < n; ++h)
    for (int w = 0; w < n; ++w) p[h * n + w] = static_cast<Index>(w) * n + (n - 1 - h);  // numpy.rot90
  return p;
}

Perm flip_map(int H, int W) {
  Perm p(static_cast<std::size_t>(H) * W);
  for (int h = 0; h < H; ++h)
    for (int w = 0; w < W; ++w) p[h * W + w] = static_cast<Index>(h) * W + (W - 1 - w);
  return p;
}

Perm identity_map(Index n) {
  Perm p(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) p[i] = i;
  return p;
}

// Gather maps compose as (ρ_g ρ_h x)[a] = x[π_h(π_g(a))].
Perm compose_maps(const Perm& g, const Perm& h) {
  Perm out(g.size());
  for (std::size_t a = 0; a < g.size(); ++a) out[a] = h[g[a]];
  return out;
}

Representation::Element perm_element(std::string label, Perm p) {
  Representation::Element e;
  e.label = std::move(label);
  e.permutation = std::move(p);
  return e;
}

// ---- kernels with rows (example, pixel) --------------------------------------------------

struct Gram {
  MatrixXd nngp, ntk;
  int pixels = 1;
};

bool is_spatial(const Architecture& arch) { return arch.expects_images() && !arch.has_readout(); }

Gram gram(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options) {
  Gram g;
  if (!is_spatial(arch)) {
    Kernels k = x2 ? kernels(arch, x1, *x2, options) : kernels(arch, x1, options);
    g.nngp = std::move(k.nngp);
    g.ntk = std::move(k.ntk);
    return g;
  }
  SpatialKernels s = x2 ? spatial_kernels(arch, x1, *x2, options) : spatial_kernels(arch, x1, options);
  const Index P = static_cast<Index>(s.height) * s.width;
  g.pixels = static_cast<int>(P);
  g.nngp.resize(s.n1 * P, s.n2 * P);
  g.ntk.resize(s.n1 * P, s.n2 * P);
  for (Index i = 0; i < s.n1; ++i)
    for (Index j = 0; j < s.n2; ++j)
      for (Index a = 0; a < P; ++a)
        for (Index b = 0; b < P; ++b) {
          const std::size_t at = ((static_cast<std::size_t>(i) * s.n2 + j) * P + a) * P + b;
          g.nngp(i * P + a, j * P + b) = s.nngp[at];
          g.ntk(i * P + a, j * P + b) = s.ntk[at];
        }
  return g;
}

// (I ⊗ M)·G·(I ⊗ M)ᵀ: ρ_K acting on both pixel indices of every (i, j) block (exact for
// permutation matrices: every product has a single nonzero term).
MatrixXd conj_blocks(const MatrixXd& G, const MatrixXd& M, Index P) {
  MatrixXd out(G.rows(), G.cols());
  for (Index i = 0; i < G.rows() / P; ++i)
    for (Index j = 0; j < G.cols() / P; ++j)
      out.block(i * P, j * P, P, P).noalias() = M * G.block(i * P, j * P, P, P) * M.transpose();
  return out;
}

// Output map of a spatial architecture must keep the input's size for ρ_K to be the input's pixel action.
void require_same_map(const Architecture& arch, const ExampleShape& in, const char* where) {
  const ExampleShape out = arch.shapes(in).shapes.back();
  if (out.height != in.height || out.width != in.width)
    bad(std::string(where) + ": the architecture '" + arch.to_string() + "' maps " + in.to_string() + " to " +
        out.to_string() + "; ρ_K needs the output map to keep the input's H×W (use same/circular padding or a readout)");
}

CheckReport finish(std::string name, std::vector<ElementViolation> elements, double scale, double tolerance,
                   std::string rule) {
  CheckReport r;
  r.name = std::move(name);
  r.scale = scale;
  r.tolerance = tolerance;
  r.tolerance_rule = std::move(rule);
  r.elements = std::move(elements);
  for (const auto& e : r.elements)
    if (e.violation > r.max_violation || !std::isfinite(e.violation)) {
      r.max_violation = e.violation;
      r.worst_element = e.element;
    }
  r.holds = std::isfinite(r.max_violation) && r.max_violation <= r.tolerance;
  return r;
}

void finish_theorem(TheoremReport& t) {
  t.holds = !t.parts.empty();
  for (const auto& p : t.parts) t.holds = t.holds && p.holds;
}

std::string time_text(double t) { return std::isinf(t) ? "inf" : num(t); }

// Number of activations with a kink (ReLU family with a ≠ b). Their NTK factor (π−θ)/2π has
// infinite slope at θ = 0 (collinear inputs): a relative round-off δ in the correlation moves θ
// by √(2δ), so an input paired with itself carries √ε-sized error (Cho & Saul 2009 Eq. 6).
int kinked_activations(const Architecture& arch) {
  int n = 0;
  for (const Layer& l : arch.layers())
    if (l.kind == LayerKind::Activation) {
      const ActivationKind k = l.activation.kind;
      if ((k == ActivationKind::Relu || k == ActivationKind::Abs || k == ActivationKind::LeakyRelu ||
           k == ActivationKind::AbRelu) && l.activation.a != l.activation.b)
        ++n;
    }
  return n;
}

// collinear(i, j): x_j = c·x_i (|cos| within 1e-12 of 1).
std::vector<std::vector<char>> collinear_pairs(const RowMatrix& a, const RowMatrix& b) {
  std::vector<std::vector<char>> c(a.rows(), std::vector<char>(b.rows(), 0));
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < b.rows(); ++j) {
      const double n = a.row(i).norm() * b.row(j).norm();
      c[i][j] = n > 0 && std::abs(a.row(i).dot(b.row(j))) >= (1 - 1e-12) * n;
    }
  return c;
}

// Relative round-off allowance of the NTK on collinear pairs: per kinked layer √(2·ε·ops)/π.
double collinear_rel_tol(const Architecture& arch, double ops) {
  return kinked_activations(arch) * std::sqrt(2 * kEps * ops) / std::numbers::pi;
}

}  // namespace

// ---- RepresentationCheck / Representation ------------------------------------------------

std::string RepresentationCheck::to_string() const {
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

RepresentationCheck Representation::verify() const {
  if (exact_) return check_;
  return verify_impl(nullptr, nullptr);
}

RepresentationCheck Representation::verify_impl(const std::vector<std::vector<int>>* law,
                                                std::vector<std::vector<int>>* table) const {
  RepresentationCheck c;
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

// ---- input groups -----------------------------------------------------------------------

Representation group_c4(const ExampleShape& shape) {
  require_image(shape, "c4");
  if (shape.height != shape.width)
    bad("group 'c4': needs a square image (H = W), got shape " + shape.to_string());
  const Perm r = rot90_map(shape.height);
  std::vector<Representation::Element> e;
  Perm p = identity_map(shape.pixels());
  const char* labels[] = {"e", "r", "r2", "r3"};
  for (int j = 0; j < 4; ++j) {
    e.push_back(perm_element(labels[j], p));
    p = compose_maps(p, r);
  }
  return Representation("c4", shape, std::move(e), true);
}

Representation group_d4(const ExampleShape& shape) {
  require_image(shape, "d4");
  if (shape.height != shape.width)
    bad("group 'd4': needs a square image (H = W), got shape " + shape.to_string());
  const Perm r = rot90_map(shape.height);
  const Perm f = flip_map(shape.height, shape.width);
  std::vector<Representation::Element> e;
  Perm p = identity_map(shape.pixels());
  const char* labels[] = {"e", "r", "r2", "r3"};
  std::vector<Perm> rots;
  for (int j = 0; j < 4; ++j) {
    rots.push_back(p);
    e.push_back(perm_element(labels[j], p));
    p = compose_maps(p, r);
  }
  const char* flipped[] = {"f", "rf", "r2f", "r3f"};
  for (int j = 0; j < 4; ++j) e.push_back(perm_element(flipped[j], compose_maps(rots[j], f)));
  return Representation("d4", shape, std::move(e), true);
}

Representation group_flip(const ExampleShape& shape) {
  require_image(shape, "flip");
  std::vector<Representation::Element> e;
  e.push_back(perm_element("e", identity_map(shape.pixels())));
  e.push_back(perm_element("f", flip_map(shape.height, shape.width)));
  return Representation("flip", shape, std::move(e), true);
}

Representation group_translations(const ExampleShape& shape) {
  require_image(shape, "translations");
  const int H = shape.height, W = shape.width;
  std::vector<Representation::Element> e;
  for (int i = 0; i < H; ++i)
    for (int j = 0; j < W; ++j) {
      Perm p(static_cast<std::size_t>(H) * W);
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) p[h * W + w] = static_cast<Index>((h - i + H) % H) * W + (w - j + W) % W;
      e.push_back(perm_element("shift(" + std::to_string(i) + "," + std::to_string(j) + ")", std::move(p)));
    }
  return Representation("translations", shape, std::move(e), true);
}

std::vector<std::vector<PixelTap>> bilinear_rotation(int height, int width, double angle) {
  const int H = height, W = width;
  const double ch = 0.5 * (H - 1), cw = 0.5 * (W - 1);
  const double c = std::cos(angle), s = std::sin(angle);
  auto snap = [](double v) {  // land exactly on grid points when the rotation maps pixels to pixels
    const double r = std::round(v);
    return std::abs(v - r) < 1e-9 ? r : v;
  };
  std::vector<std::vector<PixelTap>> taps(static_cast<std::size_t>(H) * W);
  for (int h = 0; h < H; ++h)
    for (int w = 0; w < W; ++w) {
      const double y = h - ch, x = w - cw;
      const double ys = snap(c * y + s * x + ch), xs = snap(-s * y + c * x + cw);
      const double y0 = std::floor(ys), x0 = std::floor(xs);
      const double fy = ys - y0, fx = xs - x0;
      const double wts[4] = {(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx};
      const int yy[4] = {int(y0), int(y0), int(y0) + 1, int(y0) + 1};
      const int xx[4] = {int(x0), int(x0) + 1, int(x0), int(x0) + 1};
      for (int q = 0; q < 4; ++q)
        if (wts[q] != 0.0 && yy[q] >= 0 && yy[q] < H && xx[q] >= 0 && xx[q] < W)
          taps[static_cast<std::size_t>(h * W + w)].push_back({yy[q] * W + xx[q], wts[q]});
    }
  return taps;
}

Representation group_rotation(int k, const ExampleShape& shape) {
  const std::string name = "rot(" + std::to_string(k) + ")";
  require_image(shape, name);
  if (k < 1) bad("group 'rot(K)': K = " + std::to_string(k) + ", expected a positive integer");
  const int H = shape.height, W = shape.width;
  std::vector<Representation::Element> e;
  for (int j = 0; j < k; ++j) {
    Representation::Element el;
    el.label = "rot(" + std::to_string(j) + "/" + std::to_string(k) + ")";
    el.matrix = MatrixXd::Zero(H * W, H * W);
    const auto taps = bilinear_rotation(H, W, 2.0 * std::numbers::pi * j / k);
    for (int p = 0; p < H * W; ++p)
      for (const PixelTap& t : taps[static_cast<std::size_t>(p)]) el.matrix(p, t.source) += t.weight;
    e.push_back(std::move(el));
  }
  return Representation(name, shape, std::move(e), false);
}

Representation group_sign(const ExampleShape& shape) {
  require_vector(shape, "sign");
  std::vector<Representation::Element> e;
  e.push_back(perm_element("+", identity_map(shape.channels)));
  e.push_back(perm_element("-", identity_map(shape.channels)));
  e[1].signs.assign(static_cast<std::size_t>(shape.channels), -1.0);
  return Representation("sign", shape, std::move(e), true);
}

Representation group_cyclic(const ExampleShape& shape) {
  require_vector(shape, "cyclic");
  const int d = shape.channels;
  std::vector<Representation::Element> e;
  for (int j = 0; j < d; ++j) {
    Perm p(static_cast<std::size_t>(d));
    for (int a = 0; a < d; ++a) p[a] = (a - j + d) % d;  // numpy.roll(x, j)
    e.push_back(perm_element("shift(" + std::to_string(j) + ")", std::move(p)));
  }
  return Representation("cyclic", shape, std::move(e), true);
}

Representation group_rot2(int k, const ExampleShape& shape) {
  const std::string name = "rot2(" + std::to_string(k) + ")";
  require_vector(shape, name);
  if (k < 1) bad("group 'rot2(K)': K = " + std::to_string(k) + ", expected a positive integer");
  const int d = shape.channels;
  if (d % 2 != 0) bad("group '" + name + "': needs an even number of features, got shape " + shape.to_string());
  std::vector<Representation::Element> e;
  for (int j = 0; j < k; ++j) {
    // cos/sin of 2πj/K with exact values at multiples of π/2, so that closure holds to round-off.
    const double theta = 2.0 * std::numbers::pi * j / k;
    double c = std::cos(theta), s = std::sin(theta);
    if ((4 * j) % k == 0) {
      const int q = (4 * j / k) % 4;
      c = q == 0 ? 1 : q == 2 ? -1 : 0;
      s = q == 1 ? 1 : q == 3 ? -1 : 0;
    }
    Representation::Element el;
    el.label = "rot2(" + std::to_string(j) + "/" + std::to_string(k) + ")";
    el.matrix = MatrixXd::Zero(d, d);
    for (int m = 0; m < d; m += 2) {
      el.matrix(m, m) = c;
      el.matrix(m, m + 1) = -s;
      el.matrix(m + 1, m) = s;
      el.matrix(m + 1, m + 1) = c;
    }
    e.push_back(std::move(el));
  }
  return Representation(name, shape, std::move(e), true);
}

Representation group_from_matrices(std::string name, const ExampleShape& shape, const std::vector<MatrixXd>& matrices) {
  if (matrices.empty()) bad("group '" + name + "': matrices: expected at least one matrix, got 0");
  const Index d = shape.size();
  std::vector<Representation::Element> e;
  for (std::size_t g = 0; g < matrices.size(); ++g) {
    if (matrices[g].rows() != d || matrices[g].cols() != d)
      bad("group '" + name + "': matrices[" + std::to_string(g) + "] has shape (" + std::to_string(matrices[g].rows()) +
          ", " + std::to_string(matrices[g].cols()) + "), expected (" + std::to_string(d) + ", " + std::to_string(d) +
          ") for inputs of shape " + shape.to_string());
    Representation::Element el;
    el.label = std::to_string(g);
    el.label.insert(0, 1, 'g');
    el.matrix = matrices[g];
    e.push_back(std::move(el));
  }
  Representation r(std::move(name), shape, std::move(e), true);
  if (!r.check().identity_first)
    bad("group '" + r.name() + "': matrices[0] must be the identity (max deviation " +
        num(r.check().identity_violation) + ")");
  return r;
}

Representation group_from_npy(const std::string& path, const ExampleShape& shape) {
  const NpyArray a = read_npy(path);
  if (a.shape.size() != 3 || a.shape[1] != a.shape[2] || a.shape[0] == 0)
    bad("group file '" + path + "': expected shape (|G|, d, d), got rank " + std::to_string(a.shape.size()));
  const std::size_t n = a.shape[0], d = a.shape[1];
  std::vector<MatrixXd> m(n, MatrixXd(d, d));
  for (std::size_t g = 0; g < n; ++g)
    for (std::size_t i = 0; i < d; ++i)
      for (std::size_t j = 0; j < d; ++j) m[g](i, j) = a.data[(g * d + i) * d + j];
  return group_from_matrices(path, shape, m);
}

Representation make_group(std::string_view name_in, const ExampleShape& shape) {
  std::string name(name_in);
  name.erase(std::remove_if(name.begin(), name.end(), [](unsigned char c) { return std::isspace(c); }), name.end());
  auto arg = [&](const std::string& prefix) -> int {
    const std::string inner = name.substr(prefix.size() + 1, name.size() - prefix.size() - 2);
    std::size_t used = 0;
    int k = 0;
    try {
      k = std::stoi(inner, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (inner.empty() || used != inner.size() || k < 1)
      bad("group '" + name + "': argument '" + inner + "' of " + prefix + "(K), expected a positive integer K");
    return k;
  };
  auto call = [&](const std::string& prefix) {
    return name.size() > prefix.size() + 2 && name.compare(0, prefix.size() + 1, prefix + "(") == 0 && name.back() == ')';
  };
  if (name == "c4") return group_c4(shape);
  if (name == "d4") return group_d4(shape);
  if (name == "flip") return group_flip(shape);
  if (name == "translations") return group_translations(shape);
  if (name == "sign") return group_sign(shape);
  if (name == "cyclic") return group_cyclic(shape);
  if (call("rot2")) return group_rot2(arg("rot2"), shape);
  if (call("rot")) return group_rotation(arg("rot"), shape);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) return group_from_npy(std::string(name_in), shape);
  bad("group: unknown name '" + std::string(name_in) +
      "', expected one of c4, d4, flip, translations, rot(K), sign, cyclic, rot2(K) or a .npy file");
}

// ---- output actions -----------------------------------------------------------------------

namespace {
const std::vector<std::vector<int>>* law_of(const Representation& input, const char* what) {
  if (!input.exact()) return nullptr;  // approximate inputs: outputs can only be approximate too
  (void)what;
  return &input.composition_table();
}
}  // namespace

Representation trivial_output(const Representation& input, int outputs) {
  if (outputs < 1) bad("trivial_output: outputs = " + std::to_string(outputs) + ", expected ≥ 1");
  std::vector<Representation::Element> e;
  for (int g = 0; g < input.size(); ++g) e.push_back(perm_element(input.label(g), identity_map(outputs)));
  return Representation("trivial", ExampleShape::vector(outputs), std::move(e), input.exact(), law_of(input, "trivial"));
}

Representation pixel_output(const Representation& input, const ExampleShape& output) {
  if (!input.shape().image || !output.image || output.height != input.shape().height ||
      output.width != input.shape().width)
    bad("pixel_output: output shape " + output.to_string() + " must be an image with the input's H×W " +
        input.shape().to_string());
  std::vector<Representation::Element> e;
  for (int g = 0; g < input.size(); ++g) {
    Representation::Element el = input.element(g);
    e.push_back(std::move(el));
  }
  return Representation(input.name() + " (pixels)", output, std::move(e), input.exact(), law_of(input, "pixels"));
}

Representation matrix_output(const Representation& input, const std::vector<MatrixXd>& matrices) {
  if (static_cast<int>(matrices.size()) != input.size())
    bad("matrix_output: " + std::to_string(matrices.size()) + " matrices, expected one per element (" +
        std::to_string(input.size()) + ")");
  const Index k = matrices[0].rows();
  std::vector<Representation::Element> e;
  for (int g = 0; g < input.size(); ++g) {
    if (matrices[g].rows() != k || matrices[g].cols() != k)
      bad("matrix_output: matrices[" + std::to_string(g) + "] is not " + std::to_string(k) + "×" + std::to_string(k));
    Representation::Element el;
    el.label = input.label(g);
    el.matrix = matrices[g];
    e.push_back(std::move(el));
  }
  return Representation("matrices", ExampleShape::vector(static_cast<int>(k)), std::move(e), input.exact(),
                        law_of(input, "matrices"));
}

// ---- augmentation -------------------------------------------------------------------------

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
  RowMatrix ax(N * s.group_size, x.x.cols());
  s.y.resize(N * s.group_size, y.cols());
  for (int g = 0; g < s.group_size; ++g) {
    ax.middleRows(g * N, N) = rho_x.apply(g, x).x;
    s.y.middleRows(g * N, N) = rho_y.apply(g, y);
    for (Index i = 0; i < N; ++i) {
      s.source.push_back(i);
      s.element.push_back(g);
    }
  }
  s.x = Inputs(std::move(ax), x.shape);
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

// ---- reports ------------------------------------------------------------------------------

std::string CheckReport::to_string() const {
  std::ostringstream s;
  s << name << ": " << (holds ? "holds" : "does not hold") << ", max violation " << num(max_violation) << " (relative "
    << num(relative_violation()) << ", scale " << num(scale) << "), tolerance " << num(tolerance);
  if (!elements.empty() && worst_element < static_cast<int>(elements.size()))
    s << ", worst element '" << elements[worst_element].label << "'";
  return s.str();
}

const CheckReport& TheoremReport::part(std::string_view name) const {
  for (const auto& p : parts)
    if (p.name == name) return p;
  throw std::out_of_range("TheoremReport::part: no part named '" + std::string(name) + "'");
}

double TheoremReport::max_ratio() const {
  double r = 0;
  for (const auto& p : parts)
    r = std::max(r, p.tolerance > 0 ? p.max_violation / p.tolerance : (p.max_violation > 0 ? INFINITY : 0.0));
  return r;
}

std::string TheoremReport::to_string() const {
  std::ostringstream s;
  s << theorem << ": " << (holds ? "holds" : "does not hold");
  if (!status.empty()) s << " [" << status << "]";
  for (const auto& p : parts) s << "\n  " << p.to_string();
  return s.str();
}

bool EquivarianceCheckOptions::IsValid(std::string* error) const {
  std::string e;
  if (!(safety >= 1.0) || !std::isfinite(safety)) e = "safety: expected a finite number ≥ 1, got " + num(safety);
  else if (!kernel.IsValid(&e)) e = "kernel." + e;
  if (error) *error = e;
  return e.empty();
}

bool LemmaCheckOptions::IsValid(std::string* error) const {
  std::string e;
  if (!equivariance.IsValid(&e)) e = "equivariance." + e;
  else if (!(learning_rate > 0) || !std::isfinite(learning_rate)) e = "learning_rate: expected > 0, got " + num(learning_rate);
  else if (outputs < 1) e = "outputs: expected ≥ 1, got " + std::to_string(outputs);
  else
    for (double t : times)
      if (!(t >= 0) || !std::isfinite(t)) e = "times: expected finite t ≥ 0, got " + num(t);
  if (error) *error = e;
  return e.empty();
}

bool Theorem52Options::IsValid(std::string* error) const {
  std::string e;
  if (!(safety >= 1.0) || !std::isfinite(safety)) e = "safety: expected a finite number ≥ 1, got " + num(safety);
  else if (!kernel.IsValid(&e)) e = "kernel." + e;
  else if (!flow.IsValid(&e)) e = "flow." + e;
  else if (noise_inputs < 0) e = "noise_inputs: expected ≥ 0, got " + std::to_string(noise_inputs);
  else if (times.empty()) e = "times: expected at least one time";
  else
    for (double t : times)
      if (!(t >= 0)) e = "times: expected t ≥ 0 (inf allowed), got " + num(t);
  if (error) *error = e;
  return e.empty();
}

// ---- Theorem 5.1 ---------------------------------------------------------------------------

double kernel_roundoff_ops(const Architecture& arch, const ExampleShape& shape, const Representation* rho) {
  const ShapeTrace trace = arch.shapes(shape);
  double ops = shape.channels;                                  // Σ⁰ = x·x'/C
  if (rho && !rho->is_permutation()) ops += static_cast<double>(rho->blocks());  // ρ(g)x is a matrix product
  const auto& layers = arch.layers();
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Layer& L = layers[l];
    const double P = trace.shapes[l].pixels();
    switch (L.kind) {
      case LayerKind::Dense: ops += 4; break;
      case LayerKind::Conv: ops += L.filter_h * L.filter_w + 4; break;
      case LayerKind::Activation: ops += L.activation.closed_form() ? 16 : 64; break;
      case LayerKind::Flatten: ops += P; break;
      case LayerKind::GlobalAvgPool: ops += P * P; break;
    }
  }
  return ops;
}

namespace {

void check_inputs_for(const Representation& rho, const Inputs& x, const char* what, const char* where) {
  if (!(x.shape == rho.shape()))
    bad(std::string(where) + ": " + what + " has shape " + x.shape.to_string() + ", but group '" + rho.name() +
        "' acts on " + rho.shape().to_string());
}

}  // namespace

namespace {
TheoremReport check_5_1_impl(const Architecture& arch, const Inputs& x1, const Inputs* x2p,
                             const Representation& rho, const EquivarianceCheckOptions& options) {
  std::string err;
  if (!options.IsValid(&err)) bad("check_theorem_5_1: options." + err);
  check_inputs_for(rho, x1, "x1", "check_theorem_5_1");
  if (x2p) check_inputs_for(rho, *x2p, "x2", "check_theorem_5_1");
  const bool spatial = is_spatial(arch);
  if (spatial) {
    require_same_map(arch, x1.shape, "check_theorem_5_1");
    if (rho.blocks() != x1.shape.pixels())
      bad("check_theorem_5_1: group '" + rho.name() + "' does not act pixel-wise, so it has no ρ_K on pixel-indexed kernels");
  }
  const Gram base = gram(arch, x1, x2p, options.kernel);
  const Index P = base.pixels;
  std::vector<ElementViolation> vk, vt, vc;
  double scale_k = max_abs(base.nngp), scale_t = max_abs(base.ntk);
  const bool kinked = kinked_activations(arch) > 0;
  const auto colpairs = collinear_pairs(x1.x, x2p ? x2p->x : x1.x);
  bool any_col = false;
  for (const auto& row : colpairs)
    for (char c : row) any_col = any_col || c;
  for (int g = 0; g < rho.size(); ++g) {
    const Inputs g1 = rho.apply(g, x1);
    Gram tg;
    if (x2p) {
      const Inputs g2 = rho.apply(g, *x2p);
      tg = gram(arch, g1, &g2, options.kernel);
    } else {
      tg = gram(arch, g1, nullptr, options.kernel);
    }
    MatrixXd ek = base.nngp, et = base.ntk;
    if (spatial) {
      const MatrixXd M = rho.block_matrix(g);  // ρ_K(g) on pixel indices
      ek = conj_blocks(base.nngp, M, P);
      et = conj_blocks(base.ntk, M, P);
    }
    scale_k = std::max(scale_k, max_abs(tg.nngp));
    scale_t = std::max(scale_t, max_abs(tg.ntk));
    vk.push_back({g, rho.label(g), max_abs(tg.nngp - ek)});
    double gen = 0, col = 0;
    for (Index r = 0; r < et.rows(); ++r)
      for (Index c = 0; c < et.cols(); ++c) {
        const double d = std::abs(tg.ntk(r, c) - et(r, c));
        if (kinked && colpairs[r / P][c / P]) col = std::max(col, d);
        else gen = std::max(gen, d);
      }
    vt.push_back({g, rho.label(g), gen});
    vc.push_back({g, rho.label(g), col});
  }
  const double ops = kernel_roundoff_ops(arch, x1.shape, &rho);
  const std::string rule = num(options.safety) + "·2·ε·ops·scale, ops = " + num(ops) +
                           " (input dot product, transform, filter taps, activations, readout sums)";
  TheoremReport t;
  t.theorem = std::string("Theorem 5.1 (") + rho.name() + ", " + (spatial ? "pixel-indexed kernels, ρ_K = pixel action" : "readout/MLP kernels, invariance") + ")";
  t.parts.push_back(finish("NNGP", std::move(vk), scale_k, options.safety * 2 * kEps * ops * scale_k, rule));
  t.parts.push_back(finish("NTK", std::move(vt), scale_t, options.safety * 2 * kEps * ops * scale_t, rule));
  if (kinked && any_col)
    t.parts.push_back(finish("NTK collinear pairs", std::move(vc), scale_t,
                             options.safety * 2 * collinear_rel_tol(arch, ops) * scale_t,
                             num(options.safety) + "·2·(kinked layers)·√(2·ε·ops)/π·scale: the ReLU-family NTK factor at θ = 0"));
  if (!rho.exact()) t.status = "group '" + rho.name() + "' is not an exact orthogonal group (" + rho.verify().to_string() + ")";
  finish_theorem(t);
  return t;
}
}  // namespace

TheoremReport check_theorem_5_1(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                                const Representation& rho_x, const EquivarianceCheckOptions& options) {
  return check_5_1_impl(arch, x1, &x2, rho_x, options);
}

TheoremReport check_theorem_5_1(const Architecture& arch, const Inputs& x, const Representation& rho_x,
                                const EquivarianceCheckOptions& options) {
  return check_5_1_impl(arch, x, nullptr, rho_x, options);
}

// ---- Lemmas 5.1 / 5.2 ----------------------------------------------------------------------

namespace {

// g_t(Θ) = V·diag(g_t(λ))·Vᵀ, g_t(λ) = (1 − e^{−cλ})/λ → c as λ → 0 (negative round-off clipped).
MatrixXd spectral_g(const Eigen::SelfAdjointEigenSolver<MatrixXd>& es, double c) {
  VectorXd f(es.eigenvalues().size());
  for (Index i = 0; i < f.size(); ++i) {
    const double l = std::max(0.0, es.eigenvalues()(i));
    f(i) = (c * l > 1e-300 && l > 0) ? -std::expm1(-c * l) / l : c;
  }
  return es.eigenvectors() * f.asDiagonal() * es.eigenvectors().transpose();
}

double permuted_violation(const MatrixXd& G, const std::vector<Index>& tau) {
  double v = 0;
  for (Index s = 0; s < G.cols(); ++s)
    for (Index r = 0; r < G.rows(); ++r) v = std::max(v, std::abs(G(tau[r], tau[s]) - G(r, s)));
  return v;
}

}  // namespace

TheoremReport check_lemmas_5_1_5_2(const Architecture& arch, const Inputs& train_x, const Representation& rho,
                                   const LemmaCheckOptions& options) {
  std::string err;
  if (!options.IsValid(&err)) bad("check_lemmas_5_1_5_2: options." + err);
  check_inputs_for(rho, train_x, "train_x", "check_lemmas_5_1_5_2");
  const bool spatial = is_spatial(arch);
  if (spatial) {
    require_same_map(arch, train_x.shape, "check_lemmas_5_1_5_2");
    if (!rho.is_permutation() || rho.blocks() != train_x.shape.pixels())
      bad("check_lemmas_5_1_5_2: group '" + rho.name() + "' does not permute pixels; pixel-indexed kernels need a pixel permutation group");
  }
  const Index N = train_x.count();
  const double sx = max_abs(train_x.x);
  // σ_g: the row equal to ρ(g)x_r (nearest in max norm).
  std::vector<std::vector<Index>> sigma(rho.size(), std::vector<Index>(N));
  std::vector<ElementViolation> vrow;
  for (int g = 0; g < rho.size(); ++g) {
    const RowMatrix xg = rho.apply(g, train_x.x);
    double worst = 0;
    // Nearest row, preferring rows not yet taken among equally near ones: augmented sets of
    // inputs fixed by some g (an all-up Ising state under c4) hold exact duplicates, and σ_g must
    // still be a bijection.
    std::vector<char> used(N, 0);
    for (Index r = 0; r < N; ++r) {
      double best = INFINITY;
      bool best_used = true;
      for (Index s = 0; s < N; ++s) {
        const double d = (xg.row(r) - train_x.x.row(s)).cwiseAbs().maxCoeff();
        if (d < best || (d == best && best_used && !used[s])) {
          best = d;
          best_used = used[s] != 0;
          sigma[g][r] = s;
        }
      }
      used[sigma[g][r]] = 1;
      worst = std::max(worst, best);
    }
    std::vector<char> hit(N, 0);
    for (Index s : sigma[g]) hit[s] = 1;
    bool bijective = std::all_of(hit.begin(), hit.end(), [](char c) { return c != 0; });
    vrow.push_back({g, rho.label(g), bijective ? worst : std::max(worst, sx)});
  }
  const double xops = rho.is_permutation() ? 0.0 : static_cast<double>(rho.blocks());
  TheoremReport t;
  t.theorem = "Lemmas 5.1/5.2 (" + rho.name() + ", " + std::to_string(N) + " training rows)";
  t.parts.push_back(finish("row permutation", std::move(vrow), sx, options.equivariance.safety * 2 * kEps * xops * sx,
                           "safety·2·ε·(terms of ρ(g)x)·max|x| (0 for permutations)"));
  const Gram G = gram(arch, train_x, nullptr, options.equivariance.kernel);
  const Index P = G.pixels, M = G.ntk.rows();
  // Full index map on (example, pixel): τ(i, a) = (σ_g(i), π_g⁻¹(a)), so that Θ[τr, τs] = Θ[r, s].
  std::vector<std::vector<Index>> tau(rho.size(), std::vector<Index>(M));
  for (int g = 0; g < rho.size(); ++g) {
    std::vector<Index> inv(P, 0);
    if (spatial) {
      const auto& pi = rho.block_permutation(g);
      for (Index a = 0; a < P; ++a) inv[pi[a]] = a;
    }
    for (Index i = 0; i < N; ++i)
      for (Index a = 0; a < P; ++a) tau[g][i * P + a] = sigma[g][i] * P + (spatial ? inv[a] : a);
  }
  const double ops = kernel_roundoff_ops(arch, train_x.shape, &rho);
  const double safety = options.equivariance.safety;
  const std::string rule = num(safety) + "·2·ε·ops·scale, ops = " + num(ops);
  std::vector<ElementViolation> vk, vt, vc;
  const bool kinked = kinked_activations(arch) > 0;
  const auto colpairs = collinear_pairs(train_x.x, train_x.x);
  for (int g = 0; g < rho.size(); ++g) {
    vk.push_back({g, rho.label(g), permuted_violation(G.nngp, tau[g])});
    double gen = 0, col = 0;
    for (Index c = 0; c < M; ++c)
      for (Index r = 0; r < M; ++r) {
        const double d = std::abs(G.ntk(tau[g][r], tau[g][c]) - G.ntk(r, c));
        if (kinked && (colpairs[r / P][c / P] || colpairs[tau[g][r] / P][tau[g][c] / P])) col = std::max(col, d);
        else gen = std::max(gen, d);
      }
    vt.push_back({g, rho.label(g), gen});
    vc.push_back({g, rho.label(g), col});
  }
  const double sk = max_abs(G.nngp), st = max_abs(G.ntk);
  const double tol_lin = safety * 2 * kEps * ops * st;
  const double tol_col = kinked ? safety * 2 * collinear_rel_tol(arch, ops) * st : 0.0;
  const double tol_t = std::max(tol_lin, tol_col);  // what enters g_t(Θ)
  t.parts.push_back(finish("Lemma 5.1 NNGP", std::move(vk), sk, safety * 2 * kEps * ops * sk, rule));
  t.parts.push_back(finish("Lemma 5.1 NTK", std::move(vt), st, tol_lin, rule));
  if (kinked)
    t.parts.push_back(finish("Lemma 5.1 NTK collinear pairs", std::move(vc), st, tol_col,
                             num(safety) + "·2·(kinked layers)·√(2·ε·ops)/π·scale: the ReLU-family NTK factor at θ = 0"));
  // Measured non-commutation of Θ itself, D = max_g ‖Π_gΘΠ_gᵀ − Θ‖_F.
  double defect = 0;
  for (int g = 0; g < rho.size(); ++g) {
    double f2 = 0;
    for (Index c = 0; c < M; ++c)
      for (Index r = 0; r < M; ++r) {
        const double d = G.ntk(tau[g][r], tau[g][c]) - G.ntk(r, c);
        f2 += d * d;
      }
    defect = std::max(defect, std::sqrt(f2));
  }
  // Only the round-off part of the defect may excuse g_t(Θ): cap D by what Lemma 5.1 tolerates.
  const double defect_used = std::min(defect, static_cast<double>(M) * tol_t);
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(0.5 * (G.ntk + G.ntk.transpose()));
  const double lmin = std::max(0.0, es.eigenvalues().minCoeff());
  const double fro = G.ntk.norm();
  for (double time : options.times) {
    const double c = options.learning_rate * time / (static_cast<double>(M) * options.outputs);
    const MatrixXd F = spectral_g(es, c);
    std::vector<ElementViolation> vf;
    for (int g = 0; g < rho.size(); ++g) vf.push_back({g, rho.label(g), permuted_violation(F, tau[g])});
    // Π·g_t(Θ)·Πᵀ = g_t(ΠΘΠᵀ), and g_t is Lipschitz with L = sup|g_t'| ≤ min(c²/2, 1/λ_min²) on the
    // spectrum, so ‖Πg_t(Θ̂)Πᵀ − g_t(Θ̂)‖_F ≤ L·(D + 2‖E‖_F) with the eigensolver's backward error
    // ‖E‖_F ≲ M·ε·‖Θ‖_F, plus the rounding of V·diag·Vᵀ (M·ε·c per entry, both sides).
    const double L = lmin > 0 ? std::min(0.5 * c * c, 1.0 / (lmin * lmin)) : 0.5 * c * c;
    const double tol = safety * (L * (defect_used + 2 * M * kEps * fro) + 2 * M * kEps * c);
    t.parts.push_back(finish("Lemma 5.2 g_t(Θ), t=" + time_text(time), std::move(vf), max_abs(F), tol,
                             "safety·[L·(D + 2M·ε·‖Θ‖_F) + 2M·ε·c], L = min(c²/2, 1/λ_min²), D = measured ‖ΠΘΠᵀ − Θ‖_F = " +
                                 num(defect) + " capped at M·tol_Θ, c = ηt/(Nk)"));
  }
  if (!rho.exact()) t.status = "group '" + rho.name() + "' is not exact";
  finish_theorem(t);
  return t;
}

// ---- Theorem 5.2 ---------------------------------------------------------------------------

TheoremReport check_theorem_5_2(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                const Inputs& test_x, const Representation& rho_x, const Representation& rho_y,
                                const Theorem52Options& options) {
  std::string err;
  if (!options.IsValid(&err)) bad("check_theorem_5_2: options." + err);
  check_inputs_for(rho_x, train_x, "train_x", "check_theorem_5_2");
  check_inputs_for(rho_x, test_x, "test_x", "check_theorem_5_2");
  if (rho_y.size() != rho_x.size())
    bad("check_theorem_5_2: rho_y has " + std::to_string(rho_y.size()) + " elements, expected |G| = " +
        std::to_string(rho_x.size()));
  if (train_y.rows() != train_x.count() || train_y.cols() != rho_y.dim())
    bad("check_theorem_5_2: train_y has shape (" + std::to_string(train_y.rows()) + ", " + std::to_string(train_y.cols()) +
        "), expected (N, rho_y dimension) = (" + std::to_string(train_x.count()) + ", " + std::to_string(rho_y.dim()) + ")");
  const bool spatial = is_spatial(arch);
  Index P = 1;
  if (spatial) {
    require_same_map(arch, train_x.shape, "check_theorem_5_2");
    P = train_x.shape.pixels();
    if (!rho_y.shape().image || rho_y.blocks() != P)
      bad("check_theorem_5_2: spatial outputs need a pixel action rho_y on (H, W, k) (see pixel_output), got " +
          rho_y.shape().to_string());
  }
  const Index kc = rho_y.dim() / P;  // outputs per row of the flow

  // Training set: the full orbit (hypothesis of the theorem) or the raw data.
  Inputs X = train_x;
  RowMatrix Yfull = train_y;
  if (options.augment) {
    AugmentedSet a = augment(train_x, train_y, rho_x, rho_y);
    X = std::move(a.x);
    Yfull = std::move(a.y);
  }
  const Index N = X.count(), M = N * P;
  const MatrixXd Y = Eigen::Map<const RowMatrix>(Yfull.data(), M, kc);
  const Gram G = gram(arch, X, nullptr, options.kernel);
  const GradientFlow flow(G.ntk, G.nngp, Y, options.flow);
  // The same problem with the training examples in reverse order: mathematically identical
  // predictions, so their difference measures the round-off of the whole pipeline.
  std::vector<Index> rev(M);
  for (Index i = 0; i < N; ++i)
    for (Index a = 0; a < P; ++a) rev[i * P + a] = (N - 1 - i) * P + a;
  MatrixXd Grt(M, M), Grk(M, M), Yr(M, kc);
  for (Index s = 0; s < M; ++s) {
    Yr.row(s) = Y.row(rev[s]);
    for (Index r = 0; r < M; ++r) {
      Grt(r, s) = G.ntk(rev[r], rev[s]);
      Grk(r, s) = G.nngp(rev[r], rev[s]);
    }
  }
  const GradientFlow flow_rev(Grt, Grk, Yr, options.flow);

  // Off-manifold inputs: N(0, s²) entries, s = RMS of the training inputs.
  const double rms = std::sqrt(train_x.x.squaredNorm() / std::max<double>(1.0, static_cast<double>(train_x.x.size())));
  RowMatrix noise(options.noise_inputs, train_x.x.cols());
  const NormalStream stream(options.seed, 0);
  for (Index r = 0; r < noise.rows(); ++r)
    for (Index c = 0; c < noise.cols(); ++c) noise(r, c) = rms * stream.normal(static_cast<std::uint64_t>(r * noise.cols() + c));
  std::vector<std::pair<std::string, Inputs>> sets = {{"test", test_x}};
  if (options.noise_inputs > 0) sets.push_back({"noise", Inputs(noise, train_x.shape)});

  const SpectralSummary& sm = flow.summary();
  const double lmin = sm.effective_condition > 0 && std::isfinite(sm.effective_condition)
                          ? sm.max_eigenvalue / sm.effective_condition : 0.0;
  const double ops = kernel_roundoff_ops(arch, train_x.shape, &rho_x);
  double ynorm = 0;
  for (Index c = 0; c < kc; ++c) ynorm = std::max(ynorm, Y.col(c).norm());
  const double orth_y = rho_y.verify().orthogonality_violation;
  // Training Gram round-off that the row permutation does not map onto itself: with kinked
  // activations, a pair of training rows that is nearly but not exactly (anti-)collinear (ρ(g)x
  // and ρ(g')x = −ρ(g)x up to the rounding of cos/sin, e.g. rot2(6)) carries the √ε error of the
  // ReLU-family NTK at θ ∈ {0, π}. Exact duplicates and exact antipodes are computed exactly.
  bool train_col = false;
  if (kinked_activations(arch) > 0) {
    const auto cp = collinear_pairs(X.x, X.x);
    for (Index i = 0; i < N && !train_col; ++i)
      for (Index j = 0; j < N && !train_col; ++j)
        train_col = i != j && cp[i][j] && X.x.row(i) != X.x.row(j) && X.x.row(i) != -X.x.row(j);
  }
  const double tol_train = train_col ? 2 * collinear_rel_tol(arch, ops) * max_abs(G.ntk) : 0.0;

  TheoremReport t;
  t.theorem = std::string("Theorem 5.2 (") + rho_x.name() + ", " + (options.augment ? "augmented" : "not augmented") +
              ", " + std::to_string(N) + " training examples)";
  t.status = std::string("spectral: ") + sm.to_string();
  const auto& times = options.times;
  for (const auto& [set_name, xs] : sets) {
    const Index Nt = xs.count();
    std::vector<std::vector<MatrixXd>> means(rho_x.size()), covs(rho_x.size());
    double tscale = 0, kscale = 0, ktt = 0, trow = 0;
    const double knorm = G.nngp.norm();
    for (int g = 0; g < rho_x.size(); ++g) {
      const Inputs xg = rho_x.apply(g, xs);
      const Gram tx = gram(arch, xg, &X, options.kernel);
      const Gram tt = gram(arch, xg, nullptr, options.kernel);
      means[g] = flow.mean(times, tx.ntk);
      covs[g] = flow.covariance(times, tx.ntk, tx.nngp, tt.nngp);
      tscale = std::max(tscale, max_abs(tx.ntk));
      trow = std::max(trow, tx.ntk.rowwise().norm().maxCoeff());
      kscale = std::max({kscale, max_abs(tx.nngp), max_abs(G.nngp)});
      ktt = std::max(ktt, max_abs(tt.nngp));
      if (g == 0) {
        // Round-off measured by the reversed training order (identity element).
        MatrixXd txr(tx.ntk.rows(), M), txk(tx.nngp.rows(), M);
        for (Index s = 0; s < M; ++s) {
          txr.col(s) = tx.ntk.col(rev[s]);
          txk.col(s) = tx.nngp.col(rev[s]);
        }
        const auto mr = flow_rev.mean(times, txr);
        const auto cr = flow_rev.covariance(times, txr, txk, tt.nngp);
        for (std::size_t q = 0; q < times.size(); ++q) {
          means[0].push_back(mr[q]);  // stored after the |times| real ones
          covs[0].push_back(cr[q]);
        }
      }
    }
    kscale = std::max(kscale, ktt);
    // The √ε allowance of the ReLU-family NTK applies only if a test input is collinear with a training input.
    bool col = false;
    if (kinked_activations(arch) > 0)
      for (const auto& row : collinear_pairs(xs.x, X.x))
        for (char c : row) col = col || c;
    const double tol_theta =
        (2 * kEps * ops + (col ? 2 * collinear_rel_tol(arch, ops) : 0.0)) * std::max(tscale, max_abs(G.ntk));
    const double tol_k = 2 * kEps * ops * kscale;
    for (std::size_t q = 0; q < times.size(); ++q) {
      const double time = times[q];
      const double c = std::isinf(time) ? INFINITY : options.flow.learning_rate * time / (static_cast<double>(M) * kc);
      const double gmax = lmin > 0 ? std::min(c, 1.0 / lmin) : (std::isinf(c) ? 0.0 : c);
      // Mean: rows (example, pixel) → (Nt, P·kc), then ρ_Y(g) on each example.
      auto as_rows = [&](const MatrixXd& m) {
        RowMatrix r(Nt, P * kc);
        for (Index i = 0; i < Nt; ++i)
          for (Index a = 0; a < P; ++a)
            for (Index cc = 0; cc < kc; ++cc) r(i, a * kc + cc) = m(i * P + a, cc);
        return r;
      };
      const RowMatrix m0 = as_rows(means[0][q]);
      const double meas_m = max_abs(m0 - as_rows(means[0][times.size() + q]));
      const double meas_c = max_abs(covs[0][q] - covs[0][times.size() + q]);
      std::vector<ElementViolation> vm, vc;
      double sm_ = max_abs(m0), sc = max_abs(covs[0][q]);
      for (int g = 0; g < rho_x.size(); ++g) {
        const RowMatrix mg = as_rows(means[g][q]);
        vm.push_back({g, rho_x.label(g), max_abs(mg - rho_y.apply(g, m0))});
        MatrixXd expect = covs[0][q];
        if (spatial) expect = conj_blocks(covs[0][q], rho_y.block_matrix(g), P);
        // Readouts: ρ_Y(Σ⊗I)ρ_Yᵀ = Σ⊗ρ_Yρ_Yᵀ, which differs from Σ⊗I by the orthogonality defect of ρ_Y.
        vc.push_back({g, rho_x.label(g), max_abs(covs[g][q] - expect) + (spatial ? 0.0 : orth_y * sc)});
        sm_ = std::max(sm_, max_abs(mg));
        sc = std::max(sc, max_abs(covs[g][q]));
      }
      // Kernel round-off propagated: δμ ≤ ‖δΘ(x,X)‖₁-row·|g_t(Θ)Y| ≤ tol_Θ·√M·g_max·‖Y‖; the
      // covariance sees A = Θ(x,X)g_t(Θ) with row ℓ1 norm a ≤ M·g_max·max|Θ(x,X)|.
      // Training Gram round-off δΘ (entries ≤ tol_train): ‖δg_t(Θ)‖₂ ≤ L·M·tol_train with g_t's
      // Lipschitz constant L = min(c²/2, 1/λ_min²) (c²/2 alone at t = ∞ would be infinite).
      const double L = std::isinf(c) ? (lmin > 0 ? 1.0 / (lmin * lmin) : 0.0)
                                     : (lmin > 0 ? std::min(0.5 * c * c, 1.0 / (lmin * lmin)) : 0.5 * c * c);
      const double dA = trow * L * static_cast<double>(M) * tol_train;
      const double dm = tol_theta * std::sqrt(static_cast<double>(M)) * gmax * ynorm + dA * ynorm;
      // Covariance: A = Θ(x,X)g_t(Θ) has rows of 2-norm ≤ a2 = g_max·max‖Θ(x_i,X)‖₂ and kernel
      // round-off moves them by ≤ da2 = g_max·√M·tol_Θ; K(X,X) is shared by both sides, so
      // δΣ ≤ tol_K + 2(da2·‖K(X,x)‖ + a2·√M·tol_K) + 2·da2·‖K(X,X)‖_F·a2.
      const double sqm = std::sqrt(static_cast<double>(M));
      const double a2 = gmax * trow, da2 = gmax * sqm * tol_theta;
      const double dc = tol_k + 2 * (da2 * sqm * kscale + a2 * sqm * tol_k) + 2 * da2 * knorm * a2 +
                        2 * dA * (knorm * a2 + sqm * kscale);
      const std::string ts = time_text(time);
      t.parts.push_back(finish("mean t=" + ts + " " + set_name, std::move(vm), sm_, options.safety * (meas_m + dm + kEps * sm_),
                               "safety·(reversed-order round-off " + num(meas_m) + " + kernel round-off propagated " + num(dm) + " + ε·scale)"));
      t.parts.push_back(finish("covariance t=" + ts + " " + set_name, std::move(vc), sc, options.safety * (meas_c + dc + kEps * sc),
                               "safety·(reversed-order round-off " + num(meas_c) + " + kernel round-off propagated " + num(dc) + " + ε·scale)"));
    }
  }
  // A tolerance above the quantity's own scale cannot tell anything apart (ill-conditioned Gram
  // matrices at t = ∞ with the √ε ReLU allowance): say so rather than let "holds" pass silently.
  std::string vacuous;
  for (const auto& p : t.parts)
    if (p.scale > 0 && p.tolerance > p.scale) vacuous += (vacuous.empty() ? "" : ", ") + p.name;
  if (!vacuous.empty())
    t.status += "; not resolvable at this conditioning (tolerance > scale): " + vacuous;
  finish_theorem(t);
  return t;
}

// ---- members ---------------------------------------------------------------------------------

namespace {

// Stack ρ(g)x for every g: rows g·m + i.
Inputs orbit_of(const Representation& rho, const Inputs& x) {
  RowMatrix all(static_cast<Index>(rho.size()) * x.count(), x.x.cols());
  for (int g = 0; g < rho.size(); ++g) all.middleRows(g * x.count(), x.count()) = rho.apply(g, x.x);
  return Inputs(std::move(all), x.shape);
}

void require_readout(const Architecture& arch, const char* where) {
  if (is_spatial(arch))
    bad(std::string(where) + ": arch '" + arch.to_string() + "' keeps pixel indices; expected a readout or an MLP");
}

// value(member, time, row, out) over rows g·m + i; fills one time of the report.
template <class F>
void member_violations(MemberViolationReport& r, const Representation& rho_y, int members, Index m, Index k, F value,
                       int time) {
  const int n = rho_y.size();
  double vmax = 0, vsum = 0, sc = 0;
  MatrixXd avg = MatrixXd::Zero(static_cast<Index>(n) * m, k);
  for (int mem = 0; mem < members; ++mem) {
    MatrixXd f(static_cast<Index>(n) * m, k);
    for (Index row = 0; row < f.rows(); ++row)
      for (Index j = 0; j < k; ++j) f(row, j) = value(mem, time, row, j);
    avg += f / members;
    sc = std::max(sc, max_abs(f));
    double v = 0;
    for (int g = 0; g < n; ++g) {
      const MatrixXd expect = f.topRows(m) * rho_y.matrix(g).transpose();
      v = std::max(v, max_abs(f.middleRows(g * m, m) - expect));
    }
    vmax = std::max(vmax, v);
    vsum += v;
  }
  double va = 0;
  for (int g = 0; g < n; ++g) va = std::max(va, max_abs(avg.middleRows(g * m, m) - avg.topRows(m) * rho_y.matrix(g).transpose()));
  r.member_max.push_back(vmax);
  r.member_mean.push_back(vsum / members);
  r.sample_mean.push_back(va);
  r.scale.push_back(sc);
}

}  // namespace

std::string MemberViolationReport::to_string() const {
  std::ostringstream s;
  s << kind << ", " << members << " members:";
  for (std::size_t q = 0; q < times.size(); ++q)
    s << "\n  " << (kind.rfind("finite", 0) == 0 ? "step " : "t=") << time_text(times[q]) << ": member violation max "
      << num(member_max[q]) << " (mean " << num(member_mean[q]) << "), of their average " << num(sample_mean[q])
      << ", scale " << num(scale[q]);
  return s.str();
}

MemberViolationReport linearized_member_violation(const Architecture& arch, const Inputs& train_x,
                                                  const RowMatrix& train_y, const Inputs& inputs,
                                                  const Representation& rho_x, const Representation& rho_y,
                                                  const std::vector<double>& times, int members, std::uint64_t seed,
                                                  const KernelOptions& kernel, const GradientFlowOptions& flow) {
  require_readout(arch, "linearized_member_violation");
  check_inputs_for(rho_x, inputs, "inputs", "linearized_member_violation");
  if (members < 1) bad("linearized_member_violation: members = " + std::to_string(members) + ", expected >= 1");
  const AugmentedSet a = augment(train_x, train_y, rho_x, rho_y);
  const Inputs all = orbit_of(rho_x, inputs);
  const Kernels tr = kernels(arch, a.x, kernel);
  const Kernels cr = kernels(arch, all, a.x, kernel);
  const Kernels tt = kernels(arch, all, kernel);
  const GradientFlow f(tr.ntk, tr.nngp, MatrixXd(a.y), flow);
  const LinearizedEnsemble e = f.sample_members(times, cr.ntk, cr.nngp, tt.nngp, members, seed);
  MemberViolationReport r;
  r.kind = "linearised (infinite width)";
  r.members = members;
  r.times = times;
  for (int q = 0; q < static_cast<int>(times.size()); ++q)
    member_violations(r, rho_y, members, inputs.count(), a.y.cols(),
                      [&](int mem, int t, Index row, Index j) { return e(mem, t, row, j); }, q);
  return r;
}

MemberViolationReport finite_member_violation(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                              const Inputs& inputs, const Representation& rho_x,
                                              const Representation& rho_y, const TrainingOptions& options) {
  require_readout(arch, "finite_member_violation");
  check_inputs_for(rho_x, inputs, "inputs", "finite_member_violation");
  const AugmentedSet a = augment(train_x, train_y, rho_x, rho_y);
  const Inputs all = orbit_of(rho_x, inputs);
  const EnsembleResult e = train_ensemble(arch, a.x, a.y, all, options);
  MemberViolationReport r;
  r.kind = "finite width (" + arch.to_string() + ", gradient descent, lr " + num(options.learning_rate) + ")";
  r.members = e.members;
  for (int c : options.checkpoints) r.times.push_back(c);
  for (int q = 0; q < e.checkpoints; ++q)
    member_violations(r, rho_y, e.members, inputs.count(), a.y.cols(),
                      [&](int mem, int t, Index row, Index j) { return e.at(mem, t, row, j); }, q);
  return r;
}

}  // namespace emergent
