#include "mobpose/prm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>

#include "mobpose/safetensors.h"
#include "mobpose/thread_pool.h"

namespace mobpose {
namespace {

constexpr float kLayerNormEps = 1e-5f;  // nn.LayerNorm's default
constexpr int64_t kMaxSize = 1 << 14;   // bound on J, T, C, H: no absurd allocation from a bad config
constexpr size_t kGemmGrain = 48;       // rows per thread at least (a few register tiles)
constexpr size_t kChunk = 48;           // rows per chunk of the row-local layers (a multiple of the tiles)

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("PRMNative config: " + what);
}

std::string dims(int64_t a, int64_t b, int64_t c) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ")";
}

}  // namespace

PRMNative::PRMNative(const std::string& path, const PRMNativeConfig& config, const std::string& prefix,
                     int num_threads)
    : cfg_(config), kernels_(&kernels::active_kernels()) {
  const PRMNativeConfig& c = cfg_;
  require(c.num_joints >= 1 && c.num_joints <= kMaxSize, "num_joints must be in 1.." + std::to_string(kMaxSize) +
                                                             ", got " + std::to_string(c.num_joints));
  require(c.num_frames >= 1 && c.num_frames <= kMaxSize, "num_frames must be in 1.." + std::to_string(kMaxSize) +
                                                             ", got " + std::to_string(c.num_frames));
  require(c.dim >= 1 && c.dim <= kMaxSize, "dim must be in 1.." + std::to_string(kMaxSize) + ", got " +
                                               std::to_string(c.dim));
  require(c.heads >= 1 && c.dim % c.heads == 0,
          "dim " + std::to_string(c.dim) + " must be divisible by heads " + std::to_string(c.heads));
  require(!c.blocks.empty() && c.blocks.find_first_not_of("st") == std::string::npos,
          "blocks must be a non-empty string of 's' and 't', got '" + c.blocks + "'");
  require(std::isfinite(c.mlp_ratio) && c.mlp_ratio > 0 && c.mlp_ratio * c.dim <= kMaxSize,
          "mlp_ratio must be positive and finite, got " + std::to_string(c.mlp_ratio));
  require(c.prior == "mul" || c.prior == "add" || c.prior == "none",
          "prior must be 'mul', 'add' or 'none', got '" + c.prior + "'");
  require(std::isfinite(c.lam), "lam must be finite");
  require(std::isfinite(c.input_scale) && c.input_scale != 0.0 && std::isfinite(static_cast<float>(c.input_scale)) &&
              static_cast<float>(c.input_scale) != 0.f,
          "input_scale must be finite and non-zero in float32, got " + std::to_string(c.input_scale));
  threads_ = num_threads < 1 ? hardware_threads() : num_threads;
  T_ = static_cast<size_t>(c.num_frames);
  J_ = static_cast<size_t>(c.num_joints);
  C_ = static_cast<size_t>(c.dim);
  H_ = static_cast<size_t>(c.heads);
  d_ = C_ / H_;
  hidden_ = static_cast<size_t>(static_cast<double>(c.dim) * c.mlp_ratio);  // Python's int(dim * ratio)
  require(hidden_ >= 1, "int(dim * mlp_ratio) must be >= 1");
  R_ = T_ * J_;
  input_scale_f_ = static_cast<float>(c.input_scale);

  // ---- Weights, by state_dict name, every shape checked ----
  const SafetensorsFile file(path);
  std::set<std::string> expected;
  auto read = [&](const std::string& name, std::vector<int64_t> shape) {
    expected.insert(prefix + name);
    return file.read_floats(prefix + name, shape);
  };
  const int64_t C = c.dim, d = c.dim / c.heads, hid = static_cast<int64_t>(hidden_);
  auto pack = [&](const std::string& name, int64_t out, int64_t in) {
    const std::vector<float> w = read(name + ".weight", {out, in});
    const std::vector<float> b = read(name + ".bias", {out});
    std::vector<float> packed(kernels::linear_packed_floats(out, in));
    kernels::linear_pack(w.data(), b.data(), out, in, packed.data());
    return packed;
  };
  // Embedding weight transposed to [3][C], so that a pose's C outputs are three contiguous FMAs.
  const std::vector<float> ew = read("embed.weight", {C, 3});
  embed_w_.resize(3 * C_);
  for (size_t ch = 0; ch < C_; ++ch) {
    for (size_t k = 0; k < 3; ++k) embed_w_[k * C_ + ch] = ew[ch * 3 + k];
  }
  embed_b_ = read("embed.bias", {C});
  joint_pos_ = read("joint_pos", {c.num_joints, C});
  frame_pos_ = read("frame_pos", {c.num_frames, C});
  const bool has_prior = c.prior != "none";
  const bool has_adj2 = has_prior && c.learn_adj;
  const float lam = static_cast<float>(c.lam);
  for (size_t i = 0; i < c.blocks.size(); ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    Block b;
    b.spatial = c.blocks[i] == 's';
    b.ln1_g = read(p + "norm1.weight", {C});
    b.ln1_b = read(p + "norm1.bias", {C});
    b.ln2_g = read(p + "norm2.weight", {C});
    b.ln2_b = read(p + "norm2.bias", {C});
    b.wq = pack(p + "attn.q", C, C);
    b.wkv = pack(p + "attn.kv", 2 * d, C);
    b.wproj = pack(p + "attn.proj", C, C);
    b.w1 = pack(p + "mlp.fc1", hid, C);
    b.w2 = pack(p + "mlp.fc2", C, hid);
    const int64_t n = b.spatial ? c.num_joints : c.num_frames;
    // The buffer adj_fixed is in every file (persistent), also without a prior; it is unused then.
    const std::vector<float> adj1 = read(p + "attn.adj_fixed", {n, n});
    if (has_prior) {
      // MQAPrior.prior_matrix: Adj1 + 0.5 * (Adj2 + Adj2^T); forward: scale = lam * a (float32).
      std::vector<float> adj = adj1;
      if (has_adj2) {
        const std::vector<float> adj2 = read(p + "attn.adj_learned", {n, n});
        for (int64_t r = 0; r < n; ++r) {
          for (int64_t q = 0; q < n; ++q) adj[r * n + q] = adj1[r * n + q] + 0.5f * (adj2[r * n + q] + adj2[q * n + r]);
        }
      }
      const float a = read(p + "attn.a", {})[0];
      const float scale = lam * a;
      if (!std::isfinite(scale)) {
        throw std::runtime_error(path + ": tensor '" + prefix + p + "attn.a' gives a non-finite prior scale lam * a");
      }
      // The factor as mobpose::mqa_prior makes it: 1 + s * adj (multiplicative) or s * adj (additive).
      b.mode = c.prior == "mul" ? kernels::PriorMode::kMultiplicative : kernels::PriorMode::kAdditive;
      const float base = b.mode == kernels::PriorMode::kMultiplicative ? 1.f : 0.f;
      std::vector<float> factor(static_cast<size_t>(n * n));
      for (size_t k = 0; k < factor.size(); ++k) factor[k] = base + scale * adj[k];
      b.factor_r.resize(static_cast<size_t>(n) * (static_cast<size_t>(n) * H_ + kernels::kMqaFactorPad));
      kernels::mqa_rows_factor(factor.data(), static_cast<size_t>(n), H_, b.factor_r.data());
    }
    blocks_.push_back(std::move(b));
  }
  norm_g_ = read("norm.weight", {C});
  norm_b_ = read("norm.bias", {C});
  head_w_ = pack("head", 3, C);
  for (const auto& [name, info] : file.tensors()) {
    if (name.compare(0, prefix.size(), prefix) == 0 && expected.count(name) == 0) {
      throw std::runtime_error(path + ": unexpected tensor '" + name + "' " + shape_string(info.shape) +
                               " for this PRM config (blocks '" + c.blocks + "', prior '" + c.prior +
                               "', learn_adj " + (c.learn_adj ? "true" : "false") + ")");
    }
  }

  // ---- Plans ----
  plan_full_.assign(blocks_.size(), Span{});
  // Streaming: only the newest frame's output is wanted. Going backwards from the head, a spatial
  // block needs its input only for the frames whose output is needed; a temporal block needs the keys
  // and values of every frame of the window (its queries only for the needed frames), so before the
  // last temporal block every frame is computed in full, and after it only the newest frame.
  plan_step_.assign(blocks_.size(), Span{});
  int64_t need = c.num_frames - 1;
  for (size_t i = blocks_.size(); i-- > 0;) {
    plan_step_[i].first_out = need;
    if (!blocks_[i].spatial) need = 0;
    plan_step_[i].first_in = need;
  }

  // ---- Buffers ----
  x_.assign(R_ * C_, 0.f);
  xn_.assign(R_ * C_, 0.f);
  q_.assign(R_ * C_, 0.f);
  kv_.assign(R_ * 2 * d_, 0.f);
  o_ = xn_.data();  // the attention output shares LN's buffer (see run_block)
  hid_.assign(std::max(kChunk * hidden_ * static_cast<size_t>(threads_), R_ * 3), 0.f);  // MLP chunks; head rows
  att_stride_ = kernels::mqa_scratch_floats(std::max(T_, J_), d_);
  att_stride_ = (att_stride_ + 15) / 16 * 16;
  att_.assign(att_stride_ * static_cast<size_t>(threads_), 0.f);
  ring_.assign(T_ * J_ * C_, 0.f);
  newest_.assign(J_ * 3, 0.f);
}

template <class F>
void PRMNative::parallel(size_t count, size_t grain, const F& fn) {
  const size_t most = (count + grain - 1) / grain;
  const size_t tasks = std::min(static_cast<size_t>(threads_), most);
  if (tasks <= 1) {
    if (count) fn(size_t{0}, size_t{0}, count);
    return;
  }
  const size_t chunk = ((count + tasks - 1) / tasks + grain - 1) / grain * grain;
  parallel_for(tasks, static_cast<int>(tasks), [&](size_t task) {
    const size_t begin = task * chunk, end = std::min(count, begin + chunk);
    if (begin < end) fn(task, begin, end);
  });
}

void PRMNative::check_finite(const float* x, int64_t count, const char* name, bool frames) const {
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(x[i])) {
      const int64_t per_frame = cfg_.num_joints * 3;
      const std::string where = frames ? "[" + std::to_string(i / per_frame) + ", " +
                                             std::to_string(i % per_frame / 3) + ", " + std::to_string(i % 3) + "]"
                                       : "[" + std::to_string(i / 3) + ", " + std::to_string(i % 3) + "]";
      throw std::invalid_argument(std::string(name) + " has a non-finite value (" + std::to_string(x[i]) + ") at " +
                                  where + ": poses must be finite millimetres (in float32)");
    }
  }
}

void PRMNative::embed_frame(const float* pose, float* dst) const {
  // PRM.forward: embed(poses * input_scale) + joint_pos (+ frame_pos, added by the caller).
  const float* w0 = embed_w_.data();
  const float* w1 = w0 + C_;
  const float* w2 = w1 + C_;
  for (size_t j = 0; j < J_; ++j) {
    const float p0 = pose[j * 3] * input_scale_f_, p1 = pose[j * 3 + 1] * input_scale_f_,
                p2 = pose[j * 3 + 2] * input_scale_f_;
    const float* jp = joint_pos_.data() + j * C_;
    float* out = dst + j * C_;
    for (size_t ch = 0; ch < C_; ++ch) out[ch] = (embed_b_[ch] + w0[ch] * p0 + w1[ch] * p1 + w2[ch] * p2) + jp[ch];
  }
}

void PRMNative::attention(const Block& b, const Span& s) {
  // Tokens are read in place through their strides: a spatial block's sequence is a frame (its J
  // tokens are consecutive rows), a temporal block's is a joint (its T tokens are J rows apart). A
  // spatial block computes every wanted frame; a temporal block every joint, with keys and values
  // over the whole window and queries only for the wanted frames (rows token * H + head).
  const size_t C = C_, d = d_, d2 = 2 * d_, H = H_, J = J_;
  const size_t n = b.spatial ? J : T_;
  const size_t seq0 = b.spatial ? static_cast<size_t>(s.first_out) : 0;
  const size_t sequences = b.spatial ? T_ - seq0 : J;
  const size_t row0 = b.spatial ? 0 : static_cast<size_t>(s.first_out) * H;
  const size_t token_rows = b.spatial ? 1 : J;  // rows of x between two tokens of a sequence
  const bool causal = !b.spatial && cfg_.causal;
  const kernels::MqaRowsFn fn = kernels_->mqa_rows[static_cast<int>(b.mode)];
  const float* factor = b.factor_r.empty() ? nullptr : b.factor_r.data();
  parallel(sequences, 1, [&](size_t task, size_t begin, size_t end) {
    float* scratch = att_.data() + task * att_stride_;
    for (size_t sq = begin; sq < end; ++sq) {
      const size_t first_row = b.spatial ? (seq0 + sq) * J : sq;  // row of the sequence's token 0
      const float* kv = kv_.data() + first_row * d2;
      fn(q_.data() + first_row * C, token_rows * C, kv, kv + d, token_rows * d2, factor, n, H, d, row0, n * H,
         causal, o_ + first_row * C, token_rows * C, scratch);
    }
  });
}

void PRMNative::run_block(const Block& b, const Span& s) {
  const size_t C = C_, d2 = 2 * d_, hid = hidden_;
  const size_t ri = static_cast<size_t>(s.first_in) * J_, ro = static_cast<size_t>(s.first_out) * J_;
  const kernels::KernelSet& ks = *kernels_;
  using E = kernels::LinearEpilogue;
  // Everything but the attention is row-local, so it runs over chunks of kChunk rows: a chunk's
  // activations stay in L1/L2 between the layers, and the MLP's hidden rows need a chunk-sized buffer.
  // x + MQA(LN1(x)): keys and values for the input rows, queries for the output rows.
  parallel(R_ - ri, kGemmGrain, [&](size_t, size_t r0, size_t r1) {
    for (size_t c0 = ri + r0; c0 < ri + r1; c0 += kChunk) {
      const size_t m = std::min(kChunk, ri + r1 - c0);
      ks.layernorm(x_.data() + c0 * C, m, C, C, b.ln1_g.data(), b.ln1_b.data(), kLayerNormEps, xn_.data() + c0 * C, C);
      ks.linear(xn_.data() + c0 * C, m, C, C, b.wkv.data(), d2, kv_.data() + c0 * d2, d2, E::kStore);
      if (c0 + m > ro) {  // the chunk's query rows
        const size_t q0 = std::max(c0, ro);
        ks.linear(xn_.data() + q0 * C, c0 + m - q0, C, C, b.wq.data(), C, q_.data() + q0 * C, C, E::kStore);
      }
    }
  });
  attention(b, s);  // q, kv -> o, written over LN1's rows (consumed above)
  // Then, for the output rows: x += proj(o), x += fc2(GELU(fc1(LN2(x)))); LN2 overwrites a chunk's o
  // rows only after proj has read them.
  parallel(R_ - ro, kGemmGrain, [&](size_t task, size_t r0, size_t r1) {
    float* h = hid_.data() + task * kChunk * hid;
    for (size_t c0 = ro + r0; c0 < ro + r1; c0 += kChunk) {
      const size_t m = std::min(kChunk, ro + r1 - c0);
      ks.linear(o_ + c0 * C, m, C, C, b.wproj.data(), C, x_.data() + c0 * C, C, E::kAccumulate);
      ks.layernorm(x_.data() + c0 * C, m, C, C, b.ln2_g.data(), b.ln2_b.data(), kLayerNormEps, xn_.data() + c0 * C, C);
      ks.linear(xn_.data() + c0 * C, m, C, C, b.w1.data(), hid, h, hid, E::kGeluTanh);
      ks.linear(h, m, hid, hid, b.w2.data(), C, x_.data() + c0 * C, C, E::kAccumulate);
    }
  });
}

void PRMNative::run(const std::vector<Span>& plan) {
  for (size_t i = 0; i < blocks_.size(); ++i) run_block(blocks_[i], plan[i]);
}

void PRMNative::head(int64_t first_frame, const float* poses, float* out) {
  // poses + head(norm(x)) / input_scale, for the rows of frames [first_frame, T); poses and out
  // start at that frame.
  const size_t r0 = static_cast<size_t>(first_frame) * J_, m = R_ - r0, C = C_;
  float* h = hid_.data();  // [m][3]
  kernels_->layernorm(x_.data() + r0 * C, m, C, C, norm_g_.data(), norm_b_.data(), kLayerNormEps,
                      xn_.data() + r0 * C, C);
  kernels_->linear(xn_.data() + r0 * C, m, C, C, head_w_.data(), 3, h, 3, kernels::LinearEpilogue::kStore);
  for (size_t i = 0; i < m * 3; ++i) out[i] = poses[i] + h[i] / input_scale_f_;
}

void PRMNative::forward(const float* window, int64_t frames, int64_t joints, int64_t coords, float* out) {
  if (frames != cfg_.num_frames || joints != cfg_.num_joints || coords != 3) {
    throw std::invalid_argument("window must have shape (T, J, 3) = " + dims(cfg_.num_frames, cfg_.num_joints, 3) +
                                ", got " + dims(frames, joints, coords));
  }
  if (window == nullptr || out == nullptr) throw std::invalid_argument("window: null buffer");
  check_finite(window, static_cast<int64_t>(R_ * 3), "window", true);
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t t = 0; t < T_; ++t) {
    float* x = x_.data() + t * J_ * C_;
    embed_frame(window + t * J_ * 3, x);
    const float* fp = frame_pos_.data() + t * C_;
    for (size_t j = 0; j < J_; ++j) {
      for (size_t ch = 0; ch < C_; ++ch) x[j * C_ + ch] += fp[ch];
    }
  }
  run(plan_full_);
  head(0, window, out);
}

void PRMNative::forward_batch(const float* windows, int64_t batch, int64_t frames, int64_t joints, int64_t coords,
                              float* out) {
  if (batch < 0) throw std::invalid_argument("windows: negative batch size");
  const size_t per = R_ * 3;
  for (int64_t i = 0; i < batch; ++i) forward(windows + i * per, frames, joints, coords, out + i * per);
}

void PRMNative::step(const float* pose, int64_t joints, int64_t coords, float* out) {
  if (!cfg_.causal) {
    throw std::logic_error(
        "step() needs a causal PRM: this one is centred (causal=False), so its output for a frame depends on "
        "later frames; refine windows with forward() instead");
  }
  if (joints != cfg_.num_joints || coords != 3) {
    throw std::invalid_argument("pose must have shape (J, 3) = (" + std::to_string(cfg_.num_joints) + ", 3), got (" +
                                std::to_string(joints) + ", " + std::to_string(coords) + ")");
  }
  if (pose == nullptr || out == nullptr) throw std::invalid_argument("pose: null buffer");
  check_finite(pose, static_cast<int64_t>(J_ * 3), "pose", false);
  std::lock_guard<std::mutex> lock(mutex_);
  // Why not a key/value cache across steps: a frame's tokens are not the same from one step to the
  // next. The window shifts by one frame each step, so every frame moves to the previous position and
  // gets another absolute frame embedding (frame_pos) and another row and column of the temporal
  // prior (Adj1 + Adj2 are indexed by window position, and the learned Adj2 is not shift-invariant);
  // from the first block on, every token of the window differs, so nothing past the embedding carries
  // over exactly. What is reused is the embedding of each frame (without frame_pos), kept in a ring,
  // and within a step only the rows the newest frame's output needs are computed (plan_step_).
  const size_t frame = J_ * C_;
  if (seen_ == 0) {
    embed_frame(pose, ring_.data());
    for (size_t t = 1; t < T_; ++t) std::memcpy(ring_.data() + t * frame, ring_.data(), frame * sizeof(float));
    ring_head_ = T_ - 1;
  } else {
    ring_head_ = ring_head_ + 1 == T_ ? 0 : ring_head_ + 1;
    embed_frame(pose, ring_.data() + ring_head_ * frame);
  }
  std::memcpy(newest_.data(), pose, J_ * 3 * sizeof(float));
  ++seen_;
  // Window position p holds ring slot (head + 1 + p) mod T: the oldest first, the newest at T - 1.
  const size_t first = static_cast<size_t>(plan_step_.front().first_in);
  for (size_t p = first; p < T_; ++p) {
    const float* e = ring_.data() + ((ring_head_ + 1 + p) % T_) * frame;
    const float* fp = frame_pos_.data() + p * C_;
    float* x = x_.data() + p * frame;
    for (size_t j = 0; j < J_; ++j) {
      for (size_t ch = 0; ch < C_; ++ch) x[j * C_ + ch] = e[j * C_ + ch] + fp[ch];
    }
  }
  run(plan_step_);
  head(cfg_.num_frames - 1, newest_.data(), out);
}

void PRMNative::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  seen_ = 0;
  ring_head_ = 0;
}

}  // namespace mobpose
