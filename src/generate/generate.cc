#include "generate/generate.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "common/error.h"
#include "generate/stop_strings.h"
#include "generate/utf8_stream.h"
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
  if (options.max_tokens < 0) {
    ThrowInvalid("max-tokens must be >= 0, got " + std::to_string(options.max_tokens));
  }
  Sampler sampler(options.sampling);  // validates the sampling options
  StopStrings stops(options.stop);
  Utf8Stream utf8;
  GenerateStats stats;

  decoder->Reset();
  const std::vector<int32_t> prompt = PromptTokens(options.prompt);
  stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  Clock::time_point start = Clock::now();
  std::span<const float> logits = decoder->PrefillLast(prompt);
  stats.prefill_seconds = Since(start);

  // Logits of the tokens that may be sampled: bytes and EOS; -inf excludes the rest.
  std::vector<float> allowed(logits.size(), -std::numeric_limits<float>::infinity());
  std::string released, text;
  for (int64_t i = 0; i < options.max_tokens; ++i) {
    std::copy_n(logits.data(), 256, allowed.data());
    allowed[model::kEos] = logits[model::kEos];
    const int32_t token = sampler.Sample(allowed);
    ++stats.generated_tokens;
    if (token == model::kEos) {
      stats.reason = StopReason::kEos;
      break;
    }
    released.clear();
    text.clear();
    const bool stopped = stops.Push(static_cast<uint8_t>(token), &released);
    for (char c : released) utf8.Push(static_cast<uint8_t>(c), &text);
    if (!text.empty()) emit(text);
    if (stopped) {
      stats.reason = StopReason::kStopString;
      break;
    }
    if (i + 1 < options.max_tokens) {
      start = Clock::now();
      logits = decoder->Step(token);
      stats.decode_seconds += Since(start);
      ++stats.decode_steps;
    }
  }
  released.clear();
  text.clear();
  stops.Flush(&released);
  for (char c : released) utf8.Push(static_cast<uint8_t>(c), &text);
  utf8.Finish(&text);
  if (!text.empty()) emit(text);
  stats.cache_bytes = decoder->CacheBytes();
  return stats;
}

}  // namespace swa::generate
