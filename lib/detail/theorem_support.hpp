// Internal (lib/theorems): kernels as (example, pixel) × (example, pixel) matrices, the shape
// checks and the round-off allowances shared by every theorem check.
#pragma once

#include <Eigen/Dense>
#include <limits>
#include <string>
#include <vector>

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

constexpr double kEps = std::numeric_limits<double>::epsilon();

inline double max_abs(const Eigen::MatrixXd& a) { return a.size() ? a.cwiseAbs().maxCoeff() : 0.0; }

/// (I ⊗ M)·G·(I ⊗ M)ᵀ on P×P blocks: ρ_K(g) = M acting on both pixel indices of every (i, j) block.
Eigen::MatrixXd conj_blocks(const Eigen::MatrixXd& G, const Eigen::MatrixXd& M, Eigen::Index P);

/// Throws unless the output map of a spatial architecture keeps the input's H×W (ρ_K is then
/// the input's pixel action).
void require_same_map(const Architecture& arch, const ExampleShape& in, const char* where);

/// Number of activations with a kink (ReLU family with a ≠ b). Their NTK factor (π−θ)/2π has
/// infinite slope at θ = 0 (collinear inputs): a relative round-off δ in the correlation moves θ
/// by √(2δ), so an input paired with itself carries √ε-sized error (Cho & Saul 2009 Eq. 6).
int kinked_activations(const Architecture& arch);

/// collinear(i, j): b_j = c·a_i (|cos| within 1e-12 of 1).
std::vector<std::vector<char>> collinear_pairs(const RowMatrix& a, const RowMatrix& b);

/// Relative round-off allowance of the NTK on collinear pairs: per kinked layer √(2·ε·ops)/π.
double collinear_rel_tol(const Architecture& arch, double ops);

}  // namespace emergent::detail
