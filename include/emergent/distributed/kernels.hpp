// The Gram matrices of kernels/kernel.hpp computed by the ranks of an MPI communicator: horizontal
// bands (the upper triangle's part for a symmetric kernel) are split over the ranks with no
// communication for the kernel itself, and each rank hands its own bands to its sink (e.g.
// positioned writes into one shared .npy). Every entry has the bits of the single-process
// kernels(). Compiled only in builds with MPI (meson option `mpi`).
#pragma once

#include <mpi.h>

#include <vector>

#include "emergent/kernels/kernel.hpp"

namespace emergent::distributed {

/// Which rank computes each band of an n1×n2 Gram matrix cut into bands of `band_rows` rows (the
/// upper triangle only when `symmetric`): the bands with done[band] == 0, largest first, each to
/// the rank with the fewest entries so far (ties: the lower rank). The split depends only on its
/// arguments (deterministic), and no rank gets more than the average plus one band. Returns
/// owner[band] in [0, ranks), −1 for bands already done. Throws std::invalid_argument for
/// sizes < 0, band_rows < 1, ranks < 1 or a done vector of the wrong length.
std::vector<int> assign_bands(Eigen::Index n1, Eigen::Index n2, bool symmetric, Eigen::Index band_rows,
                              const std::vector<char>& done, int ranks);

/// The default rows per band of a fresh run on `ranks` ranks: a multiple of the 64-row tile (at
/// least 64) giving about 8 bands per rank, at least 32 and at most 256 bands: enough to balance
/// (no rank above the average plus one band) while keeping bands tall, since a symmetric band's
/// mirrored strip costs one positioned write per row below it. A resumed run keeps the recorded
/// layout, so it continues on any P.
Eigen::Index default_band_rows(Eigen::Index n1, int ranks);

struct DistributedKernelOptions {
  KernelOptions kernel;  ///< per rank: the memory cap bounds each rank's working set
  /// Rows per band (a multiple of 64 unless the kernel keeps pixel indices); 0: default_band_rows(N1, P)
  /// (pixel-indexed: ⌈N1/256⌉), lowered so that one band of both kernels takes at most half the
  /// memory cap (if one is set). Every rank must pass the same
  /// value (a resumed run: the recorded one).
  Eigen::Index band_rows = 0;

  /// True if the options make sense; otherwise false with the reason in *error.
  bool IsValid(std::string* error) const;
};

/// K(x1, x2) and Θ(x1, x2) (x2 = nullptr: the symmetric kernel of x1) computed by all ranks of
/// `comm`, band by band. Collective: every rank calls it with the same arguments. Each rank's
/// `sink` receives begin() with the common layout, is asked wanted() for every band (bands it
/// declines count as done on every rank: the sinks must agree), then write() for the bands
/// assign_bands gives this rank, in increasing order. Each band is kernels() of its rows against
/// the columns it covers: architectures the kernel engine streams (streams_in_bands) are computed
/// by one stream_kernels() engine per rank in this band layout (inputs prepared once per rank,
/// only this rank's bands computed), the others by one kernels() call per band (bands on the
/// 64-row tile grid); either way every entry has the bits of the single-process kernel.
/// Pixel-indexed kernels (a CNN without readout) come in the same bands, entries of (H·W)²
/// doubles (sink.start() gets their layout; default band height ⌈N1/256⌉, at most half the memory
/// cap per band). A failure on any rank ends the call on every rank with CollectiveError /
/// CollectiveInvalidArgument (collective.hpp). The returned summary counts this rank's tiles.
KernelSummary stream_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2,
                             const DistributedKernelOptions& options, KernelBandSink& sink, MPI_Comm comm);

}  // namespace emergent::distributed
