#include "detail/theorem_support.hpp"

#include <cmath>
#include <numbers>

namespace emergent::detail {

using Eigen::Index;
using Eigen::MatrixXd;

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

MatrixXd conj_blocks(const MatrixXd& G, const MatrixXd& M, Index P) {
  MatrixXd out(G.rows(), G.cols());
  for (Index i = 0; i < G.rows() / P; ++i)
    for (Index j = 0; j < G.cols() / P; ++j)
      out.block(i * P, j * P, P, P).noalias() = M * G.block(i * P, j * P, P, P) * M.transpose();
  return out;
}

void require_same_map(const Architecture& arch, const ExampleShape& in, const char* where) {
  const ExampleShape out = arch.shapes(in).shapes.back();
  if (out.height != in.height || out.width != in.width)
    bad(std::string(where) + ": the architecture '" + arch.to_string() + "' maps " + in.to_string() + " to " +
        out.to_string() + "; ρ_K needs the output map to keep the input's H×W (use same/circular padding or a readout)");
}

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

std::vector<std::vector<char>> collinear_pairs(const RowMatrix& a, const RowMatrix& b) {
  std::vector<std::vector<char>> c(a.rows(), std::vector<char>(b.rows(), 0));
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < b.rows(); ++j) {
      const double n = a.row(i).norm() * b.row(j).norm();
      c[i][j] = n > 0 && std::abs(a.row(i).dot(b.row(j))) >= (1 - 1e-12) * n;
    }
  return c;
}

double collinear_rel_tol(const Architecture& arch, double ops) {
  return kinked_activations(arch) * std::sqrt(2 * kEps * ops) / std::numbers::pi;
}

}  // namespace emergent::detail
