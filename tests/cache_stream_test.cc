// A stream fed to the KV cache chunk by chunk gives the outputs of the double-precision
// oracle over the whole sequence, across many
// wrap-arounds of the ring, for every chunk size, window, sink setting, GQA shape and
// dtype; and the cache holds exactly the keys and values it should.
#include <gtest/gtest.h>

#include <random>

#include "cache_test_util.h"

namespace swa::testing {
namespace {

// Capacity of the ring as documented in swa.h (sliding-window layers).
int64_t RingCapacity(const Stream& s) {
  const AttnCase& c = s.c;
  if (c.chunk > 0) return c.chunk - 1 + c.overlap + s.max_chunk;
  int64_t left = c.left;
  for (int64_t l : c.head_left) left = std::max(left, l);
  return left + s.max_chunk;
}

// Checks the stored rows of sequence `id` after `n` positions: every resident position
// holds its key (rotated at its absolute position in the absolute RoPE mode) and value,
// and positions evicted from the ring cannot be read.
void ExpectContents(const KvCache& cache, int64_t id, const Stream& s, CaseData& data, int64_t n) {
  const AttnCase& c = s.c;
  const swa_kv_cache_stats st = cache.Stats();
  const int64_t sinks = std::min(st.sink_slots, n);
  const int64_t first = st.capacity < 0 ? 0 : std::max(st.sink_slots, n - st.capacity);
  std::unique_ptr<GuardedTensor> rotated;
  if (s.rope && s.mode == SWA_POSITIONS_ABSOLUTE) rotated = Rotated(data.k, s.Rope(), 0);
  const GuardedTensor& want_k = rotated ? *rotated : data.k;
  auto check = [&](int64_t begin, int64_t end) {
    if (end <= begin) return;
    GuardedTensor k(c.dtype, 1, end - begin, c.hkv, c.dim, Layout::kPadded),
        v(c.dtype, 1, end - begin, c.hkv, c.dim, Layout::kPadded);
    k.Poison();
    v.Poison();
    ASSERT_EQ(swa_kv_cache_read(cache.get(), id, begin, &k.view(), &v.view()), 0) << swa_last_error();
    int64_t mismatches = 0;
    for (int64_t p = begin; p < end; ++p)
      for (int64_t h = 0; h < c.hkv; ++h)
        for (int64_t e = 0; e < c.dim; ++e) {
          mismatches += k.Get(0, p - begin, h, e) != want_k.Get(0, p, h, e);
          mismatches += v.Get(0, p - begin, h, e) != data.v.Get(0, p, h, e);
        }
    EXPECT_EQ(mismatches, 0) << s.Name() << " positions [" << begin << ", " << end << ")";
    EXPECT_TRUE(k.GuardsIntact() && v.GuardsIntact());
  };
  check(0, sinks);
  check(first, n);
  if (first > sinks) {
    GuardedTensor k(c.dtype, 1, 1, c.hkv, c.dim, Layout::kContiguous),
        v(c.dtype, 1, 1, c.hkv, c.dim, Layout::kContiguous);
    EXPECT_NE(swa_kv_cache_read(cache.get(), id, first - 1, &k.view(), &v.view()), 0)
        << "evicted position readable";
  }
  int64_t positions = -1;
  ASSERT_EQ(swa_kv_cache_seq_positions(cache.get(), id, &positions), 0);
  EXPECT_EQ(positions, n);
}

// Feeds the whole stream in chunks of `plan` (cycled) and compares every row with the
// whole-sequence forward; checks the contents every few chunks.
void RunStream(const Stream& s, const std::vector<int64_t>& plan) {
  const AttnCase& c = s.c;
  CaseData data(c);
  const Outputs want = WholeSequenceReference(s, data);
  KvCache cache(s.Config(data));
  cache.AddSequence(7);
  Outputs got = EmptyOutputs(c);
  int64_t n = 0;
  for (size_t step = 0; n < c.lq; ++step) {
    const int64_t t = std::min(plan[step % plan.size()], c.lq - n);
    Feed(cache, 7, s, data, n, t, &got);
    n += t;
    if (step % 5 == 0) ExpectContents(cache, 7, s, data, n);
  }
  ExpectContents(cache, 7, s, data, n);
  const RowErrors e = CompareRows(*got.out, got.lse, *want.out, want.lse, 0, c.lq);
  EXPECT_LE(e.out, StreamTolerance(c.dtype)) << s.Name();
  EXPECT_LE(e.lse, harness::kLseTolerance) << s.Name();
  EXPECT_TRUE(e.nonfinite_match) << s.Name();
  EXPECT_TRUE(got.out->GuardsIntact());
  const swa_kv_cache_stats st = cache.Stats();
  if (st.capacity >= 0) {
    EXPECT_EQ(st.capacity, RingCapacity(s)) << s.Name();
    EXPECT_EQ(st.bytes_used, 2 * (st.capacity + st.sink_slots) * c.hkv * c.dim * DTypeSize(c.dtype));
  }
}

constexpr DType kDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};

TEST(CacheStreamTest, EveryChunkSizeAcrossManyWrapArounds) {
  const int64_t w = 16;  // window of W tokens: (W - 1, 0)
  int n = 0;
  for (DType t : kDTypes) {
    for (int64_t chunk : {int64_t{1}, int64_t{7}, w - 1, w, w + 1, 3 * w}) {
      for (int64_t sinks : {0, 3}) {
        Stream s;
        AttnCase& c = s.c;
        c.dtype = t;
        c.hkv = 1 + n % 2;
        c.hq = c.hkv * (1 + n % 3);
        c.dim = n % 2 ? 24 : 13;
        c.left = w - 1;
        c.right = 0;
        c.sink_tokens = sinks;
        // Sink tokens are visible to every query; without causal also to queries before
        // them, which a stream has not seen yet.
        c.causal = sinks > 0 || n % 2 == 0;
        c.sink_logits = n % 4 == 1;
        c.alibi = n % 5 == 2;
        c.threads = 1 + n % 3;
        c.seed = 100 + n;
        // max_chunk below the chunk size exercises append_attend's splitting.
        s.max_chunk = n % 2 ? chunk : std::max<int64_t>(1, chunk / 2);
        s.rope = n % 3 != 0;
        c.lq = c.lk = 7 * (w + s.max_chunk) + 5;  // the ring wraps about 7 times
        RunStream(s, {chunk});
        ++n;
      }
    }
  }
}

TEST(CacheStreamTest, RandomStreamsAndRules) {
  std::mt19937_64 rng(11);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int n = 0; n < 40; ++n) {
    Stream s;
    AttnCase& c = s.c;
    c.dtype = kDTypes[pick(0, 2)];
    c.hkv = pick(1, 3);
    c.hq = c.hkv * pick(1, 3);
    c.dim = pick(1, 40);
    c.causal = pick(0, 1);
    c.right = 0;
    switch (pick(0, 2)) {
      case 0:
        c.left = pick(0, 40);
        break;
      case 1:  // per-head windows
        for (int64_t h = 0; h < c.hq; ++h) c.head_left.push_back(pick(0, 40));
        c.left = pick(0, 40);
        break;
      case 2:  // chunked attention (causal: the overlap to the right lies in the future)
        c.causal = true;
        c.chunk = pick(1, 24);
        c.overlap = pick(0, c.chunk / 2);
        break;
    }
    if (pick(0, 1)) {
      c.sink_tokens = pick(1, 5);
      c.causal = true;
    }
    c.sink_logits = pick(0, 2) == 0;
    c.alibi = pick(0, 3) == 0;
    if (pick(0, 4) == 0) c.softcap = 5.0f;
    c.threads = static_cast<int>(pick(1, 3));
    c.seed = 300 + n;
    s.max_chunk = pick(1, 20);
    s.rope = pick(0, 1);
    if (s.rope && c.dim >= 4 && pick(0, 1)) s.rope_dims = 2 * pick(1, c.dim / 2);
    c.lq = c.lk = pick(1, 400);
    std::vector<int64_t> plan;
    for (int i = 0; i < 6; ++i) plan.push_back(pick(1, 50));
    RunStream(s, plan);
  }
}

TEST(CacheStreamTest, GlobalLayersKeepEveryPositionInPages) {
  for (int variant = 0; variant < 3; ++variant) {
    Stream s;
    AttnCase& c = s.c;
    c.dtype = kDTypes[variant];
    c.hq = 4;
    c.hkv = 2;
    c.dim = 16;
    c.left = 9;
    c.right = 0;
    c.causal = true;
    if (variant == 0) c.head_left = {9, -1, 3, 9};  // one global head
    if (variant == 1) c.globals = {0, 5, 77, 200};  // global tokens
    if (variant == 2) c.left = -1;                  // plain causal attention
    c.sink_tokens = variant;
    c.lq = c.lk = 300;
    c.seed = 900 + variant;
    s.max_chunk = 5;
    s.rope = variant != 1;
    RunStream(s, {1, 13, 64, 2});
    CaseData data(c);
    KvCacheConfig cfg = s.Config(data);
    cfg.PageTokens(32);
    KvCache cache(cfg);
    cache.AddSequence(1);
    EXPECT_EQ(cache.Stats().capacity, -1);
    EXPECT_EQ(cache.Stats().bytes_used, 0);
    Outputs got = EmptyOutputs(c);
    Feed(cache, 1, s, data, 0, 33, &got);  // two pages
    EXPECT_EQ(cache.Stats().bytes_used, 2 * 2 * 32 * c.hkv * c.dim * DTypeSize(c.dtype));
    ExpectContents(cache, 1, s, data, 33);
  }
}

// Appending more positions than the ring holds in one call (a fast prefill without
// outputs) keeps exactly the newest ones: the last max_chunk queries still match.
TEST(CacheStreamTest, LargeAppendsKeepTheNewestPositions) {
  for (int variant = 0; variant < 4; ++variant) {
    Stream s;
    AttnCase& c = s.c;
    c.dtype = kDTypes[variant % 3];
    c.hq = 4;
    c.hkv = 2;
    c.dim = 16;
    c.left = 11;
    c.right = 0;
    c.causal = true;
    c.sink_tokens = variant % 2 ? 3 : 0;
    if (variant == 3) {
      c.chunk = 8;
      c.overlap = 2;
    }
    c.lq = c.lk = 400;
    c.seed = 1700 + variant;
    s.max_chunk = 4;
    s.rope = variant != 2;
    CaseData data(c);
    const Outputs want = WholeSequenceReference(s, data);
    KvCache cache(s.Config(data));
    cache.AddSequence(5);
    Outputs got = EmptyOutputs(c);
    int64_t n = 0;
    for (int64_t big : {5, 40, 17, 90, 64}) {  // 40 and 90 exceed the ring's capacity
      cache.Append(5, Rows(data.k, n, big), Rows(data.v, n, big));
      n += big;
      ExpectContents(cache, 5, s, data, n);
      const int64_t t = std::min<int64_t>(s.max_chunk, n);
      swa_tensor o = Rows(*got.out, n - t, t);
      std::vector<float> lse(c.hq * t);
      cache.Attend(5, Rows(data.q, n - t, t), o, lse.data());
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t i = 0; i < t; ++i) got.lse[h * c.lq + n - t + i] = lse[h * t + i];
      const RowErrors e = CompareRows(*got.out, got.lse, *want.out, want.lse, n - t, t);
      EXPECT_LE(e.out, StreamTolerance(c.dtype)) << s.Name() << " after " << n;
      EXPECT_LE(e.lse, harness::kLseTolerance) << s.Name() << " after " << n;
    }
  }
}

// Results never depend on the thread count (the forward's work split and the parallel
// key rotation of the cache-relative mode are fixed functions of the problem).
TEST(CacheStreamTest, OutputsAreIdenticalForAnyThreadCount) {
  for (swa_position_mode mode : {SWA_POSITIONS_ABSOLUTE, SWA_POSITIONS_CACHE_RELATIVE}) {
    std::vector<std::vector<uint8_t>> outs;
    for (int threads : {1, 2, 3, 5}) {
      Stream s;
      AttnCase& c = s.c;
      c.hq = 8;
      c.hkv = 2;
      c.dim = 64;
      c.left = 2100;  // more keys than one split-KV piece of the decode path
      c.right = 0;
      c.causal = true;
      c.sink_tokens = 4;
      c.lq = c.lk = 2400;
      c.threads = threads;
      s.max_chunk = 3;
      s.rope = true;
      s.mode = mode;
      CaseData data(c);
      KvCache cache(s.Config(data));
      cache.AddSequence(0);
      Outputs got = EmptyOutputs(c);
      cache.Append(0, Rows(data.k, 0, 2360), Rows(data.v, 0, 2360));
      Feed(cache, 0, s, data, 2360, 10, &got);  // append_attend, split into pieces of 3
      for (int64_t n = 2370; n < c.lq; ++n) Feed(cache, 0, s, data, n, 1, &got);
      outs.push_back(got.out->ElementBytes());
    }
    for (size_t i = 1; i < outs.size(); ++i) EXPECT_EQ(outs[i], outs[0]) << "mode " << mode << " run " << i;
  }
}

// Positions up to 2^40: a stream jumped forward by appending ~2^40 identical rows (a
// zero row stride; only the ring's newest rows are stored) then fed real tokens gives the
// whole-sequence outputs of those tokens at their absolute positions, once the window
// has left the filler behind.
TEST(CacheStreamTest, PositionsNearTheLimit) {
  for (DType t : kDTypes) {
    Stream s;
    AttnCase& c = s.c;
    c.dtype = t;
    c.hq = 4;
    c.hkv = 2;
    c.dim = 32;
    c.left = 30;
    c.right = 0;
    c.causal = true;
    c.alibi = true;
    c.lq = c.lk = 200;
    s.max_chunk = 4;
    s.rope = true;
    const int64_t filler = (int64_t{1} << 40) - c.lq;
    CaseData data(c);
    KvCache cache(s.Config(data));
    cache.AddSequence(0);
    swa_tensor k = Rows(data.k, 0, 1), v = Rows(data.v, 0, 1);
    k.shape[1] = v.shape[1] = filler;
    k.stride[1] = v.stride[1] = 0;
    cache.Append(0, k, v);
    ASSERT_EQ(cache.Positions(0), filler);
    Outputs got = EmptyOutputs(c);
    for (int64_t n = 0; n < c.lq; n += 5) {
      const int64_t count = std::min<int64_t>(5, c.lq - n);
      const swa_tensor q = Rows(data.q, n, count), kk = Rows(data.k, n, count), vv = Rows(data.v, n, count);
      swa_tensor o = Rows(*got.out, n, count);
      std::vector<float> lse(c.hq * count);
      cache.AppendAttend(0, q, kk, vv, o, lse.data());
      for (int64_t h = 0; h < c.hq; ++h)
        for (int64_t i = 0; i < count; ++i) got.lse[h * c.lq + n + i] = lse[h * count + i];
    }
    EXPECT_EQ(cache.Positions(0), int64_t{1} << 40);
    // The reference: the real tokens rotated at their absolute positions.
    auto rq = Rotated(data.q, s.Rope(), filler), rk = Rotated(data.k, s.Rope(), filler);
    const Outputs want = Oracle(data.params(), rq->view(), rk->view(), data.v.view());
    const RowErrors e = CompareRows(*got.out, got.lse, *want.out, want.lse, c.left, c.lq - c.left);
    EXPECT_LE(e.out, StreamTolerance(t)) << s.Name();
    EXPECT_LE(e.lse, harness::kLseTolerance) << s.Name();
    // The position limit itself.
    const swa_tensor one_k = Rows(data.k, 0, 1), one_v = Rows(data.v, 0, 1);
    EXPECT_THROW(cache.Append(0, one_k, one_v), Error);
  }
}

// Keys stored before RoPE and rotated at attend time with their position inside the
// cache: each call equals a forward over the cache's contents laid out in order (sinks,
// then the visible ring keys), rotated at their indices, with the queries last.
TEST(CacheStreamTest, CacheRelativePositions) {
  std::mt19937_64 rng(21);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int n = 0; n < 16; ++n) {
    Stream s;
    AttnCase& c = s.c;
    c.dtype = kDTypes[n % 3];
    c.hkv = pick(1, 2);
    c.hq = c.hkv * pick(1, 3);
    c.dim = 2 * pick(1, 16);
    c.left = pick(3, 30);
    c.right = 0;
    c.causal = pick(0, 1);
    c.sink_tokens = pick(0, 4);
    c.alibi = n % 4 == 3;
    c.lq = c.lk = pick(50, 250);
    c.seed = 1300 + n;
    c.threads = 2;
    s.max_chunk = pick(1, 8);
    s.rope = n % 5 != 4;
    s.mode = SWA_POSITIONS_CACHE_RELATIVE;
    CaseData data(c);
    KvCache cache(s.Config(data));
    cache.AddSequence(0);
    int64_t pos = 0;
    double worst = 0;
    while (pos < c.lq) {
      const int64_t t = std::min(pick(1, s.max_chunk), c.lq - pos);
      swa_tensor k = Rows(data.k, pos, t), v = Rows(data.v, pos, t), q = Rows(data.q, pos, t);
      cache.Append(0, k, v);
      GuardedTensor out(c.dtype, 1, t, c.hq, c.dim, Layout::kContiguous);
      std::vector<float> lse(c.hq * t);
      cache.Attend(0, q, out.view(), lse.data());
      pos += t;
      // The expected frame: sinks keep 0..S-1, the ring keys from the first query's
      // window start follow them.
      const int64_t sinks = std::min(c.sink_tokens, pos);
      const int64_t oldest = std::max(c.sink_tokens, pos - t - c.left);
      const int64_t ring = std::max<int64_t>(0, pos - oldest);
      const int64_t lk = sinks + ring;
      GuardedTensor ck(c.dtype, 1, lk, c.hkv, c.dim, Layout::kContiguous),
          cv(c.dtype, 1, lk, c.hkv, c.dim, Layout::kContiguous);
      GuardedTensor cq(c.dtype, 1, t, c.hq, c.dim, Layout::kContiguous);
      for (int64_t j = 0; j < lk; ++j) {
        const int64_t src = j < sinks ? j : oldest + (j - sinks);
        for (int64_t h = 0; h < c.hkv; ++h)
          for (int64_t e = 0; e < c.dim; ++e) {
            ck.Set(0, j, h, e, data.k.Get(0, src, h, e));
            cv.Set(0, j, h, e, data.v.Get(0, src, h, e));
          }
      }
      for (int64_t i = 0; i < t; ++i)
        for (int64_t h = 0; h < c.hq; ++h)
          for (int64_t e = 0; e < c.dim; ++e) cq.Set(0, i, h, e, data.q.Get(0, pos - t + i, h, e));
      std::unique_ptr<GuardedTensor> rk, rq;
      if (s.rope) {
        rk = Rotated(ck, s.Rope(), 0);
        rq = Rotated(cq, s.Rope(), lk - t);
      }
      const Outputs want =
          Oracle(data.params(), s.rope ? rq->view() : cq.view(), s.rope ? rk->view() : ck.view(), cv.view());
      const RowErrors e = CompareRows(out, lse, *want.out, want.lse, 0, t);
      worst = std::max(worst, e.out);
      ASSERT_LE(e.out, StreamTolerance(c.dtype)) << s.Name() << " at position " << pos;
      ASSERT_LE(e.lse, harness::kLseTolerance) << s.Name() << " at position " << pos;
      ASSERT_TRUE(e.nonfinite_match);
    }
  }
}

// Without RoPE or ALiBi a frame shift changes nothing: both modes agree, and the ring
// keys are never rotated in the store (the contents are the raw keys).
TEST(CacheStreamTest, CacheRelativeWithoutRotationMatchesTheWholeSequence) {
  Stream s;
  AttnCase& c = s.c;
  c.hq = 4;
  c.hkv = 2;
  c.dim = 32;
  c.left = 20;
  c.right = 0;
  c.sink_tokens = 4;
  c.causal = true;
  c.lq = c.lk = 200;
  s.max_chunk = 3;
  s.mode = SWA_POSITIONS_CACHE_RELATIVE;
  RunStream(s, {1, 2, 3, 9});
  s.rope = true;  // stored un-rotated
  CaseData data(c);
  KvCache cache(s.Config(data));
  cache.AddSequence(0);
  Outputs got = EmptyOutputs(c);
  Feed(cache, 0, s, data, 0, 50, &got);
  s.rope = false;  // so that ExpectContents expects the raw keys
  ExpectContents(cache, 0, s, data, 50);
}

// A window reaching to the right (non-causal) sees only keys that exist: each call
// equals the forward of its queries against all keys appended so far.
TEST(CacheStreamTest, RightWindowsSeeOnlyAppendedKeys) {
  for (int variant = 0; variant < 2; ++variant) {
    Stream s;
    AttnCase& c = s.c;
    c.dtype = variant ? DType::kBF16 : DType::kF32;
    c.hq = 2;
    c.hkv = 1;
    c.dim = 16;
    if (variant == 0) {
      c.left = 12;
      c.right = 5;
    } else {
      c.chunk = 8;
      c.overlap = 2;
    }
    c.lq = c.lk = 120;
    s.max_chunk = 6;
    s.rope = variant == 0;
    CaseData data(c);
    std::unique_ptr<GuardedTensor> rq, rk;
    if (s.rope) {
      rq = Rotated(data.q, s.Rope(), 0);
      rk = Rotated(data.k, s.Rope(), 0);
    }
    KvCache cache(s.Config(data));
    cache.AddSequence(3);
    for (int64_t pos = 0, step = 0; pos < c.lq; ++step) {
      const int64_t t = std::min<int64_t>(1 + step % s.max_chunk, c.lq - pos);
      cache.Append(3, Rows(data.k, pos, t), Rows(data.v, pos, t));
      GuardedTensor out(c.dtype, 1, t, c.hq, c.dim, Layout::kContiguous);
      std::vector<float> lse(c.hq * t);
      cache.Attend(3, Rows(data.q, pos, t), out.view(), lse.data());
      pos += t;
      const swa_tensor q = Rows(s.rope ? *rq : data.q, pos - t, t);
      const swa_tensor k = Rows(s.rope ? *rk : data.k, 0, pos), v = Rows(data.v, 0, pos);
      const Outputs want = Oracle(data.params(), q, k, v);
      const RowErrors e = CompareRows(out, lse, *want.out, want.lse, 0, t);
      ASSERT_LE(e.out, StreamTolerance(c.dtype)) << s.Name() << " at " << pos;
      ASSERT_LE(e.lse, harness::kLseTolerance);
    }
  }
}

// append_attend of more than max_chunk positions under a rule that shows queries later
// keys: a ring cannot keep every key those queries see, so it refuses the call and
// changes nothing; a growing cache gives what append then attend gives, which is the
// oracle over the whole sequence.
TEST(CacheStreamTest, AppendAttendBeyondMaxChunkUnderARuleThatSeesLaterKeys) {
  Stream s;
  AttnCase& c = s.c;
  c.hq = 2;
  c.hkv = 1;
  c.dim = 16;
  c.left = 6;
  c.right = 3;
  c.lq = c.lk = 40;
  s.max_chunk = 4;
  CaseData ring_data(c);
  KvCache ring(s.Config(ring_data));
  ring.AddSequence(0);
  GuardedTensor out(c.dtype, 1, c.lq, c.hq, c.dim, Layout::kContiguous);
  std::vector<float> lse(c.hq * c.lq);
  swa_tensor out10 = Rows(out, 0, 10), out4 = Rows(out, 0, 4);
  try {
    ring.AppendAttend(0, Rows(ring_data.q, 0, 10), Rows(ring_data.k, 0, 10), Rows(ring_data.v, 0, 10), out10,
                      lse.data());
    ADD_FAILURE() << "a ring accepted append_attend of 10 > max_chunk positions with a right window";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds max_chunk 4"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ring.Positions(0), 0);
  // Within max_chunk the same call is fine.
  ring.AppendAttend(0, Rows(ring_data.q, 0, 4), Rows(ring_data.k, 0, 4), Rows(ring_data.v, 0, 4), out4,
                    lse.data());
  EXPECT_EQ(ring.Positions(0), 4);

  c.left = -1;  // unbounded: the cache grows
  CaseData data(c);
  KvCache growing(s.Config(data)), reference(s.Config(data));
  growing.AddSequence(0);
  reference.AddSequence(0);
  EXPECT_EQ(growing.Stats().capacity, -1);
  Outputs got = EmptyOutputs(c), want_split = EmptyOutputs(c);
  growing.AppendAttend(0, data.q.view(), data.k.view(), data.v.view(), got.out->view(), got.lse.data());
  reference.Append(0, data.k.view(), data.v.view());
  reference.Attend(0, data.q.view(), want_split.out->view(), want_split.lse.data());
  const RowErrors same = CompareRows(*got.out, got.lse, *want_split.out, want_split.lse, 0, c.lq);
  EXPECT_EQ(same.out, 0.0);
  EXPECT_EQ(same.lse, 0.0);
  const Outputs want = WholeSequenceReference(s, data);
  const RowErrors e = CompareRows(*got.out, got.lse, *want.out, want.lse, 0, c.lq);
  EXPECT_LE(e.out, StreamTolerance(c.dtype));
  EXPECT_LE(e.lse, harness::kLseTolerance);
}

}  // namespace
}  // namespace swa::testing
