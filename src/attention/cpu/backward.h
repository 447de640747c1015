// The CPU backward: FlashAttention-2 style tiles over the block schedule, walking key
// blocks on the outside. Reads q, k, v and out of `p` and dout and the forward's lse
// from `g`; writes dq, dk, dv and (if given) dsink. Deterministic: the result does
// not depend on the thread count.
#pragma once

#include "attention/problem.h"
#include "common/parallel.h"

namespace swa::attention::cpu {

void Backward(const Problem& p, const BackwardTensors& g, ThreadPool& pool);

}  // namespace swa::attention::cpu
