// The one thread that owns the model and every stream (continuous batching, first
// version). Requests wait in a bounded queue; at each step the scheduler admits waiting
// requests up to max_streams, runs one prefill chunk for each stream whose prompt is not
// yet through the model, one decode step for every other stream, and pushes the text each
// step produced to the streams' channels (serve/stream.h). A long prompt thus costs the
// running streams one chunk of delay per step, never the whole prompt; a cancelled
// stream is dropped, and its caches freed, at the next step.
//
// Not batched yet: each active stream owns a generate::Decoder (its own KV caches and a
// copy of the weights), and a step runs the streams one after another. The text is
// exactly that of `swa generate` with the same options, whatever else is running, since
// each stream has its own caches and its own seeded sampler. Decoders are kept for reuse
// when their stream ends (Reset keeps the caches' storage).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "generate/decoder.h"
#include "model/config.h"
#include "serve/metrics.h"
#include "serve/stream.h"

namespace swa::serve {

struct SchedulerOptions {
  int64_t max_streams = 8;     // streams prefilled or decoded at once, >= 1
  int64_t max_queue = 64;      // requests waiting beyond those, >= 0
  int64_t prefill_chunk = 64;  // prompt tokens per stream per step, 1 .. generate::kMaxChunk
  int threads = 1;             // each decoder's threads, >= 1
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

  const model::ModelConfig& config() const { return config_; }

 private:
  struct Active;
  void Run();
  void Start(std::shared_ptr<Stream> stream, std::vector<Active>* active);
  // One prefill chunk or one decode step; returns false when the stream has ended.
  bool Advance(Active* a);
  // Finishes an admitted stream and frees its slot.
  void End(Stream* stream, FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens,
           std::string error = "");
  void PublishGauges(const std::vector<Active>& active);

  const model::ModelConfig config_;
  const std::vector<float> params_;  // [LayoutFloats(config)], copied into each decoder
  const SchedulerOptions options_;
  Metrics* metrics_;
  std::vector<std::unique_ptr<generate::Decoder>> idle_;  // decoders kept for reuse

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Stream>> waiting_;
  std::atomic<int64_t> active_count_{0};
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace swa::serve
