// The visible parts of a partial attention tile of a plain band, as GEMM bands
// (ops::RowGroupBand) by groups of ops::kGemmRowTile rows, so that the tile GEMMs skip
// what the mask hides. Target-independent integer code; tile_bands_test checks it against
// the visibility rule pair by pair.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "ops/gemm.h"

namespace swa::attention::cpu {

using ops::RowGroupBand;

// Groups of ops::kGemmRowTile in n rows or keys.
constexpr size_t RowGroups(size_t n) { return (n + ops::kGemmRowTile - 1) / ops::kGemmRowTile; }

// The visible part of a partial tile of a plain band, from the rows [first[j], last[j]]
// (absolute; both ends non-decreasing in j; first > last when no row does) that see each
// key j of the tile, whose rows start at row0: for each group of ops::kGemmRowTile keys, the interval
// of tile rows that see one of them, and for each group of ops::kGemmRowTile rows, the interval of
// keys one of them sees (keys outside it are hidden from the whole group). Half-open;
// empty as [0, 0).
struct TileInterval {
  uint32_t begin = 0, end = 0;
};

inline void TileIntervals(const int64_t* first, const int64_t* last, size_t cols, size_t rows, int64_t row0,
                          TileInterval* key_groups, TileInterval* row_groups) {
  for (size_t j0 = 0, g = 0; j0 < cols; j0 += ops::kGemmRowTile, ++g) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t j = j0; j < std::min(cols, j0 + ops::kGemmRowTile); ++j) {
      if (first[j] > last[j]) continue;
      lo = std::min(lo, first[j] - row0);
      hi = std::max(hi, last[j] - row0);
    }
    key_groups[g] =
        lo > hi ? TileInterval{} : TileInterval{static_cast<uint32_t>(lo), static_cast<uint32_t>(hi + 1)};
  }
  // Both ends being monotone, the keys seen by rows [r0, r1) run from the first key
  // whose last row reaches r0 to the last key whose first row is before r1.
  size_t begin = 0, end = 0;
  for (size_t r0 = 0, g = 0; r0 < rows; r0 += ops::kGemmRowTile, ++g) {
    const int64_t r_first = row0 + static_cast<int64_t>(r0);
    const int64_t r_last = row0 + static_cast<int64_t>(std::min(rows, r0 + ops::kGemmRowTile)) - 1;
    while (begin < cols && last[begin] < r_first) ++begin;
    while (end < cols && first[end] <= r_last) ++end;
    row_groups[g] =
        end > begin ? TileInterval{static_cast<uint32_t>(begin), static_cast<uint32_t>(end)} : TileInterval{};
  }
}

// Bands for a GEMM whose C rows are one side of a tile: the interval as C vectors (an
// operand's lanes) or as terms of the sum.
inline void BandsAsVectors(const TileInterval* groups, size_t count, size_t lanes, RowGroupBand* bands) {
  for (size_t g = 0; g < count; ++g) {
    bands[g] = {static_cast<uint32_t>(groups[g].begin / lanes),
                static_cast<uint32_t>((groups[g].end + lanes - 1) / lanes), 0, UINT32_MAX};
  }
}
inline void BandsAsTerms(const TileInterval* groups, size_t count, RowGroupBand* bands) {
  for (size_t g = 0; g < count; ++g) bands[g] = {0, UINT32_MAX, groups[g].begin, groups[g].end};
}

}  // namespace swa::attention::cpu
