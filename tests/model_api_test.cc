// The model's C API (include/swa/swa.h, src/api/model_api.cc): every bad argument is
// rejected with SWA_ERR_INVALID_ARGUMENT and a message before anything is written, and
// the valid calls keep their promises (the loss is the mean cross-entropy of the logits,
// gradients are written, not added, a packed batch is its documents alone, a NULL
// cu_seqlens is one document, save and load round-trip). The numbers themselves are
// checked against the PyTorch twin by tests/python/test_model_twin.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "model/presets.h"
#include "swa/swa.h"

namespace {

using swa::model::ModelConfig;

constexpr float kSentinel = 12345.0f;

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("swa_model_api_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

// A tiny banded_sinks model (windows, learned sinks, GQA) with random weights.
class ModelApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = swa::model::Preset("banded_sinks", swa::model::PresetSize::Tiny());
    std::vector<float> params(swa::model::LayoutFloats(config_), 0.0f);
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (const swa::model::ParamInfo& p : swa::model::ParameterLayout(config_)) {
      const bool norm = p.name.find("norm") != std::string::npos;
      const float scale = norm ? 0.1f : 1.0f / std::sqrt(static_cast<float>(p.shape.back()));
      for (int64_t i = 0; i < p.count; ++i) params[p.offset + i] = (norm ? 1.0f : 0.0f) + scale * normal(rng);
    }
    path_ = TempPath("model.safetensors");
    swa::model::SaveCheckpoint(path_, config_, params.data(), swa::model::StoredDType::kF32);
    ASSERT_EQ(swa_model_load(path_.c_str(), 2, &model_), SWA_OK) << swa_last_error();
    vocab_ = config_.vocab_size;
  }

  void TearDown() override {
    swa_model_destroy(model_);
    std::remove(path_.c_str());
  }

  int64_t FlatSize() const {
    int64_t floats = 0;
    EXPECT_EQ(swa_model_flat_size(model_, &floats), SWA_OK);
    return floats;
  }

  // Random tokens in [0, 259) and next-token targets with a PAD at each document's end.
  void Batch(const std::vector<int32_t>& cu, std::vector<int32_t>* tokens,
             std::vector<int32_t>* targets) const {
    std::mt19937 rng(11);
    tokens->resize(cu.back());
    for (int32_t& t : *tokens) t = static_cast<int32_t>(rng() % 259);
    targets->assign(cu.back(), swa::model::kPad);
    for (size_t s = 0; s + 1 < cu.size(); ++s) {
      for (int32_t t = cu[s]; t + 1 < cu[s + 1]; ++t) (*targets)[t] = (*tokens)[t + 1];
    }
  }

  ModelConfig config_;
  std::string path_;
  swa_model* model_ = nullptr;
  int64_t vocab_ = 0;
};

void ExpectInvalid(int rc, const std::string& needle) {
  EXPECT_EQ(rc, SWA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(swa_last_error()).find(needle), std::string::npos)
      << "message \"" << swa_last_error() << "\" does not mention \"" << needle << "\"";
}

TEST_F(ModelApiTest, LoadRejectsBadArguments) {
  swa_model* out = reinterpret_cast<swa_model*>(0x1);
  ExpectInvalid(swa_model_load(nullptr, 0, &out), "path");
  ExpectInvalid(swa_model_load(path_.c_str(), 0, nullptr), "model");
  ExpectInvalid(swa_model_load(path_.c_str(), -1, &out), "num_threads");
  const std::string missing = TempPath("missing.safetensors");
  ExpectInvalid(swa_model_load(missing.c_str(), 0, &out), missing);
  const std::string garbage = TempPath("garbage.safetensors");
  FILE* f = std::fopen(garbage.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fputs("not a safetensors file at all", f);
  std::fclose(f);
  EXPECT_LT(swa_model_load(garbage.c_str(), 0, &out), 0);
  EXPECT_STRNE(swa_last_error(), "");
  std::remove(garbage.c_str());
  EXPECT_EQ(out, reinterpret_cast<swa_model*>(0x1)) << "a failing load wrote its output";
  swa_model_destroy(nullptr);
}

TEST_F(ModelApiTest, GettersRejectNullAndReportTheLayout) {
  int64_t value = -7;
  ExpectInvalid(swa_model_vocab_size(nullptr, &value), "model");
  ExpectInvalid(swa_model_vocab_size(model_, nullptr), "vocab_size");
  ExpectInvalid(swa_model_param_count(nullptr, &value), "model");
  ExpectInvalid(swa_model_param_count(model_, nullptr), "count");
  ExpectInvalid(swa_model_flat_size(nullptr, &value), "model");
  ExpectInvalid(swa_model_flat_size(model_, nullptr), "floats");
  ExpectInvalid(swa_model_num_tensors(model_, nullptr), "num_tensors");
  EXPECT_EQ(value, -7);

  ASSERT_EQ(swa_model_vocab_size(model_, &value), SWA_OK);
  EXPECT_EQ(value, 259);
  // docs/MODEL.md's tensors of a tied model with learned sinks, counted by hand.
  const int64_t d = 32, hq = 6, hkv = 2, dim = 8, f = 64, layers = 3;
  const int64_t per_layer = 2 * d + hq * dim * d + 2 * hkv * dim * d + d * hq * dim + hq + 3 * f * d;
  ASSERT_EQ(swa_model_param_count(model_, &value), SWA_OK);
  EXPECT_EQ(value, 259 * d + layers * per_layer + d);
  int64_t tensors = 0;
  ASSERT_EQ(swa_model_num_tensors(model_, &tensors), SWA_OK);
  EXPECT_EQ(tensors, 1 + layers * 10 + 1);

  // Every tensor by name: inside the flat buffer, 64-byte aligned, no two overlapping.
  const int64_t flat = FlatSize();
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (int64_t i = 0; i < tensors; ++i) {
    char name[128];
    int64_t needed = 0;
    ASSERT_EQ(swa_model_tensor_name(model_, i, name, sizeof(name), &needed), SWA_OK);
    int64_t offset = -1, count = -1;
    ASSERT_EQ(swa_model_param(model_, name, &offset, &count), SWA_OK) << name;
    EXPECT_EQ(offset % 16, 0) << name;
    spans.emplace_back(offset, offset + count);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 0; i + 1 < spans.size(); ++i) EXPECT_LE(spans[i].second, spans[i + 1].first);
  EXPECT_LE(spans.back().second, flat);
  int64_t offset = 0, count = 0;
  ASSERT_EQ(swa_model_param(model_, "model.layers.2.mlp.down_proj.weight", &offset, &count), SWA_OK);
  EXPECT_EQ(count, d * f);
  ASSERT_EQ(swa_model_param(model_, "model.layers.1.self_attn.sinks", &offset, &count), SWA_OK);
  EXPECT_EQ(count, hq);
}

TEST_F(ModelApiTest, NamesAndConfigUseCheckedBuffers) {
  int64_t needed = -1, offset = -3, count = -3;
  char small[4] = {'x', 'x', 'x', 'x'};
  ExpectInvalid(swa_model_tensor_name(model_, -1, small, 4, &needed), "index");
  ExpectInvalid(swa_model_tensor_name(model_, 32, small, 4, &needed), "index");
  ExpectInvalid(swa_model_tensor_name(model_, 0, small, 4, &needed), "too small");
  ExpectInvalid(swa_model_param(model_, "lm_head.weight", &offset, &count), "lm_head.weight");  // tied
  ExpectInvalid(swa_model_param(model_, nullptr, &offset, &count), "name");
  ExpectInvalid(swa_model_param(model_, "model.norm.weight", nullptr, &count), "offset");
  EXPECT_EQ(offset, -3);
  EXPECT_EQ(count, -3);

  ExpectInvalid(swa_model_config_json(model_, small, -1, &needed), "size");
  ExpectInvalid(swa_model_config_json(model_, nullptr, 8, &needed), "buf");
  ExpectInvalid(swa_model_config_json(model_, small, 4, nullptr), "needed");
  ExpectInvalid(swa_model_config_json(nullptr, nullptr, 0, &needed), "model");
  EXPECT_EQ(needed, -1);
  ASSERT_EQ(swa_model_config_json(model_, nullptr, 0, &needed), SWA_OK);
  ASSERT_GT(needed, 1);
  std::string json(static_cast<size_t>(needed), 'x');
  ExpectInvalid(swa_model_config_json(model_, json.data(), needed - 1, &needed), "too small");
  EXPECT_EQ(json, std::string(static_cast<size_t>(needed), 'x')) << "a failing call wrote to buf";
  ASSERT_EQ(swa_model_config_json(model_, json.data(), needed, &needed), SWA_OK);
  EXPECT_EQ(json.back(), '\0');
  json.pop_back();
  EXPECT_EQ(swa::model::ParseConfig(json), config_);
}

TEST_F(ModelApiTest, LogitsAndLossRejectBadBatchesAndWriteNothing) {
  const std::vector<int32_t> cu = {0, 9, 9, 16};
  std::vector<int32_t> tokens, targets;
  Batch(cu, &tokens, &targets);
  const int64_t n = cu.back();
  std::vector<float> logits(n * vocab_, kSentinel), grads(FlatSize(), kSentinel);
  double loss = kSentinel;
  auto bad_tokens = [&](int64_t at, int32_t value) {
    std::vector<int32_t> t = tokens;
    t[at] = value;
    return t;
  };
  struct Spoiled {
    std::vector<int32_t> tokens, targets, cu;
    int64_t n, num_seqs;
    bool null_cu;
    std::string needle;
  };
  std::vector<Spoiled> cases = {
      {tokens, targets, cu, -1, 3, false, "n (the token count)"},
      {tokens, targets, cu, int64_t{1} << 40, 3, false, "INT32_MAX"},
      {bad_tokens(3, -1), targets, cu, n, 3, false, "tokens[3] = -1"},
      {bad_tokens(15, 259), targets, cu, n, 3, false, "tokens[15] = 259"},
      {tokens, targets, {1, 9, 9, 16}, n, 3, false, "cu_seqlens[0]"},
      {tokens, targets, {0, 9, 8, 16}, n, 3, false, "non-decreasing"},
      {tokens, targets, {0, 9, 9, 15}, n, 3, false, "must equal n"},
      {tokens, targets, cu, n, 2, false, "must equal n"},
      {tokens, targets, cu, n, -1, false, "num_seqs"},
      {tokens, targets, cu, n, 2, true, "num_seqs"},
  };
  for (const Spoiled& c : cases) {
    SCOPED_TRACE(c.needle);
    const int32_t* cu_ptr = c.null_cu ? nullptr : c.cu.data();
    ExpectInvalid(swa_model_logits(model_, c.tokens.data(), c.n, cu_ptr, c.num_seqs, logits.data()),
                  c.needle);
    ExpectInvalid(swa_model_loss(model_, c.tokens.data(), c.targets.data(), c.n, cu_ptr, c.num_seqs, &loss,
                                 grads.data()),
                  c.needle);
  }
  ExpectInvalid(swa_model_logits(model_, nullptr, n, cu.data(), 3, logits.data()), "tokens");
  ExpectInvalid(swa_model_logits(model_, tokens.data(), n, cu.data(), 3, nullptr), "logits");
  ExpectInvalid(swa_model_logits(nullptr, tokens.data(), n, cu.data(), 3, logits.data()), "model");
  ExpectInvalid(swa_model_loss(model_, tokens.data(), nullptr, n, cu.data(), 3, &loss, grads.data()),
                "targets");
  ExpectInvalid(swa_model_loss(model_, tokens.data(), targets.data(), n, cu.data(), 3, nullptr, grads.data()),
                "loss");
  for (int32_t target : {-1, -100, 259, 1 << 30}) {
    std::vector<int32_t> t = targets;
    t[4] = target;
    ExpectInvalid(swa_model_loss(model_, tokens.data(), t.data(), n, cu.data(), 3, &loss, grads.data()),
                  "targets[4] = " + std::to_string(target));
  }
  for (float x : logits) ASSERT_EQ(x, kSentinel) << "a failing call wrote logits";
  for (float x : grads) ASSERT_EQ(x, kSentinel) << "a failing call wrote grads";
  EXPECT_EQ(loss, kSentinel);
}

// The loss is the mean over non-PAD targets of -log softmax(logits)[target], computed
// here in double from swa_model_logits; the gradient is written, not added.
TEST_F(ModelApiTest, LossIsTheMeanCrossEntropyOfTheLogits) {
  const std::vector<int32_t> cu = {0, 12, 13, 25};
  std::vector<int32_t> tokens, targets;
  Batch(cu, &tokens, &targets);
  const int64_t n = cu.back();
  std::vector<float> logits(n * vocab_);
  ASSERT_EQ(swa_model_logits(model_, tokens.data(), n, cu.data(), 3, logits.data()), SWA_OK)
      << swa_last_error();
  double total = 0;
  int64_t counted = 0;
  for (int64_t t = 0; t < n; ++t) {
    if (targets[t] == swa::model::kPad) continue;
    const float* row = logits.data() + t * vocab_;
    double top = row[0], sum = 0;
    for (int64_t v = 0; v < vocab_; ++v) top = std::max<double>(top, row[v]);
    for (int64_t v = 0; v < vocab_; ++v) sum += std::exp(row[v] - top);
    total += top + std::log(sum) - row[targets[t]];
    ++counted;
  }
  ASSERT_EQ(counted, n - 3);
  std::vector<float> first(FlatSize(), 7.0f), second(FlatSize(), -3.0f);
  double loss = 0, again = 0;
  ASSERT_EQ(swa_model_loss(model_, tokens.data(), targets.data(), n, cu.data(), 3, &loss, first.data()),
            SWA_OK);
  EXPECT_NEAR(loss, total / counted, 1e-5 * std::abs(loss));
  ASSERT_EQ(swa_model_loss(model_, tokens.data(), targets.data(), n, cu.data(), 3, &again, second.data()),
            SWA_OK);
  EXPECT_EQ(loss, again);
  EXPECT_EQ(first, second) << "gradients depend on what the buffer held before";
  double norm = 0;
  for (float g : first) norm += static_cast<double>(g) * g;
  EXPECT_GT(norm, 0.0);
  double without_grads = 0;
  ASSERT_EQ(swa_model_loss(model_, tokens.data(), targets.data(), n, cu.data(), 3, &without_grads, nullptr),
            SWA_OK);
  EXPECT_EQ(without_grads, loss);
}

TEST_F(ModelApiTest, EmptyAndAllPadBatches) {
  double loss = kSentinel;
  std::vector<float> grads(FlatSize(), kSentinel);
  ASSERT_EQ(swa_model_loss(model_, nullptr, nullptr, 0, nullptr, 0, &loss, grads.data()), SWA_OK);
  EXPECT_EQ(loss, 0.0);
  for (float g : grads) ASSERT_EQ(g, 0.0f);
  ASSERT_EQ(swa_model_logits(model_, nullptr, 0, nullptr, 0, nullptr), SWA_OK);
  const std::vector<int32_t> tokens = {256, 72, 105}, pads(3, swa::model::kPad);
  std::fill(grads.begin(), grads.end(), kSentinel);
  ASSERT_EQ(swa_model_loss(model_, tokens.data(), pads.data(), 3, nullptr, 1, &loss, grads.data()), SWA_OK);
  EXPECT_EQ(loss, 0.0);
  for (float g : grads) ASSERT_EQ(g, 0.0f);
}

// Packed documents are each attended alone (positions from 0); a NULL cu_seqlens is one.
TEST_F(ModelApiTest, PackedBatchIsEachDocumentAlone) {
  const std::vector<int32_t> cu = {0, 20, 21, 35};
  std::vector<int32_t> tokens, targets;
  Batch(cu, &tokens, &targets);
  std::vector<float> packed(cu.back() * vocab_);
  ASSERT_EQ(swa_model_logits(model_, tokens.data(), cu.back(), cu.data(), 3, packed.data()), SWA_OK);
  double scale = 0;
  for (float x : packed) scale = std::max<double>(scale, std::abs(x));
  for (size_t s = 0; s + 1 < cu.size(); ++s) {
    const int64_t len = cu[s + 1] - cu[s];
    std::vector<float> alone(len * vocab_);
    ASSERT_EQ(swa_model_logits(model_, tokens.data() + cu[s], len, nullptr, 0, alone.data()), SWA_OK);
    for (int64_t i = 0; i < len * vocab_; ++i) {
      ASSERT_NEAR(alone[i], packed[cu[s] * vocab_ + i], 1e-5 * scale) << "document " << s << " element " << i;
    }
  }
}

TEST_F(ModelApiTest, SaveRejectsBadArgumentsAndRoundTrips) {
  const std::string out = TempPath("saved.safetensors");
  ExpectInvalid(swa_model_save(model_, nullptr, SWA_F32), "path");
  ExpectInvalid(swa_model_save(nullptr, out.c_str(), SWA_F32), "model");
  ExpectInvalid(swa_model_save(model_, out.c_str(), SWA_F16), "SWA_F32");
  ExpectInvalid(swa_model_save(model_, out.c_str(), static_cast<swa_dtype>(3)), "SWA_F32");
  EXPECT_FALSE(std::filesystem::exists(out));
  const std::string unwritable = TempPath("no_such_dir") + "/model.safetensors";
  EXPECT_LT(swa_model_save(model_, unwritable.c_str(), SWA_F32), 0);
  EXPECT_STRNE(swa_last_error(), "");

  const std::vector<int32_t> tokens = {256, 83, 87, 65, 32, 119, 105, 110, 100, 111, 119, 115};
  const int64_t n = static_cast<int64_t>(tokens.size());
  std::vector<float> before(n * vocab_), after(n * vocab_), rounded(n * vocab_);
  ASSERT_EQ(swa_model_logits(model_, tokens.data(), n, nullptr, 0, before.data()), SWA_OK);
  for (swa_dtype dtype : {SWA_F32, SWA_BF16}) {
    ASSERT_EQ(swa_model_save(model_, out.c_str(), dtype), SWA_OK) << swa_last_error();
    swa_model* loaded = nullptr;
    ASSERT_EQ(swa_model_load(out.c_str(), 1, &loaded), SWA_OK) << swa_last_error();
    ASSERT_EQ(swa_model_logits(loaded, tokens.data(), n, nullptr, 0,
                               dtype == SWA_F32 ? after.data() : rounded.data()),
              SWA_OK);
    swa_model_destroy(loaded);
  }
  std::remove(out.c_str());
  EXPECT_EQ(before, after) << "an f32 checkpoint must reload the same weights";
  double largest = 0, moved = 0;
  for (int64_t i = 0; i < n * vocab_; ++i) {
    largest = std::max<double>(largest, std::abs(before[i]));
    moved = std::max<double>(moved, std::abs(rounded[i] - before[i]));
  }
  // bf16 keeps 8 significant bits: the logits move, by about 2^-8 of their size at most.
  EXPECT_GT(moved, 0.0);
  EXPECT_LT(moved, 0.05 * largest);
}

}  // namespace
