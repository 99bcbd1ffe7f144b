// The generic harness: loads a backend, warms it up, then times inferences with frames arriving on a fixed-rate
// clock (or back to back), and reports through listeners.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "params.h"
#include "stats.h"

namespace mobpose_bench {

// The frame clock of a paced run. Frame f arrives at start + f / fps. Before each inference the harness asks
// for the frame to process: when it is early it waits for its frame; when the previous inference overran, the
// frames that arrived meanwhile and were not started are dropped (a live camera keeps only the newest) and the
// newest is processed at once, started late. An inference misses its deadline when it ends after the next frame
// arrives (its frame's arrival + 1 / fps). fps 0: back to back, no frames, no deadlines.
class FrameClock {
 public:
  explicit FrameClock(double fps) : fps_(fps) {}
  double period_ms() const { return fps_ > 0 ? 1000.0 / fps_ : 0.0; }
  // Given the time now (ms since the run's start), the frame to process and the ms to wait for it (0 when it has
  // arrived). Counts dropped frames.
  int64_t Next(double now_ms, double* wait_ms);
  // The inference of `frame` ran [start_ms, end_ms): counts a late start and a missed deadline.
  void Done(int64_t frame, double start_ms, double end_ms);
  int64_t dropped() const { return dropped_; }
  int64_t late() const { return late_; }
  int64_t missed() const { return missed_; }

 private:
  double fps_;
  int64_t next_ = 0, dropped_ = 0, late_ = 0, missed_ = 0;
};

struct RunRecord {
  std::string backend, model;
  double input_fps = 0;
  Summary latency_ms;          // the timed inferences, each from its start to its end
  double init_ms = 0;          // backend Init (load, delegate, allocation)
  double first_inference_ms = 0;
  Summary warmup_ms;
  int64_t deadlines_missed = 0, late_starts = 0, dropped_frames = 0;
  double wall_s = 0;           // the timed runs, first start to last end
  bool dry_run = false;
  std::string params_json;     // every flag's value, JSON members
};

class Listener {
 public:
  virtual ~Listener() = default;
  virtual void OnStart(const Params&) {}
  virtual void OnEnd(const RunRecord&) {}
};

// One machine-readable line on stdout: count= mean= std= min= p50= p90= p99= max= (ms) init= first= ...
class SummaryLineListener : public Listener {
 public:
  void OnEnd(const RunRecord& r) override;
};
// The record as JSON in a file (--result_file), written through a temporary file and a rename.
class JsonFileListener : public Listener {
 public:
  explicit JsonFileListener(std::string path) : path_(std::move(path)) {}
  void OnEnd(const RunRecord& r) override;
  bool ok() const { return ok_; }

 private:
  std::string path_;
  bool ok_ = true;
};

std::string SummaryLine(const RunRecord& r);
std::string ToJson(const RunRecord& r);

class Harness {
 public:
  explicit Harness(Params params) : params_(std::move(params)) {}
  void AddListener(Listener* l) { listeners_.push_back(l); }
  // Runs the benchmark; returns 0, or 1 with `error` set (bad flags, unreadable files, a failed inference).
  int Run(std::string* error);
  // The same with a given backend (tests).
  int Run(std::unique_ptr<Backend> backend, std::string* error);
  const RunRecord& record() const { return record_; }

 private:
  Params params_;
  std::vector<Listener*> listeners_;
  RunRecord record_;
};

}  // namespace mobpose_bench
