// The C ABI of the KV cache: check the handle, then hand over to KvCache (which
// translates the C structs), turning exceptions into return codes (common/error.h).
#include <cstring>

#include "cache/cache_file.h"
#include "cache/kv_cache.h"
#include "common/error.h"
#include "swa/swa.h"

// The opaque C handle.
struct swa_kv_cache {
  std::unique_ptr<swa::cache::KvCache> impl;
};

namespace {

swa::cache::KvCache& Impl(swa_kv_cache* cache) {
  if (cache == nullptr || cache->impl == nullptr) swa::ThrowInvalid("cache is NULL");
  return *cache->impl;
}

const swa::cache::KvCache& Impl(const swa_kv_cache* cache) {
  if (cache == nullptr || cache->impl == nullptr) swa::ThrowInvalid("cache is NULL");
  return *cache->impl;
}

void CheckOut(const void* p, const char* name) {
  if (p == nullptr) swa::ThrowInvalid(std::string(name) + " is NULL");
}

}  // namespace

extern "C" {

SWA_API void swa_kv_cache_config_init(swa_kv_cache_config* config) {
  if (config == nullptr) return;
  std::memset(config, 0, sizeof(*config));
  config->dtype = SWA_F32;
  config->num_heads = 1;
  config->num_kv_heads = 1;
  config->head_dim = 64;
  swa_attention_params_init(&config->attention);
  config->max_chunk = 1;
  config->position_mode = SWA_POSITIONS_ABSOLUTE;
}

SWA_API int swa_kv_cache_create(const swa_kv_cache_config* config, swa_kv_cache** cache) {
  return swa::GuardCall([&] {
    CheckOut(cache, "cache (the output pointer)");
    auto handle = std::make_unique<swa_kv_cache>();
    handle->impl = std::make_unique<swa::cache::KvCache>(swa::cache::ConfigFromC(config));
    *cache = handle.release();
  });
}

SWA_API void swa_kv_cache_destroy(swa_kv_cache* cache) { delete cache; }

SWA_API int swa_kv_cache_add_sequence(swa_kv_cache* cache, int64_t seq_id) {
  return swa::GuardCall([&] { Impl(cache).AddSequence(seq_id); });
}

SWA_API int swa_kv_cache_reset_sequence(swa_kv_cache* cache, int64_t seq_id) {
  return swa::GuardCall([&] { Impl(cache).ResetSequence(seq_id); });
}

SWA_API int swa_kv_cache_remove_sequence(swa_kv_cache* cache, int64_t seq_id) {
  return swa::GuardCall([&] { Impl(cache).RemoveSequence(seq_id); });
}

SWA_API int swa_kv_cache_append(swa_kv_cache* cache, const int64_t* seq_ids, int64_t num_seqs,
                                const swa_tensor* k, const swa_tensor* v, const int32_t* cu_seqlens) {
  return swa::GuardCall([&] { Impl(cache).Append(seq_ids, num_seqs, k, v, cu_seqlens); });
}

SWA_API int swa_kv_cache_attend(swa_kv_cache* cache, const int64_t* seq_ids, int64_t num_seqs,
                                const swa_tensor* q, const int32_t* cu_seqlens_q, swa_tensor* out,
                                float* lse) {
  return swa::GuardCall([&] { Impl(cache).Attend(seq_ids, num_seqs, q, cu_seqlens_q, out, lse); });
}

SWA_API int swa_kv_cache_append_attend(swa_kv_cache* cache, const int64_t* seq_ids, int64_t num_seqs,
                                       const swa_tensor* q, const swa_tensor* k, const swa_tensor* v,
                                       const int32_t* cu_seqlens, swa_tensor* out, float* lse) {
  return swa::GuardCall([&] { Impl(cache).AppendAttend(seq_ids, num_seqs, q, k, v, cu_seqlens, out, lse); });
}

SWA_API int swa_kv_cache_get_stats(const swa_kv_cache* cache, swa_kv_cache_stats* stats) {
  return swa::GuardCall([&] {
    const swa::cache::KvCache& c = Impl(cache);
    CheckOut(stats, "stats");
    const swa::cache::CacheConfig& cfg = c.config();
    swa_kv_cache_stats s{};
    s.capacity = cfg.grows ? -1 : cfg.capacity;
    s.sink_slots = cfg.sink_slots;
    s.max_chunk = cfg.max_chunk;
    s.num_sequences = c.num_sequences();
    s.bytes_used = c.BytesUsed();
    *stats = s;
  });
}

SWA_API int swa_kv_cache_seq_positions(const swa_kv_cache* cache, int64_t seq_id, int64_t* positions) {
  return swa::GuardCall([&] {
    const swa::cache::KvCache& c = Impl(cache);
    CheckOut(positions, "positions");
    *positions = c.Sequence(seq_id).length();
  });
}

SWA_API int swa_kv_cache_seq_ids(const swa_kv_cache* cache, int64_t* ids, int64_t max_ids, int64_t* count) {
  return swa::GuardCall([&] {
    const swa::cache::KvCache& c = Impl(cache);
    CheckOut(count, "count");
    if (max_ids < 0) swa::ThrowInvalid("max_ids must be >= 0");
    if (max_ids > 0) CheckOut(ids, "ids");
    const std::vector<int64_t> all = c.Ids();
    for (int64_t i = 0; i < max_ids && i < static_cast<int64_t>(all.size()); ++i) ids[i] = all[i];
    *count = static_cast<int64_t>(all.size());
  });
}

SWA_API int swa_kv_cache_read(const swa_kv_cache* cache, int64_t seq_id, int64_t first_position,
                              swa_tensor* k, swa_tensor* v) {
  return swa::GuardCall([&] { Impl(cache).Read(seq_id, first_position, k, v); });
}

SWA_API int swa_kv_cache_save(const swa_kv_cache* cache, const char* path) {
  return swa::GuardCall([&] {
    const swa::cache::KvCache& c = Impl(cache);
    CheckOut(path, "path");
    swa::cache::SaveCache(c, path);
  });
}

SWA_API int swa_kv_cache_load(const char* path, swa_kv_cache** cache) {
  return swa::GuardCall([&] {
    CheckOut(path, "path");
    CheckOut(cache, "cache (the output pointer)");
    auto handle = std::make_unique<swa_kv_cache>();
    handle->impl = swa::cache::LoadCache(path);
    *cache = handle.release();
  });
}

}  // extern "C"
