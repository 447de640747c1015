// The generation loop of `swa generate`: the prompt prefilled through the decoder's
// caches, then one sampled token at a time, the text streamed as it becomes printable.
//
// Every generation starts a new sequence with BOS, then the prompt's bytes (an empty
// prompt starts from BOS alone). Only bytes 0..255 and EOS are sampled (BOS, PAD and the
// rows past them are never produced by the training data); EOS ends the text. The output
// bytes pass through StopStrings (generate/stop_strings.h), then Utf8Stream
// (generate/utf8_stream.h): what reaches `emit` is valid UTF-8, invalid bytes the model
// produced shown as U+FFFD, and no stop string.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "generate/decoder.h"
#include "generate/sampler.h"

namespace swa::generate {

struct GenerateOptions {
  std::string prompt;  // bytes, any values
  SamplerOptions sampling;
  int64_t max_tokens = 256;       // most tokens sampled (EOS included), >= 0
  std::vector<std::string> stop;  // each non-empty
};

enum class StopReason { kMaxTokens, kEos, kStopString };
const char* StopReasonName(StopReason reason);  // "max-tokens", "eos", "stop-string"

struct GenerateStats {
  int64_t prompt_tokens = 0;     // BOS and the prompt's bytes
  int64_t generated_tokens = 0;  // tokens sampled, EOS and a stop string's bytes included
  int64_t decode_steps = 0;      // Decoder::Step calls (one per sampled token but the last)
  double prefill_seconds = 0;    // the prompt through the model
  double decode_seconds = 0;     // the Step calls
  int64_t cache_bytes = 0;       // Decoder::CacheBytes() at the end
  StopReason reason = StopReason::kMaxTokens;
};

// Throws swa::Error for bad options (max_tokens < 0, sampler options, an empty stop
// string) before anything runs. `emit` receives each piece of text as soon as it is
// printable.
GenerateStats Generate(Decoder* decoder, const GenerateOptions& options,
                       const std::function<void(std::string_view)>& emit);

// The tokens a generation starts from: BOS, then the prompt's bytes.
std::vector<int32_t> PromptTokens(std::string_view prompt);

}  // namespace swa::generate
