// Everything: #include <emergent/emergent.hpp>. The folders follow the science, each layer
// using only those before it (docs/architecture.md): core ← {kernels, networks, symmetry, data}
// ← dynamics ← {theorems, bounds}.
#pragma once

#include "emergent/core/activation.hpp"
#include "emergent/core/architecture.hpp"
#include "emergent/core/cancellation.hpp"
#include "emergent/core/errors.hpp"
#include "emergent/core/image_geometry.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/core/memory.hpp"
#include "emergent/core/random.hpp"

#include "emergent/kernels/activation_dual.hpp"
#include "emergent/kernels/general_kernel.hpp"
#include "emergent/kernels/kernel.hpp"
#include "emergent/kernels/quadrature.hpp"

#include "emergent/networks/ensemble.hpp"
#include "emergent/networks/network.hpp"

#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"

#include "emergent/data/datasets.hpp"
#include "emergent/data/ising.hpp"
#include "emergent/data/npy.hpp"

#include "emergent/dynamics/gradient_flow.hpp"
#include "emergent/dynamics/orbit_flow.hpp"
#include "emergent/dynamics/spectral_filter.hpp"

#include "emergent/theorems/check_result.hpp"
#include "emergent/theorems/kernel_transform.hpp"
#include "emergent/theorems/lemmas.hpp"
#include "emergent/theorems/ensemble_equivariance.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"

#include "emergent/bounds/continuous_group.hpp"
#include "emergent/bounds/so3_bound.hpp"
#include "emergent/bounds/finite_ensemble.hpp"
#include "emergent/bounds/fit.hpp"
