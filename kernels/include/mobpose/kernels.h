// mobpose kernels: raw, unchecked compute over contiguous float32 buffers.
//
// Two operations (soft-argmax, multi-query attention) and the two building blocks of the PRM's
// native forward pass (cpp/src/prm.cc: a linear layer with a fused epilogue, LayerNorm), each with a
// scalar reference that accumulates in double and is never optimised, and SIMD variants (AVX2,
// AVX-512, NEON) chosen at run time in one place (dispatch.cc). Names follow
// XNNPACK's habit, dtype_operation__isa_unroll, and the same name is used in the tests and benchmarks.
//
// Shapes are the caller's promise: these functions do no checking. The checked operators live in
// cpp/include/mobpose/ops.h.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace mobpose::kernels {

// How the probabilities of the soft-argmax are made from the logits x of one joint's volume.
enum class SoftArgmaxMode : int {
  kExact = 0,          // p = exp(x - max) / sum exp(x - max)
  kTaylor = 1,         // p = f(x) / sum f(x), f(x) = 1 + x + x^2/2 = ((x + 1)^2 + 1) / 2 >= 1/2
  kTaylorClamped = 2,  // p = f(max(x, -1)) / sum ...: monotonic in x
};
constexpr int kNumSoftArgmaxModes = 3;

// How the structural prior enters the pre-softmax attention logits L (already scaled by 1/sqrt(d)).
enum class PriorMode : int {
  kNone = 0,            // L
  kMultiplicative = 1,  // L * F, F = 1 + lambda*a*(Adj1 + Adj2) (the poster's form)
  kAdditive = 2,        // L + F, F = lambda*a*(Adj1 + Adj2)
};
constexpr int kNumPriorModes = 3;

// Soft-argmax of one joint's heatmap volume x[D][H][W] (W fastest).
// Writes xyz[0..2] = expected (w, h, d) index in heatmap units and *peak = max_i p_i (a confidence).
// A NaN anywhere in the volume gives NaN in xyz and peak.
using SoftArgmax3dFn = void (*)(const float* x, size_t depth, size_t height, size_t width, float* xyz,
                                float* peak);

// Multi-query attention for one batch element: queries of all heads folded into rows.
//   q:   [heads * n][dh]  (row r is token r % n of head r / n)
//   k,v: [n][dh]          (one key head and one value head shared by all query heads)
//   factor_t: [n][n + kMqaFactorPad], factor_t[j][t] = F[t % n][j]: the prior factor F transposed
//        and extended by wrapping, so that the tokens of any kMqaFactorPad consecutive rows are
//        contiguous in it (ignored for kNone; may be null then)
//   out: [heads * n][dh]
// Only rows [row_begin, row_end) are computed. causal: token i attends to tokens j <= i.
// scratch must hold mqa_scratch_floats(n, dh) floats.
constexpr size_t kMqaFactorPad = 16;
using MqaFn = void (*)(const float* q, const float* k, const float* v, const float* factor_t,
                       size_t n, size_t dh, size_t row_begin, size_t row_end, bool causal,
                       float* out, float* scratch);

// factor_t as the MQA kernels read it, from F [n][n]: out must hold n * (n + kMqaFactorPad) floats.
void mqa_factor_transpose(const float* factor, size_t n, float* out);

// The same attention over one sequence in the PRM's token layout (cpp/src/prm.cc), read in place:
// rows are token-major (row r = token r / heads, head r % heads) and tokens are strided in memory.
//   q:   token i's heads at q + i * q_stride, head h at + h * dh
//   k,v: token i's key and value at k + i * kv_stride, v + i * kv_stride ([dh] each)
//   factor_r: [n][n * heads + kMqaFactorPad], factor_r[j][r] = F[(r % (n * heads)) / heads][j]: the
//        prior factor of every row (mqa_rows_factor; ignored for kNone, may be null then)
//   out: token i's heads at out + i * out_stride, head h at + h * dh (never overlapping q, k, v)
// Only rows [row_begin, row_end) are computed. causal: token i attends to tokens j <= i; a block of
// rows then reads only the keys up to its last token, and masks only the keys past its first.
// scratch must hold mqa_scratch_floats(n, dh) floats.
using MqaRowsFn = void (*)(const float* q, size_t q_stride, const float* k, const float* v, size_t kv_stride,
                           const float* factor_r, size_t n, size_t heads, size_t dh, size_t row_begin,
                           size_t row_end, bool causal, float* out, size_t out_stride, float* scratch);

// factor_r from F [n][n]: out must hold n * (n * heads + kMqaFactorPad) floats.
void mqa_rows_factor(const float* factor, size_t n, size_t heads, float* out);

size_t mqa_scratch_floats(size_t n, size_t dh);

// Elementwise exp as used inside both kernels (vec_math.h), exposed so its error can be tested.
using ExpFn = void (*)(const float* x, float* y, size_t n);

// What a linear kernel does with acc = bias + x W^T.
enum class LinearEpilogue : int {
  kStore = 0,       // y = acc
  kGeluTanh = 1,    // y = GELU(acc) in its tanh form (PyTorch's nn.GELU(approximate='tanh'))
  kAccumulate = 2,  // y += acc (a residual connection)
};

// Weights of a linear layer packed once for every variant: the n output columns in panels of
// kLinearPanel (a multiple of every vector width), each panel the bias row then the k weight rows:
//   packed[p][0][c] = bias[p*P + c], packed[p][1 + i][c] = weight[p*P + c][i], 0 past column n.
constexpr size_t kLinearPanel = 32;
// Floats of the packed form of an [n][k] weight.
size_t linear_packed_floats(size_t n, size_t k);
// Packs weight [n][k] (PyTorch's nn.Linear layout: out x in) and bias [n] (null: zeros).
void linear_pack(const float* weight, const float* bias, size_t n, size_t k, float* packed);

// Linear layer: y[i][c] = epilogue(bias[c] + sum_j x[i][j] * weight[c][j]) for i < m, c < n.
//   x: [m][k], rows ldx floats apart; packed: linear_pack of weight [n][k] and bias;
//   y: [m][n], rows ldy floats apart, never overlapping x. Only columns < n of y are written.
using LinearFn = void (*)(const float* x, size_t m, size_t k, size_t ldx, const float* packed,
                          size_t n, float* y, size_t ldy, LinearEpilogue epilogue);

// LayerNorm of each row over its c values: y = (x - mean) / sqrt(var + eps) * gamma + beta, var the
// biased variance (as nn.LayerNorm). x: [m][c] rows ldx apart; y: [m][c] rows ldy apart (y may be x).
using LayerNormFn = void (*)(const float* x, size_t m, size_t c, size_t ldx, const float* gamma,
                             const float* beta, float eps, float* y, size_t ldy);

// One ISA's kernels, indexed by mode.
struct KernelSet {
  const char* variant;  // "reference", "avx2", "avx512", "neon"
  SoftArgmax3dFn softargmax3d[kNumSoftArgmaxModes];
  const char* softargmax3d_names[kNumSoftArgmaxModes];
  MqaFn mqa[kNumPriorModes];
  const char* mqa_names[kNumPriorModes];
  MqaRowsFn mqa_rows[kNumPriorModes];
  const char* mqa_rows_names[kNumPriorModes];
  ExpFn exp;
  const char* exp_name;
  LinearFn linear;
  const char* linear_name;
  LayerNormFn layernorm;
  const char* layernorm_name;
};

// The kernels in use. The first call picks the best variant the CPU supports, unless the environment
// variable MOBPOSE_KERNEL_VARIANT names one ("reference" forces the double-precision reference).
const KernelSet& active_kernels();
// Every variant compiled in and supported by this CPU, best last; "reference" is always first.
std::vector<std::string> available_variants();
// Selects a variant by name ("auto" picks the best); false if unknown or unsupported here.
bool set_variant(const std::string& name);
// The set of a named variant, or null if unavailable.
const KernelSet* find_variant(const std::string& name);

// Reference kernels (double accumulation, plain loops).
void f64acc_softargmax3d_exact__ref(const float*, size_t, size_t, size_t, float*, float*);
void f64acc_softargmax3d_taylor__ref(const float*, size_t, size_t, size_t, float*, float*);
void f64acc_softargmax3d_taylorclamp__ref(const float*, size_t, size_t, size_t, float*, float*);
void f64_exp__ref(const float* x, float* y, size_t n);
void f64acc_mqa_noprior__ref(const float*, const float*, const float*, const float*, size_t, size_t,
                             size_t, size_t, bool, float*, float*);
void f64acc_mqa_mulprior__ref(const float*, const float*, const float*, const float*, size_t, size_t,
                              size_t, size_t, bool, float*, float*);
void f64acc_mqa_addprior__ref(const float*, const float*, const float*, const float*, size_t, size_t,
                              size_t, size_t, bool, float*, float*);
void f64acc_mqarows_noprior__ref(const float*, size_t, const float*, const float*, size_t, const float*, size_t,
                                 size_t, size_t, size_t, size_t, bool, float*, size_t, float*);
void f64acc_mqarows_mulprior__ref(const float*, size_t, const float*, const float*, size_t, const float*, size_t,
                                  size_t, size_t, size_t, size_t, bool, float*, size_t, float*);
void f64acc_mqarows_addprior__ref(const float*, size_t, const float*, const float*, size_t, const float*, size_t,
                                  size_t, size_t, size_t, size_t, bool, float*, size_t, float*);
void f64acc_linear__ref(const float* x, size_t m, size_t k, size_t ldx, const float* packed, size_t n,
                        float* y, size_t ldy, LinearEpilogue epilogue);
// The same for output columns [col_begin, col_end) only (the fast variants' fallback for one tile).
void f64acc_linear_cols__ref(const float* x, size_t m, size_t k, size_t ldx, const float* packed, size_t col_begin,
                             size_t col_end, float* y, size_t ldy, LinearEpilogue epilogue);
void f64acc_layernorm__ref(const float* x, size_t m, size_t c, size_t ldx, const float* gamma,
                           const float* beta, float eps, float* y, size_t ldy);

}  // namespace mobpose::kernels
