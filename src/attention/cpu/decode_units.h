// The work units of the decode path (see forward_decode.h): which rows a unit holds and
// which key blocks it visits. Target-independent; the kernels are in forward_decode.cc.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/problem.h"
#include "attention/schedule.h"

namespace swa::attention::cpu::decode {

constexpr int64_t kBlockK = 64;          // keys per schedule block
constexpr int64_t kMaxSplitBlocks = 16;  // key blocks per task at most (1024 keys)
constexpr int64_t kMinSplitBlocks = 4;   // and at least, unless the range is shorter
constexpr int64_t kTargetPieces = 8;     // pieces per group, between those bounds
constexpr int64_t kMaxRows = 16;         // (head, query) rows per unit

// A unit: sequence `seq`, kv head `kv_head` and its query heads [head0, head0 + heads).
// Row r is (head head0 + r / lq, query r % lq).
struct Unit {
  int64_t seq, kv_head, head0, heads;
  int64_t rows;  // heads * lq
};

// One key block of one span as the unit sees it: full only if full for every head.
struct WorkBlock {
  int32_t span;
  KeyBlock kb;
};

std::vector<Unit> MakeUnits(const Problem& p);

// Consecutive units of one sequence that visit the same key blocks, processed together
// block by block. Rows of all kv heads of one key position are adjacent in memory, so
// walking the group's kv heads inside each block reads K and V in address order; the
// rows of one head alone are H * D elements apart (a page for 8 heads of 128 f32), which
// the hardware prefetchers do not follow. The group's blocks are cut into `pieces`
// pieces of `blocks_per_piece` blocks, chosen from the problem alone (not the thread
// count), so that results do not depend on the number of threads.
struct Group {
  int64_t unit_begin, unit_end;
  int64_t blocks_per_piece, pieces;
};

// `blocks[u]`: unit u's blocks (UnitBlocks).
std::vector<Group> MakeGroups(const std::vector<Unit>& units, const std::vector<std::vector<WorkBlock>>& blocks);

// The union of the unit's heads' key blocks over all key spans, in span then key order.
// `spans` receives the sequence's spans; `scratch` is working space.
void UnitBlocks(const Problem& p, const Unit& u, std::vector<KeySpan>* spans, std::vector<WorkBlock>* out,
                std::vector<KeyBlock>* scratch);

}  // namespace swa::attention::cpu::decode
