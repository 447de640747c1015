#include "cache/sequence_store.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace swa::cache {
namespace {

hwy::AlignedFreeUniquePtr<uint8_t[]> ZeroedRows(int64_t rows, int64_t row_bytes) {
  if (rows == 0) return nullptr;
  const size_t bytes = static_cast<size_t>(rows * row_bytes);
  auto p = hwy::AllocateAligned<uint8_t>(bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p.get(), 0, bytes);
  return p;
}

}  // namespace

SequenceStore::SequenceStore(const CacheConfig& cfg)
    : cfg_(cfg), row_bytes_(cfg.RowBytes()), sink_rows_(cfg.grows ? 0 : cfg.sink_slots) {
  if (!cfg.grows) {
    k_blocks_.push_back(ZeroedRows(sink_rows_, row_bytes_));
    v_blocks_.push_back(ZeroedRows(sink_rows_, row_bytes_));
    k_blocks_.push_back(ZeroedRows(cfg.capacity, row_bytes_));
    v_blocks_.push_back(ZeroedRows(cfg.capacity, row_bytes_));
  }
}

int64_t SequenceStore::bytes() const {
  int64_t rows = 0;
  for (int32_t b = 0; b < static_cast<int32_t>(k_blocks_.size()); ++b) rows += BlockRows(b);
  return 2 * rows * row_bytes_;
}

void SequenceStore::Reset() {
  length_ = 0;
  if (cfg_.grows) {
    k_blocks_.clear();
    v_blocks_.clear();
  }
}

int64_t SequenceStore::FirstResident() const {
  if (cfg_.grows) return 0;
  return std::max(sink_rows_, length_ - cfg_.capacity);
}

bool SequenceStore::Resident(int64_t position) const {
  if (position < 0 || position >= length_) return false;
  return position < sink_rows_ || position >= FirstResident();
}

SequenceStore::Plan SequenceStore::Allocate(int64_t new_length) const {
  Plan plan;
  plan.new_length = new_length;
  if (cfg_.grows) {
    plan.store_from = length_;
    const int64_t pages = (new_length + cfg_.page_tokens - 1) / cfg_.page_tokens;
    for (int64_t p = static_cast<int64_t>(k_blocks_.size()); p < pages; ++p) {
      // Page memory is not zeroed: every row is written before it becomes resident.
      const size_t bytes = static_cast<size_t>(cfg_.page_tokens * row_bytes_);
      plan.k_pages.push_back(hwy::AllocateAligned<uint8_t>(bytes));
      plan.v_pages.push_back(hwy::AllocateAligned<uint8_t>(bytes));
      if (plan.k_pages.back() == nullptr || plan.v_pages.back() == nullptr) throw std::bad_alloc();
    }
  } else {
    // Of the new positions above the sinks, only the newest `capacity` stay in the ring.
    plan.store_from = std::max({length_, sink_rows_, new_length - cfg_.capacity});
  }
  return plan;
}

void SequenceStore::Commit(Plan&& plan) {
  for (auto& page : plan.k_pages) k_blocks_.push_back(std::move(page));
  for (auto& page : plan.v_pages) v_blocks_.push_back(std::move(page));
  length_ = plan.new_length;
}

void SequenceStore::Locate(int64_t position, int32_t* block, int64_t* row) const {
  if (cfg_.grows) {
    *block = static_cast<int32_t>(position / cfg_.page_tokens);
    *row = position % cfg_.page_tokens;
  } else if (position < sink_rows_) {
    *block = 0;
    *row = position;
  } else {
    *block = 1;
    *row = position % cfg_.capacity;
  }
}

const uint8_t* SequenceStore::KRow(int64_t position) const {
  int32_t block;
  int64_t row;
  Locate(position, &block, &row);
  return k_blocks_[block].get() + row * row_bytes_;
}

const uint8_t* SequenceStore::VRow(int64_t position) const {
  int32_t block;
  int64_t row;
  Locate(position, &block, &row);
  return v_blocks_[block].get() + row * row_bytes_;
}

int64_t SequenceStore::BlockRows(int32_t block) const {
  if (cfg_.grows) return cfg_.page_tokens;
  return block == 0 ? sink_rows_ : cfg_.capacity;
}

const uint8_t* SequenceStore::KBlock(int32_t block) const { return k_blocks_[block].get(); }
const uint8_t* SequenceStore::VBlock(int32_t block) const { return v_blocks_[block].get(); }

void SequenceStore::Spans(int64_t oldest, std::vector<StoreSpan>* out) const {
  out->clear();
  const int64_t sinks = std::min(sink_rows_, length_);
  if (sinks > 0) out->push_back({0, 0, sinks, 0});
  oldest = std::max({oldest, sinks, FirstResident()});
  // Walk [oldest, length) cutting at block ends (the ring's wrap, page boundaries).
  for (int64_t pos = oldest; pos < length_;) {
    int32_t block;
    int64_t row;
    Locate(pos, &block, &row);
    const int64_t run = std::min(length_ - pos, BlockRows(block) - row);
    out->push_back({block, row, run, pos});
    pos += run;
  }
}

}  // namespace swa::cache
