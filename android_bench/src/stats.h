// Latency statistics of a run: count, mean, standard deviation, min, percentiles, max.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace mobpose_bench {

// The q-th percentile (0..100) of `values` by linear interpolation between the closest ranks (numpy's default):
// position q/100 * (n - 1) in the sorted values. Throws std::invalid_argument for an empty list or q outside
// [0, 100].
double Percentile(std::vector<double> values, double q);

struct Summary {
  size_t count = 0;
  double mean = 0, std = 0, min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};

// The summary of `values` (population standard deviation); all zeros for an empty list.
Summary Summarize(const std::vector<double>& values);

}  // namespace mobpose_bench
