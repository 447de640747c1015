// The body of POST /v1/completions (OpenAI's legacy completions API), parsed and checked
// before anything is queued: a bad body is answered 400 with a message naming the field.
//
// Accepted fields: prompt (string, required), max_tokens (integer >= 0, default 16),
// temperature (number >= 0, default 1), top_p (number in (0, 1], default 1), top_k
// (integer >= 0, 0 = all; an extension), seed (integer >= 0, default 0: a request without
// a seed is still reproducible), stop (a string or an array of non-empty strings), stream
// (boolean), model (string, ignored: the server has one model), n (only 1). Other fields
// are ignored, as clients send defaults such as "logprobs": null. A null field takes its
// default.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "generate/generate.h"

namespace swa::serve {

struct RequestLimits {
  int64_t max_prompt_bytes = 1 << 16;  // longer prompts are refused (400)
  int64_t max_tokens = 1 << 16;        // the largest max_tokens accepted
};

struct CompletionRequest {
  generate::GenerateOptions generation;  // prompt, sampling, max_tokens, stop
  bool stream = false;
};

// Throws swa::Error (kind invalid input) with a message naming the bad field.
CompletionRequest ParseCompletionRequest(std::string_view body, const RequestLimits& limits);

}  // namespace swa::serve
