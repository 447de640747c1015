// Checkpoints: every preset saved and loaded in f32 (bit-exact) and bf16 (equal to an
// independent rounding), the file readable as plain safetensors under the design's names,
// and each way a checkpoint can be wrong reported with the file and tensor named.
#include "model/checkpoint.h"

#include <gtest/gtest.h>

#include <random>

#include "model/param_layout.h"
#include "model/presets.h"
#include "model_io_test_util.h"

namespace swa::model {
namespace {

using swa::testing::BF16Value;
using swa::testing::Bits;
using swa::testing::ErrorOf;
using swa::testing::PlainBF16;
using swa::testing::ScratchDir;

// A flat buffer with random values in the tensors and zeros in the padding.
std::vector<float> RandomParams(const ModelConfig& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> params(LayoutFloats(c), 0.0f);
  for (const ParamInfo& p : ParameterLayout(c)) {
    for (int64_t i = 0; i < p.count; ++i) params[p.offset + i] = normal(rng);
  }
  return params;
}

ModelConfig Untied(ModelConfig c) {
  c.tie_word_embeddings = false;
  return c;
}

TEST(CheckpointTest, F32RoundTripIsBitExact) {
  ScratchDir dir;
  std::vector<ModelConfig> configs;
  for (const std::string& name : PresetNames()) configs.push_back(Preset(name, PresetSize::Tiny()));
  configs.push_back(Untied(Preset("mixed_gated", PresetSize::Tiny())));
  for (size_t k = 0; k < configs.size(); ++k) {
    const std::string path = dir.File("ckpt" + std::to_string(k) + ".safetensors");
    const std::vector<float> params = RandomParams(configs[k], k);
    SaveCheckpoint(path, configs[k], params.data(), StoredDType::kF32);
    const Checkpoint back = LoadCheckpoint(path);
    EXPECT_TRUE(back.config == configs[k]) << k;
    ASSERT_EQ(back.params.size(), params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      ASSERT_EQ(Bits(back.params[i]), Bits(params[i])) << k << " " << i;
    }
  }
}

TEST(CheckpointTest, Bf16RoundTripRoundsEachValue) {
  ScratchDir dir;
  const ModelConfig c = Untied(Preset("banded_sinks", PresetSize::Tiny()));
  const std::vector<float> params = RandomParams(c, 7);
  const std::string path = dir.File("bf16.safetensors");
  SaveCheckpoint(path, c, params.data(), StoredDType::kBF16);
  const Checkpoint back = LoadCheckpoint(path);
  ASSERT_EQ(back.params.size(), params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_EQ(Bits(back.params[i]), Bits(BF16Value(PlainBF16(params[i])))) << i;
  }
}

TEST(CheckpointTest, FileIsPlainSafetensorsWithTheDesignNames) {
  ScratchDir dir;
  const ModelConfig c = Preset("mixed_gated", PresetSize::Tiny());
  const std::vector<float> params = RandomParams(c, 3);
  const std::string path = dir.File("plain.safetensors");
  SaveCheckpoint(path, c, params.data(), StoredDType::kF32);
  const SafetensorsReader r = SafetensorsReader::Open(path);
  EXPECT_EQ(r.metadata().at("format"), "pt");
  EXPECT_TRUE(ParseConfig(r.metadata().at("config")) == c);
  // Tiny: d 32, 6 heads of 8 over 2 kv heads, F 64, 3 layers of 3 window groups, tied.
  const TensorInfo* q = r.Find("model.layers.2.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{48, 32}));
  EXPECT_EQ(r.Find("model.layers.0.self_attn.k_proj.weight")->shape, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(r.Find("model.layers.1.self_attn.gate.weight")->shape, (std::vector<int64_t>{3, 32}));
  EXPECT_EQ(r.Find("model.layers.1.mlp.down_proj.weight")->shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(r.Find("model.embed_tokens.weight")->shape, (std::vector<int64_t>{259, 32}));
  EXPECT_EQ(r.Find("lm_head.weight"), nullptr);
  EXPECT_EQ(r.names().size(), 2 + 3 * 11u);
  // Values are those of the flat buffer at the layout's offset.
  for (const ParamInfo& p : ParameterLayout(c)) {
    std::vector<float> got(p.count);
    r.ReadF32(p.name, got.data(), p.count);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), params.begin() + p.offset)) << p.name;
  }
}

// A checkpoint of `c` written tensor by tensor, with `edit` applied to the tensor list.
void WriteEdited(const std::string& path, const ModelConfig& c, const std::vector<float>& params,
                 const std::map<std::string, std::string>& metadata,
                 const std::function<void(std::vector<TensorToWrite>&)>& edit) {
  std::vector<TensorToWrite> tensors;
  for (const ParamInfo& p : ParameterLayout(c)) {
    tensors.push_back({p.name, StoredDType::kF32, p.shape, params.data() + p.offset});
  }
  edit(tensors);
  WriteSafetensors(path, metadata, tensors);
}

TEST(CheckpointTest, ErrorsNameTheFileAndTheTensor) {
  ScratchDir dir;
  const ModelConfig c = Preset("uniform", PresetSize::Tiny());
  const std::vector<float> params = RandomParams(c, 5);
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"config", ConfigToJson(c)}};
  const std::string path = dir.File("bad.safetensors");
  const auto keep = [](std::vector<TensorToWrite>&) {};
  struct Case {
    std::map<std::string, std::string> metadata;
    std::function<void(std::vector<TensorToWrite>&)> edit;
    std::string want;
  };
  std::string broken = ConfigToJson(c);
  broken.replace(broken.find("\"head_dim\":8"), 12, "\"head_dim\":7");
  const std::vector<float> extra(4, 0.0f);
  const Case cases[] = {
      {meta, keep, ""},
      {{{"format", "pt"}}, keep, "no model config (__metadata__[\"config\"] is missing)"},
      {{{"config", "{\"vocab_size\": 259"}},
       keep,
       "invalid model config in __metadata__[\"config\"]: config: invalid JSON"},
      {{{"config", broken}},
       keep,
       "invalid model config in __metadata__[\"config\"]: head_dim (7) must be even"},
      {meta, [](auto& t) { t.erase(t.begin() + 3); },
       "missing tensor \"model.layers.0.self_attn.k_proj.weight\" (shape [16, 32])"},
      {meta,
       [](auto& t) {
         t[2].shape = {32, 48};
       },
       "tensor \"model.layers.0.self_attn.q_proj.weight\" has shape [32, 48], the config needs [48, 32]"},
      {meta,
       [&](auto& t) {
         t.push_back({"lm_head.weight", StoredDType::kF32, {4}, extra.data()});
       },
       "unexpected tensor \"lm_head.weight\""},
  };
  for (const Case& k : cases) {
    WriteEdited(path, c, params, k.metadata, k.edit);
    const std::string msg = ErrorOf([&] { LoadCheckpoint(path); });
    if (k.want.empty()) {
      EXPECT_EQ(msg, "(no error)");
      continue;
    }
    EXPECT_EQ(msg.find(path + ": "), 0u) << msg;
    EXPECT_NE(msg.find(k.want), std::string::npos) << "want " << k.want << "\ngot  " << msg;
  }
  EXPECT_NE(ErrorOf([&] { SaveCheckpoint(path, c, params.data(), StoredDType::kF16); }).find("F32 or BF16"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] { SaveCheckpoint(path, c, nullptr, StoredDType::kF32); }).find("params is null"),
            std::string::npos);
}

}  // namespace
}  // namespace swa::model
