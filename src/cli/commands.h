// The subcommands of the `swa` command.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace swa::cli {

struct CheckOptions {
  int threads = 0;
  int random = 0;          // also run this many random cases, forward and backward
  int64_t max_len = 300;   // longest sequence of a random case
  uint64_t seed = 1;       // of the random cases
};
int RunCheck(const CheckOptions& opt);

struct BenchOptions {
  int threads = 0;         // 0 = all cores
  std::string json_path;   // also write the results as JSON here
  bool quick = false;      // smaller shapes (smoke test)
  std::string suite = "all";  // forward, backward, decode, train or all
};
// `swa bench [suite]`: runs the suites, prints their tables and writes one JSON
// document {"forward": ..., "decode": ...} to json_path if set.
int RunBench(const BenchOptions& opt);
// The suites fill `doc` with their results and targets (bench.cc, bench_decode.cc).
int RunForwardBench(const BenchOptions& opt, nlohmann::json* doc);
// Streaming decode through the KV cache.
int RunDecodeBench(const BenchOptions& opt, nlohmann::json* doc);
// The backward against the forward at the same shape.
int RunBackwardBench(const BenchOptions& opt, nlohmann::json* doc);
// A training step of the ~10M-parameter mixed-window model against the FMA peak.
int RunTrainBench(const BenchOptions& opt, nlohmann::json* doc);

}  // namespace swa::cli
