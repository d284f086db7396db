// The built-in groups and output actions (include/emergent/symmetry/groups.hpp).
#include "emergent/symmetry/groups.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <cctype>
#include <map>
#include <numbers>

#include <Eigen/Geometry>

#include "emergent/core/image_geometry.hpp"
#include "emergent/data/npy.hpp"

#include "detail/errors.hpp"
#include "detail/format.hpp"
#include "detail/permutation.hpp"

namespace emergent {

namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using detail::bad;
using detail::compose_maps;
using detail::identity_map;
using detail::num;
using detail::Perm;


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

Representation::Element perm_element(std::string label, Perm p) {
  Representation::Element e;
  e.label = std::move(label);
  e.permutation = std::move(p);
  return e;
}

}  // namespace

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


namespace {
// Largest group order accepted: the composition table holds |G|² ints (64 MiB at 4096) and the
// closure check costs |G|² products, so larger orders are refused before anything is built.
constexpr long long kMaxGroupOrder = 4096;
void check_order(long long order, const std::string& what) {
  if (order > kMaxGroupOrder)
    bad("group '" + what + "': " + std::to_string(order) + " elements, expected at most " +
        std::to_string(kMaxGroupOrder) + " (the composition table holds |G|² entries)");
}
}  // namespace

Representation group_rotation(int k, const ExampleShape& shape) {
  const std::string name = "rot(" + std::to_string(k) + ")";
  require_image(shape, name);
  if (k < 1) bad("group 'rot(K)': K = " + std::to_string(k) + ", expected a positive integer");
  check_order(k, name);
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
  check_order(k, name);
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

// ---- finite subgroups of SO(3) ------------------------------------------------------------

namespace {

using Eigen::Matrix3d;

// Entries of the cube and icosahedron rotations in the orientations used here; an entry within
// 1e-9 of one is replaced by the correctly rounded value so that products close to round-off.
double snap_entry(double v) {
  const double phi = std::numbers::phi;
  for (double c : {0.0, 0.5, 1.0, phi / 2, 1.0 / (2 * phi)}) {
    if (std::fabs(v - c) < 1e-9) return c;
    if (std::fabs(v + c) < 1e-9) return -c;
  }
  return v;
}

// Breadth-first closure of the generators under left multiplication: identity first, then in
// order of discovery (deterministic). `order` is the group order, checked.
std::vector<Matrix3d> close_rotations(const std::vector<Matrix3d>& generators, std::size_t order, const char* name) {
  std::vector<Matrix3d> found = {Matrix3d::Identity()};
  for (std::size_t next = 0; next < found.size(); ++next)
    for (const Matrix3d& s : generators) {
      Matrix3d p = s * found[next];
      for (Index i = 0; i < 9; ++i) p.data()[i] = snap_entry(p.data()[i]);
      bool seen = false;
      for (const Matrix3d& q : found) seen = seen || (p - q).cwiseAbs().maxCoeff() < 1e-9;
      if (!seen) found.push_back(p);
      if (found.size() > order) break;
    }
  if (found.size() != order)
    throw std::logic_error(std::string("group '") + name + "': closure found " + std::to_string(found.size()) +
                           " rotations, expected " + std::to_string(order));
  return found;
}

Representation rotations_on_triples(const std::string& name, const ExampleShape& shape,
                                    const std::vector<Matrix3d>& rotations) {
  require_vector(shape, name);
  const int d = shape.channels;
  if (d % 3 != 0)
    bad("group '" + name + "': needs a number of features divisible by 3 (vectors of ℝ³), got shape " + shape.to_string());
  std::vector<Representation::Element> e;
  for (std::size_t g = 0; g < rotations.size(); ++g) {
    Representation::Element el;
    el.label = g == 0 ? std::string("e") : name + "[" + std::to_string(g) + "]";
    el.matrix = MatrixXd::Zero(d, d);
    for (int m = 0; m < d; m += 3) el.matrix.block<3, 3>(m, m) = rotations[g];
    e.push_back(std::move(el));
  }
  return Representation(name, shape, std::move(e), true);
}

}  // namespace

std::vector<Eigen::Matrix3d> cube_rotations() {
  Matrix3d z, x;  // quarter turns about the z and x axes generate the 24 rotations of the cube
  z << 0, -1, 0, 1, 0, 0, 0, 0, 1;
  x << 1, 0, 0, 0, 0, -1, 0, 1, 0;
  return close_rotations({z, x}, 24, "cube");
}

std::vector<Eigen::Matrix3d> icosahedron_rotations() {
  // The 3-cycle of the coordinates and the half turn diag(1, −1, −1) generate the tetrahedral
  // rotations; with a fifth turn about the vertex (0, 1, φ) they generate all 60.
  Matrix3d cycle, half;
  cycle << 0, 0, 1, 1, 0, 0, 0, 1, 0;
  half << 1, 0, 0, 0, -1, 0, 0, 0, -1;
  const Eigen::Vector3d axis = Eigen::Vector3d(0, 1, std::numbers::phi).normalized();
  Matrix3d fifth = Eigen::AngleAxisd(2 * std::numbers::pi / 5, axis).toRotationMatrix();
  for (Index i = 0; i < 9; ++i) fifth.data()[i] = snap_entry(fifth.data()[i]);
  return close_rotations({cycle, half, fifth}, 60, "icosahedron");
}

Representation group_cube(const ExampleShape& shape) { return rotations_on_triples("cube", shape, cube_rotations()); }

Representation group_icosahedron(const ExampleShape& shape) {
  return rotations_on_triples("icosahedron", shape, icosahedron_rotations());
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
  check_order(static_cast<long long>(n), path);
  if (static_cast<long long>(d) != shape.size())
    bad("group file '" + path + "': matrices of shape (" + std::to_string(d) + ", " + std::to_string(d) + "), expected (" +
        std::to_string(shape.size()) + ", " + std::to_string(shape.size()) + ") for inputs of shape " + shape.to_string());
  // Entries bounded so that the closure tolerance 8ε·d·max² stays finite (representation.cpp).
  for (std::size_t i = 0; i < a.data.size(); ++i)
    if (!std::isfinite(a.data[i]) || std::fabs(a.data[i]) > 1e100)
      bad("group file '" + path + "': entry " + std::to_string(i) + " is " + num(a.data[i]) +
          ", expected finite entries of magnitude at most 1e100");
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
  if (name == "cube") return group_cube(shape);
  if (name == "icosahedron") return group_icosahedron(shape);
  if (call("rot2")) return group_rot2(arg("rot2"), shape);
  if (call("rot")) return group_rotation(arg("rot"), shape);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) return group_from_npy(std::string(name_in), shape);
  bad("group: unknown name '" + std::string(name_in) +
      "', expected one of c4, d4, flip, translations, rot(K), sign, cyclic, rot2(K), cube, icosahedron or a .npy file");
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

// ---- checked output actions (the --output-rep of docs/conventions.md §5) -----------------

namespace {

void require_exact_input(const Representation& input, const std::string& what) {
  if (!input.exact())
    bad(what + ": the input group '" + input.name() +
        "' is not an exact group (no multiplication table), so only 'trivial' and 'pixels' apply");
}

}  // namespace

Representation checked_matrix_output(const Representation& input, const std::vector<MatrixXd>& m,
                                     const std::string& what) {
  require_exact_input(input, what);
  if (static_cast<int>(m.size()) != input.size())
    bad(what + ": " + std::to_string(m.size()) + " matrices, expected one per element of '" + input.name() + "' (" +
        std::to_string(input.size()) + ")");
  const Index k = m[0].rows();
  double big = 1;
  for (std::size_t g = 0; g < m.size(); ++g) {
    if (m[g].rows() != k || m[g].cols() != k)
      bad(what + ": matrix " + std::to_string(g) + " has shape (" + std::to_string(m[g].rows()) + ", " +
          std::to_string(m[g].cols()) + "), expected (" + std::to_string(k) + ", " + std::to_string(k) + ")");
    if (!m[g].allFinite()) bad(what + ": matrix " + std::to_string(g) + " has a non-finite entry");
    big = std::max(big, m[g].cwiseAbs().maxCoeff());
  }
  // The round-off allowance of Representation::verify (one product of two k × k matrices).
  const double tol = 8.0 * std::numeric_limits<double>::epsilon() * static_cast<double>(k) * big * big;
  auto name_of = [&](int g) { return "element " + std::to_string(g) + " ('" + input.label(g) + "')"; };
  const MatrixXd I = MatrixXd::Identity(k, k);
  const double id = (m[0] - I).cwiseAbs().maxCoeff();
  if (id > tol)
    bad(what + ": " + name_of(0) + " is the identity of '" + input.name() + "' but max|ρ_Y(e) − I| = " + num(id) +
        " (tolerance " + num(tol) + ")");
  for (int g = 0; g < input.size(); ++g) {
    const double o = (m[g].transpose() * m[g] - I).cwiseAbs().maxCoeff();
    if (o > tol)
      bad(what + ": the matrix of " + name_of(g) + " is not orthogonal: max|ρ_Y(g)ᵀρ_Y(g) − I| = " + num(o) +
          " (tolerance " + num(tol) + ")");
  }
  const auto& law = input.composition_table();
  for (int g = 0; g < input.size(); ++g)
    for (int h = 0; h < input.size(); ++h) {
      const int gh = law[g][h];
      const double c = (m[g] * m[h] - m[gh]).cwiseAbs().maxCoeff();
      if (c > tol)
        bad(what + ": not a homomorphism of '" + input.name() + "': ρ_Y(g)ρ_Y(h) ≠ ρ_Y(g·h) for g = " + name_of(g) +
            ", h = " + name_of(h) + ", g·h = " + name_of(gh) + ": max difference " + num(c) + " (tolerance " +
            num(tol) + ")");
    }
  Representation out = matrix_output(input, m);
  if (!out.exact()) bad(what + ": not an exact output action: " + out.check().to_string());
  return out;
}

Representation regular_output(const Representation& input) {
  require_exact_input(input, "regular_output");
  const int n = input.size();
  std::vector<Representation::Element> e;
  for (int g = 0; g < n; ++g) {
    // (ρ_Y(g)y)[a] = y[g⁻¹·a]: the basis vector e_h is moved to e_{g·h}.
    Perm p(static_cast<std::size_t>(n));
    for (int a = 0; a < n; ++a) p[a] = input.compose(input.inverse(g), a);
    e.push_back(perm_element(input.label(g), std::move(p)));
  }
  return Representation("regular", ExampleShape::vector(n), std::move(e), true, &input.composition_table());
}

Representation sign_output(const Representation& input, int outputs) {
  require_exact_input(input, "sign_output");
  if (outputs < 1) bad("sign_output: outputs = " + std::to_string(outputs) + ", expected ≥ 1");
  std::vector<Representation::Element> e;
  for (int g = 0; g < input.size(); ++g) {
    const std::string& l = input.label(g);
    double chi;
    if (input.name() == "flip" || input.name() == "d4") chi = l.find('f') != std::string::npos ? -1 : 1;
    else if (input.name() == "sign") chi = l == "-" ? -1 : 1;
    else chi = input.block_matrix(g).determinant() < 0 ? -1 : 1;
    Representation::Element el = perm_element(l, identity_map(outputs));
    el.signs.assign(static_cast<std::size_t>(outputs), chi);
    e.push_back(std::move(el));
  }
  Representation out("sign", ExampleShape::vector(outputs), std::move(e), true, &input.composition_table());
  if (!out.exact()) bad("sign_output: the sign character is not a homomorphism of '" + input.name() + "'");
  return out;
}

Representation rotation_output(const Representation& input) {
  const std::string& n = input.name();
  Index k = 0;
  if (n.rfind("rot2(", 0) == 0) k = 2;
  if (n == "cube" || n == "icosahedron") k = 3;
  if (k == 0)
    bad("rotation_output: the input group '" + n + "' is not made of rotations of ℝ² or ℝ³; expected rot2(K), cube or icosahedron");
  require_exact_input(input, "rotation_output");
  std::vector<Representation::Element> e;
  for (int g = 0; g < input.size(); ++g) {
    Representation::Element el;
    el.label = input.label(g);
    el.matrix = input.block_matrix(g).topLeftCorner(k, k);
    e.push_back(std::move(el));
  }
  return Representation("rotation", ExampleShape::vector(static_cast<int>(k)), std::move(e), true,
                        &input.composition_table());
}

Representation make_output_rep(std::string_view name_in, const Representation& input, const ExampleShape& output) {
  const std::string name(name_in);
  const std::string what = "output representation '" + name + "'";
  const bool spatial = output.image;
  auto need_vector = [&](Index k) {
    if (spatial)
      bad(what + ": acts on vector outputs, but the network's outputs are an image " + output.to_string() +
          " (no readout); expected 'pixels'");
    if (k > 0 && output.size() != k)
      bad(what + ": acts on " + std::to_string(k) + "-vectors, but the network has " + std::to_string(output.size()) +
          " output(s); expected a final dense(" + std::to_string(k) + ")");
  };
  if (name == "trivial") {
    need_vector(0);
    return trivial_output(input, output.channels);
  }
  if (name == "pixels") {
    if (!spatial) bad(what + ": needs image outputs (a network without readout), got " + output.to_string());
    return pixel_output(input, output);
  }
  if (name == "sign") {
    need_vector(0);
    return sign_output(input, output.channels);
  }
  if (name == "regular") {
    need_vector(input.size());
    return regular_output(input);
  }
  if (name == "rotation") {
    const std::string& n = input.name();
    need_vector(n.rfind("rot2(", 0) == 0 ? 2 : (n == "cube" || n == "icosahedron") ? 3 : 0);
    return rotation_output(input);
  }
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) {
    need_vector(0);
    const NpyArray a = read_npy(name);
    const Index k = output.size();
    if (a.shape.size() != 3 || a.shape[0] != static_cast<std::size_t>(input.size()) ||
        a.shape[1] != static_cast<std::size_t>(k) || a.shape[2] != static_cast<std::size_t>(k)) {
      std::string sh = "(";
      for (std::size_t i = 0; i < a.shape.size(); ++i) sh += (i ? ", " : "") + std::to_string(a.shape[i]);
      bad(what + ": shape " + sh + (a.shape.size() == 1 ? ",)" : ")") + ", expected (|G|, k, k) = (" +
          std::to_string(input.size()) + ", " + std::to_string(k) + ", " + std::to_string(k) + ") for '" +
          input.name() + "' and " + std::to_string(k) + " output(s)");
    }
    std::vector<MatrixXd> m(static_cast<std::size_t>(input.size()), MatrixXd(k, k));
    for (int g = 0; g < input.size(); ++g)
      for (Index i = 0; i < k; ++i)
        for (Index j = 0; j < k; ++j) m[g](i, j) = a.data[(static_cast<std::size_t>(g) * k + i) * k + j];
    return checked_matrix_output(input, m, what);
  }
  bad(what + ": unknown; expected trivial, pixels, sign, regular, rotation or a .npy file of shape (|G|, k, k)");
}

}  // namespace emergent
