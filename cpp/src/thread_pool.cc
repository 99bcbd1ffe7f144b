#include "mobpose/thread_pool.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace mobpose {
namespace {

class Pool {
 public:
  explicit Pool(int workers) {
    for (int w = 0; w < workers; ++w) threads_.emplace_back([this, w] { Work(w); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return static_cast<int>(threads_.size()); }

  void Run(size_t count, int helpers, const std::function<void(size_t)>& fn) {
    std::lock_guard<std::mutex> serial(run_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      count_ = count;
      next_.store(0);
      done_.store(0);
      helpers_ = helpers;
      exited_ = 0;
      ++generation_;
    }
    wake_.notify_all();
    Drain();
    std::unique_lock<std::mutex> lock(mu_);
    // Every chosen helper checks out of this generation before the next can start, so no worker
    // ever runs a task of a finished call.
    finished_.wait(lock, [&] { return done_.load() == count_.load() && exited_ == helpers_; });
    fn_ = nullptr;
  }

 private:
  void Drain() {
    for (size_t i = next_.fetch_add(1); i < count_.load(); i = next_.fetch_add(1)) {
      (*fn_.load())(i);
      done_.fetch_add(1);
    }
  }
  void Work(int index) {
    size_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || (generation_ != seen && index < helpers_); });
      if (stop_) return;
      seen = generation_;
      lock.unlock();
      Drain();
      lock.lock();
      ++exited_;
      finished_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex run_mu_, mu_;
  std::condition_variable wake_, finished_;
  // Read by workers outside the lock while a call runs.
  std::atomic<const std::function<void(size_t)>*> fn_{nullptr};
  std::atomic<size_t> count_{0};
  std::atomic<size_t> next_{0}, done_{0};
  int helpers_ = 0, exited_ = 0;
  size_t generation_ = 0;
  bool stop_ = false;
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
