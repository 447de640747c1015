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
#include <cmath>
#include <limits>
#include <vector>

#include "attention/cpu/forward.h"
#include "attention/cpu/forward_decode.h"
#include "attention/cpu/tile_ops-inl.h"
#include "attention/grid.h"
#include "attention/rule.h"
#include "attention/schedule.h"
#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {
namespace {

constexpr size_t kBlockQ = 128;  // query rows per task (the lanes of S^T)
constexpr size_t kBlockK = 64;  // keys per schedule block

// Per-worker scratch, allocated once per call and reused across tasks.
struct Scratch {
  size_t dim_padded = 0;  // head_dim rounded up to whole vectors
  // Row strides of the tiles: one vector more than their rows hold, so that rows are not
  // a power of two apart (512 B rows all map to the same few L1 sets and the
  // micro-kernels' operands evict each other).
  size_t ld = 0;   // o and kv
  size_t ldq = 0;  // qt and st
  hwy::AlignedFreeUniquePtr<float[]> qt;   // [dim][ldq]  Q^T, pre-scaled
  hwy::AlignedFreeUniquePtr<float[]> o;    // [kBlockQ][ld]
  hwy::AlignedFreeUniquePtr<float[]> st;   // [kBlockK][ldq]  S^T, then P^T
  hwy::AlignedFreeUniquePtr<float[]> kv;   // [2][kBlockK][ld] converted K, V
  hwy::AlignedFreeUniquePtr<float[]> row;  // [dim_padded]
  hwy::AlignedFreeUniquePtr<float[]> m, l, alpha;  // [kBlockQ]
  std::vector<KeyBlock> blocks;
  std::vector<KeySpan> spans;
  std::vector<uint8_t> visible;
  int64_t key_first[kBlockK], key_last[kBlockK];  // rows that see each key of a block

  void Allocate(size_t dim) {
    const size_t lanes = hn::Lanes(DF());
    dim_padded = (dim + lanes - 1) / lanes * lanes;
    ld = dim_padded + lanes;
    ldq = kBlockQ + lanes;
    qt = hwy::AllocateAligned<float>(dim * ldq);
    o = hwy::AllocateAligned<float>(kBlockQ * ld);
    st = hwy::AllocateAligned<float>(kBlockK * ldq);
    kv = hwy::AllocateAligned<float>(2 * kBlockK * ld);
    row = hwy::AllocateAligned<float>(dim_padded);
    m = hwy::AllocateAligned<float>(kBlockQ);
    l = hwy::AllocateAligned<float>(kBlockQ);
    alpha = hwy::AllocateAligned<float>(kBlockQ);
    visible.resize(kBlockK);
  }
};


// Everything one task needs while it walks its key blocks.
struct TaskState {
  const Problem& p;
  const BlockTask& task;
  Scratch& w;
  size_t rows, row_vectors, lanes_used;
  int64_t kv_head;
};

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
  // S^T = K . Q^T  [cols x lanes_used]. K is the broadcast operand, read a few rows
  // at a time, so f32 rows are used in place; other dtypes are converted (packing
  // also brings this block's V rows into cache; packing V, the next block's K rows).
  FloatRows k;
  if (p.dtype == DType::kF32) {
    k = {static_cast<const float*>(span.k.data) + span.k.Offset(span.batch, span.row0 + kb.begin, t.kv_head),
         static_cast<size_t>(span.k.stride_l), false};
    PrefetchRows({&span.v, span.row0 + kb.begin, static_cast<int64_t>(cols)}, p.dtype, span.batch, t.kv_head);
  } else {
    k = LoadRows(span.k, p.dtype, span.batch, span.row0 + kb.begin, cols, t.kv_head, ld, w.kv.get(),
                 {&span.v, span.row0 + kb.begin, static_cast<int64_t>(cols)});
  }
  Gemm(cols, t.lanes_used, dim, k.data, k.stride, 1, w.qt.get(), ldq, st, ldq, false, true);

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
        if (p.softcap > 0) s = hn::Mul(cap, hn::Tanh(d, hn::Mul(s, inv_cap)));
        if (p.alibi_slopes) {
          const auto dist = hn::Abs(hn::Add(hn::Set(d, rel + static_cast<float>(v * L)), iota));
          s = hn::NegMulAdd(vslope, dist, s);
        }
        hn::Store(s, d, st + j * ldq + v * L);
      }
    }
  }
  if (!kb.full && !rule.has_extras()) {
    // The rows that see key j are one interval [first, last]: blend -inf into the other
    // lanes of the key's row of S^T, a vector at a time.
    KeyRowRanges(rule, t.task.begin, t.task.end, kb.begin, kb.end, w.key_first, w.key_last);
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
  const PrefetchBlock next_keys =
      next ? PrefetchBlock{&span.k, span.row0 + next->begin, next->end - next->begin} : PrefetchBlock{};
  const FloatRows vr = LoadRows(span.v, p.dtype, span.batch, span.row0 + kb.begin, cols, t.kv_head, ld,
                                w.kv.get() + kBlockK * ld, next_keys);
  if (kb.full || AllFinite(vr, cols, dim)) {
    Gemm(rows, dim, cols, st, 1, ldq, vr.data, vr.stride, w.o.get(), ld, true, vr.padded);
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

  // Q^T, pre-multiplied by the softmax scale; unused lanes are zero.
  std::fill_n(w.qt.get(), dim * w.ldq, 0.0f);
  const size_t esize = DTypeSize(p.dtype);
  for (size_t r = 0; r < rows; ++r) {
    const void* src =
        static_cast<const char*>(p.q.data) + p.q.Offset(seq.batch, seq.q_begin + task.begin + r, h) * esize;
    RowToFloat(src, p.dtype, dim, dp, w.row.get());
    for (size_t e = 0; e < dim; ++e) w.qt[e * w.ldq + r] = w.row[e] * p.scale;
  }
  std::fill_n(w.o.get(), rows * w.ld, 0.0f);
  // A learned sink is a key with logit `sink` and a zero value: it starts the softmax.
  const bool has_sink = p.sink_logits != nullptr;
  std::fill_n(w.m.get(), kBlockQ, has_sink ? p.sink_logits[h] : -std::numeric_limits<float>::infinity());
  std::fill_n(w.l.get(), kBlockQ, has_sink ? 1.0f : 0.0f);

  // The softmax state carries across spans, so keys split over several spans (a ring
  // buffer) give the same result as one.
  int64_t first_query = 0;
  p.SpansOf(task.seq, seq, &w.spans, &first_query);
  for (const KeySpan& span : w.spans) {
    const BandRule rule(p.mask, p.windows[h], seq.lq, span.length, first_query, span.first_position);
    ScheduleQueryBlock(rule, task.begin, task.end, kBlockK, &w.blocks);
    for (size_t b = 0; b < w.blocks.size(); ++b) {
      ProcessBlock(state, span, rule, w.blocks[b], b + 1 < w.blocks.size() ? &w.blocks[b + 1] : nullptr);
    }
  }

  // Normalise and store. A row with no visible key (l == 0) writes zeros and +inf.
  for (size_t r = 0; r < rows; ++r) {
    const int64_t i = task.begin + static_cast<int64_t>(r);
    const float l = w.l[r];
    void* dst = static_cast<char*>(p.out.data) + p.out.Offset(seq.batch, seq.q_begin + i, h) * esize;
    RowFromFloat(w.o.get() + r * w.ld, l != 0 ? 1.0f / l : 0.0f, dim, p.dtype, dst);
    if (p.lse) {
      p.lse[p.LseIndex(seq, h, i)] = l != 0 ? w.m[r] + std::log(l) : std::numeric_limits<float>::infinity();
    }
  }
}

}  // namespace

void ForwardImpl(const Problem& p, ThreadPool& pool) {
  const BlockGrid grid(p, p.hq, kBlockQ, /*over_keys=*/false);
  const int threads = static_cast<int>(std::min<int64_t>(ThreadPool::ResolveThreads(p.threads), grid.size()));
  if (threads <= 0) return;
  std::vector<Scratch> scratch(threads);
  for (Scratch& s : scratch) s.Allocate(static_cast<size_t>(p.dim));
  pool.ParallelFor(grid.size(), threads, [&](int64_t t, int worker) { RunTask(p, grid.At(t), scratch[worker]); });
}

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::attention::cpu {

HWY_EXPORT(ForwardImpl);

void Forward(const Problem& p, ThreadPool& pool) {
  if (UseDecodePath(p)) {
    ForwardDecode(p, pool);
  } else {
    HWY_DYNAMIC_DISPATCH(ForwardImpl)(p, pool);
  }
}

}  // namespace swa::attention::cpu
#endif
