// libFuzzer target: the .npy reader (docs/conventions.md §4) on arbitrary bytes. Any input
// must either load or throw std::invalid_argument naming the file; a crash, a sanitizer report,
// an allocation sized by a forged header or another exception is a bug. See docs/robustness.md.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "emergent/core/inputs.hpp"
#include "emergent/data/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    emergent::NpyArray a = emergent::parse_npy(bytes, "fuzz.npy");
    try {
      (void)emergent::make_inputs(a.shape, std::move(a.data), "fuzz.npy");
    } catch (const std::invalid_argument&) {
    }
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
