#include "cache/cache_file.h"

#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "common/error.h"

namespace swa::cache {
namespace {

static_assert(std::endian::native == std::endian::little, "the cache file format is little-endian");

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t Fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}

class Writer {
 public:
  explicit Writer(const std::string& path) : out_(path, std::ios::binary | std::ios::trunc) {
    if (!out_) ThrowInvalid("cannot open " + path + " for writing");
  }
  void Bytes(const void* p, size_t n) {
    hash_ = Fnv1a(hash_, p, n);
    out_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  }
  template <class T>
  void Put(T x) {
    Bytes(&x, sizeof(T));
  }
  template <class T>
  void Array(const std::vector<T>& v) {
    Put<uint8_t>(v.empty() ? 0 : 1);
    if (!v.empty()) Bytes(v.data(), v.size() * sizeof(T));
  }
  void Finish(const std::string& path) {
    const uint64_t h = hash_;
    out_.write(reinterpret_cast<const char*>(&h), sizeof(h));
    out_.close();
    if (!out_) ThrowInvalid("writing " + path + " failed (disk full?)");
  }

 private:
  std::ofstream out_;
  uint64_t hash_ = kFnvOffset;
};

// Reads a byte buffer that the checksum has vouched for; every read is bounds-checked.
class Reader {
 public:
  Reader(std::ifstream& in, int64_t size, const std::string& path) : in_(in), left_(size), path_(path) {}
  void Bytes(void* p, int64_t n) {
    if (n < 0 || n > left_)
      ThrowInvalid(path_ + ": file is truncated or corrupt (a field runs past its end)");
    in_.read(static_cast<char*>(p), n);
    if (!in_) ThrowInvalid(path_ + ": read failed");
    left_ -= n;
  }
  template <class T>
  T Get() {
    T x;
    Bytes(&x, sizeof(T));
    return x;
  }
  template <class T>
  std::vector<T> Array(int64_t n) {
    std::vector<T> v;
    const uint8_t present = Get<uint8_t>();
    if (present > 1) ThrowInvalid(path_ + ": corrupt array flag");
    if (present) {
      if (n > left_ / static_cast<int64_t>(sizeof(T))) ThrowInvalid(path_ + ": file is truncated or corrupt");
      v.resize(n);
      Bytes(v.data(), n * static_cast<int64_t>(sizeof(T)));
    }
    return v;
  }
  int64_t left() const { return left_; }

 private:
  std::ifstream& in_;
  int64_t left_;
  const std::string& path_;
};

// Rows a sequence of `length` positions keeps: [0, sinks) and [first, length).
void StoredRanges(const CacheConfig& cfg, int64_t length, int64_t* sinks, int64_t* first) {
  if (cfg.grows) {
    *sinks = 0;
    *first = 0;
    return;
  }
  *sinks = std::min(cfg.sink_slots, length);
  *first = std::max(cfg.sink_slots, length - cfg.capacity);
}

}  // namespace

void SaveCache(const KvCache& cache, const std::string& path) {
  const CacheConfig& c = cache.config();
  const std::string tmp = path + ".tmp";
  {
    Writer w(tmp);
    w.Bytes(kFileMagic, sizeof(kFileMagic));
    w.Put<uint32_t>(kFileVersion);
    w.Put<int32_t>(static_cast<int32_t>(c.dtype));
    w.Put<int32_t>(static_cast<int32_t>(c.mode));
    w.Put<int32_t>(c.rope ? 1 : 0);
    w.Put<int32_t>(c.causal ? 1 : 0);
    w.Put<int32_t>(c.num_threads);
    for (int64_t x : {c.hq, c.hkv, c.dim, c.window_left, c.window_right, c.sink_tokens, c.chunk_size,
                      c.chunk_overlap, c.max_chunk, c.max_positions, c.page_tokens, c.rope_dims}) {
      w.Put<int64_t>(x);
    }
    w.Put<float>(c.scale);
    w.Put<float>(c.softcap);
    w.Put<double>(c.rope_theta);
    w.Array(c.head_window_left);
    w.Array(c.head_window_right);
    w.Array(c.alibi_slopes);
    w.Array(c.sink_logits);
    w.Put<int64_t>(static_cast<int64_t>(c.global_tokens.size()));
    w.Array(c.global_tokens);
    const std::vector<int64_t> ids = cache.Ids();
    w.Put<int64_t>(static_cast<int64_t>(ids.size()));
    const size_t row = static_cast<size_t>(c.RowBytes());
    for (int64_t id : ids) {
      const SequenceStore& st = cache.Sequence(id);
      w.Put<int64_t>(id);
      w.Put<int64_t>(st.length());
      int64_t sinks, first;
      StoredRanges(c, st.length(), &sinks, &first);
      auto put_rows = [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
          w.Bytes(st.KRow(p), row);
          w.Bytes(st.VRow(p), row);
        }
      };
      put_rows(0, sinks);
      put_rows(first, st.length());
    }
    w.Finish(tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    ThrowInvalid("cannot rename " + tmp + " to " + path);
  }
}

std::unique_ptr<KvCache> LoadCache(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ThrowInvalid("cannot open " + path);
  in.seekg(0, std::ios::end);
  const int64_t size = static_cast<int64_t>(in.tellg());
  constexpr int64_t kMinSize = sizeof(kFileMagic) + sizeof(uint32_t) + sizeof(uint64_t);
  if (size < kMinSize) ThrowInvalid(path + ": not a swa KV cache file (too short)");
  in.seekg(0);
  // Pass 1: the checksum over everything but the trailing 8 bytes.
  {
    std::vector<char> buf(1 << 20);
    uint64_t h = kFnvOffset;
    int64_t left = size - 8;
    char magic[sizeof(kFileMagic)];
    in.read(magic, sizeof(magic));
    if (!in || std::memcmp(magic, kFileMagic, sizeof(magic)) != 0)
      ThrowInvalid(path + ": not a swa KV cache file");
    h = Fnv1a(h, magic, sizeof(magic));
    left -= sizeof(magic);
    while (left > 0) {
      const int64_t n = std::min<int64_t>(left, static_cast<int64_t>(buf.size()));
      in.read(buf.data(), n);
      if (!in) ThrowInvalid(path + ": read failed");
      h = Fnv1a(h, buf.data(), static_cast<size_t>(n));
      left -= n;
    }
    uint64_t stored;
    in.read(reinterpret_cast<char*>(&stored), sizeof(stored));
    if (!in || stored != h) ThrowInvalid(path + ": checksum mismatch (the file is truncated or corrupt)");
  }
  // Pass 2: parse.
  in.clear();
  in.seekg(sizeof(kFileMagic));
  Reader r(in, size - 8 - static_cast<int64_t>(sizeof(kFileMagic)), path);
  const uint32_t version = r.Get<uint32_t>();
  if (version != kFileVersion) {
    ThrowInvalid(path + ": file version " + std::to_string(version) + ", this build reads version " +
                 std::to_string(kFileVersion));
  }
  swa_kv_cache_config cc;
  swa_kv_cache_config_init(&cc);
  const int32_t dtype = r.Get<int32_t>(), mode = r.Get<int32_t>();
  std::memcpy(&cc.dtype, &dtype, sizeof(int32_t));
  std::memcpy(&cc.position_mode, &mode, sizeof(int32_t));
  cc.rope = r.Get<int32_t>();
  cc.attention.causal = r.Get<int32_t>();
  cc.attention.num_threads = r.Get<int32_t>();
  int64_t* fields[] = {&cc.num_heads,
                       &cc.num_kv_heads,
                       &cc.head_dim,
                       &cc.attention.window_left,
                       &cc.attention.window_right,
                       &cc.attention.sink_tokens,
                       &cc.attention.chunk_size,
                       &cc.attention.chunk_overlap,
                       &cc.max_chunk,
                       &cc.max_positions,
                       &cc.page_tokens,
                       &cc.rope_dims};
  for (int64_t* f : fields) *f = r.Get<int64_t>();
  cc.attention.scale = r.Get<float>();
  cc.attention.softcap = r.Get<float>();
  const double theta = r.Get<double>();
  cc.rope_theta = static_cast<float>(theta);
  if (cc.num_heads < 1 || cc.num_heads > (int64_t{1} << 20)) ThrowInvalid(path + ": corrupt head count");
  const auto head_left = r.Array<int64_t>(cc.num_heads);
  const auto head_right = r.Array<int64_t>(cc.num_heads);
  const auto alibi = r.Array<float>(cc.num_heads);
  const auto sink_logits = r.Array<float>(cc.num_heads);
  const int64_t num_globals = r.Get<int64_t>();
  if (num_globals < 0) ThrowInvalid(path + ": corrupt global token count");
  const auto globals = r.Array<int64_t>(num_globals);
  if (static_cast<int64_t>(globals.size()) != num_globals) ThrowInvalid(path + ": corrupt global tokens");
  cc.attention.head_window_left = head_left.empty() ? nullptr : head_left.data();
  cc.attention.head_window_right = head_right.empty() ? nullptr : head_right.data();
  cc.attention.alibi_slopes = alibi.empty() ? nullptr : alibi.data();
  cc.attention.sink_logits = sink_logits.empty() ? nullptr : sink_logits.data();
  cc.attention.global_tokens = globals.empty() ? nullptr : globals.data();
  cc.attention.num_global_tokens = num_globals;
  CacheConfig cfg = ConfigFromC(&cc);
  cfg.rope_theta = theta;  // the exact value saved (the C struct holds a float)
  auto cache = std::make_unique<KvCache>(std::move(cfg));
  const CacheConfig& c = cache->config();

  const int64_t num_seqs = r.Get<int64_t>();
  if (num_seqs < 0 || num_seqs > r.left() / 16) ThrowInvalid(path + ": corrupt sequence count");
  const int64_t row = c.RowBytes();
  const int64_t limit = c.max_positions > 0 ? c.max_positions : kMaxPositions;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t id = r.Get<int64_t>(), length = r.Get<int64_t>();
    if (length < 0 || length > limit)
      ThrowInvalid(path + ": corrupt length of sequence " + std::to_string(id));
    int64_t sinks, first;
    StoredRanges(c, length, &sinks, &first);
    const int64_t rows = sinks + (length - first);
    if (rows > r.left() / (2 * row)) ThrowInvalid(path + ": file is truncated or corrupt (sequence rows)");
    SequenceStore& st = cache->RestoreSequence(id, length);
    auto get_rows = [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        r.Bytes(st.KRow(p), row);
        r.Bytes(st.VRow(p), row);
      }
    };
    get_rows(0, sinks);
    get_rows(first, length);
  }
  if (r.left() != 0)
    ThrowInvalid(path + ": " + std::to_string(r.left()) + " unexpected bytes after the last sequence");
  return cache;
}

}  // namespace swa::cache
