// The band driver of the pixel paths (stream_kernels for CNNs): the Gram matrix, or the
// pixel-indexed kernel, is computed a band of rows at a time into a KernelBandSink, every entry
// by the same per-pair computation as run_pixels (kernel_pixels.cpp), so the bits do not depend
// on the band layout, the memory cap or the thread count.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>

#include "detail/parallel.hpp"
#include "kernels/kernel_engine.hpp"

namespace emergent {

void KernelBandSink::start(const KernelBandLayout& layout) {
  if (layout.height > 0)
    throw std::invalid_argument("stream_kernels: this sink takes Gram matrices only, the kernel keeps pixel indices (" +
                                std::to_string(layout.height) + " x " + std::to_string(layout.width) +
                                "); override KernelBandSink::start");
  begin(layout.n1, layout.n2, layout.symmetric, layout.band_rows);
}

namespace detail {

KernelSummary Engine::stream_pixels(KernelBandSink& sink) {
  const auto start = std::chrono::steady_clock::now();
  prepare_pixels();
  const bool spatial = plan_.readout == Readout::None;
  const std::size_t m = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
  KernelBandLayout layout;
  layout.n1 = n1_;
  layout.n2 = n2_;
  layout.symmetric = symmetric_;
  layout.band_rows = static_cast<Eigen::Index>(band_rows_);
  if (spatial) {
    layout.height = plan_.out_h;
    layout.width = plan_.out_w;
  }
  const std::size_t entry = layout.entry_size();
  sink.start(layout);
  std::vector<double> nngp, ntk;
  struct Unit { Eigen::Index i, j0, j1; };
  for (Eigen::Index band = 0; band < layout.bands(); ++band) {
    if (!sink.wanted(band)) continue;
    const Eigen::Index r0 = band * layout.band_rows, rows = std::min(layout.band_rows, n1_ - r0);
    const Eigen::Index c0 = symmetric_ ? r0 : 0, cols = n2_ - c0;
    nngp.assign(static_cast<std::size_t>(rows * cols) * entry, 0.0);
    ntk.assign(nngp.size(), 0.0);
    // Units of consecutive j for one i, small enough that every thread has work even in a
    // one-row band, and 32 or more per thread, so the threads end within a few entries of each
    // other (the units do not change any entry's arithmetic).
    std::size_t entries = 0;
    for (Eigen::Index i = r0; i < r0 + rows; ++i) entries += static_cast<std::size_t>(n2_ - (symmetric_ ? i : 0));
    const Eigen::Index B = static_cast<Eigen::Index>(
        std::clamp<std::size_t>(entries / (32 * static_cast<std::size_t>(threads_)), 1, block_));
    std::vector<Unit> units;
    if (uses_diagonal()) {  // flatten without avgpools (kernel_diagonal.cpp): no units for the loop below
      DiagonalOutput out{nngp.data(), ntk.data(), r0, c0, static_cast<std::size_t>(cols), 1, false};
      blocks_ += diagonal_block(r0, r0 + rows, c0, out,
                                [&](std::size_t done, std::size_t total) { sink.progress(band, done, total); });
    } else
    for (Eigen::Index i = r0; i < r0 + rows; ++i)
      for (Eigen::Index j = symmetric_ ? i : 0; j < n2_; j += B) units.push_back({i, j, std::min(n2_, j + B)});
    blocks_ += units.size();
    std::atomic<std::size_t> done{0};
    ProgressThrottle throttle;
    detail::ParallelErrors errors;
#pragma omp parallel num_threads(threads_)
    {
      Workspace ws = pixel_workspace();
      SliceWorkspace sw = slice_workspace();
#pragma omp for schedule(dynamic, 1)
      for (std::size_t u = 0; u < units.size(); ++u) {
        errors.run(static_cast<long long>(u), [&] {
          const Eigen::Index i = units[u].i;
          for (Eigen::Index j = units[u].j0; j < units[u].j1; ++j) {
            const std::size_t at = (static_cast<std::size_t>(i - r0) * cols + static_cast<std::size_t>(j - c0)) * entry;
            pixel_entry(i, j, ws, sw, nngp.data() + at, ntk.data() + at);
          }
          done += static_cast<std::size_t>(units[u].j1 - units[u].j0);
          if (throttle.due()) sink.progress(band, done.load(), entries);
        });
      }
    }
    errors.rethrow();
    if (symmetric_)  // the band's part left of the diagonal: K(x_j, x_i)_ab = K(x_i, x_j)_ba
      for (Eigen::Index x = 0; x < rows; ++x)
        for (Eigen::Index y = 0; y < x; ++y) {
          const std::size_t to = (static_cast<std::size_t>(x) * cols + y) * entry;
          const std::size_t from = (static_cast<std::size_t>(y) * cols + x) * entry;
          if (!spatial) {
            nngp[to] = nngp[from];
            ntk[to] = ntk[from];
            continue;
          }
          for (std::size_t a = 0; a < m; ++a)
            for (std::size_t b = 0; b < m; ++b) {
              nngp[to + b * m + a] = nngp[from + a * m + b];
              ntk[to + b * m + a] = ntk[from + a * m + b];
            }
        }
    KernelBand out;
    out.index = band;
    out.row_begin = r0;
    out.rows = rows;
    out.col_begin = c0;
    out.cols = cols;
    out.entry_size = entry;
    out.nngp = nngp.data();
    out.ntk = ntk.data();
    sink.write(out);
  }
  return summary(start);
}

}  // namespace detail
}  // namespace emergent
