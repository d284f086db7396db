// `emergent kernel` streamed to disk: the Gram matrices are written band by band into .npy files
// (positioned writes; the result is an ordinary C-order '<f8' .npy), so the memory cap bounds the
// working set and not the output, and an interrupted run can resume.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "emergent/kernels/kernel.hpp"
#include "kernel_band_files.hpp"

namespace emergent::cli {

/// Writes the bands of stream_kernels into `<path>.partial` files and records every finished band
/// with the checksums of its bytes in a sidecar `<first path>.resume`; finish() renames the
/// partial files to their final names and removes the record. A file under its final name is
/// complete for every reader from the rename on (the rename is atomic); whether it is also on
/// the disk then (durable against a power loss) is the `sync` option's choice.
///
/// Progress goes to stderr once a run has taken more than a few seconds: the entries done, their
/// rate and the ETA, redrawn in place on a terminal, a line every 10 s otherwise.
///
/// A band counts as finished only once its data are written and synced and its record line is
/// complete; records are synced at most once a second, so a run killed at any point loses at
/// most the bands of the last second and the band in flight. With `resume`, recorded
/// bands are read back and their checksums compared before they are trusted (a corrupted or
/// truncated partial file is an error), and only the missing bands are computed.
class KernelFileWriter : public KernelBandSink, private KernelBandFiles {
 public:
  /// `nngp` / `ntk`: output paths, either may be empty (not wanted). `key` identifies the
  /// computation (architecture, inputs, options): a resume must match it.
  /// `threads`: at most this many threads fault the mapped pages of a one-band output in.
  /// `sync`: each output is fsync'ed before its rename, so that after a power loss or an OS
  /// crash the final names hold complete files or none of this run. Without it (the default, as
  /// numpy.save) the kernel writes the pages back on its own schedule, after the command.
  KernelFileWriter(std::string nngp, std::string ntk, std::uint64_t key, bool resume, bool progress, int threads = 1,
                   bool sync = false);
  ~KernelFileWriter() override;
  KernelFileWriter(const KernelFileWriter&) = delete;
  KernelFileWriter& operator=(const KernelFileWriter&) = delete;

  /// The computation's key, when it is known only after the constructor (before start()).
  void set_key(std::uint64_t key) { key_ = key; }

  /// A hint before the computation is planned: the outputs will be `n1` × `n2` Gram matrices.
  /// If they qualify for in-place writing (direct_output; not with a record to resume), the
  /// partial files are created and mapped now and their pages faulted in on a background
  /// thread while the caller reads the inputs and plans. start() still takes the layout the
  /// engine chose; a writer destroyed before start() (a refused run) removes the files it made.
  void expect_gram(Eigen::Index n1, Eigen::Index n2);

  void begin(Eigen::Index n1, Eigen::Index n2, bool symmetric, Eigen::Index band_rows) override;
  /// Gram matrices (N1, N2) and pixel-indexed kernels (N1, N2, H, W, H, W) alike.
  void start(const KernelBandLayout& layout) override;
  bool wanted(Eigen::Index band) override;
  /// A Gram output computed in one band is memory-mapped and written in place by the engine:
  /// no band buffer and no copy through write(); the last band of a run needs no record (an
  /// interruption before finish() only loses it), so it is neither checksummed nor synced twice.
  KernelOutputMatrices direct_output(const KernelBandLayout& layout) override;
  void write(const KernelBand& band) override;
  void progress(Eigen::Index band, std::size_t done, std::size_t total) override;

  /// The file shape: (N1, N2) or (N1, N2, H, W, H, W).
  std::vector<std::size_t> shape() const { return file_shape(); }

  /// All bands present: move the files into place. Throws if a band is missing.
  void finish();

  Eigen::Index bands_total() const { return bands_; }
  Eigen::Index bands_resumed() const { return resumed_; }

 private:
  // Pieces of the mapped outputs still to fault in, taken by whichever thread is free.
  struct Prefault {
    std::vector<std::pair<char*, std::size_t>> pieces;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    void run();
  };
  bool map_outputs(std::size_t size);
  bool populate();
  void stop_prefault();
  void unmap();
  void create_record();
  void open_fresh();
  void open_resumed();
  void report(std::size_t entries_now, bool final_line);
  void flush_records();

  bool resume_, progress_;
  int threads_ = 1;
  Eigen::Index done_count_ = 0, resumed_ = 0;
  std::size_t entries_total_ = 0, entries_done_ = 0, entries_resumed_ = 0;  // (i, j) entries to compute
  int record_fd_ = -1;
  double start_ = 0;
  double last_print_ = -1e9;  // no line yet
  bool printed_ = false;
  double quiet_seconds_ = 3.0;  // no progress line for runs shorter than this
  double last_sync_ = 0;
  Eigen::Index computed_ = 0;  // bands computed in this run (recorded or pending)
  std::vector<std::pair<Eigen::Index, std::string>> pending_;  // written, not yet synced and recorded
  int abort_after_ = -1;  // test hook: EMERGENT_KERNEL_ABORT_AFTER_BANDS
  bool sync_ = false;
  bool early_ = false;    // partial files created by expect_gram, start() not run yet
  Eigen::Index early_n1_ = 0, early_n2_ = 0;
  bool started_ = false;  // start() ran: the partial files and the record belong to a run
  std::unique_ptr<Prefault> prefault_;
  std::thread prefault_thread_;
};

}  // namespace emergent::cli
