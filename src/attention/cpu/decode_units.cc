#include "attention/cpu/decode_units.h"

#include <algorithm>

#include "attention/rule.h"

namespace swa::attention::cpu::decode {

std::vector<Unit> MakeUnits(const Problem& p) {
  std::vector<Unit> units;
  const int64_t g = p.group();
  for (int64_t s = 0; s < p.num_seqs; ++s) {
    const int64_t lq = p.Seq(s).lq;
    if (lq == 0) continue;
    const int64_t chunk = std::max<int64_t>(1, std::min(g, kMaxRows / lq));
    for (int64_t kvh = 0; kvh < p.hkv; ++kvh) {
      for (int64_t h0 = 0; h0 < g; h0 += chunk) {
        const int64_t heads = std::min(chunk, g - h0);
        units.push_back({s, kvh, kvh * g + h0, heads, heads * lq});
      }
    }
  }
  return units;
}

namespace {

bool SameBlocks(const std::vector<WorkBlock>& a, const std::vector<WorkBlock>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const WorkBlock& x, const WorkBlock& y) {
    return x.span == y.span && x.kb.begin == y.kb.begin && x.kb.end == y.kb.end && x.kb.full == y.kb.full;
  });
}

}  // namespace

std::vector<Group> MakeGroups(const std::vector<Unit>& units, const std::vector<std::vector<WorkBlock>>& blocks) {
  std::vector<Group> groups;
  for (size_t u = 0; u < units.size(); ++u) {
    const bool joins = !groups.empty() && units[u].seq == units[u - 1].seq && SameBlocks(blocks[u], blocks[u - 1]);
    if (joins) {
      groups.back().unit_end = static_cast<int64_t>(u) + 1;
      continue;
    }
    const int64_t n = static_cast<int64_t>(blocks[u].size());
    const int64_t per_piece =
        std::clamp((n + kTargetPieces - 1) / kTargetPieces, kMinSplitBlocks, kMaxSplitBlocks);
    const int64_t pieces = std::max<int64_t>(1, (n + per_piece - 1) / per_piece);
    groups.push_back({static_cast<int64_t>(u), static_cast<int64_t>(u) + 1, per_piece, pieces});
  }
  return groups;
}

// The union of the unit's heads' key blocks over all spans, in span then key order.
void UnitBlocks(const Problem& p, const Unit& u, std::vector<KeySpan>* spans, std::vector<WorkBlock>* out,
                std::vector<KeyBlock>* scratch) {
  out->clear();
  const Sequence seq = p.Seq(u.seq);
  int64_t first_query = 0;
  p.SpansOf(u.seq, seq, spans, &first_query);
  for (size_t si = 0; si < spans->size(); ++si) {
    const KeySpan& span = (*spans)[si];
    const size_t begin = out->size();
    for (int64_t h = u.head0; h < u.head0 + u.heads; ++h) {
      const BandRule rule(p.mask, p.windows[h], seq.lq, span.length, first_query, span.first_position);
      ScheduleQueryBlock(rule, 0, seq.lq, kBlockK, scratch);
      // Merge this head's sorted list into the span's sorted list.
      std::vector<WorkBlock> merged;
      size_t a = begin, b = 0;
      while (a < out->size() || b < scratch->size()) {
        if (b == scratch->size() || (a < out->size() && (*out)[a].kb.begin < (*scratch)[b].begin)) {
          WorkBlock wb = (*out)[a++];
          if (h > u.head0) wb.kb.full = false;  // this head does not visit it
          merged.push_back(wb);
        } else if (a == out->size() || (*scratch)[b].begin < (*out)[a].kb.begin) {
          KeyBlock kb = (*scratch)[b++];
          if (h > u.head0) kb.full = false;  // earlier heads do not visit it
          merged.push_back({static_cast<int32_t>(si), kb});
        } else {
          WorkBlock wb = (*out)[a++];
          const bool full_here = (*scratch)[b++].full;
          wb.kb.full = wb.kb.full && full_here;
          merged.push_back(wb);
        }
      }
      out->resize(begin);
      out->insert(out->end(), merged.begin(), merged.end());
    }
  }
}

}  // namespace swa::attention::cpu::decode
