// Internal (lib/theorems): kernels as (example, pixel) × (example, pixel) matrices, and the
// shape check shared by every theorem check.
#pragma once

#include <Eigen/Dense>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/symmetry/representation.hpp"
#include "detail/errors.hpp"

namespace emergent::detail {

struct Gram {
  Eigen::MatrixXd nngp, ntk;
  int pixels = 1;
};

inline bool is_spatial(const Architecture& arch) { return arch.expects_images() && !arch.has_readout(); }

/// K and Θ with rows (example, pixel) for spatial architectures, (example) otherwise.
Gram gram(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options);

/// Throws unless the inputs x (named `what`, in the function `where`) have the shape rho acts on.
inline void check_inputs_for(const Representation& rho, const Inputs& x, const char* what, const char* where) {
  if (!(x.shape == rho.shape()))
    detail::bad(std::string(where) + ": " + what + " has shape " + x.shape.to_string() + ", but group '" + rho.name() +
        "' acts on " + rho.shape().to_string());
}

}  // namespace emergent::detail
