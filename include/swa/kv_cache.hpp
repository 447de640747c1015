// The C++ layer over the KV cache's C API (swa.h): a config builder and an owning handle
// that throws swa::Error on failure.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "swa/swa.hpp"

namespace swa {

// swa_kv_cache_config with defaults and chainable setters. The attention params'
// arrays are copied when the cache is created.
struct KvCacheConfig : swa_kv_cache_config {
  KvCacheConfig() { swa_kv_cache_config_init(this); }

  KvCacheConfig& DType(swa_dtype t) {
    dtype = t;
    return *this;
  }
  // Hq query heads, Hkv kv heads of head_dim elements.
  KvCacheConfig& Heads(int64_t hq, int64_t hkv, int64_t head_dim_) {
    num_heads = hq;
    num_kv_heads = hkv;
    head_dim = head_dim_;
    return *this;
  }
  KvCacheConfig& Attention(const swa_attention_params& p) {
    attention = p;
    return *this;
  }
  KvCacheConfig& MaxChunk(int64_t n) {
    max_chunk = n;
    return *this;
  }
  KvCacheConfig& MaxPositions(int64_t n) {
    max_positions = n;
    return *this;
  }
  KvCacheConfig& PageTokens(int64_t n) {
    page_tokens = n;
    return *this;
  }
  KvCacheConfig& Positions(swa_position_mode m) {
    position_mode = m;
    return *this;
  }
  // RoPE with base theta over the first `dims` elements of each head (0 = all).
  KvCacheConfig& Rope(float theta = 10000.0f, int64_t dims = 0) {
    rope = 1;
    rope_theta = theta;
    rope_dims = dims;
    return *this;
  }
};

class KvCache {
 public:
  explicit KvCache(const swa_kv_cache_config& config) {
    swa_kv_cache* c = nullptr;
    CheckCode(swa_kv_cache_create(&config, &c));
    cache_.reset(c);
  }
  static KvCache Load(const std::string& path) {
    swa_kv_cache* c = nullptr;
    CheckCode(swa_kv_cache_load(path.c_str(), &c));
    return KvCache(c);
  }

  void AddSequence(int64_t id) { CheckCode(swa_kv_cache_add_sequence(get(), id)); }
  void ResetSequence(int64_t id) { CheckCode(swa_kv_cache_reset_sequence(get(), id)); }
  void RemoveSequence(int64_t id) { CheckCode(swa_kv_cache_remove_sequence(get(), id)); }

  // One sequence: k, v [1, T, Hkv, D]; q, out [1, T, Hq, D]; lse [1, Hq, T] or null.
  void Append(int64_t id, const swa_tensor& k, const swa_tensor& v) { Append(&id, 1, k, v); }
  void Attend(int64_t id, const swa_tensor& q, swa_tensor& out, float* lse = nullptr) {
    Attend(&id, 1, q, out, lse);
  }
  void AppendAttend(int64_t id, const swa_tensor& q, const swa_tensor& k, const swa_tensor& v,
                    swa_tensor& out, float* lse = nullptr) {
    AppendAttend(&id, 1, q, k, v, out, lse);
  }
  // Batches (see swa.h): tensors [num_seqs, T, H, D], or [1, total, H, D] with cu_seqlens.
  void Append(const int64_t* ids, int64_t num_seqs, const swa_tensor& k, const swa_tensor& v,
              const int32_t* cu_seqlens = nullptr) {
    CheckCode(swa_kv_cache_append(get(), ids, num_seqs, &k, &v, cu_seqlens));
  }
  void Attend(const int64_t* ids, int64_t num_seqs, const swa_tensor& q, swa_tensor& out,
              float* lse = nullptr, const int32_t* cu_seqlens_q = nullptr) {
    CheckCode(swa_kv_cache_attend(get(), ids, num_seqs, &q, cu_seqlens_q, &out, lse));
  }
  void AppendAttend(const int64_t* ids, int64_t num_seqs, const swa_tensor& q, const swa_tensor& k,
                    const swa_tensor& v, swa_tensor& out, float* lse = nullptr,
                    const int32_t* cu_seqlens = nullptr) {
    CheckCode(swa_kv_cache_append_attend(get(), ids, num_seqs, &q, &k, &v, cu_seqlens, &out, lse));
  }

  // Stored keys and values of positions [first, first + L) into k, v [1, L, Hkv, D].
  void Read(int64_t id, int64_t first, swa_tensor& k, swa_tensor& v) const {
    CheckCode(swa_kv_cache_read(get(), id, first, &k, &v));
  }
  void Save(const std::string& path) const { CheckCode(swa_kv_cache_save(get(), path.c_str())); }

  swa_kv_cache_stats Stats() const {
    swa_kv_cache_stats s;
    CheckCode(swa_kv_cache_get_stats(get(), &s));
    return s;
  }
  int64_t Positions(int64_t id) const {
    int64_t n = 0;
    CheckCode(swa_kv_cache_seq_positions(get(), id, &n));
    return n;
  }
  std::vector<int64_t> SequenceIds() const {
    int64_t count = 0;
    CheckCode(swa_kv_cache_seq_ids(get(), nullptr, 0, &count));
    std::vector<int64_t> ids(static_cast<size_t>(count));
    CheckCode(swa_kv_cache_seq_ids(get(), ids.data(), count, &count));
    return ids;
  }

  swa_kv_cache* get() { return cache_.get(); }
  const swa_kv_cache* get() const { return cache_.get(); }

 private:
  explicit KvCache(swa_kv_cache* c) : cache_(c) {}
  struct Deleter {
    void operator()(swa_kv_cache* c) const { swa_kv_cache_destroy(c); }
  };
  std::unique_ptr<swa_kv_cache, Deleter> cache_;
};

}  // namespace swa
