#include "serve/scheduler.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <string>

#include "common/error.h"
#include "generate/continuation.h"
#include "generate/decoder.h"
#include "generate/generate.h"

namespace swa::serve {
namespace {

using Clock = Stream::Clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

FinishReason ReasonOf(generate::StopReason reason) {
  return reason == generate::StopReason::kMaxTokens ? FinishReason::kLength : FinishReason::kStop;
}

}  // namespace

struct Scheduler::Active {
  std::shared_ptr<Stream> stream;
  int64_t id = 0;  // the sequence in the batched decoder
  std::optional<generate::Continuation> continuation;
  std::vector<int32_t> prompt;  // BOS and the prompt's bytes
  size_t prefilled = 0;         // prompt tokens through the model
  int32_t next = 0;             // the sampled token the next decode step feeds
  Clock::time_point last_token;
  bool ended = false;
};

Scheduler::Scheduler(model::ModelConfig config, std::vector<float> params, const SchedulerOptions& options,
                     Metrics* metrics)
    : options_(options), metrics_(metrics) {
  if (options.max_streams < 1)
    ThrowInvalid("max-streams must be >= 1, got " + std::to_string(options.max_streams));
  if (options.max_queue < 0) ThrowInvalid("max-queue must be >= 0, got " + std::to_string(options.max_queue));
  if (options.prefill_chunk < 1 || options.prefill_chunk > generate::kMaxChunk) {
    ThrowInvalid("prefill-chunk must be in [1, " + std::to_string(generate::kMaxChunk) + "], got " +
                 std::to_string(options.prefill_chunk));
  }
  if (options.threads < 1) ThrowInvalid("threads must be >= 1, got " + std::to_string(options.threads));
  BatchedDecoderOptions d;
  d.chunk = options.prefill_chunk;
  d.max_batch = options.max_streams;
  d.threads = options.threads;
  decoder_ = std::make_unique<BatchedDecoder>(std::move(config), std::move(params), d);
  for (int64_t id = options.max_streams - 1; id >= 0; --id) free_ids_.push_back(id);
  thread_ = std::thread([this] { Run(); });
}

Scheduler::~Scheduler() { Shutdown(); }

SubmitResult Scheduler::Submit(std::shared_ptr<Stream> stream) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return SubmitResult::kShuttingDown;
    const int64_t in = static_cast<int64_t>(waiting_.size()) + active_count_.load();
    if (in >= options_.max_streams + options_.max_queue) return SubmitResult::kQueueFull;
    waiting_.push_back(std::move(stream));
  }
  wake_.notify_one();
  return SubmitResult::kQueued;
}

void Scheduler::Shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::Start(std::shared_ptr<Stream> stream, std::vector<Active>* active) {
  const generate::GenerateOptions& g = stream->request().generation;
  Active a;
  a.stream = std::move(stream);
  a.prompt = generate::PromptTokens(g.prompt);
  const int64_t prompt_tokens = static_cast<int64_t>(a.prompt.size());
  try {
    a.continuation.emplace(g);
  } catch (const std::exception& e) {
    End(a.stream.get(), FinishReason::kError, prompt_tokens, 0, e.what());
    return;
  }
  if (a.continuation->done()) {  // max_tokens 0: nothing to run
    End(a.stream.get(), FinishReason::kLength, prompt_tokens, 0);
    return;
  }
  a.id = free_ids_.back();
  free_ids_.pop_back();
  decoder_->Add(a.id);
  active->push_back(std::move(a));
}

void Scheduler::End(Stream* stream, FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens,
                    std::string error) {
  // The slot is free before the client can see the end, so that its next request fits.
  --active_count_;
  stream->Finish(reason, prompt_tokens, completion_tokens, std::move(error));
}

void Scheduler::EndActive(Active* a, FinishReason reason, std::string error) {
  a->ended = true;
  End(a->stream.get(), reason, static_cast<int64_t>(a->prompt.size()), a->continuation->generated(),
      std::move(error));
}

void Scheduler::Emit(Active* a, std::span<const float> logits) {
  std::string text;
  a->next = a->continuation->Push(logits, &text);
  metrics_->AddGeneratedTokens(1);
  const Clock::time_point now = Clock::now();
  if (a->continuation->generated() == 1) {
    metrics_->ObserveTimeToFirstToken(Seconds(now - a->stream->enqueued()));
  } else {
    metrics_->ObserveInterTokenLatency(Seconds(now - a->last_token));
  }
  a->last_token = now;
  a->stream->Append(text);
  if (a->continuation->done()) EndActive(a, ReasonOf(a->continuation->reason()));
}

void Scheduler::Step(std::vector<Active>* active) {
  // The streams past their prompt, fed their last token in one batched step below.
  std::vector<Active*> decoding;
  for (Active& a : *active) {
    if (a.stream->cancelled()) {
      EndActive(&a, FinishReason::kAbort);
    } else if (a.prefilled == a.prompt.size()) {
      decoding.push_back(&a);
    }
  }
  // One prefill chunk for each stream still in its prompt.
  for (Active& a : *active) {
    if (a.ended || a.prefilled == a.prompt.size()) continue;
    try {
      const size_t n = std::min<size_t>(options_.prefill_chunk, a.prompt.size() - a.prefilled);
      const std::span<const int32_t> piece(a.prompt.data() + a.prefilled, n);
      a.prefilled += n;
      metrics_->AddPrefillTokens(static_cast<int64_t>(n));
      const bool last = a.prefilled == a.prompt.size();
      std::span<const float> logits = decoder_->Prefill(a.id, piece, last);
      if (last) Emit(&a, logits);
    } catch (const std::exception& e) {
      EndActive(&a, FinishReason::kError, e.what());
    }
  }
  if (decoding.empty()) return;
  std::vector<int64_t> ids;
  std::vector<int32_t> tokens;
  for (const Active* a : decoding) {
    ids.push_back(a->id);
    tokens.push_back(a->next);
  }
  try {
    std::span<const float> logits = decoder_->Step(ids, tokens);
    metrics_->AddDecodeTokens(static_cast<int64_t>(ids.size()));
    const size_t v = static_cast<size_t>(decoder_->vocab_size());
    for (size_t b = 0; b < decoding.size(); ++b) Emit(decoding[b], logits.subspan(b * v, v));
  } catch (const std::exception& e) {
    for (Active* a : decoding) {
      if (!a->ended) EndActive(a, FinishReason::kError, e.what());
    }
  }
}

void Scheduler::PublishGauges(const std::vector<Active>& active) {
  std::vector<int64_t> bytes(decoder_->config().num_hidden_layers, 0);
  for (int64_t l = 0; l < static_cast<int64_t>(bytes.size()); ++l) bytes[l] = decoder_->LayerCacheBytes(l);
  metrics_->SetCacheBytes(bytes);
  int64_t queued = 0;
  {
    std::lock_guard lock(mutex_);
    queued = static_cast<int64_t>(waiting_.size());
  }
  metrics_->SetStreams(static_cast<int64_t>(active.size()), queued);
}

void Scheduler::Run() {
  std::vector<Active> active;
  std::vector<std::shared_ptr<Stream>> admitted;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !waiting_.empty() || !active.empty(); });
      if (stopping_) break;
      while (static_cast<int64_t>(active.size() + admitted.size()) < options_.max_streams &&
             !waiting_.empty()) {
        admitted.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
      active_count_ += static_cast<int64_t>(admitted.size());
    }
    for (std::shared_ptr<Stream>& s : admitted) Start(std::move(s), &active);
    admitted.clear();
    Step(&active);
    // Ended streams leave the batch; their sequences' rows are freed at once.
    std::vector<Active> running;
    for (Active& a : active) {
      if (a.ended) {
        decoder_->Remove(a.id);
        free_ids_.push_back(a.id);
      } else {
        running.push_back(std::move(a));
      }
    }
    active = std::move(running);
    PublishGauges(active);
  }
  // Shutting down: every stream ends now, its text so far already delivered.
  for (Active& a : active) EndActive(&a, FinishReason::kAbort);
  std::lock_guard lock(mutex_);
  for (const std::shared_ptr<Stream>& s : waiting_) s->Finish(FinishReason::kAbort, 0, 0);
  waiting_.clear();
  active_count_ = 0;
  metrics_->SetStreams(0, 0);
}

}  // namespace swa::serve
