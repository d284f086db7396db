// NumPy .npy files (format versions 1.0, 2.0 and 3.0): read little-endian float64/float32
// (and integer) arrays in C order into float64; always write '<f8'.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/core/inputs.hpp"

namespace emergent {

/// A malformed or unsupported .npy file, or one holding NaN/Inf. The message names the file.
class NpyError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct NpyArray {
  std::vector<std::size_t> shape;
  std::vector<double> data;  ///< C order, converted to float64
  std::size_t size() const;  ///< product of shape (1 for a 0-d array)
};

/// Parse .npy bytes; `name` is used in error messages. Rejects big-endian data, Fortran
/// order, object/structured dtypes, truncated data and (unless allow_nonfinite) NaN/Inf.
NpyArray parse_npy(std::string_view bytes, const std::string& name, bool allow_nonfinite = false);
NpyArray read_npy(const std::string& path, bool allow_nonfinite = false);

/// A .npy file mapped read-only into memory (mmap, MAP_PRIVATE | PROT_READ): the header is
/// validated when the file is opened (the same rules and messages as parse_npy), the data stay
/// in the page cache and are converted to float64 only when read, one range at a time. So an
/// N×N kernel is never held twice, and a large file costs only the pages actually touched.
class MappedNpy {
 public:
  /// Throws NpyError naming `path` if it cannot be opened, mapped or is not a valid .npy.
  explicit MappedNpy(const std::string& path);
  ~MappedNpy();
  MappedNpy(MappedNpy&& other) noexcept;
  MappedNpy& operator=(MappedNpy&& other) noexcept;
  MappedNpy(const MappedNpy&) = delete;
  MappedNpy& operator=(const MappedNpy&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<std::size_t>& shape() const { return shape_; }
  std::size_t size() const { return count_; }       ///< number of elements
  const std::string& dtype() const { return descr_; } ///< the file's descr, e.g. '<f8' or '<f4'

  /// Elements [begin, begin + count) in C order, converted to float64, into out[0 .. count).
  /// Throws NpyError naming the element (by its index tuple) if one is NaN or ±Inf, and
  /// std::out_of_range if the range exceeds size().
  void read(std::size_t begin, std::size_t count, double* out) const;

 private:
  std::string path_;
  std::vector<std::size_t> shape_;
  std::string descr_;
  std::size_t count_ = 0, offset_ = 0, itemsize_ = 8, length_ = 0;
  int scalar_ = 0;
  const unsigned char* map_ = nullptr;
};

std::string encode_npy(const std::vector<std::size_t>& shape, const double* data);
/// The header alone ('<f8', C order): magic, version, length and the dict padded so that the
/// data starts at a multiple of 64 bytes. A file written in pieces starts with it.
std::string encode_npy_header(const std::vector<std::size_t>& shape);
/// Write '<f8', version 1.0. Throws std::runtime_error if the file cannot be written.
void write_npy(const std::string& path, const std::vector<std::size_t>& shape, const double* data);

}  // namespace emergent
