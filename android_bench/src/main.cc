// android_bench: times a TFLite model (or the spin workload) with frames arriving at --input_fps.
#include <cstdio>

#include "harness.h"

int main(int argc, char** argv) {
  using namespace mobpose_bench;
  Params params = Params::Defaults();
  std::string error;
  if (!params.Parse(argc, argv, &error)) {
    std::fprintf(stderr, "android_bench: %s\n", error.c_str());
    return 2;
  }
  if (params.GetBool("help")) {
    std::printf("usage: android_bench --graph=MODEL.tflite [--flag=value ...]\n%s", params.Usage().c_str());
    return 0;
  }
  Harness harness(params);
  SummaryLineListener line;
  JsonFileListener json(params.GetString("result_file"));
  harness.AddListener(&line);
  if (!params.GetString("result_file").empty()) harness.AddListener(&json);
  if (harness.Run(&error) != 0) {
    std::fprintf(stderr, "android_bench: %s\n", error.c_str());
    return 1;
  }
  return json.ok() ? 0 : 1;
}
