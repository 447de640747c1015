// Evaluation (generate/evaluate.h) against the model's full forward: a document that fits
// the evaluation length is scored exactly as Model::Loss scores it; on a one-layer model
// (whose keys carry no context of their own) a shorter evaluation length equals
// recomputing every prediction from the last C tokens alone; the recall probe counts what
// it says it counts and repeats itself.
#include "generate/evaluate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/parallel.h"
#include "generate_test_util.h"
#include "model/model.h"
#include "model/presets.h"

namespace swa::generate {
namespace {

using generate_test::EveryFeatureConfig;
using generate_test::RandomParams;

std::vector<uint8_t> RandomText(uint64_t seed, int64_t n) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> text(n);
  for (uint8_t& b : text) b = static_cast<uint8_t>(32 + rng() % 95);
  return text;
}

// Summed -log p of every byte of `doc` under the full forward over BOS + doc.
double FullForwardNats(const model::Model& m, const std::vector<float>& params,
                       const std::vector<uint8_t>& doc) {
  std::vector<int32_t> tokens = {model::kBos}, targets;
  for (uint8_t b : doc) {
    targets.push_back(b);
    tokens.push_back(b);
  }
  tokens.pop_back();
  const std::vector<int32_t> cu = {0, static_cast<int32_t>(tokens.size())};
  ThreadPool pool;
  model::Workspace<float> ws;
  int64_t count = 0;
  const double loss = m.Loss(
      params.data(), {tokens.data(), targets.data(), static_cast<int64_t>(tokens.size()), cu.data(), 1},
      static_cast<float*>(nullptr), &ws, pool, &count);
  return loss * static_cast<double>(count);
}

TEST(EvaluateTest, DocumentsWithinTheLengthScoreAsTheFullForward) {
  std::vector<std::pair<std::string, model::ModelConfig>> configs = {{"every_feature", EveryFeatureConfig()}};
  for (const std::string& name : model::PresetNames())
    configs.emplace_back(name, model::Preset(name, model::PresetSize::Tiny()));
  for (const auto& [preset, config] : configs) {
    const model::Model m(config, 1);
    const std::vector<float> params = RandomParams(m.config(), 3);
    const std::vector<uint8_t> a = RandomText(4, 70), b = RandomText(5, 33);
    const std::vector<std::span<const uint8_t>> docs = {a, b};
    // Pieces of 16 tokens through the caches, lengths at and far beyond the documents.
    const std::vector<ContextScore> scores = ScoreDocuments(m.config(), params, docs, {70, 1000}, 16, 1, {});
    const double want = FullForwardNats(m, params, a) + FullForwardNats(m, params, b);
    for (const ContextScore& s : scores) {
      EXPECT_EQ(s.bytes, 103);
      EXPECT_NEAR(s.nats, want, 2e-5 * want) << preset << " context " << s.context;
      EXPECT_NEAR(s.bits_per_byte(), want / 103 / std::log(2.0), 2e-5 * want) << preset;
    }
  }
}

TEST(EvaluateTest, OneLayerModelAtAShortLengthIsTheTruncatedRecompute) {
  model::ModelConfig c = model::Preset("mixed_gated", model::PresetSize::Tiny());
  c.num_hidden_layers = 1;
  c.layers.resize(1);
  const model::Model m(c, 1);
  const std::vector<float> params = RandomParams(m.config(), 7);
  const std::vector<uint8_t> doc = RandomText(8, 60);
  const int64_t context = 13;
  const std::vector<ContextScore> scores = ScoreDocuments(m.config(), params, {doc}, {context}, 8, 1, {});
  // Byte t predicted from the last `context` tokens of BOS + doc[0, t), recomputed alone.
  std::vector<int32_t> tokens = {model::kBos};
  for (uint8_t b : doc) tokens.push_back(b);
  double want = 0;
  ThreadPool pool;
  model::Workspace<float> ws;
  for (size_t t = 0; t < doc.size(); ++t) {
    const size_t begin = t + 1 > static_cast<size_t>(context) ? t + 1 - context : 0;
    const std::vector<int32_t> window(tokens.begin() + begin, tokens.begin() + t + 1);
    const std::vector<int32_t> target(window.size(), model::kPad);
    std::vector<int32_t> targets = target;
    targets.back() = doc[t];
    const std::vector<int32_t> cu = {0, static_cast<int32_t>(window.size())};
    want += m.Loss(params.data(),
                   {window.data(), targets.data(), static_cast<int64_t>(window.size()), cu.data(), 1},
                   static_cast<float*>(nullptr), &ws, pool);
  }
  EXPECT_NEAR(scores[0].nats, want, 2e-5 * want);
  // And it differs from the full-context score: the cut is real.
  EXPECT_GT(std::abs(scores[0].nats - FullForwardNats(m, params, doc)), 1e-3);
}

TEST(EvaluateTest, RecallProbeCountsItsPredictionsAndRepeats) {
  const model::Model m(model::Preset("local_global", model::PresetSize::Tiny()), 1);
  const std::vector<float> params = RandomParams(m.config(), 9);
  const std::vector<RecallScore> a = RecallProbe(m.config(), params, {4, 40}, 5, 12, {}, 1, 3);
  const std::vector<RecallScore> b = RecallProbe(m.config(), params, {4, 40}, 5, 12, {}, 1, 3);
  ASSERT_EQ(a.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].predicted, 5 * 6);
    EXPECT_EQ(a[i].right, b[i].right);
    EXPECT_GE(a[i].accuracy(), 0.0);
    EXPECT_LE(a[i].accuracy(), 1.0);
  }
  EXPECT_EQ(WidestLocalWindow(m.config()), 8);
  EXPECT_THROW(ScoreDocuments(m.config(), params, {}, {-1}, 16, 1, {}), Error);
}

}  // namespace
}  // namespace swa::generate
