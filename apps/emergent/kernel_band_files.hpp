// The file format of `emergent kernel`'s streamed outputs, shared by the single-process writer
// (kernel_files.hpp) and the MPI ranks' writer (distributed/shared_kernel_files.hpp): the band
// layout of a (N1, N2) or (N1, N2, H, W, H, W) kernel in `<path>.partial` '<f8' .npy files, the
// bytes of a band and their checksum, and the `<first path>.resume` record that lists the
// finished bands. One format, so a run resumes on any rank count, with or without MPI.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "emergent/kernels/kernel.hpp"

namespace emergent::cli {

class KernelBandFiles {
 protected:
  struct Output {
    std::string path, partial;
    int fd = -1;
    bool nngp = true;  // which of the two kernels goes here
    void* map = nullptr;  // the whole file, mapped shared (single-process in-place outputs)
    std::size_t map_bytes = 0;
  };

  /// `nngp` / `ntk`: output paths, either may be empty (not wanted); the record goes next to the
  /// first. `key` identifies the computation (architecture, inputs, options).
  KernelBandFiles(const std::string& nngp, const std::string& ntk, std::uint64_t key);

  /// Takes the engine's layout: sizes, band rows, the header's length; no band done yet.
  void set_layout(const KernelBandLayout& layout);
  /// The file shape: (N1, N2) or (N1, N2, H, W, H, W).
  std::vector<std::size_t> file_shape() const;
  KernelBand band_layout(Eigen::Index band) const;
  std::size_t entry_offset(Eigen::Index i, Eigen::Index j) const;  // byte offset of entry (i, j)
  std::size_t file_bytes() const { return entry_offset(n1_, 0); }
  /// The record's first line (with its newline): what a resumed run must match.
  std::string record_header() const;

  /// Creates (truncates) each partial file with its .npy header at the full size; fds stay open.
  void create_partials();
  /// A resumed partial file must have the full size and the expected header (else an input error).
  void check_partial(const Output& out) const;
  /// Throws an input error naming `resume_hint` (what to do) if the record `text` does not start
  /// with this computation's header line.
  void check_record_header(const std::string& text, const std::string& resume_hint) const;
  /// The complete band lines of a record whose header matched, in order: `on_band(line number,
  /// band, checksums)` for each (it may verify them, see verify_band); stops at the first line
  /// cut short or malformed. Returns the bytes of the good part.
  std::size_t parse_record(const std::string& text,
                           const std::function<void(std::size_t, Eigen::Index, const std::vector<std::string>&)>& on_band)
      const;
  /// Throws the error of a recorded band whose bytes in `out` do not match `sum`.
  void verify_band(const Output& out, Eigen::Index band, const std::string& sum);

  /// Writes band `b` of one kernel (its rows, then for a symmetric kernel the mirrored strip below
  /// it) with positioned writes; returns the checksum of the bytes in that order.
  std::uint64_t write_band(Output& out, const KernelBand& b, const double* data);
  /// The checksum of band `b` as it is in the file (~h of a partial band if the file is short).
  std::uint64_t checksum_band(const Output& out, const KernelBand& b);
  /// (i, j) entries a band computes: its rectangle, or for a symmetric kernel its upper triangle part.
  static std::size_t band_entries(const KernelBand& b, bool symmetric);
  /// Throws the error of a band holding NaN or ±Inf (the engine's numerical failure).
  static void check_band_finite(const KernelBand& b);

  std::vector<Output> outputs_;
  std::string record_path_;
  std::uint64_t key_;
  Eigen::Index n1_ = 0, n2_ = 0, band_rows_ = 0, bands_ = 0;
  bool symmetric_ = false;
  int height_ = 0, width_ = 0;  // pixel-indexed: the output map
  std::size_t entry_ = 1;       // doubles per (i, j) entry
  std::size_t header_bytes_ = 0;
  std::vector<char> done_;  // per band: finished (recorded, or resumed)
};

/// FNV-1a-style hash chained from `h`: whole 8-byte words one step each (multiply by the FNV prime,
/// then fold the high half down), a trailing part byte by byte. Chaining calls whose sizes are
/// multiples of 8 gives the hash of the concatenation.
std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h = 0xcbf29ce484222325ULL);

}  // namespace emergent::cli
