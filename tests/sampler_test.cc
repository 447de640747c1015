// The sampler (src/generate/sampler.h): greedy choices, top-k and top-p sets computed
// here from their definitions, the documented draw recomputed from std::mt19937_64's
// outputs, frequencies that follow the probabilities, and refused options.
#include "generate/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "common/error.h"

namespace swa::generate {
namespace {

constexpr float kExcluded = -std::numeric_limits<float>::infinity();

std::vector<float> RandomLogits(int64_t v, uint64_t seed, double spread = 3.0) {
  std::mt19937_64 rng(seed);
  std::vector<float> z(static_cast<size_t>(v));
  for (float& x : z) x = static_cast<float>((static_cast<double>(rng() % 100000) / 100000.0 - 0.5) * spread);
  return z;
}

int32_t FirstMax(const std::vector<float>& z) {
  return static_cast<int32_t>(std::max_element(z.begin(), z.end()) - z.begin());
}

TEST(SamplerTest, TemperatureZeroAndTopKOneAreGreedy) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> z = RandomLogits(259, seed);
    Sampler zero({0.0, 0, 1.0, seed});
    Sampler top1({1.5, 1, 0.9, seed});
    for (int draw = 0; draw < 5; ++draw) {
      EXPECT_EQ(zero.Sample(z), FirstMax(z));
      EXPECT_EQ(top1.Sample(z), FirstMax(z));
    }
  }
  // Ties go to the lowest id; excluded tokens never win.
  const std::vector<float> tie{1.0f, 3.0f, kExcluded, 3.0f};
  EXPECT_EQ(Sampler({0.0, 0, 1.0, 1}).Sample(tie), 1);
  EXPECT_EQ(Argmax(std::vector<float>{kExcluded, -5.0f, kExcluded}), 1);
}

TEST(SamplerTest, TopKKeepsTheKLargestLogits) {
  const std::vector<float> z = RandomLogits(300, 4);
  const std::vector<TokenProbability> kept = Sampler({1.0, 7, 1.0, 0}).Distribution(z);
  ASSERT_EQ(kept.size(), 7u);
  std::vector<float> sorted = z;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  double sum = 0;
  for (const TokenProbability& t : kept) {
    EXPECT_GE(z[t.token], sorted[6]);
    sum += std::exp(static_cast<double>(z[t.token]));
  }
  for (const TokenProbability& t : kept)
    EXPECT_NEAR(t.probability, std::exp(static_cast<double>(z[t.token])) / sum, 1e-12);
}

TEST(SamplerTest, TopPKeepsTheSmallestSetWithThatMass) {
  // Probabilities 0.4, 0.3, 0.2, 0.1 (shuffled), thresholds away from the sums' edges:
  // 0.3 keeps {0.4}; 0.65 keeps {0.4, 0.3}; 0.75 three; 0.95 and 1 all four.
  const std::vector<double> p{0.2, 0.4, 0.1, 0.3};
  std::vector<float> z;
  for (double x : p) z.push_back(static_cast<float>(std::log(x)));
  auto kept_tokens = [&](double top_p) {
    std::vector<int32_t> t;
    for (const TokenProbability& k : Sampler({1.0, 0, top_p, 0}).Distribution(z)) t.push_back(k.token);
    std::sort(t.begin(), t.end());
    return t;
  };
  EXPECT_EQ(kept_tokens(0.3), (std::vector<int32_t>{1}));
  EXPECT_EQ(kept_tokens(0.65), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(kept_tokens(0.75), (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(kept_tokens(0.95), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(kept_tokens(1.0), (std::vector<int32_t>{0, 1, 2, 3}));

  // On random logits: the kept set is the smallest prefix of the descending
  // probabilities whose mass reaches top_p, computed here from softmax directly.
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const std::vector<float> r = RandomLogits(259, 100 + seed, 8.0);
    const double top_p = 0.5 + 0.04 * static_cast<double>(seed);
    std::vector<double> probs(r.size());
    double total = 0;
    for (size_t i = 0; i < r.size(); ++i) total += probs[i] = std::exp(static_cast<double>(r[i]));
    for (double& x : probs) x /= total;
    std::vector<double> sorted = probs;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    size_t need = 0;
    for (double mass = 0; mass < top_p;) mass += sorted[need++];
    const std::vector<TokenProbability> kept = Sampler({1.0, 0, top_p, 0}).Distribution(r);
    ASSERT_EQ(kept.size(), need);
    double kept_mass = 0;
    for (const TokenProbability& t : kept) {
      EXPECT_GE(probs[t.token], sorted[need - 1]);
      kept_mass += probs[t.token];
    }
    for (const TokenProbability& t : kept) EXPECT_NEAR(t.probability, probs[t.token] / kept_mass, 1e-9);
  }
}

TEST(SamplerTest, TheDrawIsTheDocumentedOneFromMt19937_64) {
  const std::vector<float> z = RandomLogits(259, 8, 4.0);
  for (uint64_t seed : {0ull, 1ull, 42ull, 123456789ull}) {
    Sampler sampler({0.7, 20, 0.9, seed});
    std::mt19937_64 engine(seed);
    const std::vector<TokenProbability> kept = sampler.Distribution(z);
    for (int draw = 0; draw < 50; ++draw) {
      const double u = static_cast<double>(engine() >> 11) / 9007199254740992.0;  // 2^53
      double total = 0;
      for (const TokenProbability& t : kept) total += t.probability;
      double running = 0;
      int32_t want = kept.back().token;
      for (const TokenProbability& t : kept) {
        running += t.probability;
        if (u * total < running) {
          want = t.token;
          break;
        }
      }
      EXPECT_EQ(sampler.Sample(z), want) << "seed " << seed << " draw " << draw;
    }
  }
}

TEST(SamplerTest, SameSeedSameTokensAndFrequenciesFollowTheProbabilities) {
  const std::vector<float> z{0.0f, 1.0f, kExcluded, 2.0f, -1.0f};
  Sampler a({1.0, 0, 1.0, 5}), b({1.0, 0, 1.0, 5}), c({1.0, 0, 1.0, 6});
  std::vector<int32_t> ta, tb, tc;
  for (int i = 0; i < 200; ++i) {
    ta.push_back(a.Sample(z));
    tb.push_back(b.Sample(z));
    tc.push_back(c.Sample(z));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);

  Sampler s({1.0, 0, 1.0, 77});
  constexpr int kDraws = 40000;
  std::map<int32_t, int> count;
  for (int i = 0; i < kDraws; ++i) ++count[s.Sample(z)];
  EXPECT_EQ(count.count(2), 0u);  // excluded
  const double total = std::exp(0.0) + std::exp(1.0) + std::exp(2.0) + std::exp(-1.0);
  for (int32_t t : {0, 1, 3, 4}) {
    const double p = std::exp(static_cast<double>(z[t])) / total;
    const double sigma = std::sqrt(p * (1 - p) / kDraws);
    EXPECT_NEAR(static_cast<double>(count[t]) / kDraws, p, 5 * sigma) << "token " << t;
  }
}

TEST(SamplerTest, BadOptionsAndLogitsAreRefused) {
  EXPECT_THROW(Sampler({-0.1, 0, 1.0, 0}), Error);
  EXPECT_THROW(Sampler({std::nan(""), 0, 1.0, 0}), Error);
  EXPECT_THROW(Sampler({1.0, -1, 1.0, 0}), Error);
  EXPECT_THROW(Sampler({1.0, 0, 0.0, 0}), Error);
  EXPECT_THROW(Sampler({1.0, 0, 1.5, 0}), Error);
  Sampler s({1.0, 0, 1.0, 0});
  EXPECT_THROW(s.Sample(std::vector<float>{1.0f, std::nanf("")}), Error);
  EXPECT_THROW(s.Sample(std::vector<float>{kExcluded, kExcluded}), Error);
  EXPECT_THROW(Argmax(std::vector<float>{kExcluded}), Error);
  EXPECT_THROW(Argmax(std::vector<float>{}), Error);
}

}  // namespace
}  // namespace swa::generate
