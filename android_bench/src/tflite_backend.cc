// The TfLite C API backend. The library is loaded at run time (dlopen) from --tflite_lib, so that the same
// sources build for the host and for Android without TFLite's headers: on the host the PyPI wheel
// litert-lm-api's liblitert-lm.so exports the stable TfLite C API with the XNNPACK delegate; on a phone, the
// TFLite/LiteRT Android runtime's shared library (android_bench/README.md says which). Only the few functions used
// are declared here, with the C API's stable signatures; every one is looked up by name and a missing one is an
// error that names it.
#include <dlfcn.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "backend.h"

namespace mobpose_bench {
namespace {

// Opaque C API types.
struct TfLiteModel;
struct TfLiteInterpreterOptions;
struct TfLiteInterpreter;
struct TfLiteTensor;
struct TfLiteDelegate;

constexpr int kTfLiteOk = 0;
constexpr int kTfLiteFloat32 = 1;
constexpr int kTfLiteFloat16 = 10;

// TfLiteXNNPackDelegateOptions and TfLiteGpuDelegateOptionsV2 are returned by value from their *Default()
// functions. Both are well over 16 bytes in every TFLite of the last years, so both ABIs used here (x86-64
// System V, AArch64 AAPCS64) return them through a caller-provided buffer: a buffer larger than the real struct is
// safe, and only the leading members, stable since their first release, are touched.
struct XnnpackOptions {
  int32_t num_threads;  // first member since the delegate's first release
  unsigned char rest[508];
};
struct GpuOptionsV2 {
  int32_t is_precision_loss_allowed;
  int32_t inference_preference;
  int32_t inference_priority1;
  int32_t inference_priority2;
  int32_t inference_priority3;
  unsigned char rest[492];
};
constexpr int32_t kGpuPreferenceSustainedSpeed = 1;
constexpr int32_t kGpuPriorityAuto = 0;
constexpr int32_t kGpuPriorityMaxPrecision = 1;
constexpr int32_t kGpuPriorityMinLatency = 2;

using ErrorReporter = void (*)(void*, const char*, va_list);

struct Api {
  TfLiteModel* (*ModelCreateFromFile)(const char*);
  void (*ModelDelete)(TfLiteModel*);
  TfLiteInterpreterOptions* (*OptionsCreate)();
  void (*OptionsDelete)(TfLiteInterpreterOptions*);
  void (*OptionsSetNumThreads)(TfLiteInterpreterOptions*, int32_t);
  void (*OptionsAddDelegate)(TfLiteInterpreterOptions*, TfLiteDelegate*);
  void (*OptionsSetErrorReporter)(TfLiteInterpreterOptions*, ErrorReporter, void*);
  TfLiteInterpreter* (*InterpreterCreate)(const TfLiteModel*, const TfLiteInterpreterOptions*);
  void (*InterpreterDelete)(TfLiteInterpreter*);
  int (*AllocateTensors)(TfLiteInterpreter*);
  int (*Invoke)(TfLiteInterpreter*);
  int32_t (*InputCount)(const TfLiteInterpreter*);
  TfLiteTensor* (*Input)(const TfLiteInterpreter*, int32_t);
  int32_t (*OutputCount)(const TfLiteInterpreter*);
  const TfLiteTensor* (*Output)(const TfLiteInterpreter*, int32_t);
  int (*TensorType)(const TfLiteTensor*);
  size_t (*TensorByteSize)(const TfLiteTensor*);
  int32_t (*TensorNumDims)(const TfLiteTensor*);
  int32_t (*TensorDim)(const TfLiteTensor*, int32_t);
  const char* (*TensorName)(const TfLiteTensor*);
  int (*CopyFromBuffer)(TfLiteTensor*, const void*, size_t);
  int (*CopyToBuffer)(const TfLiteTensor*, void*, size_t);
};

void CollectError(void* user, const char* format, va_list args) {
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, format, args);
  auto* log = static_cast<std::string*>(user);
  if (!log->empty()) *log += "; ";
  *log += buf;
}

std::string DefaultLibrary() {
  if (const char* env = std::getenv("MOBPOSE_TFLITE_LIB")) return env;
#ifdef __ANDROID__
  return "libtensorflowlite_jni.so";
#else
  return "libtensorflowlite_c.so";
#endif
}

// One model of --graph (several, comma-separated, run one after the other per frame: the pipeline's IPEM then PRM).
struct Graph {
  std::string path;
  TfLiteModel* model = nullptr;
  TfLiteInterpreterOptions* options = nullptr;
  TfLiteInterpreter* interpreter = nullptr;
  TfLiteDelegate* delegate = nullptr;
};

class TfLiteBackend : public Backend {
 public:
  ~TfLiteBackend() override {
    for (Graph& g : graphs_) {
      if (g.interpreter) api_.InterpreterDelete(g.interpreter);
      if (g.options) api_.OptionsDelete(g.options);
      if (g.delegate && delete_delegate_) delete_delegate_(g.delegate);
      if (g.model) api_.ModelDelete(g.model);
    }
    if (gpu_handle_ && gpu_handle_ != handle_) dlclose(gpu_handle_);
    if (handle_) dlclose(handle_);
  }

  bool Init(const Params& params, std::string* error) override {
    graph_ = params.GetString("graph");
    if (graph_.empty()) {
      *error = "--graph is required with --backend=tflite (the .tflite model to time)";
      return false;
    }
    threads_ = static_cast<int>(params.GetInt("num_threads"));
    if (threads_ < 1) {
      *error = "--num_threads must be >= 1";
      return false;
    }
    delegate_name_ = params.GetString("delegate");
    precision_ = params.GetString("gpu_precision");
    if (delegate_name_ != "gpu" && delegate_name_ != "xnnpack" && delegate_name_ != "none") {
      *error = "--delegate must be gpu, xnnpack or none, got '" + delegate_name_ + "'";
      return false;
    }
    if (precision_ != "fp16" && precision_ != "f32") {
      *error = "--gpu_precision must be fp16 or f32, got '" + precision_ + "'";
      return false;
    }
    library_ = params.GetString("tflite_lib");
    if (library_.empty()) library_ = DefaultLibrary();
    handle_ = dlopen(library_.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) {
      const char* why = dlerror();
      *error = "cannot load the TfLite C API library '" + library_ + "' (--tflite_lib or $MOBPOSE_TFLITE_LIB): " +
               (why ? why : "unknown error");
      return false;
    }
    if (!LoadApi(error)) return false;
    size_t from = 0;
    while (from <= graph_.size()) {
      size_t comma = graph_.find(',', from);
      std::string path = graph_.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
      if (path.empty()) {
        *error = "--graph has an empty entry: '" + graph_ + "'";
        return false;
      }
      graphs_.push_back(Graph{path});
      if (!Build(graphs_.back(), params, error)) return false;
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
    return true;
  }

  bool Build(Graph& g, const Params& params, std::string* error) {
    g.model = api_.ModelCreateFromFile(g.path.c_str());
    if (!g.model) {
      *error = "cannot read the model '" + g.path + "' (missing, unreadable or not a TFLite flatbuffer)";
      return false;
    }
    g.options = api_.OptionsCreate();
    api_.OptionsSetNumThreads(g.options, threads_);
    api_.OptionsSetErrorReporter(g.options, CollectError, &log_);
    if (delegate_name_ != "none") {
      if (!MakeDelegate(params, &g.delegate, error)) return false;
      api_.OptionsAddDelegate(g.options, g.delegate);
    }
    g.interpreter = api_.InterpreterCreate(g.model, g.options);
    if (!g.interpreter) {
      *error = "the interpreter could not be built for '" + g.path + "' with --delegate=" + delegate_name_ +
               (log_.empty() ? "" : ": " + log_);
      return false;
    }
    if (api_.AllocateTensors(g.interpreter) != kTfLiteOk) {
      *error = "AllocateTensors failed for '" + g.path + "'" + (log_.empty() ? std::string() : ": " + log_);
      return false;
    }
    return true;
  }

  bool SetInputs(const std::vector<uint8_t>& bytes, uint64_t seed, std::string* error) override {
    size_t total = InputBytes();
    if (!bytes.empty() && bytes.size() != total) {
      *error = "the input file holds " + std::to_string(bytes.size()) + " bytes; the model's inputs take " +
               std::to_string(total) + " (" + InputShapes() + ")";
      return false;
    }
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    size_t offset = 0;
    for (const Graph& g : graphs_) {
      for (int32_t i = 0; i < api_.InputCount(g.interpreter); ++i) {
        TfLiteTensor* t = api_.Input(g.interpreter, i);
        size_t n = api_.TensorByteSize(t);
        std::vector<uint8_t> data(n);
        if (!bytes.empty()) {
          std::memcpy(data.data(), bytes.data() + offset, n);
        } else if (api_.TensorType(t) == kTfLiteFloat32) {
          for (size_t k = 0; k + 4 <= n; k += 4) {
            float v = unit(rng);
            std::memcpy(data.data() + k, &v, 4);
          }
        } else {
          for (auto& b : data) b = static_cast<uint8_t>(rng());
        }
        if (api_.CopyFromBuffer(t, data.data(), n) != kTfLiteOk) {
          *error = "could not write input tensor " + std::to_string(i);
          return false;
        }
        offset += n;
      }
    }
    return true;
  }

  bool Run(std::string* error) override {
    for (const Graph& g : graphs_) {
      if (api_.Invoke(g.interpreter) != kTfLiteOk) {
        *error = "Invoke failed for '" + g.path + "'" + (log_.empty() ? std::string() : ": " + log_);
        return false;
      }
    }
    return true;
  }

  std::vector<uint8_t> Outputs() const override {
    std::vector<uint8_t> out;
    for (const Graph& g : graphs_) {
      for (int32_t i = 0; i < api_.OutputCount(g.interpreter); ++i) {
        const TfLiteTensor* t = api_.Output(g.interpreter, i);
        size_t n = api_.TensorByteSize(t), at = out.size();
        out.resize(at + n);
        api_.CopyToBuffer(t, out.data() + at, n);
      }
    }
    return out;
  }

  std::string Describe() const override {
    std::string d = "tflite " + delegate_name_;
    if (graphs_.size() > 1) d += ", " + std::to_string(graphs_.size()) + " graphs in turn";
    if (delegate_name_ == "gpu") d += " " + precision_;
    return d + ", " + std::to_string(threads_) + " thread(s), inputs " + InputShapes();
  }

  size_t InputBytes() const override {
    size_t total = 0;
    for (const Graph& g : graphs_)
      for (int32_t i = 0; i < api_.InputCount(g.interpreter); ++i)
        total += api_.TensorByteSize(api_.Input(g.interpreter, i));
    return total;
  }

 private:
  template <typename F>
  bool Sym(void* handle, const char* name, F* out, std::string* error) {
    void* p = dlsym(handle, name);
    if (!p) {
      *error = std::string("the TfLite library lacks ") + name + " (is it the TfLite C API?)";
      return false;
    }
    *out = reinterpret_cast<F>(p);
    return true;
  }

  bool LoadApi(std::string* error) {
    return Sym(handle_, "TfLiteModelCreateFromFile", &api_.ModelCreateFromFile, error) &&
           Sym(handle_, "TfLiteModelDelete", &api_.ModelDelete, error) &&
           Sym(handle_, "TfLiteInterpreterOptionsCreate", &api_.OptionsCreate, error) &&
           Sym(handle_, "TfLiteInterpreterOptionsDelete", &api_.OptionsDelete, error) &&
           Sym(handle_, "TfLiteInterpreterOptionsSetNumThreads", &api_.OptionsSetNumThreads, error) &&
           Sym(handle_, "TfLiteInterpreterOptionsAddDelegate", &api_.OptionsAddDelegate, error) &&
           Sym(handle_, "TfLiteInterpreterOptionsSetErrorReporter", &api_.OptionsSetErrorReporter, error) &&
           Sym(handle_, "TfLiteInterpreterCreate", &api_.InterpreterCreate, error) &&
           Sym(handle_, "TfLiteInterpreterDelete", &api_.InterpreterDelete, error) &&
           Sym(handle_, "TfLiteInterpreterAllocateTensors", &api_.AllocateTensors, error) &&
           Sym(handle_, "TfLiteInterpreterInvoke", &api_.Invoke, error) &&
           Sym(handle_, "TfLiteInterpreterGetInputTensorCount", &api_.InputCount, error) &&
           Sym(handle_, "TfLiteInterpreterGetInputTensor", &api_.Input, error) &&
           Sym(handle_, "TfLiteInterpreterGetOutputTensorCount", &api_.OutputCount, error) &&
           Sym(handle_, "TfLiteInterpreterGetOutputTensor", &api_.Output, error) &&
           Sym(handle_, "TfLiteTensorType", &api_.TensorType, error) &&
           Sym(handle_, "TfLiteTensorByteSize", &api_.TensorByteSize, error) &&
           Sym(handle_, "TfLiteTensorNumDims", &api_.TensorNumDims, error) &&
           Sym(handle_, "TfLiteTensorDim", &api_.TensorDim, error) &&
           Sym(handle_, "TfLiteTensorName", &api_.TensorName, error) &&
           Sym(handle_, "TfLiteTensorCopyFromBuffer", &api_.CopyFromBuffer, error) &&
           Sym(handle_, "TfLiteTensorCopyToBuffer", &api_.CopyToBuffer, error);
  }

  bool MakeDelegate(const Params& params, TfLiteDelegate** delegate, std::string* error) {
    if (delegate_name_ == "xnnpack") {
      XnnpackOptions (*defaults)() = nullptr;
      TfLiteDelegate* (*create)(const XnnpackOptions*) = nullptr;
      if (!Sym(handle_, "TfLiteXNNPackDelegateOptionsDefault", &defaults, error) ||
          !Sym(handle_, "TfLiteXNNPackDelegateCreate", &create, error) ||
          !Sym(handle_, "TfLiteXNNPackDelegateDelete", &delete_delegate_, error))
        return false;
      XnnpackOptions opts = defaults();
      opts.num_threads = threads_ > 1 ? threads_ : 0;  // 0: no thread pool (TFLite's own choice for one thread)
      *delegate = create(&opts);
      if (!*delegate) {
        *error = "TfLiteXNNPackDelegateCreate failed";
        return false;
      }
      return true;
    }
    std::string lib = params.GetString("gpu_delegate_lib");
    if (!gpu_handle_) gpu_handle_ = lib.empty() ? handle_ : dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!gpu_handle_) {
      const char* why = dlerror();
      *error = "cannot load the GPU delegate library '" + lib + "': " + (why ? why : "unknown error");
      return false;
    }
    GpuOptionsV2 (*defaults)() = nullptr;
    TfLiteDelegate* (*create)(const GpuOptionsV2*) = nullptr;
    if (!Sym(gpu_handle_, "TfLiteGpuDelegateOptionsV2Default", &defaults, error) ||
        !Sym(gpu_handle_, "TfLiteGpuDelegateV2Create", &create, error) ||
        !Sym(gpu_handle_, "TfLiteGpuDelegateV2Delete", &delete_delegate_, error)) {
      *error += " (--delegate=gpu needs the TFLite GPU delegate: --gpu_delegate_lib)";
      return false;
    }
    GpuOptionsV2 opts = defaults();
    opts.inference_preference = kGpuPreferenceSustainedSpeed;  // the same delegate runs every frame
    if (precision_ == "fp16") {
      opts.is_precision_loss_allowed = 1;
      opts.inference_priority1 = kGpuPriorityMinLatency;
    } else {
      opts.is_precision_loss_allowed = 0;
      opts.inference_priority1 = kGpuPriorityMaxPrecision;
    }
    opts.inference_priority2 = kGpuPriorityAuto;
    opts.inference_priority3 = kGpuPriorityAuto;
    *delegate = create(&opts);
    if (!*delegate) {
      *error = "TfLiteGpuDelegateV2Create failed (no GPU, or no OpenCL/OpenGL ES driver)";
      return false;
    }
    return true;
  }

  std::string InputShapes() const {
    std::string s;
    for (const Graph& g : graphs_) {
      for (int32_t i = 0; i < api_.InputCount(g.interpreter); ++i) {
        const TfLiteTensor* t = api_.Input(g.interpreter, i);
        if (!s.empty()) s += ", ";
        s += "[";
        for (int32_t d = 0; d < api_.TensorNumDims(t); ++d) s += (d ? "x" : "") + std::to_string(api_.TensorDim(t, d));
        s += api_.TensorType(t) == kTfLiteFloat32 ? "] f32" : api_.TensorType(t) == kTfLiteFloat16 ? "] f16" : "]";
      }
    }
    return s;
  }

  Api api_{};
  void* handle_ = nullptr;
  void* gpu_handle_ = nullptr;
  std::vector<Graph> graphs_;
  void (*delete_delegate_)(TfLiteDelegate*) = nullptr;
  std::string graph_, library_, delegate_name_, precision_, log_;
  int threads_ = 1;
};

}  // namespace

std::unique_ptr<Backend> MakeTfLiteBackend() { return std::make_unique<TfLiteBackend>(); }

}  // namespace mobpose_bench
