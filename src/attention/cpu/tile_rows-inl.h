// Moving rows between the caller's strided [B, L, H, D] tensors and a kernel's packed
// f32 tiles, per Highway target: loading key/value rows (with prefetches of the rows
// needed next) and finishing a query row's out and lse. Included once per target, hence
// the toggling guard.
#if defined(SWA_ATTENTION_CPU_TILE_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SWA_ATTENTION_CPU_TILE_ROWS_INL_H_
#undef SWA_ATTENTION_CPU_TILE_ROWS_INL_H_
#else
#define SWA_ATTENTION_CPU_TILE_ROWS_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "attention/problem.h"
#include "common/dtype.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "ops/convert-inl.h"
#include "ops/gemm-inl.h"
#include "ops/math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The ops every kernel uses, for this target.
using ops::HWY_NAMESPACE::AllFinite;
using ops::HWY_NAMESPACE::DF;
using ops::HWY_NAMESPACE::DotRows;
using ops::HWY_NAMESPACE::ExpNonPositive;
using ops::HWY_NAMESPACE::FloatRows;
using ops::HWY_NAMESPACE::Gemm;
using ops::HWY_NAMESPACE::RowFromFloat;
using ops::HWY_NAMESPACE::RowToFloat;
using ops::HWY_NAMESPACE::Softcap;
using ops::HWY_NAMESPACE::TanhApprox;

// Finishes query row i of head h of a sequence from its softmax state: out = o / l and
// lse = m + log(l). A row that saw no key (l == 0) writes zeros and +inf (with a learned
// sink, l >= 1 and lse is the sink logit).
HWY_INLINE void FinishRow(const Problem& p, const Sequence& seq, int64_t h, int64_t i, const float* o,
                          float m, float l) {
  void* dst =
      static_cast<char*>(p.out.data) + p.out.Offset(seq.batch, seq.q_begin + i, h) * DTypeSize(p.dtype);
  RowFromFloat(o, l != 0 ? 1.0f / l : 0.0f, static_cast<size_t>(p.dim), p.dtype, dst);
  if (p.lse) p.lse[p.LseIndex(seq, h, i)] = l != 0 ? m + std::log(l) : std::numeric_limits<float>::infinity();
}

// Rows of one head to bring into cache while LoadRows copies others: rows of one head
// are strided (a different page each for large H * D), which the hardware prefetchers
// do not follow. LoadRows asks for row r of this block while it copies its own row r,
// so that the requests are spread out and the miss queues do not overflow.
struct PrefetchBlock {
  const TensorRef* tensor = nullptr;  // null: nothing to prefetch
  int64_t row0 = 0, rows = 0;
  int64_t head = -1;  // -1: the head being loaded (or passed to PrefetchRows)
};

// Requests the cache lines of [p, p + bytes).
HWY_INLINE void PrefetchBytes(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t b = 0; b < bytes; b += 64) hwy::Prefetch(c + b);
  hwy::Prefetch(c + bytes - 1);
}

// Requests the cache lines of [p, p + bytes) for writing (prefetchw where the compiler
// has it; a plain prefetch otherwise).
HWY_INLINE void PrefetchBytesForWrite(void* p, size_t bytes) {
  char* c = static_cast<char*>(p);
  for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 1, 3);
  __builtin_prefetch(c + bytes - 1, 1, 3);
}

// Issues the prefetches of one block's rows.
HWY_INLINE void PrefetchRows(const PrefetchBlock& block, DType dtype, int64_t batch, int64_t head) {
  if (block.tensor == nullptr) return;
  const TensorRef& t = *block.tensor;
  const size_t esize = DTypeSize(dtype);
  const size_t bytes = static_cast<size_t>(t.dim) * esize;
  if (block.head >= 0) head = block.head;
  for (int64_t r = 0; r < block.rows; ++r) {
    PrefetchBytes(static_cast<const char*>(t.data) + t.Offset(batch, block.row0 + r, head) * esize, bytes);
  }
}

HWY_INLINE FloatRows LoadRows(const TensorRef& t, DType dtype, int64_t batch, int64_t row0, int64_t rows,
                              int64_t head, size_t dim_padded, float* buffer, PrefetchBlock prefetch = {}) {
  // Rows are copied even for f32: read in place, rows of a [L, H, D] tensor sit
  // H * D * 4 bytes apart (4 KiB for 8 heads of 128), all in the same L1 set, and the
  // micro-kernels thrash; a packed tile also reads as whole vectors (no tail masks).
  const size_t esize = DTypeSize(dtype);
  const int64_t prefetch_rows = prefetch.tensor != nullptr ? prefetch.rows : 0;
  const int64_t prefetch_head = prefetch.head >= 0 ? prefetch.head : head;
  for (int64_t r = 0; r < std::max(rows, prefetch_rows); ++r) {
    if (r < prefetch_rows) {
      const TensorRef& pt = *prefetch.tensor;
      const size_t bytes = static_cast<size_t>(pt.dim) * esize;
      PrefetchBytes(
          static_cast<const char*>(pt.data) + pt.Offset(batch, prefetch.row0 + r, prefetch_head) * esize,
          bytes);
    }
    if (r < rows) {
      const void* src = static_cast<const char*>(t.data) + t.Offset(batch, row0 + r, head) * esize;
      RowToFloat(src, dtype, t.dim, dim_padded, buffer + r * dim_padded);
    }
  }
  return {buffer, dim_padded, true};
}

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
