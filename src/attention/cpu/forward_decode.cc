// The decode path of the CPU forward (see forward_decode.h), compiled per Highway target.
//
// A unit is (sequence, kv head, a chunk of that kv head's query heads): its rows are
// (head, query) pairs that all read the same keys. The unit's key blocks (the union of
// its heads' schedules over all key spans) are cut into pieces of kSplitBlocks blocks;
// each piece is a task that leaves a partial softmax state (m, l, unnormalised O),
// and a second pass merges the pieces in order. The cut depends only on the problem,
// so results are identical for any thread count.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/forward_decode.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/cpu/decode_units.h"
#include "attention/cpu/forward_decode.h"
#include "attention/cpu/tile_ops-inl.h"
#include "attention/rule.h"
#include "attention/schedule.h"
#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"


HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {
namespace {

using decode::kBlockK;
using decode::kMaxRows;
using decode::Unit;
using decode::WorkBlock;

struct Scratch {
  size_t dim_padded = 0;
  size_t ld = 0;  // row stride of the K/V tiles: one vector more, off powers of two
  hwy::AlignedFreeUniquePtr<float[]> q, o, s, kv;  // [rows][dp], [rows][dp], [rows][kBlockK], [2][kBlockK][ld]
  float m[kMaxRows], l[kMaxRows];
  std::vector<KeySpan> spans;
  std::vector<WorkBlock> blocks;
  std::vector<KeyBlock> schedule;
  std::vector<uint8_t> visible;

  void Allocate(size_t dim) {
    const size_t lanes = hn::Lanes(DF());
    dim_padded = (dim + lanes - 1) / lanes * lanes;
    ld = dim_padded + lanes;
    q = hwy::AllocateAligned<float>(kMaxRows * dim_padded);
    o = hwy::AllocateAligned<float>(kMaxRows * dim_padded);
    s = hwy::AllocateAligned<float>(kMaxRows * kBlockK);
    kv = hwy::AllocateAligned<float>(2 * kBlockK * ld);
    visible.resize(kBlockK);
  }
};

// Partial softmax state of one piece: m, l and unnormalised O for each row.
struct Partial {
  float* m;  // [rows]
  float* l;  // [rows]
  float* o;  // [rows][dim_padded]
};

// O[r] += sum_j P[r][j] V[j], skipping keys with P = 0 (masked), so that a non-finite
// value a row cannot see never reaches it.
void AccumulateRows(size_t rows, size_t cols, size_t dim, const float* HWY_RESTRICT pm, size_t ldp,
                    const FloatRows& v, float* HWY_RESTRICT o, size_t ldo) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const size_t full = dim / L * L;
  const auto tail = hn::FirstN(d, dim - full);
  for (size_t j = 0; j < cols; ++j) {
    const float* vrow = v.data + j * v.stride;
    for (size_t r = 0; r < rows; ++r) {
      const float pj = pm[r * ldp + j];
      if (pj == 0.0f) continue;
      const auto vp = hn::Set(d, pj);
      float* orow = o + r * ldo;
      for (size_t e = 0; e < full; e += L) {
        hn::Store(hn::MulAdd(vp, hn::LoadU(d, vrow + e), hn::Load(d, orow + e)), d, orow + e);
      }
      if (full < dim) {
        const auto x = v.padded ? hn::LoadU(d, vrow + full) : hn::MaskedLoad(tail, d, vrow + full);
        hn::Store(hn::MulAdd(vp, x, hn::Load(d, orow + full)), d, orow + full);
      }
    }
  }
}

// `next` (or null): the following block, whose rows are prefetched meanwhile (rows of one
// head are strided, which the hardware prefetchers do not follow).
void ProcessBlock(const Problem& p, const Unit& u, const Sequence& seq, const KeySpan& span,
                  const std::vector<BandRule>& rules, const KeyBlock& kb, const KeyBlock* next, Scratch& w) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const size_t dim = static_cast<size_t>(p.dim), dp = w.dim_padded;
  const size_t rows = static_cast<size_t>(u.rows), lq = static_cast<size_t>(seq.lq);
  const size_t cols = static_cast<size_t>(kb.end - kb.begin);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  // Decode streams K and V from memory once: packing this block's K (V) rows asks for
  // the next block's K (V) rows, a whole block ahead of their use.
  const int64_t next_row0 = next ? span.row0 + next->begin : 0, next_rows = next ? next->end - next->begin : 0;
  FloatRows k;
  if (p.dtype == DType::kF32) {
    k = {static_cast<const float*>(span.k.data) + span.k.Offset(span.batch, span.row0 + kb.begin, u.kv_head),
         static_cast<size_t>(span.k.stride_l), false};
    if (next) PrefetchRows(PrefetchBlock{&span.k, next_row0, next_rows}, p.dtype, span.batch, u.kv_head);
  } else {
    k = LoadRows(span.k, p.dtype, span.batch, span.row0 + kb.begin, static_cast<int64_t>(cols), u.kv_head, w.ld,
                 w.kv.get(), next ? PrefetchBlock{&span.k, next_row0, next_rows} : PrefetchBlock{});
  }
  DotRows(rows, cols, dim, w.q.get(), dp, k.data, k.stride, k.padded, w.s.get(), kBlockK);
  for (size_t r = 0; r < rows; ++r) {
    const size_t hi = r / lq;  // head index within the unit
    const int64_t i = static_cast<int64_t>(r % lq);
    const int64_t h = u.head0 + static_cast<int64_t>(hi);
    const BandRule& rule = rules[hi];
    float* srow = w.s.get() + r * kBlockK;
    if (p.softcap > 0 || p.alibi_slopes) {
      const float slope = p.alibi_slopes ? p.alibi_slopes[h] : 0.0f;
      const int64_t rel0 = rule.Position(i) - kb.begin;
      for (size_t j = 0; j < cols; ++j) {
        float x = srow[j];
        if (p.softcap > 0) x = p.softcap * std::tanh(x / p.softcap);
        if (p.alibi_slopes) x -= slope * std::fabs(static_cast<float>(rel0 - static_cast<int64_t>(j)));
        srow[j] = x;
      }
    }
    if (!kb.full) {
      RowVisibility(rule, i, kb.begin, kb.end, w.visible.data());
      for (size_t j = 0; j < cols; ++j) {
        if (!w.visible[j]) srow[j] = neg_inf;
      }
    }
    // Online softmax along the row (see forward.cc for the -inf / NaN handling).
    float block_max = neg_inf;
    for (size_t j = 0; j < cols; ++j) block_max = std::max(block_max, srow[j]);
    const float m_new = std::max(w.m[r], block_max);
    const float m_use = m_new == neg_inf ? 0.0f : m_new;
    const float alpha = std::exp(w.m[r] - m_use);
    auto sum = hn::Zero(d);
    const auto vm = hn::Set(d, m_use);
    size_t j = 0;
    for (; j + L <= cols; j += L) {
      const auto e = ExpNonPositive(d, hn::Sub(hn::LoadU(d, srow + j), vm));
      hn::StoreU(e, d, srow + j);
      sum = hn::Add(sum, e);
    }
    float total = hn::GetLane(hn::SumOfLanes(d, sum));
    for (; j < cols; ++j) {
      srow[j] = std::exp(srow[j] - m_use);
      total += srow[j];
    }
    w.l[r] = w.l[r] * alpha + total;
    w.m[r] = m_new;
    if (alpha != 1.0f) {
      float* orow = w.o.get() + r * dp;
      const auto va = hn::Set(d, alpha);
      for (size_t e = 0; e < dp; e += L) hn::Store(hn::Mul(hn::Load(d, orow + e), va), d, orow + e);
    }
  }
  // O += P . V; a partial block whose V is not finite skips its masked keys (0 * NaN).
  const FloatRows v =
      LoadRows(span.v, p.dtype, span.batch, span.row0 + kb.begin, static_cast<int64_t>(cols), u.kv_head, w.ld,
               w.kv.get() + kBlockK * w.ld, next ? PrefetchBlock{&span.v, next_row0, next_rows} : PrefetchBlock{});
  if (kb.full || AllFinite(v, cols, dim)) {
    Gemm(rows, dim, cols, w.s.get(), kBlockK, 1, v.data, v.stride, w.o.get(), dp, true, true);
  } else {
    AccumulateRows(rows, cols, dim, w.s.get(), kBlockK, v, w.o.get(), dp);
  }
}

// Runs piece `piece` of unit u. Writes the rows' final outputs when the unit has one
// piece, else its partial state.
void RunPiece(const Problem& p, const Unit& u, int64_t piece, int64_t pieces, const Partial* partial,
              Scratch& w) {
  const Sequence seq = p.Seq(u.seq);
  const size_t dim = static_cast<size_t>(p.dim), dp = w.dim_padded;
  const size_t rows = static_cast<size_t>(u.rows), lq = static_cast<size_t>(seq.lq);
  const size_t esize = DTypeSize(p.dtype);
  decode::UnitBlocks(p, u, &w.spans, &w.blocks, &w.schedule);
  int64_t first_query = 0;
  p.SpansOf(u.seq, seq, &w.spans, &first_query);

  for (size_t r = 0; r < rows; ++r) {
    const int64_t h = u.head0 + static_cast<int64_t>(r / lq), i = static_cast<int64_t>(r % lq);
    const void* src = static_cast<const char*>(p.q.data) + p.q.Offset(seq.batch, seq.q_begin + i, h) * esize;
    float* qrow = w.q.get() + r * dp;
    RowToFloat(src, p.dtype, dim, dp, qrow);
    for (size_t e = 0; e < dim; ++e) qrow[e] *= p.scale;
    // The learned sink joins the softmax once: in the first piece.
    const bool sink = p.sink_logits != nullptr && piece == 0;
    w.m[r] = sink ? p.sink_logits[h] : -std::numeric_limits<float>::infinity();
    w.l[r] = sink ? 1.0f : 0.0f;
  }
  // DotRows works on groups of four rows: the padding rows are zero.
  std::fill(w.q.get() + rows * dp, w.q.get() + (rows + 3) / 4 * 4 * dp, 0.0f);
  std::fill_n(w.o.get(), rows * dp, 0.0f);

  const size_t begin = static_cast<size_t>(piece * decode::kSplitBlocks);
  const size_t end = std::min(w.blocks.size(), begin + static_cast<size_t>(decode::kSplitBlocks));
  std::vector<BandRule> rules;
  int32_t rules_span = -1;
  for (size_t b = begin; b < end; ++b) {
    const WorkBlock& wb = w.blocks[b];
    const KeySpan& span = w.spans[wb.span];
    if (wb.span != rules_span) {
      rules.clear();
      for (int64_t h = u.head0; h < u.head0 + u.heads; ++h) {
        rules.emplace_back(p.mask, p.windows[h], seq.lq, span.length, first_query, span.first_position);
      }
      rules_span = wb.span;
    }
    const KeyBlock* next = b + 1 < end && w.blocks[b + 1].span == wb.span ? &w.blocks[b + 1].kb : nullptr;
    ProcessBlock(p, u, seq, span, rules, wb.kb, next, w);
  }

  if (pieces > 1) {
    std::copy_n(w.m, rows, partial->m);
    std::copy_n(w.l, rows, partial->l);
    std::copy_n(w.o.get(), rows * dp, partial->o);
    return;
  }
  for (size_t r = 0; r < rows; ++r) {
    const int64_t h = u.head0 + static_cast<int64_t>(r / lq), i = static_cast<int64_t>(r % lq);
    const float l = w.l[r];
    void* dst = static_cast<char*>(p.out.data) + p.out.Offset(seq.batch, seq.q_begin + i, h) * esize;
    RowFromFloat(w.o.get() + r * dp, l != 0 ? 1.0f / l : 0.0f, dim, p.dtype, dst);
    if (p.lse) p.lse[p.LseIndex(seq, h, i)] = l != 0 ? w.m[r] + std::log(l) : std::numeric_limits<float>::infinity();
  }
}

// Merges a unit's pieces in order: O = sum_s exp(m_s - m) O_s / sum_s exp(m_s - m) l_s.
void MergePieces(const Problem& p, const Unit& u, const Partial* parts, int64_t pieces, size_t dp, Scratch& w) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const Sequence seq = p.Seq(u.seq);
  const size_t dim = static_cast<size_t>(p.dim), rows = static_cast<size_t>(u.rows);
  const size_t lq = static_cast<size_t>(seq.lq), esize = DTypeSize(p.dtype);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (size_t r = 0; r < rows; ++r) {
    float m = neg_inf;
    for (int64_t s = 0; s < pieces; ++s) m = std::max(m, parts[s].m[r]);
    const float m_use = m == neg_inf ? 0.0f : m;
    float l = 0.0f;
    float* orow = w.o.get();
    std::fill_n(orow, dp, 0.0f);
    for (int64_t s = 0; s < pieces; ++s) {
      const float scale = std::exp(parts[s].m[r] - m_use);
      l += scale * parts[s].l[r];
      const auto vs = hn::Set(d, scale);
      const float* src = parts[s].o + r * dp;
      for (size_t e = 0; e < dp; e += L) {
        hn::Store(hn::MulAdd(vs, hn::LoadU(d, src + e), hn::Load(d, orow + e)), d, orow + e);
      }
    }
    const int64_t h = u.head0 + static_cast<int64_t>(r / lq), i = static_cast<int64_t>(r % lq);
    void* dst = static_cast<char*>(p.out.data) + p.out.Offset(seq.batch, seq.q_begin + i, h) * esize;
    RowFromFloat(orow, l != 0 ? 1.0f / l : 0.0f, dim, p.dtype, dst);
    if (p.lse) p.lse[p.LseIndex(seq, h, i)] = l != 0 ? m + std::log(l) : std::numeric_limits<float>::infinity();
  }
}

}  // namespace

void ForwardDecodeImpl(const Problem& p, ThreadPool& pool) {
  const std::vector<Unit> units = decode::MakeUnits(p);
  if (units.empty()) return;
  const int threads = ThreadPool::ResolveThreads(p.threads);
  std::vector<Scratch> scratch(threads);
  for (Scratch& s : scratch) s.Allocate(static_cast<size_t>(p.dim));
  // Pieces per unit, from the number of key blocks each unit visits. A handful of units
  // (one decode step of one stream) is counted inline: waking the pool costs more.
  std::vector<int64_t> pieces(units.size());
  auto count = [&](int64_t t, int worker) {
    Scratch& w = scratch[worker];
    decode::UnitBlocks(p, units[t], &w.spans, &w.blocks, &w.schedule);
    const int64_t n = static_cast<int64_t>(w.blocks.size());
    pieces[t] = std::max<int64_t>(1, (n + decode::kSplitBlocks - 1) / decode::kSplitBlocks);
  };
  pool.ParallelFor(static_cast<int64_t>(units.size()), units.size() <= 64 ? 1 : threads, count);
  // Tasks: (unit, piece). Partial states live in one buffer, for split units only.
  const size_t dp = scratch[0].dim_padded;
  std::vector<int64_t> task_begin(units.size() + 1, 0), state_begin(units.size() + 1, 0);
  for (size_t u = 0; u < units.size(); ++u) {
    task_begin[u + 1] = task_begin[u] + pieces[u];
    state_begin[u + 1] =
        state_begin[u] + (pieces[u] > 1 ? pieces[u] * units[u].rows * (static_cast<int64_t>(dp) + 2) : 0);
  }
  auto state = hwy::AllocateAligned<float>(static_cast<size_t>(std::max<int64_t>(1, state_begin.back())));
  auto part = [&](size_t u, int64_t s) {
    const int64_t rows = units[u].rows;
    float* base = state.get() + state_begin[u] + s * rows * (static_cast<int64_t>(dp) + 2);
    return Partial{base, base + rows, base + 2 * rows};
  };
  // The worker that finishes a unit's last piece merges its pieces (in piece order, so
  // the result does not depend on which worker that is).
  std::vector<std::atomic<int64_t>> remaining(units.size());
  for (size_t u = 0; u < units.size(); ++u) remaining[u].store(pieces[u], std::memory_order_relaxed);
  pool.ParallelFor(task_begin.back(), threads, [&](int64_t t, int worker) {
    const size_t u = std::upper_bound(task_begin.begin(), task_begin.end(), t) - task_begin.begin() - 1;
    const int64_t s = t - task_begin[u];
    const Partial pt = part(u, s);
    RunPiece(p, units[u], s, pieces[u], &pt, scratch[worker]);
    if (pieces[u] > 1 && remaining[u].fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::vector<Partial> parts;
      for (int64_t k = 0; k < pieces[u]; ++k) parts.push_back(part(u, k));
      MergePieces(p, units[u], parts.data(), pieces[u], dp, scratch[worker]);
    }
  });
}

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::attention::cpu {

HWY_EXPORT(ForwardDecodeImpl);

bool UseDecodePath(const Problem& p) {
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    if (p.Seq(s).lq > kDecodeMaxQueries) return false;
  }
  return true;
}

void ForwardDecode(const Problem& p, ThreadPool& pool) { HWY_DYNAMIC_DISPATCH(ForwardDecodeImpl)(p, pool); }

}  // namespace swa::attention::cpu
#endif
