#include "cache/cache_config.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "attention/rule.h"
#include "common/error.h"

namespace swa::cache {
namespace {

// The storage of one sequence (both K and V) must stay addressable; this bounds the
// ring (a huge finite window is better served by a growing cache, see Finish()).
constexpr int64_t kMaxRingBytes = int64_t{1} << 40;

template <class T>
std::vector<T> CopyArray(const T* p, int64_t n) {
  return p == nullptr ? std::vector<T>() : std::vector<T>(p, p + n);
}

template <class T>
const T* DataOrNull(const std::vector<T>& v) {
  return v.empty() ? nullptr : v.data();
}

}  // namespace

swa_attention_params CacheConfig::Params() const {
  swa_attention_params p;
  swa_attention_params_init(&p);
  p.window_left = window_left;
  p.window_right = window_right;
  p.head_window_left = DataOrNull(head_window_left);
  p.head_window_right = DataOrNull(head_window_right);
  p.causal = causal ? 1 : 0;
  p.scale = scale;
  p.softcap = softcap;
  p.alibi_slopes = DataOrNull(alibi_slopes);
  p.sink_tokens = sink_tokens;
  p.sink_logits = DataOrNull(sink_logits);
  p.chunk_size = chunk_size;
  p.chunk_overlap = chunk_overlap;
  p.global_tokens = DataOrNull(global_tokens);
  p.num_global_tokens = static_cast<int64_t>(global_tokens.size());
  p.num_threads = num_threads;
  return p;
}

void CacheConfig::Finish() {
  if (hq < 1 || hkv < 1 || dim < 1) ThrowInvalid("num_heads, num_kv_heads and head_dim must be >= 1");
  if (dim > attention::kMaxHeadDim) {
    ThrowInvalid("head_dim must be <= " + std::to_string(attention::kMaxHeadDim) + ", got " +
                 std::to_string(dim));
  }
  if (hq > attention::kMaxExtent || hkv > attention::kMaxExtent) ThrowInvalid("head counts must be <= 2^40");
  if (hq % hkv != 0) {
    ThrowInvalid("num_heads (" + std::to_string(hq) + ") must be a multiple of num_kv_heads (" +
                 std::to_string(hkv) + ")");
  }
  // The rule gets the forward's own checks, once: every attend reuses it.
  rule = attention::Problem{};
  rule.dtype = dtype;
  rule.hq = hq;
  rule.hkv = hkv;
  rule.dim = dim;
  const swa_attention_params params = Params();
  attention::ValidateRule(&params, &rule_storage, &rule);
  if (max_chunk < 1) ThrowInvalid("max_chunk must be >= 1, got " + std::to_string(max_chunk));
  if (max_chunk > kMaxPositions) ThrowInvalid("max_chunk must be <= 2^40");
  if (max_positions < 0 || max_positions > kMaxPositions)
    ThrowInvalid("max_positions must be in [0, 2^40] (0 = none)");
  if (page_tokens < 1 || page_tokens > (int64_t{1} << 24)) ThrowInvalid("page_tokens must be in [1, 2^24]");
  if (rope) {
    if (!std::isfinite(rope_theta) || rope_theta <= 1.0) ThrowInvalid("rope_theta must be finite and > 1");
    if (rope_dims == 0) rope_dims = dim - dim % 2;  // an odd last element stays unrotated
    if (rope_dims < 2 || rope_dims > dim || rope_dims % 2 != 0) {
      ThrowInvalid("rope_dims must be even and in [2, head_dim], got " + std::to_string(rope_dims));
    }
  } else {
    rope_dims = 0;
  }
  if (mode == PositionMode::kCacheRelative && chunk_size > 0) {
    ThrowInvalid(
        "the cache-relative position mode needs the sliding-window rule (chunk_size 0): chunk "
        "boundaries are absolute positions");
  }

  // Geometry. The ring keeps the keys within the farthest local reach of any head behind
  // its oldest query; global tokens, or a head whose band is unbounded, need every
  // position kept.
  grows = !global_tokens.empty();
  int64_t reach = 0;
  for (int64_t h = 0; h < hq; ++h) reach = std::max(reach, attention::LocalReach(rule.mask, rule.windows[h]));
  if (reach >= attention::BandRule::kPosInf) grows = true;
  // A ring at least as long as every position a sequence may reach never wraps: pages
  // then hold the same keys without the up-front allocation.
  if (!grows && (reach > kMaxPositions || (max_positions > 0 && reach + max_chunk >= max_positions)))
    grows = true;
  if (grows) {
    capacity = 0;
    sink_slots = 0;
    return;
  }
  capacity = reach + max_chunk;
  sink_slots = sink_tokens;
  if (capacity > kMaxPositions || sink_slots > kMaxPositions ||
      (capacity + sink_slots) > kMaxRingBytes / (2 * RowBytes())) {
    ThrowInvalid("the ring (" + std::to_string(capacity) + " slots + " + std::to_string(sink_slots) +
                 " sinks of " + std::to_string(RowBytes()) + " bytes for K and V) is larger than 2^40 bytes");
  }
}

CacheConfig ConfigFromC(const swa_kv_cache_config* c) {
  if (c == nullptr) ThrowInvalid("config is NULL");
  CacheConfig cfg;
  int raw_dtype, raw_mode;
  std::memcpy(&raw_dtype, &c->dtype, sizeof(int));
  std::memcpy(&raw_mode, &c->position_mode, sizeof(int));
  if (raw_dtype != SWA_F32 && raw_dtype != SWA_BF16 && raw_dtype != SWA_F16) {
    ThrowInvalid("config.dtype is not a valid swa_dtype");
  }
  if (raw_mode != SWA_POSITIONS_ABSOLUTE && raw_mode != SWA_POSITIONS_CACHE_RELATIVE) {
    ThrowInvalid("config.position_mode is not a valid swa_position_mode");
  }
  cfg.dtype = static_cast<DType>(raw_dtype);
  cfg.mode = static_cast<PositionMode>(raw_mode);
  cfg.hq = c->num_heads;
  cfg.hkv = c->num_kv_heads;
  cfg.dim = c->head_dim;
  // Arrays are read only once the head count is known to be sane.
  if (cfg.hq < 1 || cfg.hq > attention::kMaxExtent) ThrowInvalid("num_heads must be in [1, 2^40]");
  const swa_attention_params& a = c->attention;
  if (a.cu_seqlens_q != nullptr || a.cu_seqlens_k != nullptr || a.num_seqs != 0) {
    ThrowInvalid(
        "config.attention must not set cu_seqlens_q, cu_seqlens_k or num_seqs (the cache packs its own)");
  }
  if (a.num_global_tokens < 0 || a.num_global_tokens > attention::kMaxExtent) {
    ThrowInvalid("num_global_tokens must be in [0, 2^40]");
  }
  if (a.num_global_tokens > 0 && a.global_tokens == nullptr)
    ThrowInvalid("global_tokens is NULL but num_global_tokens > 0");
  cfg.window_left = a.window_left;
  cfg.window_right = a.window_right;
  cfg.head_window_left = CopyArray(a.head_window_left, cfg.hq);
  cfg.head_window_right = CopyArray(a.head_window_right, cfg.hq);
  cfg.causal = a.causal != 0;
  cfg.scale = a.scale;
  cfg.softcap = a.softcap;
  cfg.alibi_slopes = CopyArray(a.alibi_slopes, cfg.hq);
  cfg.sink_tokens = a.sink_tokens;
  cfg.sink_logits = CopyArray(a.sink_logits, cfg.hq);
  cfg.chunk_size = a.chunk_size;
  cfg.chunk_overlap = a.chunk_overlap;
  cfg.global_tokens = CopyArray(a.global_tokens, a.num_global_tokens);
  cfg.num_threads = a.num_threads;
  cfg.max_chunk = c->max_chunk;
  cfg.max_positions = c->max_positions;
  cfg.page_tokens = c->page_tokens == 0 ? 1024 : c->page_tokens;
  cfg.rope = c->rope != 0;
  cfg.rope_theta = c->rope_theta == 0.0f ? 10000.0 : static_cast<double>(c->rope_theta);
  cfg.rope_dims = c->rope_dims;
  cfg.Finish();
  return cfg;
}

}  // namespace swa::cache
