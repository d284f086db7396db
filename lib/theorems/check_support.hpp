// Internal (lib/theorems): assembling the typed CheckResults of every theorem check.
#pragma once

#include <string>
#include <vector>

#include "emergent/theorems/check_result.hpp"

namespace emergent::detail {

/// What a part checks: the typed fields of its CheckResult.
struct PartId {
  Theorem theorem;
  Quantity quantity;
  InputSet inputs;
  double time = kNoTime;
};

/// The CheckResult of one identity: worst element, holds iff the (finite) max violation ≤ tolerance.
CheckResult finish(const PartId& id, std::vector<ElementViolation> elements, double scale, double tolerance,
                   std::string rule);

/// holds iff there is a part and every part holds.
void finish_theorem(TheoremResult& t);

}  // namespace emergent::detail
