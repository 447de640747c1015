#include "model/tensors.h"

#include <map>
#include <string>

#include "common/error.h"

namespace swa::model {

template <class T>
ModelTensors<T> ViewTensors(const ModelConfig& config, const std::vector<ParamInfo>& layout, T* base) {
  std::map<std::string, int64_t> offsets;
  for (const ParamInfo& p : layout) offsets[p.name] = p.offset;
  auto at = [&](const std::string& name) -> T* {
    const auto it = offsets.find(name);
    if (it == offsets.end()) throw Error(SWA_ERR_INTERNAL, "parameter layout has no tensor " + name);
    return base + it->second;
  };
  auto optional = [&](const std::string& name) -> T* {
    const auto it = offsets.find(name);
    return it == offsets.end() ? nullptr : base + it->second;
  };
  ModelTensors<T> t;
  t.embed = at("model.embed_tokens.weight");
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.layers.push_back({at(p + "input_layernorm.weight"), at(p + "self_attn.q_proj.weight"),
                        at(p + "self_attn.k_proj.weight"), at(p + "self_attn.v_proj.weight"),
                        at(p + "self_attn.o_proj.weight"), optional(p + "self_attn.sinks"),
                        optional(p + "self_attn.gate.weight"), optional(p + "self_attn.gate.bias"),
                        at(p + "post_attention_layernorm.weight"), at(p + "mlp.gate_proj.weight"),
                        at(p + "mlp.up_proj.weight"), at(p + "mlp.down_proj.weight")});
  }
  t.final_norm = at("model.norm.weight");
  t.lm_head = config.tie_word_embeddings ? t.embed : at("lm_head.weight");
  return t;
}

template ModelTensors<float> ViewTensors(const ModelConfig&, const std::vector<ParamInfo>&, float*);
template ModelTensors<const float> ViewTensors(const ModelConfig&, const std::vector<ParamInfo>&,
                                               const float*);
template ModelTensors<double> ViewTensors(const ModelConfig&, const std::vector<ParamInfo>&, double*);
template ModelTensors<const double> ViewTensors(const ModelConfig&, const std::vector<ParamInfo>&,
                                                const double*);

}  // namespace swa::model
