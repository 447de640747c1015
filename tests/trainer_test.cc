// The training loop: the loss falls on real text; the schedule and decoupled weight decay
// reach the right tensors; bad data is refused before anything is written; a step whose
// loss or gradient is not finite stops the run and leaves the last good checkpoint as it
// was; the starting weights follow their stated distributions.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>

#include "model/checkpoint.h"
#include "model/param_layout.h"
#include "train/init.h"
#include "train/train_state.h"
#include "trainer_test_util.h"

namespace swa::train {
namespace {

double MeanLoss(const std::vector<nlohmann::json>& log, int64_t first, int64_t last) {
  double sum = 0;
  int64_t count = 0;
  for (const nlohmann::json& r : log) {
    const int64_t step = r.at("step").get<int64_t>();
    if (r.contains("loss") && step >= first && step <= last) {
      sum += r.at("loss").get<double>();
      ++count;
    }
  }
  EXPECT_EQ(count, last - first + 1);
  return sum / static_cast<double>(count);
}

TEST(TrainerTest, LossFallsOnThisRepositorysText) {
  TempTree tree;
  // docs/*.md and src/: text only (docs/ also holds a PNG, whose bytes no model predicts).
  TrainOptions o = TinyRun(SWA_SOURCE_DIR "/src", tree.Path("run"));
  for (const auto& entry : std::filesystem::directory_iterator(SWA_SOURCE_DIR "/docs")) {
    if (entry.path().extension() == ".md") o.data.push_back(entry.path().string());
  }
  ASSERT_GT(o.data.size(), 1u);
  o.config = model::Preset("local_global", model::PresetSize::Tiny());
  o.steps = 60;
  o.seq = 128;
  o.batch = 4;
  o.lr = 3e-3;
  o.warmup = 5;
  o.eval_every = 0;
  const TrainResult r = Train(o);
  EXPECT_EQ(r.last_step, 60);
  const std::vector<nlohmann::json> log = ReadLog(o.out_dir);
  const double first = MeanLoss(log, 1, 10), last = MeanLoss(log, 51, 60);
  // Small starting weights give nearly uniform predictions: ln(259) = 5.56 nats. 60 steps on
  // text bring the loss well below.
  EXPECT_NEAR(log.front().at("loss").get<double>(), std::log(259.0), 0.1);
  EXPECT_LT(last, first - 1.0) << "first 10 steps " << first << ", last 10 " << last;
  for (const nlohmann::json& rec : log) {
    if (!rec.contains("loss")) continue;
    EXPECT_GT(rec.at("tokens_per_s").get<double>(), 0);
    EXPECT_GT(rec.at("peak_rss_bytes").get<int64_t>(), 0);
    EXPECT_EQ(rec.at("tokens").get<int64_t>(), rec.at("step").get<int64_t>() * 128 * 4);
  }
}

// The warmup-then-cosine rate of the design, written out apart from train/schedule.cc.
double ExpectedRate(int64_t t, int64_t warmup, int64_t total, double max_lr, double min_lr) {
  if (t <= warmup) return max_lr * static_cast<double>(t) / static_cast<double>(warmup);
  const double progress = static_cast<double>(t - warmup) / static_cast<double>(total - warmup);
  return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

TEST(TrainerTest, ScheduleAndDecayReachTheRightTensors) {
  TempTree tree;
  TrainOptions o = TinyRun(WriteCorpus(tree), tree.Path("run"));
  o.config = model::Preset("mixed_gated", model::PresetSize::Tiny());  // has gate biases
  o.lr = 0.01;
  o.min_lr = 0.001;
  o.warmup = 2;
  o.weight_decay = 0.5;
  o.stop_after = 3;
  // Zero gradients: AdamW's moments stay 0, so only the decay moves a parameter.
  o.after_backward = [](int64_t, float* grads, int64_t n) { std::fill(grads, grads + n, 0.0f); };
  Train(o);

  double keep = 1.0;  // the product of (1 - lr_t wd) over the three steps
  const std::vector<nlohmann::json> log = ReadLog(o.out_dir);
  for (int64_t t = 1; t <= 3; ++t) {
    const double lr = ExpectedRate(t, 2, 8, 0.01, 0.001);
    EXPECT_NEAR(log[t - 1].at("lr").get<double>(), lr, 1e-15) << "step " << t;
    keep *= 1.0 - lr * 0.5;
  }
  const model::ModelConfig& config = *o.config;
  std::vector<float> start(model::LayoutFloats(config));
  const std::vector<model::ParamInfo> layout = model::ParameterLayout(config);
  InitParameters(config, layout, o.seed, start.data());
  const model::Checkpoint end = model::LoadCheckpoint(o.out_dir + "/" + kModelFile);
  int decayed = 0, kept = 0;
  for (const model::ParamInfo& p : layout) {
    const bool is_norm = p.name.find("norm") != std::string::npos;
    const bool is_bias_or_sink =
        p.name.find("bias") != std::string::npos || p.name.find("sinks") != std::string::npos;
    EXPECT_EQ(p.decay, !is_norm && !is_bias_or_sink) << p.name;
    for (int64_t i = p.offset; i < p.offset + p.count; ++i) {
      if (p.decay) {
        ASSERT_NEAR(end.params[i], start[i] * keep, 1e-6 * std::abs(start[i]) + 1e-12) << p.name;
      } else {
        ASSERT_EQ(end.params[i], start[i]) << p.name << " was decayed";
      }
    }
    (p.decay ? decayed : kept) += 1;
  }
  EXPECT_GT(decayed, 0);
  EXPECT_GT(kept, 0);
  EXPECT_LT(keep, 0.99);  // the shrinkage is large enough to see
}

TEST(TrainerTest, MissingOrEmptyDataIsRefusedBeforeWriting) {
  TempTree tree;
  const std::string out = tree.Path("run");
  ExpectErrorMentioning([&] { Train(TinyRun(tree.Path("no_such_dir"), out)); }, {tree.Path("no_such_dir")});
  std::filesystem::create_directories(tree.Path("empty_dir"));
  tree.Write("empty_dir/empty.txt", "");
  ExpectErrorMentioning([&] { Train(TinyRun(tree.Path("empty_dir"), out)); }, {tree.Path("empty_dir")});
  ExpectErrorMentioning([&] { Train(TinyRun(tree.Path("empty_dir/empty.txt"), out)); }, {"empty.txt"});
  TrainOptions none = TinyRun("", out);
  none.data.clear();
  ExpectErrorMentioning([&] { Train(none); }, {"no training data"});
  EXPECT_FALSE(std::filesystem::exists(out)) << "a refused run created its directory";
}

TEST(TrainerTest, NonFiniteStepKeepsTheLastGoodCheckpoint) {
  TempTree tree;
  const std::string data = WriteCorpus(tree);
  TrainOptions clean = TinyRun(data, tree.Path("clean"));
  clean.save_every = 2;
  clean.stop_after = 4;
  Train(clean);

  TrainOptions poisoned = TinyRun(data, tree.Path("poisoned"));
  poisoned.save_every = 2;
  poisoned.after_backward = [](int64_t step, float* grads, int64_t) {
    if (step == 5) grads[0] = std::nanf("");
  };
  ExpectErrorMentioning([&] { Train(poisoned); }, {"step 5", "not finite", "step 4"});
  // The checkpoint is the one of step 4, equal to that of a run that stopped there.
  EXPECT_EQ(ReadWhole(tree.Path("poisoned/") + kModelFile), ReadWhole(tree.Path("clean/") + kModelFile));
  EXPECT_EQ(LoadTrainState(tree.Path("poisoned/") + kStateFile).info.step, 4);
  // ...and the run resumes from it.
  poisoned.after_backward = nullptr;
  poisoned.resume = true;
  EXPECT_EQ(Train(poisoned).last_step, 8);
}

TEST(TrainerTest, HugeLearningRateIsCaughtNotSaved) {
  TempTree tree;
  TrainOptions o = TinyRun(WriteCorpus(tree), tree.Path("run"));
  o.lr = 1e30;
  o.min_lr = 1e30;
  o.warmup = 0;
  o.weight_decay = 0;
  o.clip = 0;
  o.save_every = 1;
  try {
    Train(o);
    FAIL() << "a learning rate of 1e30 trained without a non-finite loss";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
  }
  const TrainState state = LoadTrainState(tree.Path("run/") + kStateFile);
  const model::Checkpoint saved = model::LoadCheckpoint(tree.Path("run/") + kModelFile);
  for (const float w : saved.params) ASSERT_TRUE(std::isfinite(w)) << "non-finite weights were saved";
  EXPECT_EQ(StoredWeightsHash(saved.config, saved.params.data(), model::StoredDType::kF32),
            state.info.model_hash);
}

TEST(InitTest, NormsAreOneAndMatricesFollowTheirScale) {
  const model::ModelConfig config = model::Preset("banded_sinks", model::PresetSize());
  const std::vector<model::ParamInfo> layout = model::ParameterLayout(config);
  std::vector<float> params(model::LayoutFloats(config), 7.0f);
  InitParameters(config, layout, 3, params.data());
  const double residual = kInitStd / std::sqrt(2.0 * static_cast<double>(config.num_hidden_layers));
  for (const model::ParamInfo& p : layout) {
    double sum = 0, squares = 0;
    for (int64_t i = p.offset; i < p.offset + p.count; ++i) {
      sum += params[i];
      squares += static_cast<double>(params[i]) * params[i];
    }
    const double mean = sum / static_cast<double>(p.count),
                 rms = std::sqrt(squares / static_cast<double>(p.count));
    if (p.name.find("norm") != std::string::npos) {
      EXPECT_EQ(mean, 1.0) << p.name;
      EXPECT_EQ(rms, 1.0) << p.name;
    } else if (p.name.find("sinks") != std::string::npos) {
      EXPECT_EQ(rms, 0.0) << p.name;
    } else {
      const bool writes_residual =
          p.name.find("o_proj") != std::string::npos || p.name.find("down_proj") != std::string::npos;
      const double expected = writes_residual ? residual : kInitStd;
      EXPECT_NEAR(rms, expected, 0.05 * expected) << p.name;  // tensors of >= 24k values
      EXPECT_NEAR(mean, 0.0, 0.05 * expected) << p.name;
    }
  }
  std::vector<float> again(params.size(), -1.0f);
  InitParameters(config, layout, 3, again.data());
  EXPECT_EQ(again, params);
  for (int64_t i = layout.back().offset + layout.back().count; i < static_cast<int64_t>(params.size()); ++i) {
    EXPECT_EQ(params[i], 0.0f) << "padding";
  }
}

}  // namespace
}  // namespace swa::train
