// .npy reading/writing against the NumPy format specification (numpy/lib/format.py: magic,
// version, little-endian header length, a Python dict literal padded to a multiple of 64 bytes
// and ended by '\n'), memory-size parsing, and building Inputs from NumPy shapes.
#include <doctest/doctest.h>

#include "support/test_support.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include "emergent/core/inputs.hpp"
#include "emergent/core/memory.hpp"
#include "emergent/data/npy.hpp"

using emergent::NpyArray;
using emergent::NpyError;

namespace {

// A .npy file built byte by byte from the format specification (independent of encode_npy).
std::string make_npy(const std::string& dict, const std::string& data, int major = 1, int minor = 0,
                     std::size_t align = 64) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % align != 0) header += ' ';
  header += '\n';
  std::string out = std::string("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += static_cast<char>(minor);
  const std::size_t n = header.size();
  for (std::size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

template <class T>
std::string le_bytes(const std::vector<T>& values) {
  std::string out;
  for (T v : values) {
    using U = std::conditional_t<sizeof(T) == 8, std::uint64_t,
                                 std::conditional_t<sizeof(T) == 4, std::uint32_t,
                                                    std::conditional_t<sizeof(T) == 2, std::uint16_t, std::uint8_t>>>;
    const U bits = std::bit_cast<U>(v);
    for (std::size_t b = 0; b < sizeof(T); ++b) out += static_cast<char>((static_cast<std::uint64_t>(bits) >> (8 * b)) & 0xff);
  }
  return out;
}

std::string dict_for(const std::string& descr, const std::string& shape, const char* fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

// The message of the NpyError thrown by parse_npy (empty if nothing or something else was thrown).
std::string npy_error(const std::string& bytes, const std::string& name = "data/bad_input.npy") {
  try {
    emergent::parse_npy(bytes, name);
  } catch (const NpyError& e) {
    return e.what();
  } catch (...) {
    return "<other exception>";
  }
  return "";
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

std::uint64_t bits(double x) { return std::bit_cast<std::uint64_t>(x); }

}  // namespace

TEST_CASE("encode/parse round trip keeps shape and every bit, for 0-d, empty and N-d arrays") {
  const std::vector<std::vector<std::size_t>> shapes = {{}, {0}, {1}, {5}, {2, 3}, {0, 4}, {3, 0, 2}, {2, 3, 4, 5},
                                                        {1, 1, 1, 1, 1, 7}};
  for (const auto& shape : shapes) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<double> data(n);
    for (std::size_t i = 0; i < n; ++i) {
      // Values that a lossy text or float32 path would change: thirds, subnormals, -0, huge.
      const double specials[] = {1.0 / 3.0, -0.0, 4.9e-324, -1.7976931348623157e308, 0.1, -2.5e-310};
      data[i] = i < 6 ? specials[i] : std::sin(static_cast<double>(i)) * 1e3;
    }
    const std::string bytes = emergent::encode_npy(shape, data.data());
    const NpyArray a = emergent::parse_npy(bytes, "roundtrip.npy");
    CHECK(a.shape == shape);
    REQUIRE(a.data.size() == n);
    CHECK(a.size() == n);
    for (std::size_t i = 0; i < n; ++i) CHECK(bits(a.data[i]) == bits(data[i]));
  }
}

TEST_CASE("written bytes follow the .npy 1.0 layout numpy writes") {
  const std::vector<double> data = {1.0, -2.0, 0.5, 3.0, 1e-3, 7.0};
  for (const auto& shape : std::vector<std::vector<std::size_t>>{{2, 3}, {6}, {}, {1, 2, 3, 1}}) {
    const std::size_t n = shape.empty() ? 1 : [&] { std::size_t p = 1; for (auto d : shape) p *= d; return p; }();
    const std::string b = emergent::encode_npy(shape, data.data());
    REQUIRE(b.size() >= 10);
    CHECK(b.compare(0, 6, std::string("\x93NUMPY", 6)) == 0);
    CHECK(b[6] == '\x01');
    CHECK(b[7] == '\x00');
    const std::size_t header_len = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
    // Data start aligned to 64 bytes, header ended by '\n' and padded with spaces only.
    CHECK((10 + header_len) % 64 == 0);
    REQUIRE(b.size() == 10 + header_len + 8 * n);
    const std::string header = b.substr(10, header_len);
    CHECK(header.back() == '\n');
    const std::size_t close = header.rfind('}');
    REQUIRE(close != std::string::npos);
    CHECK(header.find_first_not_of(' ', close + 1) == header_len - 1);
    // The dict literal: '<f8', C order, shape as a Python tuple ("(6,)" for one axis, "()" for 0-d).
    CHECK(contains(header, "'descr': '<f8'"));
    CHECK(contains(header, "'fortran_order': False"));
    std::string tuple = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) tuple += (i ? ", " : "") + std::to_string(shape[i]);
    tuple += shape.size() == 1 ? ",)" : ")";
    CHECK(contains(header, "'shape': " + tuple));
    for (char c : header) CHECK(static_cast<unsigned char>(c) < 0x80);
    // Data: IEEE-754 binary64, little-endian, C order.
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t v = 0;
      for (int k = 0; k < 8; ++k) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[10 + header_len + 8 * i + k])) << (8 * k);
      CHECK(v == bits(data[i]));
    }
  }
}

TEST_CASE("float32 and integer dtypes convert exactly to float64") {
  const std::vector<float> f = {0.1f, 1.0f / 3.0f, -16777216.0f, 1.17549435e-38f, 3.4028235e38f, -0.0f};
  NpyArray a = emergent::parse_npy(make_npy(dict_for("<f4", "(2, 3)"), le_bytes(f)), "f4.npy");
  CHECK(a.shape == std::vector<std::size_t>{2, 3});
  for (std::size_t i = 0; i < f.size(); ++i) CHECK(bits(a.data[i]) == bits(static_cast<double>(f[i])));

  a = emergent::parse_npy(make_npy(dict_for("|u1", "(4,)"), le_bytes(std::vector<std::uint8_t>{0, 1, 128, 255})), "u1.npy");
  CHECK(a.data == std::vector<double>{0, 1, 128, 255});
  a = emergent::parse_npy(make_npy(dict_for("<i4", "(3,)"), le_bytes(std::vector<std::int32_t>{-7, 2147483647, -2147483647 - 1})), "i4.npy");
  CHECK(a.data == std::vector<double>{-7, 2147483647.0, -2147483648.0});
  const std::int64_t big = (std::int64_t{1} << 53);
  a = emergent::parse_npy(make_npy(dict_for("<i8", "(2,)"), le_bytes(std::vector<std::int64_t>{-big, 42})), "i8.npy");
  CHECK(a.data == std::vector<double>{-9007199254740992.0, 42.0});
  a = emergent::parse_npy(make_npy(dict_for("|b1", "(3,)"), le_bytes(std::vector<std::uint8_t>{1, 0, 1})), "b1.npy");
  CHECK(a.data == std::vector<double>{1, 0, 1});
}

TEST_CASE("format versions 2.0 and 3.0, key order, spacing and 16-byte alignment are accepted") {
  const std::vector<double> d = {1.5, -2.25, 3.0};
  for (int major : {2, 3}) {
    const NpyArray a = emergent::parse_npy(make_npy(dict_for("<f8", "(3,)"), le_bytes(d), major), "v2.npy");
    CHECK(a.shape == std::vector<std::size_t>{3});
    CHECK(a.data == d);
  }
  // Older numpy aligned to 16 bytes; other writers reorder keys and omit the trailing comma.
  const NpyArray b = emergent::parse_npy(
      make_npy("{ \"shape\" : (1,3), 'fortran_order':False,'descr':'<f8'}", le_bytes(d), 1, 0, 16), "v1.npy");
  CHECK(b.shape == std::vector<std::size_t>{1, 3});
  CHECK(b.data == d);
  // Fortran order is harmless when at most one axis is longer than 1.
  const NpyArray c = emergent::parse_npy(make_npy(dict_for("<f8", "(3, 1)", "True"), le_bytes(d)), "f.npy");
  CHECK(c.data == d);
}

TEST_CASE("each malformed file throws NpyError naming the file and the problem") {
  const std::string good = make_npy(dict_for("<f8", "(2, 2)"), le_bytes(std::vector<double>{1, 2, 3, 4}));
  REQUIRE(npy_error(good).empty());
  const std::string name = "data/bad_input.npy";
  struct Case {
    const char* label;
    std::string bytes;
    const char* expect;
  };
  std::string bad_magic = good;
  bad_magic[1] = 'M';
  std::string bad_version = good;
  bad_version[6] = '\x04';
  const std::vector<Case> cases = {
      {"bad magic", bad_magic, "magic"},
      {"not npy at all", "hello world, this is text", "magic"},
      {"empty", "", "magic"},
      {"unsupported version", bad_version, "version"},
      {"header not a dict", make_npy("['<f8', False, (2, 2)]", le_bytes(std::vector<double>{1, 2, 3, 4})), "header"},
      {"garbage header", make_npy("{'descr': '<f8', 'fortran_order': Fals", ""), "header"},
      {"missing key", make_npy("{'descr': '<f8', 'shape': (2, 2), }", le_bytes(std::vector<double>{1, 2, 3, 4})), "fortran_order"},
      {"non-integer shape", make_npy(dict_for("<f8", "(2.5,)"), le_bytes(std::vector<double>{1, 2})), "header"},
      {"header longer than file", good.substr(0, 40), "truncated"},
      {"unsupported dtype complex", make_npy(dict_for("<c16", "(1,)"), std::string(16, '\0')), "'<c16'"},
      {"unsupported dtype string", make_npy(dict_for("<U3", "(1,)"), std::string(12, '\0')), "'<U3'"},
      {"object array", make_npy(dict_for("|O", "(1,)"), std::string(8, '\0')), "object"},
      {"structured", make_npy("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }", std::string(8, '\0')), "structured"},
      {"big-endian", make_npy(dict_for(">f8", "(2, 2)"), std::string(32, '\0')), "big-endian"},
      {"fortran order", make_npy(dict_for("<f8", "(2, 2)", "True"), le_bytes(std::vector<double>{1, 2, 3, 4})), "Fortran"},
      {"truncated data", good.substr(0, good.size() - 3), "truncated"},
      {"oversized data", good + std::string(8, '\0'), "oversized"},
      {"NaN", make_npy(dict_for("<f8", "(2, 2)"), le_bytes(std::vector<double>{1, 2, std::nan(""), 4})), "NaN"},
      {"NaN in float32", make_npy(dict_for("<f4", "(2,)"), le_bytes(std::vector<float>{std::nanf(""), 1.0f})), "NaN"},
      {"+Inf", make_npy(dict_for("<f8", "(1, 2)"), le_bytes(std::vector<double>{1, HUGE_VAL})), "Inf"},
      {"-Inf", make_npy(dict_for("<f8", "(2,)"), le_bytes(std::vector<double>{-HUGE_VAL, 0})), "Inf"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.label);
    const std::string msg = npy_error(c.bytes, name);
    CAPTURE(msg);
    CHECK(msg.rfind(name + ": ", 0) == 0);
    CHECK(contains(msg, c.expect));
  }
  // The position of the first non-finite value is named as a NumPy index.
  CHECK(contains(npy_error(make_npy(dict_for("<f8", "(2, 2)"), le_bytes(std::vector<double>{1, 2, std::nan(""), 4}))), "(1, 0)"));
  // allow_nonfinite lets NaN through unchanged.
  const NpyArray a = emergent::parse_npy(make_npy(dict_for("<f8", "(2,)"), le_bytes(std::vector<double>{std::nan(""), 1})), "x", true);
  CHECK(std::isnan(a.data[0]));
  CHECK(a.data[1] == 1.0);
}

TEST_CASE("read_npy/write_npy go through the file system and name the path on failure") {
  namespace fs = std::filesystem;
  const fs::path dir = emergent::test::temp_dir("npy");
  const std::string path = (dir / "a.npy").string();
  const std::vector<double> d = {1, 2, 3, 4, 5, 6};
  emergent::write_npy(path, {3, 2}, d.data());
  const NpyArray a = emergent::read_npy(path);
  CHECK(a.shape == std::vector<std::size_t>{3, 2});
  CHECK(a.data == d);
  CHECK(fs::file_size(path) == emergent::encode_npy({3, 2}, d.data()).size());

  const std::string missing = (dir / "missing.npy").string();
  try {
    emergent::read_npy(missing);
    FAIL("read_npy of a missing file did not throw");
  } catch (const NpyError& e) {
    CHECK(contains(e.what(), missing));
  }
  CHECK_THROWS_AS(emergent::write_npy((dir / "no_such_dir" / "b.npy").string(), {1}, d.data()), std::runtime_error);
  fs::remove_all(dir);
}

// The memory-mapped reader against parse_npy, which is tested above against the specification:
// the same values for every dtype and range, the same error for every malformed file.
TEST_CASE("MappedNpy: the values of parse_npy for every range, and its errors for every malformed file") {
  namespace fs = std::filesystem;
  const fs::path dir = emergent::test::temp_dir("npy_map");
  auto put = [&](const std::string& name, const std::string& bytes) {
    const std::string path = (dir / name).string();
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  };
  std::vector<double> d(35);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = std::sin(0.7 * static_cast<double>(i)) * std::pow(10.0, i % 7);
  std::vector<float> f(d.begin(), d.end());
  const std::vector<std::pair<std::string, std::string>> files = {
      {"f8.npy", make_npy(dict_for("<f8", "(5, 7)"), le_bytes(d))},
      {"f4.npy", make_npy(dict_for("<f4", "(5, 7)"), le_bytes(f))},
      {"f8_v2_16.npy", make_npy(dict_for("<f8", "(7, 5)"), le_bytes(d), 2, 0, 16)},  // data 16-aligned only
      {"i2.npy", make_npy(dict_for("<i2", "(35,)"), le_bytes(std::vector<std::int16_t>(35, -123)))},
  };
  for (const auto& [name, bytes] : files) {
    CAPTURE(name);
    const emergent::MappedNpy m(put(name, bytes));
    const NpyArray ref = emergent::parse_npy(bytes, name);
    CHECK(m.shape() == ref.shape);
    REQUIRE(m.size() == ref.data.size());
    for (std::size_t begin : {0u, 1u, 6u, 34u})
      for (std::size_t count : {0u, 1u, 13u}) {
        if (begin + count > m.size()) continue;
        std::vector<double> got(count);
        m.read(begin, count, got.data());
        for (std::size_t i = 0; i < count; ++i) CHECK(bits(got[i]) == bits(ref.data[begin + i]));
      }
    std::vector<double> all(m.size());
    m.read(0, m.size(), all.data());
    CHECK(all == ref.data);
    CHECK_THROWS_AS(m.read(30, 6, all.data()), std::out_of_range);
  }
  CHECK(emergent::MappedNpy(put("f4b.npy", files[1].second)).dtype() == "<f4");
  // A moved-from reader gives up its mapping; the moved-to one still reads.
  emergent::MappedNpy a(put("f8b.npy", files[0].second));
  emergent::MappedNpy b = std::move(a);
  double first = 0;
  b.read(0, 1, &first);
  CHECK(bits(first) == bits(d[0]));

  const std::string good = files[0].second;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"magic.npy", "hello world, this is text"},
      {"empty.npy", ""},
      {"header.npy", good.substr(0, 40)},
      {"truncated.npy", good.substr(0, good.size() - 3)},
      {"oversized.npy", good + std::string(8, '\0')},
      {"fortran.npy", make_npy(dict_for("<f8", "(2, 2)", "True"), le_bytes(std::vector<double>{1, 2, 3, 4}))},
      {"bigendian.npy", make_npy(dict_for(">f8", "(2, 2)"), std::string(32, '\0'))},
  };
  for (const auto& [name, bytes] : bad) {
    CAPTURE(name);
    const std::string path = put(name, bytes);
    std::string mapped;
    try {
      emergent::MappedNpy m(path);
    } catch (const NpyError& e) {
      mapped = e.what();
    }
    CHECK(!mapped.empty());
    CHECK(mapped == npy_error(bytes, path));
  }
  // Non-finite values are found when read, named by their index, as parse_npy names them.
  const std::string nan_bytes = make_npy(dict_for("<f8", "(2, 2)"), le_bytes(std::vector<double>{1, 2, std::nan(""), 4}));
  const emergent::MappedNpy m(put("nan.npy", nan_bytes));
  std::vector<double> two(2);
  m.read(0, 2, two.data());  // the finite part reads fine
  std::string message;
  std::vector<double> three(3);
  try {
    m.read(1, 3, three.data());
  } catch (const NpyError& e) {
    message = e.what();
  }
  CHECK(contains(message, "(1, 0)"));
  CHECK(contains(message, "NaN"));
  CHECK(contains(message, (dir / "nan.npy").string()));
  CHECK_THROWS_AS(emergent::MappedNpy((dir / "missing.npy").string()), NpyError);
  CHECK_THROWS_AS(emergent::MappedNpy(dir.string()), NpyError);
  fs::remove_all(dir);
}

TEST_CASE("parse_bytes: units are binary, percentages are of physical memory") {
  using emergent::parse_bytes;
  const std::size_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;
  CHECK(parse_bytes("4G") == 4 * GiB);
  CHECK(parse_bytes("512M") == 512 * MiB);
  CHECK(parse_bytes("1.5GiB") == 3 * GiB / 2);
  CHECK(parse_bytes("100000") == 100000);
  CHECK(parse_bytes("100000B") == 100000);
  CHECK(parse_bytes("64k") == 64 * KiB);
  CHECK(parse_bytes(" 2 gb ") == 2 * GiB);
  CHECK(parse_bytes("1T") == 1024 * GiB);
  const std::size_t phys = emergent::physical_memory_bytes();
  REQUIRE(phys > 0);
  CHECK(emergent::default_memory_cap_bytes() == phys / 4);
  const std::size_t quarter = parse_bytes("25%");
  CHECK(quarter + 1 >= phys / 4);
  CHECK(quarter <= phys / 4 + 1);
  CHECK(parse_bytes("100%") <= phys);
  CHECK(parse_bytes("100%") + 1 >= phys);

  for (const char* bad : {"", "abc", "-1G", "4X", "0", "0.0001", "0%", "150%", "1e9", "4G extra", "G", "%", "1..5G"}) {
    CAPTURE(bad);
    try {
      parse_bytes(bad, "--memory-cap");
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      CHECK(contains(e.what(), "--memory-cap"));
      CHECK(contains(e.what(), std::string("'") + bad + "'"));
    }
  }
  CHECK_THROWS_AS(parse_bytes("99999999999999999999T"), std::invalid_argument);
}

TEST_CASE("format_bytes uses binary units and three significant digits") {
  using emergent::format_bytes;
  CHECK(format_bytes(0) == "0 B");
  CHECK(format_bytes(1023) == "1023 B");
  CHECK(format_bytes(1536) == "1.50 KiB");
  CHECK(format_bytes(312u << 20) == "312 MiB");
  CHECK(format_bytes(std::size_t{3} << 29) == "1.50 GiB");
  CHECK(format_bytes((std::size_t{1} << 20) - 1) == "1.00 MiB");  // 1023.999 KiB rounds up a unit
  // parse_bytes(format_bytes(x)) is x to three significant digits.
  for (std::size_t x : {std::size_t{5000}, std::size_t{123456789}, std::size_t{987654321012}}) {
    const double back = static_cast<double>(emergent::parse_bytes(format_bytes(x)));
    CHECK(std::abs(back - static_cast<double>(x)) <= 0.006 * static_cast<double>(x));
  }
}

TEST_CASE("peak_rss_bytes sees memory this process touched") {
  const std::size_t n = std::size_t{96} << 20;  // 96 MiB
  std::vector<unsigned char> block(n);
  for (std::size_t i = 0; i < n; i += 4096) block[i] = static_cast<unsigned char>(i >> 12);
  volatile unsigned sum = 0;
  for (std::size_t i = 0; i < n; i += 4096) sum = sum + block[i];
  CHECK(emergent::peak_rss_bytes() >= n);
}

TEST_CASE("make_inputs: (N, d) vectors, (N, H, W, C) NHWC images, anything else named") {
  std::vector<double> d(2 * 3 * 4 * 5);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<double>(i);
  const emergent::Inputs img = emergent::make_inputs({2, 3, 4, 5}, d, "--x1 'a.npy'");
  CHECK(img.shape == emergent::ExampleShape::image_hwc(3, 4, 5));
  CHECK(img.shape.to_string() == "(3, 4, 5)");
  CHECK(img.count() == 2);
  // Element (i, h, w, c) of the C-order array sits at row i, column (h*W + w)*C + c.
  for (int i = 0; i < 2; ++i)
    for (int h = 0; h < 3; ++h)
      for (int w = 0; w < 4; ++w)
        for (int c = 0; c < 5; ++c) CHECK(img.x(i, (h * 4 + w) * 5 + c) == d[((i * 3 + h) * 4 + w) * 5 + c]);

  const emergent::Inputs vec = emergent::make_inputs({6, 20}, d, "x");
  CHECK(vec.shape == emergent::ExampleShape::vector(20));
  CHECK(vec.shape.to_string() == "(20)");
  CHECK(vec.x(5, 19) == d[119]);
  const emergent::Inputs picked = vec.rows({4, 0, 4});
  CHECK(picked.count() == 3);
  CHECK(picked.x.row(0) == vec.x.row(4));
  CHECK(picked.x.row(1) == vec.x.row(0));
  CHECK_THROWS_AS(vec.rows({6}), std::invalid_argument);
  CHECK_THROWS_AS(vec.rows({-1}), std::invalid_argument);

  for (const auto& shape : std::vector<std::vector<std::size_t>>{{120}, {2, 3, 20}, {1, 2, 3, 4, 5}}) {
    try {
      emergent::make_inputs(shape, std::vector<double>(120), "--x1 'a.npy'");
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      CHECK(contains(e.what(), "--x1 'a.npy'"));
      CHECK(contains(e.what(), "rank"));
    }
  }
  CHECK_THROWS_AS(emergent::make_inputs({2, 3}, std::vector<double>(5), "x"), std::invalid_argument);
  CHECK_THROWS_AS(emergent::make_inputs({2, 0}, {}, "x"), std::invalid_argument);
  CHECK_NOTHROW(emergent::make_inputs({0, 3}, {}, "x"));
  CHECK_THROWS_AS(emergent::Inputs(emergent::RowMatrix(2, 3), emergent::ExampleShape::vector(4)), std::invalid_argument);
}
