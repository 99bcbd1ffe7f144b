// Multi-query attention with a structural prior, written once over a vector type (vec_*.h).
//
// For one batch element the H query heads are folded into rows (row r = head r/n, token r%n), all
// sharing one key and one value head. The kernel puts kWidth consecutive rows in the lanes of a
// vector, so that the softmax over keys is plain lane-wise arithmetic (no horizontal reductions) and
// every lane is used whatever n is (a block may wrap from one head into the next). Per block:
//   1. Q^T: the block's rows transposed into qt[c][lane];
//   2. logits in base 2: for each key j, l[j] = (sum_c qt[c] * k[j][c]) / sqrt(dh) * log2(e) (eight
//      keys share each qt load, eight independent FMA chains), then l * F (multiplicative prior) or
//      l + F log2(e) (additive), the block's F[token][j] read as one contiguous vector of factor_t;
//      in causal mode a block reads only the keys up to its latest token, and lanes whose token is
//      before j get -inf (only for the keys after the block's earliest token: the keys before are
//      seen by every lane);
//   3. softmax over j lane-wise: m = max_j l, e = 2^(l - m) (vexp2 of vec_math.h: fewer operations
//      than exp, the same probabilities to float rounding), p = e / sum_j e;
//   4. out^T[c] = sum_j p[j] * v[j][c] (16 channels share each p load where there are 32 wide
//      registers, else 8); for the keys after the block's earliest token, a lane whose token is
//      before j keeps its sum unchanged, so a NaN in a future value never reaches it;
//   5. out^T transposed back into the rows.
// A last block with at most half the lanes filled runs on the half-width vector where the ISA has one
// (AVX-512 -> AVX2).
// At the extremes of float32 the block is handed to the scalar reference (reference.cc), which defines
// the semantics there (README "Kernels at the extremes of float32"): when a logit is -Inf before the
// causal mask (an overflow of q.k in float, or -Inf inputs: in float an overflowed dot product never
// comes back to a finite value, so an unmasked logit that is finite is also the right one up to
// rounding), or when an output is NaN, Inf or beyond ~2^60 (a NaN or +Inf logit, a non-finite value,
// a sum of values that overflows). Both are cheap checks fused into the passes: a running min of the
// logits next to their running max (one op per key), and a sum of the outputs' squares as they are
// stored (one FMA per output vector); the normal path is otherwise unchanged.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "mobpose/kernels.h"
#include "vec_math.h"

namespace mobpose::kernels {

// The helpers and lambdas of one block's work are forced inline: left to its heuristics, gcc kept the
// per-key lambda of the prior variants out of line once the dh = 16 variants were added (a call per
// key, the vector argument through memory: 25 % slower at (18, 8, 81, 16)).
#if defined(__GNUC__)
#define MOBPOSE_MQA_INLINE __attribute__((always_inline))
#else
#define MOBPOSE_MQA_INLINE
#endif

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

// The scalar references (reference.cc), the fallback for a block of rows the float path cannot do.
template <PriorMode kPrior>
constexpr MqaFn mqa_reference() {
  if constexpr (kPrior == PriorMode::kNone) return &f64acc_mqa_noprior__ref;
  if constexpr (kPrior == PriorMode::kMultiplicative) return &f64acc_mqa_mulprior__ref;
  return &f64acc_mqa_addprior__ref;
}
template <PriorMode kPrior>
constexpr MqaRowsFn mqa_rows_reference() {
  if constexpr (kPrior == PriorMode::kNone) return &f64acc_mqarows_noprior__ref;
  if constexpr (kPrior == PriorMode::kMultiplicative) return &f64acc_mqarows_mulprior__ref;
  return &f64acc_mqarows_addprior__ref;
}

// Whether a block's float results stand: lo (the running min of its unmasked logits) and chk (the
// sum of its outputs' squares) both finite in every lane. One horizontal sum per block.
template <class Vec>
MOBPOSE_MQA_INLINE inline bool mqa_block_finite(typename Vec::V lo, typename Vec::V chk) {
  return std::isfinite(Vec::hsum(Vec::add(chk, lo)));
}

// Logits of kR consecutive keys (rows kvs floats apart from k0) for the lanes of qt, one FMA chain per
// key; finish(acc, key) takes each.
template <class Vec, size_t kR, class Finish>
MOBPOSE_MQA_INLINE inline void mqa_logits(const float* qt, const float* k0, size_t kvs, size_t dh, size_t j0, Finish& finish) {
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  V a[kR];
#pragma GCC unroll 8
  for (size_t u = 0; u < kR; ++u) a[u] = Vec::zero();
  for (size_t c = 0; c < dh; ++c) {
    const V qc = Vec::load(qt + c * kW);
#pragma GCC unroll 8
    for (size_t u = 0; u < kR; ++u) a[u] = Vec::fmadd(qc, Vec::set1(k0[u * kvs + c]), a[u]);
  }
#pragma GCC unroll 8
  for (size_t u = 0; u < kR; ++u) finish(a[u], j0 + u);
}

// Output channels per pass of P V: 16 where there are 32 wide registers, else 8 (a multiple of the
// vector width either way, so that each pass's sums can be transposed in registers).
template <class Vec>
constexpr size_t mqa_chan() {
  return sizeof(typename Vec::V) >= 64 ? 16 : 8;
}

// Whether a block can move its rows through in-register kW x kW transposes (Vec::transpose): every lane
// used and dh a multiple of the P V pass. Such a block reads Q^T with rows_to_qt and writes its output
// rows straight from the P V sums (mqa_softmax_pv with orows), with no scratch transposes.
template <class Vec>
inline bool mqa_direct(size_t lanes, size_t dh) {
  static_assert(mqa_chan<Vec>() % Vec::kWidth == 0, "a P V pass must be whole vectors of channels");
  return lanes == Vec::kWidth && dh % mqa_chan<Vec>() == 0;
}

// qt[c][l] = rows[l][c] * scale for the kW rows of a full block, dh a multiple of kW: loads,
// in-register transposes, stores.
template <class Vec>
MOBPOSE_MQA_INLINE inline void rows_to_qt(const float* const* rows, size_t dh, typename Vec::V scale, float* qt) {
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  for (size_t c0 = 0; c0 < dh; c0 += kW) {
    V r[kW];
#pragma GCC unroll 16
    for (size_t l = 0; l < kW; ++l) r[l] = Vec::load(rows[l] + c0);
    Vec::transpose(r);
#pragma GCC unroll 16
    for (size_t i = 0; i < kW; ++i) Vec::store(qt + (c0 + i) * kW, Vec::mul(r[i], scale));
  }
}

// qt *= scale, after the scratch transposes of a partial block.
template <class Vec>
MOBPOSE_MQA_INLINE inline void scale_qt(float* qt, size_t dh, typename Vec::V scale) {
  for (size_t c = 0; c < dh; ++c) Vec::store(qt + c * Vec::kWidth, Vec::mul(Vec::load(qt + c * Vec::kWidth), scale));
}

// All the logits of a block: eight keys at a time (eight independent FMA chains), then the rest as one
// group of 1-7 keys.
template <class Vec, class Finish>
MOBPOSE_MQA_INLINE inline void mqa_all_logits(const float* qt, const float* k, size_t kvs, size_t dh, size_t keys, Finish& finish) {
  size_t j = 0;
  for (; j + 8 <= keys; j += 8) mqa_logits<Vec, 8>(qt, k + j * kvs, kvs, dh, j, finish);
  switch (keys - j) {
    case 7: mqa_logits<Vec, 7>(qt, k + j * kvs, kvs, dh, j, finish); break;
    case 6: mqa_logits<Vec, 6>(qt, k + j * kvs, kvs, dh, j, finish); break;
    case 5: mqa_logits<Vec, 5>(qt, k + j * kvs, kvs, dh, j, finish); break;
    case 4: mqa_logits<Vec, 4>(qt, k + j * kvs, kvs, dh, j, finish); break;
    case 3: mqa_logits<Vec, 3>(qt, k + j * kvs, kvs, dh, j, finish); break;
    case 2: mqa_logits<Vec, 2>(qt, k + j * kvs, kvs, dh, j, finish); break;
    case 1: mqa_logits<Vec, 1>(qt, k + j * kvs, kvs, dh, j, finish); break;
    default: break;
  }
}

// Steps 3-4 of both layouts: the softmax over the block's `keys` logits in lg (base 2: p = 2^(l - m) /
// sum) and out = P V. Keys before `common` are seen by every lane; for the keys after it, a lane
// whose token is before the key (masked) gets p = 0 in its sum and keeps its output sums unchanged,
// so a NaN in a later value never reaches it. The exp is vexp2 without its clamp at -150: lg holds no
// -inf here (the callers store the unmasked logits, and a -inf logit sends the block to the reference
// anyway), and a masked lane's 2^(l - m), whatever it is, is replaced by 0.
// out = P V runs kChan channels a pass (each p feeds kChan FMAs). (Computing the exps inside the pass
// when dh is one pass, instead of storing them first, measured 6 % slower.) The sums are scaled by
// 1/sum and written either to the rows (orows: transposed in registers, mqa_direct) or to ot[dh][kW].
// Returns the sum of the outputs' squares (the block's check).
template <class Vec>
MOBPOSE_MQA_INLINE inline typename Vec::V mqa_softmax_pv(float* lg, typename Vec::V m, const float* v, size_t kvs, size_t dh,
                                      size_t keys, size_t common, typename Vec::V tokv, float* ot,
                                      float* const* orows) {
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  constexpr size_t kChan = mqa_chan<Vec>();
  auto prob = [&](size_t j) MOBPOSE_MQA_INLINE {
    const V e = vexp2<Vec, false>(Vec::sub(Vec::load(lg + j * kW), m));
    return j < common ? e : Vec::blend_gt(Vec::set1(static_cast<float>(j)), tokv, Vec::zero(), e);
  };
  auto masked = [&](V acc, V p, float vj, size_t key) MOBPOSE_MQA_INLINE {
    return Vec::blend_gt(Vec::set1(static_cast<float>(key)), tokv, acc, Vec::fmadd(p, Vec::set1(vj), acc));
  };
  V sum = Vec::zero();
  for (size_t j = 0; j < keys; ++j) {
    const V e = prob(j);
    Vec::store(lg + j * kW, e);
    sum = Vec::add(sum, e);
  }
  const V inv = Vec::div(Vec::set1(1.f), sum);
  V chk = Vec::zero();
  auto put = [&](size_t ch, V o) MOBPOSE_MQA_INLINE {
    const V res = Vec::mul(o, inv);
    chk = Vec::fmadd(res, res, chk);
    Vec::store(ot + ch * kW, res);
  };
  const size_t passes_end = dh / kChan * kChan;
  size_t c = 0;
  for (; c < passes_end; c += kChan) {
    V o[kChan];
#pragma GCC unroll 16
    for (size_t u = 0; u < kChan; ++u) o[u] = Vec::zero();
    size_t j = 0;
    for (; j < common; ++j) {
      const V p = Vec::load(lg + j * kW);
      const float* vj = v + j * kvs + c;
#pragma GCC unroll 16
      for (size_t u = 0; u < kChan; ++u) o[u] = Vec::fmadd(p, Vec::set1(vj[u]), o[u]);
    }
    for (; j < keys; ++j) {
      const V p = Vec::load(lg + j * kW);
      const float* vj = v + j * kvs + c;
#pragma GCC unroll 16
      for (size_t u = 0; u < kChan; ++u) o[u] = masked(o[u], p, vj[u], j);
    }
    if (orows != nullptr) {  // the kChan channels of the kW rows, transposed in registers, to the rows
#pragma GCC unroll 16
      for (size_t u = 0; u < kChan; ++u) {
        o[u] = Vec::mul(o[u], inv);
        chk = Vec::fmadd(o[u], o[u], chk);
      }
      for (size_t g = 0; g < kChan; g += kW) {
        Vec::transpose(o + g);
#pragma GCC unroll 16
        for (size_t l = 0; l < kW; ++l) Vec::store(orows[l] + c + g, o[g + l]);
      }
    } else {
#pragma GCC unroll 16
      for (size_t u = 0; u < kChan; ++u) put(c + u, o[u]);
    }
  }
  for (; c < dh; ++c) {
    V o0 = Vec::zero();
    size_t j = 0;
    for (; j < common; ++j) o0 = Vec::fmadd(Vec::load(lg + j * kW), Vec::set1(v[j * kvs + c]), o0);
    for (; j < keys; ++j) o0 = masked(o0, Vec::load(lg + j * kW), v[j * kvs + c], j);
    put(c, o0);
  }
  return chk;
}

// The logits in base 2 for vexp2: q.k / sqrt(dh) * log2(e), then * F or + F log2(e).
constexpr double kMqaLog2e = 1.4426950408889634;

// Steps 2-4 of a block in either layout: the logits of the `keys` keys (qt already scaled to base 2), times or
// plus the prior factor F read at f0 + j * fstride for key j (the block's lanes contiguous there), their running
// max (masked lanes left out: keys from `open` on) and min (before the mask), then mqa_softmax_pv. Returns
// {lo, chk}: the min of the logits and the sum of the outputs' squares, the block's check (mqa_block_finite).
template <class Vec, PriorMode kPrior>
MOBPOSE_MQA_INLINE inline std::pair<typename Vec::V, typename Vec::V> mqa_block(
    const float* qt, const float* k, const float* v, size_t kvs, size_t dh, size_t keys, size_t open, size_t lanes,
    typename Vec::V tokv, const float* f0, size_t fstride, float* lg, float* ot, float* const* orows) {
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  const V log2e = Vec::set1(static_cast<float>(kMqaLog2e));
  const V neg_inf = Vec::set1(-std::numeric_limits<float>::infinity());
  V m = neg_inf, lo = Vec::zero();
  auto finish_logit = [&](V acc, size_t j) MOBPOSE_MQA_INLINE {
    V l;
    if constexpr (kPrior == PriorMode::kNone) {
      l = acc;
    } else {
      const float* f = f0 + j * fstride;
      const V fv = lanes == kW ? Vec::load(f) : Vec::load_tail(f, lanes);
      l = kPrior == PriorMode::kMultiplicative ? Vec::mul(acc, fv) : Vec::fmadd(fv, log2e, acc);
    }
    lo = Vec::min(lo, l);
    Vec::store(lg + j * kW, l);  // unmasked: mqa_softmax_pv masks the probabilities
    m = Vec::max(m, j >= open ? Vec::blend_gt(Vec::set1(static_cast<float>(j)), tokv, neg_inf, l) : l);
  };
  mqa_all_logits<Vec>(qt, k, kvs, dh, keys, finish_logit);
  const V chk = mqa_softmax_pv<Vec>(lg, m, v, kvs, dh, keys, open < keys ? open : keys, tokv, ot, orows);
  return {lo, chk};
}

// kDh: the head width when it is known at compile time (16, the PRM's), else 0 (dh as given); mqa and
// mqa_rows below pick the variant. A known width lets the compiler unroll every loop over channels.
template <class Vec, PriorMode kPrior, size_t kDh>
void mqa_dh(const float* q, const float* k, const float* v, const float* factor_t, size_t n, size_t dh_arg,
            size_t row_begin, size_t row_end, bool causal, float* out, float* scratch) {
  const size_t dh = kDh != 0 ? kDh : dh_arg;
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  float* qt = scratch;          // [dh][kW]
  float* lg = qt + dh * kW;     // [n][kW] logits, then 2^(logit - max)
  float* ot = lg + n * kW;      // [dh][kW]
  const V scale = Vec::set1(static_cast<float>(kMqaLog2e / std::sqrt(static_cast<double>(dh))));

  for (size_t r0 = row_begin; r0 < row_end; r0 += kW) {
    const size_t lanes = row_end - r0 < kW ? row_end - r0 : kW;
    using Half = typename HalfOf<Vec>::type;
    if constexpr (!std::is_void_v<Half>) {
      if (lanes <= Half::kWidth) {  // the last block, at most half full: half as many operations
        mqa_dh<Half, kPrior, kDh>(q, k, v, factor_t, n, dh, r0, row_end, causal, out, scratch);
        return;
      }
    }
    // Tokens of the lanes (consecutive modulo n); unused lanes get a token past every key.
    alignas(64) float tok[kMqaMaxWidth];
    const size_t t0 = r0 % n;
    size_t max_tok = 0, min_tok = n;
    for (size_t l = 0, t = t0; l < kW; ++l) {
      tok[l] = static_cast<float>(l < lanes ? t : n);
      if (l < lanes) {
        max_tok = t > max_tok ? t : max_tok;
        min_tok = t < min_tok ? t : min_tok;
      }
      t = t + 1 == n ? 0 : t + 1;
    }
    const V tokv = Vec::load(tok);
    const size_t keys = causal ? max_tok + 1 : n;   // keys any lane sees
    const size_t open = causal ? min_tok + 1 : n;   // keys every lane sees
    // 1. Q^T (unused lanes 0).
    const bool direct = mqa_direct<Vec>(lanes, dh);
    const float* qrows[kMqaMaxWidth];
    float* orows[kMqaMaxWidth];
    if (direct) {
      for (size_t l = 0; l < kW; ++l) {
        qrows[l] = q + (r0 + l) * dh;
        orows[l] = out + (r0 + l) * dh;
      }
      rows_to_qt<Vec>(qrows, dh, scale, qt);
    } else {
      if (lanes < kW) {
        for (size_t i = 0; i < dh * kW; ++i) qt[i] = 0.f;
      }
      transpose<Vec>(q + r0 * dh, lanes, dh, dh, qt, kW);
      scale_qt<Vec>(qt, dh, scale);
    }
    // 2. logits, their running max and (before the mask) their running min.
    const auto [lo, chk] = mqa_block<Vec, kPrior>(qt, k, v, dh, dh, keys, open, lanes, tokv, factor_t + t0,
                                                  n + kMqaFactorPad, lg, ot, direct ? orows : nullptr);
    // 5. back to rows (done if direct), or the block's rows from the reference where float32 did not hold.
    if (mqa_block_finite<Vec>(lo, chk)) {
      if (!direct) transpose<Vec>(ot, dh, lanes, kW, out + r0 * dh, dh);
    } else {
      mqa_reference<kPrior>()(q, k, v, factor_t, n, dh, r0, r0 + lanes, causal, out, scratch);
    }
  }
}

// dst[c * ds + l] = rows[l][c] for l < nrows, c < cols: rows from arbitrary pointers; each group of 4
// equally spaced rows (the heads of one token) goes through 4x4 SIMD tiles.
template <class Vec>
inline void gather_transpose(const float* const* rows, size_t nrows, size_t cols, float* dst, size_t ds) {
  const size_t c4 = cols / 4 * 4;
  size_t l = 0;
  for (; l + 4 <= nrows; l += 4) {
    const std::ptrdiff_t s1 = rows[l + 1] - rows[l];
    if (s1 > 0 && rows[l + 2] - rows[l + 1] == s1 && rows[l + 3] - rows[l + 2] == s1) {
      for (size_t c = 0; c < c4; c += 4) Vec::transpose4x4(rows[l] + c, static_cast<size_t>(s1), dst + c * ds + l, ds);
      for (size_t c = c4; c < cols; ++c) {
        for (size_t i = l; i < l + 4; ++i) dst[c * ds + i] = rows[i][c];
      }
    } else {
      for (size_t i = l; i < l + 4; ++i) {
        for (size_t c = 0; c < cols; ++c) dst[c * ds + i] = rows[i][c];
      }
    }
  }
  for (; l < nrows; ++l) {
    for (size_t c = 0; c < cols; ++c) dst[c * ds + l] = rows[l][c];
  }
}

// rows[l][c] = src[c * ss + l]: the inverse of gather_transpose.
template <class Vec>
inline void scatter_transpose(const float* src, size_t ss, size_t nrows, size_t cols, float* const* rows) {
  const size_t c4 = cols / 4 * 4;
  size_t l = 0;
  for (; l + 4 <= nrows; l += 4) {
    const std::ptrdiff_t s1 = rows[l + 1] - rows[l];
    if (s1 > 0 && rows[l + 2] - rows[l + 1] == s1 && rows[l + 3] - rows[l + 2] == s1) {
      for (size_t c = 0; c < c4; c += 4) Vec::transpose4x4(src + c * ss + l, ss, rows[l] + c, static_cast<size_t>(s1));
      for (size_t c = c4; c < cols; ++c) {
        for (size_t i = l; i < l + 4; ++i) rows[i][c] = src[c * ss + i];
      }
    } else {
      for (size_t i = l; i < l + 4; ++i) {
        for (size_t c = 0; c < cols; ++c) rows[i][c] = src[c * ss + i];
      }
    }
  }
  for (; l < nrows; ++l) {
    for (size_t c = 0; c < cols; ++c) rows[l][c] = src[c * ss + l];
  }
}

// The same attention in the PRM's token layout (kernels.h, MqaRowsFn): rows token-major, so a vector
// of rows covers a few consecutive tokens (kWidth / heads of them), and q, k, v, out are read and
// written in place through their token strides (no gather by the caller). Steps 1-5 as in mqa above,
// with two savings in causal mode: a block reads only the keys up to its last token, and only the
// keys after its first token (at most kWidth / heads of them) need the per-lane mask; the keys before
// are seen by every lane and go through plain FMAs. A last block with at most half the lanes filled
// runs on the half-width vector where the ISA has one (AVX-512 -> AVX2). (Accumulating P V in the
// rows' own layout instead, to skip the transpose back, measured slower: its scalar reads of the just
// stored probabilities defeat store-to-load forwarding.) The softmax runs in base 2 (logits times
// log2(e), then vexp2), which needs fewer operations than vexp and gives the same probabilities to
// float rounding.
template <class Vec, PriorMode kPrior, size_t kDh>
void mqa_rows_dh(const float* q, size_t qs, const float* k, const float* v, size_t kvs, const float* factor_r,
                 size_t n, size_t heads, size_t dh_arg, size_t row_begin, size_t row_end, bool causal, float* out,
                 size_t os, float* scratch) {
  const size_t dh = kDh != 0 ? kDh : dh_arg;
  using V = typename Vec::V;
  constexpr size_t kW = Vec::kWidth;
  float* qt = scratch;       // [dh][kW]
  float* lg = qt + dh * kW;  // [n][kW] logits, then 2^(logit - max)
  float* ot = lg + n * kW;   // [dh][kW]
  const V scale = Vec::set1(static_cast<float>(kMqaLog2e / std::sqrt(static_cast<double>(dh))));

  for (size_t r0 = row_begin; r0 < row_end; r0 += kW) {
    const size_t lanes = row_end - r0 < kW ? row_end - r0 : kW;
    using Half = typename HalfOf<Vec>::type;
    if constexpr (!std::is_void_v<Half>) {
      if (lanes <= Half::kWidth) {  // the last block, at most half full: half as many operations
        mqa_rows_dh<Half, kPrior, kDh>(q, qs, k, v, kvs, factor_r, n, heads, dh, r0, row_end, causal, out, os,
                                       scratch);
        return;
      }
    }
    // Tokens of the lanes; unused lanes get a token past every key.
    alignas(64) float tok[kMqaMaxWidth];
    const float* qrows[kMqaMaxWidth];
    float* orows[kMqaMaxWidth];
    for (size_t l = 0, i = r0 / heads, h = r0 % heads; l < kW; ++l) {  // (token, head) of row r0 + l
      if (l < lanes) {
        tok[l] = static_cast<float>(i);
        qrows[l] = q + i * qs + h * dh;
        orows[l] = out + i * os + h * dh;
        if (++h == heads) {
          h = 0;
          ++i;
        }
      } else {
        tok[l] = static_cast<float>(n);
      }
    }
    const V tokv = Vec::load(tok);
    const size_t first_tok = r0 / heads, last_tok = (r0 + lanes - 1) / heads;
    const size_t keys = causal ? last_tok + 1 : n;   // keys any lane sees
    const size_t open = causal ? first_tok + 1 : n;  // keys every lane sees
    // 1. Q^T (unused lanes 0).
    const bool direct = mqa_direct<Vec>(lanes, dh);
    if (direct) {
      rows_to_qt<Vec>(qrows, dh, scale, qt);
    } else {
      if (lanes < kW) {
        for (size_t i = 0; i < dh * kW; ++i) qt[i] = 0.f;
      }
      gather_transpose<Vec>(qrows, lanes, dh, qt, kW);
      scale_qt<Vec>(qt, dh, scale);
    }
    // 2. logits, their running max and (before the mask) their running min.
    const auto [lo, chk] = mqa_block<Vec, kPrior>(qt, k, v, kvs, dh, keys, open, lanes, tokv, factor_r + r0,
                                                  n * heads + kMqaFactorPad, lg, ot, direct ? orows : nullptr);
    // 5. back to the rows, in place (done if direct), or the block's rows from the reference where
    // float32 did not hold.
    if (mqa_block_finite<Vec>(lo, chk)) {
      if (!direct) scatter_transpose<Vec>(ot, kW, lanes, dh, orows);
    } else {
      mqa_rows_reference<kPrior>()(q, qs, k, v, kvs, factor_r, n, heads, dh, r0, r0 + lanes, causal, out, os,
                                   scratch);
    }
  }
}

// The kernels as the dispatch table holds them (kernels.h: MqaFn, MqaRowsFn): dh = 16 runs the variant
// compiled for it (measured 4 % faster at (18, 8, 81, 16)), any other dh the general one.
template <class Vec, PriorMode kPrior>
void mqa(const float* q, const float* k, const float* v, const float* factor_t, size_t n, size_t dh,
         size_t row_begin, size_t row_end, bool causal, float* out, float* scratch) {
  if (dh == 16) {
    mqa_dh<Vec, kPrior, 16>(q, k, v, factor_t, n, dh, row_begin, row_end, causal, out, scratch);
  } else {
    mqa_dh<Vec, kPrior, 0>(q, k, v, factor_t, n, dh, row_begin, row_end, causal, out, scratch);
  }
}

template <class Vec, PriorMode kPrior>
void mqa_rows(const float* q, size_t qs, const float* k, const float* v, size_t kvs, const float* factor_r, size_t n,
              size_t heads, size_t dh, size_t row_begin, size_t row_end, bool causal, float* out, size_t os,
              float* scratch) {
  if (dh == 16) {
    mqa_rows_dh<Vec, kPrior, 16>(q, qs, k, v, kvs, factor_r, n, heads, dh, row_begin, row_end, causal, out, os,
                                 scratch);
  } else {
    mqa_rows_dh<Vec, kPrior, 0>(q, qs, k, v, kvs, factor_r, n, heads, dh, row_begin, row_end, causal, out, os,
                                scratch);
  }
}

}  // namespace mobpose::kernels
