// AVX-512 kernels (compiled with -mavx512f -mavx512dq; only called after the dispatch checked the CPU).
#include "vec_avx512.h"
#include "isa_kernels.h"
MOBPOSE_DEFINE_KERNEL_SET(VecAvx512, avx512, 16, 12, 32)
