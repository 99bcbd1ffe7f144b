// NEON kernels (AArch64: Advanced SIMD is always present).
#include "vec_neon.h"
#include "isa_kernels.h"
MOBPOSE_DEFINE_KERNEL_SET(VecNeon, neon, 4, 8, 8)
