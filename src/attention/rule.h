// The visibility rule of DESIGN.md section 1 for one head of one sequence.
//
// Query row i sits at key position p = i + (Lk - Lq) (bottom-right alignment). Key j
// is visible to row i iff
//   (local(p, j) || j < sink_tokens || j global || p global) && (!causal || j <= p)
//   && 0 <= j < Lk,
// where local is the (left, right) window or, with chunk_size C > 0, the chunk of p
// widened by the overlap O on both sides.
//
// Window and chunk values are clamped to the sequence size at construction (a window
// wider than Lq + Lk behaves exactly like an unbounded one), so no arithmetic overflows.
#pragma once

#include <cstdint>

#include "attention/problem.h"

namespace swa::attention {

class BandRule {
 public:
  // Sentinels for "no bound"; far outside any position, yet safe to add to.
  static constexpr int64_t kNegInf = INT64_MIN / 4;
  static constexpr int64_t kPosInf = INT64_MAX / 4;

  BandRule(const MaskSpec& mask, HeadWindow window, int64_t lq, int64_t lk);

  int64_t lq() const { return lq_; }
  int64_t lk() const { return lk_; }
  int64_t Position(int64_t i) const { return i + offset_; }
  bool causal() const { return causal_; }

  // Local band of position p: keys in [LocalLo(p), LocalHi(p)] pass the window/chunk
  // test and the causal test. Both are non-decreasing in p. Not clipped to [0, Lk).
  int64_t LocalLo(int64_t p) const;
  int64_t LocalHi(int64_t p) const;
  // Largest key the causal rule allows for position p.
  int64_t CausalCap(int64_t p) const { return causal_ ? p : kPosInf; }

  bool IsGlobal(int64_t pos) const;
  // Number of global tokens in [lo, hi].
  int64_t CountGlobal(int64_t lo, int64_t hi) const;
  // The largest global token in [lo, hi], or -1.
  int64_t LastGlobal(int64_t lo, int64_t hi) const;

  bool Visible(int64_t i, int64_t j) const;

  int64_t sink_tokens() const { return sink_; }
  const int64_t* global_begin() const { return globals_; }
  const int64_t* global_end() const { return globals_ + num_globals_; }
  bool has_extras() const { return sink_ > 0 || num_globals_ > 0; }

 private:
  int64_t lq_, lk_, offset_;
  bool causal_;
  int64_t left_, right_;  // clamped; -1 still means unbounded
  int64_t chunk_, overlap_;
  int64_t sink_;
  const int64_t* globals_;
  int64_t num_globals_;
};

// Number of visible (query, key) pairs of one head of one sequence, exactly, from the
// rule's interval form (O(Lq log G)). Used to count FLOPs.
int64_t CountVisiblePairs(const BandRule& rule);

// Floor division for a positive divisor.
inline int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

}  // namespace swa::attention
