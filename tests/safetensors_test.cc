// safetensors reading and writing: round trips checked against the file's bytes as the
// format defines them, every dtype conversion against values worked out by hand, and
// truncated or corrupt files, which must all be errors and never crashes.
#include "model/safetensors.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "model_io_test_util.h"

namespace swa::model {
namespace {

using swa::testing::BF16Value;
using swa::testing::Bits;
using swa::testing::ErrorOf;
using swa::testing::MakeFile;
using swa::testing::PlainBF16;
using swa::testing::RawBytes;
using swa::testing::ReadBytes;
using swa::testing::ScratchDir;
using swa::testing::WriteBytes;

uint64_t HeaderLength(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  return n;
}

std::vector<float> Normals(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(SafetensorsTest, F32RoundTripAndByteLayout) {
  ScratchDir dir;
  const std::string path = dir.File("a.safetensors");
  std::vector<float> a = Normals(15, 1);
  a[0] = -0.0f;
  a[1] = INFINITY;
  a[2] = 1e-42f;  // subnormal
  a[3] = NAN;
  const std::vector<float> scalar = {42.5f}, b = Normals(7, 2);
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "quote \" and \xc3\xbc"}};
  WriteSafetensors(path, metadata,
                   {{"a", StoredDType::kF32, {3, 5}, a.data()},
                    {"scalar", StoredDType::kF32, {}, scalar.data()},
                    {"empty", StoredDType::kF32, {0, 4}, nullptr},
                    {"b", StoredDType::kF32, {7}, b.data()}});

  // The bytes, read as the format defines them.
  const std::string bytes = ReadBytes(path);
  const uint64_t n = HeaderLength(bytes);
  EXPECT_EQ((8 + n) % 8, 0u) << "data region must start 8-byte aligned";
  ASSERT_EQ(bytes.size(), 8 + n + 4 * (15 + 1 + 7));
  const std::string header = bytes.substr(8, n);
  const size_t json_end = header.find_last_not_of(' ') + 1;
  EXPECT_LT(header.size() - json_end, 8u) << "padding is spaces, fewer than 8";
  const nlohmann::json h = nlohmann::json::parse(header);
  EXPECT_EQ(h["__metadata__"], nlohmann::json(metadata));
  EXPECT_EQ(h["a"], nlohmann::json::parse(R"({"dtype":"F32","shape":[3,5],"data_offsets":[0,60]})"));
  EXPECT_EQ(h["scalar"], nlohmann::json::parse(R"({"dtype":"F32","shape":[],"data_offsets":[60,64]})"));
  EXPECT_EQ(h["empty"], nlohmann::json::parse(R"({"dtype":"F32","shape":[0,4],"data_offsets":[64,64]})"));
  EXPECT_EQ(h["b"], nlohmann::json::parse(R"({"dtype":"F32","shape":[7],"data_offsets":[64,92]})"));
  EXPECT_EQ(bytes.substr(8 + n, 60), RawBytes(a));
  EXPECT_EQ(bytes.substr(8 + n + 64, 28), RawBytes(b));

  // And through the reader.
  const SafetensorsReader r = SafetensorsReader::Open(path);
  EXPECT_EQ(r.metadata(), metadata);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"a", "b", "empty", "scalar"}));
  const TensorInfo* info = r.Find("a");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->dtype, StoredDType::kF32);
  EXPECT_EQ(info->shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(info->count, 15);
  EXPECT_EQ(r.Find("nope"), nullptr);
  std::vector<float> got(15);
  r.ReadF32("a", got.data(), 15);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(Bits(got[i]), Bits(a[i])) << i;
  float s = 0;
  r.ReadF32("scalar", &s, 1);
  EXPECT_EQ(s, 42.5f);
  EXPECT_EQ(r.Find("scalar")->count, 1);
  EXPECT_EQ(r.Find("empty")->count, 0);
  r.ReadF32("empty", nullptr, 0);
}

TEST(SafetensorsTest, DataRegionStartsEightByteAligned) {
  ScratchDir dir;
  const float v = 1.0f;
  // Names of 1..16 characters move the unpadded header end through every residue mod 8.
  for (int length = 1; length <= 16; ++length) {
    const std::string path = dir.File("align" + std::to_string(length));
    WriteSafetensors(path, {}, {{std::string(length, 'x'), StoredDType::kF32, {1}, &v}});
    const std::string bytes = ReadBytes(path);
    const uint64_t n = HeaderLength(bytes);
    EXPECT_EQ((8 + n) % 8, 0u) << length;
    const std::string header = bytes.substr(8, n);
    EXPECT_EQ(header.back() == ' ', header.find_last_not_of(' ') + 1 < header.size()) << length;
    EXPECT_LT(n - (header.find_last_not_of(' ') + 1), 8u) << length;
    EXPECT_EQ(bytes.substr(8 + n), std::string("\0\0\x80\x3f", 4)) << length;
  }
}

TEST(SafetensorsTest, Bf16RoundsToNearestEven) {
  ScratchDir dir;
  const std::string path = dir.File("b.safetensors");
  std::vector<float> v = Normals(1000, 3);
  const float kTies[] = {1.0f + 0x1p-8f,      // halfway between 1 and 1 + 2^-7: to even, 1.0 (0x3f80)
                         1.0f + 3 * 0x1p-8f,  // halfway between 0x3f81 and 0x3f82: to even, 0x3f82
                         -(1.0f + 0x1p-8f),
                         1.0f + 0x1p-8f + 0x1p-20f,  // just above halfway: up
                         0.0f,
                         -0.0f,
                         INFINITY,
                         -INFINITY,
                         1e-40f,
                         -3e-39f,
                         3.4028235e38f /* FLT_MAX: rounds to inf */};
  v.insert(v.end(), std::begin(kTies), std::end(kTies));
  v.push_back(NAN);
  WriteSafetensors(path, {}, {{"t", StoredDType::kBF16, {static_cast<int64_t>(v.size())}, v.data()}});

  const std::string bytes = ReadBytes(path);
  const uint64_t n = HeaderLength(bytes);
  EXPECT_EQ(nlohmann::json::parse(bytes.substr(8, n)).contains("__metadata__"), false);
  ASSERT_EQ(bytes.size(), 8 + n + 2 * v.size());
  std::vector<uint16_t> stored(v.size());
  std::memcpy(stored.data(), bytes.data() + 8 + n, 2 * v.size());
  const size_t ties = v.size() - 1 - std::size(kTies);
  EXPECT_EQ(stored[ties + 0], 0x3f80);
  EXPECT_EQ(stored[ties + 1], 0x3f82);
  EXPECT_EQ(stored[ties + 2], 0xbf80);
  EXPECT_EQ(stored[ties + 3], 0x3f81);
  EXPECT_EQ(stored[ties + 10], 0x7f80);
  for (size_t i = 0; i + 1 < v.size(); ++i) EXPECT_EQ(stored[i], PlainBF16(v[i])) << i << ": " << v[i];
  EXPECT_TRUE(std::isnan(BF16Value(stored.back())));

  const SafetensorsReader r = SafetensorsReader::Open(path);
  EXPECT_TRUE(r.metadata().empty());
  EXPECT_EQ(r.Find("t")->dtype, StoredDType::kBF16);
  std::vector<float> got(v.size());
  r.ReadF32("t", got.data(), static_cast<int64_t>(v.size()));
  for (size_t i = 0; i + 1 < v.size(); ++i) EXPECT_EQ(Bits(got[i]), Bits(BF16Value(PlainBF16(v[i])))) << i;
  EXPECT_TRUE(std::isnan(got.back()));
}

TEST(SafetensorsTest, ReadsF16AndF64AndRejectsOtherDtypes) {
  ScratchDir dir;
  const std::string path = dir.File("h.safetensors");
  // F16: 1, -2, 65504 (largest), 2^-24 (smallest subnormal), 2^-14 (smallest normal), inf.
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00};
  const std::vector<double> f64 = {0.1, -1e300, 1.0 + 0x1p-30};
  const std::vector<int32_t> i32 = {1, 2};
  // Offsets deliberately leave F64 data at an odd address relative to 8.
  const std::string header = R"({"h":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
                             R"("d":{"dtype":"F64","shape":[3],"data_offsets":[12,36]},)"
                             R"("i":{"dtype":"I32","shape":[2],"data_offsets":[36,44]}})";
  WriteBytes(path, MakeFile(header + " ", RawBytes(f16) + RawBytes(f64) + RawBytes(i32)));
  const SafetensorsReader r = SafetensorsReader::Open(path);
  std::vector<float> h(6), d(3);
  r.ReadF32("h", h.data(), 6);
  EXPECT_EQ(h, (std::vector<float>{1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x1p-14f, INFINITY}));
  r.ReadF32("d", d.data(), 3);
  EXPECT_EQ(d[0], 0.1f);
  EXPECT_EQ(d[1], -INFINITY);
  EXPECT_EQ(d[2], 1.0f);  // 1 + 2^-30 rounds to 1 in float
  EXPECT_EQ(r.Find("i")->dtype, StoredDType::kI32);
  float i[2];
  std::string msg = ErrorOf([&] { r.ReadF32("i", i, 2); });
  EXPECT_NE(msg.find(path + ": tensor \"i\" is I32"), std::string::npos) << msg;
  msg = ErrorOf([&] { r.ReadF32("h", h.data(), 5); });
  EXPECT_NE(msg.find("tensor \"h\" has 6 elements, not 5"), std::string::npos) << msg;
  msg = ErrorOf([&] { r.ReadF32("x", h.data(), 6); });
  EXPECT_NE(msg.find("no tensor \"x\""), std::string::npos) << msg;
}

TEST(SafetensorsTest, ReaderMovesKeepTheMapping) {
  ScratchDir dir;
  const std::vector<float> v = {1, 2, 3};
  WriteSafetensors(dir.File("m"), {}, {{"v", StoredDType::kF32, {3}, v.data()}});
  SafetensorsReader a = SafetensorsReader::Open(dir.File("m"));
  SafetensorsReader b = std::move(a);
  SafetensorsReader c = SafetensorsReader::Open(dir.File("m"));
  c = std::move(b);
  std::vector<float> got(3);
  c.ReadF32("v", got.data(), 3);
  EXPECT_EQ(got, v);
}

// Each header (over `data_bytes` zero bytes of data) is invalid and must be rejected
// with a message containing the given text.
TEST(SafetensorsTest, RejectsInvalidHeadersNamingTheProblem) {
  struct Case {
    std::string header;
    int data_bytes;
    std::string want;
  };
  const Case cases[] = {
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8, ""},  // valid, as a control
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8, "invalid JSON"},
      {R"([1,2])", 0, "header must be a JSON object"},
      {R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8, "tensor \"a\": unknown dtype \"F33\""},
      {R"({"a":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", 8, "unknown dtype 3"},
      {R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8, "missing \"dtype\""},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8, "unknown key \"x\""},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "shape[0] is negative"},
      {R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8, "shape[0] must be an integer"},
      {R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8, "shape must be a list"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8,
       "span 8 bytes but shape [3] of F32 needs 12"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
       "more elements than fit in 64 bits"},
      {R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}})", 8,
       "more bytes than fit in 64 bits"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", 8, "data_offsets must be [begin, end]"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "must satisfy 0 <= begin <= end"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8, "must satisfy 0 <= begin <= end"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, "run past the data region (4 bytes"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", 8, "does not fit"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
       8, "tensors \"a\" and \"b\" overlap"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8,
       "bytes [0, 4) of the data region belong to no tensor"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8, "4 bytes after the last tensor"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       8, "duplicate key \"a\""},
      {R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8,
       "__metadata__[\"k\"] must be a string"},
      {R"({"__metadata__":"x","a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8,
       "__metadata__ must be an object"},
      {R"({"a":{"dtype":"F32","shape":[[[2]]],"data_offsets":[0,8]}})", 8, "nested deeper"},
      {R"({"a":[]})", 0, "entry must be an object"},
      {"{\"a\xff\":1}", 0, "invalid JSON"},
  };
  ScratchDir dir;
  const std::string path = dir.File("bad.safetensors");
  for (const Case& c : cases) {
    WriteBytes(path, MakeFile(c.header, std::string(c.data_bytes, '\0')));
    const std::string msg = ErrorOf([&] { SafetensorsReader::Open(path); });
    if (c.want.empty()) {
      EXPECT_EQ(msg, "(no error)") << c.header;
      continue;
    }
    EXPECT_NE(msg.find(c.want), std::string::npos) << c.header << "\nwant: " << c.want << "\ngot:  " << msg;
    EXPECT_EQ(msg.find(path), 0u) << "the message must name the file: " << msg;
  }
}

TEST(SafetensorsTest, RejectsBadLengthsAndPaths) {
  ScratchDir dir;
  const std::string path = dir.File("len.safetensors");
  WriteBytes(path, std::string("\x05\0\0", 3));
  EXPECT_NE(ErrorOf([&] { SafetensorsReader::Open(path); }).find("3 bytes is too short"), std::string::npos);
  WriteBytes(path, "");
  EXPECT_NE(ErrorOf([&] { SafetensorsReader::Open(path); }).find("0 bytes is too short"), std::string::npos);
  std::string bytes = MakeFile("{}      ", "");
  bytes[0] = 9;  // one more header byte than the file has
  WriteBytes(path, bytes);
  EXPECT_NE(ErrorOf([&] {
              SafetensorsReader::Open(path);
            }).find("header length 9 runs past the end of the 16-byte"),
            std::string::npos);
  bytes[7] = static_cast<char>(0x80);  // 2^63 + 9
  WriteBytes(path, bytes);
  EXPECT_NE(ErrorOf([&] { SafetensorsReader::Open(path); }).find("exceeds the limit of 100000000 bytes"),
            std::string::npos);
  WriteBytes(path, MakeFile("{}      ", ""));
  EXPECT_NO_THROW(SafetensorsReader::Open(path));  // an empty file of tensors is valid
  std::string msg = ErrorOf([&] { SafetensorsReader::Open(dir.File("missing")); });
  EXPECT_NE(msg.find("cannot open " + dir.File("missing")), std::string::npos) << msg;
  msg = ErrorOf([&] { SafetensorsReader::Open(dir.path()); });
  EXPECT_NE(msg.find(dir.path() + ": not a regular file"), std::string::npos) << msg;
}

// A small file of three tensors and metadata, as written by WriteSafetensors.
std::string SmallFile(const ScratchDir& dir) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {7, 8}, c = {9};
  const std::string path = dir.File("small.safetensors");
  WriteSafetensors(path, {{"format", "pt"}},
                   {{"a", StoredDType::kF32, {2, 3}, a.data()},
                    {"b", StoredDType::kBF16, {2}, b.data()},
                    {"c", StoredDType::kF32, {1, 1}, c.data()}});
  return ReadBytes(path);
}

// Opens the file and, when that succeeds, reads every float tensor (so that a sanitizer
// or valgrind sees any out-of-bounds read). Returns whether the open was rejected.
bool Rejected(const std::string& path) {
  try {
    const SafetensorsReader r = SafetensorsReader::Open(path);
    for (const std::string& name : r.names()) {
      const TensorInfo* t = r.Find(name);
      if (t->dtype != StoredDType::kF32 && t->dtype != StoredDType::kBF16 && t->dtype != StoredDType::kF16 &&
          t->dtype != StoredDType::kF64) {
        continue;
      }
      std::vector<float> out(t->count);
      r.ReadF32(name, out.data(), t->count);
    }
    return false;
  } catch (const Error&) {
    return true;
  }
}

TEST(SafetensorsTest, EveryTruncationIsRejected) {
  ScratchDir dir(ScratchDir::Place::kInMemory);
  const std::string good = SmallFile(dir);
  const std::string path = dir.File("cut.safetensors");
  for (size_t size = 0; size < good.size(); ++size) {
    WriteBytes(path, good.substr(0, size));
    EXPECT_TRUE(Rejected(path)) << "truncated to " << size << " of " << good.size() << " bytes";
  }
  WriteBytes(path, good);
  EXPECT_FALSE(Rejected(path));
  WriteBytes(path, good + "x");  // and a byte too many
  EXPECT_TRUE(Rejected(path));
}

// Random changes to the length field and header. Some leave a valid file (a letter of a
// name or of the metadata changed); the rest must be errors, and none may crash or read
// out of bounds (run this under ASan or valgrind).
TEST(SafetensorsTest, CorruptHeadersAreRejectedOrStillConsistent) {
  ScratchDir dir(ScratchDir::Place::kInMemory);
  const std::string good = SmallFile(dir);
  const size_t header_end = 8 + HeaderLength(good);
  const std::string path = dir.File("flip.safetensors");
  std::mt19937_64 rng(11);
  int rejected = 0;
  const int kTrials = 3000;
  for (int trial = 0; trial < kTrials; ++trial) {
    std::string bytes = good;
    const int changes = 1 + trial % 3;
    for (int k = 0; k < changes; ++k) {
      const size_t at = rng() % header_end;
      if (trial % 2 == 0) {
        bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));  // a bit flip
      } else {
        bytes[at] = static_cast<char>(rng() % 256);  // a random byte
      }
    }
    WriteBytes(path, bytes);
    rejected += Rejected(path);
  }
  // Most header bytes are structure, numbers or dtype names; a change there is an error.
  EXPECT_GT(rejected, kTrials * 9 / 10);
}

TEST(SafetensorsTest, WriterRejectsBadTensorsNamingThePath) {
  ScratchDir dir;
  const std::string path = dir.File("w.safetensors");
  const std::vector<float> v = {1, 2};
  struct Case {
    std::vector<TensorToWrite> tensors;
    std::string want;
  };
  const Case cases[] = {
      {{{"a", StoredDType::kF32, {2}, v.data()}, {"a", StoredDType::kF32, {2}, v.data()}},
       "\"a\" given twice"},
      {{{"__metadata__", StoredDType::kF32, {2}, v.data()}}, "reserved"},
      {{{"a", StoredDType::kF16, {2}, v.data()}}, "dtype F16 cannot be written"},
      {{{"a", StoredDType::kF32, {2, -1}, v.data()}}, "negative extent -1"},
      {{{"a", StoredDType::kF32, {int64_t{1} << 62, 4}, v.data()}}, "too many elements"},
      {{{"a", StoredDType::kF32, {2}, nullptr}}, "data is null"},
      {{{"a\xff", StoredDType::kF32, {2}, v.data()}}, "not valid UTF-8"},
  };
  for (const Case& c : cases) {
    const std::string msg = ErrorOf([&] { WriteSafetensors(path, {}, c.tensors); });
    EXPECT_NE(msg.find("cannot write " + path), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.want), std::string::npos) << "want " << c.want << ", got " << msg;
  }
  EXPECT_TRUE(dir.List().empty()) << "nothing may be left behind";
}

}  // namespace
}  // namespace swa::model
