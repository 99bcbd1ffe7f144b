// Multi-query attention with a structural prior, written once over a vector type (vec_*.h).
//
// For one batch element, the H query heads are folded into rows (row r = head r/n, token r%n), all
// sharing one key and one value head. Per block of kRows rows:
//   1. logits: L[r][j] = sum_c q[r][c] * K^T[c][j], vectorised over j with K transposed once per call
//      into scratch (zero padded to a multiple of the vector width), kRows rows per K^T load;
//   2. per row: L = L / sqrt(dh), then L * F[i][j] (multiplicative prior) or L + F[i][j] (additive),
//      causal rows keep j <= i; softmax with max subtraction and the vector exp of vec_math.h;
//   3. out[r] = sum_j p[r][j] * V[j], vectorised over channels, kRows rows per V load; in causal mode
//      a row never reads values past its own token, so a NaN in a future value cannot leak back.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include "mobpose/kernels.h"
#include "vec_math.h"

namespace mobpose::kernels {

constexpr size_t kMqaRows = 4;
constexpr size_t kMqaMaxWidth = 16;  // widest vector, for the scratch padding

inline size_t mqa_padded(size_t n) { return (n + kMqaMaxWidth - 1) / kMqaMaxWidth * kMqaMaxWidth; }

template <class Vec, PriorMode kPrior>
void mqa(const float* q, const float* k, const float* v, const float* factor, size_t n, size_t dh,
         size_t row_begin, size_t row_end, bool causal, float* out, float* scratch) {
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  const size_t np = mqa_padded(n);
  float* kt = scratch;           // [dh][np]
  float* prob = kt + dh * np;    // [kMqaRows][np]
  for (size_t c = 0; c < dh; ++c) {
    for (size_t j = 0; j < n; ++j) kt[c * np + j] = k[j * dh + c];
    for (size_t j = n; j < np; ++j) kt[c * np + j] = 0.f;
  }
  const V scale = Vec::set1(static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh))));
  const float neg_inf = -std::numeric_limits<float>::infinity();

  for (size_t r0 = row_begin; r0 < row_end; r0 += kMqaRows) {
    const size_t rows = row_end - r0 < kMqaRows ? row_end - r0 : kMqaRows;
    size_t token[kMqaRows], len[kMqaRows];
    size_t min_len = n, max_len = 0;
    for (size_t ri = 0; ri < rows; ++ri) {
      token[ri] = (r0 + ri) % n;
      len[ri] = causal ? token[ri] + 1 : n;
      min_len = len[ri] < min_len ? len[ri] : min_len;
      max_len = len[ri] > max_len ? len[ri] : max_len;
    }
    // 1. logits for j < max_len (whole vectors: kt and prob are padded).
    for (size_t j0 = 0; j0 < max_len; j0 += kW) {
      V acc[kMqaRows];
      for (size_t ri = 0; ri < kMqaRows; ++ri) acc[ri] = Vec::zero();
      for (size_t c = 0; c < dh; ++c) {
        const V kv = Vec::load(kt + c * np + j0);
        for (size_t ri = 0; ri < rows; ++ri) {
          acc[ri] = Vec::fmadd(Vec::set1(q[(r0 + ri) * dh + c]), kv, acc[ri]);
        }
      }
      for (size_t ri = 0; ri < rows; ++ri) Vec::store(prob + ri * np + j0, acc[ri]);
    }
    // 2. scale, prior, mask, softmax; lanes past a row's length are -inf, then 0.
    for (size_t ri = 0; ri < rows; ++ri) {
      float* p = prob + ri * np;
      const float* f = factor + token[ri] * n;
      const size_t m = len[ri];
      V vmax = Vec::set1(neg_inf);
      for (size_t j0 = 0; j0 < m; j0 += kW) {
        const size_t cnt = m - j0 < kW ? m - j0 : kW;
        V l = Vec::mul(Vec::load(p + j0), scale);
        if constexpr (kPrior == PriorMode::kMultiplicative) {
          l = Vec::mul(l, cnt == kW ? Vec::load(f + j0) : Vec::load_tail(f + j0, cnt));
        } else if constexpr (kPrior == PriorMode::kAdditive) {
          l = Vec::add(l, cnt == kW ? Vec::load(f + j0) : Vec::load_tail(f + j0, cnt));
        }
        if (cnt != kW) l = Vec::fill_tail(l, cnt, neg_inf);
        Vec::store(p + j0, l);
        vmax = Vec::max(vmax, l);
      }
      const V top = Vec::set1(Vec::hmax(vmax));
      V vsum = Vec::zero();
      for (size_t j0 = 0; j0 < m; j0 += kW) {
        const size_t cnt = m - j0 < kW ? m - j0 : kW;
        V e = vexp<Vec>(Vec::sub(Vec::load(p + j0), top));
        if (cnt != kW) e = Vec::fill_tail(e, cnt, 0.f);
        Vec::store(p + j0, e);
        vsum = Vec::add(vsum, e);
      }
      const V inv = Vec::set1(static_cast<float>(1.0 / Vec::hsum_f64(vsum)));
      for (size_t j0 = 0; j0 < m; j0 += kW) Vec::store(p + j0, Vec::mul(Vec::load(p + j0), inv));
    }
    // 3. out = P V over channel chunks; tokens [min_len, len) only for the rows that see them.
    for (size_t c0 = 0; c0 < dh; c0 += kW) {
      const size_t cnt = dh - c0 < kW ? dh - c0 : kW;
      V acc[kMqaRows];
      for (size_t ri = 0; ri < kMqaRows; ++ri) acc[ri] = Vec::zero();
      for (size_t j = 0; j < max_len; ++j) {
        const float* vr = v + j * dh + c0;
        const V vv = cnt == kW ? Vec::load(vr) : Vec::load_tail(vr, cnt);
        if (j < min_len) {
          for (size_t ri = 0; ri < rows; ++ri) acc[ri] = Vec::fmadd(Vec::set1(prob[ri * np + j]), vv, acc[ri]);
        } else {
          for (size_t ri = 0; ri < rows; ++ri) {
            if (j < len[ri]) acc[ri] = Vec::fmadd(Vec::set1(prob[ri * np + j]), vv, acc[ri]);
          }
        }
      }
      for (size_t ri = 0; ri < rows; ++ri) {
        float* o = out + (r0 + ri) * dh + c0;
        if (cnt == kW) {
          Vec::store(o, acc[ri]);
        } else {
          Vec::store_tail(o, acc[ri], cnt);
        }
      }
    }
  }
}

}  // namespace mobpose::kernels
