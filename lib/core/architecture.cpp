// Parsing and shape checking of architecture specs (docs/conventions.md §1).
#include "emergent/core/architecture.hpp"

#include <cctype>
#include <charconv>
#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>
#include "detail/enum_names.hpp"

namespace emergent {
namespace {

// Shortest decimal that reads back to the same double.
std::string format_number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

struct Argument {
  std::string key;    // empty for positional arguments
  std::string value;
  int column = 0;     // 1-based column of the value
};

struct Token {
  std::string name;
  int column = 0;
  bool has_parens = false;
  std::vector<Argument> args;
};

[[noreturn]] void fail(const std::string& layer, const std::string& expected, int column,
                       const std::string& got) {
  std::ostringstream os;
  os << layer << ": expected " << expected << " at column " << column << ", got '" << got << "'";
  throw SpecError(os.str());
}

std::string trim(std::string_view s, int* lead = nullptr) {
  std::size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  if (lead) *lead = static_cast<int>(a);
  return std::string(s.substr(a, b - a));
}

// `residual(` opens a block and a lone `)` closes it: both become tokens of their own
// (the ResidualBegin / ResidualEnd markers), so blocks nest.
constexpr const char* kBlockOpen = "residual(";
constexpr const char* kBlockClose = ")";

bool ends_token(std::string_view spec, std::size_t i, int depth) {
  return i >= spec.size() || std::isspace(static_cast<unsigned char>(spec[i])) || (depth > 0 && spec[i] == ')');
}

std::vector<Token> tokenize(std::string_view spec) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  const std::size_t n = spec.size();
  std::vector<int> open;  // columns of the unclosed residual( blocks
  while (i < n) {
    if (std::isspace(static_cast<unsigned char>(spec[i]))) { ++i; continue; }
    Token tok;
    tok.column = static_cast<int>(i) + 1;
    if (spec[i] == ')') {
      if (open.empty()) fail("spec", "a layer (no residual( block is open)", tok.column, ")");
      open.pop_back();
      tok.name = kBlockClose;
      ++i;
      if (!ends_token(spec, i, static_cast<int>(open.size())))
        fail("residual", "white space after ')'", static_cast<int>(i) + 1, std::string(1, spec[i]));
      tokens.push_back(std::move(tok));
      continue;
    }
    std::size_t start = i;
    while (i < n && (std::isalnum(static_cast<unsigned char>(spec[i])) || spec[i] == '_')) ++i;
    tok.name = std::string(spec.substr(start, i - start));
    if (tok.name.empty()) {
      std::size_t e = i;
      while (e < n && !std::isspace(static_cast<unsigned char>(spec[e]))) ++e;
      fail("spec", "a layer name", tok.column, std::string(spec.substr(i, std::max<std::size_t>(e - i, 1))));
    }
    if (tok.name == "residual" && i < n && spec[i] == '(') {
      open.push_back(tok.column);
      tok.name = kBlockOpen;
      ++i;
      tokens.push_back(std::move(tok));
      continue;
    }
    if (i < n && spec[i] == '(') {
      tok.has_parens = true;
      std::size_t close = spec.find(')', i);
      if (close == std::string_view::npos)
        fail(tok.name, "')' closing the '(' of column " + std::to_string(i + 1), static_cast<int>(n) + 1, "end of spec");
      std::size_t p = i + 1;
      // An empty argument list "relu()" is allowed.
      if (!trim(spec.substr(p, close - p)).empty()) {
        while (p <= close) {
          std::size_t comma = spec.find(',', p);
          if (comma == std::string_view::npos || comma > close) comma = close;
          int lead = 0;
          std::string text = trim(spec.substr(p, comma - p), &lead);
          Argument arg;
          arg.column = static_cast<int>(p) + lead + 1;
          if (text.empty()) fail(tok.name, "an argument", arg.column, text);
          auto eq = text.find('=');
          if (eq != std::string::npos) {
            arg.key = trim(std::string_view(text).substr(0, eq));
            int vlead = 0;
            arg.value = trim(std::string_view(text).substr(eq + 1), &vlead);
            arg.column += static_cast<int>(eq) + 1 + vlead;
          } else {
            arg.value = text;
          }
          tok.args.push_back(arg);
          p = comma + 1;
        }
      }
      i = close + 1;
      if (!ends_token(spec, i, static_cast<int>(open.size())))
        fail(tok.name, "white space after ')'", static_cast<int>(i) + 1, std::string(1, spec[i]));
    } else if (!ends_token(spec, i, static_cast<int>(open.size()))) {
      fail(tok.name, "'(' or white space", static_cast<int>(i) + 1, std::string(1, spec[i]));
    }
    tokens.push_back(std::move(tok));
  }
  if (!open.empty())
    fail("residual", "')' closing the 'residual(' of column " + std::to_string(open.back()), static_cast<int>(n) + 1,
         "end of spec");
  return tokens;
}

double parse_double(const std::string& layer, const Argument& a, const std::string& what) {
  double v = 0;
  const char* b = a.value.data();
  const char* e = b + a.value.size();
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || ptr != e || !std::isfinite(v)) fail(layer, what, a.column, a.value);
  return v;
}

int parse_positive_int(const std::string& layer, const Argument& a, const std::string& what) {
  int v = 0;
  const char* b = a.value.data();
  const char* e = b + a.value.size();
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || ptr != e || v <= 0) fail(layer, what, a.column, a.value);
  return v;
}

// Splits keyword arguments off, checks names and positional counts.
struct ArgumentSet {
  std::vector<Argument> positional;
  std::vector<Argument> keyword;
};

ArgumentSet split_arguments(const Token& tok, std::size_t min_pos, std::size_t max_pos,
                            const std::vector<std::string>& keys, const std::string& pos_expected) {
  ArgumentSet set;
  for (const auto& a : tok.args) {
    if (a.key.empty()) {
      if (!set.keyword.empty()) fail(tok.name, "key=value after a key=value argument", a.column, a.value);
      if (set.positional.size() == max_pos) {
        std::string exp = keys.empty() ? "')' (no more arguments)" : "one of ";
        for (std::size_t k = 0; k < keys.size(); ++k) exp += (k ? ", " : "") + keys[k] + "=";
        fail(tok.name, exp, a.column, a.value);
      }
      set.positional.push_back(a);
    } else {
      bool known = false;
      for (const auto& k : keys) known = known || k == a.key;
      if (!known) {
        std::string exp = "one of ";
        for (std::size_t k = 0; k < keys.size(); ++k) exp += (k ? ", " : "") + keys[k] + "=";
        if (keys.empty()) exp = "no key=value arguments";
        fail(tok.name, exp, a.column - static_cast<int>(a.key.size()) - 1, a.key + "=" + a.value);
      }
      for (const auto& prev : set.keyword)
        if (prev.key == a.key) fail(tok.name, a.key + "= only once", a.column, a.key + "=" + a.value);
      set.keyword.push_back(a);
    }
  }
  if (set.positional.size() < min_pos) {
    int col = tok.column + static_cast<int>(tok.name.size()) + (tok.has_parens ? 1 : 0);
    std::string got = tok.has_parens ? (tok.args.empty() ? ")" : tok.args.back().value) : "no arguments";
    if (!tok.args.empty()) col = tok.args.back().column;
    fail(tok.name, pos_expected, col, got);
  }
  return set;
}

void read_weight_keys(const Token& tok, const ArgumentSet& set, Layer& layer) {
  for (const auto& a : set.keyword) {
    if (a.key == "w") {
      layer.w_std = parse_double(tok.name, a, "a finite number for w");
      if (layer.w_std < 0) fail(tok.name, "w >= 0", a.column, a.value);
    } else if (a.key == "b") {
      layer.b_std = parse_double(tok.name, a, "a finite number for b");
      if (layer.b_std < 0) fail(tok.name, "b >= 0", a.column, a.value);
    } else if (a.key == "padding") {
      if (a.value == "same") layer.padding = Padding::Same;
      else if (a.value == "valid") layer.padding = Padding::Valid;
      else if (a.value == "circular") layer.padding = Padding::Circular;
      else fail(tok.name, "padding=same|valid|circular", a.column, a.value);
    }
  }
}

std::optional<ActivationKind> plain_activation(const std::string& name) {
  static const std::pair<const char*, ActivationKind> table[] = {
      {"relu", ActivationKind::Relu},       {"abs", ActivationKind::Abs},
      {"erf", ActivationKind::Erf},         {"identity", ActivationKind::Identity},
      {"gelu", ActivationKind::Gelu},       {"sin", ActivationKind::Sin},
      {"cos", ActivationKind::Cos},         {"tanh", ActivationKind::Tanh},
      {"sigmoid", ActivationKind::Sigmoid}, {"softplus", ActivationKind::Softplus},
      {"swish", ActivationKind::Swish}};
  for (const auto& [n, k] : table)
    if (name == n) return k;
  return std::nullopt;
}

// "KxK" or "K" (square) into two positive integers.
void parse_pair(const std::string& layer, const Argument& a, const std::string& what, int& h, int& w) {
  auto x = a.value.find_first_of("xX");
  if (x == std::string::npos) {
    h = w = parse_positive_int(layer, a, what);
    return;
  }
  Argument ah{"", a.value.substr(0, x), a.column}, aw{"", a.value.substr(x + 1), a.column};
  h = parse_positive_int(layer, ah, what);
  w = parse_positive_int(layer, aw, what);
}

Layer parse_layer(const Token& tok) {
  Layer layer;
  layer.column = tok.column;
  if (tok.name == kBlockOpen) {
    layer.kind = LayerKind::ResidualBegin;
  } else if (tok.name == kBlockClose) {
    layer.kind = LayerKind::ResidualEnd;
  } else if (tok.name == "avgpool") {
    layer.kind = LayerKind::AvgPool;
    layer.padding = Padding::Valid;
    auto set = split_arguments(tok, 1, 1, {"stride", "padding"}, "KHxKW (the pooling window)");
    parse_pair(tok.name, set.positional[0], "KHxKW (positive integers)", layer.filter_h, layer.filter_w);
    for (const auto& a : set.keyword)
      if (a.key == "stride") parse_pair(tok.name, a, "stride=S or stride=SHxSW (positive integers)", layer.stride_h,
                                        layer.stride_w);
    read_weight_keys(tok, set, layer);
  } else if (tok.name == "layernorm") {
    layer.kind = LayerKind::LayerNorm;
    auto set = split_arguments(tok, 0, 0, {"eps"}, "");
    for (const auto& a : set.keyword) {
      layer.eps = parse_double(tok.name, a, "a finite number for eps");
      if (!(layer.eps >= 0)) fail(tok.name, "eps >= 0", a.column, a.value);
    }
  } else if (tok.name == "residual") {
    fail("residual", "'(' directly after residual (residual(LAYERS))", tok.column + 8, tok.has_parens ? "(" : " ");
  } else if (tok.name == "dense") {
    layer.kind = LayerKind::Dense;
    auto set = split_arguments(tok, 1, 1, {"w", "b"}, "WIDTH (a positive integer)");
    layer.width = parse_positive_int(tok.name, set.positional[0], "WIDTH (a positive integer)");
    read_weight_keys(tok, set, layer);
  } else if (tok.name == "conv") {
    layer.kind = LayerKind::Conv;
    auto set = split_arguments(tok, 2, 2, {"padding", "w", "b"}, "CHANNELS, FHxFW");
    layer.width = parse_positive_int(tok.name, set.positional[0], "CHANNELS (a positive integer)");
    const Argument& f = set.positional[1];
    auto x = f.value.find_first_of("xX");
    if (x == std::string::npos) fail(tok.name, "FHxFW", f.column, f.value);
    Argument fh{"", f.value.substr(0, x), f.column}, fw{"", f.value.substr(x + 1), f.column};
    layer.filter_h = parse_positive_int(tok.name, fh, "FHxFW");
    layer.filter_w = parse_positive_int(tok.name, fw, "FHxFW");
    read_weight_keys(tok, set, layer);
  } else if (tok.name == "flatten" || tok.name == "gap") {
    layer.kind = tok.name == "flatten" ? LayerKind::Flatten : LayerKind::GlobalAvgPool;
    split_arguments(tok, 0, 0, {}, "");
  } else if (tok.name == "leaky_relu") {
    layer.kind = LayerKind::Activation;
    auto set = split_arguments(tok, 1, 1, {}, "ALPHA");
    layer.activation = Activation::leaky_relu(parse_double(tok.name, set.positional[0], "ALPHA (a number)"));
  } else if (tok.name == "abrelu") {
    layer.kind = LayerKind::Activation;
    auto set = split_arguments(tok, 2, 2, {}, "A, B");
    layer.activation = Activation::abrelu(parse_double(tok.name, set.positional[0], "A (a number)"),
                                          parse_double(tok.name, set.positional[1], "B (a number)"));
  } else if (auto kind = plain_activation(tok.name)) {
    layer.kind = LayerKind::Activation;
    split_arguments(tok, 0, 0, {}, "");
    switch (*kind) {
      case ActivationKind::Relu: layer.activation = Activation::relu(); break;
      case ActivationKind::Abs: layer.activation = Activation::abs(); break;
      case ActivationKind::Identity: layer.activation = Activation::identity(); break;
      default: layer.activation = Activation::of(*kind);
    }
  } else {
    fail("spec", "a layer (dense, conv, flatten, gap, avgpool, layernorm, residual(…), relu, abs, erf, identity, "
                 "gelu, sin, cos, leaky_relu, abrelu, tanh, sigmoid, softplus, swish)",
         tok.column, tok.name);
  }
  return layer;
}

std::string where(const Layer& l) {
  return l.column > 0 ? " at column " + std::to_string(l.column) : "";
}

// What the kernel recursion knows about the values entering a layer (docs/conventions.md §1):
// the layer-norm kernel and the sum rule of residual blocks hold for zero-mean Gaussian fields
// (Neural Tangents' is_gaussian), i.e. outputs of a dense/conv layer, possibly pooled, flattened
// or normalised since, but not passed through an activation.
enum class Field { Input, Gaussian, Other, ShiftedSum };

struct OpenBlock {
  Field shortcut;
  bool fresh_at_begin;  // was the enclosing block's current field fresh when this one opened
  int column;
};

// Enforces: layernorm reads a Gaussian field; a residual block ends on a field that is fresh,
// i.e. made by an affine layer inside the block with no activation after it (then it is
// zero-mean and independent of the shortcut, and the kernels of the sum add exactly: NT's
// FanOut/FanInSum); after a residual block whose shortcut was not Gaussian (raw inputs or an
// activation's output) the sum is not a centred Gaussian, so no activation or layernorm may
// read it before the next affine layer.
void check_gaussian_inputs(const std::vector<Layer>& layers) {
  Field field = Field::Input;
  bool fresh = false;
  std::vector<OpenBlock> open;
  for (const Layer& l : layers) {
    switch (l.kind) {
      case LayerKind::Dense:
      case LayerKind::Conv: field = Field::Gaussian; fresh = true; break;
      case LayerKind::Activation:
        if (field == Field::ShiftedSum)
          throw SpecError(l.activation.name() + where(l) + ": reads the sum of a residual block whose shortcut is not a "
                          "centred Gaussian (raw inputs or an activation's output), so the activation's kernel is not "
                          "known in closed form; put a dense or conv layer before it, or start the block's shortcut "
                          "on a dense/conv output");
        field = Field::Other;
        fresh = false;
        break;
      case LayerKind::LayerNorm:
        if (field != Field::Gaussian)
          throw SpecError("layernorm" + where(l) + ": expected the output of a dense or conv layer (a centred Gaussian "
                          "field, as Neural Tangents requires), got " +
                          (field == Field::Input ? std::string("the raw inputs") : std::string("an activation's output")) +
                          "; put a dense or conv layer before it");
        break;
      case LayerKind::Flatten:
      case LayerKind::GlobalAvgPool:
      case LayerKind::AvgPool: break;
      case LayerKind::ResidualBegin:
        open.push_back({field, fresh, l.column});
        fresh = false;
        break;
      case LayerKind::ResidualEnd: {
        if (open.empty()) throw SpecError("residual" + where(l) + ": ')' closes no residual( block");
        const OpenBlock b = open.back();
        open.pop_back();
        if (!fresh)
          throw SpecError("residual(" + (b.column > 0 ? " at column " + std::to_string(b.column) : std::string()) +
                          ": expected the block to end with a dense or conv layer (optionally followed by layernorm "
                          "or pooling), so that its output is independent of the shortcut and the kernels add; got a "
                          "block that ends with an activation or has no dense/conv layer");
        field = b.shortcut == Field::Gaussian ? Field::Gaussian : Field::ShiftedSum;
        fresh = b.fresh_at_begin;
        break;
      }
    }
  }
  if (!open.empty())
    throw SpecError("residual(" + (open.back().column > 0 ? " at column " + std::to_string(open.back().column) : std::string()) +
                    ": expected a ')' closing the block, got the end of the layers");
}

}  // namespace

int pooled_size(int n, int window, int stride, Padding padding) {
  // lax.reduce_window: 'valid' keeps whole windows, 'same' and 'circular' give ceil(n / stride).
  if (padding == Padding::Valid) return n < window ? 0 : (n - window) / stride + 1;
  return (n + stride - 1) / stride;
}

int pooled_pad_before(int n, int window, int stride, Padding padding) {
  if (padding == Padding::Valid) return 0;
  const int out = (n + stride - 1) / stride;
  return std::max((out - 1) * stride + window - n, 0) / 2;
}

std::string Layer::to_string() const {
  switch (kind) {
    case LayerKind::Dense: {
      std::string s = "dense(" + std::to_string(width);
      if (w_std != 1.0) s += ", w=" + format_number(w_std);
      if (b_std != 0.0) s += ", b=" + format_number(b_std);
      return s + ")";
    }
    case LayerKind::Conv: {
      std::string s = "conv(" + std::to_string(width) + ", " + std::to_string(filter_h) + "x" +
                      std::to_string(filter_w);
      if (padding != Padding::Same) s += std::string(", padding=") + emergent::to_string(padding);
      if (w_std != 1.0) s += ", w=" + format_number(w_std);
      if (b_std != 0.0) s += ", b=" + format_number(b_std);
      return s + ")";
    }
    case LayerKind::Activation: return activation.name();
    case LayerKind::Flatten: return "flatten";
    case LayerKind::GlobalAvgPool: return "gap";
    case LayerKind::AvgPool: {
      std::string s = "avgpool(" + std::to_string(filter_h) + "x" + std::to_string(filter_w);
      if (stride_h != 1 || stride_w != 1) s += ", stride=" + std::to_string(stride_h) + "x" + std::to_string(stride_w);
      if (padding != Padding::Valid) s += std::string(", padding=") + emergent::to_string(padding);
      return s + ")";
    }
    case LayerKind::LayerNorm: return eps == 1e-12 ? "layernorm" : "layernorm(eps=" + format_number(eps) + ")";
    case LayerKind::ResidualBegin: return kBlockOpen;
    case LayerKind::ResidualEnd: return kBlockClose;
  }
  return "?";
}

Architecture::Architecture(std::vector<Layer> layers) : layers_(std::move(layers)) {
  if (layers_.empty()) throw SpecError("spec: expected at least one layer, got an empty spec");
  bool seen_affine = false;
  for (const auto& l : layers_) {
    if (l.kind == LayerKind::AvgPool && (l.filter_h <= 0 || l.filter_w <= 0 || l.stride_h <= 0 || l.stride_w <= 0))
      throw SpecError(l.to_string() + ": expected a positive window and stride" + where(l));
    if (l.kind == LayerKind::LayerNorm && !(l.eps >= 0 && std::isfinite(l.eps)))
      throw SpecError("layernorm: expected a finite eps >= 0" + where(l));
    if (l.kind == LayerKind::Activation && !seen_affine)
      throw SpecError(l.activation.name() + ": a nonlinearity before the first dense/conv layer" + where(l) +
                      " (inputs are not Gaussian there; put a dense or conv layer first)");
    if (l.affine()) {
      seen_affine = true;
      if (l.width <= 0)
        throw SpecError(l.to_string() + ": expected a positive width" + where(l) + ", got " + std::to_string(l.width));
      if (l.kind == LayerKind::Conv && (l.filter_h <= 0 || l.filter_w <= 0))
        throw SpecError("conv: expected a positive filter size" + where(l));
      if (!(l.w_std >= 0) || !(l.b_std >= 0) || !std::isfinite(l.w_std) || !std::isfinite(l.b_std))
        throw SpecError(l.to_string() + ": expected finite w >= 0 and b >= 0" + where(l));
    }
  }
  if (!seen_affine) throw SpecError("spec: expected at least one dense or conv layer (it sets the number of outputs)");
  check_gaussian_inputs(layers_);
}

Architecture Architecture::parse(std::string_view spec) {
  std::vector<Layer> layers;
  for (const auto& tok : tokenize(spec)) layers.push_back(parse_layer(tok));
  return Architecture(std::move(layers));
}

int Architecture::outputs() const {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it)
    if (it->affine()) return it->width;
  return 0;
}

bool Architecture::has_readout() const {
  for (const auto& l : layers_)
    if (l.kind == LayerKind::Flatten || l.kind == LayerKind::GlobalAvgPool) return true;
  return false;
}

bool Architecture::expects_images() const {
  for (const auto& l : layers_) {
    if (l.kind == LayerKind::Dense) return false;
    if (l.kind == LayerKind::Conv || l.kind == LayerKind::Flatten || l.kind == LayerKind::GlobalAvgPool ||
        l.kind == LayerKind::AvgPool)
      return true;
  }
  return false;
}

bool Architecture::has_extended_layers() const {
  for (const auto& l : layers_)
    if (l.kind == LayerKind::AvgPool || l.kind == LayerKind::LayerNorm || l.marker()) return true;
  return false;
}

std::string Architecture::to_string() const {
  std::string s;
  bool after_open = true;
  for (const auto& l : layers_) {
    if (!after_open && l.kind != LayerKind::ResidualEnd) s += " ";
    s += l.to_string();
    after_open = l.kind == LayerKind::ResidualBegin;
  }
  return s;
}

ShapeTrace Architecture::shapes(const ExampleShape& input) const {
  ShapeTrace trace;
  if (input.channels <= 0 || input.height <= 0 || input.width <= 0)
    throw std::invalid_argument("input shape: expected positive dimensions, got " + input.to_string());
  trace.shapes.push_back(input);
  ExampleShape cur = input;
  std::vector<ExampleShape> open;  // shapes entering the open residual blocks
  for (const auto& l : layers_) {
    switch (l.kind) {
      case LayerKind::AvgPool: {
        if (!cur.image)
          throw SpecError(l.to_string() + where(l) + ": avgpool needs (H, W, C) image input, got vector input " +
                          cur.to_string());
        const int h = pooled_size(cur.height, l.filter_h, l.stride_h, l.padding);
        const int w = pooled_size(cur.width, l.filter_w, l.stride_w, l.padding);
        if (h <= 0 || w <= 0)
          throw SpecError(l.to_string() + where(l) + ": 'valid' window " + std::to_string(l.filter_h) + "x" +
                          std::to_string(l.filter_w) + " is larger than its input " + cur.to_string());
        cur = ExampleShape::image_hwc(h, w, cur.channels);
        break;
      }
      case LayerKind::LayerNorm: break;
      case LayerKind::ResidualBegin: open.push_back(cur); break;
      case LayerKind::ResidualEnd:
        if (!(open.back() == cur))
          throw SpecError("residual(" + where(l) + " (its ')'): the block maps " + open.back().to_string() + " to " +
                          cur.to_string() + "; expected it to keep the shape (x + block(x) needs equal shapes)");
        open.pop_back();
        break;
      case LayerKind::Dense:
        if (cur.image)
          throw SpecError(l.to_string() + where(l) + ": dense on image input " + cur.to_string() +
                          " (expected flatten or gap before it)");
        cur = ExampleShape::vector(l.width);
        break;
      case LayerKind::Conv: {
        if (!cur.image)
          throw SpecError(l.to_string() + where(l) + ": conv needs (H, W, C) image input, got vector input " +
                          cur.to_string());
        int h = cur.height, w = cur.width;
        if (l.padding == Padding::Valid) {
          if (l.filter_h > h || l.filter_w > w)
            throw SpecError(l.to_string() + where(l) + ": 'valid' filter " + std::to_string(l.filter_h) + "x" +
                            std::to_string(l.filter_w) + " is larger than its input " + cur.to_string());
          h -= l.filter_h - 1;
          w -= l.filter_w - 1;
        } else if (l.padding == Padding::Circular && (l.filter_h > h || l.filter_w > w)) {
          throw SpecError(l.to_string() + where(l) + ": circular filter " + std::to_string(l.filter_h) + "x" +
                          std::to_string(l.filter_w) + " is larger than its input " + cur.to_string());
        }
        if (static_cast<long long>(h) * w * l.width > std::numeric_limits<int>::max())
          throw SpecError(l.to_string() + where(l) + ": " + std::to_string(h) + "x" + std::to_string(w) + "x" +
                          std::to_string(l.width) + " outputs per example is too large (more than " +
                          std::to_string(std::numeric_limits<int>::max()) + ")");
        cur = ExampleShape::image_hwc(h, w, l.width);
        break;
      }
      case LayerKind::Activation: break;
      case LayerKind::Flatten:
        if (!cur.image) throw SpecError("flatten" + where(l) + ": expected image input, got " + cur.to_string());
        cur = ExampleShape::vector(cur.size());
        break;
      case LayerKind::GlobalAvgPool:
        if (!cur.image) throw SpecError("gap" + where(l) + ": expected image input, got " + cur.to_string());
        cur = ExampleShape::vector(cur.channels);
        break;
    }
    trace.shapes.push_back(cur);
  }
  return trace;
}

constexpr detail::EnumNames<LayerKind, 9> kLayerKindNames = {{
    {LayerKind::Dense, "dense"},
    {LayerKind::Conv, "conv"},
    {LayerKind::Activation, "activation"},
    {LayerKind::Flatten, "flatten"},
    {LayerKind::GlobalAvgPool, "global_avg_pool"},
    {LayerKind::AvgPool, "avg_pool"},
    {LayerKind::LayerNorm, "layer_norm"},
    {LayerKind::ResidualBegin, "residual_begin"},
    {LayerKind::ResidualEnd, "residual_end"},
}};

const char* to_string(LayerKind value) { return detail::enum_name(kLayerKindNames, value); }

LayerKind parse_layer_kind(std::string_view text) { return detail::parse_enum(kLayerKindNames, text, "parse_layer_kind", "LayerKind"); }

constexpr detail::EnumNames<Padding, 3> kPaddingNames = {{
    {Padding::Same, "same"},
    {Padding::Valid, "valid"},
    {Padding::Circular, "circular"},
}};

const char* to_string(Padding value) { return detail::enum_name(kPaddingNames, value); }

Padding parse_padding(std::string_view text) { return detail::parse_enum(kPaddingNames, text, "parse_padding", "Padding"); }

}  // namespace emergent
