// The CPU backward against the oracle backward on the forward's sweeps. Each case runs
// through the C API with guard bands around every buffer; gradients start as NaN, so an
// element left unwritten fails the case.
#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "attention/cpu/dispatch.h"
#include "harness/backward_case.h"

namespace swa {
namespace {

using harness::AttnCase;
using harness::BackwardOptions;
using harness::BackwardResult;
using harness::Layout;
using harness::RunBackwardCase;

// Every test runs once per SIMD target this CPU can run (the portable fallback, AVX2,
// AVX-512 ...), forced through the dispatcher.
class BackwardTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { attention::cpu::ForceTarget(GetParam()); }
  void TearDown() override { attention::cpu::ForceTarget(0); }
};

INSTANTIATE_TEST_SUITE_P(Targets, BackwardTest, ::testing::ValuesIn(attention::cpu::RunnableTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return attention::cpu::TargetName(info.param);
                         });

void ExpectPasses(const AttnCase& c, const BackwardOptions& o = {}) {
  const BackwardResult r = RunBackwardCase(c, o);
  EXPECT_TRUE(r.Passed()) << c.Name() << ": " << r.Describe();
}

constexpr DType kDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};

TEST_P(BackwardTest, HeadDims) {
  for (int64_t dim : {1, 7, 16, 59, 64, 80, 128, 256}) {
    for (DType t : kDTypes) {
      AttnCase c;
      c.dtype = t;
      c.dim = dim;
      c.lq = c.lk = 65;
      c.hq = 4;
      c.hkv = 2;
      c.left = 17;
      c.right = 0;
      c.threads = 2;
      c.seed = dim;
      ExpectPasses(c);
    }
  }
}

TEST_P(BackwardTest, Lengths) {
  for (int64_t n : {1, 7, 63, 64, 65, 257, 1025}) {
    for (bool sliding : {false, true}) {
      AttnCase c;
      c.lq = c.lk = n;
      c.dim = 32;
      c.causal = !sliding;
      if (sliding) {
        c.left = 63;
        c.right = 0;
      }
      c.threads = 3;
      c.seed = n;
      ExpectPasses(c);
    }
  }
}

TEST_P(BackwardTest, QueriesAndKeysOfDifferentLengths) {
  // Lq < Lk is chunked prefill; Lq > Lk leaves the first rows with no keys.
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1025}, {7, 257}, {65, 257}, {64, 1025}, {65, 7},
                                                {257, 63}, {9, 0},   {0, 9},    {1, 1}};
  for (const auto& [lq, lk] : shapes) {
    for (int mode = 0; mode < 4; ++mode) {
      AttnCase c;
      c.lq = lq;
      c.lk = lk;
      c.dim = 24;
      c.batch = 2;
      c.seed = lq * 1000 + lk;
      if (mode == 1) c.causal = true;
      if (mode == 2) {
        c.left = 40;
        c.right = 0;
      }
      if (mode == 3) {
        c.left = 5;
        c.right = 3;
        c.sink_logits = true;
      }
      ExpectPasses(c);
    }
  }
}

TEST_P(BackwardTest, WindowEdges) {
  const int64_t n = 65;
  for (int64_t left : {int64_t{0}, int64_t{1}, int64_t{2}, n - 1, n, n + 1, int64_t{-1}}) {
    for (int64_t right : {int64_t{0}, int64_t{1}, int64_t{2}, n - 1, n, n + 1, int64_t{-1}}) {
      for (bool causal : {false, true}) {
        AttnCase c;
        c.lq = c.lk = n;
        c.hq = c.hkv = 1;
        c.dim = 8;
        c.left = left;
        c.right = right;
        c.causal = causal;
        c.seed = static_cast<uint64_t>(left * 100 + right + 7);
        ExpectPasses(c);
      }
    }
  }
}

TEST_P(BackwardTest, PerHeadWindowsMixNarrowWideAndGlobal) {
  for (bool causal : {false, true}) {
    for (int64_t n : {33, 130, 300}) {
      AttnCase c;
      c.lq = c.lk = n;
      c.hq = 6;
      c.hkv = 3;
      c.dim = 16;
      c.head_left = {0, 3, 64, -1, -1, 8};
      c.head_right = {0, 0, 0, -1, 0, 8};
      c.causal = causal;
      c.threads = 2;
      ExpectPasses(c);
      c.lq = n / 3;  // and bottom-right aligned against a longer key range
      ExpectPasses(c);
    }
  }
}

TEST_P(BackwardTest, ChunksWithOverlap) {
  for (int64_t chunk : {32, 64}) {
    for (int64_t overlap : {int64_t{0}, chunk / 8, chunk / 4, chunk}) {
      for (bool causal : {false, true}) {
        AttnCase c;
        c.lq = c.lk = 257;
        c.dim = 16;
        c.chunk = chunk;
        c.overlap = overlap;
        c.causal = causal;
        c.threads = 2;
        ExpectPasses(c);
        c.lq = 100;
        ExpectPasses(c);
      }
    }
  }
}

TEST_P(BackwardTest, GroupedAndMultiQueryHeads) {
  for (int64_t hkv : {8, 4, 2, 1}) {
    for (DType t : kDTypes) {
      AttnCase c;
      c.dtype = t;
      c.lq = c.lk = 297;
      c.hq = 8;
      c.hkv = hkv;
      c.dim = 32;
      c.left = 20;
      c.right = 0;
      c.threads = 3;
      ExpectPasses(c);
    }
  }
}

TEST_P(BackwardTest, VarlenPacking) {
  const std::vector<std::vector<std::pair<int32_t, int32_t>>> packs = {
      {{100, 100}, {1, 77}, {65, 65}},
      {{0, 5}, {7, 0}, {30, 60}, {64, 64}, {1, 1}},
      {{130, 40}, {3, 300}},
  };
  for (const auto& pack : packs) {
    for (int mode = 0; mode < 3; ++mode) {
      AttnCase c;
      c.varlen = pack;
      c.hq = 4;
      c.hkv = 2;
      c.dim = 16;
      c.threads = 2;
      if (mode == 0) c.causal = true;
      if (mode == 1) {
        c.left = 10;
        c.right = 0;
        c.sink_tokens = 2;
        c.globals = {3, 50};
        c.sink_logits = true;
      }
      if (mode == 2) {
        c.chunk = 16;
        c.overlap = 4;
        c.alibi = true;
        c.layout = Layout::kPadded;
      }
      ExpectPasses(c);
    }
  }
}

TEST_P(BackwardTest, SinksGlobalsAlibiSoftcapScale) {
  for (DType t : kDTypes) {
    AttnCase c;
    c.dtype = t;
    c.lq = c.lk = 300;
    c.hq = 4;
    c.hkv = 2;
    c.dim = 40;
    c.left = 15;
    c.right = 0;
    c.sink_tokens = 4;
    ExpectPasses(c);
    c.sink_logits = true;
    ExpectPasses(c);
    c.sink_tokens = 0;
    c.globals = {0, 1, 64, 65, 130, 299, 500};
    ExpectPasses(c);
    c.causal = true;
    c.right = 5;
    ExpectPasses(c);
    c.alibi = true;
    c.scale = 0.4f;
    c.softcap = 5.0f;
    ExpectPasses(c);
  }
}

TEST_P(BackwardTest, SoftcapSaturates) {
  // Large scores push tanh into saturation, where 1 - tanh^2 matters most.
  for (DType t : kDTypes) {
    AttnCase c;
    c.dtype = t;
    c.lq = c.lk = 130;
    c.dim = 64;
    c.left = 70;
    c.right = 0;
    c.scale = 0.5f;
    c.softcap = 3.0f;
    ExpectPasses(c);
  }
}

TEST_P(BackwardTest, SinkGradientBufferIsZeroWithoutSinkLogits) {
  AttnCase c;
  c.lq = c.lk = 80;
  c.left = 9;
  c.right = 0;
  ExpectPasses(c);  // dsink passed: must be written as zeros
  ExpectPasses(c, BackwardOptions{.pass_dsink = false});
  c.sink_logits = true;
  ExpectPasses(c, BackwardOptions{.pass_dsink = false});
}

TEST_P(BackwardTest, StridedLayouts) {
  for (Layout layout : {Layout::kPadded, Layout::kHeadMajor}) {
    for (DType t : kDTypes) {
      AttnCase c;
      c.dtype = t;
      c.layout = layout;
      c.batch = 2;
      c.lq = 70;
      c.lk = 90;
      c.hq = 4;
      c.hkv = 2;
      c.dim = 48;
      c.left = 30;
      c.right = 2;
      c.threads = 2;
      ExpectPasses(c);
      // Gradients in a layout other than the inputs'.
      ExpectPasses(c, BackwardOptions{.grad_layout =
                                          layout == Layout::kPadded ? Layout::kContiguous : Layout::kPadded});
    }
  }
}

TEST_P(BackwardTest, EmptyShapesAreValid) {
  for (auto [b, lq, lk] :
       {std::tuple{0, 5, 5}, std::tuple{1, 0, 5}, std::tuple{1, 5, 0}, std::tuple{2, 0, 0}}) {
    AttnCase c;
    c.batch = b;
    c.lq = lq;
    c.lk = lk;
    ExpectPasses(c);
    c.sink_logits = true;
    ExpectPasses(c);
  }
}

TEST_P(BackwardTest, ResultsDoNotDependOnThreadCount) {
  std::vector<AttnCase> cases;
  AttnCase c;
  c.lq = c.lk = 1100;
  c.hq = 4;
  c.hkv = 2;
  c.dim = 64;
  c.left = 300;
  c.right = 0;
  cases.push_back(c);
  c.dtype = DType::kBF16;
  c.varlen = {{300, 320}, {700, 700}};
  c.sink_logits = true;
  c.globals = {5, 400};
  cases.push_back(c);
  c.dtype = DType::kF16;
  c.varlen.clear();
  c.sink_logits = false;
  c.globals.clear();
  c.lq = 3;
  c.lk = 2000;
  c.left = 1500;
  cases.push_back(c);
  c.dtype = DType::kF32;
  c.lq = c.lk = 900;
  c.hq = 8;
  c.hkv = 1;
  c.left = -1;
  c.chunk = 128;
  c.overlap = 32;
  c.sink_tokens = 3;
  cases.push_back(c);
  for (const AttnCase& base : cases) {
    BackwardResult first;
    for (int threads : {1, 2, 3}) {
      AttnCase t = base;
      t.threads = threads;
      // The oracle checks the 1-thread run; the others must match it bit for bit.
      const BackwardResult r = RunBackwardCase(t, BackwardOptions{.check_oracle = threads == 1});
      ASSERT_TRUE(r.Passed()) << t.Name() << ": " << r.Describe();
      if (threads == 1) {
        first = r;
        continue;
      }
      EXPECT_EQ(r.dq_bytes, first.dq_bytes) << t.Name() << ": dq differs from 1 thread";
      EXPECT_EQ(r.dk_bytes, first.dk_bytes) << t.Name() << ": dk differs from 1 thread";
      EXPECT_EQ(r.dv_bytes, first.dv_bytes) << t.Name() << ": dv differs from 1 thread";
      EXPECT_EQ(r.dsink_bytes, first.dsink_bytes) << t.Name() << ": dsink differs from 1 thread";
    }
  }
}

TEST_P(BackwardTest, RandomCombinations) {
  std::mt19937_64 rng(4048);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int n = 0; n < 100; ++n) {
    AttnCase c;
    c.seed = 2000 + n;
    c.dtype = kDTypes[pick(0, 2)];
    const int64_t dims[] = {1, 3, 8, 16, 33, 64, 96, 128};
    c.dim = dims[pick(0, 7)];
    c.hkv = pick(1, 3);
    c.hq = c.hkv * pick(1, 3);
    if (pick(0, 4) == 0) {
      for (int s = pick(1, 4); s > 0; --s) {
        c.varlen.push_back({static_cast<int32_t>(pick(0, 300)), static_cast<int32_t>(pick(0, 300))});
      }
    } else {
      c.batch = pick(1, 2);
      c.lq = pick(1, 400);
      c.lk = pick(0, 1) ? c.lq : pick(1, 500);
    }
    c.left = pick(0, 2) ? pick(0, 100) : -1;
    c.right = pick(0, 2) ? pick(0, 10) : -1;
    c.causal = pick(0, 1);
    if (pick(0, 3) == 0) {
      for (int64_t h = 0; h < c.hq; ++h) {
        c.head_left.push_back(pick(-1, 80));
        c.head_right.push_back(pick(-1, 4));
      }
    }
    if (pick(0, 4) == 0) {
      c.chunk = pick(1, 80);
      c.overlap = pick(0, c.chunk);
    }
    if (pick(0, 3) == 0) c.sink_tokens = pick(1, 8);
    c.sink_logits = pick(0, 3) == 0;
    if (pick(0, 4) == 0) c.globals = {pick(0, 10), pick(11, 90), pick(91, 300)};
    c.alibi = pick(0, 4) == 0;
    if (pick(0, 4) == 0) c.softcap = static_cast<float>(pick(1, 30));
    if (pick(0, 4) == 0) c.scale = 0.05f * pick(1, 20);
    c.layout = static_cast<Layout>(pick(0, 2));
    c.threads = static_cast<int>(pick(1, 3));
    ExpectPasses(c);
  }
}

}  // namespace
}  // namespace swa
