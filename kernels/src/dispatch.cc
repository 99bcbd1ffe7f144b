// The one place that picks a kernel variant for the running CPU.
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "mobpose/kernels.h"
#include "mqa_impl.h"

namespace mobpose::kernels {

#if defined(MOBPOSE_HAVE_X86)
const KernelSet* avx2_kernel_set();
const KernelSet* avx512_kernel_set();
#endif
#if defined(MOBPOSE_HAVE_NEON)
const KernelSet* neon_kernel_set();
#endif

size_t mqa_scratch_floats(size_t n, size_t dh) { return (2 * dh + n) * kMqaMaxWidth; }

namespace {

const KernelSet kReference = {
    "reference",
    {&f64acc_softargmax3d_exact__ref, &f64acc_softargmax3d_taylor__ref,
     &f64acc_softargmax3d_taylorclamp__ref},
    {"f64acc_softargmax3d_exact__ref", "f64acc_softargmax3d_taylor__ref",
     "f64acc_softargmax3d_taylorclamp__ref"},
    {&f64acc_mqa_noprior__ref, &f64acc_mqa_mulprior__ref, &f64acc_mqa_addprior__ref},
    {"f64acc_mqa_noprior__ref", "f64acc_mqa_mulprior__ref", "f64acc_mqa_addprior__ref"},
    {&f64acc_mqarows_noprior__ref, &f64acc_mqarows_mulprior__ref, &f64acc_mqarows_addprior__ref},
    {"f64acc_mqarows_noprior__ref", "f64acc_mqarows_mulprior__ref", "f64acc_mqarows_addprior__ref"},
    &f64_exp__ref,
    "f64_exp__ref",
    &f64acc_linear__ref,
    "f64acc_linear__ref",
    &f64acc_layernorm__ref,
    "f64acc_layernorm__ref",
};

// Supported variants, reference first and best last.
std::vector<const KernelSet*> supported() {
  std::vector<const KernelSet*> out{&kReference};
#if defined(MOBPOSE_HAVE_X86)
  __builtin_cpu_init();
  // libgcc also checks that the OS saves the wider registers (XCR0) before reporting a feature.
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(avx2_kernel_set());
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) {
    out.push_back(avx512_kernel_set());
  }
#endif
#if defined(MOBPOSE_HAVE_NEON)
  out.push_back(neon_kernel_set());
#endif
  return out;
}

const std::vector<const KernelSet*>& variants() {
  static const std::vector<const KernelSet*> v = supported();
  return v;
}

const KernelSet* initial() {
  const char* env = std::getenv("MOBPOSE_KERNEL_VARIANT");
  if (env != nullptr && *env != '\0' && std::string(env) != "auto") {
    if (const KernelSet* s = find_variant(env)) return s;
  }
  return variants().back();
}

std::atomic<const KernelSet*>& active() {
  static std::atomic<const KernelSet*> a{initial()};
  return a;
}

}  // namespace

const KernelSet* find_variant(const std::string& name) {
  if (name == "auto") return variants().back();
  for (const KernelSet* s : variants()) {
    if (name == s->variant) return s;
  }
  return nullptr;
}

const KernelSet& active_kernels() { return *active().load(std::memory_order_acquire); }

std::vector<std::string> available_variants() {
  std::vector<std::string> names;
  for (const KernelSet* s : variants()) names.emplace_back(s->variant);
  return names;
}

bool set_variant(const std::string& name) {
  const KernelSet* s = find_variant(name);
  if (s == nullptr) return false;
  active().store(s, std::memory_order_release);
  return true;
}

}  // namespace mobpose::kernels
