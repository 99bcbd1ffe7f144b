// Shape-checked operators over the kernels, with threading. No Python in here: the bindings
// (cpp/python/core_module.cc) and the native harnesses call these.
//
// Every function throws std::invalid_argument with a message that names the offending argument.
#pragma once

#include <cstdint>
#include <string>

#include "mobpose/kernels.h"

namespace mobpose {

// "exact" | "taylor" | "taylor_clamped"; throws on anything else.
kernels::SoftArgmaxMode parse_softargmax_mode(const std::string& mode);
// "mul" (multiplicative, the poster's form) | "add"; throws on anything else.
kernels::PriorMode parse_prior_mode(const std::string& prior);

// Soft-argmax of heatmaps [n][joints][depth][height][width] into xyz [n][joints][3] (x = width index,
// y = height index, z = depth index, in heatmap units) and peak [n][joints] (max probability).
// Joints are spread over num_threads threads (< 1: all hardware threads).
void soft_argmax_3d(const float* heatmaps, int64_t n, int64_t joints, int64_t depth, int64_t height,
                    int64_t width, kernels::SoftArgmaxMode mode, float* xyz, float* peak,
                    int num_threads);

// Multi-query attention with a structural prior.
//   q [batch][heads][tokens][dh], k and v [batch][tokens][dh], prior [tokens][tokens] or null,
//   out [batch][heads][tokens][dh].
// logits = q k^T / sqrt(dh); multiplicative: logits * (1 + prior_scale * prior); additive:
// logits + prior_scale * prior; causal: token i attends to tokens j <= i; softmax over j; out = p v.
// prior_scale is lambda * a, prior is Adj1 + Adj2 (the caller adds them); the factor 1 + prior_scale * prior
// (or prior_scale * prior) must be finite in float32, else std::invalid_argument. NaN / Inf in q, k, v
// follow the kernels' semantics (README "Kernels at the extremes of float32").
void mqa_prior(const float* q, const float* k, const float* v, const float* prior, float prior_scale,
               kernels::PriorMode mode, int64_t batch, int64_t heads, int64_t tokens, int64_t dh,
               bool causal, float* out, int num_threads);

}  // namespace mobpose
