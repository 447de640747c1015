// The rule and the block schedule against the literal contract, exhaustively on small
// sizes: every block is visited iff it holds a visible pair, and a block marked full
// holds only visible pairs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attention/rule.h"
#include "attention/schedule.h"
#include "contract.h"

namespace swa::attention {
namespace {

using swa::testing::ContractRule;

struct RuleCase {
  ContractRule c;
  BandRule Make() const {
    MaskSpec m;
    m.causal = c.causal;
    m.chunk_size = c.chunk;
    m.chunk_overlap = c.overlap;
    m.sink_tokens = c.sinks;
    m.global_tokens = c.globals.empty() ? nullptr : c.globals.data();
    m.num_global_tokens = static_cast<int64_t>(c.globals.size());
    if (c.framed) return BandRule(m, HeadWindow{c.left, c.right}, c.lq, c.lk, c.first_query, c.first_key);
    return BandRule(m, HeadWindow{c.left, c.right}, c.lq, c.lk);
  }
  std::string Name() const {
    std::string s = "lq=" + std::to_string(c.lq) + " lk=" + std::to_string(c.lk) + " win=(" +
                    std::to_string(c.left) + "," + std::to_string(c.right) +
                    ") causal=" + std::to_string(c.causal) + " chunk=(" + std::to_string(c.chunk) + "," +
                    std::to_string(c.overlap) + ") sinks=" + std::to_string(c.sinks) + " globals=";
    for (int64_t g : c.globals) s += std::to_string(g) + ",";
    if (c.framed) s += " frame=(" + std::to_string(c.first_query) + "," + std::to_string(c.first_key) + ")";
    return s;
  }
};

// Every small configuration the contract distinguishes, drawn at random.
std::vector<RuleCase> RandomRuleCases(int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  std::vector<RuleCase> out;
  for (int n = 0; n < count; ++n) {
    RuleCase r;
    r.c.lq = pick(0, 19);
    r.c.lk = pick(0, 19);
    r.c.left = pick(-1, 22);
    r.c.right = pick(-1, 22);
    if (pick(0, 3) == 0) r.c.left = -1;
    if (pick(0, 3) == 0) r.c.right = pick(0, 1);
    r.c.causal = pick(0, 1);
    if (pick(0, 3) == 0) {
      r.c.chunk = pick(1, 8);
      r.c.overlap = pick(0, 9);
    }
    if (pick(0, 3) == 0) r.c.sinks = pick(0, 6);
    if (pick(0, 3) == 0) {
      for (int64_t g = 0; g < 40; ++g) {
        if (pick(0, 5) == 0) r.c.globals.push_back(g);
      }
    }
    if (pick(0, 3) == 0) {  // a key segment somewhere in a longer stream
      r.c.framed = true;
      r.c.first_key = pick(0, 20);
      r.c.first_query = r.c.first_key + pick(-5, 25);
    }
    out.push_back(r);
  }
  return out;
}

TEST(RuleTest, VisibleMatchesContract) {
  for (const RuleCase& r : RandomRuleCases(3000, 1)) {
    const BandRule rule = r.Make();
    for (int64_t i = 0; i < r.c.lq; ++i) {
      for (int64_t j = -2; j < r.c.lk + 2; ++j) {
        ASSERT_EQ(rule.Visible(i, j), r.c.Visible(i, j)) << r.Name() << " i=" << i << " j=" << j;
      }
    }
  }
}

TEST(RuleTest, RowVisibilityMatchesContract) {
  std::vector<uint8_t> vis(64);
  for (const RuleCase& r : RandomRuleCases(2000, 5)) {
    const BandRule rule = r.Make();
    for (int64_t i = 0; i < r.c.lq; ++i) {
      for (int64_t j0 = 0; j0 < r.c.lk; j0 += 3) {
        const int64_t j1 = std::min(r.c.lk, j0 + 1 + (i + j0) % 7);
        RowVisibility(rule, i, j0, j1, vis.data());
        for (int64_t j = j0; j < j1; ++j) {
          ASSERT_EQ(vis[j - j0] != 0, r.c.Visible(i, j)) << r.Name() << " i=" << i << " j=" << j;
        }
      }
    }
  }
}

TEST(RuleTest, KeyRowRangesMatchContractWithoutExtras) {
  std::vector<int64_t> first(64), last(64);
  for (RuleCase r : RandomRuleCases(3000, 6)) {
    r.c.sinks = 0;
    r.c.globals.clear();
    const BandRule rule = r.Make();
    ASSERT_FALSE(rule.has_extras());
    for (int64_t i0 = 0; i0 < r.c.lq; i0 += 3) {
      const int64_t i1 = std::min(r.c.lq, i0 + 1 + i0 % 5);
      for (int64_t j0 = 0; j0 < r.c.lk; j0 += 4) {
        const int64_t j1 = std::min(r.c.lk, j0 + 1 + (i0 + j0) % 6);
        KeyRowRanges(rule, i0, i1, j0, j1, first.data(), last.data());
        for (int64_t j = j0; j < j1; ++j) {
          for (int64_t i = i0; i < i1; ++i) {
            const bool in = i >= first[j - j0] && i <= last[j - j0];
            ASSERT_EQ(in, r.c.Visible(i, j)) << r.Name() << " i=" << i << " j=" << j;
          }
        }
      }
    }
  }
}

TEST(RuleTest, HugeWindowsActAsUnbounded) {
  ContractRule c;
  c.lq = 9;
  c.lk = 13;
  for (int64_t huge : {int64_t{1} << 40, INT64_MAX / 2, INT64_MAX}) {
    MaskSpec m;
    const BandRule wide(m, HeadWindow{huge, huge}, c.lq, c.lk);
    m.chunk_size = huge;
    m.chunk_overlap = huge;
    const BandRule chunked(m, HeadWindow{-1, -1}, c.lq, c.lk);
    for (int64_t i = 0; i < c.lq; ++i) {
      for (int64_t j = 0; j < c.lk; ++j) {
        EXPECT_TRUE(wide.Visible(i, j));
        EXPECT_TRUE(chunked.Visible(i, j));
      }
    }
  }
}

// The brute-force local band of the contract: the oldest key j >= p - 300 that passes the
// window or chunk test of a query at absolute position p (keys unclipped, no causality).
int64_t OldestLocalByContract(const ContractRule& c, int64_t p) {
  for (int64_t j = p - 300; j <= p + 300; ++j) {
    bool local;
    if (c.chunk > 0) {
      const int64_t chunk =
          static_cast<int64_t>(std::floor(static_cast<double>(p) / static_cast<double>(c.chunk)));
      local = j >= chunk * c.chunk - c.overlap && j <= (chunk + 1) * c.chunk - 1 + c.overlap;
    } else {
      local = (c.left < 0 || j >= p - c.left) && (c.right < 0 || j <= p + c.right);
    }
    if (local) return j;
  }
  return INT64_MIN;
}

TEST(RuleTest, LocalReachAndOldestLocalKeyMatchContract) {
  for (RuleCase r : RandomRuleCases(2000, 7)) {
    if (r.c.chunk == 0 && r.c.right >= 0 && r.c.right < r.c.left) r.c.right = r.c.left;  // a non-empty band
    const MaskSpec m = [&] {
      MaskSpec spec;
      spec.causal = r.c.causal;
      spec.chunk_size = r.c.chunk;
      spec.chunk_overlap = r.c.overlap;
      return spec;
    }();
    const HeadWindow w{r.c.left, r.c.right};
    const int64_t reach = LocalReach(m, w);
    if (r.c.chunk == 0 && r.c.left < 0) {
      EXPECT_EQ(reach, BandRule::kPosInf) << r.Name();
      continue;
    }
    int64_t brute = 0;
    for (int64_t p = 0; p < 40; ++p) {
      const int64_t oldest = OldestLocalByContract(r.c, p);
      ASSERT_EQ(OldestLocalKey(m, &w, 1, p), oldest) << r.Name() << " p=" << p;
      brute = std::max(brute, p - oldest);
    }
    EXPECT_EQ(reach, brute) << r.Name();
  }
  // Several heads: the oldest of their oldest keys.
  MaskSpec m;
  const HeadWindow heads[3] = {{4, 0}, {9, 0}, {2, 3}};
  EXPECT_EQ(OldestLocalKey(m, heads, 3, 100), 91);
}

TEST(RuleTest, SeesLaterKeysWhenTheContractShowsALaterKey) {
  for (RuleCase r : RandomRuleCases(3000, 8)) {
    r.c.framed = false;
    r.c.lq = r.c.lk = 30;
    std::vector<HeadWindow> w = {{r.c.left, r.c.right}};
    MaskSpec m;
    m.causal = r.c.causal;
    m.chunk_size = r.c.chunk;
    m.chunk_overlap = r.c.overlap;
    m.sink_tokens = r.c.sinks;
    m.global_tokens = r.c.globals.empty() ? nullptr : r.c.globals.data();
    m.num_global_tokens = static_cast<int64_t>(r.c.globals.size());
    bool later = false;
    for (int64_t i = 0; i < r.c.lq; ++i)
      for (int64_t j = i + 1; j < r.c.lk; ++j) later |= r.c.Visible(i, j);
    if (later) {
      EXPECT_TRUE(SeesLaterKeys(m, w.data(), 1)) << r.Name();
    }
    // Plain windows: exactly when some later key is visible.
    if (r.c.chunk == 0 && r.c.globals.empty()) {
      EXPECT_EQ(SeesLaterKeys(m, w.data(), 1), later) << r.Name();
    }
  }
}

TEST(RuleTest, CountVisiblePairsMatchesBruteForce) {
  for (const RuleCase& r : RandomRuleCases(2000, 2)) {
    int64_t brute = 0;
    for (int64_t i = 0; i < r.c.lq; ++i)
      for (int64_t j = 0; j < r.c.lk; ++j) brute += r.c.Visible(i, j);
    ASSERT_EQ(CountVisiblePairs(r.Make()), brute) << r.Name();
  }
}

TEST(ScheduleTest, QueryBlocksVisitExactlyTheBlocksWithVisiblePairs) {
  std::vector<KeyBlock> blocks;
  for (const RuleCase& r : RandomRuleCases(3000, 3)) {
    const BandRule rule = r.Make();
    for (int64_t bq = 1; bq <= 5; ++bq) {
      for (int64_t bk = 1; bk <= 5; ++bk) {
        for (int64_t i0 = 0; i0 < r.c.lq; i0 += bq) {
          const int64_t i1 = std::min(r.c.lq, i0 + bq);
          ScheduleQueryBlock(rule, i0, i1, bk, &blocks);
          size_t next = 0;
          for (int64_t j0 = 0; j0 < r.c.lk; j0 += bk) {
            const int64_t j1 = std::min(r.c.lk, j0 + bk);
            int64_t visible = 0;
            for (int64_t i = i0; i < i1; ++i)
              for (int64_t j = j0; j < j1; ++j) visible += r.c.Visible(i, j);
            const bool listed = next < blocks.size() && blocks[next].begin == j0;
            ASSERT_EQ(listed, visible > 0) << r.Name() << " bq=" << bq << " bk=" << bk << " rows [" << i0
                                           << "," << i1 << ") keys [" << j0 << "," << j1 << ")";
            if (!listed) continue;
            ASSERT_EQ(blocks[next].end, j1);
            if (blocks[next].full) {
              ASSERT_EQ(visible, (i1 - i0) * (j1 - j0)) << r.Name() << " marked full: rows [" << i0 << ","
                                                        << i1 << ") keys [" << j0 << "," << j1 << ")";
            }
            ++next;
          }
          ASSERT_EQ(next, blocks.size()) << r.Name() << ": blocks out of order or out of range";
        }
      }
    }
  }
}

TEST(ScheduleTest, KeyBlocksListExactlyTheQueryBlocksWithVisiblePairs) {
  std::vector<QueryBlock> blocks;
  for (const RuleCase& r : RandomRuleCases(3000, 4)) {
    const BandRule rule = r.Make();
    for (int64_t bq = 1; bq <= 5; ++bq) {
      for (int64_t bk = 1; bk <= 5; ++bk) {
        for (int64_t j0 = 0; j0 < r.c.lk; j0 += bk) {
          const int64_t j1 = std::min(r.c.lk, j0 + bk);
          ScheduleKeyBlock(rule, j0, j1, bq, &blocks);
          size_t next = 0;
          for (int64_t i0 = 0; i0 < r.c.lq; i0 += bq) {
            const int64_t i1 = std::min(r.c.lq, i0 + bq);
            int64_t visible = 0;
            for (int64_t i = i0; i < i1; ++i)
              for (int64_t j = j0; j < j1; ++j) visible += r.c.Visible(i, j);
            const bool listed = next < blocks.size() && blocks[next].begin == i0;
            ASSERT_EQ(listed, visible > 0) << r.Name() << " bq=" << bq << " bk=" << bk << " keys [" << j0
                                           << "," << j1 << ") rows [" << i0 << "," << i1 << ")";
            if (!listed) continue;
            ASSERT_EQ(blocks[next].end, i1);
            if (blocks[next].full) {
              ASSERT_EQ(visible, (i1 - i0) * (j1 - j0)) << r.Name();
            }
            ++next;
          }
          ASSERT_EQ(next, blocks.size()) << r.Name();
        }
      }
    }
  }
}

// The schedule must not degrade into "everything partial": inside a causal band the
// interior blocks are full, and the number of visited blocks follows the window.
TEST(ScheduleTest, BandInteriorIsFullAndCostFollowsTheWindow) {
  MaskSpec m;
  m.causal = true;
  const int64_t n = 4096, w = 512, b = 64;
  const BandRule rule(m, HeadWindow{w - 1, 0}, n, n);
  std::vector<KeyBlock> blocks;
  ScheduleQueryBlock(rule, 2048, 2048 + b, b, &blocks);
  ASSERT_EQ(blocks.size(), static_cast<size_t>(w / b + 1));
  int full = 0;
  for (const KeyBlock& kb : blocks) full += kb.full;
  EXPECT_EQ(full, w / b - 1);  // the first and the diagonal block are partial
}

}  // namespace
}  // namespace swa::attention
