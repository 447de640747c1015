#include "generate/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "common/error.h"
#include "generate/decoder.h"

namespace swa::generate {
namespace {

using Clock = std::chrono::steady_clock;

// Tokens fed to the decoder per call (it splits them into its own chunks).
constexpr int64_t kFeed = 4096;

// -log softmax(row)[target], in double.
double NegLogProb(const float* row, int64_t vocab, int32_t target) {
  double m = row[0];
  for (int64_t j = 1; j < vocab; ++j) m = std::max(m, static_cast<double>(row[j]));
  double sum = 0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(row[j]) - m);
  return m + std::log(sum) - static_cast<double>(row[target]);
}

const char kFillerText[] =
    "The river runs past the old mill and under the stone bridge, where the children wait for the boats "
    "to come back in the evening. Nobody remembers who built the bridge, but everyone knows the story of "
    "the winter it froze, when the whole town walked across the ice to the market on the other side. ";

}  // namespace

double ContextScore::bits_per_byte() const {
  return bytes > 0 ? nats / static_cast<double>(bytes) / std::log(2.0) : 0.0;
}

std::vector<ContextScore> ScoreDocuments(const model::ModelConfig& config, const std::vector<float>& params,
                                         const std::vector<std::span<const uint8_t>>& documents,
                                         const std::vector<int64_t>& contexts, int64_t chunk, int threads,
                                         const EvalProgress& progress) {
  int64_t total = 0;
  for (const auto& d : documents) total += static_cast<int64_t>(d.size());
  const int64_t vocab = config.vocab_size;
  std::vector<ContextScore> scores;
  std::vector<int32_t> tokens;
  std::vector<float> logits(static_cast<size_t>(kFeed * vocab));
  for (int64_t context : contexts) {
    if (context < 0)
      ThrowInvalid("an evaluation length must be >= 1 (0 = unbounded), got " + std::to_string(context));
    DecoderOptions options;
    options.chunk = chunk;
    options.threads = threads;
    options.streaming.context = context;
    Decoder decoder(config, params, options);
    ContextScore score;
    score.context = context;
    const auto t0 = Clock::now();
    for (const auto& doc : documents) {
      decoder.Reset();
      const int64_t n = static_cast<int64_t>(doc.size());
      // Token t is BOS or byte t - 1; its logits predict byte t.
      for (int64_t begin = 0; begin < n; begin += kFeed) {
        const int64_t count = std::min(kFeed, n - begin);
        tokens.resize(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) {
          const int64_t t = begin + i;
          tokens[i] = t == 0 ? model::kBos : static_cast<int32_t>(doc[t - 1]);
        }
        decoder.Prefill(tokens, logits.data());
        for (int64_t i = 0; i < count; ++i) {
          score.nats += NegLogProb(logits.data() + i * vocab, vocab, static_cast<int32_t>(doc[begin + i]));
        }
        score.bytes += count;
        if (progress) progress(context, score.bytes, total);
      }
    }
    score.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    scores.push_back(score);
  }
  return scores;
}

std::vector<RecallScore> RecallProbe(const model::ModelConfig& config, const std::vector<float>& params,
                                     const std::vector<int64_t>& distances, int64_t trials, int64_t length,
                                     std::span<const uint8_t> filler, int threads, uint64_t seed) {
  if (length < 2 || trials < 1) ThrowInvalid("recall probe: length >= 2 and trials >= 1");
  if (filler.empty())
    filler = std::span(reinterpret_cast<const uint8_t*>(kFillerText), sizeof(kFillerText) - 1);
  DecoderOptions options;
  options.threads = threads;
  Decoder decoder(config, params, options);
  const int64_t vocab = config.vocab_size, half = length / 2;
  std::mt19937_64 rng(seed);
  std::vector<RecallScore> scores;
  std::vector<float> logits;
  for (int64_t distance : distances) {
    if (distance < 0) ThrowInvalid("recall probe: distances must be >= 0");
    RecallScore score;
    score.distance = distance;
    for (int64_t trial = 0; trial < trials; ++trial) {
      std::vector<int32_t> letters(static_cast<size_t>(length));
      for (int32_t& c : letters) c = 'a' + static_cast<int32_t>(rng() % 26);
      // BOS, the string, the filler, the string again.
      std::vector<int32_t> seq = {model::kBos};
      seq.insert(seq.end(), letters.begin(), letters.end());
      const size_t offset = static_cast<size_t>(rng() % filler.size());
      for (int64_t i = 0; i < distance; ++i)
        seq.push_back(filler[(offset + static_cast<size_t>(i)) % filler.size()]);
      seq.insert(seq.end(), letters.begin(), letters.end());
      const int64_t n = static_cast<int64_t>(seq.size()) - 1;  // fed; the last one is only predicted
      logits.resize(static_cast<size_t>(n * vocab));
      decoder.Reset();
      decoder.Prefill(std::span<const int32_t>(seq.data(), static_cast<size_t>(n)), logits.data());
      // The second copy's second half: seq[n + 1 - half .. n], predicted by the rows before.
      for (int64_t t = n + 1 - half; t <= n; ++t) {
        const float* row = logits.data() + (t - 1) * vocab;
        score.right += (std::max_element(row, row + vocab) - row) == seq[t];
        ++score.predicted;
      }
    }
    scores.push_back(score);
  }
  return scores;
}

int64_t WidestLocalWindow(const model::ModelConfig& config) {
  int64_t widest = 0;
  for (const model::LayerConfig& layer : config.layers) {
    for (const model::HeadWindow& w : layer.windows) {
      if (w.left >= 0) widest = std::max(widest, w.left + 1);
    }
  }
  return widest;
}

}  // namespace swa::generate
