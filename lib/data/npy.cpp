// NumPy .npy reader and writer.
//
// Format (numpy/lib/format.py, "NEP 1"): the magic "\x93NUMPY", a major and minor version byte,
// the header length (uint16 little-endian for 1.0, uint32 for 2.0 and 3.0), then an ASCII
// (1.0/2.0) or UTF-8 (3.0) Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': ...}
// padded with spaces and ended by '\n', then the raw data. We parse the dict with a small
// Python-literal parser instead of pattern matching so that key order and spacing do not matter.
#include "emergent/data/npy.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace emergent {

std::size_t NpyArray::size() const {
  std::size_t n = 1;
  for (std::size_t d : shape) n *= d;
  return n;
}

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw NpyError(name + ": " + what);
}

std::string py_repr(std::string_view s, std::size_t max_len = 40) {
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < max_len; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > max_len) out += "...";
  return out + "'";
}

// ---- A Python literal, as far as .npy headers need it. ----
struct PyEntry;  // std::pair<std::string, PyValue> would need PyValue complete (clang rejects it)
struct PyValue {
  enum Kind { Str, Int, Bool, None, Tuple, List, Dict } kind = None;
  std::string str;
  unsigned long long integer = 0;
  bool boolean = false;
  std::vector<PyValue> items;                          // Tuple, List
  std::vector<PyEntry> dict;                           // Dict (string keys only)
};
struct PyEntry {
  std::string first;
  PyValue second;
};

class LiteralParser {
 public:
  LiteralParser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

  PyValue parse_document() {
    PyValue v = value();
    skip_space();
    if (pos_ != s_.size()) error("unexpected " + py_repr(s_.substr(pos_, 10)) + " after the header dict");
    return v;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail(name_, "malformed header (" + what + " at offset " + std::to_string(pos_) + " of the header)");
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool starts_with(std::string_view w) const { return s_.substr(pos_, w.size()) == w; }

  PyValue value() {
    if (++depth_ > 32) error("nesting too deep");
    skip_space();
    if (pos_ >= s_.size()) error("unexpected end");
    PyValue v;
    const char c = s_[pos_];
    if (c == '\'' || c == '"') {
      v.kind = PyValue::Str;
      v.str = string_literal();
    } else if (c >= '0' && c <= '9') {
      v.kind = PyValue::Int;
      v.integer = integer_literal();
    } else if (starts_with("True")) {
      v.kind = PyValue::Bool, v.boolean = true, pos_ += 4;
    } else if (starts_with("False")) {
      v.kind = PyValue::Bool, v.boolean = false, pos_ += 5;
    } else if (starts_with("None")) {
      v.kind = PyValue::None, pos_ += 4;
    } else if (c == '(' || c == '[') {
      v.kind = c == '(' ? PyValue::Tuple : PyValue::List;
      sequence(c == '(' ? ')' : ']', v.items);
    } else if (c == '{') {
      v.kind = PyValue::Dict;
      dictionary(v.dict);
    } else {
      error("unexpected " + py_repr(s_.substr(pos_, 10)));
    }
    --depth_;
    return v;
  }

  std::string string_literal() {
    const char q = s_[pos_++];
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\') {
        if (pos_ + 1 >= s_.size()) break;
        ++pos_;
      }
      out += s_[pos_++];
    }
    if (pos_ >= s_.size()) error("unterminated string");
    ++pos_;
    return out;
  }

  unsigned long long integer_literal() {
    unsigned long long v = 0;
    const std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      const unsigned d = static_cast<unsigned>(s_[pos_] - '0');
      if (v > (std::numeric_limits<unsigned long long>::max() - d) / 10) error("integer too large");
      v = v * 10 + d;
      ++pos_;
    }
    if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 long suffix
    if (pos_ == start) error("expected an integer");
    return v;
  }

  void sequence(char close, std::vector<PyValue>& items) {
    ++pos_;
    if (eat(close)) return;
    while (true) {
      items.push_back(value());
      if (eat(close)) return;
      if (!eat(',')) error(std::string("expected ',' or '") + close + "'");
      if (eat(close)) return;
    }
  }

  void dictionary(std::vector<PyEntry>& out) {
    ++pos_;
    if (eat('}')) return;
    while (true) {
      skip_space();
      if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) error("expected a string key");
      std::string key = string_literal();
      if (!eat(':')) error("expected ':' after key '" + key + "'");
      out.push_back(PyEntry{std::move(key), value()});
      if (eat('}')) return;
      if (!eat(',')) error("expected ',' or '}'");
      if (eat('}')) return;
    }
  }

  std::string_view s_;
  const std::string& name_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

enum class Scalar { F8, F4, F2, I1, I2, I4, I8, U1, U2, U4, U8, B1 };

struct DType {
  Scalar scalar;
  std::size_t itemsize;
};

const char* kSupported = "'<f8', '<f4', '<f2', '|b1', '|i1', '|u1', '<i2', '<u2', '<i4', '<u4', '<i8', '<u8'";

DType parse_descr(const PyValue& descr, const std::string& name) {
  if (descr.kind == PyValue::List)
    fail(name, "structured (record) dtypes are not supported; expected a plain numeric array (" +
                   std::string(kSupported) + ")");
  if (descr.kind != PyValue::Str) fail(name, "malformed header ('descr' is not a string)");
  const std::string& d = descr.str;
  if (d.size() < 2) fail(name, "unsupported dtype " + py_repr(d) + "; expected one of " + kSupported);
  char order = d[0];
  std::string code = d.substr(1);
  if (order != '<' && order != '>' && order != '|' && order != '=') {
    order = '=';  // numpy may omit the byte-order character, e.g. 'f8'
    code = d;
  }
  static const std::map<std::string, DType> table = {
      {"f8", {Scalar::F8, 8}}, {"f4", {Scalar::F4, 4}}, {"f2", {Scalar::F2, 2}}, {"i1", {Scalar::I1, 1}},
      {"i2", {Scalar::I2, 2}}, {"i4", {Scalar::I4, 4}}, {"i8", {Scalar::I8, 8}}, {"u1", {Scalar::U1, 1}},
      {"u2", {Scalar::U2, 2}}, {"u4", {Scalar::U4, 4}}, {"u8", {Scalar::U8, 8}}, {"b1", {Scalar::B1, 1}},
  };
  if (code == "O" || code.rfind("O", 0) == 0)
    fail(name, "object arrays (dtype " + py_repr(d) + ") are not supported; expected a numeric array (" + kSupported + ")");
  if (code.rfind("V", 0) == 0)
    fail(name, "structured/void dtype " + py_repr(d) + " is not supported; expected one of " + kSupported);
  const auto it = table.find(code);
  if (it == table.end()) fail(name, "unsupported dtype " + py_repr(d) + "; expected one of " + kSupported);
  const DType t = it->second;
  if (t.itemsize > 1) {
    if (order == '>')
      fail(name, "big-endian dtype " + py_repr(d) + " is not supported; save little-endian data (e.g. '<" + code +
                     "', numpy: a.astype('<" + code + "'))");
    if (order == '|') fail(name, "malformed dtype " + py_repr(d) + " ('|' is only valid for 1-byte types)");
    if (order == '=' && std::endian::native != std::endian::little)
      fail(name, "native-order dtype " + py_repr(d) + " on a big-endian machine is not supported");
  }
  return t;
}

std::uint64_t load_le(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

double half_to_double(std::uint16_t h) {
  const int sign = (h >> 15) & 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  double v;
  if (exp == 0) v = std::ldexp(static_cast<double>(mant), -24);
  else if (exp == 31) v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else v = std::ldexp(static_cast<double>(mant | 0x400), exp - 25);
  return sign ? -v : v;
}

double convert(const unsigned char* p, Scalar s) {
  switch (s) {
    case Scalar::F8: return std::bit_cast<double>(load_le(p, 8));
    case Scalar::F4: return static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(load_le(p, 4))));
    case Scalar::F2: return half_to_double(static_cast<std::uint16_t>(load_le(p, 2)));
    case Scalar::I1: return static_cast<double>(static_cast<std::int8_t>(p[0]));
    case Scalar::I2: return static_cast<double>(static_cast<std::int16_t>(load_le(p, 2)));
    case Scalar::I4: return static_cast<double>(static_cast<std::int32_t>(load_le(p, 4)));
    case Scalar::I8: return static_cast<double>(static_cast<std::int64_t>(load_le(p, 8)));
    case Scalar::U1: return static_cast<double>(p[0]);
    case Scalar::U2: return static_cast<double>(load_le(p, 2));
    case Scalar::U4: return static_cast<double>(load_le(p, 4));
    case Scalar::U8: return static_cast<double>(load_le(p, 8));
    case Scalar::B1: return p[0] != 0 ? 1.0 : 0.0;
  }
  return 0.0;
}

std::string flat_index_string(std::size_t flat, const std::vector<std::size_t>& shape) {
  if (shape.empty()) return "()";
  std::vector<std::size_t> idx(shape.size());
  for (std::size_t k = shape.size(); k-- > 0;) {
    idx[k] = flat % shape[k];
    flat /= shape[k];
  }
  return shape_string(idx);
}

struct ParsedHeader {
  std::vector<std::size_t> shape;
  DType dtype{Scalar::F8, 8};
  std::string descr;
  std::size_t count = 0, data_offset = 0;
};

// The header of .npy bytes, validated; `bytes` may hold the whole file or just its start, and
// `file_size` is the length of the whole file (the data must fill it exactly).
ParsedHeader parse_header(std::string_view bytes, std::size_t file_size, const std::string& name) {
  if (bytes.size() < kMagicLen || bytes.substr(0, kMagicLen) != std::string_view(kMagic, kMagicLen))
    fail(name, "not a .npy file (bad magic " + py_repr(bytes.substr(0, kMagicLen)) +
                   ", expected '\\x93NUMPY'); save arrays with numpy.save");
  if (bytes.size() < kMagicLen + 2) fail(name, "truncated .npy file (no version bytes)");
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  const int major = u[6], minor = u[7];
  if (minor != 0 || major < 1 || major > 3)
    fail(name, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " (expected 1.0, 2.0 or 3.0)");
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  const std::size_t prefix = kMagicLen + 2 + len_bytes;
  if (bytes.size() < prefix) fail(name, "truncated .npy file (incomplete header length)");
  const std::size_t header_len = static_cast<std::size_t>(load_le(u + kMagicLen + 2, len_bytes));
  if (bytes.size() - prefix < header_len)
    fail(name, "truncated .npy file (header of " + std::to_string(header_len) + " bytes announced, " +
                   std::to_string(bytes.size() - prefix) + " present)");
  const std::string_view header = bytes.substr(prefix, header_len);
  if (major < 3) {
    for (char c : header)
      if (static_cast<unsigned char>(c) >= 0x80)
        fail(name, "malformed header (non-ASCII byte in a version " + std::to_string(major) + ".0 header)");
  }

  const PyValue dict = LiteralParser(header, name).parse_document();
  if (dict.kind != PyValue::Dict) fail(name, "malformed header (expected a dict literal, got " + py_repr(header) + ")");
  const PyValue* descr = nullptr;
  const PyValue* fortran = nullptr;
  const PyValue* shape_v = nullptr;
  for (const auto& [key, v] : dict.dict) {
    if (key == "descr") descr = &v;
    else if (key == "fortran_order") fortran = &v;
    else if (key == "shape") shape_v = &v;
    else fail(name, "malformed header (unexpected key '" + key + "'; expected 'descr', 'fortran_order', 'shape')");
  }
  if (!descr || !fortran || !shape_v)
    fail(name, std::string("malformed header (missing key '") + (!descr ? "descr" : !fortran ? "fortran_order" : "shape") +
                   "')");
  const DType dtype = parse_descr(*descr, name);
  if (fortran->kind != PyValue::Bool) fail(name, "malformed header ('fortran_order' is not True/False)");
  if (shape_v->kind != PyValue::Tuple) fail(name, "malformed header ('shape' is not a tuple)");

  ParsedHeader out;
  std::size_t count = 1;
  bool overflow = false;
  for (const PyValue& d : shape_v->items) {
    if (d.kind != PyValue::Int) fail(name, "malformed header ('shape' holds a non-integer)");
    if (d.integer > std::numeric_limits<std::size_t>::max()) overflow = true;
    const auto dim = static_cast<std::size_t>(d.integer);
    out.shape.push_back(dim);
    if (dim != 0 && count > std::numeric_limits<std::size_t>::max() / dim) overflow = true;
    count *= dim;
  }
  // A 0-size array never overflows, whatever its other dimensions.
  if (count == 0) overflow = false;
  if (overflow || (count != 0 && count > std::numeric_limits<std::size_t>::max() / dtype.itemsize))
    fail(name, "shape " + shape_string(out.shape) + " is too large");
  if (fortran->boolean && out.shape.size() > 1) {
    std::size_t non_trivial = 0;
    for (std::size_t d : out.shape) non_trivial += d > 1;
    // A Fortran-ordered array with at most one non-trivial axis has the same bytes as in C order.
    if (non_trivial > 1)
      fail(name, "Fortran-ordered arrays are not supported; save a C-ordered array (numpy: np.ascontiguousarray(a))");
  }

  const std::size_t data_offset = prefix + header_len;
  const std::size_t expected = count * dtype.itemsize;
  if (file_size < data_offset) fail(name, "truncated .npy file (no data after the header)");
  const std::size_t present = file_size - data_offset;
  if (present < expected)
    fail(name, "truncated data: shape " + shape_string(out.shape) + " of " + py_repr(descr->str) + " needs " +
                   std::to_string(expected) + " bytes, the file holds " + std::to_string(present));
  if (present > expected)
    fail(name, "oversized data: shape " + shape_string(out.shape) + " of " + py_repr(descr->str) + " needs " +
                   std::to_string(expected) + " bytes, the file holds " + std::to_string(present) +
                   " (trailing bytes)");

  out.dtype = dtype;
  out.descr = descr->str;
  out.count = count;
  out.data_offset = data_offset;
  return out;
}

void check_finite_values(const double* v, std::size_t begin, std::size_t n, const std::vector<std::size_t>& shape,
                         const std::string& name) {
  // A double is NaN or ±Inf exactly when its exponent bits are all ones: a branch-free, vectorised
  // minimum of (exponent ^ all-ones) over blocks of 4096 (0 in a block holding one), and the
  // element is looked for only then.
  constexpr std::uint64_t kExponent = 0x7ff0000000000000ULL;
  constexpr std::size_t kBlock = 4096;
  std::size_t from = 0;
  for (; from < n; from += kBlock) {
    const std::size_t m = std::min(kBlock, n - from);
    std::uint64_t least = ~std::uint64_t(0);
    for (std::size_t i = 0; i < m; ++i) {
      std::uint64_t bits;
      std::memcpy(&bits, v + from + i, sizeof bits);
      least = std::min(least, (bits & kExponent) ^ kExponent);
    }
    if (least == 0) break;
  }
  for (std::size_t i = from; i < n; ++i)
    if (!std::isfinite(v[i]))
      fail(name, std::string("element ") + flat_index_string(begin + i, shape) + " is " +
                     (std::isnan(v[i]) ? "NaN" : v[i] > 0 ? "+Inf" : "-Inf") + "; only finite values are accepted");
}

}  // namespace

NpyArray parse_npy(std::string_view bytes, const std::string& name, bool allow_nonfinite) {
  const ParsedHeader h = parse_header(bytes, bytes.size(), name);
  NpyArray out;
  out.shape = h.shape;
  const std::size_t count = h.count;
  const DType dtype = h.dtype;
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t data_offset = h.data_offset;
  out.data.resize(count);
  const unsigned char* p = u + data_offset;
  if (dtype.scalar == Scalar::F8 && std::endian::native == std::endian::little) {  // the bytes are the doubles
    if (count > 0) std::memcpy(out.data.data(), p, count * sizeof(double));
  } else {
    for (std::size_t i = 0; i < count; ++i) out.data[i] = convert(p + i * dtype.itemsize, dtype.scalar);
  }
  if (!allow_nonfinite) check_finite_values(out.data.data(), 0, count, out.shape, name);
  return out;
}

NpyArray read_npy(const std::string& path, bool allow_nonfinite) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw NpyError(path + ": is a directory; expected a .npy file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw NpyError(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  // One read of the file's size when it is known (no growing buffer and its copies), then
  // whatever follows (a file that grew, or a pipe without a size).
  std::string bytes;
  std::error_code size_error;
  const auto size = std::filesystem::file_size(path, size_error);
  if (!size_error && size > 0) {
    bytes.resize(static_cast<std::size_t>(size));
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes.resize(static_cast<std::size_t>(in.gcount()));
    in.clear(in.rdstate() & ~std::ios::failbit & ~std::ios::eofbit);
  }
  std::ostringstream rest;
  if (in.peek() != std::ifstream::traits_type::eof()) {
    rest << in.rdbuf();
    bytes += std::move(rest).str();
  }
  if (in.bad()) throw NpyError(path + ": read error");
  return parse_npy(bytes, path, allow_nonfinite);
}

MappedNpy::MappedNpy(const std::string& path) : path_(path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw NpyError(path + ": is a directory; expected a .npy file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw NpyError(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw NpyError(path + ": cannot stat (" + std::strerror(e) + ")");
  }
  length_ = static_cast<std::size_t>(st.st_size);
  if (length_ > 0) {
    void* m = ::mmap(nullptr, length_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      throw NpyError(path + ": cannot map into memory (" + std::strerror(e) + ")");
    }
    map_ = static_cast<const unsigned char*>(m);
  }
  ::close(fd);  // the mapping keeps the file open
  try {
    const std::string_view bytes(reinterpret_cast<const char*>(map_), length_);
    const ParsedHeader h = parse_header(bytes, length_, path);
    shape_ = h.shape;
    descr_ = h.descr;
    count_ = h.count;
    offset_ = h.data_offset;
    itemsize_ = h.dtype.itemsize;
    scalar_ = static_cast<int>(h.dtype.scalar);
  } catch (...) {
    if (map_) ::munmap(const_cast<unsigned char*>(map_), length_);
    map_ = nullptr;
    throw;
  }
  if (map_ && count_ > 0)  // read front to back: let the kernel read ahead
    ::madvise(const_cast<unsigned char*>(map_), length_, MADV_SEQUENTIAL);
}

MappedNpy::~MappedNpy() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), length_);
}

MappedNpy::MappedNpy(MappedNpy&& o) noexcept
    : path_(std::move(o.path_)), shape_(std::move(o.shape_)), descr_(std::move(o.descr_)), count_(o.count_),
      offset_(o.offset_), itemsize_(o.itemsize_), length_(o.length_), scalar_(o.scalar_), map_(o.map_) {
  o.map_ = nullptr;
}

MappedNpy& MappedNpy::operator=(MappedNpy&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(const_cast<unsigned char*>(map_), length_);
    path_ = std::move(o.path_);
    shape_ = std::move(o.shape_);
    descr_ = std::move(o.descr_);
    count_ = o.count_;
    offset_ = o.offset_;
    itemsize_ = o.itemsize_;
    length_ = o.length_;
    scalar_ = o.scalar_;
    map_ = o.map_;
    o.map_ = nullptr;
  }
  return *this;
}

void MappedNpy::read(std::size_t begin, std::size_t count, double* out) const {
  if (begin > count_ || count > count_ - begin)
    throw std::out_of_range(path_ + ": elements " + std::to_string(begin) + ".." + std::to_string(begin + count) +
                            " requested of " + std::to_string(count_));
  const unsigned char* p = map_ + offset_ + begin * itemsize_;
  const Scalar s = static_cast<Scalar>(scalar_);
  if (count == 0) return;  // out and the map may be null then (memcpy's arguments must not be)
  if (s == Scalar::F8 && std::endian::native == std::endian::little) std::memcpy(out, p, count * 8);
  else
    for (std::size_t i = 0; i < count; ++i) out[i] = convert(p + i * itemsize_, s);
  check_finite_values(out, begin, count, shape_, path_);
}

std::string encode_npy_header(const std::vector<std::size_t>& shape) {
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape_string(shape) + ", }";
  // numpy pads with spaces and a final '\n' so that the data starts at a multiple of 64 bytes.
  std::size_t prefix = kMagicLen + 2 + 2;
  int major = 1;
  if (dict.size() + 64 > 65535) {  // numpy's rule: version 2.0 only when 1.0 cannot hold it
    major = 2;
    prefix = kMagicLen + 2 + 4;
  }
  const std::size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  const std::size_t header_len = total - prefix;
  std::string header = dict;
  header.append(header_len - dict.size() - 1, ' ');
  header += '\n';
  std::string out;
  out.reserve(total);
  out.append(kMagic, kMagicLen);
  out += static_cast<char>(major);
  out += '\0';
  for (std::size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) out += static_cast<char>((header_len >> (8 * i)) & 0xff);
  out += header;
  return out;
}

std::string encode_npy(const std::vector<std::size_t>& shape, const double* data) {
  std::size_t count = 1;
  for (std::size_t d : shape) count *= d;
  std::string out = encode_npy_header(shape);
  out.reserve(out.size() + count * 8);
  if (count > 0 && data == nullptr) throw std::invalid_argument("encode_npy: data is null for a non-empty shape");
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t bits = std::bit_cast<std::uint64_t>(data[i]);
    for (int b = 0; b < 8; ++b) out += static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  return out;
}

void write_npy(const std::string& path, const std::vector<std::size_t>& shape, const double* data) {
  const std::string bytes = encode_npy(shape, data);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path + ": cannot open for writing (" + std::strerror(errno) + ")");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error(path + ": write failed (" + std::strerror(errno) + ")");
}


}  // namespace emergent
