// Aligned float buffers for SIMD tiles. Allocation failure throws std::bad_alloc (the C
// API turns it into SWA_ERR_OUT_OF_MEMORY) instead of returning null.
#pragma once

#include <algorithm>
#include <cstddef>
#include <new>

#include "hwy/aligned_allocator.h"

namespace swa::ops {

using AlignedFloats = hwy::AlignedFreeUniquePtr<float[]>;

// At least one float, so that a buffer for an empty tile is still a valid pointer.
inline AlignedFloats AllocateFloats(size_t n) {
  AlignedFloats p = hwy::AllocateAligned<float>(std::max<size_t>(n, 1));
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace swa::ops
