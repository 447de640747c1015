// The sampling half of the generation loop, one token at a time: the caller runs the
// model (a generate::Decoder, or several streams batched by a server) and hands each
// next-token distribution here; this samples the token and turns the output bytes into
// printable text (stop strings, then UTF-8), as generate/generate.h describes.
//
// A server advances many continuations in lockstep, so nothing here owns the model or
// blocks: Push takes the logits of the next token and says whether the sequence goes on.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "generate/generate.h"
#include "generate/sampler.h"
#include "generate/stop_strings.h"
#include "generate/utf8_stream.h"

namespace swa::generate {

class Continuation {
 public:
  // Throws swa::Error for bad options (max_tokens < 0, sampler options, an empty stop
  // string). With max_tokens 0 the continuation is done at once.
  explicit Continuation(const GenerateOptions& options);

  // logits [V] of the next token (V > EOS). Samples among bytes 0..255 and EOS, appends the
  // text that became printable to *text, and returns the token. When done() afterwards,
  // the held-back text has been appended too and the token must not be fed to the model.
  int32_t Push(std::span<const float> logits, std::string* text);

  bool done() const { return done_; }
  StopReason reason() const { return reason_; }
  int64_t generated() const { return generated_; }  // tokens sampled so far

 private:
  void Finish(StopReason reason, std::string* text);

  int64_t max_tokens_;
  Sampler sampler_;
  StopStrings stops_;
  Utf8Stream utf8_;
  std::vector<float> allowed_;  // [V] the logits of bytes and EOS, -inf elsewhere
  std::string released_;
  int64_t generated_ = 0;
  bool done_ = false;
  StopReason reason_ = StopReason::kMaxTokens;
};

}  // namespace swa::generate
