// The oracle backward against central finite differences of a forward written here,
// in double, straight from docs/ATTENTION.md (visibility from tests/contract.h, not
// from the library's rule). The loss is sum(out * dout); every element of q, k, v and
// every sink logit is perturbed in turn, so the check covers the whole gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "attention/reference.h"
#include "attention/validate.h"
#include "contract.h"
#include "harness/attention_case.h"

namespace swa {
namespace {

using harness::AttnCase;
using harness::CaseData;
using harness::GuardedTensor;
using harness::Layout;

// The differentiable inputs of one case in double, indexed like contiguous BSHD.
struct Inputs {
  std::vector<double> q, k, v, dout;  // [B, L, H, D]
  std::vector<double> sink;           // [Hq] (empty without sink logits)
};

std::vector<double> ToDouble(const GuardedTensor& t) {
  const swa_tensor& v = t.view();
  std::vector<double> x;
  for (int64_t b = 0; b < v.shape[0]; ++b)
    for (int64_t l = 0; l < v.shape[1]; ++l)
      for (int64_t h = 0; h < v.shape[2]; ++h)
        for (int64_t d = 0; d < v.shape[3]; ++d) x.push_back(t.Get(b, l, h, d));
  return x;
}

// loss = sum(out * dout) with out from the contract, in double.
double Loss(const AttnCase& c, const swa_attention_params& prm, const Inputs& in) {
  std::vector<std::pair<int32_t, int32_t>> seqs = c.varlen;
  if (seqs.empty()) seqs.assign(c.batch, {static_cast<int32_t>(c.lq), static_cast<int32_t>(c.lk)});
  const int64_t rows = c.TotalQ(), keys = c.TotalK();
  const double scale =
      c.scale != 0 ? static_cast<double>(c.scale) : 1.0 / std::sqrt(static_cast<double>(c.dim));
  auto qi = [&](int64_t b, int64_t l, int64_t h) { return ((b * rows + l) * c.hq + h) * c.dim; };
  auto ki = [&](int64_t b, int64_t l, int64_t h) { return ((b * keys + l) * c.hkv + h) * c.dim; };
  double loss = 0;
  int64_t q0 = 0, k0 = 0;
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
      for (int64_t i = 0; i < lq; ++i) {
        std::vector<double> s_row(lk, 0.0);
        std::vector<char> seen(lk, 0);
        double m = in.sink.empty() ? -INFINITY : in.sink[h];
        for (int64_t j = 0; j < lk; ++j) {
          if (!rule.Visible(i, j)) continue;
          double dot = 0;
          for (int64_t e = 0; e < c.dim; ++e)
            dot += in.q[qi(batch, q0 + i, h) + e] * in.k[ki(batch, k0 + j, kvh) + e];
          double x = scale * dot;
          if (c.softcap > 0) x = c.softcap * std::tanh(x / c.softcap);
          if (prm.alibi_slopes) x -= prm.alibi_slopes[h] * std::abs(static_cast<double>(i + lk - lq - j));
          s_row[j] = x;
          seen[j] = 1;
          m = std::max(m, x);
        }
        if (m == -INFINITY) continue;  // no key and no sink: out is zero
        double z = in.sink.empty() ? 0.0 : std::exp(in.sink[h] - m);
        for (int64_t j = 0; j < lk; ++j) z += seen[j] ? std::exp(s_row[j] - m) : 0.0;
        for (int64_t j = 0; j < lk; ++j) {
          if (!seen[j]) continue;
          const double w = std::exp(s_row[j] - m) / z;
          for (int64_t e = 0; e < c.dim; ++e) {
            loss += w * in.v[ki(batch, k0 + j, kvh) + e] * in.dout[qi(batch, q0 + i, h) + e];
          }
        }
      }
    }
    if (!c.varlen.empty()) {
      q0 += lq;
      k0 += lk;
    }
  }
  return loss;
}

// Central differences of the loss with respect to every element of `x`.
std::vector<double> FiniteDifferences(const AttnCase& c, const swa_attention_params& prm, Inputs& in,
                                      std::vector<double>& x) {
  constexpr double kStep = 1e-5;
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + kStep;
    const double up = Loss(c, prm, in);
    x[i] = keep - kStep;
    const double down = Loss(c, prm, in);
    x[i] = keep;
    grad[i] = (up - down) / (2 * kStep);
  }
  return grad;
}

// max |a - b| / max |b|; the gradient must not vanish, or the check would prove nothing.
double RelativeError(const std::vector<double>& a, const std::vector<double>& b, const char* what,
                     const AttnCase& c) {
  EXPECT_EQ(a.size(), b.size()) << what;
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  EXPECT_GT(scale, 1e-3) << c.Name() << ": " << what << " is (almost) zero; the case checks nothing";
  return diff / std::max(scale, 1e-300);
}

// The oracle's gradients of sum(out * dout) for the case's inputs.
attention::ReferenceBackwardResult OracleGradients(CaseData& data, GuardedTensor& dout) {
  const AttnCase& c = data.spec();
  GuardedTensor dq(c.dtype, c.Batch(), c.TotalQ(), c.hq, c.dim, Layout::kContiguous);
  GuardedTensor dk(c.dtype, c.Batch(), c.TotalK(), c.hkv, c.dim, Layout::kContiguous);
  GuardedTensor dv(c.dtype, c.Batch(), c.TotalK(), c.hkv, c.dim, Layout::kContiguous);
  attention::BackwardTensors grads;
  const auto vp = attention::ValidateBackward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                              &data.out.view(), data.lse.data(), &dout.view(), &dq.view(),
                                              &dk.view(), &dv.view(), nullptr, &grads);
  return attention::ReferenceBackward(vp->problem, grads.dout);
}

GuardedTensor RandomDout(const AttnCase& c) {
  GuardedTensor dout(c.dtype, c.Batch(), c.TotalQ(), c.hq, c.dim, c.layout);
  std::mt19937_64 rng(c.seed + 99);
  dout.FillNormal(rng);
  return dout;
}

void ExpectOracleGradientMatches(const AttnCase& c) {
  CaseData data(c);
  GuardedTensor dout = RandomDout(c);
  const attention::ReferenceBackwardResult ref = OracleGradients(data, dout);

  const swa_attention_params& prm = data.params();
  Inputs in{ToDouble(data.q), ToDouble(data.k), ToDouble(data.v), ToDouble(dout), {}};
  if (prm.sink_logits) in.sink.assign(prm.sink_logits, prm.sink_logits + c.hq);
  // Central differences in double with h = 1e-5: truncation ~h^2, rounding ~1e-16/h.
  constexpr double kTolerance = 1e-6;
  EXPECT_LE(RelativeError(FiniteDifferences(c, prm, in, in.q), ref.dq, "dq", c), kTolerance) << c.Name();
  EXPECT_LE(RelativeError(FiniteDifferences(c, prm, in, in.k), ref.dk, "dk", c), kTolerance) << c.Name();
  EXPECT_LE(RelativeError(FiniteDifferences(c, prm, in, in.v), ref.dv, "dv", c), kTolerance) << c.Name();
  if (prm.sink_logits) {
    EXPECT_LE(RelativeError(FiniteDifferences(c, prm, in, in.sink), ref.dsink, "dsink", c), kTolerance)
        << c.Name();
  } else {
    for (double g : ref.dsink) EXPECT_EQ(g, 0.0) << c.Name() << ": dsink without sink logits";
  }
}

AttnCase Small() {
  AttnCase c;
  c.lq = c.lk = 11;
  c.hq = c.hkv = 2;
  c.dim = 5;
  c.seed = 3;
  return c;
}

TEST(BackwardReferenceTest, FullAndCausal) {
  AttnCase c = Small();
  ExpectOracleGradientMatches(c);
  c.causal = true;
  ExpectOracleGradientMatches(c);
}

TEST(BackwardReferenceTest, SlidingWindows) {
  AttnCase c = Small();
  for (auto [left, right] : {std::pair{3, 0}, std::pair{2, 2}, std::pair{0, 1}, std::pair{-1, 1}}) {
    c.left = left;
    c.right = right;
    ExpectOracleGradientMatches(c);
  }
}

TEST(BackwardReferenceTest, PerHeadWindows) {
  AttnCase c = Small();
  c.hq = 4;
  c.head_left = {0, 2, -1, 5};
  c.head_right = {0, 1, 0, -1};
  ExpectOracleGradientMatches(c);
}

TEST(BackwardReferenceTest, ChunksWithOverlap) {
  AttnCase c = Small();
  c.lq = c.lk = 13;
  c.chunk = 4;
  for (int64_t overlap : {0, 1, 4}) {
    c.overlap = overlap;
    ExpectOracleGradientMatches(c);
  }
}

TEST(BackwardReferenceTest, SinkTokensAndGlobalTokens) {
  AttnCase c = Small();
  c.left = 1;
  c.right = 0;
  c.sink_tokens = 2;
  ExpectOracleGradientMatches(c);
  c.sink_tokens = 0;
  c.globals = {1, 6, 30};
  ExpectOracleGradientMatches(c);
  c.causal = true;
  ExpectOracleGradientMatches(c);
}

TEST(BackwardReferenceTest, LearnedSinkLogits) {
  AttnCase c = Small();
  c.sink_logits = true;
  ExpectOracleGradientMatches(c);
  c.left = 2;
  c.right = 0;
  c.seed = 8;
  ExpectOracleGradientMatches(c);
}

TEST(BackwardReferenceTest, AlibiSoftcapAndScale) {
  AttnCase c = Small();
  c.alibi = true;
  ExpectOracleGradientMatches(c);
  c.alibi = false;
  c.scale = 1.3f;  // large scores, so that the softcap's tanh saturates partly
  c.softcap = 2.0f;
  ExpectOracleGradientMatches(c);
  c.alibi = true;
  c.left = 4;
  c.right = 1;
  ExpectOracleGradientMatches(c);
}

TEST(BackwardReferenceTest, GroupedAndMultiQueryHeads) {
  AttnCase c = Small();
  c.hq = 4;
  for (int64_t hkv : {2, 1}) {
    c.hkv = hkv;
    c.left = 3;
    c.right = 0;
    ExpectOracleGradientMatches(c);
  }
}

TEST(BackwardReferenceTest, VarlenAndDifferentLengths) {
  AttnCase c = Small();
  c.varlen = {{4, 6}, {0, 3}, {5, 2}, {3, 0}, {2, 2}};
  c.causal = true;
  ExpectOracleGradientMatches(c);
  c.varlen.clear();
  c.lq = 5;
  c.lk = 12;
  ExpectOracleGradientMatches(c);
}

TEST(BackwardReferenceTest, EmptyRowsWithAndWithoutSinks) {
  // Lq > Lk under causality: the first rows see no key, so their out is 0 (or, with a
  // sink logit, the sink takes all the mass); their gradients must be 0.
  AttnCase c = Small();
  c.lq = 12;
  c.lk = 6;
  c.causal = true;
  ExpectOracleGradientMatches(c);
  c.sink_logits = true;
  ExpectOracleGradientMatches(c);
}

TEST(BackwardReferenceTest, RandomCombinations) {
  std::mt19937_64 rng(77);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  int checked = 0;
  for (int n = 0; n < 25; ++n) {
    AttnCase c;
    c.seed = 500 + n;
    c.dim = pick(1, 6);
    c.hkv = pick(1, 2);
    c.hq = c.hkv * pick(1, 2);
    c.lq = pick(1, 10);
    c.lk = pick(1, 10);
    c.left = pick(-1, 5);
    c.right = pick(-1, 3);
    c.causal = pick(0, 1);
    if (pick(0, 3) == 0) {
      c.chunk = pick(1, 5);
      c.overlap = pick(0, c.chunk);
    }
    if (pick(0, 3) == 0) c.sink_tokens = pick(1, 3);
    c.sink_logits = pick(0, 2) == 0;
    if (pick(0, 3) == 0) c.globals = {pick(0, 4), pick(5, 12)};
    c.alibi = pick(0, 2) == 0;
    if (pick(0, 2) == 0) c.softcap = static_cast<float>(pick(1, 4));
    // A gradient can legitimately vanish (e.g. every row sees one key): skip those.
    CaseData probe(c);
    GuardedTensor dout = RandomDout(c);
    const auto ref = OracleGradients(probe, dout);
    auto peak = [](const std::vector<double>& x) {
      double m = 0;
      for (double e : x) m = std::max(m, std::abs(e));
      return m;
    };
    if (peak(ref.dq) < 1e-3 || peak(ref.dk) < 1e-3 || peak(ref.dv) < 1e-3 ||
        (c.sink_logits && peak(ref.dsink) < 1e-3)) {
      continue;
    }
    ExpectOracleGradientMatches(c);
    ++checked;
  }
  EXPECT_GE(checked, 15) << "too many random cases had a vanishing gradient";
}

}  // namespace
}  // namespace swa
