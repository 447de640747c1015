// Helpers shared by the benchmark suites.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "attention/rule.h"
#include "common/dtype.h"
#include "model/config.h"
#include "swa/swa.h"

namespace swa::cli {

inline const char* DtypeName(swa_dtype t) { return t == SWA_F32 ? "f32" : t == SWA_BF16 ? "bf16" : "f16"; }
inline size_t DtypeBytes(swa_dtype t) { return t == SWA_F32 ? 4 : 2; }

// Standard-normal values stored in `dtype`, filling the whole buffer.
inline void FillRandom(std::vector<uint8_t>& buf, swa_dtype dtype, std::mt19937_64& rng) {
  std::normal_distribution<float> dist;
  const size_t count = buf.size() / DtypeBytes(dtype);
  for (size_t i = 0; i < count; ++i) {
    const float x = dist(rng);
    if (dtype == SWA_F32) {
      std::memcpy(&buf[4 * i], &x, 4);
    } else {
      const uint16_t h = dtype == SWA_BF16 ? FloatToBF16(x) : FloatToF16(x);
      std::memcpy(&buf[2 * i], &h, 2);
    }
  }
}

// Resident set size now (bytes), from /proc/self/statm; 0 if unreadable.
inline int64_t CurrentRssBytes() {
  long pages = 0, resident = 0;
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  const int got = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return got == 2 ? static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE) : 0;
}

// The process's peak resident set size so far (bytes).
inline int64_t PeakRssBytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

// Visible pairs of every head of every layer for `rows` sequences of `seq` tokens.
inline double AttentionPairs(const model::ModelConfig& c, int64_t seq, int64_t rows) {
  double pairs = 0;
  attention::MaskSpec mask;
  mask.causal = true;
  for (const model::LayerConfig& layer : c.layers) {
    mask.sink_tokens = layer.sink_tokens;
    for (const model::HeadWindow& w : layer.windows) {
      pairs += static_cast<double>(
          attention::CountVisiblePairs(attention::BandRule(mask, {w.left, w.right}, seq, seq)));
    }
  }
  return pairs * static_cast<double>(rows);
}

}  // namespace swa::cli
