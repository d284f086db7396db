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

// The first line of KernelFileWriter's record (kernel_files.cpp): the same text, so that records
// move between single-process and MPI runs.
std::string record_header(std::uint64_t key, const std::vector<std::size_t>& shape, bool symmetric, Index band_rows,
                          std::size_t outputs) {
  std::ostringstream os;
  os << "emergent-kernel-resume 2 key=" << hex(key) << " shape=";
  for (std::size_t k = 0; k < shape.size(); ++k) os << (k ? "x" : "") << shape[k];
  os << " symmetric=" << symmetric << " band_rows=" << band_rows << " outputs=" << outputs << "\n";
  return os.str();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

SharedKernelFiles::SharedKernelFiles(std::string nngp, std::string ntk, std::uint64_t key, bool resume, bool progress,
                                     MPI_Comm comm)
    : key_(key), resume_(resume), progress_(progress), comm_(comm) {
  MPI_Comm_rank(comm, &rank_);
  MPI_Comm_size(comm, &size_);
  if (!nngp.empty()) outputs_.push_back({nngp, nngp + ".partial", -1, true});
  if (!ntk.empty()) outputs_.push_back({ntk, ntk + ".partial", -1, false});
  record_path_ = outputs_.front().path + ".resume";
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

KernelBand SharedKernelFiles::layout(Index band) const {
  KernelBand b;
  b.index = band;
  b.row_begin = band * band_rows_;
  b.rows = std::min(band_rows_, n1_ - b.row_begin);
  b.col_begin = symmetric_ ? b.row_begin : 0;
  b.cols = n2_ - b.col_begin;
  b.entry_size = entry_;
  return b;
}

std::vector<std::size_t> SharedKernelFiles::shape() const {
  std::vector<std::size_t> s = {static_cast<std::size_t>(n1_), static_cast<std::size_t>(n2_)};
  if (height_ > 0)
    for (int k = 0; k < 2; ++k) {
      s.push_back(static_cast<std::size_t>(height_));
      s.push_back(static_cast<std::size_t>(width_));
    }
  return s;
}

std::size_t SharedKernelFiles::entry_offset(Index i, Index j) const {
  return header_bytes_ + sizeof(double) * entry_ * (static_cast<std::size_t>(n2_) * static_cast<std::size_t>(i) +
                                                    static_cast<std::size_t>(j));
}

void SharedKernelFiles::create_fresh() {
  const std::string header = encode_npy_header(shape());
  const std::size_t size = entry_offset(n1_, 0);
  for (Output& out : outputs_) {
    const int fd = ::open(out.partial.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) io_error("cannot open for writing", out.partial);
    pwrite_all(fd, header.data(), header.size(), 0, out.partial);
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) io_error("cannot extend to " + std::to_string(size) + " bytes", out.partial);
    if (::fsync(fd) != 0) io_error("fsync failed", out.partial);
    ::close(fd);
  }
  const int fd = ::open(record_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_error("cannot open for writing", record_path_);
  const std::string line = record_header(key_, shape(), symmetric_, band_rows_, outputs_.size());
  pwrite_all(fd, line.data(), line.size(), 0, record_path_);
  if (::fsync(fd) != 0) io_error("fsync failed", record_path_);
  ::close(fd);
}

// Every rank parses the whole record (nobody appends yet) and verifies the checksums of every
// size-th recorded band; a record line that is cut short or malformed ends the record there.
std::size_t SharedKernelFiles::read_record(bool report) {
  const std::string text = slurp(record_path_);
  const std::string expected = record_header(key_, shape(), symmetric_, band_rows_, outputs_.size());
  if (text.compare(0, expected.size(), expected) != 0) {
    const std::string first = text.substr(0, text.find('\n'));
    throw std::invalid_argument("--resume: '" + record_path_ + "' records a different computation ('" + first +
                                "', expected '" + expected.substr(0, expected.size() - 1) +
                                "'): resume with the same --arch, inputs, outputs and --memory-cap, or run without --resume");
  }
  const std::size_t size = entry_offset(n1_, 0);
  const std::string header = encode_npy_header(shape());
  for (Output& out : outputs_) {
    struct stat st {};
    if (::fstat(out.fd, &st) != 0) io_error("cannot stat", out.partial);
    if (static_cast<std::size_t>(st.st_size) != size)
      throw std::invalid_argument("--resume: '" + out.partial + "' has " + std::to_string(st.st_size) + " bytes, expected " +
                                  std::to_string(size) + ": the partial output is truncated or corrupted; run without --resume");
    std::string got(header.size(), '\0');
    if (!pread_all(out.fd, got.data(), got.size(), 0, out.partial) || got != header)
      throw std::invalid_argument("--resume: '" + out.partial + "' does not start with the expected .npy header: "
                                  "the partial output is corrupted; run without --resume");
  }
  std::size_t pos = expected.size(), good = pos, line_number = 0;
  while (true) {
    const std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;
    std::istringstream line(text.substr(pos, end - pos));
    std::string word;
    long long band = -1;
    line >> word >> band;
    if (word != "band" || band < 0 || band >= bands_) break;
    std::vector<std::string> sums(outputs_.size());
    for (std::string& s : sums) line >> s;
    if (static_cast<int>(line_number++ % static_cast<std::size_t>(size_)) == rank_) {
      const KernelBand b = layout(band);
      for (std::size_t o = 0; o < outputs_.size(); ++o)
        if (sums[o] != hex(checksum_band(outputs_[o], b)))
          throw std::invalid_argument("--resume: band " + std::to_string(band) + " of '" + outputs_[o].partial +
                                      "' does not match its recorded checksum: the partial output is corrupted; "
                                      "run without --resume");
    }
    if (!done_[band]) {
      done_[band] = 1;
      ++resumed_;
    }
    pos = good = end + 1;
  }
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
  n1_ = l.n1;
  n2_ = l.n2;
  symmetric_ = l.symmetric;
  band_rows_ = l.band_rows;
  height_ = l.height;
  width_ = l.width;
  entry_ = l.entry_size();
  bands_ = l.bands();
  done_.assign(static_cast<std::size_t>(bands_), 0);
  header_bytes_ = encode_npy_header(shape()).size();
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

// The bytes of a band in KernelFileWriter's checksum order: its rows, then for a symmetric kernel
// the mirrored strip below it, each mirrored entry with its two pixel indices swapped
// (K(x_j, x_i)_ab = K(x_i, x_j)_ba).
std::uint64_t SharedKernelFiles::write_band(Output& out, const KernelBand& b, const double* data) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const std::size_t d = sizeof(double), e = entry_;
  const std::size_t row = static_cast<std::size_t>(b.cols) * e;  // doubles per band row
  if (b.col_begin == 0) {
    pwrite_all(out.fd, data, d * row * b.rows, entry_offset(b.row_begin, 0), out.partial);
    h = fnv1a(data, d * row * b.rows, h);
  } else {
    for (Index i = 0; i < b.rows; ++i) {
      pwrite_all(out.fd, data + i * row, d * row, entry_offset(b.row_begin + i, b.col_begin), out.partial);
      h = fnv1a(data + i * row, d * row, h);
    }
  }
  if (symmetric_) {
    const std::size_t m = static_cast<std::size_t>(height_) * static_cast<std::size_t>(width_);
    const std::size_t piece = static_cast<std::size_t>(b.rows) * e;  // doubles of one strip row
    std::vector<double> strip(piece);
    for (Index r = b.row_begin + b.rows; r < n1_; ++r) {
      for (Index i = 0; i < b.rows; ++i) {
        const double* from = data + i * row + static_cast<std::size_t>(r - b.col_begin) * e;
        double* to = strip.data() + i * e;
        if (e == 1) *to = *from;
        else
          for (std::size_t a = 0; a < m; ++a)
            for (std::size_t c = 0; c < m; ++c) to[c * m + a] = from[a * m + c];
      }
      pwrite_all(out.fd, strip.data(), d * piece, entry_offset(r, b.row_begin), out.partial);
      h = fnv1a(strip.data(), d * piece, h);
    }
  }
  return h;
}

std::uint64_t SharedKernelFiles::checksum_band(const Output& out, const KernelBand& b) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const std::size_t d = sizeof(double);
  std::vector<double> buffer(static_cast<std::size_t>(b.cols) * entry_);
  for (Index i = 0; i < b.rows; ++i) {
    if (!pread_all(out.fd, buffer.data(), d * buffer.size(), entry_offset(b.row_begin + i, b.col_begin), out.partial))
      return ~h;
    h = fnv1a(buffer.data(), d * buffer.size(), h);
  }
  if (symmetric_) {
    buffer.resize(static_cast<std::size_t>(b.rows) * entry_);
    for (Index r = b.row_begin + b.rows; r < n1_; ++r) {
      if (!pread_all(out.fd, buffer.data(), d * buffer.size(), entry_offset(r, b.row_begin), out.partial)) return ~h;
      h = fnv1a(buffer.data(), d * buffer.size(), h);
    }
  }
  return h;
}

void SharedKernelFiles::write(const KernelBand& b) {
  const std::size_t n = static_cast<std::size_t>(b.rows) * static_cast<std::size_t>(b.cols) * b.entry_size;
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(b.nngp[i]) || !std::isfinite(b.ntk[i]))
      throw std::runtime_error("kernel: a non-finite value in rows " + std::to_string(b.row_begin) + ".." +
                               std::to_string(b.row_begin + b.rows - 1) + " (numerical failure; nothing trusted)");
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
