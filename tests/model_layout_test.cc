// The parameter layout against the tensor list of docs/MODEL.md, written out by hand
// for a config that has every optional tensor, and the flat buffer's alignment.
#include <gtest/gtest.h>

#include <string>

#include "model/param_layout.h"

namespace swa::model {
namespace {

// d = 24, Hq = 4, Hkv = 2, D = 6, F = 40, V = 264, untied.
// Layer 0: learned sinks and gated fusion over windows {[7,0], [-1,0], [7,0], [2,0]}: G = 3.
// Layer 1: ALiBi, nothing optional.
ModelConfig EveryPartConfig() {
  ModelConfig c;
  c.vocab_size = 264;
  c.hidden_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 6;
  c.intermediate_size = 40;
  c.tie_word_embeddings = false;
  LayerConfig l0;
  l0.windows = {{7, 0}, {-1, 0}, {7, 0}, {2, 0}};
  l0.learned_sinks = true;
  l0.gated_fusion = true;
  LayerConfig l1;
  l1.windows.assign(4, HeadWindow{-1, 0});
  l1.alibi = true;
  c.layers = {l0, l1};
  return c;
}

struct Want {
  std::string name;
  std::vector<int64_t> shape;
  bool decay;
};

const std::vector<Want> kEveryPart = {
    {"model.embed_tokens.weight", {264, 24}, true},
    {"model.layers.0.input_layernorm.weight", {24}, false},
    {"model.layers.0.self_attn.q_proj.weight", {24, 24}, true},
    {"model.layers.0.self_attn.k_proj.weight", {12, 24}, true},
    {"model.layers.0.self_attn.v_proj.weight", {12, 24}, true},
    {"model.layers.0.self_attn.o_proj.weight", {24, 24}, true},
    {"model.layers.0.self_attn.sinks", {4}, false},
    {"model.layers.0.self_attn.gate.weight", {3, 24}, true},
    {"model.layers.0.self_attn.gate.bias", {3}, false},
    {"model.layers.0.post_attention_layernorm.weight", {24}, false},
    {"model.layers.0.mlp.gate_proj.weight", {40, 24}, true},
    {"model.layers.0.mlp.up_proj.weight", {40, 24}, true},
    {"model.layers.0.mlp.down_proj.weight", {24, 40}, true},
    {"model.layers.1.input_layernorm.weight", {24}, false},
    {"model.layers.1.self_attn.q_proj.weight", {24, 24}, true},
    {"model.layers.1.self_attn.k_proj.weight", {12, 24}, true},
    {"model.layers.1.self_attn.v_proj.weight", {12, 24}, true},
    {"model.layers.1.self_attn.o_proj.weight", {24, 24}, true},
    {"model.layers.1.post_attention_layernorm.weight", {24}, false},
    {"model.layers.1.mlp.gate_proj.weight", {40, 24}, true},
    {"model.layers.1.mlp.up_proj.weight", {40, 24}, true},
    {"model.layers.1.mlp.down_proj.weight", {24, 40}, true},
    {"model.norm.weight", {24}, false},
    {"lm_head.weight", {264, 24}, true},
};

TEST(ModelLayoutTest, EveryTensorOfTheDesignWithItsShape) {
  const std::vector<ParamInfo> layout = ParameterLayout(EveryPartConfig());
  ASSERT_EQ(layout.size(), kEveryPart.size());
  for (size_t i = 0; i < layout.size(); ++i) {
    EXPECT_EQ(layout[i].name, kEveryPart[i].name) << i;
    EXPECT_EQ(layout[i].shape, kEveryPart[i].shape) << kEveryPart[i].name;
    EXPECT_EQ(layout[i].decay, kEveryPart[i].decay) << kEveryPart[i].name;
    int64_t count = 1;
    for (int64_t e : kEveryPart[i].shape) count *= e;
    EXPECT_EQ(layout[i].count, count) << kEveryPart[i].name;
  }
}

TEST(ModelLayoutTest, OffsetsAreAlignedAndPacked) {
  const ModelConfig c = EveryPartConfig();
  const std::vector<ParamInfo> layout = ParameterLayout(c);
  int64_t end = 0, total = 0;
  for (const ParamInfo& p : layout) {
    EXPECT_EQ(p.offset % 16, 0) << p.name;
    EXPECT_GE(p.offset, end) << p.name << " overlaps the tensor before it";
    EXPECT_LT(p.offset, end + 16) << p.name << " leaves more padding than alignment needs";
    end = p.offset + p.count;
    total += p.count;
  }
  EXPECT_EQ(layout.front().offset, 0);
  // By hand: 2 * 264*24 + 24 + layer 0 (24 + 576 + 288 + 288 + 576 + 4 + 72 + 3 + 24 + 960 * 3)
  // + layer 1 (24 + 576 + 288 + 288 + 576 + 24 + 960 * 3).
  const int64_t want = 2 * 264 * 24 + 24 + (24 + 576 + 288 + 288 + 576 + 4 + 72 + 3 + 24 + 2880) +
                       (24 + 576 + 288 + 288 + 576 + 24 + 2880);
  EXPECT_EQ(total, want);
  EXPECT_EQ(ParameterCount(c), want);
  EXPECT_EQ(LayoutFloats(c) % 16, 0);
  EXPECT_GE(LayoutFloats(c), end);
  EXPECT_LT(LayoutFloats(c), end + 16);
  // Padding after the tensors whose counts are not multiples of 16: the five [24] norms
  // (8 each), sinks [4] (12), gate.weight [3, 24] (8) and gate.bias [3] (13).
  EXPECT_EQ(LayoutFloats(c), want + 5 * 8 + 12 + 8 + 13);
}

TEST(ModelLayoutTest, TiedEmbeddingsHaveNoLmHead) {
  ModelConfig c = EveryPartConfig();
  c.tie_word_embeddings = true;
  const std::vector<ParamInfo> layout = ParameterLayout(c);
  ASSERT_EQ(layout.size(), kEveryPart.size() - 1);
  EXPECT_EQ(layout.back().name, "model.norm.weight");
  EXPECT_EQ(ParameterCount(c), ParameterCount(EveryPartConfig()) - 264 * 24);
}

TEST(ModelLayoutTest, InvalidConfigIsRejected) {
  ModelConfig c = EveryPartConfig();
  c.layers[0].windows.pop_back();
  EXPECT_THROW(ParameterLayout(c), std::exception);
}

}  // namespace
}  // namespace swa::model
