// AdamW against a plain double-precision AdamW written here from the textbook update,
// bit-identity across thread counts, the global norm against a plain double sum, and
// clipping.
#include "train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "train_test_util.h"

namespace swa::train {
namespace {

struct PlainAdamW {
  std::vector<double> p, m, v;

  // Loshchilov & Hutter, Algorithm 2 with PyTorch's placement of eps.
  void Step(double lr, int t, const std::vector<double>& g, const std::vector<ParamSpan>& spans,
            const AdamW& c) {
    for (const ParamSpan& s : spans) {
      for (int64_t i = s.offset; i < s.offset + s.count; ++i) {
        m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
        v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
        const double m_hat = m[i] / (1 - std::pow(double(c.beta1), t));
        const double v_hat = v[i] / (1 - std::pow(double(c.beta2), t));
        const double decay = s.decay ? lr * c.weight_decay * p[i] : 0.0;
        p[i] = p[i] - decay - lr * m_hat / (std::sqrt(v_hat) + c.eps);
      }
    }
  }
};

std::vector<float> Normal(int64_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(n);
  for (float& e : x) e = normal(rng);
  return x;
}

// Spans with a gap (never touched), mixed decay, and one that spans several chunks.
const std::vector<ParamSpan> kSpans = {{1600, 98400, true}, {0, 1000, true}, {1000, 500, false}};
constexpr int64_t kSize = 100000;

TEST(AdamWTest, MatchesPlainDoubleAdamW) {
  const AdamW cfg;  // 0.9, 0.95, 1e-8, 0.1
  std::vector<float> p = Normal(kSize, 1, 1.0f), m(kSize, 0.0f), v(kSize, 0.0f);
  PlainAdamW plain{std::vector<double>(p.begin(), p.end()), std::vector<double>(kSize),
                   std::vector<double>(kSize)};
  const std::vector<float> untouched(p.begin() + 1500, p.begin() + 1600);
  ThreadPool pool;
  for (int t = 1; t <= 8; ++t) {
    const std::vector<float> g = Normal(kSize, 100 + t, t % 2 ? 0.5f : 2e-3f);
    const float lr = 0.01f * t;
    AdamWStep(cfg, lr, t, kSpans, p.data(), g.data(), m.data(), v.data(), pool, 2);
    plain.Step(lr, t, std::vector<double>(g.begin(), g.end()), kSpans, cfg);
    for (int64_t i = 0; i < kSize; ++i) {
      if (i >= 1500 && i < 1600) continue;
      ASSERT_NEAR(p[i], plain.p[i], 2e-6 * (1 + std::abs(plain.p[i]))) << "step " << t << " i " << i;
      ASSERT_NEAR(m[i], plain.m[i], 1e-6 * (1 + std::abs(plain.m[i]))) << "step " << t << " i " << i;
      ASSERT_NEAR(v[i], plain.v[i], 1e-6 * (1 + std::abs(plain.v[i]))) << "step " << t << " i " << i;
    }
  }
  EXPECT_EQ(std::vector<float>(p.begin() + 1500, p.begin() + 1600), untouched);
  EXPECT_EQ(m[1550], 0.0f);
}

TEST(AdamWTest, DecayOnlyWhereAsked) {
  // A zero gradient leaves only the decay: p * (1 - lr wd) on decay spans, p elsewhere.
  const AdamW cfg;
  std::vector<float> p = Normal(2000, 2, 1.0f), m(2000, 0.0f), v(2000, 0.0f), g(2000, 0.0f);
  const std::vector<float> before = p;
  ThreadPool pool;
  AdamWStep(cfg, 0.5f, 1, {{0, 1000, true}, {1000, 1000, false}}, p.data(), g.data(), m.data(), v.data(),
            pool, 1);
  for (int i = 0; i < 2000; ++i)
    ASSERT_NEAR(p[i], i < 1000 ? before[i] * (1 - 0.5 * 0.1) : before[i], 3e-7 * std::abs(before[i])) << i;
}

TEST(AdamWTest, ThreadCountDoesNotChangeABit) {
  const AdamW cfg;
  ThreadPool pool;
  std::vector<std::vector<float>> results;
  for (int threads : {1, 3}) {
    std::vector<float> p = Normal(kSize, 3, 1.0f), m(kSize, 0.0f), v(kSize, 0.0f);
    for (int t = 1; t <= 4; ++t) {
      const std::vector<float> g = Normal(kSize, 200 + t, 1.0f);
      AdamWStep(cfg, 3e-3f, t, kSpans, p.data(), g.data(), m.data(), v.data(), pool, threads);
    }
    p.insert(p.end(), m.begin(), m.end());
    p.insert(p.end(), v.begin(), v.end());
    results.push_back(p);
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)), 0);
}

TEST(AdamWTest, RejectsBadArguments) {
  std::vector<float> x(100, 0.0f);
  ThreadPool pool;
  auto step = [&](const AdamW& c, float lr, int64_t t, std::vector<ParamSpan> spans) {
    AdamWStep(c, lr, t, spans, x.data(), x.data(), x.data(), x.data(), pool, 1);
  };
  ExpectErrorMentioning([&] { step({}, 1e-3f, 0, {{0, 10, true}}); }, {"step"});
  ExpectErrorMentioning([&] { step({}, 1e-3f, 1, {{0, 10, true}, {5, 10, false}}); }, {"overlaps"});
  ExpectErrorMentioning([&] { step({}, 1e-3f, 1, {{-1, 10, true}}); }, {"out of range"});
  EXPECT_NO_THROW(step({}, 1e-3f, 1, {{0, 10, true}, {5, 0, false}, {10, 5, false}}));
  ExpectErrorMentioning([&] { step({1.0f, 0.95f, 1e-8f, 0.1f}, 1e-3f, 1, {{0, 10, true}}); }, {"beta1"});
  ExpectErrorMentioning([&] { step({}, std::nanf(""), 1, {{0, 10, true}}); }, {"lr"});
}

TEST(GlobalNormTest, MatchesPlainDoubleSumForAnyThreadCount) {
  ThreadPool pool;
  for (int64_t n : {0, 1, 7, 32768, 100003}) {
    const std::vector<float> g = Normal(n, 5 + n, 3.0f);
    double sum = 0;
    for (float x : g) sum += double(x) * double(x);
    const double one = GlobalNorm(g.data(), n, pool, 1), three = GlobalNorm(g.data(), n, pool, 3);
    EXPECT_NEAR(one, std::sqrt(sum), 1e-12 * (1 + std::sqrt(sum))) << "n " << n;
    EXPECT_EQ(std::memcmp(&one, &three, sizeof(double)), 0) << "n " << n;
  }
}

TEST(ClipTest, ScalesOnlyAboveTheLimit) {
  ThreadPool pool;
  const int64_t n = 70001;
  const std::vector<float> g0 = Normal(n, 6, 1.0f);
  double sum = 0;
  for (float x : g0) sum += double(x) * double(x);
  const double norm = std::sqrt(sum);  // about sqrt(n) = 264.6

  std::vector<float> g = g0;
  EXPECT_NEAR(ClipGradients(g.data(), n, 1.0, pool, 3), norm, 1e-9 * norm);
  const float factor = static_cast<float>(1.0 / norm);
  double clipped = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(g[i], g0[i] * factor) << i;
    clipped += double(g[i]) * g[i];
  }
  EXPECT_NEAR(std::sqrt(clipped), 1.0, 1e-6);

  g = g0;
  EXPECT_NEAR(ClipGradients(g.data(), n, 2 * norm, pool, 2), norm, 1e-9 * norm);
  EXPECT_EQ(g, g0);

  g = g0;
  g[17] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(std::isinf(ClipGradients(g.data(), n, 1.0, pool, 2)));
  EXPECT_EQ(g[16], g0[16]);

  g = g0;
  ScaleGradients(g.data(), n, -0.25f, pool, 3);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(g[i], g0[i] * -0.25f);
  ExpectErrorMentioning([&] { ClipGradients(g.data(), n, 0.0, pool, 1); }, {"max_norm"});
}

}  // namespace
}  // namespace swa::train
