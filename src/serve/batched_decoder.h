// The model of docs/MODEL.md over several sequences at once, for the server's continuous
// batching: one set of weights, and per layer one generate::LayerCache holding every
// sequence (multi-sequence KV caches, swa/kv_cache.hpp). A decode step feeds one token of
// each of B sequences as B rows: every dense layer is one [B, d] GEMM, and each layer's
// attention one batched append-and-attend over the B sequences. A prompt is fed to its
// own sequence in pieces of `chunk` tokens, between decode steps.
//
// Each sequence computes what generate::Decoder computes for it alone (the same layer
// math, generate/layer_rows.h); only the GEMMs' row counts differ, which may change the
// rounding of the last bits. Exact attention only (no StreamingLLM bound).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_set>
#include <vector>

#include "common/parallel.h"
#include "generate/layer_cache.h"
#include "generate/layer_rows.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "model/tensors.h"

namespace swa::serve {

struct BatchedDecoderOptions {
  int64_t chunk = 64;     // most prompt tokens per piece, 1 .. generate::kMaxChunk
  int64_t max_batch = 8;  // most sequences in one Step, >= 1
  int threads = 1;        // >= 1
};

class BatchedDecoder {
 public:
  // params [LayoutFloats(config)]. Throws swa::Error naming a bad option.
  BatchedDecoder(model::ModelConfig config, std::vector<float> params, const BatchedDecoderOptions& options);
  BatchedDecoder(const BatchedDecoder&) = delete;
  BatchedDecoder& operator=(const BatchedDecoder&) = delete;

  // Starts sequence `id` (>= 0, not live) at position 0.
  void Add(int64_t id);
  // Ends sequence `id` and frees its caches' rows.
  void Remove(int64_t id);
  // Feeds tokens (any number, each in [0, V)) to sequence `id`. With `logits`, returns the
  // logits [V] of the last token, valid until the next call; else an empty span.
  std::span<const float> Prefill(int64_t id, std::span<const int32_t> tokens, bool logits);
  // One token for each sequence ids[b] (distinct, live, at most max_batch): returns logits
  // [B, V], row b for ids[b], valid until the next call.
  std::span<const float> Step(std::span<const int64_t> ids, std::span<const int32_t> tokens);

  const model::ModelConfig& config() const { return config_; }
  int64_t vocab_size() const { return config_.vocab_size; }
  // K/V bytes of one layer's caches over every live sequence.
  int64_t LayerCacheBytes(int64_t layer) const;

 private:
  void CheckTokens(std::span<const int32_t> tokens) const;
  void CheckLive(int64_t id) const;

  model::ModelConfig config_;
  std::vector<float> params_;  // [LayoutFloats(config)]
  BatchedDecoderOptions options_;
  std::vector<model::ParamInfo> layout_;
  model::ModelTensors<const float> weights_;
  std::vector<generate::LayerPlan> plans_;
  std::vector<std::unique_ptr<generate::LayerCache>> caches_;  // [layers], every sequence
  std::unordered_set<int64_t> live_;
  ThreadPool pool_;
  generate::RowWorkspace ws_;  // max(chunk, max_batch) rows
};

}  // namespace swa::serve
