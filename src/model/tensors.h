// Named views of the model's flat parameter buffer (model/param_layout.h): one pointer per
// tensor of docs/MODEL.md, for the parameters and, with the same layout, for their
// gradients and the optimizer's moments.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/param_layout.h"

namespace swa::model {

template <class T>
struct LayerTensors {
  T* input_norm;  // [d]
  T* q_proj;      // [Hq*D, d]
  T* k_proj;      // [Hkv*D, d]
  T* v_proj;      // [Hkv*D, d]
  T* o_proj;      // [d, Hq*D]
  T* sinks;       // [Hq] or null (no learned sinks)
  T* gate_w;      // [G, d] or null (no gated fusion)
  T* gate_b;      // [G] or null
  T* post_norm;   // [d]
  T* mlp_gate;    // [F, d]
  T* mlp_up;      // [F, d]
  T* mlp_down;    // [d, F]
};

template <class T>
struct ModelTensors {
  T* embed;  // [V, d]
  std::vector<LayerTensors<T>> layers;
  T* final_norm;  // [d]
  T* lm_head;     // [V, d]; the embedding itself when tied
};

// The views of `base` ([LayoutFloats(config)]) under `layout` (ParameterLayout(config)).
template <class T>
ModelTensors<T> ViewTensors(const ModelConfig& config, const std::vector<ParamInfo>& layout, T* base);

}  // namespace swa::model
