#include "serve/stream.h"

namespace swa::serve {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kError:
      return "error";
    case FinishReason::kStop:
      break;
  }
  return "stop";
}

void Stream::Append(const std::string& text) {
  if (text.empty()) return;
  {
    std::lock_guard lock(mutex_);
    pending_ += text;
  }
  changed_.notify_all();
}

void Stream::Finish(FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens,
                    std::string error) {
  {
    std::lock_guard lock(mutex_);
    if (finished_) return;
    finished_ = true;
    reason_ = reason;
    prompt_tokens_ = prompt_tokens;
    completion_tokens_ = completion_tokens;
    error_ = std::move(error);
  }
  changed_.notify_all();
}

bool Stream::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

bool Stream::Wait(std::chrono::milliseconds timeout, std::string* text) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return finished_ || !pending_.empty(); });
  *text += pending_;
  pending_.clear();
  return finished_;
}

void Stream::Cancel() {
  std::lock_guard lock(mutex_);
  cancelled_ = true;
}

}  // namespace swa::serve
