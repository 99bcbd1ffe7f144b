// AVX2 + FMA kernels (compiled with -mavx2 -mfma; only called after the dispatch checked the CPU).
#include "vec_avx2.h"
#include "isa_kernels.h"
MOBPOSE_DEFINE_KERNEL_SET(VecAvx2, avx2, 8, 6, 16)
