#include <chrono>
#include <cstring>

#include "backend.h"

namespace mobpose_bench {
namespace {

class SpinBackend : public Backend {
 public:
  bool Init(const Params& params, std::string* error) override {
    ms_ = params.GetFloat("spin_ms");
    if (ms_ < 0) {
      *error = "--spin_ms must be >= 0";
      return false;
    }
    return true;
  }
  bool SetInputs(const std::vector<uint8_t>& bytes, uint64_t, std::string* error) override {
    if (!bytes.empty()) {
      *error = "the spin backend takes no input file";
      return false;
    }
    return true;
  }
  bool Run(std::string*) override {
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(ms_);
    volatile uint64_t x = 0;
    while (std::chrono::steady_clock::now() < until) x = x + 1;
    ++runs_;
    return true;
  }
  std::vector<uint8_t> Outputs() const override {
    std::vector<uint8_t> out(sizeof runs_);
    std::memcpy(out.data(), &runs_, sizeof runs_);
    return out;
  }
  std::string Describe() const override { return "spin " + std::to_string(ms_) + " ms"; }
  size_t InputBytes() const override { return 0; }

 private:
  double ms_ = 0;
  uint64_t runs_ = 0;
};

}  // namespace

std::unique_ptr<Backend> MakeSpinBackend() { return std::make_unique<SpinBackend>(); }

}  // namespace mobpose_bench
