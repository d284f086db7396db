// Numerical checks of the emergent-equivariance results of Gerken & Kessel, "Emergent Equivariance
// in Deep Ensembles" (ICML 2024), one header per statement: Theorem 5.1 (kernel_transform.hpp),
// Lemmas 5.1/5.2 (lemmas.hpp) and Theorem 5.2 (ensemble_equivariance.hpp), with the typed results
// of check_result.hpp.
#pragma once

#include "emergent/theorems/check_result.hpp"
#include "emergent/theorems/ensemble_equivariance.hpp"
#include "emergent/theorems/kernel_transform.hpp"
#include "emergent/theorems/lemmas.hpp"
