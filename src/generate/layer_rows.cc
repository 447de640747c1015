#include "generate/layer_rows.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"
#include "model/backend.h"
#include "model/row_chunks.h"
#include "ops/layer_math.h"

namespace swa::generate {
namespace {

using B = model::Backend<float>;

void ResizeRows(std::vector<float>* v, int64_t n) { v->resize(static_cast<size_t>(n)); }

}  // namespace

void RowWorkspace::Resize(const model::ModelConfig& config, int64_t rows, int64_t most_gate_groups) {
  const int64_t n = rows, d = config.hidden_size, f = config.intermediate_size;
  const int64_t hqd = config.num_attention_heads * config.head_dim;
  const int64_t hkvd = config.num_key_value_heads * config.head_dim;
  ResizeRows(&x, n * d);
  ResizeRows(&h, n * d);
  ResizeRows(&rstd, n);
  ResizeRows(&q, n * hqd);
  ResizeRows(&k, n * hkvd);
  ResizeRows(&v, n * hkvd);
  ResizeRows(&attn, n * hqd);
  ResizeRows(&gated, most_gate_groups > 0 ? n * hqd : 0);
  ResizeRows(&gate, n * most_gate_groups);
  ResizeRows(&mlp_gate, n * f);
  ResizeRows(&up, n * f);
  ResizeRows(&m, n * f);
  ResizeRows(&logits, n * config.vocab_size);
}

model::ModelTensors<const float> ViewWeights(const model::ModelConfig& config,
                                             const std::vector<float>& params,
                                             std::vector<model::ParamInfo>* layout) {
  *layout = model::ParameterLayout(config);
  const int64_t floats = model::LayoutFloats(config);
  if (static_cast<int64_t>(params.size()) != floats) {
    ThrowInvalid("the parameters hold " + std::to_string(params.size()) +
                 " floats but the config's layout needs " + std::to_string(floats));
  }
  return model::ViewTensors(config, *layout, params.data());
}

std::vector<LayerPlan> PlanLayers(const model::ModelConfig& config) {
  std::vector<LayerPlan> plans;
  for (const model::LayerConfig& layer : config.layers) {
    LayerPlan plan;
    int groups = 0;
    if (layer.gated_fusion) plan.group_of_head = model::GateGroups(layer, &groups);
    plan.gate_groups = groups;
    plans.push_back(std::move(plan));
  }
  return plans;
}

void EmbedRows(const model::ModelConfig& config, const model::ModelTensors<const float>& weights,
               const int32_t* tokens, int64_t n, RowWorkspace* ws) {
  const int64_t d = config.hidden_size;
  // x [n, d] = embed_tokens[t]
  for (int64_t t = 0; t < n; ++t) std::copy_n(weights.embed + tokens[t] * d, d, ws->x.data() + t * d);
}

void HeadRows(const model::ModelConfig& config, const model::ModelTensors<const float>& weights,
              int64_t first, int64_t rows, ThreadPool& pool, int threads, RowWorkspace* ws, float* logits) {
  const int64_t d = config.hidden_size, v = config.vocab_size;
  // xf [rows, d] = rmsnorm(x, model.norm) of the rows; logits [rows, V] = xf lm_head^T
  const float* x = ws->x.data() + first * d;
  model::ForRowChunks(rows, pool, threads, [&](int64_t, int64_t b, int64_t e) {
    B::RmsNormForward(x + b * d, weights.final_norm, config.rms_norm_eps, e - b, d, ws->h.data() + b * d,
                      ws->rstd.data() + b);
  });
  B::Gemm(false, true, rows, v, d, 1, ws->h.data(), d, weights.lm_head, d, 0, logits, v);
  // logits = c tanh(logits / c), as model::Model::Logits computes it
  const double cap = config.final_logit_softcapping;
  if (cap > 0) {
    for (int64_t i = 0; i < rows * v; ++i) logits[i] = static_cast<float>(cap * std::tanh(logits[i] / cap));
  }
}

// One block of docs/MODEL.md for n rows, x [n, d] in place; the same steps as
// model::BlockForward with the attention through the caller's caches.
void LayerRows(const model::ModelConfig& config, const model::LayerTensors<const float>& w,
               const LayerPlan& plan, int64_t n, const AttendFn& attend, ThreadPool& pool, int threads,
               RowWorkspace* ws) {
  const int64_t d = config.hidden_size, f = config.intermediate_size, g = plan.gate_groups;
  const int64_t hq = config.num_attention_heads, dim = config.head_dim;
  const int64_t hqd = hq * dim, hkvd = config.num_key_value_heads * dim;
  const double eps = config.rms_norm_eps;
  float* x = ws->x.data();  // [n, d]
  float* h = ws->h.data();  // [n, d]
  // h1 [n, d] = rmsnorm(x, input_layernorm)
  model::ForRowChunks(n, pool, threads, [&](int64_t, int64_t b, int64_t e) {
    B::RmsNormForward(x + b * d, w.input_norm, eps, e - b, d, h + b * d, ws->rstd.data() + b);
  });
  // q [n, Hq*D] = h1 q_proj^T; k, v [n, Hkv*D] likewise (the caches rotate q and k)
  B::Gemm(false, true, n, hqd, d, 1, h, d, w.q_proj, d, 0, ws->q.data(), hqd);
  B::Gemm(false, true, n, hkvd, d, 1, h, d, w.k_proj, d, 0, ws->k.data(), hkvd);
  B::Gemm(false, true, n, hkvd, d, 1, h, d, w.v_proj, d, 0, ws->v.data(), hkvd);
  // a [n, Hq*D] = attention(q, k, v) over every position seen
  attend(n, ws->q.data(), ws->k.data(), ws->v.data(), ws->attn.data());
  // o = a, or a_h * sigmoid(h1 gate.weight^T + gate.bias)[group(h)]
  const float* o = ws->attn.data();
  if (g > 0) {
    float* gate = ws->gate.data();  // [n, G]
    B::Gemm(false, true, n, g, d, 1, h, d, w.gate_w, d, 0, gate, g);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < g; ++j) gate[t * g + j] = ops::plain::Sigmoid(gate[t * g + j] + w.gate_b[j]);
    }
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t head = 0; head < hq; ++head) {
        const float s = gate[t * g + plan.group_of_head[head]];
        const float* a = ws->attn.data() + t * hqd + head * dim;
        float* out = ws->gated.data() + t * hqd + head * dim;
        for (int64_t e = 0; e < dim; ++e) out[e] = a[e] * s;
      }
    }
    o = ws->gated.data();
  }
  // x_mid [n, d] = x + o o_proj^T (in place)
  B::Gemm(false, true, n, d, hqd, 1, o, hqd, w.o_proj, hqd, 1, x, d);
  // h2 = rmsnorm(x_mid, post_attention_layernorm)
  model::ForRowChunks(n, pool, threads, [&](int64_t, int64_t b, int64_t e) {
    B::RmsNormForward(x + b * d, w.post_norm, eps, e - b, d, h + b * d, ws->rstd.data() + b);
  });
  // m [n, F] = silu(h2 gate_proj^T) * (h2 up_proj^T)
  B::Gemm(false, true, n, f, d, 1, h, d, w.mlp_gate, d, 0, ws->mlp_gate.data(), f);
  B::Gemm(false, true, n, f, d, 1, h, d, w.mlp_up, d, 0, ws->up.data(), f);
  model::ForRowChunks(n, pool, threads, [&](int64_t, int64_t b, int64_t e) {
    B::SwiGluForward(ws->mlp_gate.data() + b * f, ws->up.data() + b * f, (e - b) * f, ws->m.data() + b * f);
  });
  // y [n, d] = x_mid + m down_proj^T (in place)
  B::Gemm(false, true, n, d, f, 1, ws->m.data(), f, w.mlp_down, f, 1, x, d);
}

}  // namespace swa::generate
