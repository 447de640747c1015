// Synthetic tasks that need no data (train/synthetic.h) learned by small models with
// AdamW: copying a span inside the window is learned to >= 99% within a bounded number of
// steps; recalling a value placed farther back than every local window is learned to
// >= 90% only when a layer has a global head, and stays near chance with local heads only.
#include <cblas.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>

#include "model/model.h"
#include "model/tensors.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/synthetic.h"

namespace swa::train {
namespace {

using model::HeadWindow;
using model::ModelConfig;

// Two layers of four heads of 16 over d = 64; `windows` are every layer's heads.
ModelConfig SmallModel(const std::vector<HeadWindow>& windows) {
  ModelConfig c;
  c.vocab_size = 259;
  c.hidden_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.head_dim = 16;
  c.intermediate_size = 128;
  c.tie_word_embeddings = true;
  model::LayerConfig layer;
  layer.windows = windows;
  c.layers = {layer, layer};
  return c;
}

// GPT-2 style initialisation: N(0, 0.02), norms 1, output projections scaled down.
std::vector<float> InitParams(const model::Model& m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> p(m.param_floats(), 0.0f);
  for (const model::ParamInfo& info : m.layout()) {
    const bool norm = info.name.find("norm") != std::string::npos;
    for (int64_t i = 0; i < info.count; ++i) p[info.offset + i] = norm ? 1.0f : normal(rng);
  }
  return p;
}

struct Outcome {
  double accuracy = 0;  // on a held-out batch, at the end
  int64_t steps_to_goal = -1;
};

// Trains on fresh batches for at most `steps` steps; every 25 steps measures accuracy on
// a held-out batch and stops once it reaches `goal`.
template <class MakeBatch>
Outcome Train(const ModelConfig& config, int64_t steps, double goal, const MakeBatch& make,
              const char* name) {
  // One thread: these models are too small for threads to pay, and the tests run
  // beside others.
  ThreadPool pool;
  openblas_set_num_threads(1);
  const model::Model m(config, 1);
  std::vector<float> params = InitParams(m, 1), grads(params.size()), mom1(params.size()),
                     mom2(params.size());
  std::vector<ParamSpan> spans;
  for (const model::ParamInfo& info : m.layout()) spans.push_back({info.offset, info.count, info.decay});
  AdamW adam;
  adam.weight_decay = 0.01f;
  std::mt19937_64 rng(2), held_out_rng(3);
  const SyntheticBatch held_out = make(held_out_rng);
  model::Workspace<float> ws;
  Outcome out;
  for (int64_t step = 1; step <= steps; ++step) {
    const SyntheticBatch batch = make(rng);
    std::fill(grads.begin(), grads.end(), 0.0f);
    const double loss = m.Loss(params.data(), batch.View(), grads.data(), &ws, pool);
    ClipGradients(grads.data(), static_cast<int64_t>(grads.size()), 1.0, pool, 1);
    const double lr = LearningRate(step, 30, steps, 3e-3, 3e-4);
    AdamWStep(adam, static_cast<float>(lr), step, spans, params.data(), grads.data(), mom1.data(),
              mom2.data(), pool, 1);
    if (step % 25 == 0 || step == steps) {
      out.accuracy = TargetAccuracy(m, params.data(), held_out, &ws, pool);
      std::printf("%s step %lld: loss %.4f, held-out accuracy %.3f\n", name, static_cast<long long>(step),
                  loss, out.accuracy);
      if (out.accuracy >= goal) {
        out.steps_to_goal = step;
        return out;
      }
    }
  }
  return out;
}

TEST(SyntheticTaskTest, CopyingASpanInsideTheWindowIsLearned) {
  const ModelConfig config = SmallModel({{31, 0}, {31, 0}, {31, 0}, {31, 0}});
  const Outcome o = Train(
      config, 1500, 0.99, [](std::mt19937_64& rng) { return CopyBatch(32, 8, 16, rng); }, "copy");
  EXPECT_GE(o.accuracy, 0.99);
  EXPECT_GT(o.steps_to_goal, 0) << "not learned within 1500 steps";
}

// A gap of 40 filler tokens: beyond two stacked local windows of 8 (reach 14).
SyntheticBatch Recall(std::mt19937_64& rng) { return RecallBatch(32, 40, 16, 16, rng); }

TEST(SyntheticTaskTest, RecallBeyondTheWindowsNeedsAGlobalHead) {
  const Outcome global =
      Train(SmallModel({{7, 0}, {7, 0}, {7, 0}, {-1, 0}}), 1500, 0.9, Recall, "recall, 1 global head");
  EXPECT_GE(global.accuracy, 0.9);
  // Local heads only, for four times the steps the global head needed (at least 400):
  // the value is out of sight, so accuracy stays near chance (1/16 of the values).
  const int64_t budget = std::max<int64_t>(400, 4 * global.steps_to_goal);
  const Outcome local =
      Train(SmallModel({{7, 0}, {7, 0}, {7, 0}, {7, 0}}), budget, 2.0, Recall, "recall, local only");
  EXPECT_LE(local.accuracy, 0.2);
}

}  // namespace
}  // namespace swa::train
