// The PRM (python/mobpose/models/prm.py) in C++: the same maths as PRM.forward on a batch of one,
// from the weights of a .safetensors file, and a streaming step for causal models.
//
// Dimensions: T frames, J joints, C channels, H heads, d = C / H head width, R = T * J tokens.
// Poses are root-relative camera-space millimetres.
//
// Forward pass over a window (T, J, 3):
//   x = embed(poses * input_scale) + joint_pos[j] + frame_pos[t]           (R, C), tokens frame-major
//   per block, 's' (attention over the J joints of each frame) or 't' (over the T frames of each
//   joint, causal or centred):
//     x += proj(MQA(q(LN1(x)), kv(LN1(x)), prior));   x += fc2(GELU_tanh(fc1(LN2(x))))
//   out = poses + head(LN(x)) / input_scale
// with MQA the multi-query attention of kernels.h (mqa_rows: read in place in the token layout) and
// the prior factor of each block precomputed at load: F = 1 + lam * a * (Adj1 + 0.5 (Adj2 + Adj2^T)) ('mul') or lam * a * (...) ('add'), as
// MQAPrior.prior_matrix and forward make it.
//
// Linear layers and LayerNorm run on the dispatched kernels (kernels.h: linear with a fused GELU or
// residual epilogue over weights packed once at load), attention on the MQA kernel of the same
// variant; all work buffers are allocated at construction, so forward() and step() never allocate.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "mobpose/kernels.h"

namespace mobpose {

// The PRM hyperparameters that shape the computation (PRMConfig in python/mobpose/models/prm.py;
// dropout is inert at inference and the skeleton's parents are read from the file as adj_fixed).
struct PRMNativeConfig {
  int64_t num_joints = 17;
  int64_t num_frames = 27;
  int64_t dim = 64;
  int64_t heads = 4;
  std::string blocks = "stststst";  // 's' spatial, 't' temporal, in order
  double mlp_ratio = 2.0;           // hidden width int(dim * mlp_ratio), as Python's int()
  std::string prior = "mul";        // 'mul' | 'add' | 'none'
  double lam = 1.0;
  bool learn_adj = true;
  bool causal = true;
  double input_scale = 1e-3;  // mm -> network units
};

class PRMNative {
 public:
  // Reads every weight of `path` under the PyTorch state_dict names, prefixed by `prefix` ("" for a
  // weights file, "model." for a training checkpoint), and checks every shape against `config`.
  // Tensors under the prefix that the model does not have are an error too (as a strict
  // load_state_dict). num_threads: threads of forward()/step() (< 1: all hardware threads).
  // Throws std::invalid_argument for a bad config, std::runtime_error (naming the file and the
  // tensor) for a missing, misshapen, unexpected or non-float tensor and for unreadable files.
  PRMNative(const std::string& path, const PRMNativeConfig& config, const std::string& prefix = "",
            int num_threads = 1);

  const PRMNativeConfig& config() const { return cfg_; }
  // Name of the linear kernel in use (the kernel variant is fixed at construction).
  const char* kernel_name() const { return kernels_->linear_name; }

  // Refines one window: window [frames][joints][coords] float32 mm -> out, the same shape.
  // The sizes are checked against the config (frames = T, joints = J, coords = 3); a non-finite value
  // throws. Does not touch the streaming state. Throws std::invalid_argument naming `window`.
  void forward(const float* window, int64_t frames, int64_t joints, int64_t coords, float* out);
  // forward() on each of `batch` windows [batch][T][J][3] (-> out of the same shape).
  void forward_batch(const float* windows, int64_t batch, int64_t frames, int64_t joints, int64_t coords,
                     float* out);

  // Streaming (causal models only): feeds the newest frame's pose [joints][coords] and writes the
  // refined newest frame [J][3], equal to forward() on the window of the last T poses at its last
  // position. Until T frames have arrived the window is filled by repeating the stream's first pose at
  // the front (the clip edge of refine_clip). Throws std::logic_error for a centred model (its output
  // for a frame depends on later frames) and std::invalid_argument naming `pose` for a wrong shape or
  // a non-finite value (the stream is then left unchanged).
  void step(const float* pose, int64_t joints, int64_t coords, float* out);
  // Starts a new stream: the next step() is its first frame.
  void reset();
  // Frames fed since the last reset().
  int64_t frames_seen() const { return seen_; }

 private:
  struct Block {
    bool spatial = true;
    kernels::PriorMode mode = kernels::PriorMode::kNone;
    std::vector<float> factor_r;  // prior factor per row, kernels::mqa_rows_factor (empty without a prior)
    std::vector<float> ln1_g, ln1_b, ln2_g, ln2_b;
    std::vector<float> wq, wkv, wproj, w1, w2;  // packed (kernels::linear_pack), bias included
  };
  // Rows needed per block: the block reads frames [first_in, T) and its output is used for frames
  // [first_out, T) only (see plan_step in prm.cc).
  struct Span {
    int64_t first_in = 0, first_out = 0;
  };

  // Throws std::invalid_argument naming `name` and the index ([t, j, c] or [j, c]) of a NaN or Inf.
  void check_finite(const float* x, int64_t count, const char* name, bool frames) const;
  void embed_frame(const float* pose, float* dst) const;  // (J, 3) -> (J, C) without frame_pos
  void run(const std::vector<Span>& plan);                // blocks over x_, then LN + head rows
  void run_block(const Block& b, const Span& s);
  void attention(const Block& b, const Span& s);
  void head(int64_t first_frame, const float* poses, float* out);  // rows of frames [first, T)
  template <class F>
  void parallel(size_t count, size_t grain, const F& fn);  // fn(begin, end) over chunks of [0, count)

  PRMNativeConfig cfg_;
  const kernels::KernelSet* kernels_;
  int threads_ = 1;
  size_t T_, J_, C_, H_, d_, hidden_, R_;
  float input_scale_f_;

  std::vector<float> embed_w_, embed_b_, joint_pos_, frame_pos_, norm_g_, norm_b_, head_w_, head_b_;
  std::vector<Block> blocks_;
  std::vector<Span> plan_full_, plan_step_;

  // Work buffers, allocated once: the residual stream x, LayerNorm outputs xn, queries q, keys and
  // values kv (R rows each); the attention output o shares xn's memory; hid holds a chunk of MLP hidden
  // rows per thread (and the head's outputs).
  std::vector<float> x_, xn_, q_, kv_, hid_;
  float* o_ = nullptr;
  // Attention kernel scratch, one per thread.
  size_t att_stride_ = 0;
  std::vector<float> att_;

  // Streaming state: the embedded frames (without frame_pos) of the last T poses in a ring, and the
  // newest pose (for the residual). Memory is bounded by T whatever the stream's length.
  std::vector<float> ring_;  // [T][J][C]
  std::vector<float> newest_;  // [J][3]
  size_t ring_head_ = 0;     // slot of the newest frame
  int64_t seen_ = 0;

  std::mutex mutex_;  // one call at a time: the work buffers and the stream are shared
};

}  // namespace mobpose
