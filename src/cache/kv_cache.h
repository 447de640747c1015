// The KV cache of one attention layer: independent sequences (streams) by id, each a
// SequenceStore, with batched append and attend. swa_kv_cache (the C handle) is this
// class. Every public method validates all of its arguments before changing anything,
// so a failing call leaves the cache as it was.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "cache/cache_config.h"
#include "cache/sequence_store.h"
#include "hwy/aligned_allocator.h"
#include "swa/swa.h"

namespace swa::cache {

// Rows of one sequence in a batched call's tensor: batch entry, first row, row count.
struct SeqRows {
  SequenceStore* store = nullptr;
  int64_t batch = 0, row0 = 0, count = 0;
};

// The checks shared by every tensor of a cache call: the tensor's own fields, then the
// cache's dtype, `heads` (kv or query heads) and head_dim.
void CheckCacheTensor(const CacheConfig& cfg, const swa_tensor* t, const char* name, int64_t heads,
                      bool is_output);

class KvCache {
 public:
  explicit KvCache(CacheConfig cfg) : cfg_(std::move(cfg)) {}
  KvCache(const KvCache&) = delete;  // stores point at cfg_
  KvCache& operator=(const KvCache&) = delete;

  const CacheConfig& config() const { return cfg_; }

  void AddSequence(int64_t id);
  void ResetSequence(int64_t id);
  void RemoveSequence(int64_t id);
  const SequenceStore& Sequence(int64_t id) const;
  std::vector<int64_t> Ids() const;
  int64_t num_sequences() const { return static_cast<int64_t>(seqs_.size()); }
  int64_t BytesUsed() const;

  // The C API's operations (see swa.h).
  void Append(const int64_t* ids, int64_t num_seqs, const swa_tensor* k, const swa_tensor* v,
              const int32_t* cu_seqlens);
  void Attend(const int64_t* ids, int64_t num_seqs, const swa_tensor* q, const int32_t* cu_seqlens_q,
              swa_tensor* out, float* lse);
  void AppendAttend(const int64_t* ids, int64_t num_seqs, const swa_tensor* q, const swa_tensor* k,
                    const swa_tensor* v, const int32_t* cu_seqlens, swa_tensor* out, float* lse);
  void Read(int64_t id, int64_t first_position, swa_tensor* k, swa_tensor* v) const;

  // Loading a saved cache: a sequence with its length set and nothing written yet.
  SequenceStore& RestoreSequence(int64_t id, int64_t length);

 private:
  // Checks ids (distinct, known) and the tensor's rows per sequence; `what` names the
  // tensor in messages.
  std::vector<SeqRows> BatchRows(const int64_t* ids, int64_t num_seqs, const swa_tensor* t,
                                 const int32_t* cu_seqlens, const char* what);
  // The checks of Append before anything changes.
  void CheckAppend(const int64_t* ids, int64_t num_seqs, const swa_tensor* k, const swa_tensor* v,
                   const int32_t* cu_seqlens, std::vector<SeqRows>* rows);
  // The checks of q, out, lse (tensors, ids, packing); returns the query rows per sequence.
  std::vector<SeqRows> CheckQueries(const int64_t* ids, int64_t num_seqs, const swa_tensor* q,
                                    const int32_t* cu_seqlens_q, swa_tensor* out, float* lse);
  // CheckQueries, and each sequence holds what its queries need.
  std::vector<SeqRows> CheckAttend(const int64_t* ids, int64_t num_seqs, const swa_tensor* q,
                                   const int32_t* cu_seqlens_q, swa_tensor* out, float* lse);
  // Validated work: write rows / attend rows (rows[s].count <= max_chunk in a ring).
  void AppendRows(const std::vector<SeqRows>& rows, const swa_tensor& k, const swa_tensor& v);
  void AttendRows(const std::vector<SeqRows>& rows, const swa_tensor& q, const swa_tensor& out, float* lse);

  // Working memory of an attend, kept between calls so that decode does not allocate.
  struct Scratch {
    hwy::AlignedFreeUniquePtr<uint8_t[]> q, out, keys;
    size_t q_bytes = 0, out_bytes = 0, keys_bytes = 0;
    std::vector<float> lse;
  };
  static uint8_t* Reserve(hwy::AlignedFreeUniquePtr<uint8_t[]>* buffer, size_t* size, size_t bytes);

  CacheConfig cfg_;
  std::map<int64_t, std::unique_ptr<SequenceStore>> seqs_;
  Scratch scratch_;
};

}  // namespace swa::cache
