#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "common/error.h"

namespace swa::generate {
namespace {

void CheckLogit(float z, size_t token) {
  if (std::isnan(z) || z == std::numeric_limits<float>::infinity()) {
    throw Error(SWA_ERR_INTERNAL, "the model produced a non-finite logit (" + std::to_string(z) +
                                      ") for token " + std::to_string(token));
  }
}

}  // namespace

void ValidateSamplerOptions(const SamplerOptions& o) {
  if (!std::isfinite(o.temperature) || o.temperature < 0) {
    ThrowInvalid("temperature must be finite and >= 0 (0 = greedy), got " + std::to_string(o.temperature));
  }
  if (o.top_k < 0) ThrowInvalid("top-k must be >= 0 (0 = all tokens), got " + std::to_string(o.top_k));
  if (!(o.top_p > 0 && o.top_p <= 1)) ThrowInvalid("top-p must be in (0, 1], got " + std::to_string(o.top_p));
}

int32_t Argmax(std::span<const float> logits) {
  if (logits.empty()) ThrowInvalid("no logits to choose from");
  size_t best = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    CheckLogit(logits[i], i);
    if (logits[i] > logits[best]) best = i;
  }
  if (logits[best] == -std::numeric_limits<float>::infinity()) {
    ThrowInvalid("every token is excluded: no finite logit to choose from");
  }
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) {
  ValidateSamplerOptions(options_);
}

std::vector<TokenProbability> Sampler::Distribution(std::span<const float> logits) const {
  std::vector<int32_t> order;
  for (size_t i = 0; i < logits.size(); ++i) {
    CheckLogit(logits[i], i);
    if (std::isfinite(logits[i])) order.push_back(static_cast<int32_t>(i));
  }
  if (order.empty()) ThrowInvalid("every token is excluded: no finite logit to sample from");
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; });
  if (greedy()) return {{order[0], 1.0}};
  if (options_.top_k > 0 && static_cast<int64_t>(order.size()) > options_.top_k) order.resize(options_.top_k);
  // p_i = exp((z_i - z_0) / T) / sum_j: every exponent <= 0, the first exactly 0.
  std::vector<TokenProbability> kept(order.size());
  const double top = logits[order[0]];
  double sum = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const double p = std::exp((static_cast<double>(logits[order[i]]) - top) / options_.temperature);
    kept[i] = {order[i], p};
    sum += p;
  }
  for (TokenProbability& t : kept) t.probability /= sum;
  if (options_.top_p < 1) {
    double mass = 0;
    size_t count = 0;
    while (count < kept.size() && (count == 0 || mass < options_.top_p)) mass += kept[count++].probability;
    kept.resize(count);
    for (TokenProbability& t : kept) t.probability /= mass;
  }
  return kept;
}

int32_t Sampler::Sample(std::span<const float> logits) {
  if (greedy()) return Argmax(logits);
  const std::vector<TokenProbability> kept = Distribution(logits);
  double total = 0;
  for (const TokenProbability& t : kept) total += t.probability;
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // [0, 1), 53 random bits
  const double r = u * total;
  double running = 0;
  for (const TokenProbability& t : kept) {
    running += t.probability;
    if (r < running) return t.token;
  }
  return kept.back().token;
}

}  // namespace swa::generate
