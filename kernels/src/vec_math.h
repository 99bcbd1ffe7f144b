// Vector maths shared by every ISA, written once over a vector type V (vec_avx2.h, ...).
#pragma once

#include <cstddef>

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

}  // namespace mobpose::kernels
