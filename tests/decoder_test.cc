// The cached decoder (src/generate/decoder.h) against model::Model::Logits, which runs the
// whole sequence through the training forward: the logits of every position of a prompt
// longer than the windows and the prefill chunk, fed in one call or several, and greedy
// generation of 45 tokens, on a tiny random model of every preset and on a config with
// every feature. StreamingLLM: exact up to S + W positions, bounded memory after, and
// each position's logits equal to a full forward over the sinks and the window.
#include "generate/decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/parallel.h"
#include "generate/layer_cache.h"
#include "generate_test_util.h"
#include "model/model.h"
#include "model/presets.h"

namespace swa::generate {
namespace {

using generate_test::EveryFeatureConfig;
using generate_test::RandomParams;
using model::ModelConfig;

// The full forward's logits [n, V] of one sequence.
std::vector<float> FullLogits(const ModelConfig& config, const std::vector<float>& params,
                              const std::vector<int32_t>& tokens) {
  const model::Model m(config, 1);
  const int32_t cu[2] = {0, static_cast<int32_t>(tokens.size())};
  model::TokenBatch batch;
  batch.tokens = tokens.data();
  batch.n = static_cast<int64_t>(tokens.size());
  batch.cu_seqlens = cu;
  batch.segments = 1;
  std::vector<float> logits(tokens.size() * static_cast<size_t>(config.vocab_size));
  model::Workspace<float> ws;
  ThreadPool pool;
  m.Logits(params.data(), batch, logits.data(), &ws, pool);
  return logits;
}

// Largest |a - b| / (1 + |b|) over n values.
double WorstError(const float* a, const float* b, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]) / (1.0 + std::abs(b[i])));
  }
  return worst;
}

int32_t FirstMax(const float* logits, int64_t v) {
  return static_cast<int32_t>(std::max_element(logits, logits + v) - logits);
}

std::vector<int32_t> RandomTokens(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t{model::kBos};
  while (static_cast<int64_t>(t.size()) < n) t.push_back(static_cast<int32_t>(rng() % 256));
  return t;
}

constexpr double kTolerance = 2e-5;  // f32: the cache's decode kernel against the forward's
constexpr int64_t kPrompt = 37;      // longer than every window (8) and the chunk (16)
constexpr int64_t kGenerate = 45;

struct Case {
  std::string name;
  ModelConfig config;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (const std::string& name : model::PresetNames()) {
    cases.push_back({name, model::Preset(name, model::PresetSize::Tiny())});
  }
  cases.push_back({"every_feature", EveryFeatureConfig()});
  return cases;
}

TEST(DecoderTest, PrefillLogitsEqualTheFullForwardAtEveryPosition) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    const std::vector<float> params = RandomParams(c.config, 3);
    const std::vector<int32_t> tokens = RandomTokens(kPrompt, 5);
    const std::vector<float> want = FullLogits(c.config, params, tokens);
    const int64_t v = c.config.vocab_size;
    for (int64_t chunk : {1, 16, 64}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk));
      DecoderOptions o;
      o.chunk = chunk;
      o.threads = 2;
      Decoder decoder(c.config, params, o);
      std::vector<float> got(want.size());
      decoder.Prefill(tokens, got.data());
      EXPECT_EQ(decoder.position(), kPrompt);
      EXPECT_LT(WorstError(got.data(), want.data(), kPrompt * v), kTolerance);
    }
  }
}

TEST(DecoderTest, DocumentFedInSeveralCallsAndResetGiveTheFullForward) {
  const ModelConfig config = EveryFeatureConfig();
  const std::vector<float> params = RandomParams(config, 7);
  const std::vector<int32_t> tokens = RandomTokens(100, 9);
  const std::vector<float> want = FullLogits(config, params, tokens);
  const int64_t v = config.vocab_size;
  DecoderOptions o;
  o.chunk = 16;
  Decoder decoder(config, params, o);
  for (int round = 0; round < 2; ++round) {  // the second round after Reset
    std::vector<float> got(want.size());
    int64_t at = 0;
    for (int64_t piece : {1, 30, 16, 53}) {
      decoder.Prefill(std::span<const int32_t>(tokens.data() + at, piece), got.data() + at * v);
      at += piece;
    }
    ASSERT_EQ(at, 100);
    EXPECT_LT(WorstError(got.data(), want.data(), 100 * v), kTolerance) << "round " << round;
    decoder.Reset();
    EXPECT_EQ(decoder.position(), 0);
  }
  // PrefillLast returns the last row of the same logits.
  const std::span<const float> last = decoder.PrefillLast(tokens);
  EXPECT_LT(WorstError(last.data(), want.data() + 99 * v, v), kTolerance);
}

TEST(DecoderTest, GreedyWithCachesEqualsGreedyRecomputingTheSequence) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    const std::vector<float> params = RandomParams(c.config, 11);
    const int64_t v = c.config.vocab_size;
    DecoderOptions o;
    o.chunk = 16;
    Decoder decoder(c.config, params, o);
    std::vector<int32_t> recomputed = RandomTokens(kPrompt, 13);
    std::span<const float> logits = decoder.PrefillLast(recomputed);
    double worst = 0;
    for (int64_t step = 0; step < kGenerate; ++step) {
      const std::vector<float> full = FullLogits(c.config, params, recomputed);
      const float* want = full.data() + (recomputed.size() - 1) * v;
      worst = std::max(worst, WorstError(logits.data(), want, v));
      const int32_t best = FirstMax(want, v), got = FirstMax(logits.data(), v);
      // Both must pick the same token, unless the full forward itself has a near tie
      // (within 1e-3, far above the f32 differences): then any of the tied tokens.
      float second = -std::numeric_limits<float>::infinity();
      for (int64_t t = 0; t < v; ++t) {
        if (t != best) second = std::max(second, want[t]);
      }
      if (want[best] - second > 1e-3f) {
        ASSERT_EQ(got, best) << "step " << step;
      } else {
        EXPECT_GE(want[got], want[best] - 1e-3f) << "step " << step;
      }
      recomputed.push_back(best);
      logits = decoder.Step(best);
    }
    EXPECT_LT(worst, kTolerance);
    EXPECT_EQ(decoder.position(), kPrompt + kGenerate);
  }
}

TEST(DecoderTest, SlidingWindowCachesStayBoundedAndGlobalOnesGrow) {
  // Growing caches allocate pages of 1024 positions: 100 positions, then 1300.
  const std::vector<int32_t> tokens = RandomTokens(1300, 17);
  for (const std::string name : {"uniform", "full"}) {
    const ModelConfig config = model::Preset(name, model::PresetSize::Tiny());
    DecoderOptions o;
    o.chunk = 8;
    Decoder decoder(config, RandomParams(config, 1), o);
    decoder.Prefill(std::span<const int32_t>(tokens.data(), 100), nullptr);
    const int64_t after_100 = decoder.CacheBytes();
    decoder.Prefill(std::span<const int32_t>(tokens.data() + 100, 1200), nullptr);
    EXPECT_GT(after_100, 0);
    if (name == "uniform") {
      EXPECT_FALSE(decoder.CacheGrows());
      EXPECT_EQ(decoder.CacheBytes(), after_100);
    } else {
      EXPECT_TRUE(decoder.CacheGrows());
      EXPECT_GT(decoder.CacheBytes(), after_100);
    }
  }
}

// AdvanceForTiming takes positions like real tokens: after blank positions, a sliding-window
// model's logits depend only on the real tokens within its reach (3 layers of window 8:
// 21 tokens back), so 30 real tokens after 1000 blank ones give the logits of the same 30
// from position 0 (RoPE is relative). The caches hold what the same count of real tokens
// leaves: bounded for uniform, growing for full.
TEST(DecoderTest, BlankPositionsForTimingAreTakenAndLeaveTheWindow) {
  const std::vector<int32_t> tokens = RandomTokens(30, 23);
  for (const std::string name : {"uniform", "full"}) {
    const ModelConfig config = model::Preset(name, model::PresetSize::Tiny());
    const std::vector<float> params = RandomParams(config, 2);
    DecoderOptions o;
    o.chunk = 7;
    Decoder blank(config, params, o), fresh(config, params, o), real(config, params, o);
    blank.AdvanceForTiming(1000);
    EXPECT_EQ(blank.position(), 1000);
    const std::vector<int32_t> filler = RandomTokens(1000, 24);
    real.Prefill(filler, nullptr);
    EXPECT_EQ(blank.CacheBytes(), real.CacheBytes()) << name;
    std::vector<float> a(tokens.size() * config.vocab_size), b(a.size());
    blank.Prefill(tokens, a.data());
    fresh.Prefill(tokens, b.data());
    const int64_t v = config.vocab_size;
    const double last_error = WorstError(a.data() + 29 * v, b.data() + 29 * v, v);
    if (name == "uniform") {
      EXPECT_LT(last_error, kTolerance);
    } else {
      EXPECT_GT(last_error, 1e-3);  // full attention still sees the blank keys
    }
  }
  Decoder d(model::Preset("uniform", model::PresetSize::Tiny()),
            RandomParams(model::Preset("uniform", model::PresetSize::Tiny()), 2), DecoderOptions{});
  EXPECT_THROW(d.AdvanceForTiming(-1), Error);
}

TEST(DecoderTest, StreamingIsExactUpToSinksPlusWindowAndBoundedAfter) {
  for (const std::string name : {"mixed_gated", "local_global", "banded_sinks"}) {
    SCOPED_TRACE(name);
    const ModelConfig config = model::Preset(name, model::PresetSize::Tiny());
    const std::vector<float> params = RandomParams(config, 19);
    DecoderOptions o;
    o.chunk = 4;
    o.streaming.sinks = 2;
    o.streaming.window = 20;
    Decoder streamed(config, params, o);
    EXPECT_FALSE(streamed.CacheGrows());
    const std::vector<int32_t> tokens = RandomTokens(200, 23);
    const std::vector<float> want = FullLogits(config, params, tokens);
    const int64_t v = config.vocab_size, exact = 2 + 20;
    std::vector<float> got(want.size());
    streamed.Prefill(std::span<const int32_t>(tokens.data(), 100), got.data());
    const int64_t bytes = streamed.CacheBytes();
    streamed.Prefill(std::span<const int32_t>(tokens.data() + 100, 100), got.data() + 100 * v);
    EXPECT_EQ(streamed.CacheBytes(), bytes);
    EXPECT_LT(WorstError(got.data(), want.data(), exact * v), kTolerance);
    // Past S + W the global heads lose the middle of the sequence: the logits move.
    EXPECT_GT(WorstError(got.data() + 199 * v, want.data() + 199 * v, v), 1e-3);
  }
}

// A single global layer: the streamed head at position p sees tokens 0..S-1 and
// p-W+1..p, numbered consecutively, and a layer's k, v depend on its token alone, so with
// one token per call the logits equal the full forward of that shortened sequence.
TEST(DecoderTest, StreamingEqualsTheFullForwardOverSinksAndWindow) {
  ModelConfig config = model::Preset("full", model::PresetSize::Tiny());
  config.num_hidden_layers = 1;
  config.layers.resize(1);
  const std::vector<float> params = RandomParams(config, 29);
  const int64_t sinks = 3, window = 6, v = config.vocab_size;
  DecoderOptions o;
  o.chunk = 1;
  o.streaming.sinks = sinks;
  o.streaming.window = window;
  Decoder decoder(config, params, o);
  const std::vector<int32_t> tokens = RandomTokens(40, 31);
  for (int64_t p = 0; p < 40; ++p) {
    const std::span<const float> got = decoder.Step(tokens[p]);
    std::vector<int32_t> seen;
    for (int64_t j = 0; j <= p; ++j) {
      if (j < sinks || j > p - window) seen.push_back(tokens[j]);
    }
    const std::vector<float> want = FullLogits(config, params, seen);
    EXPECT_LT(WorstError(got.data(), want.data() + (seen.size() - 1) * v, v), kTolerance) << "position " << p;
  }
}

TEST(DecoderTest, HeadPartsKeepGroupedQueriesTogether) {
  // Nothing streamed: one part, every head in order.
  std::vector<HeadPart> parts = PlanHeadParts(6, 2, std::vector<bool>(6, false));
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].q_heads, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(parts[0].kv_heads, (std::vector<int64_t>{0, 1}));
  // One streamed head per kv group: two parts of equal groups.
  parts = PlanHeadParts(6, 2, {false, true, false, false, false, true});
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].q_heads, (std::vector<int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(parts[1].q_heads, (std::vector<int64_t>{1, 5}));
  EXPECT_TRUE(parts[1].streamed);
  // mixed_gated's pattern: kv group 0 exact only, group 1 one exact and two streamed.
  parts = PlanHeadParts(6, 2, {false, false, false, false, true, true});
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].q_heads, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(parts[0].kv_heads, (std::vector<int64_t>{0}));
  EXPECT_EQ(parts[1].q_heads, (std::vector<int64_t>{3}));
  EXPECT_EQ(parts[1].kv_heads, (std::vector<int64_t>{1}));
  EXPECT_EQ(parts[2].q_heads, (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(parts[2].kv_heads, (std::vector<int64_t>{1}));
}

TEST(DecoderTest, BadInputIsRefusedWithItsName) {
  const ModelConfig config = model::Preset("uniform", model::PresetSize::Tiny());
  const std::vector<float> params = RandomParams(config, 1);
  auto refused = [&](DecoderOptions o, std::vector<float> p, const std::string& what) {
    try {
      Decoder decoder(config, std::move(p), o);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  DecoderOptions o;
  o.chunk = 0;
  refused(o, params, "chunk");
  o = DecoderOptions();
  o.threads = -1;
  refused(o, params, "threads");
  o = DecoderOptions();
  o.streaming.window = 5;
  refused(o, params, "stream window needs stream sinks");
  refused(DecoderOptions(), std::vector<float>(10), "parameters hold 10 floats");

  Decoder decoder(config, params, DecoderOptions());
  const std::vector<int32_t> bad{model::kBos, 259};
  EXPECT_THROW(decoder.Prefill(bad, nullptr), Error);
  EXPECT_EQ(decoder.position(), 0);  // nothing was fed
  EXPECT_THROW(decoder.PrefillLast({}), Error);
}

}  // namespace
}  // namespace swa::generate
