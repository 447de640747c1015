#include "serve/batched_decoder.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "generate/decoder.h"

namespace swa::serve {
namespace {

std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace

BatchedDecoder::BatchedDecoder(model::ModelConfig config, std::vector<float> params,
                               const BatchedDecoderOptions& options)
    : config_(std::move(config)), params_(std::move(params)), options_(options) {
  model::ValidateConfig(config_);
  if (options_.chunk < 1 || options_.chunk > generate::kMaxChunk) {
    ThrowInvalid("chunk must be in [1, " + Str(generate::kMaxChunk) + "], got " + Str(options_.chunk));
  }
  if (options_.max_batch < 1) ThrowInvalid("max batch must be >= 1, got " + Str(options_.max_batch));
  if (options_.threads < 1) ThrowInvalid("threads must be >= 1, got " + Str(options_.threads));
  weights_ = generate::ViewWeights(config_, params_, &layout_);
  plans_ = generate::PlanLayers(config_);
  int64_t most_groups = 0;
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    most_groups = std::max(most_groups, plans_[i].gate_groups);
    caches_.push_back(std::make_unique<generate::LayerCache>(config_, config_.layers[i],
                                                             weights_.layers[i].sinks, options_.chunk,
                                                             options_.threads, generate::StreamingOptions{}));
    caches_.back()->RemoveSequence(0);  // sequences come and go by id
  }
  ws_.Resize(config_, std::max(options_.chunk, options_.max_batch), most_groups);
}

void BatchedDecoder::Add(int64_t id) {
  if (id < 0) ThrowInvalid("sequence id must be >= 0, got " + Str(id));
  if (live_.count(id) != 0) ThrowInvalid("sequence " + Str(id) + " is already live");
  for (auto& cache : caches_) cache->AddSequence(id);
  live_.insert(id);
}

void BatchedDecoder::Remove(int64_t id) {
  CheckLive(id);
  for (auto& cache : caches_) cache->RemoveSequence(id);
  live_.erase(id);
}

void BatchedDecoder::CheckLive(int64_t id) const {
  if (live_.count(id) == 0) ThrowInvalid("sequence " + Str(id) + " is not live");
}

void BatchedDecoder::CheckTokens(std::span<const int32_t> tokens) const {
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size) {
      ThrowInvalid("token " + Str(tokens[t]) + " at " + Str(static_cast<int64_t>(t)) +
                   " is outside the vocabulary [0, " + Str(config_.vocab_size) + ")");
    }
  }
}

std::span<const float> BatchedDecoder::Prefill(int64_t id, std::span<const int32_t> tokens, bool logits) {
  CheckLive(id);
  CheckTokens(tokens);
  if (tokens.empty()) {
    if (logits) ThrowInvalid("Prefill with logits needs at least one token");
    return {};
  }
  const int64_t total = static_cast<int64_t>(tokens.size());
  for (int64_t b = 0; b < total; b += options_.chunk) {
    const int64_t n = std::min(options_.chunk, total - b);
    generate::EmbedRows(config_, weights_, tokens.data() + b, n, &ws_);
    for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
      generate::LayerCache* cache = caches_[i].get();
      generate::LayerRows(
          config_, weights_.layers[i], plans_[i], n,
          [cache, id](int64_t t, const float* q, const float* k, const float* v, float* out) {
            cache->AppendAttendSequence(id, t, q, k, v, out);
          },
          pool_, options_.threads, &ws_);
    }
    if (logits && b + n == total) {
      generate::HeadRows(config_, weights_, n - 1, 1, pool_, options_.threads, &ws_, ws_.logits.data());
    }
  }
  if (!logits) return {};
  return std::span<const float>(ws_.logits.data(), static_cast<size_t>(config_.vocab_size));
}

std::span<const float> BatchedDecoder::Step(std::span<const int64_t> ids, std::span<const int32_t> tokens) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < 1 || n > options_.max_batch || tokens.size() != ids.size()) {
    ThrowInvalid("Step takes 1 to " + Str(options_.max_batch) + " sequences with one token each, got " +
                 Str(n) + " ids and " + Str(static_cast<int64_t>(tokens.size())) + " tokens");
  }
  std::unordered_set<int64_t> seen;
  for (int64_t id : ids) {
    CheckLive(id);
    if (!seen.insert(id).second) ThrowInvalid("sequence " + Str(id) + " appears twice in one step");
  }
  CheckTokens(tokens);
  generate::EmbedRows(config_, weights_, tokens.data(), n, &ws_);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    generate::LayerCache* cache = caches_[i].get();
    generate::LayerRows(
        config_, weights_.layers[i], plans_[i], n,
        [cache, &ids](int64_t rows, const float* q, const float* k, const float* v, float* out) {
          cache->AppendAttendBatch(ids.data(), rows, q, k, v, out);
        },
        pool_, options_.threads, &ws_);
  }
  generate::HeadRows(config_, weights_, 0, n, pool_, options_.threads, &ws_, ws_.logits.data());
  return std::span<const float>(ws_.logits.data(), static_cast<size_t>(n * config_.vocab_size));
}

int64_t BatchedDecoder::LayerCacheBytes(int64_t layer) const {
  if (layer < 0 || layer >= config_.num_hidden_layers) {
    ThrowInvalid("layer must be in [0, " + Str(config_.num_hidden_layers) + "), got " + Str(layer));
  }
  return caches_[layer]->BytesUsed();
}

}  // namespace swa::serve
