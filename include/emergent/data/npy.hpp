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

std::string encode_npy(const std::vector<std::size_t>& shape, const double* data);
/// The header alone ('<f8', C order): magic, version, length and the dict padded so that the
/// data starts at a multiple of 64 bytes. A file written in pieces starts with it.
std::string encode_npy_header(const std::vector<std::size_t>& shape);
/// Write '<f8', version 1.0. Throws std::runtime_error if the file cannot be written.
void write_npy(const std::string& path, const std::vector<std::size_t>& shape, const double* data);

}  // namespace emergent
