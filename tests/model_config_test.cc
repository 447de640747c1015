// The model config: JSON parsing against hand-written texts, exact round trips, one test
// per validation rule (checking the message names the field), gate groups and ALiBi slopes
// against values worked out by hand, and the presets' window patterns.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "common/error.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "model/presets.h"

namespace swa::model {
namespace {

// A two-layer config in the JSON of docs/MODEL.md, every optional field given.
const char* kFullJson = R"({
  "vocab_size": 264, "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 12, "intermediate_size": 96, "rms_norm_eps": 1e-6,
  "rope_theta": 500000, "tie_word_embeddings": true, "final_logit_softcapping": 30.0,
  "layers": [
    {"windows": [[15, 0], [15, 0], [-1, 0], [3, 0]], "rope_theta": 10000.0, "sink_tokens": 4,
     "learned_sinks": true, "attn_logit_softcapping": 50, "alibi": false, "gated_fusion": true},
    {"windows": [[-1, 0], [-1, 0], [-1, 0], [-1, 0]], "alibi": true}
  ]
})";

// Only the required fields.
const char* kMinimalJson = R"({"vocab_size": 259, "hidden_size": 8, "num_hidden_layers": 1,
  "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "intermediate_size": 16,
  "layers": [{"windows": [[7, 0], [-1, 0]]}]})";

std::string ErrorOf(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string ReplaceOnce(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(ModelConfigTest, ParsesEveryField) {
  const ModelConfig c = ParseConfig(kFullJson);
  EXPECT_EQ(c.vocab_size, 264);
  EXPECT_EQ(c.hidden_size, 48);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 12);
  EXPECT_EQ(c.intermediate_size, 96);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.final_logit_softcapping, 30.0f);
  ASSERT_EQ(c.layers.size(), 2u);
  const LayerConfig& l0 = c.layers[0];
  ASSERT_EQ(l0.windows.size(), 4u);
  EXPECT_EQ(l0.windows[0], (HeadWindow{15, 0}));
  EXPECT_EQ(l0.windows[2], (HeadWindow{-1, 0}));
  EXPECT_EQ(l0.windows[3], (HeadWindow{3, 0}));
  ASSERT_TRUE(l0.rope_theta.has_value());
  EXPECT_EQ(*l0.rope_theta, 10000.0);
  EXPECT_EQ(l0.sink_tokens, 4);
  EXPECT_TRUE(l0.learned_sinks);
  EXPECT_EQ(l0.attn_logit_softcapping, 50.0f);
  EXPECT_FALSE(l0.alibi);
  EXPECT_TRUE(l0.gated_fusion);
  const LayerConfig& l1 = c.layers[1];
  EXPECT_TRUE(l1.alibi);
  EXPECT_FALSE(l1.rope_theta.has_value());
  EXPECT_EQ(l1.sink_tokens, 0);
  EXPECT_FALSE(l1.learned_sinks);
  EXPECT_FALSE(l1.gated_fusion);
  EXPECT_EQ(LayerRopeTheta(c, l0), 10000.0);
  EXPECT_EQ(LayerRopeTheta(c, l1), 500000.0);
}

TEST(ModelConfigTest, AbsentFieldsTakeLlamaDefaults) {
  const ModelConfig c = ParseConfig(kMinimalJson);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.final_logit_softcapping, 0.0f);
  const LayerConfig& l = c.layers[0];
  EXPECT_EQ(l.windows, (std::vector<HeadWindow>{{7, 0}, {-1, 0}}));
  EXPECT_FALSE(l.rope_theta.has_value());
  EXPECT_EQ(l.sink_tokens, 0);
  EXPECT_FALSE(l.learned_sinks);
  EXPECT_EQ(l.attn_logit_softcapping, 0.0f);
  EXPECT_FALSE(l.alibi);
  EXPECT_FALSE(l.gated_fusion);
}

TEST(ModelConfigTest, NullLayerRopeThetaMeansUnset) {
  const ModelConfig c =
      ParseConfig(ReplaceOnce(kMinimalJson, "{\"windows\"", "{\"rope_theta\": null, \"windows\""));
  EXPECT_FALSE(c.layers[0].rope_theta.has_value());
  EXPECT_THROW(
      ParseConfig(ReplaceOnce(kMinimalJson, "\"head_dim\": 4", "\"head_dim\": 4, \"rope_theta\": null")),
      Error);
}

TEST(ModelConfigTest, JsonRoundTripsExactly) {
  std::vector<ModelConfig> configs = {ParseConfig(kFullJson), ParseConfig(kMinimalJson)};
  for (const std::string& name : PresetNames()) {
    configs.push_back(Preset(name));
    configs.push_back(Preset(name, PresetSize::Tiny()));
  }
  // Values with no short decimal form must survive too.
  ModelConfig odd = ParseConfig(kFullJson);
  odd.rms_norm_eps = 1.0 / 3.0 * 1e-5;
  odd.rope_theta = std::nextafter(10000.0, 1e9);
  odd.final_logit_softcapping = 0.1f;
  odd.layers[0].attn_logit_softcapping = std::nextafter(30.0f, 100.0f);
  odd.layers[1].rope_theta = 1e6 + 0.1;
  configs.push_back(odd);
  for (const ModelConfig& c : configs) {
    const std::string text = ConfigToJson(c);
    const ModelConfig back = ParseConfig(text);
    EXPECT_TRUE(back == c) << text;
    EXPECT_EQ(ConfigToJson(back), text);
  }
}

TEST(ModelConfigTest, WritesKeysInTheDesignOrder) {
  const std::string text = ConfigToJson(ParseConfig(kMinimalJson));
  const char* keys[] = {"\"vocab_size\"",
                        "\"hidden_size\"",
                        "\"num_hidden_layers\"",
                        "\"num_attention_heads\"",
                        "\"num_key_value_heads\"",
                        "\"head_dim\"",
                        "\"intermediate_size\"",
                        "\"rms_norm_eps\"",
                        "\"rope_theta\"",
                        "\"tie_word_embeddings\"",
                        "\"final_logit_softcapping\"",
                        "\"layers\"",
                        "\"windows\"",
                        "\"sink_tokens\"",
                        "\"learned_sinks\"",
                        "\"attn_logit_softcapping\"",
                        "\"alibi\"",
                        "\"gated_fusion\""};
  size_t last = 0;
  for (const char* key : keys) {
    const size_t at = text.find(key);
    ASSERT_NE(at, std::string::npos) << key << " in " << text;
    EXPECT_GT(at, last) << key << " out of order in " << text;
    last = at;
  }
  EXPECT_NE(text.find("\"windows\":[[7,0],[-1,0]]"), std::string::npos) << text;
  // An unset per-layer rope_theta is not written (the model's applies).
  EXPECT_EQ(text.find("rope_theta"), text.rfind("rope_theta")) << text;
}

TEST(ModelConfigTest, RejectsUnknownKeysNamingThem) {
  std::string msg = ErrorOf([] { ParseConfig(ReplaceOnce(kMinimalJson, "\"windows\"", "\"windos\"")); });
  EXPECT_NE(msg.find("unknown key \"windos\" in layers[0]"), std::string::npos) << msg;
  msg = ErrorOf([] { ParseConfig(ReplaceOnce(kMinimalJson, "\"head_dim\"", "\"head_dims\"")); });
  EXPECT_NE(msg.find("unknown key \"head_dims\""), std::string::npos) << msg;
  msg = ErrorOf(
      [] { ParseConfig(ReplaceOnce(kFullJson, "\"alibi\": true", "\"alibi\": true, \"sliding\": 1")); });
  EXPECT_NE(msg.find("unknown key \"sliding\" in layers[1]"), std::string::npos) << msg;
}

TEST(ModelConfigTest, RejectsMalformedJsonNamingTheField) {
  struct Case {
    std::string json, want;
  };
  const std::string m = kMinimalJson;
  const Case cases[] = {
      {ReplaceOnce(m, "\"head_dim\": 4,", ""), "missing required field head_dim"},
      {ReplaceOnce(m, "\"layers\"", "\"layer_list\""), "unknown key \"layer_list\""},
      {ReplaceOnce(m, "{\"windows\": [[7, 0], [-1, 0]]}", "{}"), "missing required field layers[0].windows"},
      {ReplaceOnce(m, "\"hidden_size\": 8", "\"hidden_size\": 8.0"), "hidden_size must be an integer"},
      {ReplaceOnce(m, "\"hidden_size\": 8", "\"hidden_size\": \"8\""), "hidden_size must be an integer"},
      {ReplaceOnce(m, "\"hidden_size\": 8", "\"hidden_size\": 18446744073709551615"),
       "hidden_size (18446744073709551615) does not fit"},
      {ReplaceOnce(m, "[[7, 0]", "[[7, 0, 1]"), "layers[0].windows[0] must be a [left, right] pair"},
      {ReplaceOnce(m, "[[7, 0]", "[[7.5, 0]"), "layers[0].windows[0][0] must be an integer"},
      {ReplaceOnce(m, "\"windows\": [[7, 0], [-1, 0]]", "\"windows\": 3"),
       "layers[0].windows must be a list"},
      {ReplaceOnce(m, "{\"windows\"", "{\"alibi\": 1, \"windows\""), "layers[0].alibi must be true or false"},
      {ReplaceOnce(m, "\"head_dim\": 4", "\"head_dim\": 4, \"rope_theta\": \"big\""),
       "rope_theta must be a number"},
      {ReplaceOnce(m, "\"head_dim\": 4", "\"head_dim\": 4, \"head_dim\": 6"), "duplicate key \"head_dim\""},
      {ReplaceOnce(m, "\"layers\": [", "\"layers\": [,"), "config: invalid JSON"},
      {"[1, 2]", "config must be a JSON object"},
      {"{\"vocab_size\": 259", "config: invalid JSON"},
      {ReplaceOnce(m, "[[7, 0]", "[[[[[[[7]]]]]], 0]"), "nested deeper"},
  };
  for (const Case& c : cases) {
    const std::string msg = ErrorOf([&] { ParseConfig(c.json); });
    EXPECT_NE(msg.find(c.want), std::string::npos) << "want \"" << c.want << "\", got: " << msg;
  }
}

TEST(ModelConfigTest, EachValidationRuleNamesTheFieldAndWhy) {
  struct Case {
    std::function<void(ModelConfig&)> spoil;
    std::string want;
  };
  const Case cases[] = {
      {[](ModelConfig& c) { c.layers[1].windows.resize(2); },
       "layers[1].windows has 2 entries but num_attention_heads is 4"},
      {[](ModelConfig& c) { c.num_key_value_heads = 3; },
       "num_attention_heads (4) must be divisible by num_key_value_heads (3)"},
      {[](ModelConfig& c) { c.head_dim = 11; }, "head_dim (11) must be even for RoPE (layer 0 uses RoPE)"},
      {[](ModelConfig& c) {
         c.head_dim = 11;
         c.layers[0].alibi = true;
         c.layers[1].alibi = false;
       },
       "head_dim (11) must be even for RoPE (layer 1 uses RoPE)"},
      {[](ModelConfig& c) { c.vocab_size = 258; }, "vocab_size (258) must be in [259,"},
      {[](ModelConfig& c) { c.vocab_size = kMaxVocab + 1; }, "vocab_size (16777217) must be in"},
      {[](ModelConfig& c) { c.hidden_size = 0; }, "hidden_size (0) must be in [1, 65536]"},
      {[](ModelConfig& c) { c.hidden_size = int64_t{1} << 40; }, "hidden_size (1099511627776) must be in"},
      {[](ModelConfig& c) { c.num_hidden_layers = -2; }, "num_hidden_layers (-2) must be in [1,"},
      {[](ModelConfig& c) { c.num_attention_heads = 0; }, "num_attention_heads (0) must be in [1,"},
      {[](ModelConfig& c) { c.num_key_value_heads = 0; }, "num_key_value_heads (0) must be in [1,"},
      {[](ModelConfig& c) { c.head_dim = 512; }, "head_dim (512) must be in [1, 256]"},
      {[](ModelConfig& c) { c.intermediate_size = 0; }, "intermediate_size (0) must be in [1,"},
      {[](ModelConfig& c) {
         c.layers[0].windows[3] = {-2, 0};
       },
       "layers[0].windows[3] = [-2, 0]: entries must be >= -1"},
      {[](ModelConfig& c) {
         c.layers[1].windows[0] = {5, -3};
       },
       "layers[1].windows[0] = [5, -3]: entries must be >= -1"},
      {[](ModelConfig& c) { c.rms_norm_eps = 0; }, "rms_norm_eps (0) must be finite and > 0"},
      {[](ModelConfig& c) { c.rms_norm_eps = NAN; }, "rms_norm_eps (nan) must be finite and > 0"},
      {[](ModelConfig& c) { c.rope_theta = 1.0; }, "rope_theta (1) must be finite and > 1"},
      {[](ModelConfig& c) { c.rope_theta = INFINITY; }, "rope_theta (inf) must be finite and > 1"},
      {[](ModelConfig& c) { c.layers[0].rope_theta = 0.5; },
       "layers[0].rope_theta (0.5) must be finite and > 1"},
      {[](ModelConfig& c) { c.final_logit_softcapping = -1; },
       "final_logit_softcapping (-1) must be finite and >= 0"},
      {[](ModelConfig& c) { c.layers[1].attn_logit_softcapping = INFINITY; },
       "layers[1].attn_logit_softcapping (inf) must be finite and >= 0"},
      {[](ModelConfig& c) { c.layers[0].sink_tokens = -1; }, "layers[0].sink_tokens (-1) must be >= 0"},
      {[](ModelConfig& c) { c.layers.pop_back(); }, "layers has 1 entries but num_hidden_layers is 2"},
  };
  const ModelConfig good = ParseConfig(kFullJson);
  EXPECT_NO_THROW(ValidateConfig(good));
  for (const Case& c : cases) {
    ModelConfig bad = good;
    c.spoil(bad);
    const std::string msg = ErrorOf([&] { ValidateConfig(bad); });
    EXPECT_NE(msg.find(c.want), std::string::npos) << "want \"" << c.want << "\", got: " << msg;
  }
  // Odd head_dim is fine when every layer uses ALiBi (no RoPE anywhere).
  ModelConfig alibi = good;
  alibi.head_dim = 11;
  for (LayerConfig& l : alibi.layers) l.alibi = true;
  EXPECT_NO_THROW(ValidateConfig(alibi));
  // ParseConfig validates: a bad value in the text is reported the same way.
  const std::string msg =
      ErrorOf([] { ParseConfig(ReplaceOnce(kMinimalJson, "\"head_dim\": 4", "\"head_dim\": 33")); });
  EXPECT_NE(msg.find("head_dim (33) must be even for RoPE (layer 0 uses RoPE)"), std::string::npos) << msg;
}

TEST(ModelConfigTest, GateGroupsNumberWindowsByFirstHead) {
  LayerConfig layer;
  layer.windows = {{3, 0}, {-1, 0}, {3, 0}, {7, 0}, {-1, 0}, {7, 0}, {3, 1}, {3, 0}};
  int groups = -1;
  EXPECT_EQ(GateGroups(layer, &groups), (std::vector<int>{0, 1, 0, 2, 1, 2, 3, 0}));
  EXPECT_EQ(groups, 4);
  layer.windows.assign(5, HeadWindow{255, 0});
  EXPECT_EQ(GateGroups(layer, &groups), (std::vector<int>(5, 0)));
  EXPECT_EQ(groups, 1);
  layer.windows = {{-1, 0}, {0, 0}, {1, 0}};
  EXPECT_EQ(GateGroups(layer, nullptr), (std::vector<int>{0, 1, 2}));
}

TEST(ModelConfigTest, AlibiSlopesArePowersOfTwo) {
  // hq = 8: 2^-1, 2^-2, ..., 2^-8 exactly.
  for (int h = 0; h < 8; ++h) EXPECT_EQ(AlibiSlope(h, 8), 1.0f / static_cast<float>(1 << (h + 1))) << h;
  // hq = 4: 2^-2, 2^-4, 2^-6, 2^-8.
  EXPECT_EQ(AlibiSlope(0, 4), 0.25f);
  EXPECT_EQ(AlibiSlope(3, 4), 1.0f / 256);
  // hq = 3: 2^(-8/3) = 0.15749013123685915...
  EXPECT_NEAR(AlibiSlope(0, 3), 0.15749013123685915, 1e-7);
}

TEST(ModelConfigTest, TokenConstants) {
  EXPECT_EQ(kBos, 256);
  EXPECT_EQ(kEos, 257);
  EXPECT_EQ(kPad, 258);
  EXPECT_EQ(kMinVocab, 259);
}

}  // namespace
}  // namespace swa::model
