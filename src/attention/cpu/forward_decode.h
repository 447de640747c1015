// The CPU forward for decode shapes: a few query rows per sequence against many keys.
// The query heads that share a kv head are processed together (each key row is read
// once per group), scores are dot products (no lanes wasted on absent queries), the kv
// heads of a sequence are walked together block by block (so K and V are read in address
// order), and long key ranges are split into fixed pieces whose partial softmax states
// are merged with the log-sum-exp rule (flash-decoding), so that all cores work even on
// one query.
#pragma once

#include "attention/problem.h"
#include "common/parallel.h"

namespace swa::attention::cpu {

// Query rows per sequence at or below which the entry (attention/entry.cc) takes this
// path.
constexpr int64_t kDecodeMaxQueries = 4;

void ForwardDecode(const Problem& p, ThreadPool& pool);

}  // namespace swa::attention::cpu
