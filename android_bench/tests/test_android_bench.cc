// Host tests of the harness: flags, statistics, the frame clock, and paced runs of the spin workload.
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.h"

using namespace mobpose_bench;

static int failures = 0, checks = 0;
#define CHECK(cond)                                                              \
  do {                                                                           \
    ++checks;                                                                    \
    if (!(cond)) {                                                               \
      ++failures;                                                                \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                            \
  } while (0)
#define CHECK_NEAR(a, b, tol) CHECK(std::fabs((a) - (b)) <= (tol))

static bool ParseArgs(Params* p, std::vector<const char*> args, std::string* error) {
  args.insert(args.begin(), "android_bench");
  return p->Parse(static_cast<int>(args.size()), args.data(), error);
}

static void TestFlags() {
  Params p = Params::Defaults();
  CHECK(p.GetInt("num_runs") == 1000);
  CHECK(p.GetFloat("input_fps") == 30.0);
  CHECK(p.GetString("delegate") == "xnnpack");
  CHECK(!p.GetBool("dry_run"));
  std::string err;
  CHECK(ParseArgs(&p, {"--num_runs=7", "--input_fps=0", "--graph=a b.tflite", "--dry_run", "--delegate=gpu"}, &err));
  CHECK(p.GetInt("num_runs") == 7);
  CHECK(p.GetFloat("input_fps") == 0.0);
  CHECK(p.GetString("graph") == "a b.tflite");
  CHECK(p.GetBool("dry_run"));
  CHECK(ParseArgs(&p, {"--dry_run=false"}, &err) && !p.GetBool("dry_run"));
  CHECK(!ParseArgs(&p, {"--num_runs=many"}, &err) && err.find("--num_runs") != std::string::npos);
  CHECK(!ParseArgs(&p, {"--num_runs=5x"}, &err));
  CHECK(!ParseArgs(&p, {"--input_fps=nan"}, &err) && err.find("--input_fps") != std::string::npos);
  CHECK(!ParseArgs(&p, {"--bogus=1"}, &err) && err.find("unknown flag --bogus") != std::string::npos);
  CHECK(!ParseArgs(&p, {"--num_runs"}, &err) && err.find("needs a value") != std::string::npos);
  CHECK(!ParseArgs(&p, {"graph.tflite"}, &err));
  CHECK(!ParseArgs(&p, {"--dry_run=maybe"}, &err));
  std::string usage = Params::Defaults().Usage();
  for (const char* f : {"--graph=", "--num_runs=1000", "--input_fps=30", "--warmup_runs=10", "--num_threads=1",
                        "--delegate=xnnpack", "--gpu_precision=fp16", "--input_file=", "--result_file=",
                        "--output_file=", "--max_secs=150"})
    CHECK(usage.find(f) != std::string::npos);
  CHECK(JsonString("a\"b\\c\n") == "\"a\\\"b\\\\c\\n\"");
}

static void TestStats() {
  // numpy.percentile([1..10], q) (linear): 50 -> 5.5, 90 -> 9.1, 99 -> 9.91, 0 -> 1, 100 -> 10
  std::vector<double> v{7, 3, 10, 1, 5, 2, 9, 4, 8, 6};
  CHECK_NEAR(Percentile(v, 50), 5.5, 1e-12);
  CHECK_NEAR(Percentile(v, 90), 9.1, 1e-12);
  CHECK_NEAR(Percentile(v, 99), 9.91, 1e-12);
  CHECK_NEAR(Percentile(v, 0), 1.0, 1e-12);
  CHECK_NEAR(Percentile(v, 100), 10.0, 1e-12);
  CHECK_NEAR(Percentile({15, 20, 35, 40, 50}, 40), 29.0, 1e-12);  // numpy: 29.0
  CHECK_NEAR(Percentile({42}, 99), 42.0, 0);
  bool threw = false;
  try {
    Percentile({}, 50);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
  Summary s = Summarize(v);
  CHECK(s.count == 10);
  CHECK_NEAR(s.mean, 5.5, 1e-12);
  CHECK_NEAR(s.std, std::sqrt(8.25), 1e-12);  // population std of 1..10
  CHECK(s.min == 1 && s.max == 10);
  CHECK(Summarize({}).count == 0);
}

static void TestFrameClock() {
  FrameClock c(10);  // a frame every 100 ms
  double wait = -1;
  CHECK(c.Next(0, &wait) == 0 && wait == 0);
  c.Done(0, 0, 50);                      // on time, within its period
  CHECK(c.Next(50, &wait) == 1 && wait == 50);  // early: wait for frame 1
  c.Done(1, 100, 250);                   // overran: ends after frame 2 arrived
  CHECK(c.missed() == 1 && c.late() == 0);
  CHECK(c.Next(250, &wait) == 2 && wait == 0 && c.dropped() == 0);
  c.Done(2, 250, 260);                   // started 50 ms after its frame: late, but done before frame 3
  CHECK(c.late() == 1 && c.missed() == 1);
  CHECK(c.Next(260, &wait) == 3 && std::fabs(wait - 40) < 1e-9);
  CHECK(c.Next(1030, &wait) == 10 && c.dropped() == 7);  // frames 3..9 arrived and were never started
  FrameClock free_run(0);
  CHECK(free_run.Next(123, &wait) == 0 && wait == 0);
  free_run.Done(0, 123, 10000);
  CHECK(free_run.missed() == 0 && free_run.late() == 0);
}

static RunRecord RunSpin(std::vector<const char*> args) {
  Params p = Params::Defaults();
  std::string err;
  if (!ParseArgs(&p, args, &err)) throw std::runtime_error(err);
  Harness h(p);
  if (h.Run(MakeSpinBackend(), &err) != 0) throw std::runtime_error(err);
  return h.record();
}

static void TestPacing() {
  // A 45 ms workload with frames every 33.3 ms: every inference ends after the next frame arrived.
  RunRecord slow = RunSpin({"--backend=spin", "--spin_ms=45", "--num_runs=12", "--warmup_runs=1", "--input_fps=30"});
  CHECK(slow.latency_ms.count == 12);
  CHECK(slow.deadlines_missed == 12);
  CHECK(slow.late_starts >= 10);
  CHECK(slow.dropped_frames >= 1);  // 12 x 45 ms spans 16 frames
  CHECK(slow.latency_ms.p50 >= 45.0);
  // A 2 ms workload with frames every 20 ms: none is missed or dropped, and the run lasts ~ the frames' span.
  RunRecord fast = RunSpin({"--backend=spin", "--spin_ms=2", "--num_runs=15", "--warmup_runs=1", "--input_fps=50"});
  CHECK(fast.deadlines_missed == 0);
  CHECK(fast.dropped_frames == 0);
  CHECK(fast.wall_s >= 14 * 0.020);  // frame 14 arrives at 280 ms: the harness waited for its frames
  // Back to back: no frames, no deadlines; the run takes about runs x work.
  RunRecord b2b = RunSpin({"--backend=spin", "--spin_ms=2", "--num_runs=15", "--warmup_runs=0", "--input_fps=0"});
  CHECK(b2b.deadlines_missed == 0 && b2b.late_starts == 0 && b2b.dropped_frames == 0);
  CHECK(b2b.wall_s >= 15 * 0.002 && b2b.wall_s < 14 * 0.020);
  // --max_secs stops early.
  RunRecord capped = RunSpin({"--backend=spin", "--spin_ms=5", "--num_runs=1000", "--input_fps=0", "--max_secs=0.05"});
  CHECK(capped.latency_ms.count < 1000 && capped.latency_ms.count >= 10);
}

static void TestDryRunAndFiles() {
  RunRecord dry = RunSpin({"--backend=spin", "--spin_ms=3", "--dry_run"});
  CHECK(dry.dry_run && dry.latency_ms.count == 0 && dry.first_inference_ms >= 3.0);
  std::string out = "test_android_bench_out.bin";
  RunSpin({"--backend=spin", "--spin_ms=0", "--num_runs=4", "--warmup_runs=2", "--input_fps=0",
           ("--output_file=" + out).c_str()});
  std::ifstream f(out, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(bytes.size() == 8);  // the spin backend's output: its run count
  if (bytes.size() == 8) {
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    CHECK(n == 1 + 2 + 4);  // first inference + warm-ups + timed runs
  }
  std::remove(out.c_str());
  // Errors name the problem.
  Params p = Params::Defaults();
  std::string err;
  CHECK(ParseArgs(&p, {"--backend=spin", "--input_file=/nonexistent/input.bin"}, &err));
  Harness h(p);
  CHECK(h.Run(MakeSpinBackend(), &err) == 1 && err.find("/nonexistent/input.bin") != std::string::npos);
  Params q = Params::Defaults();
  CHECK(ParseArgs(&q, {"--backend=spin", "--num_runs=0"}, &err));
  Harness h2(q);
  CHECK(h2.Run(MakeSpinBackend(), &err) == 1 && err.find("--num_runs") != std::string::npos);
  CHECK(MakeBackend("cuda", &err) == nullptr && err.find("cuda") != std::string::npos);
  Params r = Params::Defaults();
  CHECK(ParseArgs(&r, {"--graph=x.tflite", "--tflite_lib=/nonexistent/libtflite.so"}, &err));
  Harness h3(r);
  CHECK(h3.Run(&err) == 1 && err.find("/nonexistent/libtflite.so") != std::string::npos);
  Params s = Params::Defaults();
  Harness h4(s);
  CHECK(h4.Run(&err) == 1 && err.find("--graph") != std::string::npos);
  // The record as a line and as JSON.
  RunRecord rec = RunSpin({"--backend=spin", "--spin_ms=1", "--num_runs=5", "--input_fps=0"});
  std::string line = SummaryLine(rec), json = ToJson(rec);
  for (const char* k : {"count=5", " mean=", " std=", " min=", " p50=", " p90=", " p99=", " max=", " init=",
                        " first=", " deadlines_missed=0", " dropped_frames="})
    CHECK(line.find(k) != std::string::npos);
  for (const char* k : {"\"latency_ms\": {\"count\": 5", "\"init_ms\"", "\"first_inference_ms\"",
                        "\"deadlines_missed\": 0", "\"params\": {", "\"num_runs\": 5"})
    CHECK(json.find(k) != std::string::npos);
}

int main() {
  TestFlags();
  TestStats();
  TestFrameClock();
  TestPacing();
  TestDryRunAndFiles();
  std::printf("test_android_bench: %d passed, %d failed\n", checks - failures, failures);
  return failures ? 1 : 0;
}
