// The keys and values of one sequence of a KV cache. A ring cache holds `sink_slots`
// pinned rows (positions 0..S-1) and a ring of `capacity` rows where position p >= S
// lives in slot p mod capacity; a growing cache holds every position p in row
// p mod page_tokens of page p / page_tokens. A row is [Hkv, D] in the cache's dtype.
//
// Positions are only ever mapped to rows: a wrapped ring is read as two spans of
// rows, never copied into order.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "cache/cache_config.h"
#include "hwy/aligned_allocator.h"

namespace swa::cache {

// A run of rows [row0, row0 + length) of one storage block holding the consecutive
// positions first_position, first_position + 1, ...
struct StoreSpan {
  int32_t block = 0;
  int64_t row0 = 0, length = 0;
  int64_t first_position = 0;
};

class SequenceStore {
 public:
  // A ring cache allocates (and zero-fills, so that its resident memory never grows
  // later) all of its rows here; a growing cache allocates pages as positions arrive.
  explicit SequenceStore(const CacheConfig& cfg);

  int64_t length() const { return length_; }
  // Bytes of K and V storage held.
  int64_t bytes() const;
  // Forgets every position; the storage is kept (a ring) or freed (pages).
  void Reset();

  // The oldest position still stored above the sinks (ring: the newest `capacity`).
  int64_t FirstResident() const;
  bool Resident(int64_t position) const;

  // Appending positions [length, new_length): which of them get stored, and the pages
  // that must exist first. Allocate() may throw (out of memory) and changes nothing
  // observable; Commit() cannot fail.
  struct Plan {
    int64_t new_length = 0;
    // Positions [max(length, sinks), store_from) are not stored (evicted at once).
    int64_t store_from = 0;
    std::vector<hwy::AlignedFreeUniquePtr<uint8_t[]>> k_pages, v_pages;  // new pages
  };
  Plan Allocate(int64_t new_length) const;
  // Takes the plan's pages, then length = new_length. Rows of stored positions must be
  // written (KRow/VRow) after this call.
  void Commit(Plan&& plan);

  // Row of a resident (or just committed) position: [Hkv, D].
  uint8_t* KRow(int64_t position) { return const_cast<uint8_t*>(std::as_const(*this).KRow(position)); }
  uint8_t* VRow(int64_t position) { return const_cast<uint8_t*>(std::as_const(*this).VRow(position)); }
  const uint8_t* KRow(int64_t position) const;
  const uint8_t* VRow(int64_t position) const;

  // Spans covering the stored positions [0, min(S, length)) and [oldest, length), in
  // position order; oldest >= FirstResident() (and >= the sinks).
  void Spans(int64_t oldest, std::vector<StoreSpan>* out) const;
  int64_t BlockRows(int32_t block) const;
  const uint8_t* KBlock(int32_t block) const;
  const uint8_t* VBlock(int32_t block) const;

 private:
  // Block and row of a position.
  void Locate(int64_t position, int32_t* block, int64_t* row) const;

  const CacheConfig& cfg_;
  int64_t row_bytes_;
  int64_t sink_rows_;  // ring: cfg.sink_slots; growing: 0
  int64_t length_ = 0;
  // Ring: block 0 = sinks, block 1 = ring. Growing: block i = page i.
  std::vector<hwy::AlignedFreeUniquePtr<uint8_t[]>> k_blocks_, v_blocks_;
};

}  // namespace swa::cache
