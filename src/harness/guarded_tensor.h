// Test and check support: a BSHD tensor in its own allocation, with guard bytes
// before, after and between its elements (when strided), so that any write outside
// the tensor's elements is caught.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "swa/swa.h"

namespace swa::harness {

enum class Layout {
  kContiguous,  // BSHD, packed
  kPadded,      // BSHD with padding after every row, head and batch
  kHeadMajor,   // memory order [B, H, S, D] (a transposed view, as after a permute)
};
const char* LayoutName(Layout l);

class GuardedTensor {
 public:
  static constexpr uint8_t kGuardByte = 0xA5;
  static constexpr int64_t kGuardBytes = 256;

  GuardedTensor() = default;
  GuardedTensor(DType dtype, int64_t batch, int64_t seqlen, int64_t heads, int64_t dim, Layout layout);

  swa_tensor& view() { return view_; }
  const swa_tensor& view() const { return view_; }
  DType dtype() const { return dtype_; }
  int64_t elements() const { return view_.shape[0] * view_.shape[1] * view_.shape[2] * view_.shape[3]; }

  // Element offset (in elements, from data) of (b, l, h, d).
  int64_t Offset(int64_t b, int64_t l, int64_t h, int64_t d) const {
    return b * view_.stride[0] + l * view_.stride[1] + h * view_.stride[2] + d;
  }
  float Get(int64_t b, int64_t l, int64_t h, int64_t d) const;
  void Set(int64_t b, int64_t l, int64_t h, int64_t d, float x);

  // Calls f(b, l, h, d) for every element, in (b, l, h, d) order.
  template <class F>
  void ForEachIndex(F&& f) const {
    for (int64_t b = 0; b < view_.shape[0]; ++b)
      for (int64_t l = 0; l < view_.shape[1]; ++l)
        for (int64_t h = 0; h < view_.shape[2]; ++h)
          for (int64_t d = 0; d < view_.shape[3]; ++d) f(b, l, h, d);
  }

  void FillNormal(std::mt19937_64& rng, float stddev = 1.0f);
  // Fills every element with NaN, so unwritten outputs stand out.
  void Poison();
  // True if no byte outside the elements changed since construction.
  bool GuardsIntact() const;
  // The elements' bytes in (b, l, h, d) order, for bitwise comparisons.
  std::vector<uint8_t> ElementBytes() const;

 private:
  DType dtype_ = DType::kF32;
  swa_tensor view_{};
  std::vector<uint8_t> buffer_;
  std::vector<uint8_t> is_element_;  // per byte of buffer_: 1 inside an element
};

// A float buffer with guard elements on both sides.
class GuardedFloats {
 public:
  static constexpr int64_t kGuard = 64;
  explicit GuardedFloats(int64_t count, float fill);
  float* data() { return buffer_.data() + kGuard; }
  const float* data() const { return buffer_.data() + kGuard; }
  int64_t size() const { return count_; }
  bool GuardsIntact() const;

 private:
  int64_t count_;
  std::vector<float> buffer_;
};

}  // namespace swa::harness
