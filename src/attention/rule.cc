#include "attention/rule.h"

#include <algorithm>

namespace swa::attention {

namespace {
constexpr int64_t kClamp = int64_t{1} << 60;
}  // namespace

BandRule::BandRule(const MaskSpec& mask, HeadWindow window, int64_t lq, int64_t lk, int64_t first_query,
                   int64_t first_key)
    : lq_(lq),
      lk_(lk),
      offset_(first_query - first_key),
      first_key_(first_key),
      causal_(mask.causal),
      sink_(std::clamp(mask.sink_tokens - first_key, int64_t{0}, lk)),
      globals_(mask.global_tokens),
      num_globals_(mask.global_tokens ? mask.num_global_tokens : 0) {
  left_ = window.left < 0 ? -1 : std::min(window.left, kClamp);
  right_ = window.right < 0 ? -1 : std::min(window.right, kClamp);
  chunk_ = mask.chunk_size <= 0 ? 0 : std::min(mask.chunk_size, kClamp);
  overlap_ = std::min(mask.chunk_overlap, kClamp);
}

int64_t BandRule::LocalLo(int64_t p) const {
  if (chunk_ > 0) return FloorDiv(p + first_key_, chunk_) * chunk_ - overlap_ - first_key_;
  return left_ < 0 ? kNegInf : p - left_;
}

int64_t BandRule::LocalHi(int64_t p) const {
  int64_t hi;
  if (chunk_ > 0) {
    hi = (FloorDiv(p + first_key_, chunk_) + 1) * chunk_ - 1 + overlap_ - first_key_;
  } else {
    hi = right_ < 0 ? kPosInf : p + right_;
  }
  return causal_ ? std::min(hi, p) : hi;
}

bool BandRule::IsGlobal(int64_t pos) const {
  return num_globals_ > 0 && std::binary_search(globals_, globals_ + num_globals_, pos + first_key_);
}

int64_t BandRule::CountGlobal(int64_t lo, int64_t hi) const {
  if (num_globals_ == 0 || hi < lo) return 0;
  const int64_t* b = std::lower_bound(globals_, globals_ + num_globals_, lo + first_key_);
  const int64_t* e = std::upper_bound(b, globals_ + num_globals_, hi + first_key_);
  return e - b;
}

int64_t BandRule::LastGlobal(int64_t lo, int64_t hi) const {
  if (num_globals_ == 0 || hi < lo) return kNegInf;
  const int64_t* e = std::upper_bound(globals_, globals_ + num_globals_, hi + first_key_);
  if (e == globals_ || *(e - 1) < lo + first_key_) return kNegInf;
  return *(e - 1) - first_key_;
}

int64_t BandRule::GlobalAtOrAfter(int64_t pos) const {
  const int64_t* g = std::lower_bound(globals_, globals_ + num_globals_, pos + first_key_);
  return g == globals_ + num_globals_ ? kPosInf : *g - first_key_;
}

bool BandRule::Visible(int64_t i, int64_t j) const {
  if (j < 0 || j >= lk_) return false;
  const int64_t p = Position(i);
  if (j > CausalCap(p)) return false;
  if (j >= LocalLo(p) && j <= LocalHi(p)) return true;
  return j < sink_ || IsGlobal(j) || IsGlobal(p);
}

int64_t LocalReach(const MaskSpec& mask, HeadWindow window) {
  const BandRule rule(mask, window, 1, 1, 0, 0);
  // p - LocalLo(p) is the same for every p under a window and periodic under chunks,
  // largest at a chunk's last position.
  const int64_t p = mask.chunk_size > 0 ? std::min(mask.chunk_size, kClamp) - 1 : 0;
  const int64_t lo = rule.LocalLo(p);
  return lo <= BandRule::kNegInf ? BandRule::kPosInf : p - lo;
}

int64_t OldestLocalKey(const MaskSpec& mask, const HeadWindow* windows, int64_t heads, int64_t position) {
  int64_t oldest = BandRule::kPosInf;
  for (int64_t h = 0; h < heads; ++h) {
    // One query at `position`, keys from position 0: LocalLo is in absolute positions.
    const BandRule rule(mask, windows[h], 1, 1, position, 0);
    oldest = std::min(oldest, rule.LocalLo(rule.Position(0)));
  }
  return oldest;
}

bool SeesLaterKeys(const MaskSpec& mask, const HeadWindow* windows, int64_t heads) {
  if (mask.causal) return false;
  // Chunks and global tokens show later keys; so do sink tokens 1.. to the queries
  // before them.
  if (mask.chunk_size > 0 || mask.num_global_tokens > 0 || mask.sink_tokens > 1) return true;
  for (int64_t h = 0; h < heads; ++h) {
    if (windows[h].right != 0) return true;
  }
  return false;
}

int64_t CountVisiblePairs(const BandRule& rule) {
  int64_t total = 0;
  for (int64_t i = 0; i < rule.lq(); ++i) {
    const int64_t p = rule.Position(i);
    const int64_t cap = std::min(rule.lk() - 1, rule.CausalCap(p));
    if (cap < 0) continue;
    const int64_t a = std::max<int64_t>(0, rule.LocalLo(p));
    const int64_t b = std::min(rule.lk() - 1, rule.LocalHi(p));
    // Keys [0, e] are seen through sinks, or all keys when p is a global token.
    const int64_t e = rule.IsGlobal(p) ? cap : std::min(rule.sink_keys() - 1, cap);
    int64_t count = e + 1;
    if (a <= b) count += (b - a + 1) - std::max<int64_t>(0, std::min(b, e) - a + 1);
    // Global keys outside both ranges.
    count += rule.CountGlobal(e + 1, cap) - (a <= b ? rule.CountGlobal(std::max(a, e + 1), b) : 0);
    total += count;
  }
  return total;
}

}  // namespace swa::attention
