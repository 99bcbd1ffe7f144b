// Multi-query attention with a structural prior, written once over a vector type (vec_*.h).
//
// For one batch element the H query heads are folded into rows (row r = head r/n, token r%n), all
// sharing one key and one value head. The kernel puts kWidth consecutive rows in the lanes of a
// vector, so that the softmax over keys is plain lane-wise arithmetic (no horizontal reductions) and
// every lane is used whatever n is (a block may wrap from one head into the next). Per block:
//   1. Q^T: the block's rows transposed into qt[c][lane];
//   2. logits: for each key j, l[j] = (sum_c qt[c] * k[j][c]) / sqrt(dh) (four keys share each qt
//      load), then l * F (multiplicative prior) or l + F (additive), the block's F[token][j] read
//      as one contiguous vector of factor_t; causal lanes whose token is before j get -inf;
//   3. softmax over j lane-wise: m = max_j l, e = exp(l - m), p = e / sum_j e (exp of vec_math.h);
//   4. out^T[c] = sum_j p[j] * v[j][c] (four channels share each p load); a lane whose token is
//      before j keeps its sum unchanged, so a NaN in a future value never reaches it;
//   5. out^T transposed back into the rows.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include "mobpose/kernels.h"
#include "vec_math.h"

namespace mobpose::kernels {

constexpr size_t kMqaMaxWidth = 16;  // widest vector; scratch is sized for it
static_assert(kMqaFactorPad >= kMqaMaxWidth, "factor_t must cover a whole vector of tokens");

// dst[c * ds + r] = src[r * ss + c] for r < rows, c < cols: 4x4 SIMD tiles, scalar edges.
template <class Vec>
inline void transpose(const float* src, size_t rows, size_t cols, size_t ss, float* dst, size_t ds) {
  const size_t r4 = rows / 4 * 4, c4 = cols / 4 * 4;
  for (size_t r = 0; r < r4; r += 4) {
    for (size_t c = 0; c < c4; c += 4) Vec::transpose4x4(src + r * ss + c, ss, dst + c * ds + r, ds);
    for (size_t c = c4; c < cols; ++c) {
      for (size_t i = r; i < r + 4; ++i) dst[c * ds + i] = src[i * ss + c];
    }
  }
  for (size_t r = r4; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) dst[c * ds + r] = src[r * ss + c];
  }
}

template <class Vec, PriorMode kPrior>
void mqa(const float* q, const float* k, const float* v, const float* factor_t, size_t n, size_t dh,
         size_t row_begin, size_t row_end, bool causal, float* out, float* scratch) {
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  float* qt = scratch;          // [dh][kW]
  float* lg = qt + dh * kW;     // [n][kW] logits, then exp(logit - max)
  float* ot = lg + n * kW;      // [dh][kW]
  const V scale = Vec::set1(static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh))));
  const V neg_inf = Vec::set1(-std::numeric_limits<float>::infinity());

  for (size_t r0 = row_begin; r0 < row_end; r0 += kW) {
    const size_t lanes = row_end - r0 < kW ? row_end - r0 : kW;
    // Tokens of the lanes (consecutive modulo n); unused lanes get a token past every key.
    alignas(64) float tok[kMqaMaxWidth];
    const size_t t0 = r0 % n;
    size_t max_tok = 0;
    for (size_t l = 0, t = t0; l < kW; ++l) {
      tok[l] = static_cast<float>(l < lanes ? t : n);
      if (l < lanes) max_tok = t > max_tok ? t : max_tok;
      t = t + 1 == n ? 0 : t + 1;
    }
    const V tokv = Vec::load(tok);
    const size_t keys = causal ? max_tok + 1 : n;
    // 1. Q^T (unused lanes 0).
    if (lanes < kW) {
      for (size_t i = 0; i < dh * kW; ++i) qt[i] = 0.f;
    }
    transpose<Vec>(q + r0 * dh, lanes, dh, dh, qt, kW);
    // 2. logits, four keys at a time, and their running max.
    V m = neg_inf;
    auto finish_logit = [&](V acc, size_t j) {
      V l = Vec::mul(acc, scale);
      if constexpr (kPrior != PriorMode::kNone) {
        const float* f = factor_t + j * (n + kMqaFactorPad) + t0;
        const V fv = lanes == kW ? Vec::load(f) : Vec::load_tail(f, lanes);
        l = kPrior == PriorMode::kMultiplicative ? Vec::mul(l, fv) : Vec::add(l, fv);
      }
      if (causal) l = Vec::blend_gt(Vec::set1(static_cast<float>(j)), tokv, neg_inf, l);
      Vec::store(lg + j * kW, l);
      m = Vec::max(m, l);
    };
    size_t j = 0;
    for (; j + 4 <= keys; j += 4) {
      V a0 = Vec::zero(), a1 = Vec::zero(), a2 = Vec::zero(), a3 = Vec::zero();
      const float* k0 = k + j * dh;
      for (size_t c = 0; c < dh; ++c) {
        const V qc = Vec::load(qt + c * kW);
        a0 = Vec::fmadd(qc, Vec::set1(k0[c]), a0);
        a1 = Vec::fmadd(qc, Vec::set1(k0[dh + c]), a1);
        a2 = Vec::fmadd(qc, Vec::set1(k0[2 * dh + c]), a2);
        a3 = Vec::fmadd(qc, Vec::set1(k0[3 * dh + c]), a3);
      }
      finish_logit(a0, j);
      finish_logit(a1, j + 1);
      finish_logit(a2, j + 2);
      finish_logit(a3, j + 3);
    }
    for (; j < keys; ++j) {
      V a0 = Vec::zero();
      for (size_t c = 0; c < dh; ++c) a0 = Vec::fmadd(Vec::load(qt + c * kW), Vec::set1(k[j * dh + c]), a0);
      finish_logit(a0, j);
    }
    // 3. softmax over keys, lane-wise (masked logits are -inf, so their e is exactly 0).
    V sum = Vec::zero();
    for (j = 0; j < keys; ++j) {
      const V e = vexp<Vec>(Vec::sub(Vec::load(lg + j * kW), m));
      Vec::store(lg + j * kW, e);
      sum = Vec::add(sum, e);
    }
    const V inv = Vec::div(Vec::set1(1.f), sum);
    // 4. out^T = P^T V, four channels at a time. In causal mode a lane skips keys after its token.
    auto accumulate = [&](V acc, V p, float vj, size_t key) {
      const V upd = Vec::fmadd(p, Vec::set1(vj), acc);
      return causal ? Vec::blend_gt(Vec::set1(static_cast<float>(key)), tokv, acc, upd) : upd;
    };
    size_t c = 0;
    for (; c + 4 <= dh; c += 4) {
      V o0 = Vec::zero(), o1 = Vec::zero(), o2 = Vec::zero(), o3 = Vec::zero();
      for (j = 0; j < keys; ++j) {
        const V p = Vec::load(lg + j * kW);
        const float* vj = v + j * dh + c;
        o0 = accumulate(o0, p, vj[0], j);
        o1 = accumulate(o1, p, vj[1], j);
        o2 = accumulate(o2, p, vj[2], j);
        o3 = accumulate(o3, p, vj[3], j);
      }
      Vec::store(ot + c * kW, Vec::mul(o0, inv));
      Vec::store(ot + (c + 1) * kW, Vec::mul(o1, inv));
      Vec::store(ot + (c + 2) * kW, Vec::mul(o2, inv));
      Vec::store(ot + (c + 3) * kW, Vec::mul(o3, inv));
    }
    for (; c < dh; ++c) {
      V o0 = Vec::zero();
      for (j = 0; j < keys; ++j) o0 = accumulate(o0, Vec::load(lg + j * kW), v[j * dh + c], j);
      Vec::store(ot + c * kW, Vec::mul(o0, inv));
    }
    // 5. back to rows.
    transpose<Vec>(ot, dh, lanes, kW, out + r0 * dh, dh);
  }
}

}  // namespace mobpose::kernels
