// The CPU forward for prefill shapes: flash-style tiles over the block schedule, online
// softmax, f32 accumulation. Writes p.out and (if set) p.lse.
#pragma once

#include "attention/problem.h"
#include "common/parallel.h"

namespace swa::attention::cpu {

void ForwardTiled(const Problem& p, ThreadPool& pool);

}  // namespace swa::attention::cpu
