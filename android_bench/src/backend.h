// What the harness times: one class per runtime. The harness owns the clock; a backend only loads, fills its
// inputs and runs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "params.h"

namespace mobpose_bench {

class Backend {
 public:
  virtual ~Backend() = default;
  // Loads the model and prepares it to run (delegates, tensors). Returns false with `error` set on failure.
  virtual bool Init(const Params& params, std::string* error) = 0;
  // Fills the inputs: from `bytes` (all input tensors' bytes, in order; must match their total size) or, when
  // `bytes` is empty, with random values from `seed`. Returns false with `error` set on a size mismatch.
  virtual bool SetInputs(const std::vector<uint8_t>& bytes, uint64_t seed, std::string* error) = 0;
  // One inference. Returns false with `error` set on failure.
  virtual bool Run(std::string* error) = 0;
  // The output tensors' bytes, in order (after a Run).
  virtual std::vector<uint8_t> Outputs() const = 0;
  // A short description for the report ("tflite xnnpack 1 thread", ...).
  virtual std::string Describe() const = 0;
  // Input tensors' total size in bytes (0 when the backend has none).
  virtual size_t InputBytes() const = 0;
};

// A busy loop of --spin_ms milliseconds per Run (no model): a workload of known length, to check the pacing.
std::unique_ptr<Backend> MakeSpinBackend();
// The TfLite C API, loaded at run time from --tflite_lib (see tflite_backend.cc).
std::unique_ptr<Backend> MakeTfLiteBackend();
// The C++ core (kernels/, cpp/): --core=softargmax|mqa|prm (see core_backend.cc).
std::unique_ptr<Backend> MakeCoreBackend();
// By --backend; nullptr with `error` set for an unknown name.
std::unique_ptr<Backend> MakeBackend(const std::string& name, std::string* error);

}  // namespace mobpose_bench
