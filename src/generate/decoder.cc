#include "generate/decoder.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace swa::generate {
namespace {

std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace

Decoder::Decoder(model::ModelConfig config, std::vector<float> params, const DecoderOptions& options)
    : config_(std::move(config)), params_(std::move(params)), options_(options) {
  model::ValidateConfig(config_);
  if (options_.chunk < 1 || options_.chunk > kMaxChunk) {
    ThrowInvalid("chunk (prefill tokens per piece) must be in [1, " + Str(kMaxChunk) + "], got " +
                 Str(options_.chunk));
  }
  if (options_.threads < 0)
    ThrowInvalid("threads must be >= 0 (0 = all cores), got " + Str(options_.threads));
  StreamingOptions& s = options_.streaming;
  if (s.sinks < -1) ThrowInvalid("stream sinks must be >= 0 (or -1 = off), got " + Str(s.sinks));
  if (s.enabled()) {
    if (s.window == 0) s.window = DefaultStreamWindow(config_);
    if (s.window < 1 || s.window > (int64_t{1} << 30)) {
      ThrowInvalid("stream window must be in [1, 2^30], got " + Str(s.window));
    }
  } else if (s.window != 0) {
    ThrowInvalid("a stream window needs stream sinks (StreamingLLM is off)");
  }
  if (s.context < 0 || s.context > (int64_t{1} << 30)) {
    ThrowInvalid("the evaluation context must be in [1, 2^30] (0 = none), got " + Str(s.context));
  }
  if (s.context > 0 && s.enabled()) ThrowInvalid("an evaluation context does not combine with stream sinks");
  weights_ = ViewWeights(config_, params_, &layout_);
  plans_ = PlanLayers(config_);
  int64_t most_groups = 0;
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    most_groups = std::max(most_groups, plans_[i].gate_groups);
    caches_.push_back(std::make_unique<LayerCache>(config_, config_.layers[i], weights_.layers[i].sinks,
                                                   options_.chunk, options_.threads, options_.streaming));
  }
  ws_.Resize(config_, options_.chunk, most_groups);
}

void Decoder::CheckTokens(std::span<const int32_t> tokens) const {
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size) {
      ThrowInvalid("token " + Str(tokens[t]) + " at " + Str(static_cast<int64_t>(t)) +
                   " is outside the vocabulary [0, " + Str(config_.vocab_size) + ")");
    }
  }
}

void Decoder::Prefill(std::span<const int32_t> tokens, float* logits) {
  CheckTokens(tokens);
  const int64_t total = static_cast<int64_t>(tokens.size()), v = config_.vocab_size;
  for (int64_t b = 0; b < total; b += options_.chunk) {
    const int64_t n = std::min(options_.chunk, total - b);
    Forward(tokens.data() + b, n, logits != nullptr ? n : 0, logits != nullptr ? logits + b * v : nullptr);
  }
}

std::span<const float> Decoder::PrefillLast(std::span<const int32_t> tokens) {
  if (tokens.empty()) ThrowInvalid("PrefillLast needs at least one token");
  CheckTokens(tokens);
  const int64_t total = static_cast<int64_t>(tokens.size());
  for (int64_t b = 0; b < total; b += options_.chunk) {
    const int64_t n = std::min(options_.chunk, total - b);
    const bool last = b + n == total;
    Forward(tokens.data() + b, n, last ? 1 : 0, last ? ws_.logits.data() : nullptr);
  }
  return std::span<const float>(ws_.logits.data(), static_cast<size_t>(config_.vocab_size));
}

void Decoder::Forward(const int32_t* tokens, int64_t n, int64_t rows, float* logits) {
  EmbedRows(config_, weights_, tokens, n, &ws_);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    LayerCache* cache = caches_[i].get();
    LayerRows(
        config_, weights_.layers[i], plans_[i], n,
        [cache](int64_t t, const float* q, const float* k, const float* v, float* out) {
          cache->AppendAttend(t, q, k, v, out);
        },
        pool_, options_.threads, &ws_);
  }
  position_ += n;
  if (rows > 0) HeadRows(config_, weights_, n - rows, rows, pool_, options_.threads, &ws_, logits);
}

void Decoder::AdvanceForTiming(int64_t positions) {
  if (positions < 0) ThrowInvalid("AdvanceForTiming: negative position count " + Str(positions));
  for (auto& cache : caches_) cache->AppendBlank(positions);
  position_ += positions;
}

void Decoder::Reset() {
  for (auto& cache : caches_) cache->Reset();
  position_ = 0;
}

int64_t Decoder::CacheBytes() const {
  int64_t bytes = 0;
  for (const auto& cache : caches_) bytes += cache->BytesUsed();
  return bytes;
}

int64_t Decoder::LayerCacheBytes(int64_t layer) const {
  if (layer < 0 || layer >= static_cast<int64_t>(caches_.size())) {
    ThrowInvalid("layer must be in [0, " + std::to_string(caches_.size()) + "), got " +
                 std::to_string(layer));
  }
  return caches_[layer]->BytesUsed();
}

int64_t Decoder::NumCaches() const {
  int64_t count = 0;
  for (const auto& cache : caches_) count += cache->NumCaches();
  return count;
}

bool Decoder::CacheGrows() const {
  return std::any_of(caches_.begin(), caches_.end(), [](const auto& c) { return c->Grows(); });
}

}  // namespace swa::generate
