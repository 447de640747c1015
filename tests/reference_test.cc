// The oracle against a second, independent formulation: a dense mask built from the
// literal contract and a naive softmax over the full score matrix (long double).
#include "attention/reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "attention/validate.h"
#include "contract.h"
#include "harness/attention_case.h"

namespace swa {
namespace {

using harness::AttnCase;
using harness::CaseData;

struct Dense {
  std::vector<long double> out, lse;
};

// Straight from docs/ATTENTION.md, one sequence and head at a time.
Dense DenseForward(CaseData& data) {
  const AttnCase& c = data.spec();
  const swa_attention_params& prm = data.params();
  const int64_t rows = c.TotalQ();
  Dense d;
  d.out.assign(c.Batch() * rows * c.hq * c.dim, 0.0L);
  d.lse.assign(c.Batch() * c.hq * rows, 0.0L);
  std::vector<std::pair<int32_t, int32_t>> seqs = c.varlen;
  std::vector<int64_t> qoff{0}, koff{0};
  if (seqs.empty()) {
    seqs.assign(c.batch, {static_cast<int32_t>(c.lq), static_cast<int32_t>(c.lk)});
  }
  for (const auto& [a, b] : seqs) {
    qoff.push_back(qoff.back() + (c.varlen.empty() ? 0 : a));
    koff.push_back(koff.back() + (c.varlen.empty() ? 0 : b));
  }
  const long double scale = c.scale != 0 ? c.scale : 1.0L / std::sqrt(static_cast<long double>(c.dim));
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t batch = c.varlen.empty() ? static_cast<int64_t>(s) : 0;
    const int64_t lq = seqs[s].first, lk = seqs[s].second;
    for (int64_t h = 0; h < c.hq; ++h) {
      testing::ContractRule rule;
      rule.lq = lq;
      rule.lk = lk;
      rule.left = c.head_left.empty() ? c.left : c.head_left[h];
      rule.right = c.head_right.empty() ? c.right : c.head_right[h];
      rule.causal = c.causal;
      rule.chunk = c.chunk;
      rule.overlap = c.overlap;
      rule.sinks = c.sink_tokens;
      rule.globals = c.globals;
      const int64_t kvh = h / (c.hq / c.hkv);
      // Dense score matrix with -inf outside the mask.
      std::vector<long double> S(lq * lk, -std::numeric_limits<long double>::infinity());
      for (int64_t i = 0; i < lq; ++i) {
        for (int64_t j = 0; j < lk; ++j) {
          if (!rule.Visible(i, j)) continue;
          long double dot = 0;
          for (int64_t e = 0; e < c.dim; ++e) {
            dot += static_cast<long double>(data.q.Get(batch, qoff[s] + i, h, e)) *
                   data.k.Get(batch, koff[s] + j, kvh, e);
          }
          long double x = scale * dot;
          if (c.softcap > 0) x = c.softcap * std::tanh(x / c.softcap);
          if (prm.alibi_slopes)
            x -= prm.alibi_slopes[h] * std::fabs(static_cast<long double>(i + lk - lq - j));
          S[i * lk + j] = x;
        }
      }
      for (int64_t i = 0; i < lq; ++i) {
        long double z = prm.sink_logits ? std::exp(static_cast<long double>(prm.sink_logits[h])) : 0.0L;
        for (int64_t j = 0; j < lk; ++j) z += std::exp(S[i * lk + j]);
        const int64_t row = qoff[s] + i;
        const int64_t lse_index = (batch * c.hq + h) * rows + row;
        if (z == 0) {
          d.lse[lse_index] = std::numeric_limits<long double>::infinity();
          continue;
        }
        d.lse[lse_index] = std::log(z);
        for (int64_t j = 0; j < lk; ++j) {
          const long double w = std::exp(S[i * lk + j]) / z;
          if (w == 0) continue;
          for (int64_t e = 0; e < c.dim; ++e) {
            d.out[((batch * rows + row) * c.hq + h) * c.dim + e] +=
                w * data.v.Get(batch, koff[s] + j, kvh, e);
          }
        }
      }
    }
  }
  return d;
}

void ExpectOracleMatchesDense(const AttnCase& c) {
  CaseData data(c);
  const auto vp = attention::ValidateForward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                             &data.out.view(), data.lse.data());
  const auto ref = attention::ReferenceForward(vp->problem);
  const Dense dense = DenseForward(data);
  ASSERT_EQ(ref.out.size(), dense.out.size());
  for (size_t i = 0; i < ref.out.size(); ++i) {
    ASSERT_NEAR(ref.out[i], static_cast<double>(dense.out[i]), 1e-10) << c.Name() << " out[" << i << "]";
  }
  for (size_t i = 0; i < ref.lse.size(); ++i) {
    if (std::isinf(dense.lse[i])) {
      ASSERT_EQ(ref.lse[i], std::numeric_limits<double>::infinity()) << c.Name() << " lse[" << i << "]";
    } else {
      ASSERT_NEAR(ref.lse[i], static_cast<double>(dense.lse[i]), 1e-10) << c.Name() << " lse[" << i << "]";
    }
  }
}

TEST(ReferenceTest, MatchesDenseFormulationOnRandomCases) {
  std::mt19937_64 rng(11);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int n = 0; n < 300; ++n) {
    AttnCase c;
    c.seed = n;
    c.dtype = static_cast<DType>(pick(0, 2));
    c.dim = pick(1, 9);
    c.hkv = pick(1, 2);
    c.hq = c.hkv * pick(1, 3);
    if (pick(0, 3) == 0) {
      for (int s = pick(1, 4); s > 0; --s)
        c.varlen.push_back({static_cast<int32_t>(pick(0, 9)), static_cast<int32_t>(pick(0, 9))});
    } else {
      c.batch = pick(0, 2);
      c.lq = pick(0, 12);
      c.lk = pick(0, 12);
    }
    c.left = pick(-1, 6);
    c.right = pick(-1, 6);
    c.causal = pick(0, 1);
    if (pick(0, 2) == 0) {
      for (int64_t h = 0; h < c.hq; ++h) {
        c.head_left.push_back(pick(-1, 5));
        c.head_right.push_back(pick(-1, 2));
      }
    }
    if (pick(0, 3) == 0) {
      c.chunk = pick(1, 5);
      c.overlap = pick(0, 3);
    }
    if (pick(0, 3) == 0) c.sink_tokens = pick(1, 3);
    c.sink_logits = pick(0, 3) == 0;
    if (pick(0, 3) == 0) c.globals = {pick(0, 3), pick(4, 8)};
    c.alibi = pick(0, 3) == 0;
    if (pick(0, 3) == 0) c.softcap = 0.5f + pick(0, 4);
    if (pick(0, 3) == 0) c.scale = 0.25f * pick(1, 8);
    c.layout = static_cast<harness::Layout>(pick(0, 2));
    ExpectOracleMatchesDense(c);
  }
}

TEST(ReferenceTest, EmptyRowsFollowTheConvention) {
  AttnCase c;
  c.lq = 12;
  c.lk = 4;  // rows 0..7 sit before the first key: causal leaves them empty
  c.causal = true;
  CaseData data(c);
  auto vp = attention::ValidateForward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                       &data.out.view(), data.lse.data());
  auto ref = attention::ReferenceForward(vp->problem);
  for (int64_t h = 0; h < c.hq; ++h) {
    for (int64_t i = 0; i < 8; ++i) {
      EXPECT_EQ(ref.lse[h * c.lq + i], std::numeric_limits<double>::infinity());
      for (int64_t e = 0; e < c.dim; ++e) EXPECT_EQ(ref.out[(i * c.hq + h) * c.dim + e], 0.0);
    }
    EXPECT_TRUE(std::isfinite(ref.lse[h * c.lq + 8]));
  }
  // With learned sinks, an empty row's lse is the sink logit.
  c.sink_logits = true;
  CaseData with_sinks(c);
  vp = attention::ValidateForward(&with_sinks.params(), &with_sinks.q.view(), &with_sinks.k.view(),
                                  &with_sinks.v.view(), &with_sinks.out.view(), with_sinks.lse.data());
  ref = attention::ReferenceForward(vp->problem);
  for (int64_t h = 0; h < c.hq; ++h) {
    EXPECT_EQ(ref.lse[h * c.lq], static_cast<double>(with_sinks.params().sink_logits[h]));
  }
}

}  // namespace
}  // namespace swa
