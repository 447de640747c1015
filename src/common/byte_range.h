// The memory a tensor or array occupies, for the checks that an output does not overlap
// an input (the API's rule: outputs never alias anything else of the call).
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "swa/swa.h"

namespace swa {

// Bytes [begin, end); empty when begin == end.
struct ByteRange {
  uintptr_t begin = 0, end = 0;
  bool empty() const { return begin == end; }
};

inline bool Overlaps(const ByteRange& a, const ByteRange& b) {
  return !a.empty() && !b.empty() && a.begin < b.end && b.begin < a.end;
}

// The bytes from a tensor's first element to its last (empty without elements). Only for
// tensors whose extents, strides and size were already checked (no overflow).
inline ByteRange TensorBytes(const swa_tensor* t) {
  int64_t last = 0;
  for (int d = 0; d < 4; ++d) {
    if (t->shape[d] == 0) return {};
    last += t->stride[d] * (t->shape[d] - 1);
  }
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t->data);
  return {begin, begin + static_cast<uintptr_t>((last + 1) * DTypeSize(static_cast<DType>(t->dtype)))};
}

// The bytes of `count` floats at p (empty for null or count <= 0).
inline ByteRange FloatBytes(const float* p, int64_t count) {
  if (p == nullptr || count <= 0) return {};
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p);
  return {begin, begin + static_cast<uintptr_t>(count) * sizeof(float)};
}

}  // namespace swa
