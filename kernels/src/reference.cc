// Scalar references. Plain loops, double accumulation, never optimised: every fast variant is tested
// against these.
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "mobpose/kernels.h"

namespace mobpose::kernels {
namespace {

// f(x) = 1 + x + x^2/2 written as ((x + 1)^2 + 1) / 2. In double, (x + 1)^2 of any finite float
// (at most 1.2e77) and its sums over any volume stay finite: no scaling is needed here.
double taylor2(double x) { return 0.5 * (x + 1.0) * (x + 1.0) + 0.5; }

// The semantics at the extremes (README "Kernels at the extremes of float32"), which every fast
// variant follows by handing a joint it cannot do in float32 to this function:
//   - a NaN or +Inf logit makes the joint NaN (xyz and peak), in every mode;
//   - -Inf: exact, weight 0 (exp(-inf) = 0), but NaN if every logit is -Inf (no distribution);
//     taylor, NaN (f(-inf) = +inf); taylor_clamped, weight f(-1) = 1/2 like any logit <= -1;
//   - any finite logits give the finite expectation in [0, size - 1] and the peak in (0, 1].
template <SoftArgmaxMode kMode>
void softargmax3d_ref(const float* x, size_t depth, size_t height, size_t width, float* xyz,
                      float* peak) {
  const size_t volume = depth * height * width;
  const double inf = std::numeric_limits<double>::infinity();
  bool bad = false;  // a logit that makes the joint NaN
  double shift = -inf;
  for (size_t i = 0; i < volume; ++i) {
    const double xi = x[i];
    bad |= std::isnan(xi) || xi == inf || (kMode == SoftArgmaxMode::kTaylor && xi == -inf);
    shift = std::fmax(shift, xi);
  }
  if (kMode == SoftArgmaxMode::kExact) bad |= shift == -inf;  // every logit -Inf
  if (bad) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    xyz[0] = xyz[1] = xyz[2] = *peak = nan;
    return;
  }
  double sum = 0.0, sx = 0.0, sy = 0.0, sz = 0.0, top = 0.0;
  for (size_t d = 0; d < depth; ++d) {
    for (size_t h = 0; h < height; ++h) {
      for (size_t w = 0; w < width; ++w) {
        const double xi = x[(d * height + h) * width + w];
        double e;
        if (kMode == SoftArgmaxMode::kExact) {
          e = std::exp(xi - shift);  // 0 for xi = -inf
        } else if (kMode == SoftArgmaxMode::kTaylor) {
          e = taylor2(xi);
        } else {
          e = taylor2(std::fmax(xi, -1.0));
        }
        sum += e;
        sx += e * static_cast<double>(w);
        sy += e * static_cast<double>(h);
        sz += e * static_cast<double>(d);
        top = std::fmax(top, e);
      }
    }
  }
  xyz[0] = static_cast<float>(sx / sum);
  xyz[1] = static_cast<float>(sy / sum);
  xyz[2] = static_cast<float>(sz / sum);
  *peak = static_cast<float>(top / sum);
}

// One row of attention from its logits l[0..len) (double, already scaled, prior applied, causal keys
// past the row left out) and its keys' values (value j at v + j * vs): the semantics at the extremes
// (README "Kernels at the extremes of float32"), which every fast variant follows by handing a row
// it cannot do in float32 to these functions:
//   - the logits are computed in double from the float inputs, so finite inputs never overflow them
//     (|q.k| <= 1.2e77 * d) and the softmax is the mathematically right one;
//   - a NaN or +Inf logit, or no logit above -Inf, makes the whole row NaN (softmax undefined, as
//     torch.softmax gives);
//   - a key whose logit is -Inf has weight exactly 0 and is not attended: its value, even NaN, never
//     reaches the row (as a causal future key);
//   - an attended key's non-finite value passes through unscaled, since its weight is positive even
//     where exp underflows: +-Inf stays +-Inf (+Inf and -Inf in one channel give NaN), NaN stays NaN;
//   - finite values give finite outputs: a convex combination of them, summed in double.
void attention_row_ref(double* l, size_t len, const float* v, size_t vs, size_t dh, double* acc, float* out) {
  const double inf = std::numeric_limits<double>::infinity();
  double top = -inf;
  bool bad = false;
  for (size_t j = 0; j < len; ++j) {
    bad |= std::isnan(l[j]);
    top = std::fmax(top, l[j]);
  }
  if (bad || top == inf || top == -inf) {
    for (size_t c = 0; c < dh; ++c) out[c] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  double sum = 0.0;
  for (size_t c = 0; c < dh; ++c) acc[c] = 0.0;
  for (size_t j = 0; j < len; ++j) {
    if (l[j] == -inf) continue;
    const double e = std::exp(l[j] - top);
    sum += e;
    for (size_t c = 0; c < dh; ++c) {
      const double vj = v[j * vs + c];
      acc[c] += std::isfinite(vj) ? e * vj : vj;
    }
  }
  for (size_t c = 0; c < dh; ++c) out[c] = static_cast<float>(acc[c] / sum);
}

template <PriorMode kPrior>
void mqa_ref(const float* q, const float* k, const float* v, const float* factor_t, size_t n,
             size_t dh, size_t row_begin, size_t row_end, bool causal, float* out,
             float* /*scratch*/) {
  const size_t stride = n + kMqaFactorPad;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  std::vector<double> logits(n), acc(dh);
  for (size_t r = row_begin; r < row_end; ++r) {
    const size_t i = r % n;
    const size_t len = causal ? i + 1 : n;
    for (size_t j = 0; j < len; ++j) {
      double dot = 0.0;
      for (size_t c = 0; c < dh; ++c) dot += static_cast<double>(q[r * dh + c]) * k[j * dh + c];
      double l = dot * scale;
      if (kPrior == PriorMode::kMultiplicative) l *= factor_t[j * stride + i];
      if (kPrior == PriorMode::kAdditive) l += factor_t[j * stride + i];
      logits[j] = l;
    }
    attention_row_ref(logits.data(), len, v, dh, dh, acc.data(), out + r * dh);
  }
}

template <PriorMode kPrior>
void mqa_rows_ref(const float* q, size_t qs, const float* k, const float* v, size_t kvs, const float* factor_r,
                  size_t n, size_t heads, size_t dh, size_t row_begin, size_t row_end, bool causal, float* out,
                  size_t os) {
  const size_t stride = n * heads + kMqaFactorPad;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  std::vector<double> logits(n), acc(dh);
  for (size_t r = row_begin; r < row_end; ++r) {
    const size_t i = r / heads, h = r % heads;
    const float* qr = q + i * qs + h * dh;
    const size_t len = causal ? i + 1 : n;
    for (size_t j = 0; j < len; ++j) {
      double dot = 0.0;
      for (size_t c = 0; c < dh; ++c) dot += static_cast<double>(qr[c]) * k[j * kvs + c];
      double l = dot * scale;
      if (kPrior == PriorMode::kMultiplicative) l *= factor_r[j * stride + r];
      if (kPrior == PriorMode::kAdditive) l += factor_r[j * stride + r];
      logits[j] = l;
    }
    attention_row_ref(logits.data(), len, v, kvs, dh, acc.data(), out + i * os + h * dh);
  }
}

// GELU's tanh form, as nn.GELU(approximate='tanh') writes it.
double gelu_tanh_ref(double x) {
  const double k = 0.7978845608028654;  // sqrt(2 / pi)
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

}  // namespace

size_t linear_packed_floats(size_t n, size_t k) {
  return (n + kLinearPanel - 1) / kLinearPanel * (k + 1) * kLinearPanel;
}

void linear_pack(const float* weight, const float* bias, size_t n, size_t k, float* packed) {
  const size_t panels = (n + kLinearPanel - 1) / kLinearPanel;
  for (size_t p = 0; p < panels; ++p) {
    float* dst = packed + p * (k + 1) * kLinearPanel;
    for (size_t c = 0; c < kLinearPanel; ++c) {
      const size_t col = p * kLinearPanel + c;
      dst[c] = col < n && bias != nullptr ? bias[col] : 0.f;
      for (size_t i = 0; i < k; ++i) dst[(1 + i) * kLinearPanel + c] = col < n ? weight[col * k + i] : 0.f;
    }
  }
}

void f64acc_linear_cols__ref(const float* x, size_t m, size_t k, size_t ldx, const float* packed, size_t col_begin,
                             size_t col_end, float* y, size_t ldy, LinearEpilogue epilogue) {
  for (size_t r = 0; r < m; ++r) {
    for (size_t col = col_begin; col < col_end; ++col) {
      const float* w = packed + col / kLinearPanel * (k + 1) * kLinearPanel + col % kLinearPanel;
      double acc = w[0];
      for (size_t i = 0; i < k; ++i) acc += static_cast<double>(x[r * ldx + i]) * w[(1 + i) * kLinearPanel];
      float& out = y[r * ldy + col];
      if (epilogue == LinearEpilogue::kGeluTanh) {
        out = static_cast<float>(gelu_tanh_ref(acc));
      } else if (epilogue == LinearEpilogue::kAccumulate) {
        out = static_cast<float>(static_cast<double>(out) + acc);
      } else {
        out = static_cast<float>(acc);
      }
    }
  }
}

void f64acc_linear__ref(const float* x, size_t m, size_t k, size_t ldx, const float* packed, size_t n,
                        float* y, size_t ldy, LinearEpilogue epilogue) {
  f64acc_linear_cols__ref(x, m, k, ldx, packed, 0, n, y, ldy, epilogue);
}

void f64acc_layernorm__ref(const float* x, size_t m, size_t c, size_t ldx, const float* gamma,
                           const float* beta, float eps, float* y, size_t ldy) {
  for (size_t r = 0; r < m; ++r) {
    double mean = 0.0, var = 0.0;
    for (size_t i = 0; i < c; ++i) mean += x[r * ldx + i];
    mean /= static_cast<double>(c);
    for (size_t i = 0; i < c; ++i) var += (x[r * ldx + i] - mean) * (x[r * ldx + i] - mean);
    const double rstd = 1.0 / std::sqrt(var / static_cast<double>(c) + static_cast<double>(eps));
    for (size_t i = 0; i < c; ++i) {
      y[r * ldy + i] = static_cast<float>((x[r * ldx + i] - mean) * rstd * gamma[i] + beta[i]);
    }
  }
}

void mqa_rows_factor(const float* factor, size_t n, size_t heads, float* out) {
  const size_t rows = n * heads, stride = rows + kMqaFactorPad;
  for (size_t j = 0; j < n; ++j) {
    for (size_t r = 0; r < stride; ++r) out[j * stride + r] = factor[(r % rows) / heads * n + j];
  }
}

void mqa_factor_transpose(const float* factor, size_t n, float* out) {
  const size_t stride = n + kMqaFactorPad;
  // Rows of F read in order (twice as fast as reading its columns at N = 81), then each row of out
  // extended by wrapping.
  for (size_t t = 0; t < n; ++t) {
    const float* row = factor + t * n;
    for (size_t j = 0; j < n; ++j) out[j * stride + t] = row[j];
  }
  for (size_t j = 0; j < n; ++j) {
    float* o = out + j * stride;
    for (size_t t = n, i = 0; t < stride; ++t) {  // i = t % n without a division
      o[t] = o[i];
      i = i + 1 == n ? 0 : i + 1;
    }
  }
}

void f64_exp__ref(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(std::exp(static_cast<double>(x[i])));
}

void f64acc_softargmax3d_exact__ref(const float* x, size_t d, size_t h, size_t w, float* xyz,
                                    float* peak) {
  softargmax3d_ref<SoftArgmaxMode::kExact>(x, d, h, w, xyz, peak);
}
void f64acc_softargmax3d_taylor__ref(const float* x, size_t d, size_t h, size_t w, float* xyz,
                                     float* peak) {
  softargmax3d_ref<SoftArgmaxMode::kTaylor>(x, d, h, w, xyz, peak);
}
void f64acc_softargmax3d_taylorclamp__ref(const float* x, size_t d, size_t h, size_t w, float* xyz,
                                          float* peak) {
  softargmax3d_ref<SoftArgmaxMode::kTaylorClamped>(x, d, h, w, xyz, peak);
}

#define MOBPOSE_MQA_REF(NAME, MODE)                                                                 \
  void NAME(const float* q, const float* k, const float* v, const float* f, size_t n, size_t dh,   \
            size_t rb, size_t re, bool causal, float* out, float* scratch) {                       \
    mqa_ref<MODE>(q, k, v, f, n, dh, rb, re, causal, out, scratch);                                \
  }
MOBPOSE_MQA_REF(f64acc_mqa_noprior__ref, PriorMode::kNone)
MOBPOSE_MQA_REF(f64acc_mqa_mulprior__ref, PriorMode::kMultiplicative)
MOBPOSE_MQA_REF(f64acc_mqa_addprior__ref, PriorMode::kAdditive)
#undef MOBPOSE_MQA_REF

#define MOBPOSE_MQAROWS_REF(NAME, MODE)                                                                        \
  void NAME(const float* q, size_t qs, const float* k, const float* v, size_t kvs, const float* f, size_t n, \
            size_t heads, size_t dh, size_t rb, size_t re, bool causal, float* out, size_t os, float*) {       \
    mqa_rows_ref<MODE>(q, qs, k, v, kvs, f, n, heads, dh, rb, re, causal, out, os);                          \
  }
MOBPOSE_MQAROWS_REF(f64acc_mqarows_noprior__ref, PriorMode::kNone)
MOBPOSE_MQAROWS_REF(f64acc_mqarows_mulprior__ref, PriorMode::kMultiplicative)
MOBPOSE_MQAROWS_REF(f64acc_mqarows_addprior__ref, PriorMode::kAdditive)
#undef MOBPOSE_MQAROWS_REF

}  // namespace mobpose::kernels
