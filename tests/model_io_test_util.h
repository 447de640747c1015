// Helpers shared by the safetensors and checkpoint tests: scratch directories, whole-file
// bytes, hand-assembled safetensors files and an independent bf16 rounding.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"

namespace swa::testing {

// A fresh directory under the test temp dir, removed with everything in it at the end.
// In memory (/dev/shm, when there is one) asks for a RAM-backed directory, for tests that
// rewrite a file thousands of times.
class ScratchDir {
 public:
  enum class Place { kTempDir, kInMemory };
  explicit ScratchDir(Place place = Place::kTempDir) {
    const bool shm = place == Place::kInMemory && ::access("/dev/shm", W_OK) == 0;
    std::string pattern = (shm ? std::string("/dev/shm/") : ::testing::TempDir()) + "swa_model_io_XXXXXX";
    path_ = ::mkdtemp(pattern.data()) ? pattern : "";
    EXPECT_FALSE(path_.empty()) << "mkdtemp failed";
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ignored);
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the directory, sorted.
  std::vector<std::string> List() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::string path_;
};

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// A safetensors file assembled by hand: 8-byte little-endian length, header, data.
inline std::string MakeFile(const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return bytes + header + data;
}

template <class T>
std::string RawBytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

inline uint32_t Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

// bf16 by round-to-nearest-even, decided by comparing x with its two bf16 neighbours in
// double (exact for float inputs): truncation t, and t + 1 one bf16 ulp further from zero
// (0x7f80, infinity, counts as 2^128, where IEEE rounding overflows). NaN is not handled.
inline uint16_t PlainBF16(float x) {
  const uint16_t t = static_cast<uint16_t>(Bits(x) >> 16);
  if (std::isinf(x)) return t;
  auto value = [](uint16_t b) -> double {
    if ((b & 0x7fff) == 0x7f80) return (b & 0x8000 ? -1.0 : 1.0) * std::ldexp(1.0, 128);
    const uint32_t u = uint32_t{b} << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  };
  const double below = std::abs(static_cast<double>(x) - value(t));
  const double above = std::abs(static_cast<double>(x) - value(static_cast<uint16_t>(t + 1)));
  if (below < above) return t;
  if (above < below) return static_cast<uint16_t>(t + 1);
  return (t & 1) ? static_cast<uint16_t>(t + 1) : t;
}

inline float BF16Value(uint16_t b) {
  const uint32_t u = uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The message of the swa::Error `body` throws, or "(no error)".
inline std::string ErrorOf(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace swa::testing
