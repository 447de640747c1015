// The KV caches of one attention layer of docs/MODEL.md for incremental decoding: the
// layer's rule (per-head windows, sink tokens, learned sinks, softcap, ALiBi, RoPE with the
// layer's theta over the whole head, scale 1/sqrt(D), causal) given to ring-buffer caches
// (swa/kv_cache.hpp), which apply RoPE themselves and attend in pieces of max_chunk.
//
// Exact by default: one cache holds the whole layer. A layer with a global head keeps
// every position then (a growing cache). With StreamingLLM (streaming.sinks >= 0) the heads
// whose left window is unbounded see only the first S positions and the last W (their own
// included), numbered inside the cache (SWA_POSITIONS_CACHE_RELATIVE), so that the layer's
// memory stays bounded; this approximates the trained model once a sequence is longer
// than S + W, and is exact up to that length. The other heads of the layer keep their
// exact rule: the layer's heads are split over two or more caches, because sink tokens
// and the position mode are per cache.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "swa/kv_cache.hpp"

namespace swa::generate {

// StreamingLLM's bound on heads with an unbounded left window.
struct StreamingOptions {
  int64_t sinks = -1;  // S, the first positions those heads keep seeing; -1 = off (exact)
  int64_t window = 0;  // W, the most recent positions they see, their own included (>= 1)
  bool enabled() const { return sinks >= 0; }
  // An evaluation length C (0 = none): every head sees at most the last C keys, its own
  // included (left windows cut to C - 1), plus the layer's own sink tokens (the first
  // positions, part of the model's rule), so that no cache grows past C + sinks. Not with
  // StreamingLLM.
  int64_t context = 0;
};

// The default W: 4 times the widest bounded window of the model, else 1024.
int64_t DefaultStreamWindow(const model::ModelConfig& config);

// Query heads attended through one cache: the kv heads they read, stored in that cache.
struct HeadPart {
  std::vector<int64_t> q_heads;   // the layer's query heads, grouped by kv head in kv_heads order
  std::vector<int64_t> kv_heads;  // the layer's kv heads, ascending
  bool streamed = false;          // StreamingLLM heads (cache-relative positions)
};

// Splits hq query heads (head h reads kv head h / (hq / hkv)) into parts: one part with
// every head when nothing is streamed; else the exact heads and the streamed heads, each
// kind one part when each kv head it touches serves the same number of its heads (so that
// grouped-query sharing holds inside the part), else one part per kv head.
std::vector<HeadPart> PlanHeadParts(int64_t hq, int64_t hkv, const std::vector<bool>& streamed);

class LayerCache {
 public:
  // sinks [Hq]: the layer's learned sink logits (null without learned sinks). Caches hold
  // one sequence of f32 rows; max_chunk is the most tokens one AppendAttend takes.
  LayerCache(const model::ModelConfig& config, const model::LayerConfig& layer, const float* sinks,
             int64_t max_chunk, int threads, const StreamingOptions& streaming);

  // out [T, Hq*D] = attention of q [T, Hq*D] over the keys seen so far and k, v [T, Hkv*D],
  // the T tokens taking the next positions (q and k un-rotated; T <= max_chunk).
  void AppendAttend(int64_t tokens, const float* q, const float* k, const float* v, float* out) {
    AppendAttendSequence(0, tokens, q, k, v, out);
  }

  // Several sequences at once. Sequence 0 exists from the start; others are added and
  // removed by id (removing frees the sequence's rows).
  void AddSequence(int64_t id);
  void RemoveSequence(int64_t id);
  // As AppendAttend, for the sequence `id`.
  void AppendAttendSequence(int64_t id, int64_t tokens, const float* q, const float* k, const float* v,
                            float* out);
  // One token of each of num_seqs distinct sequences, one attend per cache for them all:
  // q [B, Hq*D], k, v [B, Hkv*D] -> out [B, Hq*D], row b of sequence ids[b].
  void AppendAttendBatch(const int64_t* ids, int64_t num_seqs, const float* q, const float* k, const float* v,
                         float* out);

  // Appends `tokens` positions of zero keys and values without attending (any count, in
  // pieces of max_chunk), for timing: see Decoder::AdvanceForTiming.
  void AppendBlank(int64_t tokens);
  void Reset();               // back to position 0, storage kept
  int64_t BytesUsed() const;  // K/V storage of every cache of the layer
  int64_t NumCaches() const { return static_cast<int64_t>(parts_.size()); }
  bool Grows() const;  // some cache keeps every position

 private:
  // [num_seqs, tokens, heads, D] rows of the sequences ids through every part.
  void Run(const int64_t* ids, int64_t num_seqs, int64_t tokens, const float* q, const float* k,
           const float* v, float* out);

  struct Part {
    HeadPart heads;
    bool identity = false;  // every head in the layer's order: no gather needed
    KvCache cache;
  };

  int64_t hq_, hkv_, dim_, max_chunk_;
  std::vector<Part> parts_;
  std::vector<float> q_part_, k_part_, v_part_, out_part_;  // [rows, heads of a part, D], grown on use
  std::vector<float> blank_;                                // [max_chunk, Hkv, D] zeros, on first use
};

}  // namespace swa::generate
