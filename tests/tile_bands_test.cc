// The GEMM bands of a partial tile (attention/cpu/tile_bands.h) against the visibility
// rule pair by pair: every visible pair of a tile is inside its key group's rows (as
// vectors of the score GEMM) and its row group's keys (as terms of the value GEMM), and
// the intervals are the tightest that hold the visible pairs.
#include "attention/cpu/tile_bands.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "attention/rule.h"
#include "attention/schedule.h"

namespace swa::attention::cpu {
namespace {

TEST(TileBandsTest, IntervalsAreTheHullsOfTheVisiblePairs) {
  std::mt19937_64 rng(11);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  std::vector<int64_t> first(80), last(80);
  std::vector<TileInterval> key_groups(RowGroups(80)), row_groups(RowGroups(80));
  std::vector<ops::RowGroupBand> vec_bands(RowGroups(80)), term_bands(RowGroups(80));
  for (int trial = 0; trial < 3000; ++trial) {
    MaskSpec m;
    m.causal = pick(0, 1);
    if (pick(0, 4) == 0) {
      m.chunk_size = pick(1, 40);
      m.chunk_overlap = pick(0, 12);
    }
    const HeadWindow w{pick(-1, 90), pick(0, 3) == 0 ? -1 : pick(0, 20)};
    const int64_t lq = pick(1, 300), lk = pick(1, 300);
    const BandRule rule(m, w, lq, lk);
    const int64_t i0 = pick(0, lq - 1), i1 = std::min(lq, i0 + pick(1, 80));
    const int64_t j0 = pick(0, lk - 1), j1 = std::min(lk, j0 + pick(1, 80));
    const size_t rows = static_cast<size_t>(i1 - i0), cols = static_cast<size_t>(j1 - j0);
    KeyRowRanges(rule, i0, i1, j0, j1, first.data(), last.data());
    TileIntervals(first.data(), last.data(), cols, rows, i0, key_groups.data(), row_groups.data());
    const size_t lanes = 1 + static_cast<size_t>(pick(0, 2)) * 7;  // 1 or 8 or 15 lanes
    BandsAsVectors(key_groups.data(), RowGroups(cols), lanes, vec_bands.data());
    BandsAsTerms(row_groups.data(), RowGroups(rows), term_bands.data());
    // The hull of the visible pairs of each key group (in rows) and row group (in keys).
    std::vector<int64_t> key_lo(RowGroups(cols), INT64_MAX), key_hi(RowGroups(cols), INT64_MIN);
    std::vector<int64_t> row_lo(RowGroups(rows), INT64_MAX), row_hi(RowGroups(rows), INT64_MIN);
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t j = j0; j < j1; ++j) {
        if (!rule.Visible(i, j)) continue;
        const size_t r = static_cast<size_t>(i - i0), c = static_cast<size_t>(j - j0);
        const size_t kg = c / ops::kGemmRowTile, rg = r / ops::kGemmRowTile;
        key_lo[kg] = std::min<int64_t>(key_lo[kg], r);
        key_hi[kg] = std::max<int64_t>(key_hi[kg], r);
        row_lo[rg] = std::min<int64_t>(row_lo[rg], c);
        row_hi[rg] = std::max<int64_t>(row_hi[rg], c);
        // The pair is computed by both GEMMs.
        ASSERT_GE(r / lanes, vec_bands[kg].vec_begin);
        ASSERT_LT(r / lanes, vec_bands[kg].vec_end);
        ASSERT_GE(c, term_bands[rg].k_begin);
        ASSERT_LT(c, term_bands[rg].k_end);
      }
    }
    for (size_t g = 0; g < RowGroups(cols); ++g) {
      const TileInterval want = key_lo[g] > key_hi[g] ? TileInterval{}
                                                      : TileInterval{static_cast<uint32_t>(key_lo[g]),
                                                                     static_cast<uint32_t>(key_hi[g] + 1)};
      ASSERT_EQ(key_groups[g].begin, want.begin) << "trial " << trial << " key group " << g;
      ASSERT_EQ(key_groups[g].end, want.end) << "trial " << trial << " key group " << g;
    }
    for (size_t g = 0; g < RowGroups(rows); ++g) {
      const TileInterval want = row_lo[g] > row_hi[g] ? TileInterval{}
                                                      : TileInterval{static_cast<uint32_t>(row_lo[g]),
                                                                     static_cast<uint32_t>(row_hi[g] + 1)};
      ASSERT_EQ(row_groups[g].begin, want.begin) << "trial " << trial << " row group " << g;
      ASSERT_EQ(row_groups[g].end, want.end) << "trial " << trial << " row group " << g;
    }
  }
}

}  // namespace
}  // namespace swa::attention::cpu
