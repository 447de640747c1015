// The server's parts without HTTP: the request parser's fields and refusals, the
// Prometheus histogram, and the scheduler against generate::Generate (each stream's text
// equals that of a lone generation with the same options, however many run at once and
// however the prompts are chunked).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "generate/decoder.h"
#include "generate/generate.h"
#include "generate_test_util.h"
#include "serve/batched_decoder.h"
#include "serve/completion_request.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "serve/stream.h"

namespace swa::serve {
namespace {

TEST(ServeRequestTest, FieldsAndDefaults) {
  const CompletionRequest r = ParseCompletionRequest(
      R"({"prompt": "hi", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 3, "seed": 11,
          "stop": ["a", "bc"], "stream": true, "model": "x", "logprobs": null, "echo": false})",
      {});
  EXPECT_EQ(r.generation.prompt, "hi");
  EXPECT_EQ(r.generation.max_tokens, 7);
  EXPECT_EQ(r.generation.sampling.temperature, 0.5);
  EXPECT_EQ(r.generation.sampling.top_p, 0.9);
  EXPECT_EQ(r.generation.sampling.top_k, 3);
  EXPECT_EQ(r.generation.sampling.seed, 11u);
  EXPECT_EQ(r.generation.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream);
  const CompletionRequest d = ParseCompletionRequest(R"({"prompt": "", "stop": "z", "seed": null})", {});
  EXPECT_EQ(d.generation.max_tokens, 16);
  EXPECT_EQ(d.generation.sampling.temperature, 1.0);
  EXPECT_EQ(d.generation.sampling.seed, 0u);
  EXPECT_EQ(d.generation.stop, (std::vector<std::string>{"z"}));
  EXPECT_FALSE(d.stream);
}

TEST(ServeRequestTest, BadBodiesNameTheField) {
  RequestLimits limits;
  limits.max_prompt_bytes = 4;
  limits.max_tokens = 100;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{", "JSON"},
      {"3", "object"},
      {R"({"max_tokens": 1})", "prompt"},
      {R"({"prompt": ["a"]})", "prompt"},
      {R"({"prompt": "12345"})", "prompt"},
      {R"({"prompt": "a", "max_tokens": -2})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 101})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 18446744073709551615})", "max_tokens"},
      {R"({"prompt": "a", "temperature": true})", "temperature"},
      {R"({"prompt": "a", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "a", "stop": {"x": 1}})", "stop"},
      {R"({"prompt": "a", "stop": ["x", ""]})", "stop"},
      {R"({"prompt": "a", "stream": 1})", "stream"},
      {R"({"prompt": "a", "model": 3})", "model"},
      {R"({"prompt": "a", "n": 0})", "n"},
  };
  for (const auto& [body, field] : bad) {
    try {
      ParseCompletionRequest(body, limits);
      ADD_FAILURE() << body << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), SWA_ERR_INVALID_ARGUMENT) << body;
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << body << ": " << e.what();
    }
  }
}

TEST(ServeMetricsTest, HistogramBucketsAreCumulative) {
  Histogram h({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 3.0, 7.0, 9.0}) h.Observe(v);
  std::string out;
  h.Render("t", &out);
  EXPECT_EQ(out,
            "t_bucket{le=\"1\"} 2\nt_bucket{le=\"2\"} 3\nt_bucket{le=\"5\"} 4\nt_bucket{le=\"+Inf\"} 6\n"
            "t_sum 22\nt_count 6\n");
}

void ExpectClose(std::span<const float> got, std::span<const float> want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 2e-5 * std::max(1.0f, std::abs(want[i]))) << what << " logit " << i;
  }
}

// The batched decoder's logits against one generate::Decoder per sequence: sequences of
// different lengths (prompts over several chunks, windows wrapping, sink tokens, gates,
// GQA), stepped together, some leaving and a new one joining in the middle.
TEST(ServeBatchedDecoderTest, EverySequenceMatchesItsOwnDecoder) {
  const model::ModelConfig config = generate_test::EveryFeatureConfig();
  const std::vector<float> params = generate_test::RandomParams(config, 9);
  BatchedDecoderOptions options;
  options.chunk = 4;
  options.max_batch = 4;
  BatchedDecoder batched(config, params, options);
  generate::DecoderOptions d;
  d.chunk = 4;
  d.threads = 1;
  std::vector<std::unique_ptr<generate::Decoder>> alone;
  std::vector<int64_t> ids;
  std::vector<int32_t> next;
  auto start = [&](int64_t id, int64_t prompt_length) {
    std::vector<int32_t> prompt;
    for (int64_t t = 0; t < prompt_length; ++t)
      prompt.push_back(static_cast<int32_t>((id * 37 + t * 11) % 256));
    batched.Add(id);
    const std::vector<float> got = [&] {
      std::span<const float> l = batched.Prefill(id, prompt, true);
      return std::vector<float>(l.begin(), l.end());
    }();
    alone.push_back(std::make_unique<generate::Decoder>(config, params, d));
    ExpectClose(got, alone.back()->PrefillLast(prompt), "prefill of sequence " + std::to_string(id));
    ids.push_back(id);
    next.push_back(static_cast<int32_t>(id + 40));
  };
  for (int64_t id = 0; id < 3; ++id) start(id * 5 + 1, 3 + 4 * id);  // 3, 7, 11 tokens
  for (int step = 0; step < 20; ++step) {
    if (step == 6) {  // the first sequence leaves, a new one joins
      batched.Remove(ids[0]);
      ids.erase(ids.begin());
      alone.erase(alone.begin());
      next.erase(next.begin());
      start(2, 9);
    }
    if (step == 9) start(3, 1);
    std::span<const float> logits = batched.Step(ids, next);
    const int64_t v = config.vocab_size;
    const std::vector<float> rows(logits.begin(), logits.end());
    for (size_t b = 0; b < ids.size(); ++b) {
      std::span<const float> want = alone[b]->Step(next[b]);
      ExpectClose(std::span<const float>(rows.data() + b * v, v), want,
                  "step " + std::to_string(step) + " sequence " + std::to_string(ids[b]));
      next[b] = static_cast<int32_t>((next[b] * 7 + step + 3) % 256);
    }
  }
  EXPECT_GT(batched.LayerCacheBytes(0), 0);
  for (int64_t id : ids) batched.Remove(id);
  EXPECT_THROW(batched.Step(std::vector<int64_t>{2}, std::vector<int32_t>{1}), Error);
}

// Each stream's text against generate::Generate with a decoder of its own.
TEST(ServeSchedulerTest, EveryStreamMatchesALoneGeneration) {
  const model::ModelConfig config = generate_test::EveryFeatureConfig();
  const std::vector<float> params = generate_test::RandomParams(config, 5);
  Metrics metrics(config.num_hidden_layers);
  SchedulerOptions options;
  options.max_streams = 3;  // fewer than the requests: some wait, then are admitted
  options.max_queue = 16;
  options.prefill_chunk = 4;  // prompts over several steps
  Scheduler scheduler(config, params, options, &metrics);

  std::vector<std::shared_ptr<Stream>> streams;
  std::vector<generate::GenerateOptions> wanted;
  for (int i = 0; i < 8; ++i) {
    CompletionRequest r;
    r.generation.prompt = std::string("prompt number ") + std::string(static_cast<size_t>(i * 3), 'x');
    r.generation.sampling.temperature = i % 3 == 0 ? 0.0 : 1.5;
    r.generation.sampling.top_k = i % 2 ? 0 : 20;
    r.generation.sampling.seed = 100 + i;
    r.generation.max_tokens = 10 + 3 * i;
    wanted.push_back(r.generation);
    streams.push_back(std::make_shared<Stream>(std::move(r)));
    ASSERT_EQ(scheduler.Submit(streams.back()), SubmitResult::kQueued);
  }
  generate::DecoderOptions d;
  d.threads = 1;
  generate::Decoder decoder(config, params, d);
  for (size_t i = 0; i < streams.size(); ++i) {
    std::string text;
    while (!streams[i]->Wait(std::chrono::milliseconds(100), &text)) {
    }
    std::string alone;
    const generate::GenerateStats stats =
        generate::Generate(&decoder, wanted[i], [&](std::string_view t) { alone += t; });
    EXPECT_EQ(text, alone) << "stream " << i;
    EXPECT_EQ(streams[i]->completion_tokens(), stats.generated_tokens) << "stream " << i;
    EXPECT_EQ(streams[i]->prompt_tokens(), stats.prompt_tokens) << "stream " << i;
    EXPECT_EQ(streams[i]->reason() == FinishReason::kLength,
              stats.reason == generate::StopReason::kMaxTokens);
  }
}

TEST(ServeSchedulerTest, AFullQueueRefusesAndShutdownEndsEveryStream) {
  const model::ModelConfig config = generate_test::BigramConfig();
  // r -> R -> r: a loop that never ends by itself.
  const std::vector<float> params = generate_test::BigramParams({{'r', 'R', 'r'}});
  Metrics metrics(config.num_hidden_layers);
  SchedulerOptions options;
  options.max_streams = 1;
  options.max_queue = 1;
  Scheduler scheduler(config, params, options, &metrics);
  CompletionRequest r;
  r.generation.prompt = "r";
  r.generation.sampling.temperature = 0;
  r.generation.max_tokens = 1 << 30;
  auto first = std::make_shared<Stream>(r);
  auto second = std::make_shared<Stream>(r);
  ASSERT_EQ(scheduler.Submit(first), SubmitResult::kQueued);
  ASSERT_EQ(scheduler.Submit(second), SubmitResult::kQueued);
  EXPECT_EQ(scheduler.Submit(std::make_shared<Stream>(r)), SubmitResult::kQueueFull);
  std::string text;
  while (text.size() < 6) first->Wait(std::chrono::milliseconds(100), &text);
  EXPECT_EQ(text.substr(0, 6), "RrRrRr");
  scheduler.Shutdown();
  EXPECT_TRUE(first->Wait(std::chrono::milliseconds(0), &text));
  EXPECT_EQ(first->reason(), FinishReason::kAbort);
  EXPECT_TRUE(second->Wait(std::chrono::milliseconds(0), &text));
  EXPECT_EQ(second->reason(), FinishReason::kAbort);
  EXPECT_EQ(scheduler.Submit(std::make_shared<Stream>(r)), SubmitResult::kShuttingDown);
}

}  // namespace
}  // namespace swa::serve
