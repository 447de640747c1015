#include "model/layer_attention.h"

#include <algorithm>

#include "attention/entry.h"
#include "attention/reference.h"

namespace swa::model {
namespace {

// A contiguous [1, n, heads, dim] view.
attention::TensorRef Rows(const void* data, int64_t n, int64_t heads, int64_t dim) {
  attention::TensorRef r;
  r.data = const_cast<void*>(data);
  r.batch = 1;
  r.seqlen = n;
  r.heads = heads;
  r.dim = dim;
  r.stride_h = dim;
  r.stride_l = heads * dim;
  r.stride_b = n * heads * dim;
  return r;
}

}  // namespace

LayerAttention::LayerAttention(const ModelConfig& config, const LayerConfig& layer, int threads) {
  const int64_t hq = config.num_attention_heads;
  std::vector<int64_t> left(hq), right(hq);
  for (int64_t h = 0; h < hq; ++h) {
    left[h] = layer.windows[h].left;
    right[h] = layer.windows[h].right;
  }
  std::vector<float> slopes(hq), sinks(hq, 0.0f);
  for (int64_t h = 0; h < hq; ++h) slopes[h] = AlibiSlope(h, hq);
  swa_attention_params params;
  swa_attention_params_init(&params);
  params.head_window_left = left.data();
  params.head_window_right = right.data();
  params.causal = 1;
  params.softcap = layer.attn_logit_softcapping;
  params.alibi_slopes = layer.alibi ? slopes.data() : nullptr;
  params.sink_tokens = layer.sink_tokens;
  // The learned sinks change every step: each call points the rule at the current ones.
  params.sink_logits = layer.learned_sinks ? sinks.data() : nullptr;
  params.num_threads = threads;
  rule_.dtype = DType::kF32;
  rule_.hq = hq;
  rule_.hkv = config.num_key_value_heads;
  rule_.dim = config.head_dim;
  attention::ValidateRule(&params, &storage_, &rule_);
}

attention::Problem LayerAttention::Call(const Packing& pack, const void* q, const void* k, const void* v,
                                        void* out) const {
  attention::Problem p = rule_;
  p.batch = 1;
  p.q = Rows(q, pack.tokens, p.hq, p.dim);
  p.k = Rows(k, pack.tokens, p.hkv, p.dim);
  p.v = Rows(v, pack.tokens, p.hkv, p.dim);
  p.out = Rows(out, pack.tokens, p.hq, p.dim);
  p.num_seqs = pack.segments;
  p.cu_seqlens_q = pack.cu_seqlens;
  p.cu_seqlens_k = pack.cu_seqlens;
  return p;
}

template <>
void LayerAttention::Forward(const Packing& pack, const float* q, const float* k, const float* v,
                             const float* sinks, float* out, float* lse, ThreadPool& pool) const {
  attention::Problem p = Call(pack, q, k, v, out);
  p.lse = lse;
  if (rule_.sink_logits != nullptr) p.sink_logits = sinks;
  attention::Forward(p, pool);
}

template <>
void LayerAttention::Forward(const Packing& pack, const double* q, const double* k, const double* v,
                             const double* sinks, double* out, double* lse, ThreadPool&) const {
  const attention::Problem p = Call(pack, q, k, v, out);
  const attention::ReferenceForwardResult r =
      attention::ReferenceForwardF64(p, q, k, v, rule_.sink_logits != nullptr ? sinks : nullptr);
  std::copy(r.out.begin(), r.out.end(), out);
  std::copy(r.lse.begin(), r.lse.end(), lse);
}

template <>
void LayerAttention::Backward(const Packing& pack, const float* q, const float* k, const float* v,
                              const float* sinks, const float* out, const float* lse, const float* dout,
                              float* dq, float* dk, float* dv, float* dsinks, ThreadPool& pool) const {
  attention::Problem p = Call(pack, q, k, v, const_cast<float*>(out));
  std::vector<float> dsink;
  attention::BackwardTensors g;
  g.dout = Rows(dout, pack.tokens, p.hq, p.dim);
  g.dq = Rows(dq, pack.tokens, p.hq, p.dim);
  g.dk = Rows(dk, pack.tokens, p.hkv, p.dim);
  g.dv = Rows(dv, pack.tokens, p.hkv, p.dim);
  g.lse = lse;
  if (rule_.sink_logits != nullptr) {
    p.sink_logits = sinks;
    dsink.assign(p.hq, 0.0f);
    g.dsink = dsink.data();
  }
  attention::Backward(p, g, pool);
  for (size_t h = 0; h < dsink.size(); ++h) dsinks[h] += dsink[h];
}

template <>
void LayerAttention::Backward(const Packing& pack, const double* q, const double* k, const double* v,
                              const double* sinks, const double* out, const double*, const double* dout,
                              double* dq, double* dk, double* dv, double* dsinks, ThreadPool&) const {
  const attention::Problem p = Call(pack, q, k, v, const_cast<double*>(out));
  const bool learned = rule_.sink_logits != nullptr;
  const attention::ReferenceBackwardResult r =
      attention::ReferenceBackwardF64(p, q, k, v, dout, learned ? sinks : nullptr);
  std::copy(r.dq.begin(), r.dq.end(), dq);
  std::copy(r.dk.begin(), r.dk.end(), dk);
  std::copy(r.dv.begin(), r.dv.end(), dv);
  if (learned) {
    for (int64_t h = 0; h < p.hq; ++h) dsinks[h] += r.dsink[h];
  }
}

}  // namespace swa::model
