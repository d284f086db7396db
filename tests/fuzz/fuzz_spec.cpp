// libFuzzer target: the architecture spec parser (docs/conventions.md §1) and the shape
// arithmetic on a few input shapes. Any input must either parse or throw std::invalid_argument
// (SpecError derives from it); anything else — a crash, a sanitizer report, another exception —
// is a bug. Build and run: see docs/robustness.md.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "emergent/core/architecture.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view spec(reinterpret_cast<const char*>(data), size);
  try {
    const emergent::Architecture arch = emergent::Architecture::parse(spec);
    (void)arch.to_string();
    for (const auto& shape : {emergent::ExampleShape::vector(7), emergent::ExampleShape::image_hwc(5, 4, 3)}) {
      try {
        (void)arch.shapes(shape);
        (void)arch.outputs();
      } catch (const std::invalid_argument&) {
      }
    }
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
