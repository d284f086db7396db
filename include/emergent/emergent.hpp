// Everything: #include <emergent/emergent.hpp>
#pragma once

#include "emergent/activation.hpp"
#include "emergent/architecture.hpp"
#include "emergent/bounds.hpp"
#include "emergent/ensemble.hpp"
#include "emergent/gradient_flow.hpp"
#include "emergent/group.hpp"
#include "emergent/inputs.hpp"
#include "emergent/kernel.hpp"
#include "emergent/memory.hpp"
#include "emergent/network.hpp"
#include "emergent/npy.hpp"
#include "emergent/quadrature.hpp"
#include "emergent/random.hpp"
