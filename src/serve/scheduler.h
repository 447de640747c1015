// The one thread that owns the model and every stream: continuous batching. Requests
// wait in a bounded queue; at each step the scheduler admits waiting requests up to
// max_streams, runs one prefill chunk for each stream whose prompt is not yet through the
// model, one batched decode step for every other stream (serve/batched_decoder.h: one
// [streams, d] GEMM per dense layer, one multi-sequence attend per layer), and pushes the
// text each step produced to the streams' channels (serve/stream.h). A long prompt thus
// costs the running streams one chunk of delay per step, never the whole prompt; a
// cancelled stream leaves the batch, and its caches' rows are freed, at the next step.
//
// Each stream has its own sequence in the caches and its own seeded sampler, so its text
// is that of `swa generate` with the same options whatever else runs (up to the last
// bits of the GEMMs' rounding, which may differ with the batch size).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "model/config.h"
#include "serve/batched_decoder.h"
#include "serve/metrics.h"
#include "serve/stream.h"

namespace swa::serve {

struct SchedulerOptions {
  int64_t max_streams = 8;     // streams prefilled or decoded at once, >= 1
  int64_t max_queue = 64;      // requests waiting beyond those, >= 0
  int64_t prefill_chunk = 64;  // prompt tokens per stream per step, 1 .. generate::kMaxChunk
  int threads = 1;             // the model's threads, >= 1
};

enum class SubmitResult { kQueued, kQueueFull, kShuttingDown };

class Scheduler {
 public:
  // Throws swa::Error naming a bad option. `metrics` must outlive the scheduler.
  Scheduler(model::ModelConfig config, std::vector<float> params, const SchedulerOptions& options,
            Metrics* metrics);
  ~Scheduler();  // Shutdown()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues the stream, unless max_streams + max_queue requests are already in (429) or the
  // scheduler is shutting down (503).
  SubmitResult Submit(std::shared_ptr<Stream> stream);
  // Ends every waiting and active stream with FinishReason::kAbort and joins the thread.
  // Idempotent; later Submits are refused.
  void Shutdown();

  const model::ModelConfig& config() const { return decoder_->config(); }

 private:
  struct Active;
  void Run();
  void Start(std::shared_ptr<Stream> stream, std::vector<Active>* active);
  // Ends cancelled streams, runs one prefill chunk for each stream in its prompt and one
  // batched decode step for every stream past it; ended streams are marked.
  void Step(std::vector<Active>* active);
  // Samples the next token from logits [V] and hands its text to the stream.
  void Emit(Active* a, std::span<const float> logits);
  void EndActive(Active* a, FinishReason reason, std::string error = "");
  // Finishes an admitted stream and frees its slot.
  void End(Stream* stream, FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens,
           std::string error = "");
  void PublishGauges(const std::vector<Active>& active);

  const SchedulerOptions options_;
  Metrics* metrics_;
  std::unique_ptr<BatchedDecoder> decoder_;  // every stream's sequence, by id
  std::vector<int64_t> free_ids_;            // sequence ids not in use

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Stream>> waiting_;
  std::atomic<int64_t> active_count_{0};
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace swa::serve
