// KvCache's attend: the queries of each sequence against its resident keys, through the
// attention entry with the keys given as spans in absolute positions (problem.spanned)
// and the layer's rule validated once at create time (CacheConfig::rule). The queries
// are gathered into one packed tensor (and rotated, with RoPE), so that a batch of
// streams at different positions is a single varlen forward call, then scattered back
// to the caller's out and lse.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "attention/entry.h"
#include "attention/rule.h"
#include "attention/validate.h"
#include "cache/kv_cache.h"
#include "common/byte_range.h"
#include "common/error.h"
#include "common/parallel.h"
#include "ops/rope.h"

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

// Rows [begin, begin + length) of each sequence's rows (fewer where a sequence ends).
std::vector<SeqRows> Piece(const std::vector<SeqRows>& rows, int64_t begin, int64_t length) {
  std::vector<SeqRows> piece = rows;
  for (SeqRows& r : piece) {
    r.row0 += begin;
    r.count = std::clamp<int64_t>(r.count - begin, 0, length);
  }
  return piece;
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
  attention::ValidateQueries(q, out, lse, cfg_.hkv, cu_seqlens_q, cu_seqlens_q != nullptr ? num_seqs : 0);
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
  const ByteRange ro = TensorBytes(out);
  const ByteRange rl =
      lse != nullptr ? FloatBytes(lse, out->shape[0] * out->shape[2] * out->shape[1]) : ByteRange{};
  for (const swa_tensor* in : {k, v}) {
    const char* name = in == k ? "k" : "v";
    if (Overlaps(ro, TensorBytes(in))) ThrowInvalid(std::string("out overlaps the memory of ") + name);
    if (Overlaps(rl, TensorBytes(in))) ThrowInvalid(std::string("lse overlaps the memory of ") + name);
  }
  int64_t longest = 0;
  for (const SeqRows& r : krows) longest = std::max(longest, r.count);
  // A growing cache evicts nothing: append everything, then attend in pieces that fit
  // int32 packing, which equals append then attend under any rule.
  if (cfg_.grows) {
    AppendRows(krows, *k, *v);
    const int64_t piece =
        std::max<int64_t>(1, std::numeric_limits<int32_t>::max() / std::max<int64_t>(1, num_seqs));
    for (int64_t begin = 0; begin < longest; begin += piece)
      AttendRows(Piece(qrows, begin, piece), *q, *out, lse);
    return;
  }
  // A ring holds the keys of at most max_chunk queries, so longer chunks go in pieces of
  // max_chunk, each appended then attended. A rule that shows a query later keys would
  // hide from each piece the keys of the pieces after it: refused rather than different.
  if (longest > cfg_.max_chunk && attention::SeesLaterKeys(cfg_.rule.mask, cfg_.rule.windows, cfg_.hq)) {
    ThrowInvalid("append_attend of " + Str(longest) + " positions exceeds max_chunk " + Str(cfg_.max_chunk) +
                 ", and this rule shows queries later keys (not causal, with a right window, chunks or "
                 "global tokens): a ring cannot keep every key those queries see. Pass at most max_chunk "
                 "positions per call, or create the cache with a larger max_chunk");
  }
  for (int64_t begin = 0; begin < longest; begin += cfg_.max_chunk) {
    AppendRows(Piece(krows, begin, cfg_.max_chunk), *k, *v);
    AttendRows(Piece(qrows, begin, cfg_.max_chunk), *q, *out, lse);
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
      oldest = std::max(attention::OldestLocalKey(cfg_.rule.mask, cfg_.rule.windows, hq, f), cfg_.sink_slots);
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
  ops::RopeAngles angles(cfg_.Rope());
  float row[attention::kMaxHeadDim];
  for (int64_t s = 0; s < num_seqs; ++s) {
    const SeqRows& r = rows[s];
    for (int64_t i = 0; i < r.count; ++i) {
      const char* src =
          static_cast<const char*>(q.data) + (r.batch * q.stride[0] + (r.row0 + i) * q.stride[1]) * esize;
      uint8_t* dst = qp + (cu[s] + i) * q_row_bytes;
      if (cfg_.rope) {
        angles.At(first_query[s] + i);
        ops::RotateHeads(angles, cfg_.dtype, hq, dim, src, q.stride[2], dst, dim, row);
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
    std::vector<ops::RopeAngles> worker_angles(threads, ops::RopeAngles(cfg_.Rope()));
    std::vector<float> worker_rows(static_cast<size_t>(threads * dim));
    pool.ParallelFor(tasks, threads, [&](int64_t t, int worker) {
      const int64_t end = std::min<int64_t>(static_cast<int64_t>(jobs.size()), (t + 1) * kRowsPerTask);
      for (int64_t j = t * kRowsPerTask; j < end; ++j) {
        worker_angles[worker].At(jobs[j].position);
        ops::RotateHeads(worker_angles[worker], cfg_.dtype, hkv, dim, jobs[j].src, dim, jobs[j].dst, dim,
                         worker_rows.data() + worker * dim);
      }
    });
  }

  // The forward over the packed queries: the layer's rule, with this call's tensors.
  attention::Problem p = cfg_.rule;
  p.batch = 1;
  p.q = RowsRef(qp, total, hq, dim);
  p.out = RowsRef(op, total, hq, dim);
  p.lse = lse ? scratch_.lse.data() : nullptr;
  p.num_seqs = num_seqs;
  p.cu_seqlens_q = cu.data();
  p.spanned = &keys;
  attention::Forward(p, pool);

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
