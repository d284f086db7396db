// Gram matrices over the ranks of a communicator (include/emergent/distributed/kernels.hpp).
#include "emergent/distributed/kernels.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "emergent/distributed/collective.hpp"

namespace emergent::distributed {

namespace {

using Eigen::Index;
constexpr Index kTileRows = 64;  // the kernels' tile edge: bands start on tile boundaries

Index band_count(Index n1, Index band_rows) { return (n1 + band_rows - 1) / band_rows; }

// Between the engine and the caller's sink: the common layout, then only this rank's bands.
class RankSink final : public KernelBandSink {
 public:
  RankSink(KernelBandSink& inner, MPI_Comm comm) : inner_(inner), comm_(comm) {
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &size_);
  }
  void begin(Index n1, Index n2, bool symmetric, Index band_rows) override {
    KernelBandLayout layout;
    layout.n1 = n1;
    layout.n2 = n2;
    layout.symmetric = symmetric;
    layout.band_rows = band_rows;
    start(layout);
  }
  void start(const KernelBandLayout& layout) override {
    inner_.start(layout);
    const Index bands = layout.bands();
    std::vector<char> done(static_cast<std::size_t>(bands));
    for (Index b = 0; b < bands; ++b) done[b] = inner_.wanted(b) ? 0 : 1;
    owner_ = assign_bands(layout.n1, layout.n2, layout.symmetric, layout.band_rows, done, size_);
  }
  void progress(Index band, std::size_t done, std::size_t total) override { inner_.progress(band, done, total); }
  bool wanted(Index band) override { return owner_[static_cast<std::size_t>(band)] == rank_; }
  void write(const KernelBand& band) override { inner_.write(band); }

 private:
  KernelBandSink& inner_;
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<int> owner_;
};

std::vector<Index> range(Index begin, Index end) {
  std::vector<Index> out(static_cast<std::size_t>(std::max<Index>(end - begin, 0)));
  std::iota(out.begin(), out.end(), begin);
  return out;
}

// Architectures the kernel engine streams (kernels/kernel.hpp, stream_kernels): one engine per
// rank prepares the inputs once and computes only the bands this rank's sink wants, in the given
// band layout (KernelOptions::band_rows), every entry with the bits of the single-process run.
// Others (the general path: avgpool, layernorm, residual blocks) go band by band through kernels():
// each band is kernels() of its rows against the columns it covers; a symmetric band keeps its
// upper part and mirrors it, as kernels() and stream_kernels do. Bands start on the 64-row tile
// grid, and every entry of the kernels depends only on its pair of inputs and the tile grid, so the
// entries keep the bits of the single-process Gram matrix (tested).
KernelSummary bands_by_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& kopt,
                               Index band_rows, KernelBandSink& sink) {
  const bool symmetric = x2 == nullptr;
  const Index n1 = x1.count(), n2 = symmetric ? n1 : x2->count();
  sink.begin(n1, n2, symmetric, band_rows);
  KernelSummary total;
  total.n1 = n1;
  total.n2 = n2;
  total.symmetric = symmetric;
  std::vector<double> nngp, ntk;
  for (Index band = 0; band < band_count(n1, band_rows); ++band) {
    if (!sink.wanted(band)) continue;
    const Index r0 = band * band_rows, rows = std::min(band_rows, n1 - r0);
    const Index c0 = symmetric ? r0 : 0, cols = n2 - c0;
    const Inputs a = x1.rows(range(r0, r0 + rows));
    const Kernels k = symmetric ? kernels(arch, a, x1.rows(range(c0, n2)), kopt) : kernels(arch, a, *x2, kopt);
    nngp.resize(static_cast<std::size_t>(rows * cols));
    ntk.resize(nngp.size());
    for (Index x = 0; x < rows; ++x)
      for (Index y = 0; y < cols; ++y) {
        // Left of the diagonal inside a symmetric band: the mirrored upper entry.
        const bool mirrored = symmetric && y < x;
        nngp[x * cols + y] = mirrored ? k.nngp(y, x) : k.nngp(x, y);
        ntk[x * cols + y] = mirrored ? k.ntk(y, x) : k.ntk(x, y);
      }
    KernelBand out;
    out.index = band;
    out.row_begin = r0;
    out.rows = rows;
    out.col_begin = c0;
    out.cols = cols;
    out.nngp = nngp.data();
    out.ntk = ntk.data();
    sink.write(out);
    total.path = k.summary.path;
    total.blocks += k.summary.blocks;
    total.block_size = k.summary.block_size;
    total.estimated_peak_bytes = std::max(total.estimated_peak_bytes, k.summary.estimated_peak_bytes);
    total.memory_cap_bytes = k.summary.memory_cap_bytes;
    total.threads = k.summary.threads;
  }
  return total;
}

}  // namespace

std::vector<int> assign_bands(Index n1, Index n2, bool symmetric, Index band_rows, const std::vector<char>& done,
                              int ranks) {
  if (n1 < 0 || n2 < 0)
    throw std::invalid_argument("assign_bands: n1 = " + std::to_string(n1) + ", n2 = " + std::to_string(n2) +
                                ", expected sizes >= 0");
  if (band_rows < 1) throw std::invalid_argument("assign_bands: band_rows = " + std::to_string(band_rows) + ", expected >= 1");
  if (ranks < 1) throw std::invalid_argument("assign_bands: ranks = " + std::to_string(ranks) + ", expected >= 1");
  const Index bands = band_count(n1, band_rows);
  if (static_cast<Index>(done.size()) != bands)
    throw std::invalid_argument("assign_bands: done has " + std::to_string(done.size()) + " entries, expected one per band (" +
                                std::to_string(bands) + ")");
  auto entries = [&](Index b) {
    const Index r0 = b * band_rows, rows = std::min(band_rows, n1 - r0);
    // Upper-triangle share of a symmetric band: its rows times the columns from its first row on.
    return static_cast<double>(rows) * static_cast<double>(symmetric ? n2 - r0 : n2);
  };
  std::vector<Index> order;
  for (Index b = 0; b < bands; ++b)
    if (!done[b]) order.push_back(b);
  std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) { return entries(a) > entries(b); });
  std::vector<int> owner(static_cast<std::size_t>(bands), -1);
  std::vector<double> load(static_cast<std::size_t>(ranks), 0.0);
  for (Index b : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());  // first minimum
    owner[b] = r;
    load[r] += entries(b);
  }
  return owner;
}

Index default_band_rows(Index n1, int ranks) {
  const Index target = std::clamp<Index>(8 * static_cast<Index>(std::max(ranks, 1)), 32, 256);  // bands
  const Index tiles = (std::max<Index>(n1, 1) + kTileRows - 1) / kTileRows;
  return std::max<Index>(1, (tiles + target - 1) / target) * kTileRows;
}

bool DistributedKernelOptions::IsValid(std::string* error) const {
  if (!kernel.IsValid(error)) return false;
  if (band_rows < 0) {
    if (error) *error = "band_rows = " + std::to_string(band_rows) + ": expected 0 (default) or a positive number of rows";
    return false;
  }
  if (error) error->clear();
  return true;
}

KernelSummary stream_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2,
                             const DistributedKernelOptions& options, KernelBandSink& sink, MPI_Comm comm) {
  KernelSummary summary;
  bool banded = false, pixel_indexed = false;
  std::size_t entry = 1;  // doubles per (i, j) entry: (H·W)² for pixel-indexed kernels
  collectively(comm, [&] {
    std::string error;
    if (!options.IsValid(&error)) throw std::invalid_argument("DistributedKernelOptions: " + error);
    banded = streams_in_bands(arch, x1.shape);
    pixel_indexed = !arch.has_readout() && arch.expects_images();
    if (pixel_indexed && !banded)
      throw std::invalid_argument("distributed kernels: '" + arch.to_string() +
                                  "' keeps pixel indices and takes the general path, which is not computed in bands; "
                                  "compute this one on one process");
    if (pixel_indexed) {
      const ExampleShape out = arch.shapes(x1.shape).shapes.back();
      entry = static_cast<std::size_t>(out.height) * static_cast<std::size_t>(out.width);
      entry *= entry;
    }
    if (!banded && options.band_rows % kTileRows != 0)
      throw std::invalid_argument("DistributedKernelOptions: band_rows = " + std::to_string(options.band_rows) +
                                  ": expected a multiple of 64 for '" + arch.to_string() + "'");
  });
  // A fresh run's layout; a resumed one takes the recorded band rows (options.band_rows), whatever P.
  Index band_rows = options.band_rows;
  if (band_rows == 0) {
    int ranks = 1;
    MPI_Comm_size(comm, &ranks);
    band_rows = default_band_rows(x1.count(), ranks);
    const std::size_t cap = options.kernel.memory_cap_bytes;
    const std::size_t row_bytes =
        2 * sizeof(double) * entry * static_cast<std::size_t>(std::max<Index>(1, x2 ? x2->count() : x1.count()));
    if (pixel_indexed) {  // bands of entries of (H·W)² doubles: any height, at most half the cap
      band_rows = std::max<Index>(1, (x1.count() + 255) / 256);  // (H·W)²-double entries: many short bands
      if (cap > 0) band_rows = std::max<Index>(1, std::min<Index>(band_rows, static_cast<Index>(cap / 2 / row_bytes)));
    } else if (cap > 0) {  // half the cap for one band of both kernels
      band_rows = std::min(band_rows, std::max<Index>(kTileRows, static_cast<Index>(cap / 2 / row_bytes) / kTileRows * kTileRows));
    }
  }
  RankSink ranked(sink, comm);
  // Each rank alone until the agreement; the sink's start() may itself agree (collectively) with
  // the other ranks, which all reach it.
  collectively(comm, [&] {
    if (banded) {
      KernelOptions kopt = options.kernel;
      kopt.band_rows = static_cast<std::size_t>(band_rows);
      summary = emergent::stream_kernels(arch, x1, x2, kopt, ranked);
    } else {
      summary = bands_by_kernels(arch, x1, x2, options.kernel, band_rows, ranked);
    }
  });
  return summary;
}

}  // namespace emergent::distributed
