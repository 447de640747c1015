#include "attention/schedule.h"

#include <algorithm>
#include <utility>

namespace swa::attention {
namespace {

// Sorted, merged list of block-index intervals [first, last], built from inclusive
// element intervals. Small: at most a few intervals plus one per global token.
class BlockSet {
 public:
  explicit BlockSet(int64_t block) : block_(block) {}
  void AddElements(int64_t lo, int64_t hi) {
    if (lo <= hi) spans_.emplace_back(lo / block_, hi / block_);
  }
  template <class Emit>
  void ForEachBlock(Emit&& emit) {
    std::sort(spans_.begin(), spans_.end());
    int64_t next = 0;  // first block not yet emitted
    for (const auto& [first, last] : spans_) {
      for (int64_t b = std::max(first, next); b <= last; ++b) emit(b);
      next = std::max(next, last + 1);
    }
  }

 private:
  int64_t block_;
  std::vector<std::pair<int64_t, int64_t>> spans_;
};

// Smallest p in [lo, hi] with pred(p), or hi + 1; pred must be monotone (false...true).
template <class Pred>
int64_t FirstTrue(int64_t lo, int64_t hi, Pred&& pred) {
  int64_t count = hi - lo + 1;
  while (count > 0) {
    const int64_t half = count / 2;
    if (pred(lo + half)) {
      count = half;
    } else {
      lo += half + 1;
      count -= half + 1;
    }
  }
  return lo;
}

}  // namespace

bool TileFullyVisible(const BandRule& rule, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  if (i0 >= i1 || j0 >= j1) return true;
  if (j0 < 0 || j1 > rule.lk()) return false;
  const int64_t p0 = rule.Position(i0), p1 = rule.Position(i1 - 1);
  if (j1 - 1 > rule.CausalCap(p0)) return false;  // the first row must reach the last key
  if (rule.LocalLo(p1) <= j0 && rule.LocalHi(p0) >= j1 - 1) return true;
  if (j1 <= rule.sink_keys()) return true;
  if (rule.CountGlobal(j0, j1 - 1) == j1 - j0) return true;
  return rule.CountGlobal(p0, p1) == i1 - i0;
}

void KeyRowRanges(const BandRule& rule, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t* first,
                  int64_t* last) {
  // Row i sees key j iff LocalLo(p_i) <= j <= LocalHi(p_i) (LocalHi includes the causal
  // cap), both monotone in i: first = the first row whose LocalHi reaches j, last = the
  // last row whose LocalLo does not pass j.
  int64_t a = i0, b = i0;  // b: first row with LocalLo > j
  for (int64_t j = j0; j < j1; ++j) {
    while (a < i1 && rule.LocalHi(rule.Position(a)) < j) ++a;
    while (b < i1 && rule.LocalLo(rule.Position(b)) <= j) ++b;
    first[j - j0] = a;
    last[j - j0] = (j < 0 || j >= rule.lk()) ? a - 1 : b - 1;
  }
}

void RowVisibility(const BandRule& rule, int64_t i, int64_t j0, int64_t j1, uint8_t* visible) {
  std::fill(visible, visible + (j1 - j0), uint8_t{0});
  auto mark = [&](int64_t lo, int64_t hi) {  // inclusive, clipped to the block
    lo = std::max(lo, j0);
    hi = std::min(hi, j1 - 1);
    for (int64_t j = lo; j <= hi; ++j) visible[j - j0] = 1;
  };
  const int64_t p = rule.Position(i);
  const int64_t cap = std::min(rule.lk() - 1, rule.CausalCap(p));
  if (cap < 0) return;
  mark(std::max<int64_t>(0, rule.LocalLo(p)), std::min(cap, rule.LocalHi(p)));
  if (rule.IsGlobal(p)) {
    mark(0, cap);
    return;
  }
  mark(0, std::min(rule.sink_keys() - 1, cap));
  if (rule.has_globals()) {
    for (int64_t g = rule.GlobalAtOrAfter(std::max<int64_t>(j0, 0)); g < j1 && g <= cap;
         g = rule.GlobalAtOrAfter(g + 1)) {
      visible[g - j0] = 1;
    }
  }
}

void ScheduleQueryBlock(const BandRule& rule, int64_t i0, int64_t i1, int64_t block_k,
                        std::vector<KeyBlock>* out) {
  out->clear();
  const int64_t lk = rule.lk();
  i0 = std::max<int64_t>(i0, 0);
  i1 = std::min(i1, rule.lq());
  if (i0 >= i1 || lk == 0) return;
  const int64_t p0 = rule.Position(i0), p1 = rule.Position(i1 - 1);
  BlockSet blocks(block_k);
  // Local band: the rows' intervals are monotone and adjacent, so their union is one
  // interval from the first row's low end to the last row's high end.
  blocks.AddElements(std::max<int64_t>(0, rule.LocalLo(p0)), std::min(lk - 1, rule.LocalHi(p1)));
  // Sink keys and global rows both see a prefix [0, e] of the keys.
  int64_t prefix_end = -1;
  if (rule.sink_keys() > 0) {
    prefix_end = std::min({rule.sink_keys() - 1, lk - 1, rule.CausalCap(p1)});
  }
  const int64_t last_global_row = rule.LastGlobal(p0, p1);
  if (last_global_row != BandRule::kNegInf) {
    prefix_end = std::max(prefix_end, std::min(lk - 1, rule.CausalCap(last_global_row)));
  }
  blocks.AddElements(0, prefix_end);
  // Global keys, each seen by every row the causal rule lets reach it.
  const int64_t key_cap = std::min(lk - 1, rule.CausalCap(p1));
  if (rule.has_globals()) {
    for (int64_t g = rule.GlobalAtOrAfter(0); g <= key_cap; g = rule.GlobalAtOrAfter(g + 1)) {
      blocks.AddElements(g, g);
    }
  }
  blocks.ForEachBlock([&](int64_t kb) {
    const int64_t j0 = kb * block_k, j1 = std::min(lk, j0 + block_k);
    out->push_back({j0, j1, TileFullyVisible(rule, i0, i1, j0, j1)});
  });
}

void ScheduleKeyBlock(const BandRule& rule, int64_t j0, int64_t j1, int64_t block_q,
                      std::vector<QueryBlock>* out) {
  out->clear();
  const int64_t lq = rule.lq();
  j0 = std::max<int64_t>(j0, 0);
  j1 = std::min(j1, rule.lk());
  if (j0 >= j1 || lq == 0) return;
  const int64_t first_p = rule.Position(0), last_p = rule.Position(lq - 1);
  const int64_t offset = first_p;  // row i = p - offset
  BlockSet blocks(block_q);
  auto add_positions = [&](int64_t pa, int64_t pb) {
    pa = std::max(pa, first_p);
    pb = std::min(pb, last_p);
    blocks.AddElements(pa - offset, pb - offset);
  };
  // Local band: row p meets keys [j0, j1) iff LocalHi(p) >= j0 and LocalLo(p) <= j1 - 1;
  // both tests are monotone in p, so the rows form one interval.
  const int64_t pa = FirstTrue(first_p, last_p, [&](int64_t p) { return rule.LocalHi(p) >= j0; });
  const int64_t pb =
      FirstTrue(first_p, last_p, [&](int64_t p) { return rule.LocalLo(p) > j1 - 1; }) - 1;
  add_positions(pa, pb);
  // Sink keys and global keys in the block are seen by every row that the causal rule
  // lets reach the first of them.
  int64_t first_extra_key = -1;
  if (j0 < rule.sink_keys()) {
    first_extra_key = j0;
  } else if (rule.has_globals()) {
    const int64_t g = rule.GlobalAtOrAfter(j0);
    if (g < j1) first_extra_key = g;
  }
  if (first_extra_key >= 0) {
    add_positions(rule.causal() ? first_extra_key : BandRule::kNegInf, BandRule::kPosInf);
  }
  // Global rows see every key the causal rule allows.
  if (rule.has_globals()) {
    for (int64_t g = rule.GlobalAtOrAfter(std::max(first_p, rule.causal() ? j0 : first_p)); g <= last_p;
         g = rule.GlobalAtOrAfter(g + 1)) {
      add_positions(g, g);
    }
  }
  blocks.ForEachBlock([&](int64_t qb) {
    const int64_t i0 = qb * block_q, i1 = std::min(lq, i0 + block_q);
    out->push_back({i0, i1, TileFullyVisible(rule, i0, i1, j0, j1)});
  });
}

}  // namespace swa::attention
