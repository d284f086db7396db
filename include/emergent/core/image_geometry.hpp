// Geometry of H×W pixel grids shared by groups and data transforms.
#pragma once

#include <vector>

namespace emergent {

/// One input pixel feeding an output pixel of an interpolated image map.
struct PixelTap {
  int source;     ///< input pixel h·W + w
  double weight;  ///< bilinear weight
};
/// Bilinear rotation of an H×W grid by `angle` about its center, zeros outside: output pixel p
/// is Σ weight·(input pixel source) over taps[p]. The source of an output pixel is its centered
/// coordinates rotated by −angle, snapped to the grid when that is exact (π/2 is numpy.rot90).
/// Shared by the rot(K) group and rotate_images.
std::vector<std::vector<PixelTap>> bilinear_rotation(int height, int width, double angle);

}  // namespace emergent
