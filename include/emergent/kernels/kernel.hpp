// Analytic infinite-width kernels: the NNGP kernel K (Σ) and the NTK Θ of an architecture,
// by the layer recursions of docs/conventions.md §2 (Neural Tangents' 'ntk' parameterization;
// Lee et al. 2018 Eq. 4, Jacot et al. 2018 Thm. 1, Arora et al. 2019 for convolutions,
// Novak et al. 2019 / Garriga-Alonso et al. 2019 for CNN-GP readouts).
#pragma once

#include <Eigen/Dense>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"

namespace emergent {

/// The problem does not fit under the memory cap even in the smallest block.
class MemoryCapError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct KernelOptions {
  /// Largest number of bytes the computation may hold (output included). 0: 25% of RAM.
  std::size_t memory_cap_bytes = 0;
  /// OpenMP threads; 0 uses the OpenMP default. Results do not depend on it.
  int threads = 0;
  /// Gauss–Hermite nodes per dimension for activations without closed form (0: default).
  int quadrature_order = 0;
  /// stream_kernels only: rows per band, fixed by the caller (e.g. a band layout shared by the
  /// ranks of an MPI job or recorded for a resume); a multiple of 64 for kernels with a readout
  /// that take the vector path. 0: chosen from the sizes and the memory cap. Entries keep their
  /// bits whatever it is.
  std::size_t band_rows = 0;

  /// True if the options make sense; otherwise false with the reason in *error.
  bool IsValid(std::string* error) const;
};

/// What a kernel computation did.
struct KernelSummary {
  Eigen::Index n1 = 0, n2 = 0;
  bool symmetric = false;          ///< x1 against itself: one triangle computed, then mirrored
  std::string path;                ///< "vector", "pixel-diagonal" (flatten / no pooling) or "pixel-pairs"
  std::size_t blocks = 0;          ///< number of tiles the Gram matrix was computed in
  std::size_t block_size = 0;      ///< tile edge (rows of x1 / x2 per tile)
  std::size_t estimated_peak_bytes = 0;
  std::size_t memory_cap_bytes = 0;
  int threads = 0;
  double seconds = 0.0;
  std::string to_string() const;   ///< one line for logs
};

/// NNGP and NTK Gram matrices (N1 × N2) of a network with a readout (or an MLP).
struct Kernels {
  Eigen::MatrixXd nngp;
  Eigen::MatrixXd ntk;
  KernelSummary summary;
};

/// Kernels of a CNN without flatten/gap: they keep their pixel indices.
/// Element (i, j, h1, w1, h2, w2) is stored in C order of the shape (N1, N2, H, W, H, W).
struct SpatialKernels {
  Eigen::Index n1 = 0, n2 = 0;
  int height = 0, width = 0;
  std::vector<double> nngp;
  std::vector<double> ntk;
  KernelSummary summary;

  std::size_t index(Eigen::Index i, Eigen::Index j, int h1, int w1, int h2, int w2) const {
    const std::size_t P = static_cast<std::size_t>(height) * width;
    return ((static_cast<std::size_t>(i) * n2 + j) * P + static_cast<std::size_t>(h1) * width + w1) * P +
           static_cast<std::size_t>(h2) * width + w2;
  }
  std::vector<std::size_t> shape() const {
    return {static_cast<std::size_t>(n1), static_cast<std::size_t>(n2), static_cast<std::size_t>(height),
            static_cast<std::size_t>(width), static_cast<std::size_t>(height), static_cast<std::size_t>(width)};
  }
};

/// K(x1, x2) and Θ(x1, x2). Throws SpecError if the architecture does not fit the inputs or
/// has no readout while keeping pixel indices (use spatial_kernels), std::invalid_argument for
/// mismatched shapes or bad options, MemoryCapError if even one block cannot fit.
Kernels kernels(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                const KernelOptions& options = {});

/// K(x, x) and Θ(x, x): symmetric, only one triangle is computed.
Kernels kernels(const Architecture& arch, const Inputs& x, const KernelOptions& options = {});

/// A horizontal band of the Gram matrices, handed to a KernelBandSink: rows
/// [row_begin, row_begin + rows) and columns [col_begin, col_begin + cols), row-major with leading
/// dimension `cols`. For a symmetric kernel (no x2) a band holds only the upper triangle's part,
/// col_begin = row_begin; the sink mirrors it. Pixel-indexed kernels (a CNN without readout) have
/// `entry_size` = (H·W)² doubles per entry, entry (i, j) at ((i − row_begin)·cols + j − col_begin)·
/// entry_size in C order (H, W, H, W); mirroring swaps the two pixel indices,
/// K(x_j, x_i)_ab = K(x_i, x_j)_ba.
struct KernelBand {
  Eigen::Index index = 0;  ///< band number, 0 .. bands − 1
  Eigen::Index row_begin = 0, rows = 0, col_begin = 0, cols = 0;
  std::size_t entry_size = 1;
  const double* nngp = nullptr;
  const double* ntk = nullptr;
  /// The entries are already in the matrices of KernelBandSink::direct_output() (for a symmetric
  /// kernel the mirrored strip below the band too, K(x_j, x_i) = K(x_i, x_j)), checked finite;
  /// nngp and ntk are null.
  bool in_place = false;
};

/// Memory a sink offers for the whole row-major n1 × n2 Gram output (leading dimension n2), e.g.
/// memory-mapped files; a null pointer: that kernel is not wanted.
struct KernelOutputMatrices {
  bool direct = false;  ///< false: bands come in buffers (KernelBand::nngp, ntk)
  double* nngp = nullptr;
  double* ntk = nullptr;
};

/// How stream_kernels cuts the output: bands of `band_rows` rows (the last may be shorter);
/// height = width = 0 for Gram matrices, the output map size for pixel-indexed kernels.
struct KernelBandLayout {
  Eigen::Index n1 = 0, n2 = 0;
  bool symmetric = false;
  Eigen::Index band_rows = 0;
  int height = 0, width = 0;
  std::size_t entry_size() const {
    const std::size_t p = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
    return height > 0 ? p * p : 1;
  }
  Eigen::Index bands() const { return band_rows > 0 ? (n1 + band_rows - 1) / band_rows : 0; }
};

/// Receives the bands of stream_kernels, one at a time, in increasing order.
class KernelBandSink {
 public:
  virtual ~KernelBandSink() = default;
  /// Called once before any band with the band layout; bands are `band_rows` rows each (the last
  /// may be shorter). Return false for a band to skip it (e.g. already written by an earlier run).
  virtual void begin(Eigen::Index n1, Eigen::Index n2, bool symmetric, Eigen::Index band_rows) = 0;
  /// What stream_kernels calls first. The default passes Gram layouts on to begin() and refuses
  /// pixel-indexed ones (std::invalid_argument); a sink that stores them overrides it.
  virtual void start(const KernelBandLayout& layout);
  virtual bool wanted(Eigen::Index band) { (void)band; return true; }
  /// Called after start(). A sink that returns `direct` matrices gets every Gram band written
  /// there by the engine (no band buffer, no copy) and then write() with KernelBand::in_place;
  /// the vector path (MLPs) uses it, other paths ignore it. Default: buffers.
  virtual KernelOutputMatrices direct_output(const KernelBandLayout& layout) {
    (void)layout;
    return {};
  }
  virtual void write(const KernelBand& band) = 0;
  /// Bands written in place only (direct_output): while band `band` is computed, its rows
  /// row_begin .. rows_end − 1 are final in every column of both matrices and will not be
  /// written again (the rows above the band were final before it). Called from the calling
  /// thread, in increasing rows_end, the last call with the band's end, before write(); e.g. to
  /// start writing those rows to disk.
  virtual void rows_final(Eigen::Index band, Eigen::Index rows_end) { (void)band, (void)rows_end; }
  /// While band `band` is computed: `done` of its `total` entries are finished. Called from one
  /// thread (the calling one) only, between write() calls, a few times a second at most; for
  /// progress reports.
  virtual void progress(Eigen::Index band, std::size_t done, std::size_t total) {
    (void)band, (void)done, (void)total;
  }
};

/// The kernels of any architecture kernels() or spatial_kernels() computes (the vector,
/// pixel-diagonal and pixel-pair paths), band by band, so that only the inputs, the per-point
/// data and one band stay in memory: the memory cap bounds the working set, not the output.
/// Every entry has the same bits as in kernels() (Gram matrices) or spatial_kernels()
/// (pixel-indexed ones, layout.height > 0), whatever the cap or the thread count. x2 = nullptr:
/// the symmetric kernel of x1. Throws MemoryCapError (naming the smallest cap that works) if one
/// band cannot fit, std::invalid_argument for an architecture streams_in_bands() refuses.
KernelSummary stream_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2,
                             const KernelOptions& options, KernelBandSink& sink);

/// True if stream_kernels can compute this architecture on examples of this shape.
bool streams_in_bands(const Architecture& arch, const ExampleShape& shape);

/// Pixel-indexed kernels of a convolutional network without readout.
SpatialKernels spatial_kernels(const Architecture& arch, const Inputs& x1, const Inputs& x2,
                               const KernelOptions& options = {});
SpatialKernels spatial_kernels(const Architecture& arch, const Inputs& x,
                               const KernelOptions& options = {});

}  // namespace emergent
