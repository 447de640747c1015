// The presets: each one's window pattern as documented in presets.h, spelt out per layer
// and head, and the default size's parameter count from the tensor list of
// docs/MODEL.md.
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "model/param_layout.h"
#include "model/presets.h"

namespace swa::model {
namespace {

constexpr HeadWindow kGlobal{-1, 0};

void ExpectAllHeads(const LayerConfig& layer, HeadWindow want, const std::string& what) {
  for (size_t h = 0; h < layer.windows.size(); ++h) {
    EXPECT_EQ(layer.windows[h], want) << what << " head " << h;
  }
}

TEST(ModelPresetsTest, SharedFields) {
  for (const std::string& name : PresetNames()) {
    const ModelConfig c = Preset(name);
    EXPECT_EQ(c.vocab_size, 259) << name;
    EXPECT_EQ(c.hidden_size, 384) << name;
    EXPECT_EQ(c.num_hidden_layers, 6) << name;
    EXPECT_EQ(c.num_attention_heads, 6) << name;
    EXPECT_EQ(c.num_key_value_heads, 2) << name;
    EXPECT_EQ(c.head_dim, 64) << name;
    EXPECT_EQ(c.intermediate_size, 1024) << name;
    EXPECT_TRUE(c.tie_word_embeddings) << name;
    EXPECT_EQ(c.rope_theta, 10000.0) << name;
    for (const LayerConfig& l : c.layers) EXPECT_FALSE(l.alibi) << name;
  }
  EXPECT_EQ(PresetNames(),
            (std::vector<std::string>{"full", "uniform", "local_global", "banded_sinks", "mixed_gated"}));
}

TEST(ModelPresetsTest, DefaultSizeHasAboutTenMillionParameters) {
  // V d + L (d + Hq D d + 2 Hkv D d + d Hq D + d + 3 F d) + d, tied: 99,456 + 6 * 1,573,632 + 384.
  const int64_t want =
      259 * 384 + 6 * (384 + 384 * 384 + 2 * 128 * 384 + 384 * 384 + 384 + 3 * 1024 * 384) + 384;
  EXPECT_EQ(want, 9541632);
  EXPECT_EQ(ParameterCount(Preset("uniform")), want);
  EXPECT_EQ(ParameterCount(Preset("full")), want);
}

TEST(ModelPresetsTest, NamedSizes) {
  // small: V d + L (d + Hq D d + 2 Hkv D d + d Hq D + d + 3 F d) + d with d 192, 4 layers,
  // 6 heads of 32 over 2 kv heads, F 512, tied.
  const int64_t want =
      259 * 192 + 4 * (192 + 192 * 192 + 2 * 64 * 192 + 192 * 192 + 192 + 3 * 512 * 192) + 192;
  EXPECT_EQ(ParameterCount(Preset("uniform", PresetSize::Named("small"))), want);
  for (const LayerConfig& l : Preset("uniform", PresetSize::Named("small")).layers) {
    ExpectAllHeads(l, HeadWindow{63, 0}, "uniform small");
  }
  EXPECT_EQ(ParameterCount(Preset("full", PresetSize::Named("default"))), 9541632);
  EXPECT_EQ(Preset("full", PresetSize::Named("tiny")).hidden_size, 32);
  EXPECT_THROW(PresetSize::Named("huge"), Error);
}

TEST(ModelPresetsTest, FullAndUniform) {
  for (const LayerConfig& l : Preset("full").layers) ExpectAllHeads(l, kGlobal, "full");
  for (const LayerConfig& l : Preset("uniform").layers) ExpectAllHeads(l, HeadWindow{255, 0}, "uniform");
  for (const LayerConfig& l : Preset("uniform", PresetSize::Tiny()).layers) {
    ExpectAllHeads(l, HeadWindow{7, 0}, "uniform tiny");
    EXPECT_FALSE(l.learned_sinks || l.gated_fusion);
  }
}

TEST(ModelPresetsTest, LocalGlobalIsFiveToOne) {
  PresetSize size;
  size.layers = 12;
  const ModelConfig c = Preset("local_global", size);
  for (int i = 0; i < 12; ++i) {
    const bool global = i == 5 || i == 11;
    ExpectAllHeads(c.layers[i], global ? kGlobal : HeadWindow{255, 0}, "layer " + std::to_string(i));
  }
  // Fewer than six layers: the last one is global.
  const ModelConfig tiny = Preset("local_global", PresetSize::Tiny());
  ExpectAllHeads(tiny.layers[0], HeadWindow{7, 0}, "tiny layer 0");
  ExpectAllHeads(tiny.layers[1], HeadWindow{7, 0}, "tiny layer 1");
  ExpectAllHeads(tiny.layers[2], kGlobal, "tiny layer 2");
  size.layers = 1;
  ExpectAllHeads(Preset("local_global", size).layers[0], kGlobal, "single layer");
}

TEST(ModelPresetsTest, BandedSinksAlternate) {
  const ModelConfig c = Preset("banded_sinks");
  for (int i = 0; i < 6; ++i) {
    ExpectAllHeads(c.layers[i], i % 2 == 0 ? HeadWindow{255, 0} : kGlobal, "layer " + std::to_string(i));
    EXPECT_TRUE(c.layers[i].learned_sinks) << i;
    EXPECT_FALSE(c.layers[i].gated_fusion) << i;
  }
}

TEST(ModelPresetsTest, MixedGatedSplitsHeads) {
  for (const LayerConfig& l : Preset("mixed_gated").layers) {
    EXPECT_EQ(l.windows, (std::vector<HeadWindow>{{63, 0}, {63, 0}, {255, 0}, {255, 0}, kGlobal, kGlobal}));
    EXPECT_TRUE(l.gated_fusion);
    int groups = 0;
    EXPECT_EQ(GateGroups(l, &groups), (std::vector<int>{0, 0, 1, 1, 2, 2}));
    EXPECT_EQ(groups, 3);
  }
  PresetSize size;
  size.heads = 8;
  size.kv_heads = 4;
  size.window = 2;  // narrow = max(1, 2 / 4) = 1 token: [0, 0]
  EXPECT_EQ(Preset("mixed_gated", size).layers[0].windows,
            (std::vector<HeadWindow>{{0, 0}, {0, 0}, {1, 0}, {1, 0}, kGlobal, kGlobal, kGlobal, kGlobal}));
}

TEST(ModelPresetsTest, BadNamesAndSizesAreErrors) {
  try {
    Preset("mistral");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("unknown preset \"mistral\" (known presets: full, uniform, local_global, "
                                   "banded_sinks, mixed_gated)"),
        std::string::npos)
        << e.what();
  }
  PresetSize two_heads;
  two_heads.heads = 2;
  EXPECT_THROW(Preset("mixed_gated", two_heads), Error);
  EXPECT_NO_THROW(Preset("uniform", two_heads));
  PresetSize bad_gqa;
  bad_gqa.kv_heads = 4;  // 6 heads
  EXPECT_THROW(Preset("full", bad_gqa), Error);
  PresetSize no_window;
  no_window.window = 0;
  EXPECT_THROW(Preset("uniform", no_window), Error);
  PresetSize huge;
  huge.layers = int64_t{1} << 40;
  EXPECT_THROW(Preset("full", huge), Error);
}

}  // namespace
}  // namespace swa::model
