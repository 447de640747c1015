// Resuming a training run: N steps, a stop, and N more give the very losses (bit for bit)
// and weights of 2N steps in one go; every way the files on disk can be wrong (truncated,
// corrupt, a state beside another checkpoint, other options, a missing state) is refused
// with the file named and nothing in the run's directory changed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/param_layout.h"
#include "train/train_state.h"
#include "trainer_test_util.h"

namespace swa::train {
namespace {

void ExpectSameRun(const std::string& a, const std::string& b) {
  const std::vector<nlohmann::json> log_a = ReadLog(a), log_b = ReadLog(b);
  EXPECT_EQ(LossBits(log_a, "loss"), LossBits(log_b, "loss"));
  EXPECT_EQ(LossBits(log_a, "val_loss"), LossBits(log_b, "val_loss"));
  EXPECT_EQ(LossBits(log_a, "grad_norm"), LossBits(log_b, "grad_norm"));
  EXPECT_EQ(ReadWhole(a + "/" + kModelFile), ReadWhole(b + "/" + kModelFile)) << "the final weights differ";
}

TEST(TrainerResumeTest, StopAndResumeIsBitIdenticalToOneRun) {
  for (const model::StoredDType dtype : {model::StoredDType::kF32, model::StoredDType::kBF16}) {
    SCOPED_TRACE(model::StoredDTypeName(dtype));
    TempTree tree;
    const std::string data = WriteCorpus(tree);
    TrainOptions whole = TinyRun(data, tree.Path("whole"));
    whole.dtype = dtype;
    const TrainResult one = Train(whole);
    EXPECT_EQ(one.last_step, 8);

    TrainOptions part = TinyRun(data, tree.Path("parts"));
    part.dtype = dtype;
    part.stop_after = 4;  // the schedule is still that of 8 steps
    const TrainResult first = Train(part);
    EXPECT_EQ(first.reason, StopReason::kStopAfter);
    EXPECT_EQ(first.last_step, 4);
    part.stop_after = 0;
    part.resume = true;
    const TrainResult second = Train(part);
    EXPECT_EQ(second.first_step, 5);
    EXPECT_EQ(second.last_step, 8);

    ExpectSameRun(tree.Path("whole"), tree.Path("parts"));
    const std::vector<nlohmann::json> log = ReadLog(tree.Path("parts"));
    ASSERT_EQ(LossBits(log, "loss").size(), 8u);
    for (int64_t s = 1; s <= 8; ++s) EXPECT_EQ(LossBits(log, "loss")[s - 1].first, s);
    EXPECT_EQ(LossBits(log, "val_loss").size(), 2u);  // steps 4 and 8
  }
}

TEST(TrainerResumeTest, ResumeDropsLogRecordsPastTheCheckpoint) {
  TempTree tree;
  const std::string data = WriteCorpus(tree);
  TrainOptions o = TinyRun(data, tree.Path("run"));
  o.stop_after = 3;
  Train(o);
  // Records a crash would leave after the checkpoint: redone by the resumed run.
  {
    std::ofstream log(tree.Path("run/") + kLogFile, std::ios::app);
    log << "{\"step\":4,\"loss\":1.0}\n{\"step\":5,\"loss\":1.0}\n";
  }
  o.stop_after = 0;
  o.resume = true;
  Train(o);
  Train(TinyRun(data, tree.Path("whole")));
  ExpectSameRun(tree.Path("whole"), tree.Path("run"));
}

TEST(TrainerResumeTest, ValidationAndRecomputeDoNotChangeTraining) {
  // Validation shares the training workspace, and recomputation reruns block forwards:
  // neither may change a single bit of the training losses.
  TempTree tree;
  const std::string data = WriteCorpus(tree);
  TrainOptions quiet = TinyRun(data, tree.Path("quiet"));
  quiet.eval_every = 0;
  Train(quiet);
  TrainOptions busy = TinyRun(data, tree.Path("busy"));
  busy.eval_every = 1;
  busy.recompute = true;
  Train(busy);
  EXPECT_EQ(LossBits(ReadLog(tree.Path("quiet")), "loss"), LossBits(ReadLog(tree.Path("busy")), "loss"));
  EXPECT_EQ(LossBits(ReadLog(tree.Path("busy")), "val_loss").size(), 8u);
  EXPECT_EQ(ReadWhole(tree.Path("quiet/") + kModelFile), ReadWhole(tree.Path("busy/") + kModelFile));
}

// A run stopped at step 4 in dir/run, and one stopped at step 6 in dir/later.
struct TwoRuns {
  TempTree tree;
  std::string data = WriteCorpus(tree);
  TrainOptions options = TinyRun(data, tree.Path("run"));
  TwoRuns() {
    options.stop_after = 6;
    options.out_dir = tree.Path("later");
    Train(options);
    options.stop_after = 4;
    options.out_dir = tree.Path("run");
    Train(options);
    options.stop_after = 0;
    options.resume = true;
  }
  std::string Run(const std::string& name) const { return tree.Path("run/") + name; }
};

// Expects Train(o) to be refused with a message naming every one of `parts`, and the
// run's directory to be exactly as it was.
void ExpectRefused(const TwoRuns& runs, const TrainOptions& o, const std::vector<std::string>& parts) {
  const std::map<std::string, std::string> before = Snapshot(runs.tree.Path("run"));
  ExpectErrorMentioning([&] { Train(o); }, parts);
  EXPECT_EQ(Snapshot(runs.tree.Path("run")), before) << "a refused resume changed the run's files";
}

void Rewrite(const std::string& path, const std::function<void(std::string*)>& change) {
  std::string bytes = ReadWhole(path);
  change(&bytes);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(TrainerResumeTest, TruncatedFilesAreRefused) {
  for (const char* file : {kModelFile, kStateFile}) {
    SCOPED_TRACE(file);
    TwoRuns runs;
    Rewrite(runs.Run(file), [](std::string* b) { b->resize(b->size() - 100); });
    ExpectRefused(runs, runs.options, {runs.Run(file)});
  }
}

TEST(TrainerResumeTest, CorruptTensorBytesAreRefused) {
  // One bit of the last tensor's data: the model's hash in the state, or the state's own
  // tensor hash, no longer matches.
  for (const char* file : {kModelFile, kStateFile}) {
    SCOPED_TRACE(file);
    TwoRuns runs;
    Rewrite(runs.Run(file), [](std::string* b) { b->at(b->size() - 3) ^= 0x10; });
    ExpectRefused(runs, runs.options, {runs.Run(file)});
  }
}

TEST(TrainerResumeTest, CorruptHeaderIsRefused) {
  TwoRuns runs;
  Rewrite(runs.Run(kStateFile), [](std::string* b) { b->at(12) = '#'; });
  ExpectRefused(runs, runs.options, {runs.Run(kStateFile)});
}

TEST(TrainerResumeTest, StateBesideAnotherCheckpointIsRefused) {
  // What a crash between writing the state and the checkpoint leaves: the state of step 6
  // beside the weights of step 4.
  TwoRuns runs;
  std::filesystem::copy_file(runs.tree.Path("later/") + kStateFile, runs.Run(kStateFile),
                             std::filesystem::copy_options::overwrite_existing);
  ExpectRefused(runs, runs.options, {runs.Run(kModelFile), "does not hold the weights"});
}

TEST(TrainerResumeTest, OtherOptionsAreRefusedNamingEach) {
  TwoRuns runs;
  TrainOptions o = runs.options;
  o.seq = 16;
  o.lr = 0.5e-3;
  ExpectRefused(runs, o, {"--seq is 16 here, 32 in the run", "--lr", runs.Run(kStateFile)});
  o = runs.options;
  o.config = model::Preset("uniform", model::PresetSize::Tiny());
  ExpectRefused(runs, o, {"differs from the one in", runs.Run(kModelFile)});
}

TEST(TrainerResumeTest, OtherDataIsRefused) {
  TwoRuns runs;
  runs.tree.Write("corpus/extra.txt", "one more document\n");
  ExpectRefused(runs, runs.options, {"the data differs", runs.Run(kStateFile)});
}

TEST(TrainerResumeTest, MissingStateIsRefusedAndAFreshRunWillNotOverwrite) {
  TwoRuns runs;
  std::filesystem::remove(runs.Run(kStateFile));
  ExpectRefused(runs, runs.options, {"no training state", runs.Run(kStateFile)});
  TrainOptions fresh = runs.options;
  fresh.resume = false;
  ExpectRefused(runs, fresh, {runs.Run(kModelFile), "already exists", "--resume"});
}

TEST(TrainStateTest, RoundTripAndHashes) {
  TempTree tree;
  const model::ModelConfig config = model::Preset("banded_sinks", model::PresetSize::Tiny());
  const int64_t n = model::LayoutFloats(config);
  std::vector<float> m(n), v(n), master(n);
  for (int64_t i = 0; i < n; ++i) {
    m[i] = 0.001f * static_cast<float>(i % 97);
    v[i] = 0.5f + static_cast<float>(i % 13);
    master[i] = -0.25f * static_cast<float>(i % 7);
  }
  const TrainStateInfo info{7, BatcherState{3, 1, 2, 5, 24}, "{\"seq\":32}", "{\"documents\":24}", 0x1234, 99,
                            2};
  const std::string path = tree.Path("s.safetensors");
  SaveTrainState(path, config, info, m.data(), v.data(), master.data());
  const TrainState back = LoadTrainState(path);
  EXPECT_EQ(back.info.step, 7);
  EXPECT_EQ(back.info.batcher, info.batcher);
  EXPECT_EQ(back.info.options_json, info.options_json);
  EXPECT_EQ(back.info.model_hash, 0x1234u);
  EXPECT_EQ(back.info.log_bytes, 99);
  EXPECT_EQ(back.info.threads, 2);
  EXPECT_TRUE(back.config == config);
  for (const model::ParamInfo& p : model::ParameterLayout(config)) {
    for (int64_t i = p.offset; i < p.offset + p.count; ++i) {
      ASSERT_EQ(back.m[i], m[i]);
      ASSERT_EQ(back.v[i], v[i]);
      ASSERT_EQ(back.master[i], master[i]);
    }
  }
  // The word-wise FNV-1a against the same recurrence written out for two values.
  const float two[2] = {1.0f, -2.0f};
  const uint64_t expected =
      (((0xcbf29ce484222325ull ^ 0x3f800000ull) * 0x100000001b3ull) ^ 0xc0000000ull) * 0x100000001b3ull;
  EXPECT_EQ(ValuesHash(two, 2, kValuesHashSeed), expected);
}

}  // namespace
}  // namespace swa::train
