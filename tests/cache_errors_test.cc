// Bad input to the KV cache: every failing call returns a negative code, says why in
// swa_last_error(), and leaves the cache exactly as it was (sequences, positions,
// stored rows, bytes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "cache_test_util.h"

namespace swa::testing {
namespace {

// Everything observable about a cache.
struct Snapshot {
  swa_kv_cache_stats stats{};
  std::vector<int64_t> ids, positions;
  std::vector<float> rows;  // every resident key and value element

  bool operator==(const Snapshot& o) const {
    return std::memcmp(&stats, &o.stats, sizeof(stats)) == 0 && ids == o.ids && positions == o.positions &&
           rows == o.rows;
  }
};

Snapshot Take(const KvCache& cache, const AttnCase& c) {
  Snapshot s;
  s.stats = cache.Stats();
  s.ids = cache.SequenceIds();
  for (int64_t id : s.ids) {
    const int64_t n = cache.Positions(id);
    s.positions.push_back(n);
    for (int64_t p = 0; p < n; ++p) {
      GuardedTensor k(c.dtype, 1, 1, c.hkv, c.dim, Layout::kContiguous),
          v(c.dtype, 1, 1, c.hkv, c.dim, Layout::kContiguous);
      if (swa_kv_cache_read(cache.get(), id, p, &k.view(), &v.view()) != 0) continue;  // evicted
      for (int64_t h = 0; h < c.hkv; ++h)
        for (int64_t e = 0; e < c.dim; ++e) {
          s.rows.push_back(k.Get(0, 0, h, e));
          s.rows.push_back(v.Get(0, 0, h, e));
        }
    }
  }
  return s;
}

class CacheErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    s_.c.hq = 4;
    s_.c.hkv = 2;
    s_.c.dim = 8;
    s_.c.left = 5;
    s_.c.right = 0;
    s_.c.causal = true;
    s_.c.sink_tokens = 1;
    s_.c.lq = s_.c.lk = 40;
    s_.max_chunk = 3;
    s_.rope = true;
    data_ = std::make_unique<CaseData>(s_.c);
    KvCacheConfig cfg = s_.Config(*data_);
    cfg.MaxPositions(30);
    cache_ = std::make_unique<KvCache>(cfg);
    cache_->AddSequence(1);
    cache_->AddSequence(2);
    cache_->AddSequence(3);  // stays empty
    Outputs got = EmptyOutputs(s_.c);
    Feed(*cache_, 1, s_, *data_, 0, 20, &got);  // wrapped
    Feed(*cache_, 2, s_, *data_, 0, 2, &got);
  }

  // The call fails with a message containing `needle`, and the cache is unchanged.
  void ExpectRejected(const std::function<int()>& call, const std::string& needle) {
    const Snapshot before = Take(*cache_, s_.c);
    const int rc = call();
    EXPECT_LT(rc, 0) << needle;
    const std::string message = swa_last_error();
    EXPECT_NE(message.find(needle), std::string::npos) << "message: " << message;
    EXPECT_TRUE(Take(*cache_, s_.c) == before) << needle << ": the cache changed";
  }

  // A [batch, rows, heads, dim] tensor of the layer's dtype.
  std::unique_ptr<GuardedTensor> Tensor(int64_t batch, int64_t rows, int64_t heads, int64_t dim = 8,
                                        DType t = DType::kF32) {
    auto g = std::make_unique<GuardedTensor>(t, batch, rows, heads, dim, Layout::kContiguous);
    g->Poison();
    return g;
  }

  Stream s_;
  std::unique_ptr<CaseData> data_;
  std::unique_ptr<KvCache> cache_;
};

TEST_F(CacheErrorsTest, Append) {
  swa_kv_cache* c = cache_->get();
  auto k = Tensor(1, 2, 2), v = Tensor(1, 2, 2);
  std::mt19937_64 rng(1);
  k->FillNormal(rng);
  v->FillNormal(rng);
  const int64_t one = 1, unknown = 77;
  const int64_t dup[2] = {1, 1};
  ExpectRejected([&] { return swa_kv_cache_append(nullptr, &one, 1, &k->view(), &v->view(), nullptr); },
                 "cache is NULL");
  ExpectRejected([&] { return swa_kv_cache_append(c, &one, 1, nullptr, &v->view(), nullptr); }, "k is NULL");
  ExpectRejected([&] { return swa_kv_cache_append(c, &one, 1, &k->view(), nullptr, nullptr); }, "v is NULL");
  ExpectRejected([&] { return swa_kv_cache_append(c, nullptr, 1, &k->view(), &v->view(), nullptr); },
                 "seq_ids is NULL");
  ExpectRejected([&] { return swa_kv_cache_append(c, &one, -1, &k->view(), &v->view(), nullptr); },
                 "num_seqs");
  ExpectRejected([&] { return swa_kv_cache_append(c, &unknown, 1, &k->view(), &v->view(), nullptr); },
                 "unknown sequence id 77");
  const int64_t pair[2] = {1, 2};
  ExpectRejected([&] { return swa_kv_cache_append(c, pair, 2, &k->view(), &v->view(), nullptr); },
                 "k has batch 1 but num_seqs is 2");
  auto k2 = Tensor(2, 2, 2), v2 = Tensor(2, 2, 2);
  ExpectRejected([&] { return swa_kv_cache_append(c, dup, 2, &k2->view(), &v2->view(), nullptr); },
                 "appears twice");
  auto wrong_heads = Tensor(1, 2, 4);
  ExpectRejected(
      [&] { return swa_kv_cache_append(c, &one, 1, &wrong_heads->view(), &wrong_heads->view(), nullptr); },
      "k has 4 heads, the cache has 2");
  auto wrong_dim = Tensor(1, 2, 2, 16);
  ExpectRejected([&] { return swa_kv_cache_append(c, &one, 1, &k->view(), &wrong_dim->view(), nullptr); },
                 "v has head_dim 16, the cache has 8");
  auto wrong_type = Tensor(1, 2, 2, 8, DType::kBF16);
  ExpectRejected(
      [&] { return swa_kv_cache_append(c, &one, 1, &wrong_type->view(), &wrong_type->view(), nullptr); },
      "k.dtype is bf16, the cache stores f32");
  auto longer = Tensor(1, 3, 2);
  ExpectRejected([&] { return swa_kv_cache_append(c, &one, 1, &k->view(), &longer->view(), nullptr); },
                 "same shape");
  swa_tensor no_data = k->view();
  no_data.data = nullptr;
  ExpectRejected([&] { return swa_kv_cache_append(c, &one, 1, &no_data, &v->view(), nullptr); },
                 "data is NULL");
  swa_tensor strided = k->view();
  strided.stride[3] = 2;
  ExpectRejected([&] { return swa_kv_cache_append(c, &one, 1, &strided, &v->view(), nullptr); }, "stride[3]");
  const int32_t cu_bad_total[3] = {0, 1, 3}, cu_decreasing[3] = {0, 2, 1}, cu_bad_start[3] = {1, 1, 2};
  ExpectRejected([&] { return swa_kv_cache_append(c, pair, 2, &k->view(), &v->view(), cu_bad_total); },
                 "packed length");
  ExpectRejected([&] { return swa_kv_cache_append(c, pair, 2, &k->view(), &v->view(), cu_decreasing); },
                 "non-decreasing");
  ExpectRejected([&] { return swa_kv_cache_append(c, pair, 2, &k->view(), &v->view(), cu_bad_start); },
                 "[0] must be 0");
  // max_positions is 30: sequence 1 is at 20, sequence 2 at 2. Eleven more fail for
  // sequence 1 and must not be appended to sequence 2 either.
  auto k11 = Tensor(2, 11, 2), v11 = Tensor(2, 11, 2);
  k11->FillNormal(rng);
  v11->FillNormal(rng);
  const int64_t two_first[2] = {2, 1};
  ExpectRejected([&] { return swa_kv_cache_append(c, two_first, 2, &k11->view(), &v11->view(), nullptr); },
                 "exceeds its fixed capacity of 30 positions");
  // Ten more fit exactly.
  auto k10 = Tensor(1, 10, 2), v10 = Tensor(1, 10, 2);
  k10->FillNormal(rng);
  v10->FillNormal(rng);
  EXPECT_EQ(swa_kv_cache_append(c, &one, 1, &k10->view(), &v10->view(), nullptr), 0) << swa_last_error();
  EXPECT_EQ(cache_->Positions(1), 30);
}

TEST_F(CacheErrorsTest, Attend) {
  swa_kv_cache* c = cache_->get();
  auto q = Tensor(1, 2, 4), out = Tensor(1, 2, 4);
  std::mt19937_64 rng(2);
  q->FillNormal(rng);
  std::vector<float> lse(8);
  const int64_t one = 1, empty = 3;
  auto q4 = Tensor(1, 4, 4), out4 = Tensor(1, 4, 4);
  q4->FillNormal(rng);
  ExpectRejected(
      [&] { return swa_kv_cache_attend(c, &one, 1, &q4->view(), nullptr, &out4->view(), nullptr); },
      "exceeds max_chunk 3");
  ExpectRejected(
      [&] { return swa_kv_cache_attend(c, &empty, 1, &q->view(), nullptr, &out->view(), lse.data()); },
      "has seen 0 positions");
  auto q_heads = Tensor(1, 2, 2);
  ExpectRejected(
      [&] { return swa_kv_cache_attend(c, &one, 1, &q_heads->view(), nullptr, &q_heads->view(), nullptr); },
      "overlaps");
  auto out_heads = Tensor(1, 2, 2);
  ExpectRejected(
      [&] { return swa_kv_cache_attend(c, &one, 1, &q_heads->view(), nullptr, &out_heads->view(), nullptr); },
      "q has 2 heads, the cache has 4");
  ExpectRejected([&] { return swa_kv_cache_attend(c, &one, 1, &q->view(), nullptr, &out4->view(), nullptr); },
                 "must have the shape of q");
  ExpectRejected([&] { return swa_kv_cache_attend(c, &one, 1, &q->view(), nullptr, &q->view(), nullptr); },
                 "overlaps the memory of q");
  auto q16 = Tensor(1, 2, 4, 8, DType::kF16), out16 = Tensor(1, 2, 4, 8, DType::kF16);
  ExpectRejected(
      [&] { return swa_kv_cache_attend(c, &one, 1, &q16->view(), nullptr, &out16->view(), nullptr); },
      "q.dtype is f16");
  ExpectRejected([&] { return swa_kv_cache_attend(c, &one, 1, &q->view(), nullptr, nullptr, nullptr); },
                 "out is NULL");
  const int64_t unknown = -4;
  ExpectRejected(
      [&] { return swa_kv_cache_attend(c, &unknown, 1, &q->view(), nullptr, &out->view(), nullptr); },
      "unknown sequence id -4");
  // A failing attend writes nothing either.
  const std::vector<uint8_t> untouched = out->ElementBytes();
  EXPECT_LT(swa_kv_cache_attend(c, &empty, 1, &q->view(), nullptr, &out->view(), lse.data()), 0);
  EXPECT_EQ(out->ElementBytes(), untouched);
}

TEST_F(CacheErrorsTest, AppendAttend) {
  swa_kv_cache* c = cache_->get();
  std::mt19937_64 rng(3);
  auto q = Tensor(1, 5, 4), out = Tensor(1, 5, 4), k = Tensor(1, 4, 2), v = Tensor(1, 4, 2);
  for (auto* t : {q.get(), k.get(), v.get()}) t->FillNormal(rng);
  const int64_t two = 2;
  ExpectRejected(
      [&] {
        return swa_kv_cache_append_attend(c, &two, 1, &q->view(), &k->view(), &v->view(), nullptr,
                                          &out->view(), nullptr);
      },
      "one query per key");
  // out sharing memory with k.
  auto big = Tensor(1, 8, 4), kk = Tensor(1, 8, 2);
  swa_tensor k_alias = big->view();
  k_alias.shape[2] = 2;
  k_alias.shape[1] = 5;
  swa_tensor o = big->view();
  o.shape[1] = 5;
  auto vv = Tensor(1, 5, 2);
  ExpectRejected(
      [&] {
        return swa_kv_cache_append_attend(c, &two, 1, &q->view(), &k_alias, &vv->view(), nullptr, &o,
                                          nullptr);
      },
      "out overlaps the memory of k");
  // Past max_positions: nothing appended, nothing attended.
  auto q30 = Tensor(1, 29, 4), out30 = Tensor(1, 29, 4), k30 = Tensor(1, 29, 2), v30 = Tensor(1, 29, 2);
  ExpectRejected(
      [&] {
        return swa_kv_cache_append_attend(c, &two, 1, &q30->view(), &k30->view(), &v30->view(), nullptr,
                                          &out30->view(), nullptr);
      },
      "fixed capacity");
}

TEST_F(CacheErrorsTest, SequencesReadsAndQueries) {
  swa_kv_cache* c = cache_->get();
  ExpectRejected([&] { return swa_kv_cache_add_sequence(c, 2); }, "sequence 2 already exists");
  ExpectRejected([&] { return swa_kv_cache_reset_sequence(c, 9); }, "unknown sequence id 9");
  ExpectRejected([&] { return swa_kv_cache_remove_sequence(c, 9); }, "unknown sequence id 9");
  ExpectRejected([&] { return swa_kv_cache_add_sequence(nullptr, 9); }, "cache is NULL");
  auto k = Tensor(1, 1, 2), v = Tensor(1, 1, 2);
  // Sequence 1 holds position 0 (a sink) and the ring's newest 8 of 20.
  EXPECT_EQ(swa_kv_cache_read(c, 1, 0, &k->view(), &v->view()), 0) << swa_last_error();
  EXPECT_EQ(swa_kv_cache_read(c, 1, 12, &k->view(), &v->view()), 0) << swa_last_error();
  ExpectRejected([&] { return swa_kv_cache_read(c, 1, 11, &k->view(), &v->view()); },
                 "no longer in the cache");
  ExpectRejected([&] { return swa_kv_cache_read(c, 1, 20, &k->view(), &v->view()); }, "not all in [0, 20)");
  ExpectRejected([&] { return swa_kv_cache_read(c, 1, -1, &k->view(), &v->view()); }, "not all in");
  ExpectRejected([&] { return swa_kv_cache_read(c, 1, 12, &k->view(), &k->view()); }, "overlaps");
  auto k16 = Tensor(1, 1, 2, 8, DType::kF16);
  ExpectRejected([&] { return swa_kv_cache_read(c, 1, 12, &k16->view(), &v->view()); }, "dtype");
  int64_t n = 0;
  ExpectRejected([&] { return swa_kv_cache_seq_positions(c, 5, &n); }, "unknown sequence id 5");
  ExpectRejected([&] { return swa_kv_cache_seq_positions(c, 1, nullptr); }, "positions is NULL");
  ExpectRejected([&] { return swa_kv_cache_get_stats(c, nullptr); }, "stats is NULL");
  ExpectRejected([&] { return swa_kv_cache_seq_ids(c, nullptr, 2, &n); }, "ids is NULL");
  int64_t ids[2];
  ASSERT_EQ(swa_kv_cache_seq_ids(c, ids, 2, &n), 0);
  EXPECT_EQ(n, 3);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 2);
  swa_kv_cache_destroy(nullptr);  // a no-op
}

TEST(CacheConfigErrorsTest, BadConfigsAreRejectedWithReasons) {
  const int64_t bad_globals[2] = {5, 2};
  const struct {
    std::function<void(swa_kv_cache_config*)> edit;
    const char* needle;
  } cases[] = {
      {[](swa_kv_cache_config* c) { c->num_heads = 3, c->num_kv_heads = 2; }, "multiple of num_kv_heads"},
      {[](swa_kv_cache_config* c) { c->num_heads = 0; }, "num_heads"},
      {[](swa_kv_cache_config* c) { c->head_dim = 0; }, "head_dim"},
      {[](swa_kv_cache_config* c) { c->head_dim = 257; }, "head_dim must be <= 256"},
      {[](swa_kv_cache_config* c) { std::memset(&c->dtype, 0x7f, sizeof(int)); }, "not a valid swa_dtype"},
      {[](swa_kv_cache_config* c) { std::memset(&c->position_mode, 0x11, sizeof(int)); }, "position_mode"},
      {[](swa_kv_cache_config* c) { c->max_chunk = 0; }, "max_chunk must be >= 1"},
      {[](swa_kv_cache_config* c) { c->max_positions = -1; }, "max_positions"},
      {[](swa_kv_cache_config* c) { c->page_tokens = -3; }, "page_tokens"},
      {[](swa_kv_cache_config* c) { c->rope = 1, c->rope_dims = 7; }, "rope_dims"},
      {[](swa_kv_cache_config* c) { c->rope = 1, c->rope_dims = 66; }, "rope_dims"},
      {[](swa_kv_cache_config* c) { c->rope = 1, c->rope_theta = std::nanf(""); }, "rope_theta"},
      {[](swa_kv_cache_config* c) {
         c->position_mode = SWA_POSITIONS_CACHE_RELATIVE;
         c->attention.chunk_size = 8;
       },
       "cache-relative"},
      {[](swa_kv_cache_config* c) { c->attention.window_left = -2; }, "window_left"},
      {[](swa_kv_cache_config* c) { c->attention.sink_tokens = -1; }, "sink_tokens"},
      {[](swa_kv_cache_config* c) { c->attention.num_seqs = 2; }, "cu_seqlens"},
      {[&](swa_kv_cache_config* c) {
         c->attention.global_tokens = bad_globals;
         c->attention.num_global_tokens = 2;
       },
       "sorted"},
      {[](swa_kv_cache_config* c) { c->attention.num_global_tokens = 2; }, "global_tokens is NULL"},
      {[](swa_kv_cache_config* c) { c->attention.window_left = int64_t{1} << 39, c->head_dim = 256; },
       "larger than 2^40 bytes"},
  };
  for (const auto& tc : cases) {
    swa_kv_cache_config cfg;
    swa_kv_cache_config_init(&cfg);
    cfg.attention.window_left = 63;
    cfg.attention.window_right = 0;
    tc.edit(&cfg);
    swa_kv_cache* sentinel = reinterpret_cast<swa_kv_cache*>(&cfg);
    swa_kv_cache* cache = sentinel;
    EXPECT_LT(swa_kv_cache_create(&cfg, &cache), 0) << tc.needle;
    EXPECT_EQ(cache, sentinel) << tc.needle;
    EXPECT_NE(std::string(swa_last_error()).find(tc.needle), std::string::npos)
        << tc.needle << " / message: " << swa_last_error();
  }
  swa_kv_cache* cache = nullptr;
  EXPECT_LT(swa_kv_cache_create(nullptr, &cache), 0);
  swa_kv_cache_config cfg;
  swa_kv_cache_config_init(&cfg);
  EXPECT_LT(swa_kv_cache_create(&cfg, nullptr), 0);
}

}  // namespace
}  // namespace swa::testing
