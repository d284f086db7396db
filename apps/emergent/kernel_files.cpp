#include "kernel_files.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "emergent/data/npy.hpp"
#include "support/phase_log.hpp"
#include "support/positioned_io.hpp"

namespace emergent::cli {

namespace {

using Eigen::Index;

// Mapped outputs only up to this size in all. Mapped pages dirtied faster than the disk takes
// them are throttled and written back in fault order: measured here, N = 20 000 (2 × 3.2 GB) in
// one mapped band took 220 s wall against 28 s for positioned writes of 64-row bands; 3000²
// (2 × 72 MB) gains from the mapping.
constexpr std::size_t kMaxMappedBytes = std::size_t(1) << 30;

#ifdef MADV_POPULATE_WRITE
constexpr int kPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kPopulateWrite = 23;  // Linux 5.14
#endif

std::string duration_text(double s) {
  char buffer[32];
  if (!std::isfinite(s)) return "?";
  if (s < 60) std::snprintf(buffer, sizeof buffer, "%.0f s", s);
  else if (s < 3600) std::snprintf(buffer, sizeof buffer, "%dm %02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  else std::snprintf(buffer, sizeof buffer, "%dh %02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  return buffer;
}

}  // namespace

KernelFileWriter::KernelFileWriter(std::string nngp, std::string ntk, std::uint64_t key, bool resume, bool progress,
                                   int threads, bool sync)
    : KernelBandFiles(nngp, ntk, key), resume_(resume), progress_(progress), threads_(std::max(1, threads)),
      sync_(sync) {
  if (const char* v = std::getenv("EMERGENT_KERNEL_ABORT_AFTER_BANDS")) abort_after_ = std::atoi(v);
  if (const char* v = std::getenv("EMERGENT_PROGRESS_AFTER_SECONDS")) quiet_seconds_ = std::atof(v);  // test hook
}

void KernelFileWriter::begin(Index n1, Index n2, bool symmetric, Index band_rows) {
  KernelBandLayout l;
  l.n1 = n1;
  l.n2 = n2;
  l.symmetric = symmetric;
  l.band_rows = band_rows;
  start(l);
}

void KernelFileWriter::start(const KernelBandLayout& l) {
  phase_mark("planned");
  set_layout(l);
  entries_total_ = 0;
  for (Index b = 0; b < bands_; ++b) entries_total_ += band_entries(band_layout(b), symmetric_);
  namespace fs = std::filesystem;
  if (early_) {
    early_ = false;
    if (n1_ == early_n1_ && n2_ == early_n2_ && entry_ == 1) {  // the files expect_gram made: only the record is missing
      started_ = true;
      if (resume_ && progress_) std::cerr << "kernel: --resume: no record '" << record_path_ << "', starting afresh\n";
      create_record();
      start_ = last_sync_ = now_seconds();
      return;
    }
    stop_prefault();
    unmap();
    for (Output& out : outputs_) {
      ::close(out.fd);
      out.fd = -1;
    }
  }
  started_ = true;
  if (resume_ && fs::exists(record_path_)) open_resumed();
  else {
    if (resume_ && progress_) std::cerr << "kernel: --resume: no record '" << record_path_ << "', starting afresh\n";
    open_fresh();
  }
  start_ = last_sync_ = now_seconds();
}

void KernelFileWriter::expect_gram(Index n1, Index n2) {
  if (early_ || started_ || n1 <= 0 || n2 <= 0) return;
  if (resume_ && std::filesystem::exists(record_path_)) return;  // start() verifies the record first
  early_n1_ = n1;
  early_n2_ = n2;
  KernelBandLayout l;  // the one-band layout; start() sets the engine's
  l.n1 = n1;
  l.n2 = n2;
  l.band_rows = n1;
  set_layout(l);
  const std::size_t size = file_bytes();
  if (header_bytes_ % sizeof(double) != 0 || size * outputs_.size() > kMaxMappedBytes) return;
  early_ = true;
  create_partials();
  if (!map_outputs(size)) return;  // start() and write() use positioned writes then
  // One thread now (the caller is reading and planning); direct_output adds the others.
  prefault_thread_ = std::thread([p = prefault_.get()] { p->run(); });
}

void KernelFileWriter::open_fresh() {
  create_partials();
  create_record();
}

void KernelFileWriter::create_record() {
  record_fd_ = ::open(record_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (record_fd_ < 0) io_error("cannot open for writing", record_path_);
  const std::string line = record_header();
  pwrite_all(record_fd_, line.data(), line.size(), 0, record_path_);
  if (::lseek(record_fd_, static_cast<off_t>(line.size()), SEEK_SET) < 0) io_error("cannot seek", record_path_);
  // Not synced here: a record without bands resumes nothing, so losing it to a crash only makes
  // --resume start afresh, as it would anyway; the first flush_records syncs the header with its
  // bands. (The fsync waited for a journal commit: 0.7 ms on an idle disk, more on a busy one.)
}

void KernelFileWriter::open_resumed() {
  std::ifstream in(record_path_, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check_record_header(text, "resume with the same --arch, inputs, outputs, --memory-cap and --threads (and an emergent "
                            "build of the same kernel arithmetic), or run without --resume");
  for (Output& out : outputs_) {
    out.fd = ::open(out.partial.c_str(), O_RDWR | O_CLOEXEC);
    if (out.fd < 0) io_error("--resume: cannot open the partial output", out.partial);
    check_partial(out);
  }
  const std::size_t good = parse_record(text, [&](std::size_t, Index band, const std::vector<std::string>& sums) {
    for (std::size_t o = 0; o < outputs_.size(); ++o) verify_band(outputs_[o], band, sums[o]);
    if (!done_[band]) {
      done_[band] = 1;
      ++done_count_;
      ++resumed_;
      entries_resumed_ += band_entries(band_layout(band), symmetric_);
    }
  });
  record_fd_ = ::open(record_path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (record_fd_ < 0) io_error("cannot open for writing", record_path_);
  if (::ftruncate(record_fd_, static_cast<off_t>(good)) != 0) io_error("cannot truncate", record_path_);
  if (::lseek(record_fd_, static_cast<off_t>(good), SEEK_SET) < 0) io_error("cannot seek", record_path_);
  if (progress_)
    std::cerr << "kernel: --resume: " << resumed_ << " of " << bands_ << " bands verified in '" << record_path_
              << "', computing the rest\n";
}

bool KernelFileWriter::wanted(Index band) { return !done_[static_cast<std::size_t>(band)]; }

KernelOutputMatrices KernelFileWriter::direct_output(const KernelBandLayout& l) {
  KernelOutputMatrices m;
  const std::size_t size = file_bytes();
  // One band only: the mapped pages then hold exactly the band the memory plan counted.
  if (l.entry_size() != 1 || bands_ != 1 || done_[0] || header_bytes_ % sizeof(double) != 0 ||
      size * outputs_.size() > kMaxMappedBytes) {
    stop_prefault();
    unmap();
    return m;
  }
  if (!outputs_.front().map && !map_outputs(size)) return m;
  if (!populate()) {
    unmap();
    return m;
  }
  for (Output& out : outputs_) {
    double* data = reinterpret_cast<double*>(static_cast<char*>(out.map) + header_bytes_);
    (out.nngp ? m.nngp : m.ntk) = data;
  }
  m.direct = true;
  phase_mark("faulted");
  return m;
}

// The whole of each partial file, mapped shared, its blocks allocated first (fallocate): a full
// disk is an error here, never a SIGBUS on a mapped page later, and no delayed allocation is left
// for the rename to flush (ext4 writes a file renamed over another out at the rename: measured
// 90-140 ms in the command for the two 72 MB outputs, against 25-50 ms with the blocks allocated).
// No MADV_HUGEPAGE: with it ext4 caches the files in 2 MiB folios (Linux 6.18 here), and the
// median populate took less CPU (58 against 72 ms for read + plan + fault-in, 10 alternating
// runs), but the system time of the command went up to 0.14-0.55 s in 6 of 8 runs against
// 0.04-0.09 s (one 0.26) without (2026-12-02 02:12, loaded machine; the sixth session saw the same).
bool KernelFileWriter::map_outputs(std::size_t size) {
  constexpr std::size_t kPiece = std::size_t(8) << 20;
  prefault_ = std::make_unique<Prefault>();
  for (Output& out : outputs_) {
    if (::fallocate(out.fd, 0, 0, static_cast<off_t>(size)) != 0 && errno != EOPNOTSUPP && errno != ENOSYS) {
      unmap();
      return false;
    }
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, out.fd, 0);
    if (p == MAP_FAILED) {  // not mappable (some file systems): positioned writes instead
      unmap();
      return false;
    }
    out.map = p;
    out.map_bytes = size;
    for (std::size_t at = 0; at < size; at += kPiece)
      prefault_->pieces.emplace_back(static_cast<char*>(p) + at, std::min(kPiece, size - at));
  }
  return true;
}

// Fault the pages in up front, in bulk (MADV_POPULATE_WRITE, Linux 5.14): measured here
// 0.62-0.69 CPU s for the whole 3000² command against 0.76-0.82 with one trap per page from the
// compute threads. If it fails (no memory, an older kernel), positioned writes are used instead.
void KernelFileWriter::Prefault::run() {
  for (std::size_t k; !failed && (k = next++) < pieces.size();)
    if (::madvise(pieces[k].first, pieces[k].second, kPopulateWrite) != 0) failed = true;
}

// The pieces left by expect_gram's thread, on up to `threads_` threads in all.
bool KernelFileWriter::populate() {
  if (!prefault_) return false;
  const int running = prefault_thread_.joinable() ? 1 : 0;
  std::vector<std::thread> helpers;
  for (int t = 1 + running; t < threads_; ++t) helpers.emplace_back([p = prefault_.get()] { p->run(); });
  prefault_->run();
  for (std::thread& h : helpers) h.join();
  stop_prefault();
  return !prefault_->failed;
}

void KernelFileWriter::stop_prefault() {
  if (prefault_thread_.joinable()) prefault_thread_.join();
}

void KernelFileWriter::unmap() {
  stop_prefault();
  for (Output& out : outputs_)
    if (out.map) {
      ::munmap(out.map, out.map_bytes);
      out.map = nullptr;
    }
}

void KernelFileWriter::write(const KernelBand& b) {
  if (b.in_place) {
    // In the mapped files already, checked finite by the engine.
    const bool last = done_count_ + static_cast<Index>(pending_.size()) + 1 == bands_;
    if (abort_after_ >= 0 && computed_ == abort_after_) {  // test hook, as below
      flush_records();
      unmap();
      for (Output& out : outputs_) ::fdatasync(out.fd);
      std::_Exit(75);
    }
    ++computed_;
    entries_done_ += band_entries(b, symmetric_);
    if (last) {  // finish() follows: nothing to record
      phase_mark("computed");
      done_[static_cast<std::size_t>(b.index)] = 1;
      ++done_count_;
    } else {
      std::string line = "band " + std::to_string(b.index);
      for (Output& out : outputs_) line += " " + hex(checksum_band(out, b));
      pending_.push_back({b.index, line + "\n"});
      if (now_seconds() - last_sync_ >= 1.0) flush_records();
    }
    report(entries_done_, last);
    return;
  }
  if (outputs_.front().map) unmap();  // mapped by expect_gram, but the engine writes bands
  check_band_finite(b);
  std::string line = "band " + std::to_string(b.index);
  for (Output& out : outputs_) line += " " + hex(write_band(out, b, out.nngp ? b.nngp : b.ntk));
  if (abort_after_ >= 0 && computed_ == abort_after_) {  // test hook: the earlier bands recorded, this one not
    flush_records();
    for (Output& out : outputs_) ::fdatasync(out.fd);
    std::_Exit(75);
  }
  pending_.push_back({b.index, line + "\n"});
  ++computed_;
  entries_done_ += band_entries(b, symmetric_);
  // Syncing costs milliseconds per band on a busy disk: records are flushed at most once a second,
  // so an interruption loses at most a second of finished bands. The last ones need no record:
  // finish() follows.
  const bool last = done_count_ + static_cast<Index>(pending_.size()) == bands_;
  if (!last && now_seconds() - last_sync_ >= 1.0) flush_records();
  report(entries_done_, last);
}

// A band counts as finished only here: its data synced to disk, then its record line written
// and synced.
void KernelFileWriter::flush_records() {
  if (pending_.empty()) return;
  for (Output& out : outputs_)
    if (::fdatasync(out.fd) != 0) io_error("fdatasync failed", out.partial);
  std::string lines;
  for (const auto& [band, line] : pending_) lines += line;
  if (::write(record_fd_, lines.data(), lines.size()) != static_cast<ssize_t>(lines.size()))
    io_error("write failed", record_path_);
  if (::fdatasync(record_fd_) != 0) io_error("fdatasync failed", record_path_);
  for (const auto& [band, line] : pending_) {
    done_[static_cast<std::size_t>(band)] = 1;
    ++done_count_;
  }
  pending_.clear();
  last_sync_ = now_seconds();
}

void KernelFileWriter::progress(Index band, std::size_t done, std::size_t total) {
  const std::size_t in_band = band_entries(band_layout(band), symmetric_);
  // The engine counts its tiles' extents; scale to the band's own entry count.
  const std::size_t part = total > 0 ? static_cast<std::size_t>(static_cast<double>(done) / total * in_band) : 0;
  report(entries_done_ + std::min(part, in_band), false);
}

// Entries done, rate and ETA, once the run has taken more than quiet_seconds_ (3 s): redrawn in place
// on a terminal (at most 4 times a second), a line every 10 s in a log.
void KernelFileWriter::report(std::size_t entries_now, bool final_line) {
  if (!progress_) return;
  const double elapsed = now_seconds() - start_;
  static const bool tty = ::isatty(STDERR_FILENO) == 1;
  if (final_line) {
    if (tty && printed_) std::cerr << "\r" << std::string(100, ' ') << "\r" << std::flush;  // the summary follows
    return;
  }
  if (elapsed < quiet_seconds_ || elapsed - last_print_ < (tty ? 0.25 : 10.0)) return;
  last_print_ = elapsed;
  printed_ = true;
  const std::size_t todo = entries_total_ - entries_resumed_;
  const double rate = static_cast<double>(entries_now) / elapsed;
  const double eta = rate > 0 ? static_cast<double>(todo - std::min(entries_now, todo)) / rate : INFINITY;
  const double fraction = todo > 0 ? static_cast<double>(entries_now) / static_cast<double>(todo) : 1.0;
  const int percent = static_cast<int>(100 * fraction);
  char numbers[160];
  std::snprintf(numbers, sizeof numbers, "%d%% (%.3g of %.3g entries, band %lld/%lld), %.3g entries/s, elapsed %s, ETA %s",
                percent, static_cast<double>(entries_now + entries_resumed_), static_cast<double>(entries_total_),
                static_cast<long long>(done_count_), static_cast<long long>(bands_), rate,
                duration_text(elapsed).c_str(), duration_text(eta).c_str());
  if (tty) {
    const int width = 20, filled = std::min(width, static_cast<int>(width * fraction));
    std::cerr << "\rkernel [" << std::string(filled, '#') << std::string(width - filled, ' ') << "] " << numbers << "  "
              << std::flush;
  } else {
    std::cerr << "kernel: " << numbers << std::endl;
  }
}

void KernelFileWriter::finish() {
  // The bands not recorded yet are complete in the files: the renames below make them the
  // outputs, so they need no record (an interruption before the renames recomputes them).
  for (const auto& [band, line] : pending_) {
    done_[static_cast<std::size_t>(band)] = 1;
    ++done_count_;
  }
  pending_.clear();
  if (done_count_ != bands_)
    throw std::runtime_error("kernel: " + std::to_string(bands_ - done_count_) + " band(s) missing from '" +
                             record_path_ + "'");
  stop_prefault();
  // Each file unmapped, closed and renamed on its own thread: renaming over an existing output
  // frees that file's blocks (≈ 5-30 ms per 72 MB here), both at once. No fsync unless asked
  // for (sync_): the rename alone already makes a complete file appear atomically for every
  // reader; the fsync (≈ 50-115 ms per 72 MB file here) adds only durability against a power
  // loss. A failure is reported after all threads are done.
  std::vector<std::pair<std::string, int>> errors(outputs_.size());  // what failed, errno
  auto finish_one = [&](std::size_t k) {
    Output& out = outputs_[k];
    if (out.map) {
      ::munmap(out.map, out.map_bytes);  // the pages stay in the page cache
      out.map = nullptr;
    }
    if (sync_ && ::fsync(out.fd) != 0) errors[k] = {"fsync failed", errno};
    if (::close(out.fd) != 0 && errors[k].first.empty()) errors[k] = {"close failed", errno};
    out.fd = -1;
    if (errors[k].first.empty() && std::rename(out.partial.c_str(), out.path.c_str()) != 0)
      errors[k] = {"cannot rename to '" + out.path + "'", errno};
  };
  {
    std::vector<std::thread> others;
    for (std::size_t k = 1; k < outputs_.size(); ++k) others.emplace_back(finish_one, k);
    finish_one(0);
    for (std::thread& t : others) t.join();
  }
  for (std::size_t k = 0; k < outputs_.size(); ++k)
    if (!errors[k].first.empty()) {
      errno = errors[k].second;
      io_error(errors[k].first, outputs_[k].partial);
    }
  ::close(record_fd_);
  record_fd_ = -1;
  std::remove(record_path_.c_str());
}

KernelFileWriter::~KernelFileWriter() {
  unmap();
  for (Output& out : outputs_)
    if (out.fd >= 0) {
      ::close(out.fd);
      // Files made by expect_gram for a run that failed before it started hold nothing.
      if (early_) std::remove(out.partial.c_str());
    }
  if (record_fd_ >= 0) ::close(record_fd_);
}

}  // namespace emergent::cli
