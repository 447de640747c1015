#include "generate/generate.h"

#include <chrono>

#include "generate/continuation.h"
#include "model/config.h"

namespace swa::generate {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kEos:
      return "eos";
    case StopReason::kStopString:
      return "stop-string";
    case StopReason::kMaxTokens:
      break;
  }
  return "max-tokens";
}

std::vector<int32_t> PromptTokens(std::string_view prompt) {
  std::vector<int32_t> tokens{model::kBos};
  for (char c : prompt) tokens.push_back(static_cast<uint8_t>(c));
  return tokens;
}

GenerateStats Generate(Decoder* decoder, const GenerateOptions& options,
                       const std::function<void(std::string_view)>& emit) {
  Continuation continuation(options);  // validates the options
  GenerateStats stats;

  decoder->Reset();
  const std::vector<int32_t> prompt = PromptTokens(options.prompt);
  stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  Clock::time_point start = Clock::now();
  std::span<const float> logits = decoder->PrefillLast(prompt);
  stats.prefill_seconds = Since(start);

  std::string text;
  while (!continuation.done()) {
    text.clear();
    const int32_t token = continuation.Push(logits, &text);
    if (!text.empty()) emit(text);
    if (continuation.done()) break;
    // The last sampled token needs no step: its successor is never sampled.
    start = Clock::now();
    logits = decoder->Step(token);
    stats.decode_seconds += Since(start);
    ++stats.decode_steps;
  }
  stats.generated_tokens = continuation.generated();
  stats.reason = continuation.reason();
  stats.cache_bytes = decoder->CacheBytes();
  return stats;
}

}  // namespace swa::generate
