// Choosing the next token from logits: greedy, or a seeded draw with temperature, top-k
// and top-p (nucleus) sampling, the same on every platform.
//
// The draw, fixed here so that a seed gives the same text everywhere (the standard fixes
// std::mt19937_64's outputs but not those of std::uniform_real_distribution or
// std::discrete_distribution):
//   1. Greedy when temperature is 0 or top_k is 1: the largest logit, the lowest token id
//      among equal ones; the generator is not advanced.
//   2. Candidates: the tokens with a finite logit (-inf excludes a token), ordered by
//      logit, largest first, equal logits by token id, lowest first; the first top_k of
//      them when top_k > 0.
//   3. p_i = exp((z_i - z_0) / temperature) / sum_j exp((z_j - z_0) / temperature), in
//      double (z_0 the largest logit).
//   4. top_p < 1: the smallest prefix of the candidates whose probabilities sum to at
//      least top_p (the smallest set with that mass: the candidates are in decreasing
//      order of probability), at least one token.
//   5. u = (g() >> 11) * 2^-53 from one output g() of std::mt19937_64(seed), uniform in
//      [0, 1); r = u * (sum of the kept p_i); the token is the first kept candidate whose
//      running sum of p exceeds r (the last kept one if rounding leaves none).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace swa::generate {

struct SamplerOptions {
  double temperature = 1.0;  // 0 = greedy; finite, >= 0
  int64_t top_k = 0;         // keep the k most likely tokens; 0 = all
  double top_p = 1.0;        // nucleus mass, in (0, 1]; 1 = all
  uint64_t seed = 0;
};

// Throws swa::Error naming the bad field (temperature, top_k or top_p) and why.
void ValidateSamplerOptions(const SamplerOptions& options);

struct TokenProbability {
  int32_t token = 0;
  double probability = 0;  // renormalised over the kept tokens
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);

  bool greedy() const { return options_.temperature == 0 || options_.top_k == 1; }

  // The next token from logits [V]. A NaN or +inf logit is an error (the model is broken);
  // -inf excludes a token; at least one must be finite.
  int32_t Sample(std::span<const float> logits);

  // Steps 2 to 4 above: the kept tokens in candidate order with their probabilities.
  std::vector<TokenProbability> Distribution(std::span<const float> logits) const;

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
};

// The largest logit's token (the lowest id among equal ones). Throws on NaN or +inf, and
// when no logit is finite (-inf excludes a token).
int32_t Argmax(std::span<const float> logits);

}  // namespace swa::generate
