// Soft-argmax over one joint's 3D heatmap, written once over a vector type (vec_*.h).
//
// The volume x[d][h][w] (W fastest) is read once per mode (twice for the exact softmax: its max, then
// the sums). Within a plane d the kernel accumulates per lane, with no horizontal reduction,
//   ps = sum e(x)      psx = sum e(x) * w      cum = sum over rows h of ps (after row h)
// where cum gives the row-weighted sum without a multiply per row: sum_h h * r_h = H * S - cum
// (r_h the sum of row h, S the plane's sum). Each plane is reduced to double once:
//   S += sum(ps), SX += sum(psx), SY += H * sum(ps) - sum(cum), SZ += d * sum(ps),
// and the result is (SX, SY, SZ) / S with peak = max e / S. Float partial sums cover one plane
// (at most H*W/kWidth terms a lane; cum at most H times that), double sums cover the depth.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "mobpose/kernels.h"
#include "vec_math.h"

namespace mobpose::kernels {

template <class Vec, SoftArgmaxMode kMode>
struct SoftArgmaxProb {
  using V = typename Vec::V;
  // What is summed per lane. Exact: e = exp(x - max). Taylor: f(x) = 1 + x + x^2/2 = (g + 1) / 2
  // with g = (x + 1)^2, so the kernel sums g only (one add, one mul a lane) and adds the constant
  // half of f analytically: sum f = (sum g + count) / 2, sum f*w = (sum g*w + sum w) / 2, ...
  // g is +inf, not inf - inf, at x = -inf. Clamped: t = max(0, x + 1), i.e. f(max(x, -1)), which
  // is monotonic; NaN stays NaN (the data is max's second operand).
  static V apply(V x, V shift) {
    if constexpr (kMode == SoftArgmaxMode::kExact) {
      return vexp<Vec>(Vec::sub(x, shift));
    } else {
      V t = Vec::add(x, Vec::set1(1.f));
      if constexpr (kMode == SoftArgmaxMode::kTaylorClamped) t = Vec::max(Vec::zero(), t);
      return Vec::mul(t, t);
    }
  }
};

// The scalar reference of a mode (reference.cc), the fallback for a joint the float path cannot do.
template <SoftArgmaxMode kMode>
constexpr SoftArgmax3dFn softargmax3d_reference() {
  if constexpr (kMode == SoftArgmaxMode::kExact) return &f64acc_softargmax3d_exact__ref;
  if constexpr (kMode == SoftArgmaxMode::kTaylor) return &f64acc_softargmax3d_taylor__ref;
  return &f64acc_softargmax3d_taylorclamp__ref;
}

template <class Vec, SoftArgmaxMode kMode>
void softargmax3d(const float* x, size_t depth, size_t height, size_t width, float* xyz,
                  float* peak) {
  using V = typename Vec::V;
  using Prob = SoftArgmaxProb<Vec, kMode>;
  constexpr size_t kW = Vec::kWidth;
  constexpr bool kTaylor = kMode != SoftArgmaxMode::kExact;
  const size_t full = width / kW * kW;
  const size_t tail = width - full;

  float shift = 0.f;
  if constexpr (!kTaylor) {
    // Max over the flat volume: NaN lanes may be skipped here, they reach the sums through e(x).
    const size_t volume = depth * height * width;
    const size_t vfull = volume / kW * kW;
    V m = Vec::set1(-std::numeric_limits<float>::infinity());
    for (size_t i = 0; i < vfull; i += kW) m = Vec::max(m, Vec::load(x + i));
    shift = Vec::hmax(m);
    for (size_t i = vfull; i < volume; ++i) shift = x[i] > shift ? x[i] : shift;
  }
  const V vshift = Vec::set1(shift);
  // Column indices 0..W-1 as floats, loaded per chunk (a load instead of an add on the busy FP
  // pipes); on the stack up to 1024 columns.
  constexpr size_t kStackColumns = 1024;
  alignas(64) float column_stack[kStackColumns];
  std::vector<float> column_heap;
  float* column = column_stack;
  if (width > kStackColumns) {
    column_heap.resize(width);
    column = column_heap.data();
  }
  for (size_t w = 0; w < width; ++w) column[w] = static_cast<float>(w);

  double s = 0.0, sx = 0.0, sy = 0.0, sz = 0.0;
  // Two accumulator sets (even and odd chunks of a row) halve the add-latency chains.
  V top0 = Vec::zero(), top1 = Vec::zero();
  for (size_t d = 0; d < depth; ++d) {
    V ps0 = Vec::zero(), ps1 = Vec::zero(), psx0 = Vec::zero(), psx1 = Vec::zero();
    V cum0 = Vec::zero(), cum1 = Vec::zero();
    for (size_t h = 0; h < height; ++h) {
      const float* row = x + (d * height + h) * width;
      size_t w = 0;
      for (; w + 2 * kW <= full; w += 2 * kW) {
        const V e0 = Prob::apply(Vec::load(row + w), vshift);
        const V e1 = Prob::apply(Vec::load(row + w + kW), vshift);
        ps0 = Vec::add(ps0, e0);
        ps1 = Vec::add(ps1, e1);
        psx0 = Vec::fmadd(e0, Vec::load(column + w), psx0);
        psx1 = Vec::fmadd(e1, Vec::load(column + w + kW), psx1);
        if constexpr (kTaylor) {
          top0 = Vec::max(top0, e0);
          top1 = Vec::max(top1, e1);
        }
      }
      if (w < full) {
        const V e = Prob::apply(Vec::load(row + w), vshift);
        ps0 = Vec::add(ps0, e);
        psx0 = Vec::fmadd(e, Vec::load(column + w), psx0);
        if constexpr (kTaylor) top0 = Vec::max(top0, e);
      }
      if (tail) {
        V e = Prob::apply(Vec::load_tail(row + full, tail), vshift);
        e = Vec::fill_tail(e, tail, 0.f);
        ps1 = Vec::add(ps1, e);
        psx1 = Vec::fmadd(e, Vec::load_tail(column + full, tail), psx1);
        if constexpr (kTaylor) top1 = Vec::max(top1, e);
      }
      // Prefix sums over rows: cum = sum_h P_h with P_h the plane sum up to row h, so that
      // sum_h h * r_h = H * S_plane - cum (no per-row multiply by h).
      cum0 = Vec::add(cum0, ps0);
      cum1 = Vec::add(cum1, ps1);
    }
    const double plane = Vec::hsum_f64(Vec::add(ps0, ps1));
    s += plane;
    sx += Vec::hsum_f64(Vec::add(psx0, psx1));
    sy += static_cast<double>(height) * plane - Vec::hsum_f64(Vec::add(cum0, cum1));
    sz += plane * static_cast<double>(d);
  }
  const V top = Vec::max(top0, top1);
  double top_e = 1.0;  // exact: the max bin has e = exp(0) = 1
  if constexpr (kTaylor) {
    // Add the constant half of f: count and index sums of the whole volume, in double.
    const double dd = static_cast<double>(depth), hh = static_cast<double>(height);
    const double ww = static_cast<double>(width), count = dd * hh * ww;
    s = 0.5 * (s + count);
    sx = 0.5 * (sx + count * (ww - 1.0) / 2.0);
    sy = 0.5 * (sy + count * (hh - 1.0) / 2.0);
    sz = 0.5 * (sz + count * (dd - 1.0) / 2.0);
    top_e = 0.5 * (static_cast<double>(Vec::hmax(top)) + 1.0);
  }
  // The float path is exact up to rounding whenever no float partial sum overflowed: (x + 1)^2 and
  // exp(x - max) are scale-invariant in float, and the constant half of f is added in double. A NaN
  // or an Inf logit, or an overflow (Taylor weights of |x| >~ 1.8e19, sums of |x| >~ 1e17 over a
  // plane), makes one of the double sums NaN or Inf: it is checked here, once per joint, at no cost
  // to the passes, and such a joint is handed to the reference, which defines the semantics at the
  // extremes (reference.cc: NaN for NaN/+Inf logits, the right expectation for any finite ones).
  if (!(std::isfinite(s) && std::isfinite(sx) && std::isfinite(sy) && std::isfinite(sz))) {
    softargmax3d_reference<kMode>()(x, depth, height, width, xyz, peak);
    return;
  }
  xyz[0] = static_cast<float>(sx / s);
  xyz[1] = static_cast<float>(sy / s);
  xyz[2] = static_cast<float>(sz / s);
  *peak = static_cast<float>(top_e / s);
}

}  // namespace mobpose::kernels
