// AVX2+FMA vector of 8 floats for the kernel templates. Include only from a translation unit
// compiled with -mavx2 -mfma.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace mobpose::kernels {

struct VecAvx2 {
  using V = __m256;
  static constexpr size_t kWidth = 8;
  static constexpr const char* kSuffix = "avx2";

  // first(n): lanes < n all ones. Sliding window over 8 ones then 8 zeros.
  static __m256i first(size_t n) {
    alignas(32) static const int32_t kTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                   0,  0,  0,  0,  0,  0,  0,  0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTable + 8 - n));
  }
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V iota() { return _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  // Lanes >= n are 0 and their memory is never touched (vmaskmov suppresses faults).
  static V load_tail(const float* p, size_t n) { return _mm256_maskload_ps(p, first(n)); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store_tail(float* p, V v, size_t n) { _mm256_maskstore_ps(p, first(n), v); }
  static V fill_tail(V v, size_t n, float fill) {
    return _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(first(n)));
  }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // x86 max/min return the second operand when either is NaN: callers put the data second.
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V round_nearest(V v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V pow2_int(V n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static V zero_where_less(V x, V bound, V v) {
    return _mm256_andnot_ps(_mm256_cmp_ps(x, bound, _CMP_LT_OQ), v);
  }
  // Lanes where a > b take if_gt, the others `otherwise` (a NaN compare is false).
  static V blend_gt(V a, V b, V if_gt, V otherwise) {
    return _mm256_blendv_ps(otherwise, if_gt, _mm256_cmp_ps(a, b, _CMP_GT_OQ));
  }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
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
  // r[i][l] <- r[l][i]: an 8x8 transpose in registers.
  static void transpose(V* r) {
    V t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 8; g += 4) {  // s[g + k], half H: column 4H + k of rows g..g+3
      s[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
      s[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
      s[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
      s[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int k = 0; k < 4; ++k) {
      r[k] = _mm256_permute2f128_ps(s[k], s[4 + k], 0x20);
      r[k + 4] = _mm256_permute2f128_ps(s[k], s[4 + k], 0x31);
    }
  }
  static double hsum_f64(V v) {
    const __m256d s = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                                    _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  }
  static float hmax(V v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace mobpose::kernels
