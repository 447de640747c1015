// The backward's memory stays O((Lq + Lk) * D) plus per-thread tiles: at N = 262144,
// one head, D = 64 and a 512-token window, its peak RSS above the (already resident)
// inputs and outputs must stay under 200 MB. An Lq x W score buffer alone would take
// 512 MB. Its own executable, so that no other test raises the high-water mark.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "swa/swa.hpp"

namespace swa {
namespace {

// A "VmXXX:   1234 kB" field of /proc/self/status, in bytes (-1 if unavailable).
int64_t StatusBytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  }
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0); false if the kernel refuses.
bool ResetPeakRss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return clear.good();
}

TEST(BackwardMemoryTest, PeakRssStaysLinearInSequenceLength) {
  constexpr int64_t kN = 262144, kDim = 64, kWindow = 512;
  constexpr int64_t kCount = kN * kDim;
  constexpr int64_t kLimit = int64_t{200} << 20;
  if (StatusBytes("VmHWM") < 0) GTEST_SKIP() << "no /proc/self/status on this system";

  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal;
  auto random = [&] {
    std::vector<float> x(kCount);
    for (float& e : x) e = normal(rng);
    return x;
  };
  std::vector<float> q = random(), k = random(), v = random(), dout = random();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> out(kCount, nan), dq(kCount, nan), dk(kCount, nan), dv(kCount, nan), lse(kN, nan);
  swa_tensor tq = MakeTensor(q.data(), SWA_F32, 1, kN, 1, kDim),
             tk = MakeTensor(k.data(), SWA_F32, 1, kN, 1, kDim),
             tv = MakeTensor(v.data(), SWA_F32, 1, kN, 1, kDim),
             to = MakeTensor(out.data(), SWA_F32, 1, kN, 1, kDim),
             tdo = MakeTensor(dout.data(), SWA_F32, 1, kN, 1, kDim),
             tdq = MakeTensor(dq.data(), SWA_F32, 1, kN, 1, kDim),
             tdk = MakeTensor(dk.data(), SWA_F32, 1, kN, 1, kDim),
             tdv = MakeTensor(dv.data(), SWA_F32, 1, kN, 1, kDim);
  AttentionParams p;
  p.Window(kWindow - 1, 0).Threads(2);
  ASSERT_EQ(swa_attention_forward(&p, &tq, &tk, &tv, &to, lse.data()), 0) << swa_last_error();

  // Without a reset the mark still holds the forward's peak, which only makes the
  // check stricter.
  ResetPeakRss();
  const int64_t before = StatusBytes("VmRSS");
  ASSERT_EQ(swa_attention_backward(&p, &tq, &tk, &tv, &to, lse.data(), &tdo, &tdq, &tdk, &tdv, nullptr), 0)
      << swa_last_error();
  const int64_t growth = StatusBytes("VmHWM") - before;
  EXPECT_LT(growth, kLimit) << "the backward's peak RSS grew by " << (growth >> 20) << " MB";
  RecordProperty("peak_rss_growth_mb", static_cast<int>(growth >> 20));

  // Every gradient was written (they started as NaN).
  int64_t bad = 0;
  for (int64_t i = 0; i < kCount; ++i)
    bad += !std::isfinite(dq[i]) + !std::isfinite(dk[i]) + !std::isfinite(dv[i]);
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace swa
