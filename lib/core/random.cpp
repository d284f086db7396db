#include "emergent/core/random.hpp"

#include <algorithm>

#include "detail/gaussian_lanes.hpp"

namespace emergent {
namespace {

// One compiled instance for every caller (normal() and fill()), so that a draw has the same
// bits whichever of them computes it and wherever its pair falls in a block.
[[gnu::noinline]] void normal_block(std::uint64_t key, std::uint64_t first_pair, double* out) {
  detail::normal_pairs_lanes(key, first_pair, out);
}

}  // namespace

double NormalStream::normal(std::uint64_t i) const {
  alignas(64) double block[16];
  normal_block(key_, i >> 1, block);
  return block[i & 1];
}

void NormalStream::fill(double* out, std::uint64_t n, std::uint64_t first) const {
  const std::uint64_t end = first + n;
  std::uint64_t i = first;
  while (i < end) {
    const std::uint64_t pair = i >> 1, base = 2 * pair;  // the block holds draws base … base+15
    if (i == base && end - i >= 16) {
      normal_block(key_, pair, out + (i - first));
      i += 16;
      continue;
    }
    alignas(64) double block[16];
    normal_block(key_, pair, block);
    const std::uint64_t stop = std::min<std::uint64_t>(end, base + 16);
    std::copy(block + (i - base), block + (stop - base), out + (i - first));
    i = stop;
  }
}

}  // namespace emergent
