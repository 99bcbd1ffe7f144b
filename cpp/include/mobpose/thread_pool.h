// A small persistent thread pool: the caller of parallel_for is one of the threads.
#pragma once

#include <cstddef>
#include <functional>

namespace mobpose {

// Hardware threads of this machine (at least 1).
int hardware_threads();

// Runs fn(i) for every i in [0, count) on at most num_threads threads (values < 1 mean all
// hardware threads) and returns when all are done. Calls are serialised; fn must not call
// parallel_for itself.
void parallel_for(size_t count, int num_threads, const std::function<void(size_t)>& fn);

}  // namespace mobpose
