// The band files of kernel_files.hpp written by all ranks of an MPI job at once: one pair of
// `<path>.partial` files, each rank positioned-writes its own bands (disjoint byte ranges) and
// appends its lines to the one `<first path>.resume` record (O_APPEND, one write per line). The
// record and file format are those of KernelFileWriter, so a run resumes on any rank count, with
// or without MPI. Needs a file system shared by the ranks with POSIX positioned writes and atomic
// appends (a local disk, Lustre, GPFS; not NFS).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "emergent/kernels/kernel.hpp"
#include "kernel_band_files.hpp"

namespace emergent::cli {

class SharedKernelFiles : public KernelBandSink, private KernelBandFiles {
 public:
  /// As KernelFileWriter; collective over `comm` (begin() and finish() on every rank).
  SharedKernelFiles(std::string nngp, std::string ntk, std::uint64_t key, bool resume, bool progress, MPI_Comm comm);
  ~SharedKernelFiles() override;
  SharedKernelFiles(const SharedKernelFiles&) = delete;
  SharedKernelFiles& operator=(const SharedKernelFiles&) = delete;

  /// With --resume and a record present: its band rows (the layout must stay), else 0.
  Eigen::Index recorded_band_rows() const;

  void begin(Eigen::Index n1, Eigen::Index n2, bool symmetric, Eigen::Index band_rows) override;
  /// Gram or pixel-indexed layouts (N1, N2, H, W, H, W), as KernelFileWriter.
  void start(const KernelBandLayout& layout) override;
  bool wanted(Eigen::Index band) override;
  void write(const KernelBand& band) override;

  /// Collective: all bands present on all ranks, then rank 0 moves the files into place.
  void finish();

  Eigen::Index bands_total() const { return bands_; }
  Eigen::Index bands_resumed() const { return resumed_; }
  /// The file shape: (N1, N2) or (N1, N2, H, W, H, W).
  std::vector<std::size_t> shape() const { return file_shape(); }

 private:
  void create_fresh();                      // rank 0
  std::size_t read_record(bool report);     // every rank: parse, verify its share; returns good bytes

  bool resume_, progress_;
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  Eigen::Index written_ = 0, resumed_ = 0;
  int record_fd_ = -1;
  double start_ = 0, last_print_ = 0;
  bool fail_ = false;     // test hook: EMERGENT_MPI_TEST_FAIL_RANK (this rank throws at its first band)
  int abort_after_ = -1;  // test hook: EMERGENT_KERNEL_ABORT_AFTER_BANDS (with EMERGENT_MPI_ABORT_RANK)
};

}  // namespace emergent::cli
