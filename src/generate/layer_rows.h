// The model's layer math (docs/MODEL.md) over rows of tokens, shared by the cached
// decoders: generate::Decoder (the rows are one sequence's next tokens) and the server's
// batched decoder (the rows are one token of each of several sequences). Only the
// attention differs between them, so it is passed in: `attend(n, q, k, v, out)` writes
// out [n, Hq*D] from q [n, Hq*D], k, v [n, Hkv*D] through the caller's KV caches (q and k
// un-rotated; the caches apply RoPE). The same steps as model::BlockForward, with the f32
// ops of model/backend.h.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/parallel.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "model/tensors.h"

namespace swa::generate {

// Working rows for up to `rows` tokens at once.
struct RowWorkspace {
  std::vector<float> x, h, rstd;       // [n, d], [n, d], [n]
  std::vector<float> q, k, v;          // [n, Hq*D], [n, Hkv*D], [n, Hkv*D]
  std::vector<float> attn, gated;      // [n, Hq*D] each
  std::vector<float> gate;             // [n, G]
  std::vector<float> mlp_gate, up, m;  // [n, F] each
  std::vector<float> logits;           // [n, V]
  void Resize(const model::ModelConfig& config, int64_t rows, int64_t most_gate_groups);
};

using AttendFn = std::function<void(int64_t n, const float* q, const float* k, const float* v, float* out)>;

// The weights of `params` ([LayoutFloats(config)]) by name, `*layout` set to
// ParameterLayout(config); throws swa::Error if params has another size.
model::ModelTensors<const float> ViewWeights(const model::ModelConfig& config,
                                             const std::vector<float>& params,
                                             std::vector<model::ParamInfo>* layout);

// The per-layer facts the layer math needs beyond the weights: gate groups.
struct LayerPlan {
  std::vector<int> group_of_head;  // [Hq] gate group (empty: no gates)
  int64_t gate_groups = 0;         // G (0: no gates)
};
std::vector<LayerPlan> PlanLayers(const model::ModelConfig& config);

// x [n, d] = embed_tokens[tokens] into ws->x.
void EmbedRows(const model::ModelConfig& config, const model::ModelTensors<const float>& weights,
               const int32_t* tokens, int64_t n, RowWorkspace* ws);
// One block for the n rows of ws->x, in place.
void LayerRows(const model::ModelConfig& config, const model::LayerTensors<const float>& w,
               const LayerPlan& plan, int64_t n, const AttendFn& attend, ThreadPool& pool, int threads,
               RowWorkspace* ws);
// logits [rows, V] of x's rows first .. first + rows - 1: final norm, LM head, final
// soft-capping.
void HeadRows(const model::ModelConfig& config, const model::ModelTensors<const float>& weights,
              int64_t first, int64_t rows, ThreadPool& pool, int threads, RowWorkspace* ws, float* logits);

}  // namespace swa::generate
