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

#include "emergent/core/image_geometry.hpp"
#include "emergent/data/npy.hpp"

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

}  // namespace emergent
