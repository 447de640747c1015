// One request's channel between the scheduler thread, which appends text as it is
// produced and finishes the stream, and the HTTP thread that answers the request, which
// waits for text and may cancel (the client went away). Everything is under one mutex:
// a piece of text per token is far below the cost of a model step.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "serve/completion_request.h"

namespace swa::serve {

// How a stream ended. kStop and kLength are OpenAI's finish reasons ("stop": EOS or a
// stop string; "length": max_tokens); kAbort: the server is shutting down or the client
// cancelled; kError: the model failed (the message says why).
enum class FinishReason { kStop, kLength, kAbort, kError };
const char* FinishReasonName(FinishReason reason);  // "stop", "length", "abort", "error"

class Stream {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Stream(CompletionRequest request) : request_(std::move(request)), enqueued_(Clock::now()) {}

  const CompletionRequest& request() const { return request_; }
  Clock::time_point enqueued() const { return enqueued_; }

  // Scheduler side.
  void Append(const std::string& text);
  void Finish(FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens, std::string error = "");
  bool cancelled() const;

  // HTTP side. Waits until text is pending or the stream is finished, at most `timeout`;
  // moves the pending text into *text. Returns true when the stream is finished and every
  // piece of its text has been taken.
  bool Wait(std::chrono::milliseconds timeout, std::string* text);
  // The client is gone: the scheduler frees the sequence at its next step.
  void Cancel();
  // Valid once Wait has returned true.
  FinishReason reason() const { return reason_; }
  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t completion_tokens() const { return completion_tokens_; }
  const std::string& error() const { return error_; }

 private:
  const CompletionRequest request_;
  const Clock::time_point enqueued_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string pending_;
  bool finished_ = false;
  bool cancelled_ = false;
  FinishReason reason_ = FinishReason::kStop;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  std::string error_;
};

}  // namespace swa::serve
