#include "model/param_layout.h"

namespace swa::model {
namespace {

int64_t AlignUp(int64_t n) { return (n + kParamAlignFloats - 1) / kParamAlignFloats * kParamAlignFloats; }

// Appends tensors one after the other, each at an aligned offset.
class LayoutBuilder {
 public:
  void Add(std::string name, std::vector<int64_t> shape, bool decay) {
    int64_t count = 1;
    for (int64_t extent : shape) count *= extent;  // bounded by ValidateConfig's limits
    params_.push_back(ParamInfo{std::move(name), std::move(shape), end_, count, decay});
    end_ = AlignUp(end_ + count);
  }
  std::vector<ParamInfo> Take() { return std::move(params_); }

 private:
  std::vector<ParamInfo> params_;
  int64_t end_ = 0;
};

}  // namespace

std::vector<ParamInfo> ParameterLayout(const ModelConfig& c) {
  ValidateConfig(c);
  const int64_t d = c.hidden_size;
  const int64_t q_rows = c.num_attention_heads * c.head_dim;
  const int64_t kv_rows = c.num_key_value_heads * c.head_dim;
  const int64_t f = c.intermediate_size;
  constexpr bool kDecay = true, kNoDecay = false;

  LayoutBuilder b;
  b.Add("model.embed_tokens.weight", {c.vocab_size, d}, kDecay);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerConfig& layer = c.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    b.Add(p + "input_layernorm.weight", {d}, kNoDecay);
    b.Add(p + "self_attn.q_proj.weight", {q_rows, d}, kDecay);
    b.Add(p + "self_attn.k_proj.weight", {kv_rows, d}, kDecay);
    b.Add(p + "self_attn.v_proj.weight", {kv_rows, d}, kDecay);
    b.Add(p + "self_attn.o_proj.weight", {d, q_rows}, kDecay);
    if (layer.learned_sinks) b.Add(p + "self_attn.sinks", {c.num_attention_heads}, kNoDecay);
    if (layer.gated_fusion) {
      int groups = 0;
      GateGroups(layer, &groups);
      b.Add(p + "self_attn.gate.weight", {groups, d}, kDecay);
      b.Add(p + "self_attn.gate.bias", {groups}, kNoDecay);
    }
    b.Add(p + "post_attention_layernorm.weight", {d}, kNoDecay);
    b.Add(p + "mlp.gate_proj.weight", {f, d}, kDecay);
    b.Add(p + "mlp.up_proj.weight", {f, d}, kDecay);
    b.Add(p + "mlp.down_proj.weight", {d, f}, kDecay);
  }
  b.Add("model.norm.weight", {d}, kNoDecay);
  if (!c.tie_word_embeddings) b.Add("lm_head.weight", {c.vocab_size, d}, kDecay);
  return b.Take();
}

int64_t ParameterCount(const ModelConfig& c) {
  int64_t total = 0;
  for (const ParamInfo& p : ParameterLayout(c)) total += p.count;
  return total;
}

int64_t LayoutFloats(const ModelConfig& c) {
  const std::vector<ParamInfo> layout = ParameterLayout(c);
  return AlignUp(layout.back().offset + layout.back().count);
}

}  // namespace swa::model
