// NEON (AArch64 Advanced SIMD) vector of 4 floats for the kernel templates.
#pragma once
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

namespace mobpose::kernels {

struct VecNeon {
  using V = float32x4_t;
  static constexpr size_t kWidth = 4;
  static constexpr const char* kSuffix = "neon";

  static uint32x4_t first(size_t n) {
    static const uint32_t kTable[8] = {~0u, ~0u, ~0u, ~0u, 0u, 0u, 0u, 0u};
    return vld1q_u32(kTable + 4 - n);
  }
  static V zero() { return vdupq_n_f32(0.f); }
  static V set1(float x) { return vdupq_n_f32(x); }
  static V iota() {
    static const float kIota[4] = {0.f, 1.f, 2.f, 3.f};
    return vld1q_f32(kIota);
  }
  static V load(const float* p) { return vld1q_f32(p); }
  // No masked loads on NEON: lanes < n are read one by one, the rest are 0.
  static V load_tail(const float* p, size_t n) {
    float buf[4] = {0.f, 0.f, 0.f, 0.f};
    for (size_t i = 0; i < n; ++i) buf[i] = p[i];
    return vld1q_f32(buf);
  }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static void store_tail(float* p, V v, size_t n) {
    float buf[4];
    vst1q_f32(buf, v);
    for (size_t i = 0; i < n; ++i) p[i] = buf[i];
  }
  static V fill_tail(V v, size_t n, float fill) { return vbslq_f32(first(n), v, vdupq_n_f32(fill)); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V sub(V a, V b) { return vsubq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V fmadd(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  // FMAX/FMIN return NaN when either operand is NaN.
  static V max(V a, V b) { return vmaxq_f32(a, b); }
  static V min(V a, V b) { return vminq_f32(a, b); }
  static V round_nearest(V v) { return vrndnq_f32(v); }
  static V pow2_int(V n) {
    const int32x4_t e = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(e, 23));
  }
  static V zero_where_less(V x, V bound, V v) {
    return vreinterpretq_f32_u32(
        vbicq_u32(vreinterpretq_u32_f32(v), vcltq_f32(x, bound)));
  }
  // Lanes where a > b take if_gt, the others `otherwise` (a NaN compare is false).
  static V blend_gt(V a, V b, V if_gt, V otherwise) { return vbslq_f32(vcgtq_f32(a, b), if_gt, otherwise); }
  static V div(V a, V b) { return vdivq_f32(a, b); }
  // dst[c][r] = src[r][c] for a 4x4 tile (strides in floats).
  static void transpose4x4(const float* src, size_t ss, float* dst, size_t ds) {
    const float32x4x2_t t01 = vtrnq_f32(vld1q_f32(src), vld1q_f32(src + ss));
    const float32x4x2_t t23 = vtrnq_f32(vld1q_f32(src + 2 * ss), vld1q_f32(src + 3 * ss));
    vst1q_f32(dst, vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0])));
    vst1q_f32(dst + ds, vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1])));
    vst1q_f32(dst + 2 * ds, vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0])));
    vst1q_f32(dst + 3 * ds, vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1])));
  }
  // r[i][l] <- r[l][i]: a 4x4 transpose in registers.
  static void transpose(V* r) {
    const float32x4x2_t t01 = vtrnq_f32(r[0], r[1]), t23 = vtrnq_f32(r[2], r[3]);
    r[0] = vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0]));
    r[1] = vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1]));
    r[2] = vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0]));
    r[3] = vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1]));
  }
  static double hsum_f64(V v) {
    const float64x2_t s = vaddq_f64(vcvt_f64_f32(vget_low_f32(v)), vcvt_high_f64_f32(v));
    return vaddvq_f64(s);
  }
  static float hmax(V v) { return vmaxvq_f32(v); }
  static float hsum(V v) { return vaddvq_f32(v); }
};

}  // namespace mobpose::kernels
