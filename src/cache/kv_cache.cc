// KvCache: sequences, batch arguments, append and read. The attend is in attend.cc.
#include "cache/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "attention/validate.h"
#include "common/byte_range.h"
#include "common/error.h"
#include "ops/rope.h"

namespace swa::cache {
namespace {

std::string Str(int64_t x) { return std::to_string(x); }

}  // namespace

void CheckCacheTensor(const CacheConfig& cfg, const swa_tensor* t, const char* name, int64_t heads,
                      bool is_output) {
  attention::CheckTensorArgument(t, name, is_output);
  const std::string n = name;
  if (static_cast<DType>(t->dtype) != cfg.dtype) {
    ThrowInvalid(n + ".dtype is " + DTypeName(static_cast<DType>(t->dtype)) + ", the cache stores " +
                 DTypeName(cfg.dtype));
  }
  if (t->shape[2] != heads) {
    ThrowInvalid(n + " has " + Str(t->shape[2]) + " heads, the cache has " + Str(heads));
  }
  if (t->shape[3] != cfg.dim) {
    ThrowInvalid(n + " has head_dim " + Str(t->shape[3]) + ", the cache has " + Str(cfg.dim));
  }
}

void KvCache::AddSequence(int64_t id) {
  if (seqs_.count(id) != 0) ThrowInvalid("sequence " + Str(id) + " already exists");
  auto store = std::make_unique<SequenceStore>(cfg_);
  seqs_.emplace(id, std::move(store));
}

void KvCache::ResetSequence(int64_t id) {
  Sequence(id);
  seqs_.at(id)->Reset();
}

void KvCache::RemoveSequence(int64_t id) {
  Sequence(id);
  seqs_.erase(id);
}

const SequenceStore& KvCache::Sequence(int64_t id) const {
  const auto it = seqs_.find(id);
  if (it == seqs_.end()) ThrowInvalid("unknown sequence id " + Str(id));
  return *it->second;
}

std::vector<int64_t> KvCache::Ids() const {
  std::vector<int64_t> ids;
  for (const auto& [id, store] : seqs_) ids.push_back(id);
  return ids;
}

int64_t KvCache::BytesUsed() const {
  int64_t bytes = 0;
  for (const auto& [id, store] : seqs_) bytes += store->bytes();
  return bytes;
}

SequenceStore& KvCache::RestoreSequence(int64_t id, int64_t length) {
  AddSequence(id);
  SequenceStore& store = *seqs_.at(id);
  store.Commit(store.Allocate(length));
  return store;
}

std::vector<SeqRows> KvCache::BatchRows(const int64_t* ids, int64_t num_seqs, const swa_tensor* t,
                                        const int32_t* cu_seqlens, const char* what) {
  const std::string n = what;
  if (num_seqs < 0) ThrowInvalid("num_seqs must be >= 0, got " + Str(num_seqs));
  if (num_seqs > 0 && ids == nullptr) ThrowInvalid("seq_ids is NULL");
  std::vector<int64_t> sorted(ids, ids + num_seqs);
  std::sort(sorted.begin(), sorted.end());
  for (size_t s = 1; s < sorted.size(); ++s) {
    if (sorted[s] == sorted[s - 1])
      ThrowInvalid("sequence id " + Str(sorted[s]) + " appears twice in seq_ids");
  }
  std::vector<SeqRows> rows(num_seqs);
  for (int64_t s = 0; s < num_seqs; ++s) {
    const auto it = seqs_.find(ids[s]);
    if (it == seqs_.end()) ThrowInvalid("unknown sequence id " + Str(ids[s]) + " (seq_ids[" + Str(s) + "])");
    rows[s].store = it->second.get();
  }
  if (cu_seqlens == nullptr) {
    if (t->shape[0] != num_seqs) {
      ThrowInvalid(n + " has batch " + Str(t->shape[0]) + " but num_seqs is " + Str(num_seqs) +
                   " (or pass cu_seqlens)");
    }
    for (int64_t s = 0; s < num_seqs; ++s) rows[s] = {rows[s].store, s, 0, t->shape[1]};
    return rows;
  }
  if (t->shape[0] != 1) ThrowInvalid(n + " must have batch 1 with cu_seqlens, got " + Str(t->shape[0]));
  attention::CheckCuSeqlens(cu_seqlens, num_seqs, t->shape[1], "cu_seqlens");
  for (int64_t s = 0; s < num_seqs; ++s)
    rows[s] = {rows[s].store, 0, cu_seqlens[s], cu_seqlens[s + 1] - cu_seqlens[s]};
  return rows;
}

void KvCache::CheckAppend(const int64_t* ids, int64_t num_seqs, const swa_tensor* k, const swa_tensor* v,
                          const int32_t* cu_seqlens, std::vector<SeqRows>* rows) {
  CheckCacheTensor(cfg_, k, "k", cfg_.hkv, false);
  CheckCacheTensor(cfg_, v, "v", cfg_.hkv, false);
  if (!std::equal(k->shape, k->shape + 4, v->shape)) ThrowInvalid("k and v must have the same shape");
  *rows = BatchRows(ids, num_seqs, k, cu_seqlens, "k");
  const int64_t limit = cfg_.max_positions > 0 ? cfg_.max_positions : kMaxPositions;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const SeqRows& r = (*rows)[s];
    if (r.count > limit - r.store->length()) {
      ThrowInvalid("appending " + Str(r.count) + " positions to sequence " + Str(ids[s]) + " (at position " +
                   Str(r.store->length()) + ") exceeds its fixed capacity of " + Str(limit) + " positions");
    }
  }
}

void KvCache::Append(const int64_t* ids, int64_t num_seqs, const swa_tensor* k, const swa_tensor* v,
                     const int32_t* cu_seqlens) {
  std::vector<SeqRows> rows;
  CheckAppend(ids, num_seqs, k, v, cu_seqlens, &rows);
  AppendRows(rows, *k, *v);
}

void KvCache::AppendRows(const std::vector<SeqRows>& rows, const swa_tensor& k, const swa_tensor& v) {
  // Allocate everything first (the only step that can fail), then commit and copy.
  std::vector<SequenceStore::Plan> plans;
  plans.reserve(rows.size());
  for (const SeqRows& r : rows) plans.push_back(r.store->Allocate(r.store->length() + r.count));
  std::vector<int64_t> first(rows.size()), store_from(rows.size());
  for (size_t s = 0; s < rows.size(); ++s) {
    first[s] = rows[s].store->length();
    store_from[s] = plans[s].store_from;
    rows[s].store->Commit(std::move(plans[s]));
  }

  const int64_t esize = DTypeSize(cfg_.dtype), dim = cfg_.dim, hkv = cfg_.hkv;
  const bool rotate = cfg_.rope && cfg_.mode == PositionMode::kAbsolute;
  ops::RopeAngles angles(cfg_.Rope());
  float row[attention::kMaxHeadDim];
  for (size_t s = 0; s < rows.size(); ++s) {
    const SeqRows& r = rows[s];
    // Rows [sink_end, store_from) of this append are evicted by its newer rows: skipped
    // without a visit, so that a huge append costs only what it stores.
    const int64_t sink_end = std::clamp<int64_t>(cfg_.sink_slots - first[s], 0, r.count);
    const int64_t ring_begin = std::clamp<int64_t>(store_from[s] - first[s], sink_end, r.count);
    auto write = [&](int64_t i) {
      const int64_t pos = first[s] + i;
      const char* ksrc =
          static_cast<const char*>(k.data) + (r.batch * k.stride[0] + (r.row0 + i) * k.stride[1]) * esize;
      const char* vsrc =
          static_cast<const char*>(v.data) + (r.batch * v.stride[0] + (r.row0 + i) * v.stride[1]) * esize;
      uint8_t* kdst = r.store->KRow(pos);
      uint8_t* vdst = r.store->VRow(pos);
      if (rotate) {
        angles.At(pos);
        ops::RotateHeads(angles, cfg_.dtype, hkv, dim, ksrc, k.stride[2], kdst, dim, row);
      } else {
        for (int64_t h = 0; h < hkv; ++h)
          std::memcpy(kdst + h * dim * esize, ksrc + h * k.stride[2] * esize, dim * esize);
      }
      for (int64_t h = 0; h < hkv; ++h)
        std::memcpy(vdst + h * dim * esize, vsrc + h * v.stride[2] * esize, dim * esize);
    };
    for (int64_t i = 0; i < sink_end; ++i) write(i);
    for (int64_t i = ring_begin; i < r.count; ++i) write(i);
  }
}

void KvCache::Read(int64_t id, int64_t first_position, swa_tensor* k, swa_tensor* v) const {
  const SequenceStore& store = Sequence(id);
  CheckCacheTensor(cfg_, k, "k", cfg_.hkv, true);
  CheckCacheTensor(cfg_, v, "v", cfg_.hkv, true);
  if (!std::equal(k->shape, k->shape + 4, v->shape)) ThrowInvalid("k and v must have the same shape");
  if (k->shape[0] != 1) ThrowInvalid("k and v must have batch 1, got " + Str(k->shape[0]));
  const int64_t count = k->shape[1];
  if (first_position < 0 || first_position > store.length() || count > store.length() - first_position) {
    ThrowInvalid("positions [" + Str(first_position) + ", " + Str(first_position + count) +
                 ") are not all in [0, " + Str(store.length()) + "), the positions sequence " + Str(id) +
                 " has seen");
  }
  for (int64_t i = 0; i < count; ++i) {
    if (!store.Resident(first_position + i)) {
      ThrowInvalid("position " + Str(first_position + i) + " of sequence " + Str(id) +
                   " is no longer in the cache (evicted from the ring)");
    }
  }
  // k and v must not overlap each other (each was checked against itself).
  if (Overlaps(TensorBytes(k), TensorBytes(v))) ThrowInvalid("k overlaps the memory of v");
  const int64_t esize = DTypeSize(cfg_.dtype), dim = cfg_.dim;
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t* ksrc = store.KRow(first_position + i);
    const uint8_t* vsrc = store.VRow(first_position + i);
    for (int64_t h = 0; h < cfg_.hkv; ++h) {
      std::memcpy(static_cast<char*>(k->data) + (i * k->stride[1] + h * k->stride[2]) * esize,
                  ksrc + h * dim * esize, dim * esize);
      std::memcpy(static_cast<char*>(v->data) + (i * v->stride[1] + h * v->stride[2]) * esize,
                  vsrc + h * dim * esize, dim * esize);
    }
  }
}

}  // namespace swa::cache
