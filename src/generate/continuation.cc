#include "generate/continuation.h"

#include <algorithm>
#include <limits>

#include "common/error.h"
#include "model/config.h"

namespace swa::generate {
namespace {

int64_t CheckedMaxTokens(int64_t max_tokens) {
  if (max_tokens < 0) ThrowInvalid("max-tokens must be >= 0, got " + std::to_string(max_tokens));
  return max_tokens;
}

}  // namespace

Continuation::Continuation(const GenerateOptions& options)
    : max_tokens_(CheckedMaxTokens(options.max_tokens)), sampler_(options.sampling), stops_(options.stop) {
  done_ = max_tokens_ == 0;
}

int32_t Continuation::Push(std::span<const float> logits, std::string* text) {
  if (done_) ThrowInvalid("Continuation::Push after the continuation is done");
  if (static_cast<int64_t>(logits.size()) <= model::kEos) {
    ThrowInvalid("logits must cover EOS (" + std::to_string(model::kEos) + "), got " +
                 std::to_string(logits.size()) + " values");
  }
  // Only bytes and EOS may be sampled: -inf excludes BOS, PAD and the padding rows.
  allowed_.assign(logits.size(), -std::numeric_limits<float>::infinity());
  std::copy_n(logits.data(), 256, allowed_.data());
  allowed_[model::kEos] = logits[model::kEos];
  const int32_t token = sampler_.Sample(allowed_);
  ++generated_;
  if (token == model::kEos) {
    Finish(StopReason::kEos, text);
    return token;
  }
  released_.clear();
  const bool stopped = stops_.Push(static_cast<uint8_t>(token), &released_);
  for (char c : released_) utf8_.Push(static_cast<uint8_t>(c), text);
  if (stopped) {
    Finish(StopReason::kStopString, text);
  } else if (generated_ == max_tokens_) {
    Finish(StopReason::kMaxTokens, text);
  }
  return token;
}

void Continuation::Finish(StopReason reason, std::string* text) {
  done_ = true;
  reason_ = reason;
  released_.clear();
  stops_.Flush(&released_);
  for (char c : released_) utf8_.Push(static_cast<uint8_t>(c), text);
  utf8_.Finish(text);
}

}  // namespace swa::generate
