// The CPU backward (docs/ATTENTION.md, "The backward") in the FlashAttention-2 manner,
// compiled for every Highway target and dispatched at run time.
//
// Per visible pair (i, j) of query head h, with x = scale q_i.k_j and s the final score
// (after softcap and ALiBi):
//   P_ij  = exp(s_ij - lse_i)         recomputed from the forward's lse (+inf gives 0)
//   D_i   = dO_i . O_i                (= sum_j P_ij dP_ij), from the forward's out
//   dP_ij = dO_i . v_j
//   dX_ij = P_ij (dP_ij - D_i) (1 - tanh^2(x_ij / softcap) with a softcap)
//   dV_j += P_ij dO_i,   dK_j += scale dX_ij q_i,   dQ_i += scale dX_ij k_j
//   dsink_h = -sum_i exp(sink_h - lse_i) D_i
// dX uses D_i from the stored out, as FlashAttention does. dsink instead sums
// sum_j P_ij dP_ij over the tiles (the same D_i in exact arithmetic): a 16-bit out is
// rounded by up to 2^-9 relative, and dsink, a sum over rows of terms of both signs,
// would carry that rounding, magnified by the cancellation, into its result.
//
// Work: a task is a segment of kSegment keys of one kv head of one sequence. It
// prepares the segment's key blocks, then, for each query head of the group, walks the
// query blocks that the schedule says see them, each against the key blocks it sees; dK
// and dV of the segment are complete inside the task, so they need no atomics. Tiles are [query][key], keys
// in the vector lanes: S = Q (scale K)^T and dP = dO V^T broadcast Q and dO from their (packed) rows against
// K^T and V^T, which are transposed once per key block; dV, dK and dQ then broadcast P and dS. No transpose
// of Q or dO is needed per tile.
//
// dQ contributions of different tasks overlap. Each task sums its own into a private
// buffer covering only the query blocks its keys reach, and the buffers are added into
// dq strictly in task order (ordered_commits.h): every dq element is summed in an order
// fixed by the problem, so the bits do not depend on the thread count. Memory: D_i
// (Lq floats per head), an f32 dq for 16-bit dtypes, and per thread its tiles plus two
// such buffers, each (kSegment + window) rows of the group's heads (all rows of the
// sequence for a segment holding sink or global keys).
// clang-format off: foreach_target.h must come first, right after HWY_TARGET_INCLUDE.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/backward.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// clang-format on

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <vector>

#include "attention/cpu/backward.h"
#include "attention/cpu/ordered_commits.h"
#include "attention/cpu/tile_bands.h"
#include "attention/cpu/tile_rows-inl.h"
#include "attention/grid.h"
#include "attention/rule.h"
#include "attention/schedule.h"
#include "common/error.h"
#include "hwy/aligned_allocator.h"
#include "ops/aligned.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {
namespace {

constexpr size_t kBlock = 64;         // query rows and keys of one tile
constexpr size_t kSegmentBlocks = 4;  // key blocks per task: fewer, larger dq commits
constexpr int64_t kSegment = kSegmentBlocks * kBlock;
constexpr int64_t kRowsPerPrepTask = 256;  // rows per task of the D_i and final passes

using Floats = ops::AlignedFloats;
using ops::AllocateFloats;

// A reusable aligned buffer that grows on demand.
struct GrowableFloats {
  Floats data;
  size_t capacity = 0;
  float* Reserve(size_t n) {
    if (n > capacity) {
      data = AllocateFloats(n);
      capacity = n;
    }
    return data.get();
  }
};

// The call's inputs and the state shared by all tasks.
struct Context {
  const Problem& p;
  const BackwardTensors& g;
  size_t dim = 0, dp = 0;   // head_dim, and padded to whole vectors
  float* delta = nullptr;   // [batch, hq, q.seqlen]: D_i, indexed like lse
  float* dq_acc = nullptr;  // [batch, q.seqlen, hq, dim]: f32 sums for a 16-bit dq
  float scale = 1.0f;

  // Where row (b, l) of head h of dq is summed: dq itself for f32, else dq_acc.
  float* DqRow(int64_t b, int64_t l, int64_t h) const {
    if (dq_acc == nullptr) return static_cast<float*>(g.dq.data) + g.dq.Offset(b, l, h);
    return dq_acc + ((b * p.q.seqlen + l) * p.hq + h) * static_cast<int64_t>(dim);
  }
};

// dst[0..n) += src[0..n); never touches dst past n.
void AddRow(const float* HWY_RESTRICT src, size_t n, float* HWY_RESTRICT dst) {
  const DF d;
  const size_t L = hn::Lanes(d);
  size_t e = 0;
  for (; e + L <= n; e += L) hn::StoreU(hn::Add(hn::LoadU(d, dst + e), hn::LoadU(d, src + e)), d, dst + e);
  for (; e < n; ++e) dst[e] += src[e];
}

// Pass 1, rows [begin, end) of one head: D_i = dO_i . O_i, and zeroes the rows of an
// f32 dq (summed in place).
void PrepareRows(const Context& c, const BlockTask& task, float* out_row, float* dout_row) {
  const Problem& p = c.p;
  const DF d;
  const size_t L = hn::Lanes(d);
  const Sequence seq = p.Seq(task.seq);
  const int64_t h = task.head;
  const size_t esize = static_cast<size_t>(DTypeSize(p.dtype));
  for (int64_t i = task.begin; i < task.end; ++i) {
    const int64_t l = seq.q_begin + i;
    RowToFloat(static_cast<const char*>(p.out.data) + p.out.Offset(seq.batch, l, h) * esize, p.dtype, c.dim,
               c.dp, out_row);
    RowToFloat(static_cast<const char*>(c.g.dout.data) + c.g.dout.Offset(seq.batch, l, h) * esize, p.dtype,
               c.dim, c.dp, dout_row);
    auto acc = hn::Zero(d);
    for (size_t e = 0; e < c.dp; e += L)
      acc = hn::MulAdd(hn::Load(d, out_row + e), hn::Load(d, dout_row + e), acc);
    const float delta = hn::GetLane(hn::SumOfLanes(d, acc));
    c.delta[p.LseIndex(seq, h, i)] = delta;
    if (c.dq_acc == nullptr) std::fill_n(c.DqRow(seq.batch, l, h), c.dim, 0.0f);
  }
}

// One dQ buffer of OrderedCommits: the task's contributions to the query blocks its
// keys reach, one [kBlock][dp] tile per (query head, query block).
struct Slot {
  GrowableFloats tiles;
  int64_t seq = 0;
  std::vector<std::pair<int64_t, QueryBlock>> entries;  // (query head, rows) of each tile
};

// Per-worker tiles, allocated once per call.
struct Scratch {
  // Per key block b of the task's segment:
  Floats kt, vt;  // [kSegmentBlocks][dim][kBlock]  (scale K)^T and V^T
  Floats k;       // [kSegmentBlocks][kBlock][dp]  K rows, packed f32
  Floats dk, dv;  // [kSegmentBlocks][kBlock][dp]  sums
  std::vector<QueryBlock> key_block_rows[kSegmentBlocks];  // the query blocks that see block b
  // Per query block:
  Floats qo;          // [2][kBlock][dp]  Q and dO rows, packed f32 (V rows while packing keys)
  Floats s, ds;       // [kBlock][kBlock]  S, then P; dP, then scale * dX
  Floats lse, delta;  // [kBlock]
  std::vector<uint8_t> visible;
  Floats key_mask;  // [kBlock] 1 where a row sees the key (partial tiles)
  // A partial tile of a plain band: the rows that see each key, the tile's visible
  // intervals by groups of keys and of rows, and the GEMM bands made of them.
  static constexpr size_t kGroups = RowGroups(kBlock);
  int64_t key_first[kBlock], key_last[kBlock];
  TileInterval key_groups[kGroups], row_groups[kGroups];
  RowGroupBand score_bands[kGroups];                 // S, dP: the key vectors each row group needs
  RowGroupBand key_bands[kGroups];                   // dV, dK: the rows each key group is seen by
  RowGroupBand row_bands[kGroups];                   // dQ: the keys each row group sees
  std::vector<BandRule> rules;                       // [group]
  std::vector<std::vector<QueryBlock>> head_blocks;  // [group] the segment's schedule
  std::vector<size_t> head_entry;                    // [group] first tile of the head

  void Allocate(size_t dim, size_t dp, int64_t group) {
    kt = AllocateFloats(kSegmentBlocks * dim * kBlock);
    vt = AllocateFloats(kSegmentBlocks * dim * kBlock);
    k = AllocateFloats(kSegmentBlocks * kBlock * dp);
    dk = AllocateFloats(kSegmentBlocks * kBlock * dp);
    dv = AllocateFloats(kSegmentBlocks * kBlock * dp);
    qo = AllocateFloats(2 * kBlock * dp);
    s = AllocateFloats(kBlock * kBlock);
    ds = AllocateFloats(kBlock * kBlock);
    lse = AllocateFloats(kBlock);
    delta = AllocateFloats(kBlock);
    visible.resize(kBlock);
    key_mask = AllocateFloats(kBlock);
    head_blocks.resize(static_cast<size_t>(group));
    head_entry.resize(static_cast<size_t>(group));
  }
};

// Turns the S and dP tiles of rows x cols into P and scale * dX (see the top), in place.
// Hidden entries (and those a banded tile did not compute) become 0. With sink logits,
// adds sum_i exp(sink - lse_i) sum_j P_ij dP_ij over the tile's rows to *sink_sum.
void ScoresToGradients(const Context& c, const BandRule& rule, int64_t h, const QueryBlock& qb, int64_t kb0,
                       size_t cols, Scratch& w, double* sink_sum) {
  const Problem& p = c.p;
  const DF d;
  const size_t L = hn::Lanes(d);
  const size_t rows = static_cast<size_t>(qb.end - qb.begin);
  const size_t col_vectors = (cols + L - 1) / L;
  const bool softcap = p.softcap > 0, alibi = p.alibi_slopes != nullptr;
  const auto cap = hn::Set(d, p.softcap), inv_cap = hn::Set(d, softcap ? 1.0f / p.softcap : 0.0f);
  const auto slope = hn::Set(d, alibi ? p.alibi_slopes[h] : 0.0f);
  const auto scale = hn::Set(d, c.scale), one = hn::Set(d, 1.0f), iota = hn::Iota(d, 0.0f);
  const auto zero = hn::Zero(d);
  for (size_t r = 0; r < rows; ++r) {
    float* srow = w.s.get() + r * kBlock;
    float* dsrow = w.ds.get() + r * kBlock;
    const float lse = w.lse[r];
    if (lse == std::numeric_limits<float>::infinity()) {  // the row sees no key: P = 0
      std::fill_n(srow, col_vectors * L, 0.0f);
      std::fill_n(dsrow, col_vectors * L, 0.0f);
      continue;
    }
    if (!qb.full) {  // 1 where the row sees the key, else 0, over whole vectors
      RowVisibility(rule, qb.begin + static_cast<int64_t>(r), kb0, kb0 + static_cast<int64_t>(cols),
                    w.visible.data());
      for (size_t j = 0; j < col_vectors * L; ++j) w.key_mask[j] = j < cols && w.visible[j] ? 1.0f : 0.0f;
    }
    const auto vlse = hn::Set(d, lse), vdelta = hn::Set(d, w.delta[r]);
    // Distance p - j of the row's position to the block's first key.
    const float rel = static_cast<float>(rule.Position(qb.begin + static_cast<int64_t>(r)) - kb0);
    auto pdp = hn::Zero(d);  // sum_j P_ij dP_ij
    for (size_t v = 0; v < col_vectors; ++v) {
      auto x = hn::Load(d, srow + v * L);
      auto dprob = hn::Load(d, dsrow + v * L);
      hn::Mask<DF> seen = hn::Eq(zero, zero);
      if (!qb.full) {
        seen = hn::Ne(hn::Load(d, w.key_mask.get() + v * L), zero);
        x = hn::IfThenElseZero(seen, x);
        dprob = hn::IfThenElseZero(seen, dprob);
      }
      auto s = x, dx_ds = one;
      if (softcap) {
        const auto t = TanhApprox(d, hn::Mul(x, inv_cap));
        s = hn::Mul(cap, t);
        dx_ds = hn::NegMulAdd(t, t, one);  // d(c tanh(x / c)) / dx = 1 - tanh^2
      }
      if (alibi) {
        const auto dist = hn::Abs(hn::Sub(hn::Set(d, rel - static_cast<float>(v * L)), iota));
        s = hn::NegMulAdd(slope, dist, s);
      }
      const auto prob = hn::IfThenElseZero(seen, ExpNonPositive(d, hn::Sub(s, vlse)));
      const auto dx = hn::Mul(hn::Mul(prob, hn::Sub(dprob, vdelta)), hn::Mul(dx_ds, scale));
      pdp = hn::MulAdd(prob, dprob, pdp);
      hn::Store(prob, d, srow + v * L);
      hn::Store(dx, d, dsrow + v * L);
    }
    if (sink_sum != nullptr) {
      *sink_sum += std::exp(static_cast<double>(p.sink_logits[h]) - lse) *
                   static_cast<double>(hn::GetLane(hn::SumOfLanes(d, pdp)));
    }
  }
}

// One tile: query block qb of head h (Q, dO, lse and D_i already in w) against key
// block b of the segment, whose first key is kb0. Adds into the key block's dK and dV
// sums and into dq_tile.
void RunTile(const Context& c, int64_t h, const BandRule& rule, const QueryBlock& qb, size_t b, int64_t kb0,
             size_t cols, float* dq_tile, Scratch& w, double* sink_sum) {
  const size_t dim = c.dim, dp = c.dp;
  const size_t rows = static_cast<size_t>(qb.end - qb.begin);
  const float* q = w.qo.get();
  const float* dout = w.qo.get() + kBlock * dp;
  const float* kt = w.kt.get() + b * dim * kBlock;
  const float* vt = w.vt.get() + b * dim * kBlock;
  const float* k = w.k.get() + b * kBlock * dp;
  // A partial tile of a plain band computes only its visible parts (ScoresToGradients
  // zeroes every hidden entry of P and dX, computed or not).
  const bool banded = !qb.full && !rule.has_extras();
  if (banded) {
    const size_t key_groups = RowGroups(cols), row_groups = RowGroups(rows);
    KeyRowRanges(rule, qb.begin, qb.end, kb0, kb0 + static_cast<int64_t>(cols), w.key_first, w.key_last);
    TileIntervals(w.key_first, w.key_last, cols, rows, qb.begin, w.key_groups, w.row_groups);
    BandsAsVectors(w.row_groups, row_groups, hn::Lanes(DF()), w.score_bands);
    BandsAsTerms(w.key_groups, key_groups, w.key_bands);
    BandsAsTerms(w.row_groups, row_groups, w.row_bands);
  }
  // S = Q (scale K)^T and dP = dO V^T, [rows][cols].
  Gemm(rows, cols, dim, q, dp, 1, kt, kBlock, w.s.get(), kBlock, false, true,
       banded ? w.score_bands : nullptr);
  Gemm(rows, cols, dim, dout, dp, 1, vt, kBlock, w.ds.get(), kBlock, false, true,
       banded ? w.score_bands : nullptr);
  ScoresToGradients(c, rule, h, qb, kb0, cols, w, sink_sum);
  // dV += P^T dO and dK += (scale dX)^T Q: A is read transposed (a_rs = 1).
  Gemm(cols, dim, rows, w.s.get(), 1, kBlock, dout, dp, w.dv.get() + b * kBlock * dp, dp, true, true,
       banded ? w.key_bands : nullptr);
  Gemm(cols, dim, rows, w.ds.get(), 1, kBlock, q, dp, w.dk.get() + b * kBlock * dp, dp, true, true,
       banded ? w.key_bands : nullptr);
  // dQ += (scale dX) K.
  Gemm(rows, dim, cols, w.ds.get(), kBlock, 1, k, dp, dq_tile, dp, true, true,
       banded ? w.row_bands : nullptr);
}

// Transposes rows x dim of `src` into dst[dim][kBlock] times `mul`; zero columns pad
// the block so that whole-vector reads of dst stay finite.
void TransposeBlock(const FloatRows& src, size_t rows, size_t dim, float mul, float* dst) {
  for (size_t e = 0; e < dim; ++e) {
    float* out = dst + e * kBlock;
    for (size_t j = 0; j < rows; ++j) out[j] = src.data[j * src.stride + e] * mul;
    std::fill(out + rows, out + kBlock, 0.0f);
  }
}

// Pass 2: one task, keys [task.begin, task.end) of kv head task.head. The key blocks'
// K^T, V^T and dK, dV sums stay in the worker's tiles while the query blocks go by, so
// that Q and dO rows (strided in memory) are packed once per query block, with the next
// block's rows prefetched meanwhile.
// sink_sums (null without sink logits or dsink): the task's dsink terms per query head
// of the group.
void RunSegment(const Context& c, const BlockTask& task, Scratch& w, Slot& slot, double* sink_sums) {
  const Problem& p = c.p;
  const size_t dim = c.dim, dp = c.dp, tile = kBlock * dp;
  const Sequence seq = p.Seq(task.seq);
  const int64_t kvh = task.head, group = p.group();
  const size_t key_blocks = static_cast<size_t>(task.end - task.begin + kBlock - 1) / kBlock;
  auto block_begin = [&](size_t b) { return task.begin + static_cast<int64_t>(b * kBlock); };
  auto block_cols = [&](size_t b) {
    return static_cast<size_t>(std::min<int64_t>(kBlock, task.end - block_begin(b)));
  };

  slot.seq = task.seq;
  slot.entries.clear();
  w.rules.clear();
  for (int64_t gi = 0; gi < group; ++gi) {
    const int64_t h = kvh * group + gi;
    w.rules.emplace_back(p.mask, p.windows[h], seq.lq, seq.lk);
    ScheduleKeyBlock(w.rules.back(), task.begin, task.end, kBlock, &w.head_blocks[gi]);
    w.head_entry[gi] = slot.entries.size();
    for (const QueryBlock& qb : w.head_blocks[gi]) slot.entries.push_back({h, qb});
  }
  float* tiles = slot.tiles.Reserve(slot.entries.size() * tile);
  std::fill_n(tiles, slot.entries.size() * tile, 0.0f);

  for (size_t b = 0; b < key_blocks; ++b) {
    const size_t cols = block_cols(b);
    const int64_t key0 = seq.k_begin + block_begin(b);
    const FloatRows k = LoadRows(p.k, p.dtype, seq.batch, key0, static_cast<int64_t>(cols), kvh, dp,
                                 w.k.get() + b * kBlock * dp);
    const FloatRows v =
        LoadRows(p.v, p.dtype, seq.batch, key0, static_cast<int64_t>(cols), kvh, dp, w.qo.get());
    TransposeBlock(k, cols, dim, c.scale, w.kt.get() + b * dim * kBlock);
    TransposeBlock(v, cols, dim, 1.0f, w.vt.get() + b * dim * kBlock);
    std::fill_n(w.dk.get() + b * kBlock * dp, cols * dp, 0.0f);
    std::fill_n(w.dv.get() + b * kBlock * dp, cols * dp, 0.0f);
  }

  for (int64_t gi = 0; gi < group; ++gi) {
    const int64_t h = kvh * group + gi;
    const BandRule& rule = w.rules[gi];
    for (size_t b = 0; b < key_blocks; ++b) {
      ScheduleKeyBlock(rule, block_begin(b), block_begin(b) + static_cast<int64_t>(block_cols(b)), kBlock,
                       &w.key_block_rows[b]);
    }
    size_t cursor[kSegmentBlocks] = {};
    const std::vector<QueryBlock>& seg = w.head_blocks[gi];
    for (size_t e = 0; e < seg.size(); ++e) {
      const QueryBlock& qb = seg[e];
      const size_t rows = static_cast<size_t>(qb.end - qb.begin);
      const int64_t row0 = seq.q_begin + qb.begin;
      LoadRows(p.q, p.dtype, seq.batch, row0, static_cast<int64_t>(rows), h, dp, w.qo.get());
      LoadRows(c.g.dout, p.dtype, seq.batch, row0, static_cast<int64_t>(rows), h, dp,
               w.qo.get() + kBlock * dp);
      if (e + 1 < seg.size()) {
        const QueryBlock& next = seg[e + 1];
        const size_t next_rows = static_cast<size_t>(next.end - next.begin);
        PrefetchRows({&p.q, seq.q_begin + next.begin, static_cast<int64_t>(next_rows)}, p.dtype, seq.batch,
                     h);
        PrefetchRows({&c.g.dout, seq.q_begin + next.begin, static_cast<int64_t>(next_rows)}, p.dtype,
                     seq.batch, h);
      }
      for (size_t r = 0; r < rows; ++r) {
        const int64_t index = p.LseIndex(seq, h, qb.begin + static_cast<int64_t>(r));
        w.lse[r] = c.g.lse[index];
        w.delta[r] = c.delta[index];
      }
      float* dq_tile = tiles + (w.head_entry[gi] + e) * tile;
      for (size_t b = 0; b < key_blocks; ++b) {
        // Both lists ascend, and the segment's holds every block that a key block's does.
        const std::vector<QueryBlock>& sees = w.key_block_rows[b];
        while (cursor[b] < sees.size() && sees[cursor[b]].begin < qb.begin) ++cursor[b];
        if (cursor[b] == sees.size() || sees[cursor[b]].begin != qb.begin) continue;
        RunTile(c, h, rule, sees[cursor[b]], b, block_begin(b), block_cols(b), dq_tile, w,
                sink_sums != nullptr ? &sink_sums[gi] : nullptr);
      }
    }
  }

  const size_t esize = static_cast<size_t>(DTypeSize(p.dtype));
  for (size_t b = 0; b < key_blocks; ++b) {
    for (size_t j = 0; j < block_cols(b); ++j) {
      const int64_t key = seq.k_begin + block_begin(b) + static_cast<int64_t>(j);
      RowFromFloat(w.dk.get() + (b * kBlock + j) * dp, 1.0f, dim, p.dtype,
                   static_cast<char*>(c.g.dk.data) + c.g.dk.Offset(seq.batch, key, kvh) * esize);
      RowFromFloat(w.dv.get() + (b * kBlock + j) * dp, 1.0f, dim, p.dtype,
                   static_cast<char*>(c.g.dv.data) + c.g.dv.Offset(seq.batch, key, kvh) * esize);
    }
  }
}

// Adds a finished task's dQ tiles into the dq sums.
void CommitSlot(const Context& c, const Slot& slot) {
  const Sequence seq = c.p.Seq(slot.seq);
  const size_t tile = kBlock * c.dp;
  for (size_t e = 0; e < slot.entries.size(); ++e) {
    const auto& [h, qb] = slot.entries[e];
    const float* src = slot.tiles.data.get() + e * tile;
    for (int64_t i = qb.begin; i < qb.end; ++i) {
      AddRow(src + static_cast<size_t>(i - qb.begin) * c.dp, c.dim, c.DqRow(seq.batch, seq.q_begin + i, h));
    }
  }
}

}  // namespace

void BackwardImpl(const Problem& p, const BackwardTensors& g, ThreadPool& pool) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const size_t dim = static_cast<size_t>(p.dim);
  Context c{p, g};
  c.dim = dim;
  c.dp = (dim + L - 1) / L * L;
  c.scale = p.scale;
  const int max_threads = ThreadPool::ResolveThreads(p.threads);

  std::vector<float> delta(static_cast<size_t>(p.batch * p.hq * p.q.seqlen));
  c.delta = delta.data();
  std::vector<float> dq_acc;
  if (p.dtype != DType::kF32) {
    dq_acc.assign(static_cast<size_t>(p.batch * p.q.seqlen * p.hq) * dim, 0.0f);
    c.dq_acc = dq_acc.data();
  }

  // Pass 1: D_i per row, a zeroed f32 dq.
  const BlockGrid row_grid(p, p.hq, kRowsPerPrepTask, /*over_keys=*/false);
  {
    const int threads =
        static_cast<int>(std::min<int64_t>(max_threads, std::max<int64_t>(row_grid.size(), 1)));
    std::vector<Floats> rows(static_cast<size_t>(threads));
    for (Floats& r : rows) r = AllocateFloats(2 * c.dp);
    pool.ParallelFor(row_grid.size(), threads, [&](int64_t t, int worker) {
      float* buf = rows[static_cast<size_t>(worker)].get();
      PrepareRows(c, row_grid.At(t), buf, buf + c.dp);
    });
  }

  // Pass 2: key segments; dK and dV written per task, dQ committed in task order, dsink
  // terms kept per task and query head.
  const BlockGrid key_grid(p, p.hkv, kSegment, /*over_keys=*/true);
  const bool sink_grad = g.dsink != nullptr && p.sink_logits != nullptr;
  std::vector<double> sink_sums(sink_grad ? static_cast<size_t>(key_grid.size() * p.group()) : 0, 0.0);
  const int threads = static_cast<int>(std::min<int64_t>(max_threads, key_grid.size()));
  if (threads > 0) {
    std::vector<Scratch> scratch(static_cast<size_t>(threads));
    for (Scratch& s : scratch) s.Allocate(dim, c.dp, p.group());
    std::vector<Slot> slots(static_cast<size_t>(2 * threads));
    OrderedCommits commits(static_cast<int64_t>(slots.size()));
    pool.ParallelFor(key_grid.size(), threads, [&](int64_t t, int worker) {
      if (!commits.WaitForSlot(t)) return;
      try {
        RunSegment(c, key_grid.At(t), scratch[static_cast<size_t>(worker)], slots[t % slots.size()],
                   sink_grad ? &sink_sums[static_cast<size_t>(t * p.group())] : nullptr);
        commits.Finish(t, [&](int64_t, int64_t slot) { CommitSlot(c, slots[static_cast<size_t>(slot)]); });
      } catch (...) {
        commits.Abort();
        throw;
      }
    });
    if (commits.committed() != key_grid.size())
      throw Error(SWA_ERR_INTERNAL, "backward: dq commits incomplete");
  }

  if (g.dsink != nullptr) {
    // Summed per head in task order: independent of the thread count. +0 for no terms.
    std::vector<double> per_head(static_cast<size_t>(p.hq), 0.0);
    for (int64_t t = 0; sink_grad && t < key_grid.size(); ++t) {
      for (int64_t gi = 0; gi < p.group(); ++gi) {
        per_head[static_cast<size_t>(key_grid.At(t).head * p.group() + gi)] +=
            sink_sums[static_cast<size_t>(t * p.group() + gi)];
      }
    }
    for (int64_t h = 0; h < p.hq; ++h)
      g.dsink[h] = static_cast<float>(0.0 - per_head[static_cast<size_t>(h)]);
  }

  // Pass 3: a 16-bit dq is rounded once, from the f32 sums.
  if (c.dq_acc != nullptr) {
    const size_t esize = static_cast<size_t>(DTypeSize(p.dtype));
    pool.ParallelFor(row_grid.size(), max_threads, [&](int64_t t, int) {
      const BlockTask task = row_grid.At(t);
      const Sequence seq = p.Seq(task.seq);
      for (int64_t i = task.begin; i < task.end; ++i) {
        const int64_t l = seq.q_begin + i;
        RowFromFloat(c.DqRow(seq.batch, l, task.head), 1.0f, dim, p.dtype,
                     static_cast<char*>(g.dq.data) + g.dq.Offset(seq.batch, l, task.head) * esize);
      }
    });
  }
}

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::attention::cpu {

HWY_EXPORT(BackwardImpl);

void Backward(const Problem& p, const BackwardTensors& g, ThreadPool& pool) {
  HWY_DYNAMIC_DISPATCH(BackwardImpl)(p, g, pool);
}

}  // namespace swa::attention::cpu
#endif
