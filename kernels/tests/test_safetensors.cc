// The safetensors reader on files this test writes (values, dtypes, metadata with escapes, and every
// kind of malformed file), and the native PRM on a small random model written the same way: loading
// checks, input checks, forward finite and deterministic, step() equal to forward() on the window it
// stands for (first pose repeated at the front), reset(). Exit code 0 = all passed.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "mobpose/prm.h"
#include "mobpose/safetensors.h"
#include "test_util.h"

using namespace mobpose;

namespace {

struct Entry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// A .safetensors file: header (with metadata_json spliced in as given) padded to 8 bytes, then data.
void write_file(const std::string& path, const std::vector<Entry>& entries, const std::string& metadata_json = "",
                const std::string& raw_header = "") {
  std::string header = "{";
  if (!metadata_json.empty()) header += "\"__metadata__\":" + metadata_json;
  std::string data;
  for (const Entry& e : entries) {
    if (header.size() > 1) header += ",";
    header += "\"" + e.name + "\":{\"dtype\":\"" + e.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < e.shape.size(); ++i) header += (i ? "," : "") + std::to_string(e.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(data.size()) + "," + std::to_string(data.size() + e.bytes.size()) +
              "]}";
    data += e.bytes;
  }
  header += "}";
  if (!raw_header.empty()) header = raw_header;
  while (header.size() % 8) header += ' ';
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  uint64_t n = header.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  f.write(reinterpret_cast<const char*>(len), 8);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

void truncate_file(const std::string& path, size_t keep) {
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(all.data(), static_cast<std::streamsize>(std::min(keep, all.size())));
}

// f() throws an E whose message contains every needle.
template <class E>
bool throws(const std::function<void()>& f, std::initializer_list<const char*> needles) {
  try {
    f();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const char* n : needles) {
      if (what.find(n) == std::string::npos) {
        std::printf("  message without '%s': %s\n", n, e.what());
        return false;
      }
    }
    return true;
  } catch (const std::exception& e) {
    std::printf("  other exception: %s\n", e.what());
    return false;
  }
  return false;
}

std::string temp_path(const char* name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/mobpose_test_" + std::to_string(::getpid()) + "_" + name;
}

void test_reader(Test& t) {
  const std::string path = temp_path("reader.safetensors");
  // F16: 1.5, -2, 65504 (largest), 2^-24 (smallest subnormal), -0, inf. BF16: 1.0, -3.5.
  const uint16_t halves[] = {0x3E00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00};
  const uint16_t bf16s[] = {0x3F80, 0xC060};
  std::string hb(sizeof(halves), '\0'), bb(sizeof(bf16s), '\0');
  std::memcpy(hb.data(), halves, sizeof(halves));
  std::memcpy(bb.data(), bf16s, sizeof(bf16s));
  std::string ib(16, '\0');
  write_file(path,
             {{"a", "F32", {2, 3}, f32_bytes({1, 2, 3, 4, 5, 6})},
              {"h", "F16", {6}, hb},
              {"b", "BF16", {2}, bb},
              {"i", "I64", {2}, ib},
              {"s", "F32", {}, f32_bytes({0.25f})},
              {"e", "F32", {0, 4}, ""}},
             R"({"format":"mobpose-v1","quote":"a\"b\\c\/d\n\u00e9\ud83d\ude00"})");
  const SafetensorsFile f(path);
  t.check(f.metadata().size() == 2 && f.metadata().at("format") == "mobpose-v1", "metadata format");
  t.check(f.metadata().at("quote") == "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80", "metadata escapes decoded to UTF-8");
  t.check(f.tensors().size() == 6 && f.contains("a") && !f.contains("z"), "tensor names");
  t.check(f.tensor("a").shape == std::vector<int64_t>{2, 3} && f.tensor("s").shape.empty(), "shapes");
  t.check(f.read_floats("a") == std::vector<float>{1, 2, 3, 4, 5, 6}, "F32 values");
  t.check(f.read_floats("a", {2, 3}).size() == 6, "F32 with its shape");
  t.check(f.read_floats("s", {}) == std::vector<float>{0.25f}, "scalar");
  t.check(f.read_floats("e", {0, 4}).empty(), "empty tensor");
  const std::vector<float> h = f.read_floats("h");
  t.check(h[0] == 1.5f && h[1] == -2.f && h[2] == 65504.f && h[3] == std::ldexp(1.f, -24) && h[4] == 0.f &&
              std::signbit(h[4]) && std::isinf(h[5]),
          "F16 widened exactly (normal, largest, subnormal, -0, inf)");
  t.check(f.read_floats("b") == std::vector<float>{1.f, -3.5f}, "BF16 widened");
  t.check(throws<std::runtime_error>([&] { f.read_floats("z"); }, {path.c_str(), "no tensor 'z'"}),
          "a missing tensor throws naming the file and the tensor");
  t.check(throws<std::runtime_error>([&] { f.read_floats("i"); }, {path.c_str(), "'i'", "I64", "float"}),
          "a non-float tensor read as float throws naming its dtype");
  t.check(throws<std::runtime_error>([&] { f.read_floats("a", {3, 2}); }, {"'a'", "(2, 3)", "(3, 2)"}),
          "a shape mismatch names both shapes");

  // Malformed files.
  const std::string bad = temp_path("bad.safetensors");
  auto opens = [&] { SafetensorsFile g(bad); };
  t.check(throws<std::runtime_error>([&] { SafetensorsFile g(temp_path("missing.safetensors")); }, {"cannot open"}),
          "a missing file throws");
  write_file(bad, {{"a", "F32", {4}, f32_bytes({1, 2, 3, 4})}});
  truncate_file(bad, 5);
  t.check(throws<std::runtime_error>(opens, {bad.c_str(), "shorter than"}), "a file under 8 bytes throws");
  write_file(bad, {{"a", "F32", {4}, f32_bytes({1, 2, 3, 4})}});
  truncate_file(bad, 20);
  t.check(throws<std::runtime_error>(opens, {bad.c_str(), "header length"}), "a header longer than the file throws");
  write_file(bad, {{"a", "F32", {4}, f32_bytes({1, 2, 3, 4})}});
  {
    std::ifstream in(bad, std::ios::binary | std::ios::ate);
    const size_t size = static_cast<size_t>(in.tellg());
    in.close();
    truncate_file(bad, size - 3);
  }
  t.check(throws<std::runtime_error>(opens, {bad.c_str(), "'a'", "past", "truncated"}),
          "tensor data cut short throws naming the tensor");
  const std::pair<const char*, const char*> headers[] = {
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},})", "expected a string key"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", "unexpected end"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]};})", "expected ',' or '}'"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x)", "unexpected text"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "4 bytes for shape (2,)"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", "begin > end"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "non-negative"},
      {R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", "'shape'"},
      {R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})", "unknown dtype"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{}})", "duplicate key"},
      {R"({"__metadata__":{"k":1}})", "not a string"},
      {R"({"__metadata__":{"k":"\x"}})", "invalid escape"},
      {R"({"__metadata__":{"k":"abc)", "unterminated string"},
      {R"({"__metadata__":{"k":"\ud800"}})", "surrogate"},
      {R"({"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}})", "64-bit"},
      {R"([1, 2])", "not an object"},
  };
  for (const auto& [text, needle] : headers) {
    write_file(bad, {{"a", "F32", {2}, f32_bytes({1, 2})}}, "", text);
    t.check(throws<std::runtime_error>(opens, {bad.c_str(), needle}), "malformed header %s must throw '%s'", text,
            needle);
  }
  write_file(bad, {{"a", "F32", {2}, f32_bytes({1, 2})}}, "", std::string(100, '[') + std::string(100, ']'));
  t.check(throws<std::runtime_error>(opens, {"nesting"}), "deeply nested JSON must throw, not overflow the stack");
  std::remove(path.c_str());
  std::remove(bad.c_str());
}

// ---- A small random PRM written with the PyTorch state_dict names ---------------------------------

struct TinyPrm {
  PRMNativeConfig cfg;
  std::vector<Entry> entries;
};

TinyPrm tiny_prm(bool causal, const std::string& prior, bool learn_adj, const std::string& prefix = "") {
  TinyPrm p;
  PRMNativeConfig& c = p.cfg;
  c.num_joints = 5;
  c.num_frames = 6;
  c.dim = 16;
  c.heads = 2;
  c.blocks = "sts";
  c.mlp_ratio = 1.5;
  c.prior = prior;
  c.lam = 0.7;
  c.learn_adj = learn_adj;
  c.causal = causal;
  c.input_scale = 1e-3;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.f, 1.f);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset = 0.f) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = offset + scale * normal(rng);
    p.entries.push_back({prefix + name, "F32", shape, f32_bytes(v)});
  };
  const int64_t C = c.dim, d = c.dim / c.heads, hid = static_cast<int64_t>(c.dim * c.mlp_ratio);
  add("embed.weight", {C, 3}, 0.5f);
  add("embed.bias", {C}, 0.1f);
  add("joint_pos", {c.num_joints, C}, 0.1f);
  add("frame_pos", {c.num_frames, C}, 0.1f);
  for (size_t i = 0; i < c.blocks.size(); ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    const int64_t n = c.blocks[i] == 's' ? c.num_joints : c.num_frames;
    add(b + "norm1.weight", {C}, 0.1f, 1.f);
    add(b + "norm1.bias", {C}, 0.1f);
    add(b + "norm2.weight", {C}, 0.1f, 1.f);
    add(b + "norm2.bias", {C}, 0.1f);
    add(b + "attn.q.weight", {C, C}, 0.25f);
    add(b + "attn.q.bias", {C}, 0.1f);
    add(b + "attn.kv.weight", {2 * d, C}, 0.25f);
    add(b + "attn.kv.bias", {2 * d}, 0.1f);
    add(b + "attn.proj.weight", {C, C}, 0.25f);
    add(b + "attn.proj.bias", {C}, 0.1f);
    add(b + "attn.adj_fixed", {n, n}, 0.3f, 0.5f);
    if (prior != "none" && learn_adj) add(b + "attn.adj_learned", {n, n}, 0.1f);
    if (prior != "none") add(b + "attn.a", {}, 0.2f, 1.f);
    add(b + "mlp.fc1.weight", {hid, C}, 0.25f);
    add(b + "mlp.fc1.bias", {hid}, 0.1f);
    add(b + "mlp.fc2.weight", {C, hid}, 0.2f);
    add(b + "mlp.fc2.bias", {C}, 0.1f);
  }
  add("norm.weight", {C}, 0.1f, 1.f);
  add("norm.bias", {C}, 0.1f);
  add("head.weight", {3, C}, 0.05f);
  add("head.bias", {3}, 0.01f);
  return p;
}

void test_prm(Test& t) {
  const std::string path = temp_path("prm.safetensors");
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.f, 300.f);
  for (const char* prior : {"mul", "add", "none"}) {
    for (bool causal : {true, false}) {
      const TinyPrm p = tiny_prm(causal, prior, std::string(prior) == "mul");
      write_file(path, p.entries, R"({"format":"mobpose-v1"})");
      PRMNative prm(path, p.cfg);
      const int64_t T = p.cfg.num_frames, J = p.cfg.num_joints;
      std::vector<float> window(static_cast<size_t>(T * J * 3)), out(window.size()), out2(window.size());
      for (float& x : window) x = normal(rng);
      prm.forward(window.data(), T, J, 3, out.data());
      prm.forward(window.data(), T, J, 3, out2.data());
      bool finite = true, moved = false;
      for (size_t i = 0; i < out.size(); ++i) {
        finite &= std::isfinite(out[i]);
        moved |= std::fabs(out[i] - window[i]) > 1e-3f;
      }
      t.check(finite && moved, "prm %s causal=%d: forward finite and not the identity", prior, causal);
      t.check(out == out2, "prm %s causal=%d: forward deterministic", prior, causal);
      // Causal: a change in the last frame leaves earlier outputs alone; centred: it reaches them.
      std::vector<float> w2 = window, o3(window.size());
      for (int64_t i = (T - 1) * J * 3; i < T * J * 3; ++i) w2[static_cast<size_t>(i)] += 50.f;
      prm.forward(w2.data(), T, J, 3, o3.data());
      bool same_past = true;
      for (int64_t i = 0; i < (T - 1) * J * 3; ++i) same_past &= o3[static_cast<size_t>(i)] == out[static_cast<size_t>(i)];
      t.check(same_past == causal, "prm %s causal=%d: earlier frames %s the last one", prior, causal,
              causal ? "ignore" : "see");
      if (!causal) {
        std::vector<float> pose(static_cast<size_t>(J * 3)), res(pose.size());
        t.check(throws<std::logic_error>([&] { prm.step(pose.data(), J, 3, res.data()); }, {"causal", "centred"}),
                "step() on a centred PRM throws");
        continue;
      }
      // step() over a stream = forward() on each frame's window (first pose repeated at the front).
      const int64_t frames = T + 4;
      std::vector<float> stream(static_cast<size_t>(frames * J * 3));
      for (float& x : stream) x = normal(rng);
      double worst = 0.0;
      for (int pass = 0; pass < 2; ++pass) {  // the second pass after reset() must start over
        for (int64_t s = 0; s < frames; ++s) {
          std::vector<float> got(static_cast<size_t>(J * 3)), win(window.size()), want(window.size());
          prm.step(stream.data() + s * J * 3, J, 3, got.data());
          for (int64_t tt = 0; tt < T; ++tt) {
            const int64_t src = std::max<int64_t>(0, s - (T - 1) + tt);
            std::memcpy(win.data() + tt * J * 3, stream.data() + src * J * 3, static_cast<size_t>(J * 3) * 4);
          }
          prm.forward(win.data(), T, J, 3, want.data());
          for (int64_t i = 0; i < J * 3; ++i) {
            worst = std::fmax(worst, std::fabs(got[static_cast<size_t>(i)] - want[static_cast<size_t>((T - 1) * J * 3 + i)]));
          }
        }
        t.check(prm.frames_seen() == frames, "frames_seen counts the stream");
        prm.reset();
        t.check(prm.frames_seen() == 0, "reset() clears the stream");
      }
      t.check(worst <= 2e-3, "prm %s: step() differs from forward() on its window by %.3g mm", prior, worst);
      // Bad input: shape, NaN (the stream is unchanged: the next step equals a fresh first frame).
      std::vector<float> pose(stream.begin(), stream.begin() + J * 3), res(pose.size()), first(pose.size());
      t.check(throws<std::invalid_argument>([&] { prm.step(pose.data(), J + 1, 3, res.data()); }, {"pose", "shape"}),
              "step() with a wrong shape throws naming pose");
      std::vector<float> nan_pose = pose;
      nan_pose[4] = std::numeric_limits<float>::quiet_NaN();
      t.check(throws<std::invalid_argument>([&] { prm.step(nan_pose.data(), J, 3, res.data()); }, {"pose", "[1, 1]"}),
              "step() with a NaN throws naming pose and the index");
      prm.step(pose.data(), J, 3, res.data());
      prm.reset();
      prm.step(pose.data(), J, 3, first.data());
      t.check(res == first && prm.frames_seen() == 1, "a rejected pose leaves the stream unchanged");
      std::vector<float> inf_window = window;
      inf_window[7] = std::numeric_limits<float>::infinity();
      t.check(throws<std::invalid_argument>([&] { prm.forward(inf_window.data(), T, J, 3, out.data()); },
                                            {"window", "[0, 2, 1]"}),
              "forward() with an Inf throws naming window and the index");
      t.check(throws<std::invalid_argument>([&] { prm.forward(window.data(), T - 1, J, 3, out.data()); },
                                            {"window", "(6, 5, 3)", "(5, 5, 3)"}),
              "forward() with a wrong shape throws naming window and both shapes");
    }
  }
  // A training checkpoint: the weights under "model.", other tensors ignored.
  {
    TinyPrm p = tiny_prm(true, "mul", true, "model.");
    p.entries.push_back({"optim.0.step", "F32", {}, f32_bytes({3.f})});
    write_file(path, p.entries);
    PRMNative prm(path, p.cfg, "model.");
    t.check(prm.config().num_frames == 6, "a training checkpoint loads under its prefix");
  }
  // Loading errors name the file and the tensor.
  TinyPrm p = tiny_prm(true, "mul", true);
  std::vector<Entry> missing(p.entries.begin(), p.entries.end());
  missing.erase(missing.begin() + 9);  // blocks.0.attn.q.bias
  write_file(path, missing);
  t.check(throws<std::runtime_error>([&] { PRMNative prm(path, p.cfg); }, {path.c_str(), "blocks.0.attn.q.bias"}),
          "a missing tensor throws naming it");
  std::vector<Entry> misshapen = p.entries;
  misshapen[4].shape = {15};  // blocks.0.norm1.weight (16,) -> (15,)
  misshapen[4].bytes.resize(15 * 4);
  write_file(path, misshapen);
  t.check(throws<std::runtime_error>([&] { PRMNative prm(path, p.cfg); },
                                     {"blocks.0.norm1.weight", "(15,)", "(16,)"}),
          "a misshapen tensor throws naming it and both shapes");
  std::vector<Entry> extra = p.entries;
  extra.push_back({"blocks.7.attn.a", "F32", {}, f32_bytes({1.f})});
  write_file(path, extra);
  t.check(throws<std::runtime_error>([&] { PRMNative prm(path, p.cfg); }, {"unexpected tensor 'blocks.7.attn.a'"}),
          "an unexpected tensor throws");
  write_file(path, p.entries);
  PRMNativeConfig no_adj2 = p.cfg;
  no_adj2.learn_adj = false;  // the file has adj_learned: the config does not match it
  t.check(throws<std::runtime_error>([&] { PRMNative prm(path, no_adj2); }, {"unexpected tensor", "adj_learned"}),
          "a config without Adj2 rejects a file with it");
  PRMNativeConfig bad = p.cfg;
  bad.heads = 3;
  t.check(throws<std::invalid_argument>([&] { PRMNative prm(path, bad); }, {"divisible"}), "dim % heads != 0 throws");
  bad = p.cfg;
  bad.blocks = "sx";
  t.check(throws<std::invalid_argument>([&] { PRMNative prm(path, bad); }, {"blocks"}), "a bad block string throws");
  bad = p.cfg;
  bad.prior = "max";
  t.check(throws<std::invalid_argument>([&] { PRMNative prm(path, bad); }, {"prior"}), "an unknown prior throws");
  std::remove(path.c_str());
}

}  // namespace

void test_json_scalars(Test& t) {
  auto m = json_scalars(R"({"blocks": "stst", "dim": 64, "lam": 1.0, "causal": true, "x": null,
                             "parents": [-1, 0], "nested": {"a": 1}, "q": "a\"b"})", "cfg");
  t.check(m.size() == 6, "json_scalars: scalars kept, array and object left out");
  t.check(m.at("blocks") == "stst" && m.at("dim") == "64" && m.at("causal") == "true" && m.at("x") == "null",
          "json_scalars: strings, integers, booleans, null");
  t.check(std::stod(m.at("lam")) == 1.0 && m.at("q") == "a\"b", "json_scalars: reals, escapes");
  bool threw = false;
  try {
    json_scalars("[1, 2]", "cfg");
  } catch (const std::runtime_error& e) {
    threw = std::string(e.what()).find("cfg") != std::string::npos;
  }
  t.check(threw, "json_scalars: not an object is an error naming the source");
}

int main() {
  Test t;
  test_reader(t);
  test_json_scalars(t);
  test_prm(t);
  return t.finish("test_safetensors");
}
