// Rotary position embedding (RoPE, Su et al. 2021) in the NeoX "half-split" layout: the
// first `dims` elements of a head vector form dims/2 pairs (x[i], x[i + dims/2]), pair i
// rotated by the angle position * theta^(-2i/dims); elements from `dims` on pass through.
#pragma once

#include <cstdint>
#include <vector>

#include "common/dtype.h"

namespace swa::ops {

struct RopeSpec {
  double theta = 10000.0;  // frequency base
  int64_t dims = 0;        // rotated elements per head: even, in [2, head_dim]
};

// The cos/sin of one position's angles, shared by every head of a token.
class RopeAngles {
 public:
  explicit RopeAngles(const RopeSpec& spec);
  // Angles of `position`, computed in double: positions reach 2^40, where a float
  // product position * frequency would lose the angle entirely.
  void At(int64_t position);
  const RopeSpec& spec() const { return spec_; }
  const float* cos() const { return cos_.data(); }  // [dims / 2]
  const float* sin() const { return sin_.data(); }  // [dims / 2]

 private:
  RopeSpec spec_;
  std::vector<double> inv_freq_;  // [dims / 2]
  std::vector<float> cos_, sin_;  // [dims / 2]
};

// Rotates x (float32, [head_dim]) in place by the angles last set on `angles`.
void RotateRow(const RopeAngles& angles, float* x);

// Rotates `heads` rows of head_dim elements of dtype `dtype`, row h at src + h * src_stride
// (elements), writing dst + h * dst_stride; src may equal dst. Rounds once to dtype.
// `row` is working space of head_dim floats (so that the call never allocates).
void RotateHeads(const RopeAngles& angles, DType dtype, int64_t heads, int64_t head_dim, const void* src,
                 int64_t src_stride, void* dst, int64_t dst_stride, float* row);

}  // namespace swa::ops
