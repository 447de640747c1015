// The starting weights of a training run, drawn from the run's seed.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/param_layout.h"

namespace swa::train {

// Standard deviation of the projections and embeddings (GPT-2's choice).
constexpr double kInitStd = 0.02;

// Fills `params` ([LayoutFloats(config)]) for the tensors of `layout`
// (ParameterLayout(config)), in layout order, from one std::mt19937_64 seeded with `seed`:
//   RMSNorm weights (input_layernorm, post_attention_layernorm, model.norm)  1
//   learned sinks, gate biases                                               0
//   self_attn.o_proj, mlp.down_proj (the residual writes)   N(0, kInitStd / sqrt(2 layers))
//   every other matrix (embeddings, q/k/v, gate/up, gates, lm_head)          N(0, kInitStd)
// Normal draws are Box-Muller over 53-bit uniforms, so they do not depend on the standard
// library's distributions. Padding between tensors is set to 0.
void InitParameters(const model::ModelConfig& config, const std::vector<model::ParamInfo>& layout,
                    uint64_t seed, float* params);

}  // namespace swa::train
