// Keys given as spans in absolute positions (the KV cache's view: pinned sink slots and
// the two halves of a ring buffer) give the same attention as the whole sequence.
#include <gtest/gtest.h>

#include <random>

#include "attention/entry.h"
#include "attention/validate.h"
#include "harness/attention_case.h"

namespace swa {
namespace {

using harness::AttnCase;
using harness::CaseData;
using harness::GuardedTensor;
using harness::Layout;

struct RingCase {
  AttnCase c;
  int64_t capacity;  // ring slots (>= the keys it must hold)
};

// Runs c through the C API, then again with its keys copied into sink slots plus a ring
// of `capacity` slots holding only the keys some query can still see.
void ExpectSpansMatchWholeSequence(const RingCase& rc) {
  const AttnCase& c = rc.c;
  ASSERT_GE(c.left, 0);
  ASSERT_EQ(c.right, 0);
  CaseData data(c);
  ASSERT_EQ(swa_attention_forward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                  &data.out.view(), data.lse.data()),
            0)
      << swa_last_error();
  const std::vector<uint8_t> want = data.out.ElementBytes();
  std::vector<float> want_lse(data.lse.data(), data.lse.data() + data.lse.size());
  std::vector<float> got_lse(want_lse.size());

  // Oldest position any query still sees through the window; older ones (except sinks)
  // are evicted.
  const int64_t oldest = std::max<int64_t>(c.sink_tokens, c.lk - c.lq - c.left);
  const int64_t live = c.lk - oldest;
  ASSERT_LE(live, rc.capacity);
  const int64_t sinks = std::min(c.sink_tokens, c.lk);
  GuardedTensor sink_k(c.dtype, 1, sinks, c.hkv, c.dim, Layout::kContiguous);
  GuardedTensor sink_v(c.dtype, 1, sinks, c.hkv, c.dim, Layout::kContiguous);
  GuardedTensor ring_k(c.dtype, 1, rc.capacity, c.hkv, c.dim, Layout::kPadded);
  GuardedTensor ring_v(c.dtype, 1, rc.capacity, c.hkv, c.dim, Layout::kPadded);
  for (int64_t pos = 0; pos < c.lk; ++pos) {
    for (int64_t h = 0; h < c.hkv; ++h)
      for (int64_t e = 0; e < c.dim; ++e) {
        if (pos < sinks) {
          sink_k.Set(0, pos, h, e, data.k.Get(0, pos, h, e));
          sink_v.Set(0, pos, h, e, data.v.Get(0, pos, h, e));
        } else if (pos >= oldest) {
          ring_k.Set(0, pos % rc.capacity, h, e, data.k.Get(0, pos, h, e));
          ring_v.Set(0, pos % rc.capacity, h, e, data.v.Get(0, pos, h, e));
        }
      }
  }
  auto ref = [](const GuardedTensor& t) {
    attention::TensorRef r;
    const swa_tensor& v = t.view();
    r.data = v.data;
    r.batch = v.shape[0];
    r.seqlen = v.shape[1];
    r.heads = v.shape[2];
    r.dim = v.shape[3];
    r.stride_b = v.stride[0];
    r.stride_l = v.stride[1];
    r.stride_h = v.stride[2];
    return r;
  };
  attention::SpannedKeys spanned;
  if (sinks > 0) spanned.spans.push_back({ref(sink_k), ref(sink_v), 0, 0, sinks, 0});
  // The ring's live positions [oldest, lk) occupy slots from oldest % capacity, wrapping.
  const int64_t first_slot = oldest % rc.capacity;
  const int64_t before_wrap = std::min(live, rc.capacity - first_slot);
  // Newest part first: span order must not matter.
  if (live > before_wrap) {
    spanned.spans.push_back({ref(ring_k), ref(ring_v), 0, 0, live - before_wrap, oldest + before_wrap});
  }
  if (before_wrap > 0)
    spanned.spans.push_back({ref(ring_k), ref(ring_v), 0, first_slot, before_wrap, oldest});
  spanned.span_begin = {0, static_cast<int64_t>(spanned.spans.size())};
  spanned.first_query = {c.lk - c.lq};

  // The spanned call must read only the spans: poison the original keys and values.
  data.out.Poison();
  data.k.Poison();
  data.v.Poison();
  auto vp = attention::ValidateForward(&data.params(), &data.q.view(), &data.k.view(), &data.v.view(),
                                       &data.out.view(), got_lse.data());
  vp->problem.spanned = &spanned;
  attention::Forward(vp->problem, ThreadPool::Default());

  // Same keys, other block boundaries: equal within rounding, not bitwise.
  double max_diff = 0, max_ref = 0;
  for (int64_t l = 0; l < c.lq; ++l)
    for (int64_t h = 0; h < c.hq; ++h)
      for (int64_t e = 0; e < c.dim; ++e) {
        const int64_t idx = ((l * c.hq) + h) * c.dim + e;
        const size_t es = DTypeSize(c.dtype);
        float w;
        if (c.dtype == DType::kF32) {
          std::memcpy(&w, &want[idx * 4], 4);
        } else {
          uint16_t bits;
          std::memcpy(&bits, &want[idx * es], 2);
          w = c.dtype == DType::kBF16 ? BF16ToFloat(bits) : F16ToFloat(bits);
        }
        max_diff = std::max(max_diff, std::abs(static_cast<double>(data.out.Get(0, l, h, e)) - w));
        max_ref = std::max(max_ref, std::abs(static_cast<double>(w)));
      }
  EXPECT_LE(max_diff, 4 * harness::ForwardTolerance(c.dtype) * std::max(1.0, max_ref)) << c.Name();
  for (size_t i = 0; i < want_lse.size(); ++i) {
    EXPECT_NEAR(got_lse[i], want_lse[i], 1e-4 * std::max(1.0f, std::abs(want_lse[i])))
        << c.Name() << " lse " << i;
  }
  EXPECT_TRUE(ring_k.GuardsIntact() && ring_v.GuardsIntact());
}

TEST(SpansTest, RingBufferHalvesAndSinksMatchTheWholeSequence) {
  std::mt19937_64 rng(77);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int n = 0; n < 60; ++n) {
    RingCase rc;
    AttnCase& c = rc.c;
    c.seed = 500 + n;
    c.dtype = static_cast<DType>(pick(0, 2));
    c.lk = pick(1, 700);
    c.lq = pick(1, std::min<int64_t>(c.lk, 80));
    c.left = pick(0, 300);
    c.right = 0;
    c.causal = pick(0, 1);
    c.hkv = pick(1, 2);
    c.hq = c.hkv * pick(1, 4);
    c.dim = pick(1, 40);
    if (pick(0, 1)) c.sink_tokens = pick(1, 6);
    c.sink_logits = pick(0, 2) == 0;
    c.alibi = pick(0, 3) == 0;
    c.threads = static_cast<int>(pick(1, 3));
    rc.capacity = c.lq + c.left + pick(0, 50);
    ExpectSpansMatchWholeSequence(rc);
  }
}

}  // namespace
}  // namespace swa
