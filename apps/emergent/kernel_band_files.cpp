#include "kernel_band_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "emergent/data/npy.hpp"
#include "support/positioned_io.hpp"

namespace emergent::cli {

using Eigen::Index;

std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h) {
  // A word per step: the byte-wise loop ran at ~1.4 ns per byte, a quarter of a second per
  // 3000² pair of outputs. Each step is a bijection of h, so one changed word always shows.
  const unsigned char* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, sizeof w);
    h = (h ^ w) * 0x100000001B3ULL;
    h ^= h >> 32;
  }
  for (; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001B3ULL;
  return h;
}

KernelBandFiles::KernelBandFiles(const std::string& nngp, const std::string& ntk, std::uint64_t key) : key_(key) {
  if (!nngp.empty()) outputs_.push_back({nngp, nngp + ".partial", -1, true});
  if (!ntk.empty()) outputs_.push_back({ntk, ntk + ".partial", -1, false});
  record_path_ = outputs_.front().path + ".resume";
}

void KernelBandFiles::set_layout(const KernelBandLayout& l) {
  n1_ = l.n1;
  n2_ = l.n2;
  symmetric_ = l.symmetric;
  band_rows_ = l.band_rows;
  height_ = l.height;
  width_ = l.width;
  entry_ = l.entry_size();
  bands_ = l.bands();
  done_.assign(static_cast<std::size_t>(bands_), 0);
  header_bytes_ = encode_npy_header(file_shape()).size();
}

std::vector<std::size_t> KernelBandFiles::file_shape() const {
  std::vector<std::size_t> s = {static_cast<std::size_t>(n1_), static_cast<std::size_t>(n2_)};
  if (height_ > 0)
    for (int k = 0; k < 2; ++k) {
      s.push_back(static_cast<std::size_t>(height_));
      s.push_back(static_cast<std::size_t>(width_));
    }
  return s;
}

KernelBand KernelBandFiles::band_layout(Index band) const {
  KernelBand b;
  b.index = band;
  b.row_begin = band * band_rows_;
  b.rows = std::min(band_rows_, n1_ - b.row_begin);
  b.col_begin = symmetric_ ? b.row_begin : 0;
  b.cols = n2_ - b.col_begin;
  b.entry_size = entry_;
  return b;
}

std::size_t KernelBandFiles::entry_offset(Index i, Index j) const {
  return header_bytes_ + sizeof(double) * entry_ * (static_cast<std::size_t>(n2_) * static_cast<std::size_t>(i) +
                                                    static_cast<std::size_t>(j));
}

std::size_t KernelBandFiles::band_entries(const KernelBand& b, bool symmetric) {
  if (!symmetric) return static_cast<std::size_t>(b.rows) * static_cast<std::size_t>(b.cols);
  std::size_t n = 0;
  for (Index i = 0; i < b.rows; ++i) n += static_cast<std::size_t>(b.cols - i);
  return n;
}

void KernelBandFiles::check_band_finite(const KernelBand& b) {
  const std::size_t n = static_cast<std::size_t>(b.rows) * static_cast<std::size_t>(b.cols) * b.entry_size;
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(b.nngp[i]) || !std::isfinite(b.ntk[i]))
      throw std::runtime_error("kernel: a non-finite value in rows " + std::to_string(b.row_begin) + ".." +
                               std::to_string(b.row_begin + b.rows - 1) + " (numerical failure; nothing trusted)");
}

std::string KernelBandFiles::record_header() const {
  const std::vector<std::size_t> shape = file_shape();
  std::ostringstream os;
  os << "emergent-kernel-resume 2 key=" << hex(key_) << " shape=";
  for (std::size_t k = 0; k < shape.size(); ++k) os << (k ? "x" : "") << shape[k];
  os << " symmetric=" << symmetric_ << " band_rows=" << band_rows_ << " outputs=" << outputs_.size() << "\n";
  return os.str();
}

void KernelBandFiles::create_partials() {
  const std::string header = encode_npy_header(file_shape());
  const std::size_t size = file_bytes();
  for (Output& out : outputs_) {
    out.fd = ::open(out.partial.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out.fd < 0) io_error("cannot open for writing", out.partial);
    pwrite_all(out.fd, header.data(), header.size(), 0, out.partial);
    if (::ftruncate(out.fd, static_cast<off_t>(size)) != 0)
      io_error("cannot extend to " + std::to_string(size) + " bytes", out.partial);
  }
}

void KernelBandFiles::check_partial(const Output& out) const {
  const std::size_t size = file_bytes();
  const std::string header = encode_npy_header(file_shape());
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

void KernelBandFiles::check_record_header(const std::string& text, const std::string& resume_hint) const {
  const std::string expected = record_header();
  if (text.compare(0, expected.size(), expected) != 0) {
    const std::string first = text.substr(0, text.find('\n'));
    throw std::invalid_argument("--resume: '" + record_path_ + "' records a different computation ('" + first +
                                "', expected '" + expected.substr(0, expected.size() - 1) + "'): " + resume_hint);
  }
}

std::size_t KernelBandFiles::parse_record(
    const std::string& text,
    const std::function<void(std::size_t, Index, const std::vector<std::string>&)>& on_band) const {
  // Complete lines only: a record cut short by the interruption does not count.
  std::size_t pos = record_header().size(), good = pos, line_number = 0;
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
    on_band(line_number++, static_cast<Index>(band), sums);
    pos = good = end + 1;
  }
  return good;
}

void KernelBandFiles::verify_band(const Output& out, Index band, const std::string& sum) {
  if (sum != hex(checksum_band(out, band_layout(band))))
    throw std::invalid_argument("--resume: band " + std::to_string(band) + " of '" + out.partial +
                                "' does not match its recorded checksum: the partial output is corrupted; "
                                "run without --resume");
}

// The bytes of a band in the order they are checksummed: its rows (columns col_begin..), then for a
// symmetric kernel the mirrored strip below it (rows after the band, the band's columns), each
// mirrored entry with its two pixel indices swapped (K(x_j, x_i)_ab = K(x_i, x_j)_ba).
std::uint64_t KernelBandFiles::write_band(Output& out, const KernelBand& b, const double* data) {
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
    std::vector<double> strip(static_cast<std::size_t>(b.rows) * e);  // one row of the strip
    for (Index r = b.row_begin + b.rows; r < n1_; ++r) {
      for (Index i = 0; i < b.rows; ++i) {
        const double* from = data + i * row + static_cast<std::size_t>(r - b.col_begin) * e;
        double* to = strip.data() + i * e;
        if (e == 1) *to = *from;
        else
          for (std::size_t a = 0; a < m; ++a)
            for (std::size_t c = 0; c < m; ++c) to[c * m + a] = from[a * m + c];
      }
      pwrite_all(out.fd, strip.data(), d * strip.size(), entry_offset(r, b.row_begin), out.partial);
      h = fnv1a(strip.data(), d * strip.size(), h);
    }
  }
  return h;
}

std::uint64_t KernelBandFiles::checksum_band(const Output& out, const KernelBand& b) {
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

}  // namespace emergent::cli
