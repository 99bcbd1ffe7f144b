// The PRM's linear layer and LayerNorm, written once over a vector type (vec_*.h).
//
// linear: y = epilogue(bias + x W^T) with W packed by linear_pack (kernels.h) in panels of
// kLinearPanel output columns, each the bias row then one row per input channel. A register tile of
// kRows rows by two vectors of columns accumulates over the k input channels: per channel the tile
// loads two weight vectors and broadcasts each row's x value into two FMAs, so its 2 * kRows
// accumulators stay in registers for the whole k loop and the weights stream contiguously. A panel
// wider than two vectors (AVX2, NEON) is covered in passes of two vectors. Rows past the last full
// tile use a tile of the remaining height; columns past n are masked on store (the packed weights are
// zero there, so loads never need a mask). The epilogue (store, GELU, residual add) is applied to the
// accumulators before they leave the registers.
//
// GELU, tanh form: 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3), computed as the equal
// x / (1 + exp(-2u)) (1 + tanh(u) = 2 / (1 + exp(-2u))), which has no cancellation for negative x
// and needs one exp (vexp2 of vec_math.h, the argument in base 2) and one division. For large |x| the
// rounding of the argument changes exp(-2u) by a few ulps only where x / (1 + exp(-2u)) is x or ~0:
// the error stays below 1e-6 of |x| (kernels/tests/test_kernels.cc).
//
// layernorm: per row, the mean, then the biased variance as the mean of (x - mean)^2 (two passes over
// the row, which sits in registers or L1), from lane-wise float sums, then
// y = (x - mean) * rstd * gamma + beta with rstd = 1 / sqrt(var + eps), all in float as PyTorch's.
// At the extremes of float32 a row is handed to the scalar reference (f64acc_layernorm__ref), which
// defines the semantics there (double mean and variance, so finite rows always give finite outputs:
// |x - mean| * rstd <= sqrt(c)): when the row's float sum of squares or its rstd is not finite (a NaN
// or Inf input, or |x| >~ 1.8e19 where (x - mean)^2 overflows and rstd would become 0, not an error
// but a wrong finite y = beta). A whole call goes to the reference when sum gamma^2 + beta^2 is not
// finite (NaN, Inf or |gamma|, |beta| >~ 1.8e19, where y itself could overflow). The checks cost one
// scalar test per row and one pass over gamma and beta per call.
#pragma once

#include <cmath>
#include <cstddef>

#include "mobpose/kernels.h"
#include "vec_math.h"

namespace mobpose::kernels {

template <class Vec>
inline typename Vec::V gelu_tanh(typename Vec::V x) {
  // -2u in base 2: z = x * (a + b x^2), a = -2 sqrt(2/pi) log2(e), b = 0.044715 a; exp(-2u) = 2^z.
  constexpr double kA = -2.0 * 0.7978845608028654 * 1.4426950408889634;
  const typename Vec::V t =
      Vec::fmadd(Vec::mul(x, x), Vec::set1(static_cast<float>(kA * 0.044715)), Vec::set1(static_cast<float>(kA)));
  return Vec::div(x, Vec::add(Vec::set1(1.f), vexp2<Vec>(Vec::mul(x, t))));
}

// One vector of results for y: the accumulator through the epilogue (GELU, or plus the `lanes` (1..kWidth)
// valid values of y for the residual).
template <class Vec, LinearEpilogue kEpi>
inline typename Vec::V linear_result(const float* y, typename Vec::V acc, size_t lanes) {
  if constexpr (kEpi == LinearEpilogue::kGeluTanh) acc = gelu_tanh<Vec>(acc);
  if constexpr (kEpi == LinearEpilogue::kAccumulate) {
    acc = Vec::add(lanes == Vec::kWidth ? Vec::load(y) : Vec::load_tail(y, lanes), acc);
  }
  return acc;
}

template <class Vec>
inline void linear_store(float* y, typename Vec::V v, size_t lanes) {
  if (lanes == Vec::kWidth) {
    Vec::store(y, v);
  } else {
    Vec::store_tail(y, v, lanes);
  }
}

// kR rows x two vectors of columns. w: the tile's first column in its panel (bias row); cols: valid
// columns of the tile (1 .. 2 * kWidth); c0: that first column's index (packed: the whole packing).
//
// At the extremes of float32 the tile is handed to the scalar reference (f64acc_linear_cols__ref), which
// defines the semantics there: the double-precision result rounded to float32 (+-Inf where that
// overflows), NaN and Inf inputs propagated in double. A float dot product that overflows never comes
// back to a finite value, so the float results stand unless one of them is NaN, Inf or large enough
// (beyond ~2^60) for rounding near FLT_MAX to matter: the tile sums its results' squares (one FMA per
// output vector, after the k loop) and checks that sum once.
template <class Vec, size_t kR, LinearEpilogue kEpi>
inline void linear_tile(const float* x, size_t ldx, size_t k, const float* w, float* y, size_t ldy,
                        size_t cols, const float* packed, size_t c0) {
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth, kP = kLinearPanel;
  V a0[kR], a1[kR];
  const V b0 = Vec::load(w), b1 = Vec::load(w + kW);
#pragma GCC unroll 16
  for (size_t r = 0; r < kR; ++r) {
    a0[r] = b0;
    a1[r] = b1;
  }
  const float* wk = w + kP;
  for (size_t j = 0; j < k; ++j, wk += kP) {
    const V w0 = Vec::load(wk), w1 = Vec::load(wk + kW);
#pragma GCC unroll 16
    for (size_t r = 0; r < kR; ++r) {
      const V xr = Vec::set1(x[r * ldx + j]);
      a0[r] = Vec::fmadd(xr, w0, a0[r]);
      a1[r] = Vec::fmadd(xr, w1, a1[r]);
    }
  }
  const size_t l0 = cols < kW ? cols : kW, l1 = cols > kW ? cols - kW : 0;
  V chk = Vec::zero();
#pragma GCC unroll 16
  for (size_t r = 0; r < kR; ++r) {
    a0[r] = linear_result<Vec, kEpi>(y + r * ldy, a0[r], l0);
    chk = Vec::fmadd(a0[r], a0[r], chk);
    if (l1 > 0) {
      a1[r] = linear_result<Vec, kEpi>(y + r * ldy + kW, a1[r], l1);
      chk = Vec::fmadd(a1[r], a1[r], chk);
    }
  }
  if (!std::isfinite(Vec::hsum(chk))) {
    f64acc_linear_cols__ref(x, kR, k, ldx, packed, c0, c0 + cols, y - c0, ldy, kEpi);
    return;
  }
#pragma GCC unroll 16
  for (size_t r = 0; r < kR; ++r) {
    linear_store<Vec>(y + r * ldy, a0[r], l0);
    if (l1 > 0) linear_store<Vec>(y + r * ldy + kW, a1[r], l1);
  }
}

// Every panel pass of kR rows.
template <class Vec, size_t kR, LinearEpilogue kEpi>
inline void linear_rows(const float* x, size_t k, size_t ldx, const float* packed, size_t n, float* y,
                        size_t ldy) {
  constexpr size_t kStep = 2 * Vec::kWidth, kP = kLinearPanel;
  static_assert(kP % kStep == 0, "a panel must be a whole number of two-vector passes");
  const size_t panel_floats = (k + 1) * kP;
  for (size_t c0 = 0; c0 < n; c0 += kStep) {
    const float* w = packed + (c0 / kP) * panel_floats + c0 % kP;
    linear_tile<Vec, kR, kEpi>(x, ldx, k, w, y + c0, ldy, n - c0 < kStep ? n - c0 : kStep, packed, c0);
  }
}

// The last m rows (m < kR) with a tile of exactly m rows.
template <class Vec, size_t kR, LinearEpilogue kEpi>
inline void linear_tail(const float* x, size_t m, size_t k, size_t ldx, const float* packed, size_t n,
                        float* y, size_t ldy) {
  if constexpr (kR > 0) {
    if (m == kR) {
      linear_rows<Vec, kR, kEpi>(x, k, ldx, packed, n, y, ldy);
    } else {
      linear_tail<Vec, kR - 1, kEpi>(x, m, k, ldx, packed, n, y, ldy);
    }
  }
}

template <class Vec, size_t kRows, LinearEpilogue kEpi>
void linear_epi(const float* x, size_t m, size_t k, size_t ldx, const float* packed, size_t n, float* y,
                size_t ldy) {
  size_t i = 0;
  for (; i + kRows <= m; i += kRows) linear_rows<Vec, kRows, kEpi>(x + i * ldx, k, ldx, packed, n, y + i * ldy, ldy);
  if (i < m) linear_tail<Vec, kRows - 1, kEpi>(x + i * ldx, m - i, k, ldx, packed, n, y + i * ldy, ldy);
}

template <class Vec, size_t kRows>
void linear(const float* x, size_t m, size_t k, size_t ldx, const float* packed, size_t n, float* y,
            size_t ldy, LinearEpilogue epilogue) {
  switch (epilogue) {
    case LinearEpilogue::kStore:
      return linear_epi<Vec, kRows, LinearEpilogue::kStore>(x, m, k, ldx, packed, n, y, ldy);
    case LinearEpilogue::kGeluTanh:
      return linear_epi<Vec, kRows, LinearEpilogue::kGeluTanh>(x, m, k, ldx, packed, n, y, ldy);
    case LinearEpilogue::kAccumulate:
      return linear_epi<Vec, kRows, LinearEpilogue::kAccumulate>(x, m, k, ldx, packed, n, y, ldy);
  }
}

// LayerNorm of rows of exactly kN vectors: the rows stay in registers (read once) and so do gamma and
// beta; two rows at a time, so that one row's reductions overlap the other's arithmetic.
template <class Vec, size_t kN>
void layernorm_regs(const float* x, size_t m, size_t ldx, const float* gamma, const float* beta, float eps, float* y,
                    size_t ldy) {
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  constexpr float kInv = 1.f / static_cast<float>(kN * kW);
  V g[kN], b[kN];
  V gb = Vec::zero();
#pragma GCC unroll 8
  for (size_t i = 0; i < kN; ++i) {
    g[i] = Vec::load(gamma + i * kW);
    b[i] = Vec::load(beta + i * kW);
    gb = Vec::fmadd(g[i], g[i], Vec::fmadd(b[i], b[i], gb));
  }
  if (!std::isfinite(Vec::hsum(gb))) return f64acc_layernorm__ref(x, m, kN * kW, ldx, gamma, beta, eps, y, ldy);
  // From the row's registers; xrow is the row in memory, for the reference.
  auto finish = [&](const V* xr, const float* xrow, float* yr) {
    V s = xr[0];
#pragma GCC unroll 8
    for (size_t i = 1; i < kN; ++i) s = Vec::add(s, xr[i]);
    const V mean = Vec::set1(Vec::hsum(s) * kInv);
    V d[kN];
    V q = Vec::zero();
#pragma GCC unroll 8
    for (size_t i = 0; i < kN; ++i) {
      d[i] = Vec::sub(xr[i], mean);
      q = Vec::fmadd(d[i], d[i], q);
    }
    const float qs = Vec::hsum(q), rs = 1.f / std::sqrt(qs * kInv + eps);
    if (!std::isfinite(qs) || !std::isfinite(rs)) return f64acc_layernorm__ref(xrow, 1, kN * kW, 0, gamma, beta, eps, yr, 0);
    const V rstd = Vec::set1(rs);
#pragma GCC unroll 8
    for (size_t i = 0; i < kN; ++i) Vec::store(yr + i * kW, Vec::fmadd(Vec::mul(d[i], rstd), g[i], b[i]));
  };
  size_t r = 0;
  for (; r + 2 <= m; r += 2) {
    V x0[kN], x1[kN];
#pragma GCC unroll 8
    for (size_t i = 0; i < kN; ++i) {
      x0[i] = Vec::load(x + r * ldx + i * kW);
      x1[i] = Vec::load(x + (r + 1) * ldx + i * kW);
    }
    finish(x0, x + r * ldx, y + r * ldy);
    finish(x1, x + (r + 1) * ldx, y + (r + 1) * ldy);
  }
  if (r < m) {
    V x0[kN];
#pragma GCC unroll 8
    for (size_t i = 0; i < kN; ++i) x0[i] = Vec::load(x + r * ldx + i * kW);
    finish(x0, x + r * ldx, y + r * ldy);
  }
}

template <class Vec>
void layernorm(const float* x, size_t m, size_t c, size_t ldx, const float* gamma, const float* beta,
               float eps, float* y, size_t ldy) {
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  if (c % kW == 0) {  // rows of 1..8 whole vectors (C = 64 is 4 AVX-512 vectors): in registers
    switch (c / kW) {
      case 1: return layernorm_regs<Vec, 1>(x, m, ldx, gamma, beta, eps, y, ldy);
      case 2: return layernorm_regs<Vec, 2>(x, m, ldx, gamma, beta, eps, y, ldy);
      case 3: return layernorm_regs<Vec, 3>(x, m, ldx, gamma, beta, eps, y, ldy);
      case 4: return layernorm_regs<Vec, 4>(x, m, ldx, gamma, beta, eps, y, ldy);
      case 8: return layernorm_regs<Vec, 8>(x, m, ldx, gamma, beta, eps, y, ldy);
      default: break;
    }
  }
  const size_t full = c / kW * kW, tail = c - full;
  const float inv_c = 1.f / static_cast<float>(c);
  V gb = Vec::zero();
  for (size_t i = 0; i < full; i += kW) {
    const V g = Vec::load(gamma + i), b = Vec::load(beta + i);
    gb = Vec::fmadd(g, g, Vec::fmadd(b, b, gb));
  }
  if (tail) {
    const V g = Vec::load_tail(gamma + full, tail), b = Vec::load_tail(beta + full, tail);
    gb = Vec::fmadd(g, g, Vec::fmadd(b, b, gb));
  }
  if (!std::isfinite(Vec::hsum(gb))) return f64acc_layernorm__ref(x, m, c, ldx, gamma, beta, eps, y, ldy);
  for (size_t r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    V s = Vec::zero();
    for (size_t i = 0; i < full; i += kW) s = Vec::add(s, Vec::load(xr + i));
    if (tail) s = Vec::add(s, Vec::load_tail(xr + full, tail));
    const float mean = Vec::hsum(s) * inv_c;
    const V mv = Vec::set1(mean);
    V q = Vec::zero();
    for (size_t i = 0; i < full; i += kW) {
      const V d = Vec::sub(Vec::load(xr + i), mv);
      q = Vec::fmadd(d, d, q);
    }
    if (tail) {  // lanes past c read as the mean: they add 0
      const V d = Vec::sub(Vec::fill_tail(Vec::load_tail(xr + full, tail), tail, mean), mv);
      q = Vec::fmadd(d, d, q);
    }
    const float qs = Vec::hsum(q), rs = 1.f / std::sqrt(qs * inv_c + eps);
    if (!std::isfinite(qs) || !std::isfinite(rs)) {
      f64acc_layernorm__ref(xr, 1, c, 0, gamma, beta, eps, yr, 0);
      continue;
    }
    const V rstd = Vec::set1(rs);
    for (size_t i = 0; i < full; i += kW) {
      const V d = Vec::mul(Vec::sub(Vec::load(xr + i), mv), rstd);
      Vec::store(yr + i, Vec::fmadd(d, Vec::load(gamma + i), Vec::load(beta + i)));
    }
    if (tail) {
      const V d = Vec::mul(Vec::sub(Vec::load_tail(xr + full, tail), mv), rstd);
      Vec::store_tail(yr + full, Vec::fmadd(d, Vec::load_tail(gamma + full, tail), Vec::load_tail(beta + full, tail)),
                      tail);
    }
  }
}

}  // namespace mobpose::kernels
