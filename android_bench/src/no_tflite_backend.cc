// The build without the TFLite backend (-DANDROID_BENCH_TFLITE=OFF): the static aarch64 binary of the C++ core,
// which cannot dlopen (a fully static executable has no dynamic loader). --backend=tflite then says so.
#include "backend.h"

namespace mobpose_bench {
namespace {

class NoTfLiteBackend : public Backend {
 public:
  bool Init(const Params&, std::string* error) override {
    *error = "this android_bench was built without the TFLite backend (ANDROID_BENCH_TFLITE=OFF, the static "
             "C++-core build): use --backend=core or --backend=spin";
    return false;
  }
  bool SetInputs(const std::vector<uint8_t>&, uint64_t, std::string*) override { return false; }
  bool Run(std::string*) override { return false; }
  std::vector<uint8_t> Outputs() const override { return {}; }
  std::string Describe() const override { return "tflite (not built)"; }
  size_t InputBytes() const override { return 0; }
};

}  // namespace

std::unique_ptr<Backend> MakeTfLiteBackend() { return std::make_unique<NoTfLiteBackend>(); }

}  // namespace mobpose_bench
