#include "shared_kernel_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
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

#include "emergent/data/npy.hpp"
#include "emergent/distributed/collective.hpp"
#include "kernel_files.hpp"
#include "support/positioned_io.hpp"

namespace emergent::cli {

namespace {

using Eigen::Index;
using distributed::collectively;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

SharedKernelFiles::SharedKernelFiles(std::string nngp, std::string ntk, std::uint64_t key, bool resume, bool progress,
                                     MPI_Comm comm)
    : KernelBandFiles(nngp, ntk, key), resume_(resume), progress_(progress), comm_(comm) {
  MPI_Comm_rank(comm, &rank_);
  MPI_Comm_size(comm, &size_);
  const char* after = std::getenv("EMERGENT_KERNEL_ABORT_AFTER_BANDS");
  const char* who = std::getenv("EMERGENT_MPI_ABORT_RANK");
  if (after && (!who || std::atoi(who) == rank_)) abort_after_ = std::atoi(after);
  if (const char* v = std::getenv("EMERGENT_MPI_TEST_FAIL_RANK")) fail_ = std::atoi(v) == rank_;
}

Index SharedKernelFiles::recorded_band_rows() const {
  if (!resume_ || !std::filesystem::exists(record_path_)) return 0;
  const std::string text = slurp(record_path_);
  const std::size_t at = text.find(" band_rows="), end = text.find('\n');
  if (at == std::string::npos || at > end) return 0;  // begin() reports the mismatch
  return std::atoll(text.c_str() + at + 11);
}

void SharedKernelFiles::create_fresh() {
  create_partials();
  for (Output& out : outputs_) {  // every rank opens them again below
    if (::fsync(out.fd) != 0) io_error("fsync failed", out.partial);
    ::close(out.fd);
    out.fd = -1;
  }
  const int fd = ::open(record_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_error("cannot open for writing", record_path_);
  const std::string line = record_header();
  pwrite_all(fd, line.data(), line.size(), 0, record_path_);
  if (::fsync(fd) != 0) io_error("fsync failed", record_path_);
  ::close(fd);
}

// Every rank parses the whole record (nobody appends yet) and verifies the checksums of every
// size-th recorded band; a record line that is cut short or malformed ends the record there.
std::size_t SharedKernelFiles::read_record(bool report) {
  const std::string text = slurp(record_path_);
  check_record_header(text, "resume with the same --arch, inputs, outputs and --memory-cap (and an emergent build of the "
                            "same kernel arithmetic), or run without --resume");
  for (const Output& out : outputs_) check_partial(out);
  const std::size_t good = parse_record(text, [&](std::size_t line, Index band, const std::vector<std::string>& sums) {
    if (static_cast<int>(line % static_cast<std::size_t>(size_)) == rank_)
      for (std::size_t o = 0; o < outputs_.size(); ++o) verify_band(outputs_[o], band, sums[o]);
    if (!done_[band]) {
      done_[band] = 1;
      ++resumed_;
    }
  });
  if (report && progress_)
    std::cerr << "kernel: --resume: " << resumed_ << " of " << bands_ << " bands verified in '" << record_path_
              << "' by " << size_ << " rank(s), computing the rest\n";
  return good;
}

void SharedKernelFiles::begin(Index n1, Index n2, bool symmetric, Index band_rows) {
  KernelBandLayout l;
  l.n1 = n1;
  l.n2 = n2;
  l.symmetric = symmetric;
  l.band_rows = band_rows;
  start(l);
}

void SharedKernelFiles::start(const KernelBandLayout& l) {
  set_layout(l);
  int resumed = 0;
  collectively(comm_, [&] {
    if (rank_ != 0) return;
    resumed = resume_ && std::filesystem::exists(record_path_);
    if (!resumed) {
      if (resume_ && progress_) std::cerr << "kernel: --resume: no record '" << record_path_ << "', starting afresh\n";
      create_fresh();
    }
  });
  MPI_Bcast(&resumed, 1, MPI_INT, 0, comm_);
  std::size_t good = 0;
  collectively(comm_, [&] {
    for (Output& out : outputs_) {
      out.fd = ::open(out.partial.c_str(), O_RDWR | O_CLOEXEC);
      if (out.fd < 0) io_error(resumed ? "--resume: cannot open the partial output" : "cannot open", out.partial);
    }
    if (resumed) good = read_record(rank_ == 0);
  });
  collectively(comm_, [&] {  // drop a line cut short before anyone appends
    if (rank_ == 0 && resumed && ::truncate(record_path_.c_str(), static_cast<off_t>(good)) != 0)
      io_error("cannot truncate", record_path_);
  });
  collectively(comm_, [&] {
    record_fd_ = ::open(record_path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (record_fd_ < 0) io_error("cannot open for appending", record_path_);
  });
  start_ = last_print_ = now_seconds();
}

bool SharedKernelFiles::wanted(Index band) { return !done_[static_cast<std::size_t>(band)]; }

void SharedKernelFiles::write(const KernelBand& b) {
  check_band_finite(b);
  std::string line = "band " + std::to_string(b.index);
  for (Output& out : outputs_) line += " " + hex(write_band(out, b, out.nngp ? b.nngp : b.ntk));
  for (Output& out : outputs_)
    if (::fdatasync(out.fd) != 0) io_error("fdatasync failed", out.partial);
  if (fail_) throw std::runtime_error("test hook EMERGENT_MPI_TEST_FAIL_RANK: this rank fails at its first band");
  // Test hook: this rank dies as a killed process would, its band written but not recorded.
  if (abort_after_ >= 0 && written_ == abort_after_) std::raise(SIGKILL);
  line += "\n";
  if (::write(record_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) io_error("write failed", record_path_);
  if (::fdatasync(record_fd_) != 0) io_error("fdatasync failed", record_path_);
  done_[static_cast<std::size_t>(b.index)] = 1;
  ++written_;
  if (!progress_ || rank_ != 0) return;
  const double now = now_seconds();
  if (now - last_print_ >= 10.0) {  // a log line every 10 s of a long run, from rank 0's share
    last_print_ = now;
    std::cerr << "kernel: rank 0 of " << size_ << ": " << written_ << " band(s) written in "
              << static_cast<long>(now - start_) << " s (" << bands_ << " bands in all)" << std::endl;
  }
}

void SharedKernelFiles::finish() {
  long long mine = written_, all = 0;
  collectively(comm_, [&] {
    for (Output& out : outputs_) {
      if (::fsync(out.fd) != 0) io_error("fsync failed", out.partial);
      ::close(out.fd);
      out.fd = -1;
    }
    ::close(record_fd_);
    record_fd_ = -1;
  });
  MPI_Allreduce(&mine, &all, 1, MPI_LONG_LONG, MPI_SUM, comm_);
  collectively(comm_, [&] {
    if (rank_ != 0) return;
    if (all + resumed_ != bands_)
      throw std::runtime_error("kernel: " + std::to_string(bands_ - all - resumed_) + " band(s) missing from '" +
                               record_path_ + "'");
    for (Output& out : outputs_)
      if (std::rename(out.partial.c_str(), out.path.c_str()) != 0) io_error("cannot rename to '" + out.path + "'", out.partial);
    std::remove(record_path_.c_str());
  });
}

SharedKernelFiles::~SharedKernelFiles() {
  for (Output& out : outputs_)
    if (out.fd >= 0) ::close(out.fd);
  if (record_fd_ >= 0) ::close(record_fd_);
}

}  // namespace emergent::cli
