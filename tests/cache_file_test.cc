// Saving and restoring a cache: the restored cache holds the same sequences, positions
// and contents and continues every stream exactly as the original does; truncated,
// corrupt or inconsistent files are errors, never crashes.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>

#include "cache_test_util.h"

namespace swa::testing {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "swa_cache_file_test_" + name + "_" + std::to_string(::getpid());
}

std::vector<char> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The format's trailer (docs/KV_CACHE.md): FNV-1a 64 of every byte before it.
void Reseal(std::vector<char>* bytes) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i + 8 < bytes->size(); ++i)
    h = (h ^ static_cast<uint8_t>((*bytes)[i])) * 1099511628211ull;
  std::memcpy(bytes->data() + bytes->size() - 8, &h, 8);
}

// Stored rows of every resident position, for bitwise comparison.
std::vector<uint8_t> Contents(const KvCache& cache, int64_t id, const AttnCase& c) {
  const swa_kv_cache_stats st = cache.Stats();
  const int64_t n = cache.Positions(id);
  std::vector<uint8_t> bytes;
  for (int64_t p = 0; p < n; ++p) {
    GuardedTensor k(c.dtype, 1, 1, c.hkv, c.dim, Layout::kContiguous),
        v(c.dtype, 1, 1, c.hkv, c.dim, Layout::kContiguous);
    const bool resident =
        st.capacity < 0 || p < st.sink_slots || p >= std::max(st.sink_slots, n - st.capacity);
    EXPECT_EQ(swa_kv_cache_read(cache.get(), id, p, &k.view(), &v.view()) == 0, resident) << "position " << p;
    if (!resident) continue;
    for (const auto& b : {k.ElementBytes(), v.ElementBytes()}) bytes.insert(bytes.end(), b.begin(), b.end());
  }
  return bytes;
}

struct FileCase {
  Stream s;
  int64_t page_tokens = 0;
};

std::vector<FileCase> Cases() {
  std::vector<FileCase> cases;
  for (int variant = 0; variant < 5; ++variant) {
    FileCase fc;
    Stream& s = fc.s;
    AttnCase& c = s.c;
    c.dtype = variant == 1 ? DType::kBF16 : variant == 4 ? DType::kF16 : DType::kF32;
    c.hq = 4;
    c.hkv = variant == 2 ? 4 : 2;
    c.dim = 24;
    c.left = 17;
    c.right = 0;
    c.causal = true;
    c.sink_tokens = variant % 2 ? 3 : 0;
    c.sink_logits = variant == 3;
    c.alibi = variant == 4;
    c.lq = c.lk = 260;
    c.seed = 50 + variant;
    s.max_chunk = 1 + variant;
    s.rope = variant != 4;
    if (variant == 2) s.mode = SWA_POSITIONS_CACHE_RELATIVE;
    if (variant == 3) {
      c.head_left = {17, -1, 5, 17};  // a global head: pages
      fc.page_tokens = 64;
    }
    cases.push_back(std::move(fc));
  }
  return cases;
}

TEST(CacheFileTest, RestoredCacheContinuesTheStreamsIdentically) {
  std::mt19937_64 rng(4);
  for (const FileCase& fc : Cases()) {
    const Stream& s = fc.s;
    const AttnCase& c = s.c;
    Stream other = s;
    other.c.seed += 1000;
    CaseData data(c), data2(other.c);
    const Outputs want = WholeSequenceReference(s, data);
    KvCacheConfig cfg = s.Config(data);
    cfg.PageTokens(fc.page_tokens);
    KvCache cache(cfg);
    cache.AddSequence(1);
    cache.AddSequence(-9);
    Outputs got = EmptyOutputs(c), got2 = EmptyOutputs(other.c);
    const int64_t split = 1 + static_cast<int64_t>(rng() % (c.lq - 1));
    int64_t n = 0;
    while (n < split) {
      const int64_t t = std::min<int64_t>(1 + rng() % 9, split - n);
      Feed(cache, 1, s, data, n, t, &got);
      Feed(cache, -9, other, data2, n, t, &got2);
      n += t;
    }
    const std::string path = TempPath("restore");
    cache.Save(path);
    KvCache restored = KvCache::Load(path);
    std::remove(path.c_str());
    const swa_kv_cache_stats a = cache.Stats(), b = restored.Stats();
    EXPECT_EQ(a.capacity, b.capacity);
    EXPECT_EQ(a.sink_slots, b.sink_slots);
    EXPECT_EQ(a.max_chunk, b.max_chunk);
    EXPECT_EQ(a.bytes_used, b.bytes_used);
    EXPECT_EQ(restored.SequenceIds(), (std::vector<int64_t>{-9, 1}));
    EXPECT_EQ(restored.Positions(1), split);
    EXPECT_EQ(Contents(restored, 1, c), Contents(cache, 1, c)) << s.Name();
    EXPECT_EQ(Contents(restored, -9, c), Contents(cache, -9, c)) << s.Name();

    // Continue both caches with the same chunks: bitwise the same outputs.
    Outputs cont = EmptyOutputs(c);
    while (n < c.lq) {
      const int64_t t = std::min<int64_t>(1 + rng() % 9, c.lq - n);
      Feed(cache, 1, s, data, n, t, &got);
      Feed(restored, 1, s, data, n, t, &cont);
      n += t;
    }
    for (int64_t l = split; l < c.lq; ++l)
      for (int64_t h = 0; h < c.hq; ++h) {
        for (int64_t e = 0; e < c.dim; ++e)
          ASSERT_EQ(cont.out->Get(0, l, h, e), got.out->Get(0, l, h, e)) << s.Name();
        ASSERT_EQ(cont.lse[h * c.lq + l], got.lse[h * c.lq + l]);
      }
    if (s.mode == SWA_POSITIONS_ABSOLUTE) {
      const RowErrors e = CompareRows(*got.out, got.lse, *want.out, want.lse, 0, c.lq);
      EXPECT_LE(e.out, StreamTolerance(c.dtype)) << s.Name();
    }
  }
}

class CorruptFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FileCase fc = Cases()[1];  // bf16, sinks: every section present
    CaseData data(fc.s.c);
    KvCache cache(fc.s.Config(data));
    cache.AddSequence(3);
    cache.AddSequence(4);
    Outputs got = EmptyOutputs(fc.s.c);
    Feed(cache, 3, fc.s, data, 0, 2, &got);
    Feed(cache, 4, fc.s, data, 0, 2, &got);
    for (int64_t n = 2; n < 30; n += 2) Feed(cache, 4, fc.s, data, n, 2, &got);
    path_ = TempPath("corrupt");
    cache.Save(path_);
    good_ = ReadFile(path_);
    ASSERT_GT(good_.size(), 200u);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // Loading `bytes` fails with a message and leaves the output handle alone.
  void ExpectRejected(const std::vector<char>& bytes, const std::string& what) {
    WriteFile(path_, bytes);
    swa_kv_cache* sentinel = reinterpret_cast<swa_kv_cache*>(&good_);
    swa_kv_cache* c = sentinel;
    EXPECT_LT(swa_kv_cache_load(path_.c_str(), &c), 0) << what;
    EXPECT_EQ(c, sentinel) << what;
    EXPECT_STRNE(swa_last_error(), "") << what;
    if (c != sentinel) swa_kv_cache_destroy(c);
  }

  std::string path_;
  std::vector<char> good_;
};

TEST_F(CorruptFileTest, TheIntactFileLoads) {
  WriteFile(path_, good_);
  swa_kv_cache* c = nullptr;
  ASSERT_EQ(swa_kv_cache_load(path_.c_str(), &c), 0) << swa_last_error();
  swa_kv_cache_destroy(c);
}

TEST_F(CorruptFileTest, TruncatedFilesAreRejected) {
  for (size_t size = 0; size < good_.size(); size += (size < 300 ? 1 : 37)) {
    ExpectRejected(std::vector<char>(good_.begin(), good_.begin() + size),
                   "truncated to " + std::to_string(size));
  }
  std::vector<char> longer = good_;
  longer.push_back(0);
  ExpectRejected(longer, "one byte appended");
}

TEST_F(CorruptFileTest, AnyFlippedByteIsRejected) {
  std::mt19937_64 rng(12);
  for (int i = 0; i < 300; ++i) {
    std::vector<char> bad = good_;
    const size_t at = i < 100 ? static_cast<size_t>(i) : rng() % bad.size();
    bad[at] ^= static_cast<char>(1 + rng() % 255);
    ExpectRejected(bad, "byte " + std::to_string(at) + " flipped");
  }
}

// Files with a valid checksum but impossible contents (a writer bug, or a forged file)
// fail the same validation as the C API's arguments.
TEST_F(CorruptFileTest, InconsistentFieldsAreRejected) {
  auto with = [&](size_t offset, auto value) {
    std::vector<char> bad = good_;
    std::memcpy(bad.data() + offset, &value, sizeof(value));
    Reseal(&bad);
    return bad;
  };
  // Layout (docs/KV_CACHE.md): magic 8, version u32 @8, dtype, mode, rope, causal,
  // threads i32 @12..28, hq i64 @32, hkv @40, dim @48, window_left @56, ...
  ExpectRejected(with(8, uint32_t{2}), "version 2");
  ExpectRejected(with(12, int32_t{7}), "dtype 7");
  ExpectRejected(with(16, int32_t{-1}), "mode -1");
  ExpectRejected(with(32, int64_t{0}), "no heads");
  ExpectRejected(with(32, int64_t{1} << 40), "2^40 heads");
  ExpectRejected(with(40, int64_t{3}), "hq % hkv != 0");
  ExpectRejected(with(48, int64_t{1000}), "head_dim 1000");
  ExpectRejected(with(56, int64_t{-5}), "window -5");
  // The sequence section: a count, then per sequence its id and length and rows. The
  // first sequence (id 3) has 2 positions; the second (id 4) 30, of which the ring
  // keeps 3 sinks + 19 slots (the row count no longer depends on the length).
  size_t first = 0, second = 0;
  for (size_t off = 100; off + 16 < good_.size(); ++off) {
    int64_t id, length;
    std::memcpy(&id, good_.data() + off, 8);
    std::memcpy(&length, good_.data() + off + 8, 8);
    if (id == 3 && length == 2 && first == 0) first = off;
    if (id == 4 && length == 30) second = off;
  }
  ASSERT_GT(first, 0u);
  ASSERT_GT(second, first);
  ExpectRejected(with(first - 8, int64_t{3}), "sequence count 3");
  ExpectRejected(with(first - 8, int64_t{1} << 40), "sequence count 2^40");
  ExpectRejected(with(first - 8, int64_t{-1}), "sequence count -1");
  ExpectRejected(with(first + 8, int64_t{3}), "length 3: rows run into the next sequence");
  ExpectRejected(with(second + 8, int64_t{10}), "length 10: rows left over");
  ExpectRejected(with(second + 8, int64_t{-1}), "length -1");
  ExpectRejected(with(second + 8, int64_t{1} << 50), "length 2^50");
  ExpectRejected(with(second, int64_t{3}), "duplicate id");
}

TEST(CacheFileErrorsTest, MissingFilesAndBadPaths) {
  swa_kv_cache* c = nullptr;
  EXPECT_LT(swa_kv_cache_load("/nonexistent/dir/cache.bin", &c), 0);
  EXPECT_NE(std::string(swa_last_error()).find("cannot open"), std::string::npos);
  EXPECT_LT(swa_kv_cache_load(nullptr, &c), 0);
  EXPECT_EQ(c, nullptr);
  KvCacheConfig cfg;
  KvCache cache(cfg);
  EXPECT_LT(swa_kv_cache_save(cache.get(), "/nonexistent/dir/cache.bin"), 0);
  EXPECT_LT(swa_kv_cache_save(cache.get(), nullptr), 0);
  EXPECT_LT(swa_kv_cache_save(nullptr, "x"), 0);
}

}  // namespace
}  // namespace swa::testing
