// AVX-512F vector of 16 floats for the kernel templates (softargmax_impl.h, mqa_impl.h).
// Include only from a translation unit compiled with -mavx512f -mavx512dq (and -mavx2 -mfma, for Half).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "vec_avx2.h"

namespace mobpose::kernels {

struct VecAvx512 {
  using V = __m512;
  using Half = VecAvx2;  // for the last block of a kernel when at most 8 lanes are left (vec_math.h)
  static constexpr size_t kWidth = 16;
  static constexpr const char* kSuffix = "avx512";

  static __mmask16 first(size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V iota() { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  // Lanes >= n are 0 and their memory is never touched.
  static V load_tail(const float* p, size_t n) { return _mm512_maskz_loadu_ps(first(n), p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store_tail(float* p, V v, size_t n) { _mm512_mask_storeu_ps(p, first(n), v); }
  // Lanes >= n replaced by `fill`.
  static V fill_tail(V v, size_t n, float fill) {
    return _mm512_mask_mov_ps(_mm512_set1_ps(fill), first(n), v);
  }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  // x86 max/min return the second operand when either is NaN: callers put the data second.
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V round_nearest(V v) {
    return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // 2^n for integral n in [-126, 127], built in the exponent field.
  static V pow2_int(V n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  // Lanes where x < bound become 0 (a NaN x is kept).
  static V zero_where_less(V x, V bound, V v) {
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(x, bound, _CMP_LT_OQ), _mm512_setzero_ps());
  }
  // Lanes where a > b take if_gt, the others `otherwise` (a NaN compare is false).
  static V blend_gt(V a, V b, V if_gt, V otherwise) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), otherwise, if_gt);
  }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  // p * 2^n for integral n (vscalefps: exact, inf on overflow, 0 on underflow).
  static constexpr bool kHasScalef = true;
  static V scalef(V p, V n) { return _mm512_scalef_ps(p, n); }
  // dst[c][r] = src[r][c] for a 4x4 tile (strides in floats).
  static void transpose4x4(const float* src, size_t ss, float* dst, size_t ds) {
    __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + ss);
    __m128 r2 = _mm_loadu_ps(src + 2 * ss), r3 = _mm_loadu_ps(src + 3 * ss);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    _mm_storeu_ps(dst, r0);
    _mm_storeu_ps(dst + ds, r1);
    _mm_storeu_ps(dst + 2 * ds, r2);
    _mm_storeu_ps(dst + 3 * ds, r3);
  }
  // r[i][l] <- r[l][i]: a 16x16 transpose in registers (unpack pairs of rows, pairs of pairs, then
  // gather the 128-bit lanes in two rounds of shuffle_f32x4; 64 shuffles).
  static void transpose(V* r) {
    V t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    auto lo = [](V a, V b) { return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))); };
    auto hi = [](V a, V b) { return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))); };
    for (int g = 0; g < 16; g += 4) {  // u[g + k], lane L: column 4L + k of rows g..g+3
      u[g] = lo(t[g], t[g + 2]);
      u[g + 1] = hi(t[g], t[g + 2]);
      u[g + 2] = lo(t[g + 1], t[g + 3]);
      u[g + 3] = hi(t[g + 1], t[g + 3]);
    }
    for (int k = 0; k < 4; ++k) {
      const V v0 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88), v1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xDD);
      const V w0 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88), w1 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xDD);
      r[k] = _mm512_shuffle_f32x4(v0, w0, 0x88);
      r[k + 8] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
      r[k + 4] = _mm512_shuffle_f32x4(v1, w1, 0x88);
      r[k + 12] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
  }
  static double hsum_f64(V v) {
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
  }
  static float hmax(V v) { return _mm512_reduce_max_ps(v); }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace mobpose::kernels
