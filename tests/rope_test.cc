// RoPE against its definition, evaluated directly in double: pair i of the NeoX layout,
// (x[i], x[i + d/2]), rotated by the angle position * theta^(-2i/d).
#include "ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace swa {
namespace {

std::vector<double> DirectRope(const std::vector<float>& x, int64_t position, double theta, int64_t dims) {
  std::vector<double> y(x.begin(), x.end());
  const int64_t half = dims / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double angle =
        static_cast<double>(position) * std::pow(theta, -2.0 * i / static_cast<double>(dims));
    y[i] = x[i] * std::cos(angle) - x[i + half] * std::sin(angle);
    y[i + half] = x[i + half] * std::cos(angle) + x[i] * std::sin(angle);
  }
  return y;
}

TEST(RopeTest, MatchesTheDirectFormula) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal;
  const int64_t positions[] = {0, 1, 2, 17, 4095, 65537, int64_t{1} << 30, (int64_t{1} << 40) - 3};
  for (int64_t dim : {2, 8, 64, 80, 128}) {
    for (int64_t dims : {dim, dim / 2 - (dim / 2) % 2}) {
      if (dims < 2) continue;
      for (double theta : {10000.0, 500000.0}) {
        ops::RopeAngles angles(ops::RopeSpec{theta, dims});
        for (int64_t pos : positions) {
          std::vector<float> x(dim);
          for (float& e : x) e = normal(rng);
          const std::vector<double> want = DirectRope(x, pos, theta, dims);
          std::vector<float> got = x;
          angles.At(pos);
          ops::RotateRow(angles, got.data());
          for (int64_t e = 0; e < dim; ++e) {
            EXPECT_NEAR(got[e], want[e], 2e-6 * (1 + std::abs(want[e])))
                << "dim " << dim << " dims " << dims << " theta " << theta << " pos " << pos << " e " << e;
          }
          // Elements past `dims` pass through unchanged.
          for (int64_t e = dims; e < dim; ++e) EXPECT_EQ(got[e], x[e]);
        }
      }
    }
  }
}

TEST(RopeTest, ScoresDependOnlyOnThePositionDifference) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  const int64_t dim = 64;
  ops::RopeAngles angles(ops::RopeSpec{10000.0, dim});
  std::vector<float> q(dim), k(dim);
  for (float& e : q) e = normal(rng);
  for (float& e : k) e = normal(rng);
  auto score = [&](int64_t pq, int64_t pk) {
    std::vector<float> a = q, b = k;
    angles.At(pq);
    ops::RotateRow(angles, a.data());
    angles.At(pk);
    ops::RotateRow(angles, b.data());
    double s = 0;
    for (int64_t e = 0; e < dim; ++e) s += static_cast<double>(a[e]) * b[e];
    return s;
  };
  const double base = score(37, 30);
  EXPECT_NEAR(score(1037, 1030), base, 1e-4);
  EXPECT_NEAR(score(7, 0), base, 1e-4);
  EXPECT_GT(std::abs(score(37, 29) - base), 1e-3);  // a different distance gives a different score
}

TEST(RopeTest, RotateHeadsRoundsOnceToTheStorageType) {
  std::mt19937_64 rng(9);
  std::normal_distribution<float> normal;
  const int64_t heads = 3, dim = 16;
  ops::RopeAngles angles(ops::RopeSpec{10000.0, dim});
  angles.At(123);
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    std::vector<uint8_t> src(heads * dim * 4), dst(heads * dim * 4);
    std::vector<float> x(heads * dim);
    for (int64_t i = 0; i < heads * dim; ++i) {
      StoreFromFloat(src.data(), t, i, normal(rng));
      x[i] = LoadAsFloat(src.data(), t, i);
    }
    float row[dim];
    ops::RotateHeads(angles, t, heads, dim, src.data(), dim, dst.data(), dim, row);
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<float> want(x.begin() + h * dim, x.begin() + (h + 1) * dim);
      ops::RotateRow(angles, want.data());
      for (int64_t e = 0; e < dim; ++e) {
        uint8_t expect[4];
        StoreFromFloat(expect, t, 0, want[e]);
        EXPECT_EQ(LoadAsFloat(dst.data(), t, h * dim + e), LoadAsFloat(expect, t, 0)) << DTypeName(t);
      }
    }
  }
}

}  // namespace
}  // namespace swa
