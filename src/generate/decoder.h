// Incremental (cached) inference of the model of docs/MODEL.md: one sequence, fed token
// by token or in chunks, each layer's keys and values kept in ring-buffer KV caches
// (generate/layer_cache.h). It computes the function of model::Model::Logits over the
// whole sequence (the same layer math as model/block.cc, with the f32 ops of
// model/backend.h; RoPE applied by the caches), position by position, so that decoding
// costs one token's work per step, and a sliding-window layer's memory does not grow.
//
// Work is cut into pieces of at most `chunk` tokens; each piece runs through every layer
// before the next starts, so working memory is O(chunk * (d + F + V)) whatever the
// length fed. For an evaluation, Prefill returns the logits of every token fed, and a long
// document can be fed over several calls; Reset starts a new sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/parallel.h"
#include "generate/layer_cache.h"
#include "generate/layer_rows.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "model/tensors.h"

namespace swa::generate {

struct DecoderOptions {
  int64_t chunk = 256;         // most tokens per piece (the caches' max_chunk), 1 .. kMaxChunk
  int threads = 0;             // 0 = all cores
  StreamingOptions streaming;  // StreamingLLM bound on global heads (off by default)
};

constexpr int64_t kMaxChunk = int64_t{1} << 16;

class Decoder {
 public:
  // params: the flat buffer of model::ParameterLayout(config) ([LayoutFloats(config)]),
  // e.g. model::LoadCheckpoint(path).params. With streaming on and window 0, the window
  // is DefaultStreamWindow(config). Throws swa::Error naming a bad option.
  Decoder(model::ModelConfig config, std::vector<float> params, const DecoderOptions& options);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Feeds `tokens` (each in [0, vocab_size)) at the next positions and writes the logits
  // of every one of them, after final soft-capping: logits [tokens.size(), V] (row t
  // predicts the token after tokens[t]). Null logits computes none (only the caches).
  void Prefill(std::span<const int32_t> tokens, float* logits);
  // Feeds `tokens` (at least one) and returns the logits [V] of the last; valid until the
  // next call.
  std::span<const float> PrefillLast(std::span<const int32_t> tokens);
  // Feeds one token; returns the logits [V] of the next, valid until the next call.
  std::span<const float> Step(int32_t token) { return PrefillLast(std::span<const int32_t>(&token, 1)); }
  // For timing only: takes the next `positions` positions with zero keys and values in
  // every layer's caches, without running the model. A decode step's cost depends on how
  // many keys it reads, not on their values, so the speed of decoding at a long context
  // can be measured without prefilling one. The logits that follow are not the model's.
  void AdvanceForTiming(int64_t positions);
  // Starts a new sequence at position 0 (the caches' storage is kept). Bad tokens are
  // refused before anything is fed; after any other exception (out of memory) the
  // sequence is undefined until Reset.
  void Reset();

  const model::ModelConfig& config() const { return config_; }
  int64_t vocab_size() const { return config_.vocab_size; }
  int64_t position() const { return position_; }  // tokens fed since the last Reset
  int64_t chunk() const { return options_.chunk; }
  const StreamingOptions& streaming() const { return options_.streaming; }
  // K/V bytes held by every layer's caches (swa_kv_cache_get_stats' bytes_used, summed).
  int64_t CacheBytes() const;
  // The same for one layer's caches, layer in [0, num_hidden_layers).
  int64_t LayerCacheBytes(int64_t layer) const;
  int64_t NumCaches() const;
  // Some layer's cache keeps every position (a global head without streaming).
  bool CacheGrows() const;

 private:
  // Runs n <= chunk tokens through the model; writes the logits of the last `rows` tokens
  // to logits [rows, V] (rows 0: the head is skipped).
  void Forward(const int32_t* tokens, int64_t n, int64_t rows, float* logits);
  void CheckTokens(std::span<const int32_t> tokens) const;

  model::ModelConfig config_;
  std::vector<float> params_;  // [LayoutFloats(config)]
  DecoderOptions options_;
  std::vector<model::ParamInfo> layout_;
  model::ModelTensors<const float> weights_;
  std::vector<LayerPlan> plans_;  // per layer: gate groups
  std::vector<std::unique_ptr<LayerCache>> caches_;
  int64_t position_ = 0;
  ThreadPool pool_;

  RowWorkspace ws_;  // working rows of one piece, sized for `chunk` tokens
};

}  // namespace swa::generate
