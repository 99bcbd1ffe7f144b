#include "mobpose/ops.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "mobpose/thread_pool.h"

namespace mobpose {
namespace {

void require_positive(int64_t value, const char* name) {
  if (value <= 0) {
    throw std::invalid_argument(std::string(name) + " must be positive, got " +
                                std::to_string(value));
  }
}

// Product of dims, refusing sizes whose element count would not fit in a signed 64-bit index.
int64_t checked_product(std::initializer_list<int64_t> dims, const char* name) {
  int64_t total = 1;
  for (int64_t d : dims) {
    if (d != 0 && total > std::numeric_limits<int64_t>::max() / 16 / d) {
      throw std::invalid_argument(std::string(name) + " is too large");
    }
    total *= d;
  }
  return total;
}

}  // namespace

kernels::SoftArgmaxMode parse_softargmax_mode(const std::string& mode) {
  if (mode == "exact") return kernels::SoftArgmaxMode::kExact;
  if (mode == "taylor") return kernels::SoftArgmaxMode::kTaylor;
  if (mode == "taylor_clamped") return kernels::SoftArgmaxMode::kTaylorClamped;
  throw std::invalid_argument("mode must be 'exact', 'taylor' or 'taylor_clamped', got '" + mode +
                              "'");
}

kernels::PriorMode parse_prior_mode(const std::string& prior) {
  if (prior == "mul") return kernels::PriorMode::kMultiplicative;
  if (prior == "add") return kernels::PriorMode::kAdditive;
  throw std::invalid_argument("prior_mode must be 'mul' or 'add', got '" + prior + "'");
}

void soft_argmax_3d(const float* heatmaps, int64_t n, int64_t joints, int64_t depth, int64_t height,
                    int64_t width, kernels::SoftArgmaxMode mode, float* xyz, float* peak,
                    int num_threads) {
  require_positive(n, "heatmaps.shape[0] (batch)");
  require_positive(joints, "heatmaps.shape[1] (joints)");
  require_positive(depth, "heatmaps.shape[2] (depth)");
  require_positive(height, "heatmaps.shape[3] (height)");
  require_positive(width, "heatmaps.shape[4] (width)");
  const int64_t volume = checked_product({depth, height, width}, "heatmaps volume");
  checked_product({n, joints, volume}, "heatmaps");
  if (heatmaps == nullptr || xyz == nullptr || peak == nullptr) {
    throw std::invalid_argument("soft_argmax_3d: null buffer");
  }
  const kernels::SoftArgmax3dFn fn = kernels::active_kernels().softargmax3d[static_cast<int>(mode)];
  parallel_for(static_cast<size_t>(n * joints), num_threads, [&](size_t i) {
    fn(heatmaps + i * volume, depth, height, width, xyz + 3 * i, peak + i);
  });
}

void mqa_prior(const float* q, const float* k, const float* v, const float* prior, float prior_scale,
               kernels::PriorMode mode, int64_t batch, int64_t heads, int64_t tokens, int64_t dh,
               bool causal, float* out, int num_threads) {
  require_positive(batch, "q.shape[0] (batch)");
  require_positive(heads, "q.shape[1] (heads)");
  require_positive(tokens, "q.shape[2] (tokens)");
  require_positive(dh, "q.shape[3] (head dim)");
  checked_product({batch, heads, tokens, dh}, "q");
  checked_product({tokens, tokens}, "prior");
  if (q == nullptr || k == nullptr || v == nullptr || out == nullptr) {
    throw std::invalid_argument("mqa_prior: null buffer");
  }
  if (!std::isfinite(prior_scale)) {
    throw std::invalid_argument("prior_scale must be finite, got " + std::to_string(prior_scale));
  }
  const size_t rows = static_cast<size_t>(heads * tokens);
  const size_t n = static_cast<size_t>(tokens), d = static_cast<size_t>(dh);
  // F = 1 + s * prior (multiplicative) or s * prior (additive), once for all batch elements, in the
  // kernels' layout.
  // (Both buffers are kept per thread: at N = 81 building F took 10 us a call with fresh vectors and a
  // per-element check, a fifth of the attention itself at (1, 8, 81, 16).)
  thread_local std::vector<float> factor, factor_t;
  if (prior == nullptr) mode = kernels::PriorMode::kNone;
  if (mode != kernels::PriorMode::kNone) {
    if (factor.size() < n * n) factor.resize(n * n);
    const float base = mode == kernels::PriorMode::kMultiplicative ? 1.f : 0.f;
    // The factor is a parameter of the kernels, in float32: it must be finite there (a NaN or Inf
    // prior, or prior_scale * prior beyond FLT_MAX, is refused rather than turned into NaN rows). The
    // loop only ORs together whether each exponent field is all ones (it vectorises); the first bad
    // element is looked for only when there is one.
    uint32_t bad = 0;
    for (size_t i = 0; i < n * n; ++i) {
      const float f = base + prior_scale * prior[i];
      factor[i] = f;
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (bad != 0) {
      for (size_t i = 0; i < n * n; ++i) {
        if (!std::isfinite(factor[i])) {
          throw std::invalid_argument("prior and prior_scale * prior must be finite in float32: prior[" +
                                      std::to_string(i / n) + "][" + std::to_string(i % n) + "] = " +
                                      std::to_string(prior[i]) + ", prior_scale = " + std::to_string(prior_scale));
        }
      }
    }
    if (factor_t.size() < n * (n + kernels::kMqaFactorPad)) factor_t.resize(n * (n + kernels::kMqaFactorPad));
    kernels::mqa_factor_transpose(factor.data(), n, factor_t.data());
  }
  const kernels::MqaFn fn = kernels::active_kernels().mqa[static_cast<int>(mode)];
  // Tasks: (batch element, chunk of query rows). One chunk per batch element when single-threaded;
  // otherwise chunks of >= 16 rows (a multiple of every vector width) so that threads share out
  // even a single batch element.
  int threads = num_threads < 1 ? hardware_threads() : num_threads;
  // Below ~64k multiply-adds per thread a second thread costs more than it saves.
  const double macs = 2.0 * static_cast<double>(batch) * rows * n * d;
  if (macs < 65536.0 * threads) threads = 1;
  size_t chunk = rows;
  if (threads > 1 && static_cast<size_t>(batch) < static_cast<size_t>(threads) * 4) {
    const size_t want = static_cast<size_t>(threads) * 4 / static_cast<size_t>(batch);
    chunk = (rows + want - 1) / want;
    chunk = (chunk + 15) / 16 * 16;
  }
  const size_t chunks = (rows + chunk - 1) / chunk;
  const size_t scratch_floats = kernels::mqa_scratch_floats(n, d);
  const float* f = mode == kernels::PriorMode::kNone ? nullptr : factor_t.data();
  parallel_for(static_cast<size_t>(batch) * chunks, threads, [&](size_t task) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < scratch_floats) scratch.resize(scratch_floats);
    const size_t b = task / chunks, c = task % chunks;
    const size_t r0 = c * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
    fn(q + b * rows * d, k + b * n * d, v + b * n * d, f, n, d, r0, r1, causal, out + b * rows * d,
       scratch.data());
  });
}

}  // namespace mobpose
