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

enum class OpKind { Affine, Activation, Pool };

// How an avgpool reads one spatial axis, inverted for scattering: fine index i feeds the coarse
// outputs coarse[first[i] .. first[i+1]) (one entry per window tap that reads i; none in the
// padding). Output o, tap s reads i = o·stride + s − before (wrapped when circular).
struct PoolAxis {
  int n_in = 0, n_out = 0, window = 1, stride = 1, before = 0;
  bool circular = false;
  std::vector<int> first, coarse;
  // When no index feeds two outputs (window ≤ stride): the output fed by i, or −1.
  bool single = false;
  std::vector<int> owner;
};

PoolAxis make_pool_axis(int n_in, int window, int stride, Padding padding);

struct SpatialOp {
  OpKind kind = OpKind::Affine;
  double w2 = 1, b2 = 0;  // W², B²
  Axis ah, aw;            // conv geometry (Affine)
  PoolAxis ph, pw;        // avgpool geometry (Pool); Σ' = pool_scale · Σ_{taps of both pixels} Σ
  double pool_scale = 1;  // 1/(KH·KW)²: each pixel of a pair averages over its own window
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
  // Stages of the slice route: the spatial ops between avgpools. Offsets are conserved inside a
  // stage; an avgpool maps the pixel pairs of one stage onto the coarser pairs of the next
  // (kernel_pixels.cpp). Stage k runs ops [begin, end) on an h × w map; ops[end] is the avgpool
  // into stage k+1 (none after the last). Offsets d ∈ [dlo, dhi], e ∈ [elo, ehi] are the ones
  // the output needs (flatten: only 0 at the end; circular: all, modulo the map).
  struct Stage {
    int begin = 0, end = 0, h = 1, w = 1;
    int dlo = 0, dhi = 0, elo = 0, ehi = 0;
    // Row slabs (kernel_pixels.cpp run_slab): all column offsets of one row offset d at once,
    // when every conv of the stage is `same`, not circular, all offsets e are needed and the
    // pool that ends the stage (if any) has non-overlapping windows. pad = zero columns.
    bool slab = false;
    int pad = 1;
    int row_guard = 2;  // spare rows of a slab's in-place conv: 1 + the most rows a conv reads on one side
    // Ring blocks (kernel_pixels.cpp run_ring): the circular counterpart of a slab, all column
    // offsets e of one row offset d at once, when every conv is circular, the stage is the only
    // one and all offsets are needed. Entry (h1, w1, e) of the pair ((h1, w1), (h1 − d, w1 − e))
    // (both mod the map) sits at (h1·w + w1)·w + e: a conv shifts whole rows of e, no boundary.
    bool ring = false;
    // A point's run with itself for its records alone (Engine::compute_records, when its Gram
    // diagonal is not wanted): the offsets whose pairs the later pixel variances average, from
    // the activations backwards; lo > hi if the run ends before this stage.
    int rec_dlo = 0, rec_dhi = -1, rec_elo = 0, rec_ehi = -1;
  };
  std::vector<Stage> stages;
  bool pooled = false;          // an avgpool is among the spatial ops
  std::size_t coarse_pairs = 0;  // largest (h·w)² over the stages after the first
  std::size_t slab_doubles = 0;  // largest (h + row_guard)·(w + 2·pad)·(w + pad) over the slab stages
  std::size_t slab_row = 0;      // largest (w + 2·pad)·(w + pad)
  std::size_t ring_doubles = 0;  // ring blocks: 4·h·w² (Σ, Θ twice) + reflected variances + H-pass rows
  int record = 0;       // doubles per point: pixel variances of every spatial activation, then tail ones
  std::string path;
};

/// Throws SpecError if the spec does not fit the input shape.
Plan make_plan(const Architecture& arch, const ExampleShape& in, int quadrature_order);

// The argument checks every kernel path makes before any work: valid options, x2 of x1's example
// shape, columns matching the shape, finite inputs, and images for a CNN / vectors for an MLP.
void check_kernel_arguments(const Architecture& arch, const Inputs& x1, const Inputs* x2, const KernelOptions& options);

// The exponent e of the power of two 2^e by which inputs far from scale 1 are divided before a
// kernel of a positively homogeneous network (bias-free, ReLU family, no layer norm) — every path
// uses it; 0 when the rescaling does not apply or is not needed.
// `max_abs`: max |x| over x1 and x2 if the caller has it already (check_magnitudes), else < 0.
int homogeneous_exponent(const Architecture& arch, const Inputs& x1, const Inputs* x2, double max_abs = -1);

}  // namespace emergent::detail
