// `swa generate --ckpt FILE --prompt TEXT`: streams the text a checkpoint continues the
// prompt with (generate/generate.h) to stdout as it is produced, then prints prefill and
// decode speeds and the KV caches' memory to stderr, so that stdout holds the text alone.
#include "generate/generate.h"

#include <cblas.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <string>

#include "cli/checkpoint_option.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/parallel.h"
#include "generate/decoder.h"

namespace swa::cli {
namespace {

// The flags' own checks, each naming its flag, before the checkpoint is read.
void CheckFlags(const GenerateCommandOptions& o) {
  if (o.ckpt.empty()) ThrowInvalid("--ckpt is required (a model checkpoint, e.g. RUN/model.safetensors)");
  if (!std::isfinite(o.temperature) || o.temperature < 0) {
    ThrowInvalid("--temperature must be finite and >= 0 (0 = greedy), got " + std::to_string(o.temperature));
  }
  if (o.top_k < 0) ThrowInvalid("--top-k must be >= 0 (0 = all tokens), got " + std::to_string(o.top_k));
  if (!(o.top_p > 0 && o.top_p <= 1))
    ThrowInvalid("--top-p must be in (0, 1], got " + std::to_string(o.top_p));
  if (o.max_tokens < 0) ThrowInvalid("--max-tokens must be >= 0, got " + std::to_string(o.max_tokens));
  for (const std::string& s : o.stop) {
    if (s.empty()) ThrowInvalid("--stop must not be empty (it would stop before any output)");
  }
  if (o.threads < 0) ThrowInvalid("--threads must be >= 0 (0 = all cores), got " + std::to_string(o.threads));
  if (o.chunk < 1 || o.chunk > generate::kMaxChunk) {
    ThrowInvalid("--chunk must be in [1, " + std::to_string(generate::kMaxChunk) + "], got " +
                 std::to_string(o.chunk));
  }
  if (o.stream_sinks < -1) ThrowInvalid("--stream-sinks must be >= 0, got " + std::to_string(o.stream_sinks));
  if (o.stream_window != 0 && o.stream_sinks < 0) ThrowInvalid("--stream-window needs --stream-sinks");
  if (o.stream_window < 0)
    ThrowInvalid("--stream-window must be >= 1, got " + std::to_string(o.stream_window));
}

double PerSecond(int64_t tokens, double seconds) {
  return seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0;
}

void PrintStats(const generate::Decoder& decoder, const generate::GenerateStats& s) {
  std::fprintf(stderr, "prefill: %lld tokens in %.3f s, %.1f tokens/s\n",
               static_cast<long long>(s.prompt_tokens), s.prefill_seconds,
               PerSecond(s.prompt_tokens, s.prefill_seconds));
  std::fprintf(stderr, "decode: %lld tokens in %.3f s, %.1f tokens/s (%lld generated, stop: %s)\n",
               static_cast<long long>(s.decode_steps), s.decode_seconds,
               PerSecond(s.decode_steps, s.decode_seconds), static_cast<long long>(s.generated_tokens),
               generate::StopReasonName(s.reason));
  const generate::StreamingOptions& st = decoder.streaming();
  std::string kind = decoder.CacheGrows() ? "growing with the sequence" : "bounded";
  if (st.enabled()) {
    kind += ", StreamingLLM: " + std::to_string(st.sinks) + " sinks + window " + std::to_string(st.window);
  }
  std::fprintf(stderr, "KV cache: %lld bytes (%.1f KiB) in %lld cache%s over %lld layers, %s\n",
               static_cast<long long>(s.cache_bytes), static_cast<double>(s.cache_bytes) / 1024.0,
               static_cast<long long>(decoder.NumCaches()), decoder.NumCaches() == 1 ? "" : "s",
               static_cast<long long>(decoder.config().num_hidden_layers), kind.c_str());
}

}  // namespace

CLI::App* AddGenerateCommand(CLI::App* app, GenerateCommandOptions* opt) {
  CLI::App* cmd =
      app->add_subcommand("generate", "Generate text from a checkpoint, streamed through KV caches");
  cmd->add_option("--ckpt", opt->ckpt, "Model checkpoint (e.g. RUN/model.safetensors)");
  cmd->add_option("--prompt", opt->prompt, "Text to continue (empty: start from BOS)");
  cmd->add_option("--temperature", opt->temperature, "Sampling temperature (0 = greedy)")
      ->capture_default_str();
  cmd->add_option("--top-k", opt->top_k, "Sample among the k most likely tokens (0 = all)")
      ->capture_default_str();
  cmd->add_option("--top-p", opt->top_p, "Nucleus sampling mass, in (0, 1]")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Seed of the sampler (std::mt19937_64)")->capture_default_str();
  cmd->add_option("--max-tokens", opt->max_tokens, "Most tokens to generate")->capture_default_str();
  cmd->add_option("--stop", opt->stop, "Stop when the output ends with this string (not printed); repeatable")
      ->allow_extra_args(false);
  cmd->add_option("-t,--threads", opt->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--chunk", opt->chunk, "Prefill tokens per piece (the caches' max_chunk)")
      ->capture_default_str();
  cmd->add_option("--stream-sinks", opt->stream_sinks,
                  "StreamingLLM: heads with an unbounded window see only the first S positions and the "
                  "last --stream-window (bounded memory, an approximation past S + W tokens)");
  cmd->add_option("--stream-window", opt->stream_window,
                  "StreamingLLM window W (default 4x the widest local window, or 1024)");
  return cmd;
}

int RunGenerate(const GenerateCommandOptions& opt) {
  try {
    CheckFlags(opt);
    model::Checkpoint ckpt = LoadCheckpointOption(opt.ckpt);
    const int threads = ThreadPool::ResolveThreads(opt.threads);
    openblas_set_num_threads(threads);
    generate::DecoderOptions d;
    d.chunk = opt.chunk;
    d.threads = threads;
    d.streaming.sinks = opt.stream_sinks;
    d.streaming.window = opt.stream_window;
    generate::Decoder decoder(std::move(ckpt.config), std::move(ckpt.params), d);
    generate::GenerateOptions g;
    g.prompt = opt.prompt;
    g.sampling = {opt.temperature, opt.top_k, opt.top_p, opt.seed};
    g.max_tokens = opt.max_tokens;
    g.stop = opt.stop;
    bool ends_in_newline = true;
    const generate::GenerateStats stats = generate::Generate(&decoder, g, [&](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      ends_in_newline = text.back() == '\n';
    });
    // The statistics start on a line of their own when stdout and stderr share a terminal.
    if (!ends_in_newline) std::fputc('\n', stderr);
    PrintStats(decoder, stats);
    return 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "swa generate: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace swa::cli
