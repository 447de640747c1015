// KvCache's attend: the queries of each sequence against its resident keys, through the
// CPU forward with the keys given as spans in absolute positions (problem.spanned). The
// queries are gathered into one packed tensor (and rotated, with RoPE), so that a batch
// of streams at different positions is a single varlen forward call, then scattered
// back to the caller's out and lse.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "attention/cpu/forward.h"
#include "attention/validate.h"
#include "cache/kv_cache.h"
#include "common/error.h"
#include "common/parallel.h"
#include "model/rope.h"
#include "swa/swa.hpp"

namespace swa::cache {
namespace {

std::string Str(int64_t x) { return std::to_string(x); }

// A [1, rows, heads, dim] contiguous view of rows of a sequence's storage.
attention::TensorRef RowsRef(const void* data, int64_t rows, int64_t heads, int64_t dim) {
  attention::TensorRef r;
  r.data = const_cast<void*>(data);
  r.batch = 1;
  r.seqlen = rows;
  r.heads = heads;
  r.dim = dim;
  r.stride_h = dim;
  r.stride_l = heads * dim;
  r.stride_b = rows * heads * dim;
  return r;
}

// Bytes [begin, end) spanned by a validated tensor (empty when it has no elements).
std::pair<uintptr_t, uintptr_t> ByteSpan(const swa_tensor* t) {
  int64_t last = 0;
  for (int d = 0; d < 4; ++d) {
    if (t->shape[d] == 0) return {0, 0};
    last += t->stride[d] * (t->shape[d] - 1);
  }
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t->data);
  return {begin, begin + static_cast<uintptr_t>((last + 1) * DTypeSize(static_cast<DType>(t->dtype)))};
}

bool Overlap(std::pair<uintptr_t, uintptr_t> a, std::pair<uintptr_t, uintptr_t> b) {
  return a.first < a.second && b.first < b.second && a.first < b.second && b.first < a.second;
}

// One key row to rotate into the attend's scratch: source, destination, position.
struct RotateJob {
  const uint8_t* src;
  uint8_t* dst;
  int64_t position;
};

}  // namespace

uint8_t* KvCache::Reserve(hwy::AlignedFreeUniquePtr<uint8_t[]>* buffer, size_t* size, size_t bytes) {
  if (bytes > *size || *buffer == nullptr) {
    auto fresh = hwy::AllocateAligned<uint8_t>(std::max<size_t>(bytes, 64));
    if (fresh == nullptr) throw std::bad_alloc();
    *buffer = std::move(fresh);
    *size = std::max<size_t>(bytes, 64);
  }
  return buffer->get();
}

std::vector<SeqRows> KvCache::CheckQueries(const int64_t* ids, int64_t num_seqs, const swa_tensor* q,
                                           const int32_t* cu_seqlens_q, swa_tensor* out, float* lse) {
  if (num_seqs < 0) ThrowInvalid("num_seqs must be >= 0, got " + Str(num_seqs));
  // q, out and lse get the forward's own checks (shapes, strides, aliasing, cu_seqlens).
  swa_attention_params params = cfg_.Params();
  params.cu_seqlens_q = cu_seqlens_q;
  params.num_seqs = cu_seqlens_q != nullptr ? num_seqs : 0;
  attention::ValidateSpannedForward(&params, q, out, lse, cfg_.hkv);
  CheckCacheTensor(cfg_, q, "q", cfg_.hq, false);
  std::vector<SeqRows> rows = BatchRows(ids, num_seqs, q, cu_seqlens_q, "q");
  int64_t total = 0;
  for (const SeqRows& r : rows) total += r.count;
  if (total > std::numeric_limits<int32_t>::max()) ThrowInvalid("more than 2^31 - 1 query rows in one call");
  return rows;
}

std::vector<SeqRows> KvCache::CheckAttend(const int64_t* ids, int64_t num_seqs, const swa_tensor* q,
                                          const int32_t* cu_seqlens_q, swa_tensor* out, float* lse) {
  std::vector<SeqRows> rows = CheckQueries(ids, num_seqs, q, cu_seqlens_q, out, lse);
  for (int64_t s = 0; s < num_seqs; ++s) {
    const SeqRows& r = rows[s];
    if (r.count > r.store->length()) {
      ThrowInvalid("sequence " + Str(ids[s]) + " has seen " + Str(r.store->length()) +
                   " positions: it cannot attend " + Str(r.count) +
                   " queries (the queries are the newest positions; append their keys first)");
    }
    if (!cfg_.grows && r.count > cfg_.max_chunk) {
      ThrowInvalid("attending " + Str(r.count) + " queries of sequence " + Str(ids[s]) +
                   " exceeds max_chunk " + Str(cfg_.max_chunk) +
                   " (the ring keeps the keys of at most max_chunk queries; use "
                   "swa_kv_cache_append_attend to split a longer chunk)");
    }
  }
  return rows;
}

void KvCache::Attend(const int64_t* ids, int64_t num_seqs, const swa_tensor* q, const int32_t* cu_seqlens_q,
                     swa_tensor* out, float* lse) {
  const std::vector<SeqRows> rows = CheckAttend(ids, num_seqs, q, cu_seqlens_q, out, lse);
  AttendRows(rows, *q, *out, lse);
}

void KvCache::AppendAttend(const int64_t* ids, int64_t num_seqs, const swa_tensor* q, const swa_tensor* k,
                           const swa_tensor* v, const int32_t* cu_seqlens, swa_tensor* out, float* lse) {
  std::vector<SeqRows> krows;
  CheckAppend(ids, num_seqs, k, v, cu_seqlens, &krows);
  // The query rows are checked as if the keys were already appended: counts equal the
  // keys' (same cu_seqlens or same length), so no sequence attends more than it holds.
  const std::vector<SeqRows> qrows = CheckQueries(ids, num_seqs, q, cu_seqlens, out, lse);
  for (int64_t s = 0; s < num_seqs; ++s) {
    if (qrows[s].count != krows[s].count) {
      ThrowInvalid("q has " + Str(qrows[s].count) + " rows for sequence " + Str(ids[s]) + " but k has " +
                   Str(krows[s].count) + ": append_attend needs one query per key");
    }
  }
  const auto ro = ByteSpan(out);
  for (const swa_tensor* in : {k, v}) {
    if (Overlap(ro, ByteSpan(in)))
      ThrowInvalid(std::string("out overlaps the memory of ") + (in == k ? "k" : "v"));
    if (lse != nullptr &&
        Overlap({reinterpret_cast<uintptr_t>(lse),
                 reinterpret_cast<uintptr_t>(lse + out->shape[0] * out->shape[2] * out->shape[1])},
                ByteSpan(in))) {
      ThrowInvalid(std::string("lse overlaps the memory of ") + (in == k ? "k" : "v"));
    }
  }
  // Pieces of at most `piece` tokens per sequence: max_chunk in a ring; in a growing
  // cache any count works, bounded only so that one piece's rows fit int32 packing.
  const int64_t row_limit = std::numeric_limits<int32_t>::max() / std::max<int64_t>(1, num_seqs);
  const int64_t piece =
      std::max<int64_t>(1, std::min(cfg_.grows ? (int64_t{1} << 24) : cfg_.max_chunk, row_limit));
  int64_t longest = 0;
  for (const SeqRows& r : krows) longest = std::max(longest, r.count);
  for (int64_t begin = 0; begin < longest; begin += piece) {
    std::vector<SeqRows> kp = krows, qp = qrows;
    for (size_t s = 0; s < krows.size(); ++s) {
      const int64_t n = std::clamp<int64_t>(krows[s].count - begin, 0, piece);
      kp[s].row0 += begin;
      qp[s].row0 += begin;
      kp[s].count = qp[s].count = n;
    }
    AppendRows(kp, *k, *v);
    AttendRows(qp, *q, *out, lse);
  }
}

void KvCache::AttendRows(const std::vector<SeqRows>& rows, const swa_tensor& q, const swa_tensor& out,
                         float* lse) {
  const int64_t num_seqs = static_cast<int64_t>(rows.size());
  const int64_t esize = DTypeSize(cfg_.dtype), hq = cfg_.hq, dim = cfg_.dim, hkv = cfg_.hkv;
  const int64_t q_row_bytes = hq * dim * esize, kv_row_bytes = cfg_.RowBytes();
  std::vector<int32_t> cu(num_seqs + 1, 0);
  for (int64_t s = 0; s < num_seqs; ++s) cu[s + 1] = cu[s] + static_cast<int32_t>(rows[s].count);
  const int64_t total = cu[num_seqs];
  if (total == 0) return;

  // Frames: sequence s attends keys from `oldest` on; its queries and ring keys sit at
  // absolute positions minus `shift` (0 except in the cache-relative mode).
  const bool relative = cfg_.mode == PositionMode::kCacheRelative;
  const bool rotate_keys = relative && cfg_.rope;
  std::vector<int64_t> shift(num_seqs, 0), first_query(num_seqs);
  std::vector<std::vector<StoreSpan>> store_spans(num_seqs);
  int64_t key_rows = 0;
  for (int64_t s = 0; s < num_seqs; ++s) {
    if (rows[s].count == 0) continue;  // no queries: no keys to pass (or rotate)
    const SequenceStore& st = *rows[s].store;
    const int64_t f = st.length() - rows[s].count;
    int64_t oldest = 0;
    if (!cfg_.grows) {
      oldest = std::max(cfg_.OldestVisible(f), cfg_.sink_slots);
      if (oldest < st.FirstResident() && oldest < st.length()) {
        throw Error(SWA_ERR_INTERNAL, "KV cache: a visible key was evicted (position " + Str(oldest) + ")");
      }
      if (relative) shift[s] = oldest - cfg_.sink_slots;
    }
    first_query[s] = f - shift[s];
    st.Spans(oldest, &store_spans[s]);
    for (const StoreSpan& sp : store_spans[s]) key_rows += sp.length;
  }
  auto frame = [&](int64_t s, int64_t position) {
    return position < cfg_.sink_slots ? position : position - shift[s];
  };

  // Queries, packed and (with RoPE) rotated at their positions in the frame.
  uint8_t* qp = Reserve(&scratch_.q, &scratch_.q_bytes, static_cast<size_t>(total * q_row_bytes));
  uint8_t* op = Reserve(&scratch_.out, &scratch_.out_bytes, static_cast<size_t>(total * q_row_bytes));
  if (lse != nullptr) scratch_.lse.resize(static_cast<size_t>(hq * total));
  model::RopeAngles angles(cfg_.Rope());
  float row[attention::kMaxHeadDim];
  for (int64_t s = 0; s < num_seqs; ++s) {
    const SeqRows& r = rows[s];
    for (int64_t i = 0; i < r.count; ++i) {
      const char* src =
          static_cast<const char*>(q.data) + (r.batch * q.stride[0] + (r.row0 + i) * q.stride[1]) * esize;
      uint8_t* dst = qp + (cu[s] + i) * q_row_bytes;
      if (cfg_.rope) {
        angles.At(first_query[s] + i);
        model::RotateHeads(angles, cfg_.dtype, hq, dim, src, q.stride[2], dst, dim, row);
      } else {
        for (int64_t h = 0; h < hq; ++h)
          std::memcpy(dst + h * dim * esize, src + h * q.stride[2] * esize, dim * esize);
      }
    }
  }

  // Keys: spans straight into the storage, or (cache-relative RoPE) into rotated copies
  // of the visible rows, made in parallel (the rows are independent).
  uint8_t* kp = rotate_keys ? Reserve(&scratch_.keys, &scratch_.keys_bytes,
                                      static_cast<size_t>(key_rows * kv_row_bytes))
                            : nullptr;
  std::vector<RotateJob> jobs;
  attention::SpannedKeys keys;
  keys.span_begin.push_back(0);
  int64_t key_row = 0;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const SequenceStore& st = *rows[s].store;
    for (const StoreSpan& sp : store_spans[s]) {
      const uint8_t* kdata = st.KBlock(sp.block) + sp.row0 * kv_row_bytes;
      const uint8_t* vdata = st.VBlock(sp.block) + sp.row0 * kv_row_bytes;
      if (rotate_keys) {
        uint8_t* dst = kp + key_row * kv_row_bytes;
        for (int64_t j = 0; j < sp.length; ++j) {
          jobs.push_back({kdata + j * kv_row_bytes, dst + j * kv_row_bytes, frame(s, sp.first_position + j)});
        }
        kdata = dst;
        key_row += sp.length;
      }
      keys.spans.push_back({RowsRef(kdata, sp.length, hkv, dim), RowsRef(vdata, sp.length, hkv, dim), 0, 0,
                            sp.length, frame(s, sp.first_position)});
    }
    keys.span_begin.push_back(static_cast<int64_t>(keys.spans.size()));
    keys.first_query.push_back(first_query[s]);
  }
  ThreadPool& pool = ThreadPool::Default();
  if (!jobs.empty()) {
    constexpr int64_t kRowsPerTask = 64;
    const int64_t tasks = (static_cast<int64_t>(jobs.size()) + kRowsPerTask - 1) / kRowsPerTask;
    const int threads =
        static_cast<int>(std::min<int64_t>(ThreadPool::ResolveThreads(cfg_.num_threads), tasks));
    std::vector<model::RopeAngles> worker_angles(threads, model::RopeAngles(cfg_.Rope()));
    std::vector<float> worker_rows(static_cast<size_t>(threads * dim));
    pool.ParallelFor(tasks, threads, [&](int64_t t, int worker) {
      const int64_t end = std::min<int64_t>(static_cast<int64_t>(jobs.size()), (t + 1) * kRowsPerTask);
      for (int64_t j = t * kRowsPerTask; j < end; ++j) {
        worker_angles[worker].At(jobs[j].position);
        model::RotateHeads(worker_angles[worker], cfg_.dtype, hkv, dim, jobs[j].src, dim, jobs[j].dst, dim,
                           worker_rows.data() + worker * dim);
      }
    });
  }

  // The forward over the packed queries.
  swa_attention_params params = cfg_.Params();
  params.cu_seqlens_q = cu.data();
  params.num_seqs = num_seqs;
  swa_tensor tq = MakeTensor(qp, static_cast<swa_dtype>(cfg_.dtype), 1, total, hq, dim);
  swa_tensor to = MakeTensor(op, static_cast<swa_dtype>(cfg_.dtype), 1, total, hq, dim);
  const auto vp =
      attention::ValidateSpannedForward(&params, &tq, &to, lse ? scratch_.lse.data() : nullptr, hkv);
  vp->problem.spanned = &keys;
  attention::cpu::Forward(vp->problem, pool);

  // Scatter to the caller's layout: out[b, row, h] and lse[b, h, row].
  for (int64_t s = 0; s < num_seqs; ++s) {
    const SeqRows& r = rows[s];
    for (int64_t i = 0; i < r.count; ++i) {
      const uint8_t* src = op + (cu[s] + i) * q_row_bytes;
      char* dst =
          static_cast<char*>(out.data) + (r.batch * out.stride[0] + (r.row0 + i) * out.stride[1]) * esize;
      for (int64_t h = 0; h < hq; ++h)
        std::memcpy(dst + h * out.stride[2] * esize, src + h * dim * esize, dim * esize);
      if (lse == nullptr) continue;
      for (int64_t h = 0; h < hq; ++h) {
        lse[(r.batch * hq + h) * out.shape[1] + r.row0 + i] = scratch_.lse[h * total + cu[s] + i];
      }
    }
  }
}

}  // namespace swa::cache
