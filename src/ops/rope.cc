#include "ops/rope.h"

#include <cmath>
#include <cstring>

namespace swa::ops {

RopeAngles::RopeAngles(const RopeSpec& spec) : spec_(spec) {
  const int64_t half = spec.dims / 2;
  inv_freq_.resize(half);
  cos_.resize(half);
  sin_.resize(half);
  for (int64_t i = 0; i < half; ++i) {
    inv_freq_[i] = std::pow(spec.theta, -2.0 * static_cast<double>(i) / static_cast<double>(spec.dims));
  }
}

void RopeAngles::At(int64_t position) {
  const double pos = static_cast<double>(position);
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const double angle = pos * inv_freq_[i];
    cos_[i] = static_cast<float>(std::cos(angle));
    sin_[i] = static_cast<float>(std::sin(angle));
  }
}

void RotateRow(const RopeAngles& angles, float* x) {
  const int64_t half = angles.spec().dims / 2;
  const float* c = angles.cos();
  const float* s = angles.sin();
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * c[i] - b * s[i];
    x[i + half] = b * c[i] + a * s[i];
  }
}

void RotateHeads(const RopeAngles& angles, DType dtype, int64_t heads, int64_t head_dim, const void* src,
                 int64_t src_stride, void* dst, int64_t dst_stride, float* row) {
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t e = 0; e < head_dim; ++e) row[e] = LoadAsFloat(src, dtype, h * src_stride + e);
    RotateRow(angles, row);
    for (int64_t e = 0; e < head_dim; ++e) StoreFromFloat(dst, dtype, h * dst_stride + e, row[e]);
  }
}

}  // namespace swa::ops
