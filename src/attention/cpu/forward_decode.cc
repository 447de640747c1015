// The decode path of the CPU forward (see forward_decode.h), compiled per Highway target.
//
// A unit is (sequence, kv head, a chunk of that kv head's query heads): its rows are
// (head, query) pairs that all read the same keys. Units of one sequence that visit the
// same key blocks (the union of their heads' schedules over all key spans) form a group,
// processed block by block across its kv heads so that K and V are read in address
// order. A group's blocks are cut into pieces; each piece is a task that leaves a
// partial softmax state (m, l, unnormalised O) per unit, and the last piece to finish
// merges them in order. The cut depends only on the problem, so results are identical
// for any thread count.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/forward_decode.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <new>
#include <vector>

#include "attention/cpu/decode_units.h"
#include "attention/cpu/forward_decode.h"
#include "attention/cpu/tile_bands.h"
#include "attention/cpu/tile_rows-inl.h"
#include "attention/rule.h"
#include "attention/schedule.h"
#include "hwy/aligned_allocator.h"
#include "ops/aligned.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {
namespace {

using decode::Group;
using decode::kBlockK;
using decode::kMaxRows;
using decode::Unit;
using decode::WorkBlock;

// The running softmax state of one unit's rows: scaled queries, m, l, unnormalised O.
struct UnitState {
  float* q;  // [kMaxRows][dim_padded]
  float* o;  // [kMaxRows][dim_padded]
  float* m;  // [kMaxRows]
  float* l;  // [kMaxRows]
};

// Rows of the score tile are kBlockK apart: whole vectors of a row stay inside it.
static_assert(kBlockK % HWY_LANES(float) == 0);

using ops::AllocateFloats;

struct Scratch {
  size_t dim_padded = 0;
  size_t ld = 0;  // row stride of the K/V tiles: one vector more, off powers of two
  hwy::AlignedFreeUniquePtr<float[]> q, o, ml;      // per unit: [kMaxRows][dp], [kMaxRows][dp], [2][kMaxRows]
  hwy::AlignedFreeUniquePtr<float[]> s, kv, merge;  // [kMaxRows][kBlockK], [2][kBlockK][ld], [dp]
  std::vector<KeySpan> spans;
  std::vector<uint8_t> visible;

  // Throws std::bad_alloc (the C API returns SWA_ERR_OUT_OF_MEMORY) if memory runs out.
  void Allocate(size_t dim, size_t max_units) {
    const size_t lanes = hn::Lanes(DF());
    dim_padded = (dim + lanes - 1) / lanes * lanes;
    ld = dim_padded + lanes;
    q = AllocateFloats(max_units * kMaxRows * dim_padded);
    o = AllocateFloats(max_units * kMaxRows * dim_padded);
    ml = AllocateFloats(max_units * 2 * kMaxRows);
    s = AllocateFloats(kMaxRows * kBlockK);
    kv = AllocateFloats(2 * kBlockK * ld);
    merge = AllocateFloats(dim_padded);
    visible.resize(kBlockK);
  }
  UnitState State(size_t g) {
    const size_t tile = kMaxRows * dim_padded;
    return {q.get() + g * tile, o.get() + g * tile, ml.get() + g * 2 * kMaxRows,
            ml.get() + g * 2 * kMaxRows + kMaxRows};
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

// The rows to bring into cache while a block is processed: the block processed next
// (the next unit's rows of this block, or the first unit's of the next block).
struct NextRows {
  const KeySpan* span = nullptr;  // null: none
  int64_t row0 = 0, rows = 0, kv_head = 0;
  PrefetchBlock Of(const TensorRef KeySpan::*tensor) const {
    return span ? PrefetchBlock{&(span->*tensor), row0, rows, kv_head} : PrefetchBlock{};
  }
};

void ProcessBlock(const Problem& p, const Unit& u, const Sequence& seq, const KeySpan& span,
                  const BandRule* rules, const KeyBlock& kb, const NextRows& next, UnitState st, Scratch& w) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const size_t dim = static_cast<size_t>(p.dim), dp = w.dim_padded;
  const size_t rows = static_cast<size_t>(u.rows), lq = static_cast<size_t>(seq.lq);
  const size_t cols = static_cast<size_t>(kb.end - kb.begin);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  // Decode streams K and V from memory once: the rows processed next are asked for
  // while this block's are read.
  FloatRows k;
  if (p.dtype == DType::kF32) {
    k = {static_cast<const float*>(span.k.data) + span.k.Offset(span.batch, span.row0 + kb.begin, u.kv_head),
         static_cast<size_t>(span.k.stride_l), false};
    PrefetchRows(next.Of(&KeySpan::k), p.dtype, span.batch, u.kv_head);
  } else {
    k = LoadRows(span.k, p.dtype, span.batch, span.row0 + kb.begin, static_cast<int64_t>(cols), u.kv_head,
                 w.ld, w.kv.get(), next.Of(&KeySpan::k));
  }
  DotRows(rows, cols, dim, st.q, dp, k.data, k.stride, k.padded, w.s.get(), kBlockK);
  for (size_t r = 0; r < rows; ++r) {
    const size_t hi = r / lq;  // head index within the unit
    const int64_t i = static_cast<int64_t>(r % lq);
    const int64_t h = u.head0 + static_cast<int64_t>(hi);
    const BandRule& rule = rules[hi];
    float* srow = w.s.get() + r * kBlockK;
    // Whole vectors of the row: rows are kBlockK apart, a multiple of the lanes, so the
    // last vector stays inside the row; lanes from cols on are masked off.
    if (p.softcap > 0 || p.alibi_slopes) {
      const auto cap = hn::Set(d, p.softcap), inv_cap = hn::Set(d, p.softcap > 0 ? 1.0f / p.softcap : 0.0f);
      const auto slope = hn::Set(d, p.alibi_slopes ? p.alibi_slopes[h] : 0.0f);
      // Distances are differences of positions, the same in any frame.
      const auto rel0 = hn::Set(d, static_cast<float>(rule.Position(i) - kb.begin));
      const auto iota = hn::Iota(d, 0.0f);
      for (size_t j = 0; j < cols; j += L) {
        auto x = hn::LoadU(d, srow + j);
        if (p.softcap > 0) x = Softcap(d, x, cap, inv_cap);
        if (p.alibi_slopes) {
          const auto dist = hn::Abs(hn::Sub(rel0, hn::Add(hn::Set(d, static_cast<float>(j)), iota)));
          x = hn::NegMulAdd(slope, dist, x);
        }
        hn::StoreU(x, d, srow + j);
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
    const float m_new = std::max(st.m[r], block_max);
    const float m_use = m_new == neg_inf ? 0.0f : m_new;
    const float alpha = hn::GetLane(ExpNonPositive(d, hn::Set(d, st.m[r] - m_use)));
    auto sum = hn::Zero(d);
    const auto vm = hn::Set(d, m_use);
    for (size_t j = 0; j < cols; j += L) {
      const auto in_row = hn::FirstN(d, cols - j);
      const auto e = hn::IfThenElseZero(in_row, ExpNonPositive(d, hn::Sub(hn::LoadU(d, srow + j), vm)));
      hn::StoreU(e, d, srow + j);
      sum = hn::Add(sum, e);
    }
    const float total = hn::GetLane(hn::SumOfLanes(d, sum));
    st.l[r] = st.l[r] * alpha + total;
    st.m[r] = m_new;
    if (alpha != 1.0f) {
      float* orow = st.o + r * dp;
      const auto va = hn::Set(d, alpha);
      for (size_t e = 0; e < dp; e += L) hn::Store(hn::Mul(hn::Load(d, orow + e), va), d, orow + e);
    }
  }
  // O += P . V; a partial block whose V is not finite skips its masked keys (0 * NaN).
  const FloatRows v = LoadRows(span.v, p.dtype, span.batch, span.row0 + kb.begin, static_cast<int64_t>(cols),
                               u.kv_head, w.ld, w.kv.get() + kBlockK * w.ld, next.Of(&KeySpan::v));
  if (kb.full || AllFinite(v, cols, dim)) {
    Gemm(rows, dim, cols, w.s.get(), kBlockK, 1, v.data, v.stride, st.o, dp, true, true);
  } else {
    AccumulateRows(rows, cols, dim, w.s.get(), kBlockK, v, st.o, dp);
  }
}

// Runs piece `piece` of group g over the group's blocks: block by block, each block for
// every unit of the group. Writes the rows' final outputs when the group has one piece,
// else each unit's partial state (`partial(u, piece)`).
template <class PartialOf>
void RunPiece(const Problem& p, const std::vector<Unit>& units, const Group& g,
              const std::vector<WorkBlock>& blocks, int64_t piece, const PartialOf& partial, Scratch& w) {
  const Sequence seq = p.Seq(units[g.unit_begin].seq);
  const size_t dim = static_cast<size_t>(p.dim), dp = w.dim_padded;
  const size_t lq = static_cast<size_t>(seq.lq);
  const size_t esize = DTypeSize(p.dtype);
  const size_t count = static_cast<size_t>(g.unit_end - g.unit_begin);
  int64_t first_query = 0;
  p.SpansOf(units[g.unit_begin].seq, seq, &w.spans, &first_query);

  for (size_t gu = 0; gu < count; ++gu) {
    const Unit& u = units[g.unit_begin + gu];
    const UnitState st = w.State(gu);
    const size_t rows = static_cast<size_t>(u.rows);
    for (size_t r = 0; r < rows; ++r) {
      const int64_t h = u.head0 + static_cast<int64_t>(r / lq), i = static_cast<int64_t>(r % lq);
      const void* src =
          static_cast<const char*>(p.q.data) + p.q.Offset(seq.batch, seq.q_begin + i, h) * esize;
      float* qrow = st.q + r * dp;
      RowToFloat(src, p.dtype, dim, dp, qrow);
      for (size_t e = 0; e < dim; ++e) qrow[e] *= p.scale;
      // The learned sink joins the softmax once: in the first piece.
      const bool sink = p.sink_logits != nullptr && piece == 0;
      st.m[r] = sink ? p.sink_logits[h] : -std::numeric_limits<float>::infinity();
      st.l[r] = sink ? 1.0f : 0.0f;
    }
    // DotRows works on groups of four rows: the padding rows are zero.
    std::fill(st.q + rows * dp, st.q + (rows + 3) / 4 * 4 * dp, 0.0f);
    std::fill_n(st.o, rows * dp, 0.0f);
  }

  const size_t begin = static_cast<size_t>(piece * g.blocks_per_piece);
  const size_t end = std::min(blocks.size(), begin + static_cast<size_t>(g.blocks_per_piece));
  std::vector<BandRule> rules;          // per unit, per head of the unit: the rules of span rules_span
  std::vector<size_t> rules_of(count);  // unit gu's first rule
  for (size_t gu = 1; gu < count; ++gu) rules_of[gu] = rules_of[gu - 1] + units[g.unit_begin + gu - 1].heads;
  int32_t rules_span = -1;
  for (size_t b = begin; b < end; ++b) {
    const WorkBlock& wb = blocks[b];
    const KeySpan& span = w.spans[wb.span];
    if (wb.span != rules_span) {
      rules.clear();
      for (size_t gu = 0; gu < count; ++gu) {
        const Unit& u = units[g.unit_begin + gu];
        for (int64_t h = u.head0; h < u.head0 + u.heads; ++h) {
          rules.emplace_back(p.mask, p.windows[h], seq.lq, span.length, first_query, span.first_position);
        }
      }
      rules_span = wb.span;
    }
    const bool next_block = b + 1 < end && blocks[b + 1].span == wb.span;
    for (size_t gu = 0; gu < count; ++gu) {
      const Unit& u = units[g.unit_begin + gu];
      NextRows next;
      if (gu + 1 < count) {
        next = {&span, span.row0 + wb.kb.begin, wb.kb.end - wb.kb.begin,
                units[g.unit_begin + gu + 1].kv_head};
      } else if (next_block) {
        const KeyBlock& nb = blocks[b + 1].kb;
        next = {&span, span.row0 + nb.begin, nb.end - nb.begin, units[g.unit_begin].kv_head};
      }
      ProcessBlock(p, u, seq, span, rules.data() + rules_of[gu], wb.kb, next, w.State(gu), w);
    }
  }

  for (size_t gu = 0; gu < count; ++gu) {
    const Unit& u = units[g.unit_begin + gu];
    const UnitState st = w.State(gu);
    const size_t rows = static_cast<size_t>(u.rows);
    if (g.pieces > 1) {
      const Partial out = partial(g.unit_begin + gu, piece);
      std::copy_n(st.m, rows, out.m);
      std::copy_n(st.l, rows, out.l);
      std::copy_n(st.o, rows * dp, out.o);
      continue;
    }
    for (size_t r = 0; r < rows; ++r) {
      FinishRow(p, seq, u.head0 + static_cast<int64_t>(r / lq), static_cast<int64_t>(r % lq), st.o + r * dp,
                st.m[r], st.l[r]);
    }
  }
}

// Merges a unit's pieces in order: O = sum_s exp(m_s - m) O_s / sum_s exp(m_s - m) l_s.
template <class PartialOf>
void MergePieces(const Problem& p, const Unit& u, int64_t unit, const PartialOf& partial, int64_t pieces,
                 Scratch& w) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const Sequence seq = p.Seq(u.seq);
  const size_t dp = w.dim_padded, rows = static_cast<size_t>(u.rows);
  const size_t lq = static_cast<size_t>(seq.lq);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (size_t r = 0; r < rows; ++r) {
    float m = neg_inf;
    for (int64_t s = 0; s < pieces; ++s) m = std::max(m, partial(unit, s).m[r]);
    const float m_use = m == neg_inf ? 0.0f : m;
    float l = 0.0f;
    float* orow = w.merge.get();
    std::fill_n(orow, dp, 0.0f);
    for (int64_t s = 0; s < pieces; ++s) {
      const Partial part = partial(unit, s);
      const float scale = hn::GetLane(ExpNonPositive(d, hn::Set(d, part.m[r] - m_use)));
      l += scale * part.l[r];
      const auto vs = hn::Set(d, scale);
      const float* src = part.o + r * dp;
      for (size_t e = 0; e < dp; e += L) {
        hn::Store(hn::MulAdd(vs, hn::LoadU(d, src + e), hn::Load(d, orow + e)), d, orow + e);
      }
    }
    FinishRow(p, seq, u.head0 + static_cast<int64_t>(r / lq), static_cast<int64_t>(r % lq), orow, m, l);
  }
}

}  // namespace

void ForwardDecodeImpl(const Problem& p, ThreadPool& pool) {
  const std::vector<Unit> units = decode::MakeUnits(p);
  if (units.empty()) return;
  const int threads = ThreadPool::ResolveThreads(p.threads);
  // Each unit's key blocks. A handful of units (one decode step of one stream) is
  // scheduled inline: waking the pool costs more.
  std::vector<std::vector<WorkBlock>> blocks(units.size());
  std::vector<std::vector<KeySpan>> spans(threads);
  std::vector<std::vector<KeyBlock>> schedule(threads);
  pool.ParallelFor(static_cast<int64_t>(units.size()), units.size() <= 64 ? 1 : threads,
                   [&](int64_t u, int worker) {
                     decode::UnitBlocks(p, units[u], &spans[worker], &blocks[u], &schedule[worker]);
                   });
  const std::vector<Group> groups = decode::MakeGroups(units, blocks);
  size_t max_units = 1;
  for (const Group& g : groups)
    max_units = std::max(max_units, static_cast<size_t>(g.unit_end - g.unit_begin));
  std::vector<Scratch> scratch(threads);
  for (Scratch& s : scratch) s.Allocate(static_cast<size_t>(p.dim), max_units);
  const int64_t dp = static_cast<int64_t>(scratch[0].dim_padded);

  // Tasks: (group, piece). Partial states live in one buffer, for units of split groups.
  std::vector<int64_t> task_begin(groups.size() + 1, 0), state_begin(units.size() + 1, 0),
      unit_pieces(units.size(), 1);
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    task_begin[gi + 1] = task_begin[gi] + groups[gi].pieces;
    for (int64_t u = groups[gi].unit_begin; u < groups[gi].unit_end; ++u) unit_pieces[u] = groups[gi].pieces;
  }
  for (size_t u = 0; u < units.size(); ++u) {
    state_begin[u + 1] =
        state_begin[u] + (unit_pieces[u] > 1 ? unit_pieces[u] * units[u].rows * (dp + 2) : 0);
  }
  auto state = AllocateFloats(static_cast<size_t>(state_begin.back()));
  auto partial = [&](int64_t u, int64_t s) {
    const int64_t rows = units[u].rows;
    float* base = state.get() + state_begin[u] + s * rows * (dp + 2);
    return Partial{base, base + rows, base + 2 * rows};
  };
  // The worker that finishes a group's last piece merges its units' pieces (in piece
  // order, so the result does not depend on which worker that is).
  std::vector<std::atomic<int64_t>> remaining(groups.size());
  for (size_t gi = 0; gi < groups.size(); ++gi)
    remaining[gi].store(groups[gi].pieces, std::memory_order_relaxed);
  pool.ParallelFor(task_begin.back(), threads, [&](int64_t t, int worker) {
    const size_t gi = std::upper_bound(task_begin.begin(), task_begin.end(), t) - task_begin.begin() - 1;
    const Group& g = groups[gi];
    const int64_t piece = t - task_begin[gi];
    RunPiece(p, units, g, blocks[g.unit_begin], piece, partial, scratch[worker]);
    if (g.pieces > 1 && remaining[gi].fetch_sub(1, std::memory_order_acq_rel) == 1) {
      for (int64_t u = g.unit_begin; u < g.unit_end; ++u) {
        MergePieces(p, units[u], u, partial, g.pieces, scratch[worker]);
      }
    }
  });
}

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::attention::cpu {

HWY_EXPORT(ForwardDecodeImpl);

void ForwardDecode(const Problem& p, ThreadPool& pool) { HWY_DYNAMIC_DISPATCH(ForwardDecodeImpl)(p, pool); }

}  // namespace swa::attention::cpu
#endif
