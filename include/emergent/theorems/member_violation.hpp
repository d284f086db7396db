// Members are not equivariant (Gerken & Kessel 2024 §5): only the ensemble mean is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/networks/ensemble.hpp"
#include "emergent/symmetry/representation.hpp"

namespace emergent {

/// Violation of equivariance by individual members, at each time/checkpoint: for member m,
/// v_m = max_{g, x} |f_m(ρ_X(g)x) − ρ_Y(g)f_m(x)| over the given inputs and all elements.
struct MemberViolationResult {
  std::string kind;                      ///< "linearized (infinite width)" or "finite width (…)"
  int members = 0;
  std::vector<double> times;             ///< t (linearized) or gradient steps (finite width)
  std::vector<double> member_max;        ///< max_m v_m, per time
  std::vector<double> member_mean;       ///< (1/M)Σ_m v_m, per time
  std::vector<double> sample_mean;       ///< the same violation of the M-member average (→ 0 as M → ∞)
  std::vector<double> scale;             ///< max |f_m(x)| over members, inputs, elements, per time
  /// Members whose predictions are not finite (diverged training), per time; their violation is
  /// NaN and makes member_max, member_mean and sample_mean NaN at that time (never swallowed).
  std::vector<int> diverged;
  std::string to_string() const;
};

/// Linearized infinite-width members (GradientFlow::sample_members) trained on the full orbit of
/// (train_x, train_y): their priors f_0 are drawn jointly on the augmented set and on every ρ(g)x,
/// so each member is one function. Readout/MLP architectures only; exact or approximate groups.
MemberViolationResult linearized_member_violation(const Architecture& arch, const Inputs& train_x,
                                                  const RowMatrix& train_y, const Inputs& inputs,
                                                  const Representation& rho_x, const Representation& rho_y,
                                                  const std::vector<double>& times, int members, std::uint64_t seed,
                                                  const KernelOptions& kernel = {}, const GradientFlowOptions& flow = {});

/// Finite-width members (train_ensemble, full-batch GD on the loss of docs/conventions.md §3) trained on
/// the full orbit; options.checkpoints are the reported steps. Readout/MLP architectures only.
MemberViolationResult finite_member_violation(const Architecture& arch, const Inputs& train_x, const RowMatrix& train_y,
                                              const Inputs& inputs, const Representation& rho_x,
                                              const Representation& rho_y, const TrainingOptions& options);

}  // namespace emergent
