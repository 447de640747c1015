// Models for the generation tests: random weights for any config, a small config with
// every feature of docs/MODEL.md, and a "bigram" model whose greedy continuation of a
// token is chosen by the test (each token's successor is a table entry), so that the text
// a generation produces is known in advance.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/param_layout.h"

namespace swa::generate_test {

// Norm weights near 1, matrices with entries of about 1/sqrt(fan-in), the embedding and
// sink logits of about 1.
inline std::vector<float> RandomParams(const model::ModelConfig& config, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> params(static_cast<size_t>(model::LayoutFloats(config)), 0.0f);
  for (const model::ParamInfo& p : model::ParameterLayout(config)) {
    const bool norm = p.name.find("norm") != std::string::npos;
    const bool matrix = p.shape.size() == 2 && p.name != "model.embed_tokens.weight";
    const float scale = norm ? 0.1f : matrix ? 1.0f / std::sqrt(static_cast<float>(p.shape.back())) : 1.0f;
    for (int64_t i = 0; i < p.count; ++i) params[p.offset + i] = (norm ? 1.0f : 0.0f) + scale * normal(rng);
  }
  return params;
}

// Every feature somewhere: per-head windows mixing narrow, wide and global heads, gated
// fusion, learned sinks, sink tokens and logit soft-capping (layer 0); ALiBi with a global
// head and gates (layer 1); a RoPE layer with its own theta and learned sinks (layer 2);
// GQA; final soft-capping; an untied LM head.
inline model::ModelConfig EveryFeatureConfig() {
  model::ModelConfig c;
  c.vocab_size = 259;
  c.hidden_size = 24;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.intermediate_size = 32;
  c.tie_word_embeddings = false;
  c.final_logit_softcapping = 10;
  model::LayerConfig l0;
  l0.windows = {{2, 0}, {7, 0}, {-1, 0}, {2, 0}, {-1, 0}, {7, 0}};
  l0.gated_fusion = true;
  l0.learned_sinks = true;
  l0.sink_tokens = 2;
  l0.attn_logit_softcapping = 5;
  model::LayerConfig l1;
  l1.windows = {{3, 0}, {3, 0}, {5, 0}, {-1, 0}, {5, 0}, {3, 0}};
  l1.alibi = true;
  l1.gated_fusion = true;
  model::LayerConfig l2;
  l2.windows.assign(6, model::HeadWindow{4, 0});
  l2.rope_theta = 500.0;
  l2.learned_sinks = true;
  c.layers = {l0, l1, l2};
  return c;
}

// One layer of one global head whose output is zero (v_proj and the MLP are zero), so
// that the residual stream is the token's embedding: a one-hot row, made 16.2 by the final
// norm (sqrt(264)). lm_head gives the successor of each token that logit and every other
// token 0: greedy decoding follows the table, and so does sampling at temperature 1 but
// for a chance of about 258 e^-16.2 = 2.4e-5 per token.
inline model::ModelConfig BigramConfig() {
  model::ModelConfig c;
  c.vocab_size = 259;
  c.hidden_size = 264;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 1;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  c.intermediate_size = 8;
  c.tie_word_embeddings = false;
  model::LayerConfig layer;
  layer.windows = {{-1, 0}};
  c.layers = {layer};
  return c;
}

// `chains`: token sequences; each token's successor is the next token of its chain (a
// token may have one successor; a later chain overrides). Tokens without one are followed
// by EOS.
inline std::vector<float> BigramParams(const std::vector<std::vector<int32_t>>& chains) {
  const model::ModelConfig c = BigramConfig();
  const int64_t d = c.hidden_size, v = c.vocab_size;
  std::vector<int32_t> next(static_cast<size_t>(v), model::kEos);
  for (const std::vector<int32_t>& chain : chains) {
    for (size_t i = 0; i + 1 < chain.size(); ++i) next[chain[i]] = chain[i + 1];
  }
  std::vector<float> params(static_cast<size_t>(model::LayoutFloats(c)), 0.0f);
  for (const model::ParamInfo& p : model::ParameterLayout(c)) {
    float* w = params.data() + p.offset;
    if (p.name.find("norm") != std::string::npos) {
      for (int64_t i = 0; i < p.count; ++i) w[i] = 1.0f;
    } else if (p.name == "model.embed_tokens.weight") {
      for (int64_t t = 0; t < v; ++t) w[t * d + t] = 1.0f;  // [V, d]
    } else if (p.name == "lm_head.weight") {
      for (int64_t t = 0; t < v; ++t) w[next[t] * d + t] = 1.0f;  // [V, d]
    }
  }
  return params;
}

// The bytes of a string as tokens.
inline std::vector<int32_t> Bytes(const std::string& s) {
  std::vector<int32_t> t;
  for (char ch : s) t.push_back(static_cast<uint8_t>(ch));
  return t;
}

}  // namespace swa::generate_test
