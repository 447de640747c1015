// The subcommands of the `swa` command.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace swa::cli {

struct CheckOptions {
  int threads = 0;
  int random = 0;         // also run this many random cases, forward and backward
  int64_t max_len = 300;  // longest sequence of a random case
  uint64_t seed = 1;      // of the random cases
};
int RunCheck(const CheckOptions& opt);

struct BenchOptions {
  int threads = 0;            // 0 = all cores
  std::string json_path;      // also write the results as JSON here
  bool quick = false;         // smaller shapes (smoke test)
  std::string suite = "all";  // forward, backward, decode, train, generate or all
  // The generate suite: a checkpoint (default: preset uniform, random weights), its decode
  // contexts and prefill lengths (comma-separated; empty = the defaults, "0" = none).
  std::string ckpt, decode_contexts, prefill_lengths;
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
// A whole model's decode and prefill through the cached decoder, at growing contexts.
int RunGenerateBench(const BenchOptions& opt, nlohmann::json* doc);

// `swa train` (train.cc): the options of train/trainer.h, plus how the model is named.
struct TrainCommandOptions {
  std::string preset;       // a name of model/presets.h, or
  std::string config_path;  // a config JSON file (docs/MODEL.md)
  std::string size;         // "default" or "tiny" (PresetSize), presets only
  std::vector<std::string> data;
  std::vector<std::string> ext;  // file extensions to read (empty: all)
  std::string out;
  std::string dtype = "f32";  // of the saved weights: f32 or bf16
  int64_t seq = 0, batch = 0, steps = 0, stop_after = 0, warmup = 0;
  double lr = 0, min_lr = 0, weight_decay = 0, clip = 0, val_fraction = 0;
  uint64_t seed = 0;
  int threads = 0;
  int64_t eval_every = 0, eval_batches = 0, save_every = 0;
  bool recompute = false, resume = false;
};
// Adds the subcommand with its flags (defaults from train::TrainOptions) bound to `opt`.
CLI::App* AddTrainCommand(CLI::App* app, TrainCommandOptions* opt);
// Exit status: 0 done, 1 bad input or a failed run (message on stderr), 128 + the signal
// number when SIGINT (130) or SIGTERM (143) stopped the run after a checkpoint.
int RunTrain(const TrainCommandOptions& opt);

// `swa eval` (eval.cc): bits per byte at several context lengths, and the recall probe.
struct EvalCommandOptions {
  std::string ckpt;
  std::vector<std::string> data, ext;
  std::string split = "all";  // all, val or train (swa train's split)
  double val_fraction = 0.05;
  std::string contexts = "256,1024,8192,65536";
  int64_t max_bytes = 0;         // 0 = every byte
  int64_t recall_trials = 20;    // 0 = no probe
  std::string recall_distances;  // comma-separated; empty = a quarter of and 4x the widest local window
  int64_t chunk = 512;
  int threads = 0;
  bool json = false;
};
CLI::App* AddEvalCommand(CLI::App* app, EvalCommandOptions* opt);
int RunEval(const EvalCommandOptions& opt);

// `swa preset NAME` (preset.cc): prints the preset's config JSON.
struct PresetCommandOptions {
  std::string name;
  std::string size = "default";  // or "tiny"
};
CLI::App* AddPresetCommand(CLI::App* app, PresetCommandOptions* opt);
int RunPreset(const PresetCommandOptions& opt);

// `swa generate` (generate.cc): text from a checkpoint, streamed through the KV caches.
struct GenerateCommandOptions {
  std::string ckpt;
  std::string prompt;
  double temperature = 1.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = all tokens
  double top_p = 1.0;
  uint64_t seed = 0;
  int64_t max_tokens = 256;
  std::vector<std::string> stop;
  int threads = 0;
  int64_t chunk = 256;        // prefill tokens per piece
  int64_t stream_sinks = -1;  // StreamingLLM sinks; -1 = off
  int64_t stream_window = 0;  // StreamingLLM window; 0 = default
};
CLI::App* AddGenerateCommand(CLI::App* app, GenerateCommandOptions* opt);
// Exit status: 0 done, 1 bad input or a failed run (message on stderr).
int RunGenerate(const GenerateCommandOptions& opt);

// `swa serve` (serve.cc): an OpenAI-compatible completions server (docs/SERVE.md).
struct ServeCommandOptions {
  std::string ckpt;
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0: any free port
  int64_t max_streams = 8;             // generated at once
  int64_t max_queue = 64;              // waiting beyond those
  int64_t prefill_chunk = 64;          // prompt tokens per stream per step
  int64_t max_prompt_bytes = 1 << 16;  // longer prompts are refused
  int threads = 1;                     // of the model; 0 = all cores
};
CLI::App* AddServeCommand(CLI::App* app, ServeCommandOptions* opt);
// Exit status: 0 stopped by SIGTERM/SIGINT, 1 bad input or a failure (message on stderr).
int RunServe(const ServeCommandOptions& opt);

}  // namespace swa::cli
