// The block schedule: which key blocks a query block visits, and which of those need
// no mask. Derived from the rule's interval form (BandRule::LocalLo/LocalHi are
// monotone in the position), never by scanning the mask.
//
// Key block kb covers keys [kb * block_k, min(Lk, (kb + 1) * block_k)). A block is
// listed iff it holds at least one visible pair; it is marked `full` only if every pair
// in it is visible (the converse may not hold: some fully visible blocks made of
// several rule parts are conservatively left partial).
#pragma once

#include <cstdint>
#include <vector>

#include "attention/rule.h"

namespace swa::attention {

struct KeyBlock {
  int64_t begin = 0, end = 0;  // keys [begin, end)
  bool full = false;
};

// Appends to `out` (after clearing it) the key blocks that query rows [i0, i1) visit,
// in ascending order.
void ScheduleQueryBlock(const BandRule& rule, int64_t i0, int64_t i1, int64_t block_k,
                        std::vector<KeyBlock>* out);

struct QueryBlock {
  int64_t begin = 0, end = 0;  // rows [begin, end)
  bool full = false;
};

// The transpose: the query blocks (of block_q rows) that visit keys [j0, j1), in
// ascending order. A block is listed iff it holds at least one visible pair and is
// marked full only if every pair in it is visible. Used by the backward, which walks
// key blocks on the outside.
void ScheduleKeyBlock(const BandRule& rule, int64_t j0, int64_t j1, int64_t block_q,
                      std::vector<QueryBlock>* out);

// Visibility of keys [j0, j1) to row i, one byte per key (1 = visible), from the rule's
// interval form: O(j1 - j0) plus one binary search per global token in range.
void RowVisibility(const BandRule& rule, int64_t i, int64_t j0, int64_t j1, uint8_t* visible);

// For a rule without sink or global tokens, the rows of [i0, i1) that see key j form
// one interval (the band is monotone): [first[j - j0], last[j - j0]] for each key of
// [j0, j1), empty when first > last. Both ends are non-decreasing in j, so one sweep
// finds them all: O((i1 - i0) + (j1 - j0)).
void KeyRowRanges(const BandRule& rule, int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t* first,
                  int64_t* last);

// Whether every pair of rows [i0, i1) x keys [j0, j1) is visible (conservative).
bool TileFullyVisible(const BandRule& rule, int64_t i0, int64_t i1, int64_t j0, int64_t j1);

}  // namespace swa::attention
