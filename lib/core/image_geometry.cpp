// Bilinear rotation of a pixel grid (include/emergent/core/image_geometry.hpp).
#include "emergent/core/image_geometry.hpp"

#include <cmath>
#include <cstddef>

namespace emergent {

std::vector<std::vector<PixelTap>> bilinear_rotation(int height, int width, double angle) {
  const int H = height, W = width;
  const double ch = 0.5 * (H - 1), cw = 0.5 * (W - 1);
  const double c = std::cos(angle), s = std::sin(angle);
  auto snap = [](double v) {  // land exactly on grid points when the rotation maps pixels to pixels
    const double r = std::round(v);
    return std::abs(v - r) < 1e-9 ? r : v;
  };
  std::vector<std::vector<PixelTap>> taps(static_cast<std::size_t>(H) * W);
  for (int h = 0; h < H; ++h)
    for (int w = 0; w < W; ++w) {
      const double y = h - ch, x = w - cw;
      const double ys = snap(c * y + s * x + ch), xs = snap(-s * y + c * x + cw);
      const double y0 = std::floor(ys), x0 = std::floor(xs);
      const double fy = ys - y0, fx = xs - x0;
      const double wts[4] = {(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx};
      const int yy[4] = {int(y0), int(y0), int(y0) + 1, int(y0) + 1};
      const int xx[4] = {int(x0), int(x0) + 1, int(x0), int(x0) + 1};
      for (int q = 0; q < 4; ++q)
        if (wts[q] != 0.0 && yy[q] >= 0 && yy[q] < H && xx[q] >= 0 && xx[q] < W)
          taps[static_cast<std::size_t>(h * W + w)].push_back({yy[q] * W + xx[q], wts[q]});
    }
  return taps;
}

}  // namespace emergent
