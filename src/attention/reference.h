// The oracle: docs/ATTENTION.md as plain loops with double accumulation. Every fast
// path is tested against it. It is slow on purpose (O(Lq * Lk * D) per head, no
// blocking, no schedule): it evaluates the visibility rule for every pair.
#pragma once

#include <vector>

#include "attention/problem.h"

namespace swa::attention {

struct ReferenceForwardResult {
  std::vector<double> out;  // [batch, q.seqlen, hq, dim], contiguous
  std::vector<double> lse;  // [batch, hq, q.seqlen]
};

// Reads q, k, v of `p` (any dtype) and computes out and lse in double. p.out and
// p.lse are not written.
ReferenceForwardResult ReferenceForward(const Problem& p);

struct ReferenceBackwardResult {
  std::vector<double> dq;     // [batch, q.seqlen, hq, dim]
  std::vector<double> dk;     // [batch, k.seqlen, hkv, dim]
  std::vector<double> dv;     // [batch, k.seqlen, hkv, dim]
  std::vector<double> dsink;  // [hq] (zeros without sink logits)
};

// Gradients of sum(out * dout) with respect to q, k, v and the sink logits, from q, k,
// v and dout alone (the softmax is recomputed in double; p.out and the lse are unused).
ReferenceBackwardResult ReferenceBackward(const Problem& p, const TensorRef& dout);

// The same on float64 inputs, for the model's gradient checks in double: q, k, v (and
// dout, laid out like p.out) are double arrays addressed through the strides of p's
// views (whose data and dtype are not read), and the sink logits ([hq], or null) are
// double instead of p.sink_logits.
ReferenceForwardResult ReferenceForwardF64(const Problem& p, const double* q, const double* k,
                                           const double* v, const double* sink_logits);
ReferenceBackwardResult ReferenceBackwardF64(const Problem& p, const double* q, const double* k,
                                             const double* v, const double* dout, const double* sink_logits);

}  // namespace swa::attention
