#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "model/backend.h"
#include "model/row_chunks.h"
#include "model/tensors.h"

namespace swa::model {
namespace {

template <class T>
LayerTensors<const T> AsConst(const LayerTensors<T>& t) {
  return {t.input_norm, t.q_proj, t.k_proj,    t.v_proj,   t.o_proj, t.sinks,
          t.gate_w,     t.gate_b, t.post_norm, t.mlp_gate, t.mlp_up, t.mlp_down};
}

// Positions restart at 0 in every segment; checks the packing on the way.
void SegmentPositions(const TokenBatch& b, int64_t vocab, std::vector<int32_t>* positions) {
  if (b.n < 0 || b.segments < 0) ThrowInvalid("token and segment counts must be >= 0");
  if (b.n > 0 && (b.tokens == nullptr || b.cu_seqlens == nullptr))
    ThrowInvalid("tokens or cu_seqlens is NULL");
  if (b.n > 0 && (b.cu_seqlens[0] != 0 || b.cu_seqlens[b.segments] != b.n)) {
    ThrowInvalid("cu_seqlens must start at 0 and end at the token count " + std::to_string(b.n));
  }
  positions->resize(static_cast<size_t>(b.n));
  for (int64_t s = 0; s < b.segments && b.n > 0; ++s) {
    if (b.cu_seqlens[s + 1] < b.cu_seqlens[s]) ThrowInvalid("cu_seqlens must be non-decreasing");
    for (int64_t t = b.cu_seqlens[s]; t < b.cu_seqlens[s + 1]; ++t)
      (*positions)[t] = static_cast<int32_t>(t - b.cu_seqlens[s]);
  }
  for (int64_t t = 0; t < b.n; ++t) {
    if (b.tokens[t] < 0 || b.tokens[t] >= vocab) {
      ThrowInvalid("token " + std::to_string(b.tokens[t]) + " at " + std::to_string(t) +
                   " is outside the vocabulary");
    }
    if (b.targets != nullptr && b.targets[t] != kPad && (b.targets[t] < 0 || b.targets[t] >= vocab)) {
      ThrowInvalid("target " + std::to_string(b.targets[t]) + " at " + std::to_string(t) +
                   " is outside the vocabulary");
    }
  }
}

Packing PackingOf(const TokenBatch& b) { return Packing{b.n, b.cu_seqlens, b.segments}; }

}  // namespace

Model::Model(ModelConfig config, int threads, bool recompute)
    : config_(std::move(config)), threads_(threads), recompute_(recompute) {
  ValidateConfig(config_);
  layout_ = ParameterLayout(config_);
  param_floats_ = LayoutFloats(config_);
  for (const LayerConfig& layer : config_.layers) {
    attention_.push_back(std::make_unique<LayerAttention>(config_, layer, threads));
    rope_.push_back(UsesRope(layer)
                        ? std::make_unique<RopeTable>(LayerRopeTheta(config_, layer), config_.head_dim)
                        : nullptr);
    BlockSpec s;
    s.d = config_.hidden_size;
    s.hq = config_.num_attention_heads;
    s.hkv = config_.num_key_value_heads;
    s.head_dim = config_.head_dim;
    s.ffn = config_.intermediate_size;
    s.eps = config_.rms_norm_eps;
    if (layer.gated_fusion) {
      int groups = 0;
      s.group_of_head = GateGroups(layer, &groups);
      s.gate_groups = groups;
    }
    s.attention = attention_.back().get();
    s.rope = rope_.back().get();
    s.threads = threads;
    specs_.push_back(std::move(s));
  }
}

template <class T>
void Model::ForwardBlocks(const T* params, const TokenBatch& batch, Workspace<T>* ws,
                          ThreadPool& pool) const {
  const int64_t n = batch.n, d = config_.hidden_size, layers = config_.num_hidden_layers;
  SegmentPositions(batch, config_.vocab_size, &ws->positions);
  int64_t longest = 0;
  for (int64_t s = 0; s < batch.segments && n > 0; ++s) {
    longest = std::max<int64_t>(longest, batch.cu_seqlens[s + 1] - batch.cu_seqlens[s]);
  }
  for (const auto& rope : rope_) {
    if (rope) rope->Reserve(longest);
  }
  const ModelTensors<const T> w = ViewTensors(config_, layout_, params);
  // x [n, d] = embed_tokens[t]
  ws->x.resize(static_cast<size_t>(n * d));
  for (int64_t t = 0; t < n; ++t) std::copy_n(w.embed + batch.tokens[t] * d, d, ws->x.data() + t * d);
  ws->blocks.resize(recompute_ ? 1 : static_cast<size_t>(layers));
  ws->block_inputs.resize(recompute_ ? static_cast<size_t>(layers) : 0);
  const Packing pack = PackingOf(batch);
  for (int64_t i = 0; i < layers; ++i) {
    if (recompute_) ws->block_inputs[i] = ws->x;
    BlockActivations<T>& acts = ws->blocks[recompute_ ? 0 : i];
    BlockForward(specs_[i], w.layers[i], pack, ws->positions.data(), ws->x.data(), &acts, ws->x.data(), pool);
  }
}

template <class T>
void Model::Head(const T* params, const TokenBatch& batch, Workspace<T>* ws, ThreadPool& pool) const {
  const int64_t n = batch.n, d = config_.hidden_size, v = config_.vocab_size;
  const ModelTensors<const T> w = ViewTensors(config_, layout_, params);
  // xf [n, d] = rmsnorm(x, model.norm); logits [n, V] = xf lm_head^T
  ws->xf.resize(static_cast<size_t>(n * d));
  ws->rstd_f.resize(static_cast<size_t>(n));
  ForRowChunks(n, pool, threads_, [&](int64_t, int64_t b, int64_t e) {
    Backend<T>::RmsNormForward(ws->x.data() + b * d, w.final_norm, config_.rms_norm_eps, e - b, d,
                               ws->xf.data() + b * d, ws->rstd_f.data() + b);
  });
  ws->logits.resize(static_cast<size_t>(n * v));
  Backend<T>::Gemm(false, true, n, v, d, 1, ws->xf.data(), d, w.lm_head, d, 0, ws->logits.data(), v);
}

template <class T>
void Model::Logits(const T* params, const TokenBatch& batch, T* logits, Workspace<T>* ws,
                   ThreadPool& pool) const {
  ForwardBlocks(params, batch, ws, pool);
  Head(params, batch, ws, pool);
  const double cap = config_.final_logit_softcapping;
  for (int64_t i = 0; i < batch.n * config_.vocab_size; ++i) {
    const T z = ws->logits[i];
    logits[i] = cap > 0 ? static_cast<T>(cap * std::tanh(z / cap)) : z;
  }
}

template <class T>
double Model::Loss(const T* params, const TokenBatch& batch, T* grads, Workspace<T>* ws, ThreadPool& pool,
                   int64_t* count_out) const {
  if (batch.targets == nullptr) ThrowInvalid("the loss needs targets");
  const int64_t n = batch.n, d = config_.hidden_size, v = config_.vocab_size,
                layers = config_.num_hidden_layers;
  ForwardBlocks(params, batch, ws, pool);
  Head(params, batch, ws, pool);
  int64_t count = 0;
  for (int64_t t = 0; t < n; ++t) count += batch.targets[t] != kPad;
  if (count_out != nullptr) *count_out = count;
  // loss = mean over counted targets of -log softmax(c tanh(logits / c))[target]
  ws->dlogits.resize(static_cast<size_t>(n * v));
  const T scale = count > 0 ? T(1) / static_cast<T>(count) : T(0);
  std::vector<double> chunk_loss(static_cast<size_t>(RowChunks(n)), 0.0);
  ForRowChunks(n, pool, threads_, [&](int64_t c, int64_t b, int64_t e) {
    chunk_loss[c] = Backend<T>::SoftmaxCrossEntropy(ws->logits.data() + b * v, batch.targets + b, e - b, v,
                                                    config_.final_logit_softcapping, kPad, scale,
                                                    ws->dlogits.data() + b * v);
  });
  double total = 0;
  for (double l : chunk_loss) total += l;
  const double loss = count > 0 ? total / static_cast<double>(count) : 0.0;
  if (grads == nullptr) return loss;

  const ModelTensors<const T> w = ViewTensors(config_, layout_, params);
  const ModelTensors<T> g = ViewTensors(config_, layout_, grads);
  // logits = xf lm_head^T:  dxf = dlogits lm_head;  d lm_head += dlogits^T xf
  ws->dxf.resize(static_cast<size_t>(n * d));
  Backend<T>::Gemm(true, false, v, d, n, 1, ws->dlogits.data(), v, ws->xf.data(), d, 1, g.lm_head, d);
  Backend<T>::Gemm(false, false, n, d, v, 1, ws->dlogits.data(), v, w.lm_head, d, 0, ws->dxf.data(), d);
  // xf = rmsnorm(x):  dx = norm'(dxf)
  ws->dx.resize(static_cast<size_t>(n * d));
  const int64_t chunks = RowChunks(n);
  ws->norm_parts.assign(static_cast<size_t>(chunks * d), T(0));
  ForRowChunks(n, pool, threads_, [&](int64_t c, int64_t b, int64_t e) {
    Backend<T>::RmsNormBackward(ws->x.data() + b * d, w.final_norm, ws->rstd_f.data() + b,
                                ws->dxf.data() + b * d, e - b, d, ws->dx.data() + b * d,
                                ws->norm_parts.data() + c * d);
  });
  SumChunks(ws->norm_parts, chunks, d, g.final_norm);
  // The blocks, last to first (recomputing each block's activations from its input).
  const Packing pack = PackingOf(batch);
  for (int64_t i = layers - 1; i >= 0; --i) {
    BlockActivations<T>* acts = &ws->blocks[recompute_ ? 0 : i];
    if (recompute_) {
      std::vector<T> out(static_cast<size_t>(n * d));
      BlockForward(specs_[i], w.layers[i], pack, ws->positions.data(), ws->block_inputs[i].data(), acts,
                   out.data(), pool);
    }
    BlockBackward(specs_[i], w.layers[i], pack, ws->positions.data(), *acts, ws->dx.data(), ws->dx.data(),
                  g.layers[i], &ws->scratch, pool);
  }
  // x = embed_tokens[t]:  d embed_tokens[t] += dx[t], in token order
  for (int64_t t = 0; t < n; ++t) {
    T* row = g.embed + batch.tokens[t] * d;
    const T* dxr = ws->dx.data() + t * d;
    for (int64_t e = 0; e < d; ++e) row[e] += dxr[e];
  }
  return loss;
}

template void Model::Logits(const float*, const TokenBatch&, float*, Workspace<float>*, ThreadPool&) const;
template void Model::Logits(const double*, const TokenBatch&, double*, Workspace<double>*, ThreadPool&) const;
template double Model::Loss(const float*, const TokenBatch&, float*, Workspace<float>*, ThreadPool&,
                            int64_t*) const;
template double Model::Loss(const double*, const TokenBatch&, double*, Workspace<double>*, ThreadPool&,
                            int64_t*) const;

}  // namespace swa::model
