// Where every parameter tensor of docs/MODEL.md lives in one flat float buffer.
// Training, checkpoints and the forward pass all address parameters through this list,
// so that a tensor's name, shape and place are decided once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace swa::model {

// Offsets are multiples of this many floats (64 bytes: one cache line, one AVX-512 vector).
constexpr int64_t kParamAlignFloats = 16;

struct ParamInfo {
  std::string name;            // Hugging Face Llama/Mistral name
  std::vector<int64_t> shape;  // row-major; matrices [out, in] as torch.nn.Linear
  int64_t offset = 0;          // first float in the flat buffer
  int64_t count = 0;           // product of shape
  bool decay = true;           // AdamW weight decay applies (not to norms, sinks, biases)
};

// Every tensor of `config` (validated first), in this order:
//   model.embed_tokens.weight                          [V, d]
//   per layer i, under model.layers.i.:
//     input_layernorm.weight                           [d]
//     self_attn.q_proj.weight                          [Hq*D, d]
//     self_attn.k_proj.weight, self_attn.v_proj.weight [Hkv*D, d]
//     self_attn.o_proj.weight                          [d, Hq*D]
//     self_attn.sinks                                  [Hq]       (learned_sinks)
//     self_attn.gate.weight, self_attn.gate.bias       [G, d], [G] (gated_fusion, G groups)
//     post_attention_layernorm.weight                  [d]
//     mlp.gate_proj.weight, mlp.up_proj.weight         [F, d]
//     mlp.down_proj.weight                             [d, F]
//   model.norm.weight                                  [d]
//   lm_head.weight                                     [V, d]     (not tie_word_embeddings)
// Each tensor starts at the next multiple of kParamAlignFloats after the previous one.
std::vector<ParamInfo> ParameterLayout(const ModelConfig& config);

// Sum of the tensors' counts (padding excluded).
int64_t ParameterCount(const ModelConfig& config);

// Floats in the flat buffer: the end of the last tensor, rounded up to kParamAlignFloats.
int64_t LayoutFloats(const ModelConfig& config);

}  // namespace swa::model
