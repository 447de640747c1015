// The CPU forward: flash-style tiles over the block schedule with online softmax,
// compiled for every Highway target and dispatched at run time.
//
// Layout of the work: one task is a block of kBlockQ query rows of one head. The score
// tile is kept transposed, S^T[key][query], so that queries sit in the vector lanes:
// S^T = K . Q^T broadcasts key elements straight from K's rows (no packing), and the
// softmax runs down the key axis with whole-vector max/exp/sum (no horizontal
// reductions). O += P . V then broadcasts P^T entries against V's rows. Only Q is
// transposed, once per task.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/forward.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <new>
#include <vector>

#include "attention/cpu/forward.h"
#include "attention/cpu/tile_bands.h"
#include "attention/cpu/tile_rows-inl.h"
#include "attention/grid.h"
#include "attention/rule.h"
#include "attention/schedule.h"
#include "ops/aligned.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {
namespace {

constexpr size_t kBlockQ = 128;  // query rows per task (the lanes of S^T)
constexpr size_t kBlockK = 64;   // keys per schedule block

// A worker keeps packed f32 copies (rows ld apart) of the K and V rows of the key blocks
// it visited last. Under a sliding window, the next query block it takes visits mostly
// the same key blocks, so rows are copied (or converted from bf16/f16) about once
// instead of once per visiting query block, and a revisit reads contiguous memory
// that the hardware prefetchers follow, where a head's rows in the caller's [L, H, D]
// tensors lie H * D elements apart. Direct-mapped by key block; a slot's tag is the
// address of its first K and V row, valid within one call.
constexpr size_t kSlots = 64;

struct BlockTag {
  const void* k_row = nullptr;  // first row of the block in K and V
  const void* v_row = nullptr;
  int64_t k_stride = 0, v_stride = 0;  // between rows, in elements
  size_t cols = 0;
  bool operator==(const BlockTag&) const = default;
};

struct BlockSlot {
  BlockTag tag;
  int v_finite = -1;  // whether every V entry is finite: -1 not yet known, else 0 or 1
};

// Per-worker scratch, kept by each thread across calls (first touch of fresh pages
// costs more than a small call) and sized for the largest head_dim seen.
struct Scratch {
  size_t dim = 0;
  size_t dim_padded = 0;  // head_dim rounded up to whole vectors
  // Row strides of the tiles: one vector more than their rows hold, so that rows are not
  // a power of two apart (512 B rows all map to the same few L1 sets and the
  // micro-kernels' operands evict each other).
  size_t ld = 0;                   // o and the slots' K and V rows
  size_t ldq = 0;                  // qt and st
  ops::AlignedFloats qt;           // [dim][ldq]  Q^T, pre-scaled
  ops::AlignedFloats o;            // [kBlockQ][ld]
  ops::AlignedFloats st;           // [kBlockK][ldq]  S^T, then P^T
  ops::AlignedFloats slot_rows;    // [kSlots][2][kBlockK][ld]  K, V
  ops::AlignedFloats row;          // [dim_padded]
  ops::AlignedFloats m, l, alpha;  // [kBlockQ]
  BlockSlot slots[kSlots];
  uint64_t call = 0;  // the call whose blocks the slots hold
  std::vector<KeyBlock> blocks;
  std::vector<KeySpan> spans;
  std::vector<uint8_t> visible;
  int64_t key_first[kBlockK], key_last[kBlockK];  // rows that see each key of a block
  // The parts of a partial block's S^T = K . Q^T (by groups of keys) and O += P . V (by
  // groups of query rows) that hold visible pairs.
  static constexpr size_t kKeyGroups = RowGroups(kBlockK), kRowGroups = RowGroups(kBlockQ);
  TileInterval key_groups[kKeyGroups], row_groups[kRowGroups];
  RowGroupBand score_bands[kKeyGroups];  // S^T: the query vectors each key group needs
  RowGroupBand value_bands[kRowGroups];  // O += P . V: the keys each row group sees

  // Sizes the buffers for head_dim `d` and forgets the slots of earlier calls. Throws
  // std::bad_alloc (the C API returns SWA_ERR_OUT_OF_MEMORY) and leaves the scratch
  // unsized if memory runs out, so that the next call tries again.
  void Prepare(size_t d, uint64_t call_id) {
    if (call_id != call) {
      std::fill_n(slots, kSlots, BlockSlot{});
      call = call_id;
    }
    if (d == dim) return;
    dim = 0;
    const size_t lanes = hn::Lanes(DF());
    dim_padded = (d + lanes - 1) / lanes * lanes;
    ld = dim_padded + lanes;
    ldq = kBlockQ + lanes;
    qt = ops::AllocateFloats(d * ldq);
    o = ops::AllocateFloats(kBlockQ * ld);
    st = ops::AllocateFloats(kBlockK * ldq);
    slot_rows = ops::AllocateFloats(kSlots * 2 * kBlockK * ld);
    row = ops::AllocateFloats(dim_padded);
    m = ops::AllocateFloats(kBlockQ);
    l = ops::AllocateFloats(kBlockQ);
    alpha = ops::AllocateFloats(kBlockQ);
    visible.resize(kBlockK);
    std::fill_n(slots, kSlots, BlockSlot{});
    dim = d;
  }
  float* SlotK(size_t slot) { return slot_rows.get() + slot * 2 * kBlockK * ld; }
  float* SlotV(size_t slot) { return SlotK(slot) + kBlockK * ld; }
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Everything one task needs while it walks its key blocks.
struct TaskState {
  const Problem& p;
  const BlockTask& task;
  Scratch& w;
  size_t rows, row_vectors, lanes_used;
  int64_t kv_head;
};

// The slot of a key block: consecutive blocks of a span take consecutive slots.
size_t SlotIndex(const KeySpan& span, const KeyBlock& kb) {
  return static_cast<size_t>((span.row0 + kb.begin) / static_cast<int64_t>(kBlockK)) % kSlots;
}

BlockTag TagOf(const KeySpan& span, const KeyBlock& kb, int64_t kv_head, size_t esize) {
  const int64_t row = span.row0 + kb.begin;
  return BlockTag{static_cast<const char*>(span.k.data) + span.k.Offset(span.batch, row, kv_head) * esize,
                  static_cast<const char*>(span.v.data) + span.v.Offset(span.batch, row, kv_head) * esize,
                  span.k.stride_l, span.v.stride_l, static_cast<size_t>(kb.end - kb.begin)};
}

// The K rows of block `kb` (or null) to request ahead, unless its slot holds them.
PrefetchBlock KeysToFetch(const TaskState& t, const KeySpan& span, const KeyBlock* kb) {
  if (kb == nullptr ||
      t.w.slots[SlotIndex(span, *kb)].tag == TagOf(span, *kb, t.kv_head, DTypeSize(t.p.dtype))) {
    return {};
  }
  return PrefetchBlock{&span.k, span.row0 + kb->begin, kb->end - kb->begin};
}

// One key block of one span: S^T = K . Q^T, score transforms and mask, online softmax
// update of (m, l, O), then O += P . V.
// `next` (or null) is the block that follows, whose keys are prefetched meanwhile.
void ProcessBlock(const TaskState& t, const KeySpan& span, const BandRule& rule, const KeyBlock& kb,
                  const KeyBlock* next) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const Problem& p = t.p;
  Scratch& w = t.w;
  const size_t dim = static_cast<size_t>(p.dim), dp = w.dim_padded, ld = w.ld, ldq = w.ldq;
  const size_t rows = t.rows, row_vectors = t.row_vectors;
  const int64_t h = t.task.head;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const size_t cols = static_cast<size_t>(kb.end - kb.begin);
  float* st = w.st.get();
  // The block's packed K and V rows: from its slot, or copied there now (K here, with V
  // requested meanwhile; V after the softmax).
  const size_t esize = DTypeSize(p.dtype);
  const BlockTag tag = TagOf(span, kb, t.kv_head, esize);
  const size_t slot_index = SlotIndex(span, kb);
  BlockSlot& slot = w.slots[slot_index];
  const bool cached = slot.tag == tag;
  float* const k_rows = w.SlotK(slot_index);
  float* const v_rows = w.SlotV(slot_index);
  if (!cached) {
    slot = BlockSlot{};
    LoadRows(span.k, p.dtype, span.batch, span.row0 + kb.begin, cols, t.kv_head, ld, k_rows,
             {&span.v, span.row0 + kb.begin, static_cast<int64_t>(cols)});
  }
  // S^T = K . Q^T  [cols x lanes_used]
  // A partial block of a plain band computes only the key groups x query vectors and
  // the query groups x keys that hold visible pairs; the mask below hides the rest.
  const bool banded = !kb.full && !rule.has_extras();
  if (banded) {
    KeyRowRanges(rule, t.task.begin, t.task.end, kb.begin, kb.end, w.key_first, w.key_last);
    TileIntervals(w.key_first, w.key_last, cols, rows, t.task.begin, w.key_groups, w.row_groups);
    BandsAsVectors(w.key_groups, RowGroups(cols), L, w.score_bands);
    BandsAsTerms(w.row_groups, RowGroups(rows), w.value_bands);
  }
  Gemm(cols, t.lanes_used, dim, k_rows, ld, 1, w.qt.get(), ldq, st, ldq, false, true,
       banded ? w.score_bands : nullptr);

  // Score transforms: softcap, ALiBi, then the mask of a partial block.
  if (p.softcap > 0 || p.alibi_slopes) {
    const auto cap = hn::Set(d, p.softcap), inv_cap = hn::Set(d, p.softcap > 0 ? 1.0f / p.softcap : 0.0f);
    const auto vslope = hn::Set(d, p.alibi_slopes ? p.alibi_slopes[h] : 0.0f);
    const auto iota = hn::Iota(d, 0.0f);
    // Distances are differences of positions, the same in any frame.
    const int64_t rel0 = rule.Position(t.task.begin) - kb.begin;
    for (size_t j = 0; j < cols; ++j) {
      const float rel = static_cast<float>(rel0 - static_cast<int64_t>(j));
      for (size_t v = 0; v < row_vectors; ++v) {
        auto s = hn::Load(d, st + j * ldq + v * L);
        if (p.softcap > 0) s = Softcap(d, s, cap, inv_cap);
        if (p.alibi_slopes) {
          const auto dist = hn::Abs(hn::Add(hn::Set(d, rel + static_cast<float>(v * L)), iota));
          s = hn::NegMulAdd(vslope, dist, s);
        }
        hn::Store(s, d, st + j * ldq + v * L);
      }
    }
  }
  if (banded) {
    // The rows that see key j are one interval [first, last]: blend -inf into the other
    // lanes of the key's row of S^T (some of which were never computed), a vector at a
    // time.
    const auto lane = hn::Iota(d, 0.0f);
    const auto vneg = hn::Set(d, neg_inf);
    for (size_t j = 0; j < cols; ++j) {
      const auto first = hn::Set(d, static_cast<float>(w.key_first[j] - t.task.begin));
      const auto last = hn::Set(d, static_cast<float>(w.key_last[j] - t.task.begin));
      for (size_t v = 0; v < row_vectors; ++v) {
        const auto i = hn::Add(lane, hn::Set(d, static_cast<float>(v * L)));
        float* s = st + j * ldq + v * L;
        hn::Store(hn::IfThenElse(hn::Or(hn::Lt(i, first), hn::Gt(i, last)), vneg, hn::Load(d, s)), d, s);
      }
    }
  } else if (!kb.full) {
    for (size_t r = 0; r < rows; ++r) {
      RowVisibility(rule, t.task.begin + static_cast<int64_t>(r), kb.begin, kb.end, w.visible.data());
      for (size_t j = 0; j < cols; ++j) {
        if (!w.visible[j]) st[j * ldq + r] = neg_inf;
      }
    }
  }

  // Online softmax down the key axis, a vector of queries at a time. While a query
  // has seen no finite score, exponentiate against 0 so masked keys give 0 and NaN
  // scores still propagate.
  const auto vneg_inf = hn::Set(d, neg_inf);
  for (size_t v = 0; v < row_vectors; ++v) {
    auto block_max = vneg_inf;
    for (size_t j = 0; j < cols; ++j) block_max = hn::Max(block_max, hn::Load(d, st + j * ldq + v * L));
    const auto m_old = hn::Load(d, w.m.get() + v * L);
    const auto m_new = hn::Max(m_old, block_max);
    const auto m_use = hn::IfThenZeroElse(hn::Eq(m_new, vneg_inf), m_new);
    const auto alpha = ExpNonPositive(d, hn::Sub(m_old, m_use));
    auto sum = hn::Zero(d);
    for (size_t j = 0; j < cols; ++j) {
      float* s = st + j * ldq + v * L;
      const auto e = ExpNonPositive(d, hn::Sub(hn::Load(d, s), m_use));
      hn::Store(e, d, s);
      sum = hn::Add(sum, e);
    }
    hn::Store(hn::MulAdd(hn::Load(d, w.l.get() + v * L), alpha, sum), d, w.l.get() + v * L);
    hn::Store(m_new, d, w.m.get() + v * L);
    hn::Store(alpha, d, w.alpha.get() + v * L);
  }
  for (size_t r = 0; r < rows; ++r) {
    const float a = w.alpha[r];
    if (a == 1.0f) continue;
    float* orow = w.o.get() + r * ld;
    const auto va = hn::Set(d, a);
    for (size_t e = 0; e < dp; e += L) hn::Store(hn::Mul(hn::Load(d, orow + e), va), d, orow + e);
  }

  // O += P . V. A masked key has P = 0, but 0 * (NaN or Inf) in V would still poison
  // the rows that cannot see it; a partial block whose V is not finite takes the
  // per-row path that skips masked keys.
  // The next block's K rows are requested now, unless its slot already holds them.
  const PrefetchBlock next_keys = KeysToFetch(t, span, next);
  if (!cached) {
    LoadRows(span.v, p.dtype, span.batch, span.row0 + kb.begin, cols, t.kv_head, ld, v_rows, next_keys);
    slot = BlockSlot{tag, -1};
  } else {
    PrefetchRows(next_keys, p.dtype, span.batch, t.kv_head);
  }
  const FloatRows vr{v_rows, ld, true};
  if (!kb.full && slot.v_finite < 0) slot.v_finite = AllFinite(vr, cols, dim) ? 1 : 0;
  if (kb.full || slot.v_finite == 1) {
    Gemm(rows, dim, cols, st, 1, ldq, vr.data, vr.stride, w.o.get(), ld, true, vr.padded,
         banded ? w.value_bands : nullptr);
    return;
  }
  for (size_t r = 0; r < rows; ++r) {
    RowVisibility(rule, t.task.begin + static_cast<int64_t>(r), kb.begin, kb.end, w.visible.data());
    float* orow = w.o.get() + r * ld;
    for (size_t j = 0; j < cols; ++j) {
      if (!w.visible[j]) continue;
      const float pj = st[j * ldq + r];
      const float* vrow = vr.data + j * vr.stride;
      for (size_t e = 0; e < dim; ++e) orow[e] += pj * vrow[e];
    }
  }
}

void RunTask(const Problem& p, const BlockTask& task, Scratch& w) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const Sequence seq = p.Seq(task.seq);
  const int64_t h = task.head;
  const size_t dim = static_cast<size_t>(p.dim), dp = w.dim_padded;
  const size_t rows = static_cast<size_t>(task.end - task.begin);
  const size_t row_vectors = (rows + L - 1) / L;
  const TaskState state{p, task, w, rows, row_vectors, row_vectors * L, h / p.group()};

  // The softmax state carries across spans, so keys split over several spans (a ring
  // buffer) give the same result as one. The first block's keys are requested before Q
  // is transposed, which gives them time to arrive.
  int64_t first_query = 0;
  p.SpansOf(task.seq, seq, &w.spans, &first_query);
  if (!w.spans.empty()) {
    const KeySpan& span = w.spans.front();
    const BandRule rule(p.mask, p.windows[h], seq.lq, span.length, first_query, span.first_position);
    ScheduleQueryBlock(rule, task.begin, task.end, kBlockK, &w.blocks);
    if (!w.blocks.empty())
      PrefetchRows(KeysToFetch(state, span, &w.blocks.front()), p.dtype, span.batch, state.kv_head);
  }

  // Q^T, pre-multiplied by the softmax scale; unused lanes are zero.
  std::fill_n(w.qt.get(), dim * w.ldq, 0.0f);
  const size_t esize = DTypeSize(p.dtype);
  auto q_row = [&](size_t r) {
    return static_cast<const char*>(p.q.data) +
           p.q.Offset(seq.batch, seq.q_begin + task.begin + r, h) * esize;
  };
  // Q's rows of one head are strided, which the hardware prefetchers do not follow:
  // request a few rows ahead of the one being transposed.
  constexpr size_t kQueryRowsAhead = 6;
  for (size_t r = 0; r < std::min(rows, kQueryRowsAhead); ++r) PrefetchBytes(q_row(r), dim * esize);
  for (size_t r = 0; r < rows; ++r) {
    if (r + kQueryRowsAhead < rows) PrefetchBytes(q_row(r + kQueryRowsAhead), dim * esize);
    const void* src = q_row(r);
    RowToFloat(src, p.dtype, dim, dp, w.row.get());
    for (size_t e = 0; e < dim; ++e) w.qt[e * w.ldq + r] = w.row[e] * p.scale;
  }
  std::fill_n(w.o.get(), rows * w.ld, 0.0f);
  // A learned sink is a key with logit `sink` and a zero value: it starts the softmax.
  const bool has_sink = p.sink_logits != nullptr;
  std::fill_n(w.m.get(), kBlockQ, has_sink ? p.sink_logits[h] : -std::numeric_limits<float>::infinity());
  std::fill_n(w.l.get(), kBlockQ, has_sink ? 1.0f : 0.0f);

  auto out_row = [&](size_t r) {
    return static_cast<char*>(p.out.data) + p.out.Offset(seq.batch, seq.q_begin + task.begin + r, h) * esize;
  };
  for (const KeySpan& span : w.spans) {
    const BandRule rule(p.mask, p.windows[h], seq.lq, span.length, first_query, span.first_position);
    // w.blocks still holds the first span's schedule, made above for its prefetch.
    if (&span != &w.spans.front()) ScheduleQueryBlock(rule, task.begin, task.end, kBlockK, &w.blocks);
    const size_t count = w.blocks.size();
    for (size_t b = 0; b < count; ++b) {
      ProcessBlock(state, span, rule, w.blocks[b], b + 1 < count ? &w.blocks[b + 1] : nullptr);
      if (&span == &w.spans.back()) {
        // The output rows are strided too: ask for them for writing, a share per block
        // of the last span, so that the stores below do not wait on memory.
        for (size_t r = b * rows / count; r < (b + 1) * rows / count; ++r) {
          PrefetchBytesForWrite(out_row(r), dim * esize);
        }
      }
    }
  }

  for (size_t r = 0; r < rows; ++r) {
    FinishRow(p, seq, h, task.begin + static_cast<int64_t>(r), w.o.get() + r * w.ld, w.m[r], w.l[r]);
  }
}

}  // namespace

void ForwardImpl(const Problem& p, ThreadPool& pool) {
  // The query heads of a kv group take each query block in turn, so that a worker's
  // next task mostly finds its key blocks already packed.
  const BlockGrid grid(p, p.hq, kBlockQ, /*over_keys=*/false, /*interleave=*/p.group());
  const int threads = static_cast<int>(std::min<int64_t>(ThreadPool::ResolveThreads(p.threads), grid.size()));
  if (threads <= 0) return;
  // Slots hold blocks of this call only: a later call may pass other data at the same
  // addresses.
  static std::atomic<uint64_t> calls{0};
  const uint64_t call = calls.fetch_add(1) + 1;
  pool.ParallelFor(grid.size(), threads, [&](int64_t t, int) {
    Scratch& w = ThreadScratch();
    w.Prepare(static_cast<size_t>(p.dim), call);
    RunTask(p, grid.At(t), w);
  });
}

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::attention::cpu {

HWY_EXPORT(ForwardImpl);

void ForwardTiled(const Problem& p, ThreadPool& pool) { HWY_DYNAMIC_DISPATCH(ForwardImpl)(p, pool); }

}  // namespace swa::attention::cpu
#endif
