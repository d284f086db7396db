// Negative control of the fuzz suite (tests/fuzz/meson.build): a target that fails on its first
// input. Its test is expected to fail, which shows that run_one.sh turns a libFuzzer finding into
// a failed meson test (libFuzzer's own exit status 77 would read as "skipped").
#include <cstddef>
#include <cstdint>
#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) {
  throw std::logic_error("negative control: every input fails");
}
