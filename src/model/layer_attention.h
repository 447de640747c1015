// One layer's attention as docs/MODEL.md defines it, over a stream of packed
// documents: causal, the layer's window per query head, sink tokens, learned sinks, logit
// soft-capping, ALiBi, scale 1/sqrt(D), grouped kv heads. The rule is validated once, at
// construction; each call goes to the attention entry (f32, swa's kernels) or to the
// double-precision oracle (f64, for the gradient checks).
#pragma once

#include <cstdint>
#include <vector>

#include "attention/problem.h"
#include "attention/validate.h"
#include "common/parallel.h"
#include "model/config.h"

namespace swa::model {

// Documents packed into one stream of n tokens: segment s is tokens [cu[s], cu[s+1]);
// attention never crosses a segment and positions restart at 0 in each.
struct Packing {
  int64_t tokens = 0;
  const int32_t* cu_seqlens = nullptr;  // [segments + 1]
  int64_t segments = 0;
};

class LayerAttention {
 public:
  LayerAttention(const ModelConfig& config, const LayerConfig& layer, int threads);
  LayerAttention(const LayerAttention&) = delete;
  LayerAttention& operator=(const LayerAttention&) = delete;
  LayerAttention(LayerAttention&&) = default;

  // out [n, Hq*D] and lse [Hq, n] from q [n, Hq*D] and k, v [n, Hkv*D] (q and k already
  // rotated); sinks [Hq] are the learned sink logits (null without).
  template <class T>
  void Forward(const Packing& pack, const T* q, const T* k, const T* v, const T* sinks, T* out, T* lse,
               ThreadPool& pool) const;

  // dq, dk, dv (written) and dsinks (added to, when the layer has learned sinks) from dout
  // and the forward's out and lse.
  template <class T>
  void Backward(const Packing& pack, const T* q, const T* k, const T* v, const T* sinks, const T* out,
                const T* lse, const T* dout, T* dq, T* dk, T* dv, T* dsinks, ThreadPool& pool) const;

  const attention::Problem& rule() const { return rule_; }

 private:
  attention::Problem Call(const Packing& pack, const void* q, const void* k, const void* v, void* out) const;

  attention::RuleStorage storage_;
  attention::Problem rule_;  // rule fields and sizes; no tensors
};

}  // namespace swa::model
