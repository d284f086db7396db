#include "detail/theorem_support.hpp"

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

// (I ⊗ M)·G·(I ⊗ M)ᵀ: ρ_K acting on both pixel indices of every (i, j) block (exact for

}  // namespace emergent::detail
