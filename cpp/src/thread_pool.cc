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
      done_.store(0);
      helpers_.store(helpers);
      exited_.store(0);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    Drain();
    // Every chosen helper checks out of this generation before the next can start, so no worker
    // ever runs a task of a finished call.
    auto finished = [&] { return done_.load() == count && exited_.load() == helpers; };
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
    for (size_t i = next_.fetch_add(1); i < count_.load(); i = next_.fetch_add(1)) {
      (*fn_.load())(i);
      done_.fetch_add(1);
    }
  }
  bool Chosen(size_t seen, int index) const {
    return generation_.load(std::memory_order_acquire) != seen && index < helpers_.load();
  }
  void Work(int index) {
    size_t seen = 0;
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      while (!stop_.load() && !Chosen(seen, index) && std::chrono::steady_clock::now() < until) {
        MOBPOSE_CPU_RELAX();
      }
      if (!Chosen(seen, index)) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_.load() || Chosen(seen, index); });
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      Drain();
      {
        std::lock_guard<std::mutex> lock(mu_);
        exited_.fetch_add(1);
      }
      finished_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex run_mu_, mu_;
  std::condition_variable wake_, finished_;
  // Written under mu_ by Run, read by spinning workers without it.
  std::atomic<const std::function<void(size_t)>*> fn_{nullptr};
  std::atomic<size_t> count_{0}, next_{0}, done_{0}, generation_{0};
  std::atomic<int> helpers_{0}, exited_{0};
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
