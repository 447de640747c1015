// Several independent streams in one cache: interleaved, attended together in one call
// (a decode token for each of B streams, or packed chunks of different lengths), reset
// and removed without touching the others. Each stream's outputs equal the forward over
// its own whole sequence.
#include <gtest/gtest.h>

#include <random>

#include "cache_test_util.h"

namespace swa::testing {
namespace {

// One stream of a batch: its data, reference and outputs so far.
struct StreamState {
  int64_t id = 0;
  std::unique_ptr<CaseData> data;
  Outputs want, got;
  int64_t n = 0;  // positions fed
};

// The layer shared by the streams; each stream has its own seed and length.
Stream Layer(DType t, int64_t max_chunk) {
  Stream s;
  AttnCase& c = s.c;
  c.dtype = t;
  c.hq = 6;
  c.hkv = 2;
  c.dim = 20;
  c.left = 13;
  c.right = 0;
  c.causal = true;
  c.sink_tokens = 2;
  c.alibi = true;
  c.threads = 2;
  s.max_chunk = max_chunk;
  s.rope = true;
  return s;
}

std::vector<StreamState> MakeStreams(const Stream& layer, const std::vector<int64_t>& lengths,
                                     uint64_t seed) {
  std::vector<StreamState> streams(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    Stream s = layer;
    s.c.lq = s.c.lk = lengths[i];
    s.c.seed = seed + i;
    streams[i].id = 100 + 10 * static_cast<int64_t>(i);
    streams[i].data = std::make_unique<CaseData>(s.c);
    streams[i].want = WholeSequenceReference(s, *streams[i].data);
    streams[i].got = EmptyOutputs(s.c);
  }
  return streams;
}

void ExpectMatches(const Stream& layer, const StreamState& st, int64_t rows) {
  const RowErrors e = CompareRows(*st.got.out, st.got.lse, *st.want.out, st.want.lse, 0, rows);
  EXPECT_LE(e.out, StreamTolerance(layer.c.dtype)) << "stream " << st.id << " " << layer.Name();
  EXPECT_LE(e.lse, harness::kLseTolerance) << "stream " << st.id;
  EXPECT_TRUE(e.nonfinite_match) << "stream " << st.id;
}

Stream WithLength(const Stream& layer, const StreamState& st) {
  Stream s = layer;
  s.c = st.data->spec();
  return s;
}

TEST(CacheBatchTest, InterleavedStreams) {
  for (DType t : {DType::kF32, DType::kBF16}) {
    const Stream layer = Layer(t, 5);
    std::vector<StreamState> streams = MakeStreams(layer, {150, 90, 200, 1}, 40);
    CaseData cfg_data(layer.c);
    KvCache cache(layer.Config(cfg_data));
    for (const StreamState& st : streams) cache.AddSequence(st.id);
    std::mt19937_64 rng(3);
    for (int step = 0; step < 400; ++step) {
      StreamState& st = streams[rng() % streams.size()];
      const int64_t length = st.data->spec().lq;
      if (st.n == length) continue;
      const int64_t count = std::min<int64_t>(1 + rng() % 12, length - st.n);
      Feed(cache, st.id, WithLength(layer, st), *st.data, st.n, count, &st.got);
      st.n += count;
    }
    for (const StreamState& st : streams) {
      EXPECT_EQ(cache.Positions(st.id), st.n);
      ExpectMatches(layer, st, st.n);
    }
  }
}

// B streams at different positions each decode one token per step, all in one attend
// call with q [B, 1, Hq, D].
TEST(CacheBatchTest, BatchedDecodeOfStreamsAtDifferentPositions) {
  for (DType t : {DType::kF32, DType::kF16}) {
    const Stream layer = Layer(t, 1);
    const AttnCase& c = layer.c;
    std::vector<StreamState> streams = MakeStreams(layer, {160, 160, 160}, 70);
    CaseData cfg_data(c);
    KvCache cache(layer.Config(cfg_data));
    // Prefill to different positions.
    const int64_t prefill[] = {0, 37, 101};
    for (size_t i = 0; i < streams.size(); ++i) {
      cache.AddSequence(streams[i].id);
      if (prefill[i] > 0) {
        Feed(cache, streams[i].id, WithLength(layer, streams[i]), *streams[i].data, 0, prefill[i],
             &streams[i].got);
      }
      streams[i].n = prefill[i];
    }
    const int64_t b = static_cast<int64_t>(streams.size());
    std::vector<int64_t> ids;
    for (const StreamState& st : streams) ids.push_back(st.id);
    for (int step = 0; step < 59; ++step) {
      GuardedTensor q(c.dtype, b, 1, c.hq, c.dim, Layout::kPadded),
          k(c.dtype, b, 1, c.hkv, c.dim, Layout::kPadded), v(c.dtype, b, 1, c.hkv, c.dim, Layout::kPadded),
          out(c.dtype, b, 1, c.hq, c.dim, Layout::kPadded);
      out.Poison();
      for (int64_t s = 0; s < b; ++s) {
        const CaseData& d = *streams[s].data;
        const int64_t pos = streams[s].n;
        for (int64_t h = 0; h < c.hq; ++h)
          for (int64_t e = 0; e < c.dim; ++e) q.Set(s, 0, h, e, d.q.Get(0, pos, h, e));
        for (int64_t h = 0; h < c.hkv; ++h)
          for (int64_t e = 0; e < c.dim; ++e) {
            k.Set(s, 0, h, e, d.k.Get(0, pos, h, e));
            v.Set(s, 0, h, e, d.v.Get(0, pos, h, e));
          }
      }
      std::vector<float> lse(b * c.hq);
      cache.Append(ids.data(), b, k.view(), v.view());
      cache.Attend(ids.data(), b, q.view(), out.view(), lse.data());
      ASSERT_TRUE(out.GuardsIntact());
      for (int64_t s = 0; s < b; ++s) {
        StreamState& st = streams[s];
        for (int64_t h = 0; h < c.hq; ++h) {
          for (int64_t e = 0; e < c.dim; ++e) st.got.out->Set(0, st.n, h, e, out.Get(s, 0, h, e));
          st.got.lse[h * st.data->spec().lq + st.n] = lse[s * c.hq + h];
        }
        ++st.n;
      }
    }
    for (const StreamState& st : streams) ExpectMatches(layer, st, st.n);
  }
}

// Packed chunks of different lengths (some empty) for several streams in one
// append_attend call with cu_seqlens, longer than max_chunk (split inside).
TEST(CacheBatchTest, PackedChunksOfDifferentLengths) {
  const Stream layer = Layer(DType::kF32, 4);
  const AttnCase& c = layer.c;
  std::vector<StreamState> streams = MakeStreams(layer, {120, 120, 120}, 90);
  CaseData cfg_data(c);
  KvCache cache(layer.Config(cfg_data));
  std::vector<int64_t> ids;
  for (const StreamState& st : streams) {
    cache.AddSequence(st.id);
    ids.push_back(st.id);
  }
  std::mt19937_64 rng(8);
  for (int step = 0; step < 30; ++step) {
    std::vector<int32_t> cu = {0};
    for (const StreamState& st : streams) {
      const int64_t count = std::min<int64_t>(rng() % 11, st.data->spec().lq - st.n);
      cu.push_back(cu.back() + static_cast<int32_t>(count));
    }
    const int64_t total = cu.back();
    GuardedTensor q(c.dtype, 1, total, c.hq, c.dim, Layout::kContiguous),
        k(c.dtype, 1, total, c.hkv, c.dim, Layout::kContiguous),
        v(c.dtype, 1, total, c.hkv, c.dim, Layout::kContiguous),
        out(c.dtype, 1, total, c.hq, c.dim, Layout::kContiguous);
    for (size_t s = 0; s < streams.size(); ++s) {
      const CaseData& d = *streams[s].data;
      for (int64_t i = 0; i < cu[s + 1] - cu[s]; ++i) {
        const int64_t pos = streams[s].n + i;
        for (int64_t h = 0; h < c.hq; ++h)
          for (int64_t e = 0; e < c.dim; ++e) q.Set(0, cu[s] + i, h, e, d.q.Get(0, pos, h, e));
        for (int64_t h = 0; h < c.hkv; ++h)
          for (int64_t e = 0; e < c.dim; ++e) {
            k.Set(0, cu[s] + i, h, e, d.k.Get(0, pos, h, e));
            v.Set(0, cu[s] + i, h, e, d.v.Get(0, pos, h, e));
          }
      }
    }
    std::vector<float> lse(c.hq * total);
    cache.AppendAttend(ids.data(), static_cast<int64_t>(ids.size()), q.view(), k.view(), v.view(), out.view(),
                       lse.data(), cu.data());
    for (size_t s = 0; s < streams.size(); ++s) {
      StreamState& st = streams[s];
      for (int64_t i = 0; i < cu[s + 1] - cu[s]; ++i, ++st.n) {
        for (int64_t h = 0; h < c.hq; ++h) {
          for (int64_t e = 0; e < c.dim; ++e) st.got.out->Set(0, st.n, h, e, out.Get(0, cu[s] + i, h, e));
          st.got.lse[h * st.data->spec().lq + st.n] = lse[h * total + cu[s] + i];
        }
      }
    }
  }
  for (const StreamState& st : streams) ExpectMatches(layer, st, st.n);
}

TEST(CacheBatchTest, ResetAndRemoveLeaveOtherStreamsAlone) {
  const Stream layer = Layer(DType::kF32, 3);
  std::vector<StreamState> streams = MakeStreams(layer, {100, 100, 100}, 120);
  CaseData cfg_data(layer.c);
  KvCache cache(layer.Config(cfg_data));
  for (StreamState& st : streams) {
    cache.AddSequence(st.id);
    Feed(cache, st.id, WithLength(layer, st), *st.data, 0, 40, &st.got);
    st.n = 40;
  }
  const int64_t bytes_each = cache.Stats().bytes_used / 3;
  // Reset stream 0: it starts over from position 0 and must give the same outputs again.
  cache.ResetSequence(streams[0].id);
  EXPECT_EQ(cache.Positions(streams[0].id), 0);
  streams[0].n = 0;
  streams[0].got = EmptyOutputs(streams[0].data->spec());
  // Remove stream 1.
  cache.RemoveSequence(streams[1].id);
  EXPECT_EQ(cache.Stats().num_sequences, 2);
  EXPECT_EQ(cache.Stats().bytes_used, 2 * bytes_each);
  EXPECT_EQ(cache.SequenceIds(), (std::vector<int64_t>{streams[0].id, streams[2].id}));
  EXPECT_THROW(cache.Positions(streams[1].id), Error);
  for (StreamState* st : {&streams[0], &streams[2]}) {
    while (st->n < 100) {
      const int64_t count = std::min<int64_t>(7, 100 - st->n);
      Feed(cache, st->id, WithLength(layer, *st), *st->data, st->n, count, &st->got);
      st->n += count;
    }
    ExpectMatches(layer, *st, 100);
  }
  // A removed id can be added again, as a new empty stream.
  cache.AddSequence(streams[1].id);
  EXPECT_EQ(cache.Positions(streams[1].id), 0);
}

}  // namespace
}  // namespace swa::testing
