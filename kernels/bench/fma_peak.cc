// One core's float32 FMA peak: twelve independent accumulators, 512-bit (AVX-512) and 256-bit (AVX2)
// FMAs with register operands only. docs/BENCHMARKS.md compares the MQA kernel against this figure.
//   g++ -O2 -mavx512f -mfma kernels/bench/fma_peak.cc -o /tmp/fma_peak && /tmp/fma_peak
#include <immintrin.h>

#include <chrono>
#include <cstdio>

int main() {
  constexpr long kIters = 200000000 / 12;
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1.f + i * 1e-3f);
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long it = 0; it < kIters; ++it) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], b, c);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    float x = 0;
    for (int i = 0; i < 12; ++i) x += _mm512_reduce_add_ps(a[i]);
    std::printf("512-bit: %.3g FMA/s, %.1f GFLOP/s (checksum %g)\n", kIters * 12 / s, kIters * 12 * 32 / s / 1e9, x);
  }
  __m256 y[12];
  for (int i = 0; i < 12; ++i) y[i] = _mm256_set1_ps(1.f + i * 1e-3f);
  const __m256 yb = _mm256_set1_ps(0.999999f), yc = _mm256_set1_ps(1e-7f);
  const auto t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < kIters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) y[i] = _mm256_fmadd_ps(y[i], yb, yc);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float x = 0;
  for (int i = 0; i < 12; ++i) {
    float t[8];
    _mm256_storeu_ps(t, y[i]);
    x += t[0];
  }
  std::printf("256-bit: %.3g FMA/s, %.1f GFLOP/s (checksum %g)\n", kIters * 12 / s, kIters * 12 * 16 / s / 1e9, x);
}
