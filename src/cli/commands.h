// The subcommands of the `swa` command.
#pragma once

#include <string>

namespace swa::cli {

struct CheckOptions {
  int threads = 0;
};
int RunCheck(const CheckOptions& opt);

struct BenchOptions {
  int threads = 0;         // 0 = all cores
  std::string json_path;   // also write the results as JSON here
  bool quick = false;      // smaller shapes (smoke test)
  std::string suite = "forward";
};
int RunBench(const BenchOptions& opt);
// `swa bench decode` (bench_decode.cc): streaming decode through the KV cache.
int RunDecodeBench(const BenchOptions& opt);

}  // namespace swa::cli
