// The kernel engine (lib/kernels/kernel_engine.hpp): validation, the memory plan, the run
// entry points and the per-point identities.
#include "kernels/kernel_engine.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <unordered_map>

#include "emergent/core/memory.hpp"
#include "detail/parallel.hpp"

namespace emergent::detail {

Engine::Engine(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options, bool spatial,
       bool streamed)
    : x1_(x1), x2_(x2 ? *x2 : x1), symmetric_(x2 == nullptr), streamed_(streamed) {
  check_kernel_arguments(arch, x1, x2, options);
  plan_ = make_plan(arch, x1.shape, options.quadrature_order);
  const bool keeps_pixels = plan_.pixel_stage && plan_.readout == Readout::None;
  if (spatial && !keeps_pixels)
    throw std::invalid_argument("spatial_kernels: the architecture '" + arch.to_string() +
                                "' has no pixel indices at its output (use kernels)");
  if (!spatial && keeps_pixels)
    throw std::invalid_argument("kernels: the architecture '" + arch.to_string() +
                                "' has no flatten/gap readout, so its kernel keeps pixel indices "
                                "(N1, N2, H, W, H, W): use spatial_kernels");
  n1_ = x1.count();
  n2_ = x2 ? x2->count() : n1_;
  threads_ = options.threads > 0 ? options.threads : omp_get_max_threads();
  cap_ = options.memory_cap_bytes > 0 ? options.memory_cap_bytes : default_memory_cap_bytes();
  requested_band_rows_ = streamed_ ? options.band_rows : 0;
  if (requested_band_rows_ % kTile != 0 && !plan_.pixel_stage)  // bands start on the tile grid
    throw std::invalid_argument("kernel options: band_rows = " + std::to_string(requested_band_rows_) +
                                ": expected 0 or a multiple of " + std::to_string(kTile) + " on the vector path");
  plan_memory();
  identify_points();
}

Kernels Engine::run_gram() {
  const auto start = std::chrono::steady_clock::now();
  Kernels k;
  k.nngp.resize(n1_, n2_);
  k.ntk.resize(n1_, n2_);
  // Faulting a 3000² MLP Gram's two results in 4 KiB pages took ≈ 6 % of its CPU.
  prefer_huge_pages(k.nngp.data(), static_cast<std::size_t>(k.nngp.size()) * sizeof(double));
  prefer_huge_pages(k.ntk.data(), static_cast<std::size_t>(k.ntk.size()) * sizeof(double));
  if (plan_.pixel_stage) run_pixels(k.nngp.data(), k.ntk.data(), 1);
  else run_vector(k.nngp, k.ntk);
  k.summary = summary(start);
  return k;
}

SpatialKernels Engine::run_spatial() {
  const auto start = std::chrono::steady_clock::now();
  SpatialKernels k;
  k.n1 = n1_;
  k.n2 = n2_;
  k.height = plan_.out_h;
  k.width = plan_.out_w;
  const std::size_t P = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
  k.nngp.assign(static_cast<std::size_t>(n1_) * n2_ * P * P, 0.0);
  k.ntk.assign(k.nngp.size(), 0.0);
  run_pixels(k.nngp.data(), k.ntk.data(), P * P);
  k.summary = summary(start);
  return k;
}

void Engine::plan_memory() {
  const std::size_t d = sizeof(double);
  const std::size_t points = static_cast<std::size_t>(symmetric_ ? n1_ : n1_ + n2_);
  const std::size_t P0 = static_cast<std::size_t>(plan_.in_h) * plan_.in_w;
  const std::size_t Pout = static_cast<std::size_t>(plan_.out_h) * plan_.out_w;
  const bool keeps_pixels = plan_.pixel_stage && plan_.readout == Readout::None;
  output_bytes_ = streamed_ ? 0 : 2 * d * static_cast<std::size_t>(n1_) * n2_ * (keeps_pixels ? Pout * Pout : 1);
  fixed_bytes_ = output_bytes_ + points * (plan_.record + 1) * d +
                 d * static_cast<std::size_t>(x1_.x.size() + (symmetric_ ? 0 : x2_.x.size()));
  if (!plan_.pixel_stage) {
    // Zero-padded reduced copies of the inputs, then one tile of Σ and Θ per thread; fewer
    // threads if need be (the tile never shrinks: its shape fixes the arithmetic).
    const std::size_t padded = static_cast<std::size_t>(padded_rows(n1_) + (symmetric_ ? 0 : padded_rows(n2_)));
    fixed_bytes_ += padded * reduced_features() * d;
    block_ = kTile;
    // Σ and Θ of one tile, and the second points' variances per layer.
    per_thread_bytes_ = (2 * kTile + plan_.tail.size()) * static_cast<std::size_t>(tile_ld()) * d;
    // Streamed: one band of Σ and Θ (kTile rows at least) besides the tiles.
    const std::size_t band_row_bytes = streamed_ ? 2 * d * static_cast<std::size_t>(n2_) : 0;
    const std::size_t smallest = per_thread_bytes_ + kTile * band_row_bytes;
    if (fixed_bytes_ + smallest > cap_) refuse(smallest);
    while (threads_ > 1 && fixed_bytes_ + threads_ * per_thread_bytes_ + kTile * band_row_bytes > cap_) --threads_;
    band_rows_ = static_cast<std::size_t>(padded_rows(n1_));
    if (streamed_) {
      const std::size_t room = cap_ - fixed_bytes_ - threads_ * per_thread_bytes_;
      band_rows_ = std::min(band_rows_, room / band_row_bytes / kTile * kTile);
      if (requested_band_rows_ > 0) {
        if (requested_band_rows_ * band_row_bytes > room) refuse(per_thread_bytes_ + requested_band_rows_ * band_row_bytes);
        band_rows_ = requested_band_rows_;
      }
    }
    fixed_bytes_ += band_rows_ * band_row_bytes;
  } else {
    const std::size_t n = plan_.readout == Readout::Flatten ? P0 : P0 * P0;
    per_thread_bytes_ = 5 * n * d;
    if (plan_.slices) {  // offset slices: six maps and two window rows, no P² workspace
      std::size_t filter = 1;
      for (const auto& op : plan_.spatial)
        if (op.kind == OpKind::Affine) filter = std::max<std::size_t>({filter, std::size_t(op.ah.filter), std::size_t(op.aw.filter)});
      per_thread_bytes_ = d * (6 * P0 + 2 * (static_cast<std::size_t>(plan_.in_w) + 2 * (filter + 1)));
      per_thread_bytes_ += 4 * d * plan_.coarse_pairs + 2 * d * plan_.slab_doubles + 10 * d * plan_.slab_row;
      per_thread_bytes_ += d * plan_.ring_doubles;
      if (!plan_.stages.empty() && plan_.stages.front().slab && plan_.in_c <= 4) per_thread_bytes_ += d * P0 * plan_.in_c;  // SliceWorkspace::yt
    }
    block_ = 32;  // pairs per scheduling unit
    if (uses_diagonal()) {  // kernel_diagonal.cpp: one point against 8 partners, 32 points a unit
      per_thread_bytes_ = diagonal_workspace_bytes();
      fixed_bytes_ += points * plan_.record * d;  // 1/√q of the records (rinv_)
      block_ = 256;
    }
    // Streamed: one band of Σ and Θ besides the workspaces, at least one row of entries.
    const std::size_t band_row_bytes =
        streamed_ ? 2 * d * static_cast<std::size_t>(n2_) * (keeps_pixels ? Pout * Pout : 1) : 0;
    if (fixed_bytes_ + threads_ * per_thread_bytes_ + band_row_bytes > cap_) {
      threads_ = 1;
      if (fixed_bytes_ + per_thread_bytes_ + band_row_bytes > cap_) refuse(per_thread_bytes_ + band_row_bytes);
    }
    if (streamed_) {
      // Bands of at most 1/kPixelBands of the rows: an interruption loses little, and the band
      // count does not depend on the thread count (only on the sizes and the cap).
      const std::size_t room = cap_ - fixed_bytes_ - per_thread_bytes_ * static_cast<std::size_t>(threads_);
      const std::size_t by_work = (static_cast<std::size_t>(n1_) + kPixelBands - 1) / kPixelBands;
      band_rows_ = std::max<std::size_t>(1, std::min(room / std::max<std::size_t>(band_row_bytes, 1), by_work));
      if (requested_band_rows_ > 0) {
        if (requested_band_rows_ * band_row_bytes > room) refuse(per_thread_bytes_ + requested_band_rows_ * band_row_bytes);
        band_rows_ = requested_band_rows_;
      }
      fixed_bytes_ += band_rows_ * band_row_bytes;
    }
  }
  peak_bytes_ = fixed_bytes_ + threads_ * per_thread_bytes_;
}

void Engine::refuse(std::size_t smallest_workspace) const {
  std::ostringstream os;
  os << "kernel: the computation needs at least " << format_bytes(fixed_bytes_ + smallest_workspace)
     << " (output " << (streamed_ ? std::string("streamed to disk") : format_bytes(output_bytes_))
     << ", inputs and per-point data " << format_bytes(fixed_bytes_ - output_bytes_)
     << (streamed_ ? ", one band and one tile " : ", one block ") << format_bytes(smallest_workspace)
     << ") but the memory cap is " << format_bytes(cap_)
     << "; raise the memory cap (--memory-cap) or split x1/x2 into smaller batches";
  throw MemoryCapError(os.str());
}

KernelSummary Engine::summary(std::chrono::steady_clock::time_point start) const {
  KernelSummary s;
  s.n1 = n1_;
  s.n2 = n2_;
  s.symmetric = symmetric_;
  s.path = plan_.path;
  s.blocks = blocks_;
  s.block_size = block_;
  s.estimated_peak_bytes = peak_bytes_;
  s.memory_cap_bytes = cap_;
  s.threads = threads_;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

// Bitwise-identical inputs (x1 == x2, or duplicates after augmentation) get one id, so their
// pairs are treated as exactly collinear (see tail_tile).
void Engine::identify_points() {
  const Eigen::Index n = point_count();
  const std::size_t bytes = sizeof(double) * static_cast<std::size_t>(x1_.x.cols());
  identity_.resize(static_cast<std::size_t>(n));
  std::unordered_map<std::uint64_t, std::vector<Eigen::Index>> seen;
  seen.reserve(static_cast<std::size_t>(n));
  const Eigen::Index cols = x1_.x.cols();
  auto mix = [](std::uint64_t h, std::uint64_t bits) {
    h = (h ^ bits) * 0x100000001B3ULL;
    return h ^ (h >> 29);
  };
  auto word = [](const double* v) {
    std::uint64_t bits;
    std::memcpy(&bits, v, sizeof bits);
    return bits;
  };
  for (Eigen::Index i = 0; i < n; ++i) {
    const double* row = row_of(i);
    // Four independent chains over interleaved columns (one chain's serial multiplies took 4 ms
    // for 3000 × 784 inputs), folded at the end; equal rows always get equal hashes.
    std::uint64_t h = 0x9E3779B97F4A7C15ULL, h1 = 0xC2B2AE3D27D4EB4FULL, h2 = 0x165667B19E3779F9ULL,
                  h3 = 0x27D4EB2F165667C5ULL;
    Eigen::Index c = 0;
    for (; c + 4 <= cols; c += 4) {
      h = mix(h, word(row + c));
      h1 = mix(h1, word(row + c + 1));
      h2 = mix(h2, word(row + c + 2));
      h3 = mix(h3, word(row + c + 3));
#if defined(__GNUC__)
      __asm__("" : "+r"(h), "+r"(h1), "+r"(h2), "+r"(h3));  // scalar chains: vectorised they were slower
#endif
    }
    for (; c < cols; ++c) h = mix(h, word(row + c));
    h = mix(mix(mix(h, h1), h2), h3);
    identity_[static_cast<std::size_t>(i)] = i;
    for (Eigen::Index j : seen[h])
      if (std::memcmp(row_of(j), row, bytes) == 0) {
        identity_[static_cast<std::size_t>(i)] = identity_[static_cast<std::size_t>(j)];
        break;
      }
    if (identity_[static_cast<std::size_t>(i)] == i) seen[h].push_back(i);
  }
}

// Tail (after readout / whole MLP): q' = W²q + B², activation q' = E[φ(u)²].
void Engine::tail_diagonal(double q, double* rec) const {
  for (const auto& op : plan_.tail) {
    if (op.kind == OpKind::Affine) {
      q = op.w2 * q + op.b2;
    } else {
      rec[op.q_offset] = q;
      q = plan_.duals[op.dual](q, q, q).nngp;
    }
  }
}

}  // namespace emergent::detail
