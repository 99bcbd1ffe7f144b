// Defines one ISA's KernelSet from the templates. Included once by each isa_*.cc, after its vec_*.h.
// MOBPOSE_DEFINE_KERNEL_SET(Vec, isa, unroll, rows, cols) gives `const KernelSet* isa_kernel_set()`,
// with kernels named f32_softargmax3d_<mode>__<isa>_u<unroll> and f32_mqa_<prior>__<isa>_u<unroll> (a
// vector of query rows a tile), f32_mqarows_<prior>__<isa>_u<unroll> (the same in the PRM's token
// layout), f32_linear__<isa>_<rows>x<cols> (a register tile of rows x cols
// outputs, cols = two vectors) and f32_layernorm__<isa>.
#pragma once

#include "mobpose/kernels.h"
#include "linear_impl.h"
#include "mqa_impl.h"
#include "softargmax_impl.h"

#define MOBPOSE_STR2(x) #x
#define MOBPOSE_STR(x) MOBPOSE_STR2(x)

#define MOBPOSE_DEFINE_KERNEL_SET(VEC, ISA, UNROLL, LROWS, LCOLS)                                     \
  namespace mobpose::kernels {                                                                       \
  static void f32_vexp__##ISA(const float* x, float* y, size_t n) {                                 \
    size_t i = 0;                                                                                    \
    for (; i + VEC::kWidth <= n; i += VEC::kWidth) VEC::store(y + i, vexp<VEC>(VEC::load(x + i)));   \
    if (i < n) VEC::store_tail(y + i, vexp<VEC>(VEC::load_tail(x + i, n - i)), n - i);               \
  }                                                                                                  \
  static_assert(LCOLS == 2 * VEC::kWidth, "the linear tile is two vectors wide");                  \
  const KernelSet* ISA##_kernel_set() {                                                              \
    static const KernelSet set = {                                                                   \
        MOBPOSE_STR(ISA),                                                                            \
        {&softargmax3d<VEC, SoftArgmaxMode::kExact>, &softargmax3d<VEC, SoftArgmaxMode::kTaylor>,    \
         &softargmax3d<VEC, SoftArgmaxMode::kTaylorClamped>},                                        \
        {"f32_softargmax3d_exact__" MOBPOSE_STR(ISA) "_u" MOBPOSE_STR(UNROLL),                       \
         "f32_softargmax3d_taylor__" MOBPOSE_STR(ISA) "_u" MOBPOSE_STR(UNROLL),                      \
         "f32_softargmax3d_taylorclamp__" MOBPOSE_STR(ISA) "_u" MOBPOSE_STR(UNROLL)},                \
        {&mqa<VEC, PriorMode::kNone>, &mqa<VEC, PriorMode::kMultiplicative>,                         \
         &mqa<VEC, PriorMode::kAdditive>},                                                           \
        {"f32_mqa_noprior__" MOBPOSE_STR(ISA) "_u" MOBPOSE_STR(UNROLL), "f32_mqa_mulprior__" MOBPOSE_STR(ISA) "_u" MOBPOSE_STR(UNROLL),    \
         "f32_mqa_addprior__" MOBPOSE_STR(ISA) "_u" MOBPOSE_STR(UNROLL)},                                               \
        {&mqa_rows<VEC, PriorMode::kNone>, &mqa_rows<VEC, PriorMode::kMultiplicative>,               \
         &mqa_rows<VEC, PriorMode::kAdditive>},                                                      \
        {"f32_mqarows_noprior__" MOBPOSE_STR(ISA) "_u" MOBPOSE_STR(UNROLL),                          \
         "f32_mqarows_mulprior__" MOBPOSE_STR(ISA) "_u" MOBPOSE_STR(UNROLL),                         \
         "f32_mqarows_addprior__" MOBPOSE_STR(ISA) "_u" MOBPOSE_STR(UNROLL)},                        \
        &f32_vexp__##ISA,                                                                            \
        "f32_vexp__" MOBPOSE_STR(ISA),                                                               \
        &linear<VEC, LROWS>,                                                                         \
        "f32_linear__" MOBPOSE_STR(ISA) "_" MOBPOSE_STR(LROWS) "x" MOBPOSE_STR(LCOLS),               \
        &layernorm<VEC>,                                                                             \
        "f32_layernorm__" MOBPOSE_STR(ISA),                                                          \
    };                                                                                               \
    return &set;                                                                                     \
  }                                                                                                  \
  }
