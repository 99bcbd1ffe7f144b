// Soft-argmax over one joint's 3D heatmap, written once over a vector type (vec_*.h).
//
// The volume x[d][h][w] (W fastest) is read once per mode (twice for the exact softmax: its max, then
// the sums). For each row (d, h) the kernel accumulates per lane
//   rs = sum_w e(x)        rsx = sum_w e(x) * w
// then folds the row into per-plane vectors ps += rs, psx += rsx, psy += h * rs, so no horizontal
// reduction happens inside a plane. Each plane is reduced to double once:
//   S += sum(ps), SX += sum(psx), SY += sum(psy), SZ += d * sum(ps),
// and the result is (SX, SY, SZ) / S with peak = max e / S. Float partial sums cover one plane
// (at most H*W/kWidth terms a lane), double sums cover the depth.
#pragma once

#include <cstddef>
#include <limits>

#include "mobpose/kernels.h"
#include "vec_math.h"

namespace mobpose::kernels {

template <class Vec, SoftArgmaxMode kMode>
struct SoftArgmaxProb {
  using V = typename Vec::V;
  // The unnormalised probability e(x) of each lane.
  static V apply(V x, V shift) {
    if constexpr (kMode == SoftArgmaxMode::kExact) {
      return vexp<Vec>(Vec::sub(x, shift));
    } else {
      // f(x) = ((x + 1)^2 + 1) / 2 = 1 + x + x^2/2: one add, one mul, one fma. Written this way it is
      // +inf, not inf - inf, at x = -inf. Clamped: x = max(-1, x) first (minimum of f, so f becomes
      // monotonic); NaN stays NaN (data is max's second operand).
      if constexpr (kMode == SoftArgmaxMode::kTaylorClamped) x = Vec::max(Vec::set1(-1.f), x);
      const V t = Vec::add(x, Vec::set1(1.f));
      const V half = Vec::set1(0.5f);
      return Vec::fmadd(Vec::mul(t, half), t, half);
    }
  }
};

template <class Vec, SoftArgmaxMode kMode>
void softargmax3d(const float* x, size_t depth, size_t height, size_t width, float* xyz,
                  float* peak) {
  using V = typename Vec::V;
  using Prob = SoftArgmaxProb<Vec, kMode>;
  constexpr size_t kW = Vec::kWidth;
  const size_t full = width / kW * kW;
  const size_t tail = width - full;

  float shift = 0.f;
  if constexpr (kMode == SoftArgmaxMode::kExact) {
    // Max over the flat volume: NaN lanes may be skipped here, they reach the sums through e(x).
    const size_t volume = depth * height * width;
    const size_t vfull = volume / kW * kW;
    V m = Vec::set1(-std::numeric_limits<float>::infinity());
    for (size_t i = 0; i < vfull; i += kW) m = Vec::max(m, Vec::load(x + i));
    shift = Vec::hmax(m);
    for (size_t i = vfull; i < volume; ++i) shift = x[i] > shift ? x[i] : shift;
  }
  const V vshift = Vec::set1(shift);
  const V step = Vec::set1(static_cast<float>(kW));

  double s = 0.0, sx = 0.0, sy = 0.0, sz = 0.0;
  V top = Vec::zero();
  for (size_t d = 0; d < depth; ++d) {
    V ps = Vec::zero(), psx = Vec::zero(), psy = Vec::zero();
    for (size_t h = 0; h < height; ++h) {
      const float* row = x + (d * height + h) * width;
      V rs = Vec::zero(), rsx = Vec::zero();
      V wv = Vec::iota();
      for (size_t w = 0; w < full; w += kW) {
        const V e = Prob::apply(Vec::load(row + w), vshift);
        rs = Vec::add(rs, e);
        rsx = Vec::fmadd(e, wv, rsx);
        if constexpr (kMode != SoftArgmaxMode::kExact) top = Vec::max(top, e);
        wv = Vec::add(wv, step);
      }
      if (tail) {
        V e = Prob::apply(Vec::load_tail(row + full, tail), vshift);
        e = Vec::fill_tail(e, tail, 0.f);
        rs = Vec::add(rs, e);
        rsx = Vec::fmadd(e, wv, rsx);
        if constexpr (kMode != SoftArgmaxMode::kExact) top = Vec::max(top, e);
      }
      ps = Vec::add(ps, rs);
      psx = Vec::add(psx, rsx);
      psy = Vec::fmadd(rs, Vec::set1(static_cast<float>(h)), psy);
    }
    const double plane = Vec::hsum_f64(ps);
    s += plane;
    sx += Vec::hsum_f64(psx);
    sy += Vec::hsum_f64(psy);
    sz += plane * static_cast<double>(d);
  }
  // Exact: the max bin has e = exp(0) = 1. A NaN in the volume makes s NaN, and so every output.
  const double top_e = kMode == SoftArgmaxMode::kExact ? 1.0 : static_cast<double>(Vec::hmax(top));
  xyz[0] = static_cast<float>(sx / s);
  xyz[1] = static_cast<float>(sy / s);
  xyz[2] = static_cast<float>(sz / s);
  *peak = static_cast<float>(top_e / s);
}

}  // namespace mobpose::kernels
