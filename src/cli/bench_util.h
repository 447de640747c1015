// Helpers shared by the benchmark suites.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "common/dtype.h"
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

}  // namespace swa::cli
