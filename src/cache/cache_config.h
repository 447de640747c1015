// A KV cache's configuration: a validated, self-contained copy of swa_kv_cache_config
// (the attention params' arrays are owned here) and the storage geometry derived from it.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/problem.h"
#include "attention/validate.h"
#include "common/dtype.h"
#include "ops/rope.h"
#include "swa/swa.h"

namespace swa::cache {

enum class PositionMode { kAbsolute = SWA_POSITIONS_ABSOLUTE, kCacheRelative = SWA_POSITIONS_CACHE_RELATIVE };

// Move-only: `rule` points into `rule_storage` (a move keeps the vectors' buffers).
struct CacheConfig {
  CacheConfig() = default;
  CacheConfig(const CacheConfig&) = delete;
  CacheConfig& operator=(const CacheConfig&) = delete;
  CacheConfig(CacheConfig&&) = default;
  CacheConfig& operator=(CacheConfig&&) = default;

  DType dtype = DType::kF32;
  int64_t hq = 1, hkv = 1, dim = 64;

  // The layer's attention rule (swa_attention_params without varlen fields).
  int64_t window_left = -1, window_right = -1;
  std::vector<int64_t> head_window_left, head_window_right;  // [hq] or empty
  bool causal = false;
  float scale = 0.0f, softcap = 0.0f;
  std::vector<float> alibi_slopes, sink_logits;  // [hq] or empty
  int64_t sink_tokens = 0;
  int64_t chunk_size = 0, chunk_overlap = 0;
  std::vector<int64_t> global_tokens;  // sorted
  int num_threads = 0;

  int64_t max_chunk = 1;
  int64_t max_positions = 0;  // 0 = unlimited
  int64_t page_tokens = 1024;
  PositionMode mode = PositionMode::kAbsolute;
  bool rope = false;
  double rope_theta = 10000.0;
  int64_t rope_dims = 0;  // resolved: head_dim when 0 was given

  // Derived by Finish().
  bool grows = false;      // keeps every position, in pages
  int64_t capacity = 0;    // ring slots (ring caches)
  int64_t sink_slots = 0;  // pinned slots (ring caches)
  // The layer's rule validated once, as the attention entry takes it: dtype, heads,
  // head_dim and the rule fields, no tensors. An attend copies it and adds its queries
  // and key spans.
  attention::Problem rule;
  attention::RuleStorage rule_storage;

  // Row of one position: Hkv heads of dim elements.
  int64_t RowElements() const { return hkv * dim; }
  int64_t RowBytes() const { return RowElements() * DTypeSize(dtype); }
  // The params this rule describes, pointing into this object's arrays.
  swa_attention_params Params() const;
  ops::RopeSpec Rope() const { return ops::RopeSpec{rope_theta, rope_dims}; }
  // Validates every field and derives the geometry; throws swa::Error.
  void Finish();
};

// Copies and validates a C config (the arrays it points to are copied).
CacheConfig ConfigFromC(const swa_kv_cache_config* c);

// Largest position count a sequence may reach: positions stay far below the rule's 2^60
// clamp and every size computed from them fits in int64.
constexpr int64_t kMaxPositions = int64_t{1} << 40;

}  // namespace swa::cache
