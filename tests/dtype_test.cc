// The scalar 16-bit conversions against the compiler's own _Float16 and an exact
// bf16 rounding model, over every 16-bit pattern and many float32 values.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/dtype.h"

namespace swa {
namespace {

TEST(DTypeTest, F16ToFloatIsExactForEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    _Float16 x;
    const uint16_t bits = static_cast<uint16_t>(h);
    std::memcpy(&x, &bits, 2);
    const float want = static_cast<float>(x);
    const float got = F16ToFloat(bits);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(FloatBits(got), FloatBits(want)) << "pattern " << h;
    }
  }
}

TEST(DTypeTest, FloatToF16RoundsToNearestEven) {
  std::mt19937 rng(5);
  for (int n = 0; n < 2000000; ++n) {
    const float f = BitsFloat(rng());
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &h, 2);
    const uint16_t got = FloatToF16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToFloat(got)));
    } else {
      ASSERT_EQ(got, want) << "float bits " << FloatBits(f);
    }
  }
  // Every f16 value and the midpoints between neighbours.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float a = F16ToFloat(static_cast<uint16_t>(h)), b = F16ToFloat(static_cast<uint16_t>(h + 1));
    EXPECT_EQ(FloatToF16(a), h);
    const float mid = (a + b) / 2;  // exact in float32
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    EXPECT_EQ(FloatToF16(mid), even) << h;
  }
}

TEST(DTypeTest, BF16RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = BF16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(BF16ToFloat(FloatToBF16(f))));
    } else {
      EXPECT_EQ(FloatToBF16(f), h);
    }
  }
  // Round to nearest even on the 16 dropped bits, as the definition reads.
  std::mt19937 rng(6);
  for (int n = 0; n < 1000000; ++n) {
    const uint32_t bits = rng();
    if (std::isnan(BitsFloat(bits))) continue;
    const uint32_t low = bits & 0xffffu, high = bits >> 16;
    const bool up = low > 0x8000u || (low == 0x8000u && (high & 1u));
    ASSERT_EQ(FloatToBF16(BitsFloat(bits)), static_cast<uint16_t>(high + (up ? 1 : 0))) << bits;
  }
}

}  // namespace
}  // namespace swa
