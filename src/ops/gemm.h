// The target-independent part of the broadcast GEMM (gemm-inl.h): its row tile and the
// band type that limits a GEMM to the visible parts of an attention tile.
#pragma once

#include <cstddef>
#include <cstdint>

namespace swa::ops {

// Rows of C per register tile on every target: 6 rows x NR vectors of accumulators, plus
// NR loads and one broadcast, fit AVX2's 16 registers (NR = 2) and AVX-512's 32 (NR = 4).
constexpr size_t kGemmRowTile = 6;

// What one group of kGemmRowTile rows of a banded GEMM computes: the vectors of C
// [vec_begin, vec_end) and the terms [k_begin, k_end) of the sum (ends past the last
// vector or term mean "to the end"). A group whose range is empty is skipped, and its C
// rows are left as they were.
struct RowGroupBand {
  uint32_t vec_begin, vec_end;
  uint32_t k_begin, k_end;
};

}  // namespace swa::ops
