// The general kernel path: the layer recursions of docs/conventions.md §2 evaluated on all pixel
// pairs, one layer at a time, for every layer of the spec grammar — including those the fast
// paths of kernels() do not take: avgpool, layernorm and residual blocks. kernels() and
// spatial_kernels() route architectures with such layers here; for the other architectures it
// is a plain, independent implementation of the same recursion (tests compare the two).
//
// Per pair of inputs the state is Σ and Θ over all pixel pairs (P² numbers, P = H·W; vectors are
// 1×1 maps). Layers beyond the classic ones (Neural Tangents' conventions):
//   avgpool: Σ'_{AB} = (1/(KH·KW))² Σ_{s,t} Σ_{A·S+s−p, B·S+t−p}, the same for Θ (stax.AvgPool,
//            normalize_edges=False: zero padding still divides by the window);
//   layernorm: Σ'_{ab}(x,x') = Σ_{ab}/√((ε+Σ_aa(x,x))(ε+Σ_bb(x',x'))), Θ' the same quotient
//            (stax.LayerNorm(axis=-1), normalisation over channels; Xiong et al. 2020 Sec. 3);
//   residual(B): Σ' = Σ + Σ_B, Θ' = Θ + Θ_B, the kernels of independent branches add
//            (stax.FanOut(2), stax.parallel(B, Identity), stax.FanInSum; He et al. 2016).
#pragma once

#include "emergent/core/architecture.hpp"
#include "emergent/core/inputs.hpp"
#include "emergent/kernels/kernel.hpp"

namespace emergent {

/// Which pixel pairs the general path propagates. Auto: only the diagonal pairs (a, a) when the
/// readout is flatten and no avgpool/gap comes before it (convolutions keep the offset of a pair,
/// flatten reads a = b: KernelSummary::path "general, pixel-diagonal"), all P² pairs otherwise.
/// AllPairs: always all pairs (the reference the diagonal route is tested against).
enum class GeneralRoute { Auto, AllPairs };

/// K(x1, x2) and Θ(x1, x2) by the general path; x2 = nullptr gives the symmetric K(x1, x1).
/// Same contract as kernels(): SpecError if the spec does not fit or keeps pixel indices,
/// std::invalid_argument for bad inputs or options, MemoryCapError if one pair's workspace
/// per thread does not fit the cap. Deterministic at any thread count. Bias-free ReLU-family
/// networks without layernorm have inputs far from scale 1 rescaled by a power of two and the
/// kernels scaled back (K(cx, cx') = c²K(x, x'), as kernels() does on its fast paths).
Kernels general_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2,
                        const KernelOptions& options = {}, GeneralRoute route = GeneralRoute::Auto);

/// The pixel-indexed kernels (N1, N2, H, W, H, W) of an architecture without readout, by the
/// general path (as spatial_kernels()).
SpatialKernels general_spatial_kernels(const Architecture& arch, const Inputs& x1, const Inputs* x2,
                                       const KernelOptions& options = {});

/// True if kernels()/spatial_kernels() compute this architecture by the general path (it has a
/// layernorm or residual block, or an avgpool with circular and non-circular convs mixed; other
/// avgpool networks take the fast engine's offset slices).
bool uses_general_path(const Architecture& arch);

}  // namespace emergent
