#include "harness.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

namespace mobpose_bench {

using Clock = std::chrono::steady_clock;

static double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int64_t FrameClock::Next(double now_ms, double* wait_ms) {
  *wait_ms = 0;
  if (fps_ <= 0) return next_++;
  double period = period_ms();
  double arrival = static_cast<double>(next_) * period;
  if (now_ms < arrival) {
    *wait_ms = arrival - now_ms;
    return next_;
  }
  int64_t newest = static_cast<int64_t>(std::floor(now_ms / period));
  if (newest > next_) {
    dropped_ += newest - next_;
    next_ = newest;
  }
  return next_;
}

void FrameClock::Done(int64_t frame, double start_ms, double end_ms) {
  if (fps_ > 0) {
    double arrival = static_cast<double>(frame) * period_ms();
    if (start_ms > arrival + 1.0) ++late_;  // started more than 1 ms after its frame arrived
    if (end_ms > arrival + period_ms()) ++missed_;
  }
  next_ = frame + 1;
}

static std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::string SummaryLine(const RunRecord& r) {
  const Summary& s = r.latency_ms;
  std::ostringstream os;
  os << "count=" << s.count << " mean=" << Fmt(s.mean) << " std=" << Fmt(s.std) << " min=" << Fmt(s.min)
     << " p50=" << Fmt(s.p50) << " p90=" << Fmt(s.p90) << " p99=" << Fmt(s.p99) << " max=" << Fmt(s.max)
     << " (ms) init=" << Fmt(r.init_ms) << " first=" << Fmt(r.first_inference_ms) << " input_fps=" << r.input_fps
     << " deadlines_missed=" << r.deadlines_missed << " late_starts=" << r.late_starts
     << " dropped_frames=" << r.dropped_frames << " wall_s=" << Fmt(r.wall_s) << " backend=\"" << r.backend << "\"";
  return os.str();
}

static std::string SummaryJson(const Summary& s) {
  std::ostringstream os;
  os << "{\"count\": " << s.count << ", \"mean\": " << Fmt(s.mean) << ", \"std\": " << Fmt(s.std)
     << ", \"min\": " << Fmt(s.min) << ", \"p50\": " << Fmt(s.p50) << ", \"p90\": " << Fmt(s.p90)
     << ", \"p99\": " << Fmt(s.p99) << ", \"max\": " << Fmt(s.max) << "}";
  return os.str();
}

std::string ToJson(const RunRecord& r) {
  std::ostringstream os;
  os << "{\"bench\": \"android_bench\", \"backend\": " << JsonString(r.backend) << ", \"model\": "
     << JsonString(r.model) << ", \"input_fps\": " << r.input_fps << ", \"dry_run\": " << (r.dry_run ? "true" : "false")
     << ", \"latency_ms\": " << SummaryJson(r.latency_ms) << ", \"init_ms\": " << Fmt(r.init_ms)
     << ", \"first_inference_ms\": " << Fmt(r.first_inference_ms) << ", \"warmup_ms\": " << SummaryJson(r.warmup_ms)
     << ", \"deadlines_missed\": " << r.deadlines_missed << ", \"late_starts\": " << r.late_starts
     << ", \"dropped_frames\": " << r.dropped_frames << ", \"wall_s\": " << Fmt(r.wall_s) << ", \"params\": {"
     << r.params_json << "}}";
  return os.str();
}

void SummaryLineListener::OnEnd(const RunRecord& r) {
  std::printf("%s\n", SummaryLine(r).c_str());
  std::fflush(stdout);
}

static bool WriteAtomically(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return false;
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

void JsonFileListener::OnEnd(const RunRecord& r) {
  ok_ = WriteAtomically(path_, ToJson(r) + "\n");
  if (!ok_) std::fprintf(stderr, "android_bench: cannot write the result file %s\n", path_.c_str());
}

std::unique_ptr<Backend> MakeBackend(const std::string& name, std::string* error) {
  if (name == "spin") return MakeSpinBackend();
  if (name == "tflite") return MakeTfLiteBackend();
  if (name == "core") return MakeCoreBackend();
  *error = "unknown --backend=" + name + " (tflite, core or spin)";
  return nullptr;
}

static int Fail(std::string* error, const std::string& message) {
  *error = message;
  return 1;
}

int Harness::Run(std::string* error) {
  auto backend = MakeBackend(params_.GetString("backend"), error);
  if (!backend) return 1;
  return Run(std::move(backend), error);
}

int Harness::Run(std::unique_ptr<Backend> backend, std::string* error) {
  const int64_t runs = params_.GetInt("num_runs"), warmups = params_.GetInt("warmup_runs");
  const double fps = params_.GetFloat("input_fps"), max_secs = params_.GetFloat("max_secs");
  if (runs < 1) return Fail(error, "--num_runs must be >= 1");
  if (warmups < 0) return Fail(error, "--warmup_runs must be >= 0");
  if (fps < 0) return Fail(error, "--input_fps must be >= 0 (0: back to back)");
  if (max_secs < 0) return Fail(error, "--max_secs must be >= 0 (0: no limit)");
  for (Listener* l : listeners_) l->OnStart(params_);

  record_ = RunRecord{};
  record_.model = params_.GetString("graph");
  record_.input_fps = fps;
  record_.dry_run = params_.GetBool("dry_run");
  record_.params_json = params_.ToJsonMembers();

  auto t = Clock::now();
  if (!backend->Init(params_, error)) return 1;
  record_.init_ms = MsSince(t);
  record_.backend = backend->Describe();

  std::vector<uint8_t> input;
  const std::string& input_file = params_.GetString("input_file");
  if (!input_file.empty()) {
    std::ifstream f(input_file, std::ios::binary);
    if (!f) return Fail(error, "cannot read --input_file " + input_file);
    input.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (input.empty()) return Fail(error, "--input_file " + input_file + " is empty");
  }
  if (!backend->SetInputs(input, static_cast<uint64_t>(params_.GetInt("random_seed")), error)) return 1;

  t = Clock::now();
  if (!backend->Run(error)) return 1;
  record_.first_inference_ms = MsSince(t);

  if (!record_.dry_run) {
    std::vector<double> warm;
    for (int64_t i = 0; i < warmups; ++i) {
      t = Clock::now();
      if (!backend->Run(error)) return 1;
      warm.push_back(MsSince(t));
    }
    record_.warmup_ms = Summarize(warm);

    FrameClock clock(fps);
    std::vector<double> lat;
    lat.reserve(static_cast<size_t>(runs));
    const auto t0 = Clock::now();
    double last_end = 0;
    for (int64_t i = 0; i < runs; ++i) {
      double wait = 0;
      int64_t frame = clock.Next(MsSince(t0), &wait);
      if (wait > 0) std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                                            std::chrono::duration<double, std::milli>(
                                                                static_cast<double>(frame) * clock.period_ms())));
      double start = MsSince(t0);
      if (!backend->Run(error)) return 1;
      double end = MsSince(t0);
      clock.Done(frame, start, end);
      lat.push_back(end - start);
      last_end = end;
      if (max_secs > 0 && end > max_secs * 1000.0) break;
    }
    record_.latency_ms = Summarize(lat);
    record_.wall_s = last_end / 1000.0;
    record_.deadlines_missed = clock.missed();
    record_.late_starts = clock.late();
    record_.dropped_frames = clock.dropped();
  }

  const std::string& output_file = params_.GetString("output_file");
  if (!output_file.empty()) {
    std::vector<uint8_t> out = backend->Outputs();
    if (!WriteAtomically(output_file, std::string(out.begin(), out.end())))
      return Fail(error, "cannot write --output_file " + output_file);
  }
  for (Listener* l : listeners_) l->OnEnd(record_);
  return 0;
}

}  // namespace mobpose_bench
