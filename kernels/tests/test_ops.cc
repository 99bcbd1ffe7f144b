// The checked operators: threading gives the same answer as one thread, the reference variant can be
// forced, the prior is applied as documented, and bad shapes throw std::invalid_argument.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mobpose/kernels.h"
#include "mobpose/ops.h"
#include "mobpose/thread_pool.h"
#include "test_util.h"

using namespace mobpose;

namespace {

template <class F>
bool throws_invalid(F&& f, const char* needle) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return std::string(e.what()).find(needle) != std::string::npos;
  }
  return false;
}

void test_parallel_for(Test& t) {
  for (int threads : {1, 2, 4, 0}) {
    for (size_t count : {size_t(0), size_t(1), size_t(3), size_t(1000)}) {
      std::vector<int> hits(count, 0);
      parallel_for(count, threads, [&](size_t i) { hits[i] += 1; });
      bool ok = true;
      for (int h : hits) ok &= h == 1;
      t.check(ok, "parallel_for(%zu, %d) must run each index once", count, threads);
    }
  }
}

// Many short calls back to back: the hand-over between calls (spinning and sleeping workers) must
// never lose or repeat a task. Run under ThreadSanitizer by scripts/test.sh.
void test_parallel_for_stress(Test& t) {
  std::vector<int> hits(9);
  bool ok = true;
  for (int call = 0; call < 3000; ++call) {
    const size_t count = 1 + call % 9;
    std::fill(hits.begin(), hits.end(), 0);
    parallel_for(count, 2, [&](size_t i) { hits[i] += 1; });
    for (size_t i = 0; i < hits.size(); ++i) ok &= hits[i] == (i < count ? 1 : 0);
  }
  t.check(ok, "parallel_for: 3000 back-to-back calls must each run every index once");
}

// A helper that is late (asleep, or its core taken by another process) must neither hold up a call
// whose tasks the caller already did nor run a task of a finished call: a busy thread competes for the
// cores while calls of 2 tasks run back to back, each writing into its own generation's array.
void test_parallel_for_late_helpers(Test& t) {
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    volatile unsigned x = 0;
    while (!stop.load(std::memory_order_relaxed)) x = x + 1;
  });
  bool ok = true;
  std::vector<std::atomic<int>> hits(2);
  for (int call = 0; call < 5000; ++call) {
    hits[0].store(0);
    hits[1].store(0);
    parallel_for(2, 2, [&](size_t i) { hits[i].fetch_add(1); });
    ok &= hits[0].load() == 1 && hits[1].load() == 1;
  }
  stop.store(true);
  busy.join();
  t.check(ok, "parallel_for: with a busy thread competing, 5000 calls must each run both indices once");
}

void test_softargmax_op(Test& t) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.f, 3.f);
  const int64_t n = 2, j = 18, d = 8, h = 8, w = 8;
  std::vector<float> x(n * j * d * h * w);
  for (float& v : x) v = normal(rng);
  for (const char* mode : {"exact", "taylor", "taylor_clamped"}) {
    const auto m = parse_softargmax_mode(mode);
    std::vector<float> xyz1(n * j * 3), pk1(n * j), xyz2(n * j * 3), pk2(n * j);
    soft_argmax_3d(x.data(), n, j, d, h, w, m, xyz1.data(), pk1.data(), 1);
    soft_argmax_3d(x.data(), n, j, d, h, w, m, xyz2.data(), pk2.data(), 2);
    t.check(xyz1 == xyz2 && pk1 == pk2, "soft_argmax_3d %s: 2 threads differ from 1", mode);
    // Joint i of the batch is the kernel on volume i.
    const auto& ref = *kernels::find_variant("reference");
    float want[3], want_peak;
    ref.softargmax3d[static_cast<int>(m)](x.data() + 19 * d * h * w, d, h, w, want, &want_peak);
    t.check_close(xyz1[19 * 3 + 2], want[2], 1e-4, "soft_argmax_3d %s joint 19 z", mode);
  }
  float out[3], pk;
  t.check(throws_invalid([&] { soft_argmax_3d(x.data(), 0, j, d, h, w, kernels::SoftArgmaxMode::kExact, out, &pk, 1); },
                         "batch"),
          "n = 0 must throw naming the batch");
  t.check(throws_invalid([&] { soft_argmax_3d(x.data(), 1, 1, d, h, -1, kernels::SoftArgmaxMode::kExact, out, &pk, 1); },
                         "width"),
          "negative width must throw naming the width");
  t.check(throws_invalid([&] { parse_softargmax_mode("softmax"); }, "mode"), "unknown mode must throw");
  t.check(throws_invalid([&] { parse_prior_mode("mult"); }, "prior_mode"), "unknown prior must throw");
}

void test_mqa_op(Test& t) {
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.f, 1.f);
  const int64_t b = 3, heads = 4, n = 17, dh = 16;
  std::vector<float> q(b * heads * n * dh), k(b * n * dh), v(b * n * dh), adj(n * n);
  for (float& x : q) x = normal(rng);
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  for (float& x : adj) x = std::fabs(normal(rng));
  for (const char* prior : {"mul", "add"}) {
    for (bool causal : {false, true}) {
      const auto mode = parse_prior_mode(prior);
      std::vector<float> o1(q.size()), o2(q.size()), o3(q.size());
      mqa_prior(q.data(), k.data(), v.data(), adj.data(), 0.7f, mode, b, heads, n, dh, causal, o1.data(), 1);
      mqa_prior(q.data(), k.data(), v.data(), adj.data(), 0.7f, mode, b, heads, n, dh, causal, o2.data(), 2);
      t.check(o1 == o2, "mqa_prior %s causal=%d: 2 threads differ from 1", prior, causal);
      // Forcing the reference gives the same within the kernel tolerance.
      const std::string before = kernels::active_kernels().variant;
      kernels::set_variant("reference");
      mqa_prior(q.data(), k.data(), v.data(), adj.data(), 0.7f, mode, b, heads, n, dh, causal, o3.data(), 1);
      kernels::set_variant(before);
      double worst = 0;
      for (size_t i = 0; i < o1.size(); ++i) worst = std::fmax(worst, std::fabs(o1[i] - o3[i]));
      t.check(worst < 1e-5, "mqa_prior %s causal=%d: fast vs reference %.3g", prior, causal, worst);
    }
  }
  // A zero prior scale is the plain attention in both forms.
  std::vector<float> a(q.size()), m(q.size()), none(q.size());
  mqa_prior(q.data(), k.data(), v.data(), adj.data(), 0.f, kernels::PriorMode::kAdditive, b, heads, n, dh, false, a.data(), 1);
  mqa_prior(q.data(), k.data(), v.data(), adj.data(), 0.f, kernels::PriorMode::kMultiplicative, b, heads, n, dh, false, m.data(), 1);
  mqa_prior(q.data(), k.data(), v.data(), nullptr, 0.f, kernels::PriorMode::kMultiplicative, b, heads, n, dh, false, none.data(), 1);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::fmax(worst, std::fmax(std::fabs(a[i] - none[i]), std::fabs(m[i] - none[i])));
  t.check(worst < 1e-6, "zero prior scale must equal no prior (%.3g)", worst);
  float o;
  t.check(throws_invalid([&] { mqa_prior(q.data(), k.data(), v.data(), nullptr, 0.f, kernels::PriorMode::kNone, b, 0, n, dh, false, &o, 1); },
                         "heads"),
          "heads = 0 must throw naming the heads");
}

}  // namespace

int main() {
  Test t;
  std::printf("kernel variant: %s\n", kernels::active_kernels().variant);
  test_parallel_for(t);
  test_parallel_for_stress(t);
  test_parallel_for_late_helpers(t);
  test_softargmax_op(t);
  test_mqa_op(t);
  return t.finish("test_ops");
}
