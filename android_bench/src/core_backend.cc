// The C++ core as a backend: the same static libraries as the Python extension (kernels/, cpp/), timed by the
// same harness. --core picks the work of one "inference":
//   softargmax  the Taylor soft-argmax of random heatmaps [1][joints][depth][height][width] (--core_shape
//               JxDxHxW, --softargmax_mode)
//   mqa         multi-query attention with the skeleton prior (--core_shape BxHxNxD, --prior, --causal)
//   prm         the native PRM's streaming step on one frame (--graph: a PRM .safetensors, its config read
//               from the file's metadata)
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <stdexcept>

#include "backend.h"
#include "mobpose/ops.h"
#include "mobpose/prm.h"
#include "mobpose/safetensors.h"

namespace mobpose_bench {
namespace {

std::vector<int64_t> ParseShape(const std::string& text, size_t rank, const std::string& flag) {
  std::vector<int64_t> dims;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, 'x')) {
    char* end = nullptr;
    long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || v < 1) throw std::invalid_argument(flag + " wants positive sizes AxBx..., got '" + text + "'");
    dims.push_back(v);
  }
  if (dims.size() != rank)
    throw std::invalid_argument(flag + " wants " + std::to_string(rank) + " sizes, got '" + text + "'");
  return dims;
}

class CoreBackend : public Backend {
 public:
  bool Init(const Params& params, std::string* error) override {
    try {
      what_ = params.GetString("core");
      threads_ = static_cast<int>(params.GetInt("num_threads"));
      if (threads_ < 1) throw std::invalid_argument("--num_threads must be >= 1");
      if (what_ == "softargmax") {
        auto d = ParseShape(params.GetString("core_shape").empty() ? "18x32x32x32" : params.GetString("core_shape"),
                            4, "--core_shape");
        shape_ = d;
        mode_ = mobpose::parse_softargmax_mode(params.GetString("softargmax_mode"));
        input_.resize(static_cast<size_t>(d[0] * d[1] * d[2] * d[3]));
        output_.resize(static_cast<size_t>(d[0] * 4));  // xyz + peak
      } else if (what_ == "mqa") {
        auto d = ParseShape(params.GetString("core_shape").empty() ? "1x8x81x16" : params.GetString("core_shape"),
                            4, "--core_shape");
        shape_ = d;
        prior_mode_ = mobpose::parse_prior_mode(params.GetString("prior"));
        causal_ = params.GetBool("causal");
        const int64_t b = d[0], h = d[1], n = d[2], dh = d[3];
        input_.resize(static_cast<size_t>(b * h * n * dh + 2 * b * n * dh));
        prior_.assign(static_cast<size_t>(n * n), 0.0f);
        for (int64_t i = 0; i + 1 < n; ++i) prior_[i * n + i + 1] = prior_[(i + 1) * n + i] = 1.0f;  // a chain
        output_.resize(static_cast<size_t>(b * h * n * dh));
      } else if (what_ == "prm") {
        const std::string& path = params.GetString("graph");
        if (path.empty()) throw std::invalid_argument("--core=prm needs --graph=PRM.safetensors");
        mobpose::SafetensorsFile file(path);
        auto it = file.metadata().find("config");
        if (it == file.metadata().end()) throw std::runtime_error(path + " has no PRM config in its metadata");
        const auto c = mobpose::json_scalars(it->second, path + " (metadata 'config')");
        auto field = [&](const char* key) -> const std::string& {
          auto f = c.find(key);
          if (f == c.end()) throw std::runtime_error("the PRM config of " + path + " lacks '" + key + "'");
          return f->second;
        };
        mobpose::PRMNativeConfig cfg;
        cfg.num_joints = std::stoll(field("num_joints"));
        cfg.num_frames = std::stoll(field("num_frames"));
        cfg.dim = std::stoll(field("dim"));
        cfg.heads = std::stoll(field("heads"));
        cfg.blocks = field("blocks");
        cfg.mlp_ratio = std::stod(field("mlp_ratio"));
        cfg.prior = field("prior");
        cfg.lam = std::stod(field("lam"));
        cfg.learn_adj = field("learn_adj") == "true";
        cfg.causal = field("causal") == "true";
        cfg.input_scale = std::stod(field("input_scale"));
        if (!cfg.causal) throw std::invalid_argument(path + " is a centred PRM: the streaming step needs a causal one");
        auto kind = file.metadata().find("kind");
        std::string prefix = kind != file.metadata().end() && kind->second == "training" ? "model." : "";
        prm_ = std::make_unique<mobpose::PRMNative>(path, cfg, prefix, threads_);
        shape_ = {cfg.num_joints, 3};
        input_.resize(static_cast<size_t>(cfg.num_joints * 3));
        output_.resize(input_.size());
      } else {
        throw std::invalid_argument("--core must be softargmax, mqa or prm, got '" + what_ + "'");
      }
    } catch (const std::exception& e) {
      *error = e.what();
      return false;
    }
    return true;
  }

  bool SetInputs(const std::vector<uint8_t>& bytes, uint64_t seed, std::string* error) override {
    if (!bytes.empty()) {
      if (bytes.size() != input_.size() * sizeof(float)) {
        *error = "the input file holds " + std::to_string(bytes.size()) + " bytes; --core=" + what_ + " takes " +
                 std::to_string(input_.size() * sizeof(float));
        return false;
      }
      std::memcpy(input_.data(), bytes.data(), bytes.size());
      return true;
    }
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, what_ == "prm" ? 300.0f : 3.0f);  // a pose in mm, or logits
    for (float& v : input_) v = normal(rng);
    return true;
  }

  bool Run(std::string* error) override {
    try {
      if (what_ == "softargmax") {
        const int64_t j = shape_[0];
        mobpose::soft_argmax_3d(input_.data(), 1, j, shape_[1], shape_[2], shape_[3], mode_, output_.data(),
                                output_.data() + 3 * j, threads_);
      } else if (what_ == "mqa") {
        const int64_t b = shape_[0], h = shape_[1], n = shape_[2], dh = shape_[3];
        const float* q = input_.data();
        const float* k = q + b * h * n * dh;
        const float* v = k + b * n * dh;
        mobpose::mqa_prior(q, k, v, prior_mode_ == mobpose::kernels::PriorMode::kNone ? nullptr : prior_.data(),
                           0.5f, prior_mode_, b, h, n, dh, causal_, output_.data(), threads_);
      } else {
        prm_->step(input_.data(), shape_[0], 3, output_.data());
      }
    } catch (const std::exception& e) {
      *error = e.what();
      return false;
    }
    return true;
  }

  std::vector<uint8_t> Outputs() const override {
    std::vector<uint8_t> out(output_.size() * sizeof(float));
    std::memcpy(out.data(), output_.data(), out.size());
    return out;
  }

  std::string Describe() const override {
    std::string s = "core " + what_ + " [";
    for (size_t i = 0; i < shape_.size(); ++i) s += (i ? "x" : "") + std::to_string(shape_[i]);
    s += "], " + std::to_string(threads_) + " thread(s)";
    if (prm_) s += ", kernel " + std::string(prm_->kernel_name());
    return s;
  }

  size_t InputBytes() const override { return input_.size() * sizeof(float); }

 private:
  std::string what_;
  int threads_ = 1;
  std::vector<int64_t> shape_;
  mobpose::kernels::SoftArgmaxMode mode_{};
  mobpose::kernels::PriorMode prior_mode_{};
  bool causal_ = false;
  std::vector<float> input_, output_, prior_;
  std::unique_ptr<mobpose::PRMNative> prm_;
};

}  // namespace

std::unique_ptr<Backend> MakeCoreBackend() { return std::make_unique<CoreBackend>(); }

}  // namespace mobpose_bench
