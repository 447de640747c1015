// The visibility rule of docs/ATTENTION.md for one head of one sequence.
//
// Query row i sits at key position p = i + (Lk - Lq) (bottom-right alignment). Key j
// is visible to row i iff
//   (local(p, j) || j < sink_tokens || j global || p global) && (!causal || j <= p)
//   && 0 <= j < Lk,
// where local is the (left, right) window or, with chunk_size C > 0, the chunk of p
// widened by the overlap O on both sides.
//
// A call's keys are positions 0..Lk-1 and its queries are bottom-right aligned, unless
// an explicit frame says where both start: a KV cache attends a segment of keys whose
// first absolute position is `first_key`, with queries from `first_query`. Chunks, sink
// tokens and global tokens are absolute positions; windows, causality and ALiBi only
// use differences. Every method below works in key-index space: key j of the call,
// and a query's position p = its absolute position - first_key.
//
// Window, chunk and overlap values are clamped to 2^60 (positions stay below 2^41, so
// a larger bound behaves exactly like an unbounded one) and no arithmetic overflows.
#pragma once

#include <cstdint>

#include "attention/problem.h"

namespace swa::attention {

class BandRule {
 public:
  // Sentinels for "no bound"; far outside any position, yet safe to add to.
  static constexpr int64_t kNegInf = INT64_MIN / 4;
  static constexpr int64_t kPosInf = INT64_MAX / 4;

  BandRule(const MaskSpec& mask, HeadWindow window, int64_t lq, int64_t lk)
      : BandRule(mask, window, lq, lk, lk - lq, 0) {}
  BandRule(const MaskSpec& mask, HeadWindow window, int64_t lq, int64_t lk, int64_t first_query,
           int64_t first_key);

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
  // Number of global positions in [lo, hi].
  int64_t CountGlobal(int64_t lo, int64_t hi) const;
  // The largest global position in [lo, hi], or kNegInf if none.
  int64_t LastGlobal(int64_t lo, int64_t hi) const;
  // The smallest global position >= pos, or kPosInf if none.
  int64_t GlobalAtOrAfter(int64_t pos) const;

  bool Visible(int64_t i, int64_t j) const;

  // Keys [0, sink_keys()) of this call are sink tokens.
  int64_t sink_keys() const { return sink_; }
  bool has_globals() const { return num_globals_ > 0; }
  // Whether anything but the local band (and causality) decides visibility.
  bool has_extras() const { return sink_ > 0 || num_globals_ > 0; }

 private:
  int64_t lq_, lk_, offset_;  // offset_: key-index position of query row 0
  int64_t first_key_;         // absolute position of key 0
  bool causal_;
  int64_t left_, right_;  // clamped; -1 still means unbounded
  int64_t chunk_, overlap_;
  int64_t sink_;  // sink keys of this call, in [0, Lk]
  const int64_t* globals_;
  int64_t num_globals_;
};

// How far behind a query its local band (window or chunk) reaches: the largest
// p - LocalLo(p) over positions p, or BandRule::kPosInf when the band is unbounded. A
// KV cache keeps this many keys behind its oldest query (sinks and global tokens aside).
int64_t LocalReach(const MaskSpec& mask, HeadWindow window);

// The oldest key position that the local band of any of `heads` heads shows a query at
// absolute position `position` (keys at positions 0.., not clipped at 0; BandRule::kNegInf
// when a band is unbounded).
int64_t OldestLocalKey(const MaskSpec& mask, const HeadWindow* windows, int64_t heads, int64_t position);

// Whether some query may see a key at a later position than its own: not causal, and a
// head with a right window other than 0, chunks, global tokens or more than one sink.
bool SeesLaterKeys(const MaskSpec& mask, const HeadWindow* windows, int64_t heads);

// Number of visible (query, key) pairs of one head of one sequence, exactly, from the
// rule's interval form (O(Lq log G)). Used to count FLOPs.
int64_t CountVisiblePairs(const BandRule& rule);

// Floor division for a positive divisor.
inline int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

}  // namespace swa::attention
