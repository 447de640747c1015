// The one internal entry of attention. Every caller (the C API, the KV cache, the model)
// hands it a validated Problem; it chooses the backend by device and the kernel by shape
// (decode: a few query rows per sequence; tiled: the rest). Nothing is validated here.
#pragma once

#include "attention/problem.h"
#include "common/parallel.h"

namespace swa::attention {

// Writes p.out and, if set, p.lse.
void Forward(const Problem& p, ThreadPool& pool);

// Reads q, k, v, out of p and dout, lse of g; writes dq, dk, dv and, if set, dsink.
void Backward(const Problem& p, const BackwardTensors& g, ThreadPool& pool);

}  // namespace swa::attention
