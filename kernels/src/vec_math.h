// Vector maths shared by every ISA, written once over a vector type V (vec_avx2.h, ...).
#pragma once

#include <cstddef>
#include <type_traits>

namespace mobpose::kernels {

// exp(x) for float32 lanes.
//  1. Range: x is clamped to [-87.34, 88.38] so that n below stays in [-126, 127]; lanes below -87.34
//     (including -inf) return 0 instead of a denormal, and NaN lanes stay NaN (the data is the second
//     operand of max/min, which returns it when it is NaN on x86, and NaN on NEON).
//  2. Reduction: n = round(x / ln2), r = x - n*ln2 with ln2 split into a short high part (exact in
//     float when multiplied by n) and a low part (Cody-Waite), so |r| <= ln2/2 = 0.347.
//  3. exp(r) by its degree-7 Taylor polynomial 1 + r + r^2/2! + ... + r^7/7! in Horner form (7 fma).
//     Truncation error r^8/8! <= 5.3e-9 relative on |r| <= 0.347, below float's half-ulp (6e-8).
//  4. exp(x) = 2^n * exp(r), 2^n built in the exponent field.
// Observed maximum error against double exp over [-87, 88]: 7.4e-8 relative (about 1 ulp; measured
// by kernels/tests/test_kernels.cc, which fails above 4e-7).
template <class Vec>
inline typename Vec::V vexp(typename Vec::V x) {
  using V = typename Vec::V;
  const V lo = Vec::set1(-87.336544f);
  const V clamped = Vec::min(Vec::set1(88.37626f), Vec::max(lo, x));
  const V n = Vec::round_nearest(Vec::mul(clamped, Vec::set1(1.44269504088896341f)));
  V r = Vec::fmadd(n, Vec::set1(-0.693359375f), clamped);
  r = Vec::fmadd(n, Vec::set1(2.12194440e-4f), r);
  V p = Vec::set1(1.f / 5040.f);
  p = Vec::fmadd(p, r, Vec::set1(1.f / 720.f));
  p = Vec::fmadd(p, r, Vec::set1(1.f / 120.f));
  p = Vec::fmadd(p, r, Vec::set1(1.f / 24.f));
  p = Vec::fmadd(p, r, Vec::set1(1.f / 6.f));
  p = Vec::fmadd(p, r, Vec::set1(0.5f));
  p = Vec::fmadd(p, r, Vec::set1(1.f));
  p = Vec::fmadd(p, r, Vec::set1(1.f));
  return Vec::zero_where_less(x, lo, Vec::mul(p, Vec::pow2_int(n)));
}

// Vec::scalef(p, n) = p * 2^n in one instruction, where the ISA has it (AVX-512: Vec::kHasScalef).
template <class Vec, class = void>
struct HasScalef : std::false_type {};
template <class Vec>
struct HasScalef<Vec, std::enable_if_t<Vec::kHasScalef>> : std::true_type {};

// Vec::Half, a vector type of half the width the same translation unit can run (AVX-512: AVX2), for
// a kernel's last, partly filled block of lanes.
template <class Vec, class = void>
struct HalfOf {
  using type = void;
};
template <class Vec>
struct HalfOf<Vec, std::void_t<typename Vec::Half>> {
  using type = typename Vec::Half;
};

// 2^x for float32 lanes, x in base-2 units (callers fold log2(e) into their own constants), for the
// PRM-layout softmax (mqa_impl.h, mqa_rows) and GELU (linear_impl.h). Cheaper than vexp: no ln2
// reduction and, on AVX-512, no exponent-field arithmetic or clamping.
//  1. x is clamped below at -150 (2^-150 rounds to 0, and -inf gives 0, not NaN); NaN stays NaN (the
//     data is the second operand of max).
//  2. n = round(x), f = x - n in [-1/2, 1/2], exact (Sterbenz).
//  3. 2^f by a degree-6 polynomial in Horner form, fitted to 2^f on [-1/2, 1/2] for the least maximum
//     relative error (near-minimax: iteratively reweighted least squares on Chebyshev nodes): 1.6e-8
//     relative with the float coefficients below, under float's half-ulp (6e-8); one FMA fewer than
//     the degree-7 Taylor polynomial of the same accuracy.
//  4. 2^f * 2^n: Vec::scalef where it exists (exact, overflowing to inf, underflowing to 0); else 2^n
//     is built in the exponent field with n clamped to [-126, 127], lanes with n < -126 flushed to 0
//     and lanes with n > 127 saturating at 2^127 * 2^f instead of inf.
// The error against 2^x in double is about 1 ulp (tested in kernels/tests/test_kernels.cc); the
// rounding of the caller's x (a logit times log2(e)) weighs as much as for vexp's x.
// kClamp = false drops step 1 (one operation): then -inf gives NaN instead of 0 where Vec::scalef is
// used; for callers that never pass -inf (mqa_impl.h masks such lanes itself).
template <class Vec, bool kClamp = true>
inline typename Vec::V vexp2(typename Vec::V x) {
  using V = typename Vec::V;
  if constexpr (kClamp) x = Vec::max(Vec::set1(-150.f), x);
  const V n = Vec::round_nearest(x);
  const V f = Vec::sub(x, n);
  V p = Vec::set1(1.534552866e-04f);
  p = Vec::fmadd(p, f, Vec::set1(1.339992974e-03f));
  p = Vec::fmadd(p, f, Vec::set1(9.618490003e-03f));
  p = Vec::fmadd(p, f, Vec::set1(5.550328642e-02f));
  p = Vec::fmadd(p, f, Vec::set1(2.402264625e-01f));
  p = Vec::fmadd(p, f, Vec::set1(6.931471825e-01f));
  p = Vec::fmadd(p, f, Vec::set1(1.f));
  if constexpr (HasScalef<Vec>::value) {
    return Vec::scalef(p, n);
  } else {
    const V lo = Vec::set1(-126.f);
    const V scaled = Vec::mul(p, Vec::pow2_int(Vec::min(Vec::set1(127.f), Vec::max(lo, n))));
    return Vec::zero_where_less(n, lo, scaled);
  }
}

}  // namespace mobpose::kernels
