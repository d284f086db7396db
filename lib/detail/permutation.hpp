// Internal: index maps used as gathers, (ρx)[a] = x[π(a)].
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <vector>

namespace emergent::detail {

using Perm = std::vector<Eigen::Index>;

inline Perm identity_map(Eigen::Index n) {
  Perm p(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) p[i] = i;
  return p;
}

/// Gather maps compose as (ρ_g ρ_h x)[a] = x[π_h(π_g(a))].
inline Perm compose_maps(const Perm& g, const Perm& h) {
  Perm out(g.size());
  for (std::size_t a = 0; a < g.size(); ++a) out[a] = h[g[a]];
  return out;
}

}  // namespace emergent::detail
