// The layer plan of the analytic kernel engine (lib/kernels/kernel_engine.hpp): the architecture
// turned into conv-axis maps, spatial ops (before the readout) and tail ops (after it), and the
// choice of path (vector, pixel-diagonal, pixel-pairs). Internal, never installed.
#pragma once

#include <string>
#include <vector>

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/activation_dual.hpp"
#include "emergent/kernels/kernel.hpp"

namespace emergent::detail {

// How a convolution reads one spatial axis: output index o and filter tap s read input index
// source[o*filter + s], or nothing (−1) where the padding supplies zeros.
struct Axis {
  int n_in = 0, n_out = 0, filter = 1;
  std::vector<int> source;
  // The same map in closed form: source = o + s − before, wrapped modulo n_in when circular,
  // −1 outside the input otherwise (the pixel-pair slices of kernel_pixels.cpp use this form).
  int before = 0;
  bool circular = false;
  // The same map as contiguous runs per tap: output out..out+len−1 reads input in..in+len−1.
  struct Run { int out, in, len; };
  std::vector<std::vector<Run>> runs;
};

Axis make_axis(int n_in, int filter, Padding padding);

enum class OpKind { Affine, Activation };

struct SpatialOp {
  OpKind kind = OpKind::Affine;
  double w2 = 1, b2 = 0;  // W², B²
  Axis ah, aw;            // conv geometry (Affine)
  int dual = -1;          // index into Plan::duals (Activation)
  int q_offset = 0;       // where this activation's pixel variances sit in a point's record
  int height = 0, width = 0;  // map size at the op's input
};

struct VectorOp {
  OpKind kind = OpKind::Affine;
  double w2 = 1, b2 = 0;
  int dual = -1;
  int q_offset = 0;
};

enum class Readout { None, Flatten, Gap };

struct Plan {
  bool pixel_stage = false;  // conv layers act on pixels before the readout
  Readout readout = Readout::None;
  // Vector path: inputs reduced to d features with Σ⁰ = x·x'/d.
  bool reduce_flatten = false, reduce_gap = false;
  int in_h = 1, in_w = 1, in_c = 1;
  int out_h = 1, out_w = 1;  // map size at the readout (or the output without readout)
  std::vector<SpatialOp> spatial;
  std::vector<VectorOp> tail;
  std::vector<ActivationDual> duals;
  // Pixel pairs split into independent offset slices (kernel_pixels.cpp): true when no conv is
  // circular, or every conv is (then offsets are taken modulo the map size).
  bool slices = false, circular = false;
  int record = 0;       // doubles per point: pixel variances of every spatial activation, then tail ones
  std::string path;
};

/// Throws SpecError if the spec does not fit the input shape.
Plan make_plan(const Architecture& arch, const ExampleShape& in, int quadrature_order);

// The argument checks every kernel path makes before any work: valid options, x2 of x1's example
// shape, columns matching the shape, finite inputs, and images for a CNN / vectors for an MLP.
void check_kernel_arguments(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options);

}  // namespace emergent::detail
