// LearningRate at the points of its definition: warmup start and end, quarter, middle and
// end of the cosine, after the end; plain numbers worked out by hand.
#include "train/schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "train_test_util.h"

namespace swa::train {
namespace {

constexpr double kMax = 1e-3, kMin = 1e-4;

TEST(ScheduleTest, WarmupIsLinearFromMaxOverWarmup) {
  EXPECT_DOUBLE_EQ(LearningRate(1, 10, 110, kMax, kMin), 1e-4);
  EXPECT_DOUBLE_EQ(LearningRate(4, 10, 110, kMax, kMin), 4e-4);
  EXPECT_DOUBLE_EQ(LearningRate(10, 10, 110, kMax, kMin), 1e-3);
}

TEST(ScheduleTest, CosineFromMaxToMin) {
  // (t - W) / (T - W) = 1/4, 1/2, 3/4: cos = sqrt(2)/2, 0, -sqrt(2)/2.
  const double half_span = (kMax - kMin) / 2;
  EXPECT_NEAR(LearningRate(35, 10, 110, kMax, kMin), kMin + half_span * (1 + std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(LearningRate(60, 10, 110, kMax, kMin), 5.5e-4, 1e-15);
  EXPECT_NEAR(LearningRate(85, 10, 110, kMax, kMin), kMin + half_span * (1 - std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(LearningRate(11, 10, 110, kMax, kMin), kMax, 1e-3 * kMax);
  EXPECT_LT(LearningRate(11, 10, 110, kMax, kMin), kMax);
  for (int64_t t = 11; t < 110; ++t)
    EXPECT_LT(LearningRate(t + 1, 10, 110, kMax, kMin), LearningRate(t, 10, 110, kMax, kMin)) << t;
}

TEST(ScheduleTest, MinAtAndAfterTheEnd) {
  EXPECT_DOUBLE_EQ(LearningRate(110, 10, 110, kMax, kMin), kMin);
  EXPECT_DOUBLE_EQ(LearningRate(111, 10, 110, kMax, kMin), kMin);
  EXPECT_DOUBLE_EQ(LearningRate(1000000, 10, 110, kMax, kMin), kMin);
}

TEST(ScheduleTest, EdgeConfigurations) {
  EXPECT_DOUBLE_EQ(LearningRate(1, 0, 100, kMax, kMin),
                   kMin + (kMax - kMin) * 0.5 * (1 + std::cos(std::numbers::pi / 100)));
  EXPECT_DOUBLE_EQ(LearningRate(50, 50, 50, kMax, kMin), kMax);
  EXPECT_DOUBLE_EQ(LearningRate(51, 50, 50, kMax, kMin), kMin);
  ExpectErrorMentioning([] { LearningRate(0, 10, 100, kMax, kMin); }, {"step"});
  ExpectErrorMentioning([] { LearningRate(1, 200, 100, kMax, kMin); }, {"warmup"});
  ExpectErrorMentioning([] { LearningRate(1, -1, 100, kMax, kMin); }, {"warmup"});
}

}  // namespace
}  // namespace swa::train
