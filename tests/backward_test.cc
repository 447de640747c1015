// The CPU backward against the oracle backward on the forward's sweeps. Each case runs
// through the C API with guard bands around every buffer; gradients start as NaN, so an
// element left unwritten fails the case.
#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "harness/backward_case.h"
#include "harness/sweeps.h"
#include "ops/targets.h"

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
  void SetUp() override { ops::ForceTarget(GetParam()); }
  void TearDown() override { ops::ForceTarget(0); }
};

INSTANTIATE_TEST_SUITE_P(Targets, BackwardTest, ::testing::ValuesIn(ops::RunnableTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return ops::TargetName(info.param);
                         });

void ExpectPasses(const AttnCase& c, const BackwardOptions& o = {}) {
  const BackwardResult r = RunBackwardCase(c, o);
  EXPECT_TRUE(r.Passed()) << c.Name() << ": " << r.Describe();
}

constexpr DType kDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};

TEST_P(BackwardTest, HeadDims) {
  for (const AttnCase& c : harness::HeadDimCases()) ExpectPasses(c);
}

TEST_P(BackwardTest, Lengths) {
  for (const AttnCase& c : harness::LengthCases()) ExpectPasses(c);
}

TEST_P(BackwardTest, QueriesAndKeysOfDifferentLengths) {
  for (const AttnCase& c : harness::AsymmetricLengthCases()) ExpectPasses(c);
}

TEST_P(BackwardTest, WindowEdges) {
  for (const AttnCase& c : harness::WindowEdgeCases()) ExpectPasses(c);
}

TEST_P(BackwardTest, PerHeadWindowsMixNarrowWideAndGlobal) {
  for (const AttnCase& c : harness::PerHeadWindowCases()) ExpectPasses(c);
}

TEST_P(BackwardTest, ChunksWithOverlap) {
  for (const AttnCase& c : harness::ChunkCases()) ExpectPasses(c);
}

TEST_P(BackwardTest, GroupedAndMultiQueryHeads) {
  for (const AttnCase& c : harness::GroupedQueryCases()) ExpectPasses(c);
}

TEST_P(BackwardTest, VarlenPacking) {
  for (const AttnCase& c : harness::VarlenCases()) ExpectPasses(c);
}

// dsink sums terms of both signs over every row; taken from a 16-bit out, D_i would
// carry its rounding (~1e-4 to 6e-3 relative error in dsink here). It is summed from
// the tiles instead, and should be as accurate as f32 arithmetic allows.
TEST_P(BackwardTest, SinkGradientIsNotLimitedByTheStoredOutput) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (uint64_t seed : {1, 2, 3}) {
      AttnCase c;
      c.dtype = t;
      c.lq = c.lk = 600;
      c.hq = 2;
      c.hkv = 1;
      c.dim = 8;
      c.left = 200;
      c.right = 0;
      c.causal = true;
      c.sink_logits = true;
      c.seed = seed;
      const auto r = harness::RunBackwardCase(c);
      EXPECT_TRUE(r.Passed()) << c.Name() << ": " << r.Describe();
      EXPECT_LE(r.dsink_err, 1e-5) << c.Name() << ": " << r.Describe();
    }
  }
}

TEST_P(BackwardTest, SinksGlobalsAlibiSoftcapScale) {
  for (const AttnCase& c : harness::ExtrasCases()) ExpectPasses(c);
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
  BackwardOptions no_dsink;
  no_dsink.pass_dsink = false;
  ExpectPasses(c, no_dsink);
  c.sink_logits = true;
  ExpectPasses(c, no_dsink);
}

TEST_P(BackwardTest, StridedLayouts) {
  for (const AttnCase& c : harness::StridedLayoutCases()) {
    ExpectPasses(c);
    // Gradients in a layout other than the inputs'.
    BackwardOptions other_layout;
    other_layout.grad_layout = c.layout == Layout::kPadded ? Layout::kContiguous : Layout::kPadded;
    ExpectPasses(c, other_layout);
  }
}

TEST_P(BackwardTest, EmptyShapesAreValid) {
  for (const AttnCase& c : harness::EmptyShapeCases()) ExpectPasses(c);
}

#if defined(__SANITIZE_THREAD__)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif

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
      // The oracle checks the 1-thread run; the others must match it bit for bit. Under
      // ThreadSanitizer, which makes the oracle's plain loops 100x slower, the other
      // builds' runs of this test check it instead.
      BackwardOptions options;
      options.check_oracle = threads == 1 && !kThreadSanitizer;
      const BackwardResult r = RunBackwardCase(t, options);
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
  for (const AttnCase& c : harness::RandomCases(2000, 100, 500)) ExpectPasses(c);
}

}  // namespace
}  // namespace swa
