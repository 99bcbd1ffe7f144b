#include "mobpose/thread_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define MOBPOSE_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define MOBPOSE_CPU_RELAX() asm volatile("yield")
#else
#define MOBPOSE_CPU_RELAX() ((void)0)
#endif

namespace mobpose {
namespace {

// How long a worker (and the caller, waiting for the last task) spins before sleeping: waking a
// sleeping thread costs tens of microseconds, as much as a whole small kernel call.
constexpr auto kSpin = std::chrono::microseconds(200);

class Pool {
 public:
  explicit Pool(int workers) {
    for (int w = 0; w < workers; ++w) threads_.emplace_back([this, w] { Work(w); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return static_cast<int>(threads_.size()); }

  void Run(size_t count, int helpers, const std::function<void(size_t)>& fn) {
    std::lock_guard<std::mutex> serial(run_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_.store(&fn);
      count_.store(count);
      next_.store(0);
      exited_.store(0);
      slots_.store(helpers, std::memory_order_release);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    Drain();
    // Every task is taken. Helpers that have not claimed a slot by now (asleep, or preempted by
    // another process on a busy machine) are not waited for: the slots left are withdrawn, and only
    // the helpers that joined must check out (they may still be running their last task). A helper
    // that wakes later finds no slot and goes back to waiting.
    const int left = slots_.exchange(0, std::memory_order_acq_rel);
    const int joined = helpers - (left > 0 ? left : 0);
    auto finished = [&] { return exited_.load(std::memory_order_acquire) == joined; };
    const auto until = std::chrono::steady_clock::now() + kSpin;
    while (!finished() && std::chrono::steady_clock::now() < until) MOBPOSE_CPU_RELAX();
    if (!finished()) {
      std::unique_lock<std::mutex> lock(mu_);
      finished_.wait(lock, finished);
    }
    fn_.store(nullptr);
  }

 private:
  void Drain() {
    for (size_t i = next_.fetch_add(1); i < count_.load(); i = next_.fetch_add(1)) (*fn_.load())(i);
  }
  bool Woken(size_t seen) const { return generation_.load(std::memory_order_acquire) != seen; }
  void Work(int /*index*/) {
    size_t seen = 0;
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      while (!stop_.load() && !Woken(seen) && std::chrono::steady_clock::now() < until) MOBPOSE_CPU_RELAX();
      if (!Woken(seen)) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_.load() || Woken(seen); });
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      // Claim a slot of the current call (Run withdraws the unclaimed ones once every task is taken).
      // A claim always belongs to the call in progress: a call returns only after its joined helpers
      // checked out, and the next one sets fresh slots before waking anyone.
      if (slots_.fetch_sub(1, std::memory_order_acq_rel) <= 0) continue;
      Drain();
      {
        std::lock_guard<std::mutex> lock(mu_);
        exited_.fetch_add(1, std::memory_order_acq_rel);
      }
      finished_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex run_mu_, mu_;
  std::condition_variable wake_, finished_;
  // Written under mu_ by Run, read by spinning workers without it.
  std::atomic<const std::function<void(size_t)>*> fn_{nullptr};
  std::atomic<size_t> count_{0}, next_{0}, generation_{0};
  // slots_: helpers that may still join the call in progress (it goes below 0 when late helpers find
  // none); exited_: helpers of the call that finished their part.
  std::atomic<int> slots_{0}, exited_{0};
  std::atomic<bool> stop_{false};
};

Pool& pool() {
  static Pool p(hardware_threads() - 1);
  return p;
}

}  // namespace

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void parallel_for(size_t count, int num_threads, const std::function<void(size_t)>& fn) {
  if (count == 0) return;
  const int threads = num_threads < 1 ? hardware_threads() : num_threads;
  if (threads == 1 || count == 1) {
    for (size_t i = 0; i < count; ++i) fn(i);
    return;
  }
  Pool& p = pool();
  int helpers = threads - 1;
  if (helpers > p.workers()) helpers = p.workers();
  if (static_cast<size_t>(helpers) > count - 1) helpers = static_cast<int>(count - 1);
  p.Run(count, helpers, fn);
}

}  // namespace mobpose
