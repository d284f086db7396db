// One architecture spec drives both the analytic kernels and the finite networks
// (docs/conventions.md §1). Example: "conv(64, 3x3, padding=circular, w=1.4, b=0.1) relu flatten dense(1)".
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "emergent/core/activation.hpp"
#include "emergent/core/inputs.hpp"

namespace emergent {

/// A spec that does not parse, or does not fit its input. The message names the token,
/// its column (1-based) and what was expected.
class SpecError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// ResidualBegin / ResidualEnd bracket the block of `residual(LAYERS)`: layers() stays one flat
/// list, so x ↦ x + LAYERS(x) is "remember the input at ResidualBegin, add it at ResidualEnd".
enum class LayerKind { Dense, Conv, Activation, Flatten, GlobalAvgPool, AvgPool, LayerNorm, ResidualBegin, ResidualEnd };
const char* to_string(LayerKind value);  ///< snake_case: dense, conv, activation, …
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
LayerKind parse_layer_kind(std::string_view text);
enum class Padding { Same, Valid, Circular };
const char* to_string(Padding value);  ///< snake_case: same, valid, circular
/// Inverse of to_string; throws std::invalid_argument naming the text and the allowed names.
Padding parse_padding(std::string_view text);

/// Output length of an avgpool along one axis of length n (Neural Tangents / lax.reduce_window):
/// `valid` ⌊(n − window)/stride⌋ + 1 (0 if the window does not fit), `same` and `circular`
/// ⌈n/stride⌉.
int pooled_size(int n, int window, int stride, Padding padding);
/// Entries of padding before the first input along that axis: 0 for `valid`; for `same` and
/// `circular` ⌊max((out − 1)·stride + window − n, 0)/2⌋ (zeros, resp. wrapped entries).
int pooled_pad_before(int n, int window, int stride, Padding padding);

struct Layer {
  LayerKind kind = LayerKind::Dense;
  int width = 0;                 ///< Dense: output features; Conv: output channels
  int filter_h = 1, filter_w = 1;  ///< Conv: filter; AvgPool: window
  int stride_h = 1, stride_w = 1;  ///< AvgPool: stride (Neural Tangents' default 1)
  Padding padding = Padding::Same; ///< Conv (default same); AvgPool (default valid, as NT)
  double eps = 1e-12;            ///< LayerNorm: added to the variance (NT's LayerNorm eps)
  double w_std = 1.0;            ///< W in docs/conventions.md §2 (weight standard deviation)
  double b_std = 0.0;            ///< B in docs/conventions.md §2 (bias standard deviation)
  Activation activation;         ///< for LayerKind::Activation
  int column = 0;                ///< 1-based column of the layer in the spec (for messages)

  bool affine() const { return kind == LayerKind::Dense || kind == LayerKind::Conv; }
  /// residual(…) markers: no computation of their own.
  bool marker() const { return kind == LayerKind::ResidualBegin || kind == LayerKind::ResidualEnd; }
  std::string to_string() const;
};

/// Shape after each layer for a given input shape (entry 0 is the input).
struct ShapeTrace {
  std::vector<ExampleShape> shapes;
};

class Architecture {
 public:
  Architecture() = default;
  /// Validates the order of layers: balanced residual markers, and the Gaussian-input rules of
  /// docs/conventions.md §1 for layernorm and residual blocks.
  explicit Architecture(std::vector<Layer> layers);

  /// Parse a spec (docs/conventions.md §1). Throws SpecError.
  static Architecture parse(std::string_view spec);

  const std::vector<Layer>& layers() const { return layers_; }
  /// Number of outputs k: the width of the last affine layer.
  int outputs() const;
  /// True if a flatten or gap layer is present (the kernel then has no pixel indices).
  bool has_readout() const;
  /// True if an avgpool, layernorm or residual block is present (layers beyond the classic
  /// dense/conv/activation/flatten/gap set; the kernels take their general pixel-pair path).
  bool has_extended_layers() const;
  /// True if the network starts with conv/flatten/gap, so it expects (N, H, W, C) inputs.
  bool expects_images() const;
  /// The canonical spec string (parses back to the same architecture).
  std::string to_string() const;

  /// Propagate an input shape through the layers. Throws SpecError if the spec does not fit
  /// it: image network on vector input or the reverse, dense on an image without flatten/gap,
  /// a `valid` conv larger than its input, a filter larger than a circular input, a pooling
  /// window larger than its input, a residual block that changes the shape.
  ShapeTrace shapes(const ExampleShape& input) const;

 private:
  std::vector<Layer> layers_;
};

}  // namespace emergent
