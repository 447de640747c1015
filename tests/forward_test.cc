// The CPU forward against the oracle on sweeps over every dimension of the contract.
// Each case runs through the C API with guard bands around every buffer.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "harness/attention_case.h"
#include "harness/sweeps.h"
#include "ops/targets.h"

namespace swa {
namespace {

using harness::AttnCase;
using harness::Layout;
using harness::RunForwardCase;

// Every test runs once per SIMD target this CPU can run (the portable fallback, AVX2,
// AVX-512 ...), forced through the dispatcher.
class ForwardTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { ops::ForceTarget(GetParam()); }
  void TearDown() override { ops::ForceTarget(0); }
};

INSTANTIATE_TEST_SUITE_P(Targets, ForwardTest, ::testing::ValuesIn(ops::RunnableTargets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return ops::TargetName(info.param);
                         });

TEST_P(ForwardTest, DispatchesToTheForcedTarget) {
  EXPECT_EQ(ops::ActiveTargetName(), ops::TargetName(GetParam()));
}

void ExpectPasses(const AttnCase& c) {
  const harness::CaseResult r = RunForwardCase(c);
  EXPECT_TRUE(r.Passed()) << c.Name() << ": " << r.Describe();
}

constexpr DType kDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};

TEST_P(ForwardTest, HeadDims) {
  for (const AttnCase& c : harness::HeadDimCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, Lengths) {
  for (const AttnCase& c : harness::LengthCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, QueriesAndKeysOfDifferentLengths) {
  for (const AttnCase& c : harness::AsymmetricLengthCases()) ExpectPasses(c);
}

// Few queries against many keys takes the decode path: query heads of a kv group
// together, keys split into pieces merged by log-sum-exp.
TEST_P(ForwardTest, DecodeShapes) {
  std::mt19937_64 rng(99);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int n = 0; n < 40; ++n) {
    AttnCase c;
    c.seed = 3000 + n;
    c.dtype = kDTypes[pick(0, 2)];
    c.hkv = pick(1, 3);
    c.hq = c.hkv * std::vector<int64_t>{1, 2, 4, 8, 16}[pick(0, 4)];
    c.dim = std::vector<int64_t>{1, 13, 64, 128}[pick(0, 3)];
    c.lq = pick(1, 4);
    c.lk = pick(0, 1) ? pick(1, 300) : pick(1000, 5000);
    c.batch = pick(1, 2);
    c.left = pick(0, 2) ? pick(0, 3000) : -1;
    c.right = pick(0, 1) ? 0 : pick(0, 5);
    c.causal = pick(0, 1);
    if (pick(0, 3) == 0) {
      for (int64_t h = 0; h < c.hq; ++h) {
        c.head_left.push_back(std::vector<int64_t>{0, 7, 500, -1}[pick(0, 3)]);
        c.head_right.push_back(0);
      }
    }
    if (pick(0, 3) == 0) c.sink_tokens = pick(1, 4);
    c.sink_logits = pick(0, 2) == 0;
    if (pick(0, 4) == 0) c.globals = {pick(0, 50), pick(51, 900)};
    if (pick(0, 4) == 0) {
      c.chunk = pick(16, 1500);
      c.overlap = pick(0, c.chunk / 4);
    }
    c.alibi = pick(0, 4) == 0;
    if (pick(0, 4) == 0) c.softcap = 10.0f;
    c.layout = static_cast<Layout>(pick(0, 2));
    c.threads = static_cast<int>(pick(1, 3));
    ExpectPasses(c);
  }
}

TEST_P(ForwardTest, WindowEdges) {
  for (const AttnCase& c : harness::WindowEdgeCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, PerHeadWindowsMixNarrowWideAndGlobal) {
  for (const AttnCase& c : harness::PerHeadWindowCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, ChunksWithOverlap) {
  for (const AttnCase& c : harness::ChunkCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, GroupedAndMultiQueryHeads) {
  for (const AttnCase& c : harness::GroupedQueryCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, VarlenPacking) {
  for (const AttnCase& c : harness::VarlenCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, SinksGlobalsAlibiSoftcapScale) {
  for (const AttnCase& c : harness::ExtrasCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, StridedLayouts) {
  for (const AttnCase& c : harness::StridedLayoutCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, ResultsDoNotDependOnThreadCount) {
  std::vector<AttnCase> cases;
  AttnCase c;
  c.lq = c.lk = 300;
  c.hq = 4;
  c.hkv = 2;
  c.dim = 64;
  c.left = 50;
  c.right = 0;
  cases.push_back(c);
  c.dtype = DType::kBF16;
  c.varlen = {{100, 120}, {200, 200}};
  cases.push_back(c);
  c.dtype = DType::kF16;
  c.varlen.clear();
  c.lq = 1;
  c.lk = 2000;
  c.left = 1500;
  cases.push_back(c);
  // Decode with groups of kv heads of unequal head counts, split into several pieces.
  c.dtype = DType::kF32;
  c.hq = 24;
  c.hkv = 2;
  c.lq = 3;
  c.lk = 5000;
  c.left = 4000;
  cases.push_back(c);
  for (const AttnCase& base : cases) {
    std::vector<uint8_t> out1, lse1;
    for (int threads : {1, 2, 3}) {
      AttnCase t = base;
      t.threads = threads;
      const auto r = RunForwardCase(t);
      ASSERT_TRUE(r.Passed()) << t.Name() << ": " << r.Describe();
      if (threads == 1) {
        out1 = r.out_bytes;
        lse1 = r.lse_bytes;
      } else {
        EXPECT_EQ(r.out_bytes, out1) << t.Name() << ": output differs from 1 thread";
        EXPECT_EQ(r.lse_bytes, lse1) << t.Name() << ": lse differs from 1 thread";
      }
    }
  }
}

// Runs the forward once on other keys and values at the same addresses, then puts the
// case's own back: the call that RunForwardCase then makes must not reuse anything the
// first one converted (a worker keeps key blocks across query blocks).
void RunOnceOnOtherKeysAndValues(harness::CaseData& d) {
  std::vector<float> saved;
  for (harness::GuardedTensor* t : {&d.k, &d.v}) {
    t->ForEachIndex([&](int64_t b, int64_t l, int64_t h, int64_t e) {
      saved.push_back(t->Get(b, l, h, e));
      t->Set(b, l, h, e, 0.5f - 0.75f * saved.back());
    });
  }
  ASSERT_EQ(
      swa_attention_forward(&d.params(), &d.q.view(), &d.k.view(), &d.v.view(), &d.out.view(), d.lse.data()),
      0);
  size_t i = 0;
  for (harness::GuardedTensor* t : {&d.k, &d.v}) {
    t->ForEachIndex([&](int64_t b, int64_t l, int64_t h, int64_t e) { t->Set(b, l, h, e, saved[i++]); });
  }
}

TEST_P(ForwardTest, LaterCallsSeeNewDataAtTheSameAddresses) {
  AttnCase c;
  c.lq = c.lk = 700;
  c.hq = 4;
  c.hkv = 2;
  c.dim = 40;
  c.left = 300;
  c.right = 0;
  for (int threads : {1, 2}) {
    for (DType t : kDTypes) {
      c.dtype = t;
      c.threads = threads;
      const auto r = RunForwardCase(c, RunOnceOnOtherKeysAndValues);
      EXPECT_TRUE(r.Passed()) << c.Name() << ": " << r.Describe();
    }
  }
}

TEST_P(ForwardTest, NanInputsPropagateLikeTheOracle) {
  AttnCase c;
  c.lq = c.lk = 70;
  c.hq = c.hkv = 2;
  c.dim = 16;
  c.left = 8;
  c.right = 0;
  for (DType t : kDTypes) {
    c.dtype = t;
    const auto r = RunForwardCase(c, [](harness::CaseData& d) {
      d.q.Set(0, 10, 0, 3, std::nanf(""));  // one query row
      d.k.Set(0, 40, 1, 0, std::nanf(""));  // one key: every row that sees it
      d.v.Set(0, 60, 0, 5, std::nanf(""));  // one value element
    });
    EXPECT_TRUE(r.Passed()) << c.Name() << ": " << r.Describe();
  }
  // The decode path (few queries): NaN values in keys the queries cannot see, and in
  // one they can.
  c.lq = 2;
  for (DType t : kDTypes) {
    c.dtype = t;
    const auto r = RunForwardCase(c, [](harness::CaseData& d) {
      d.k.Set(0, 5, 0, 1, std::nanf(""));   // outside every window
      d.v.Set(0, 20, 1, 2, std::nanf(""));  // outside every window
      d.v.Set(0, 65, 1, 0, std::nanf(""));  // seen by both rows of head 1
    });
    EXPECT_TRUE(r.Passed()) << c.Name() << ": " << r.Describe();
  }
}

TEST_P(ForwardTest, EmptyShapesAreValid) {
  for (const AttnCase& c : harness::EmptyShapeCases()) ExpectPasses(c);
}

TEST_P(ForwardTest, RandomCombinations) {
  for (const AttnCase& c : harness::RandomCases(1000, 120, 300)) ExpectPasses(c);
}

}  // namespace
}  // namespace swa
