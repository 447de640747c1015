// Enumerates the independent work items of a call: blocks of query rows (forward) or
// of keys (backward) of every sequence and head, without materialising a list. The
// numbering is a fixed function of the problem, never of the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "attention/problem.h"

namespace swa::attention {

struct BlockTask {
  int64_t seq = 0, head = 0;
  int64_t begin = 0, end = 0;  // rows (or keys) [begin, end) of the sequence
};

class BlockGrid {
 public:
  // Blocks of `block` rows over each sequence's queries (over_keys = false) or keys,
  // for `heads` heads. Within a (sequence, head), later blocks come first: under a
  // causal mask they cost the most, and starting them first balances the threads.
  // With `interleave` > 1 (it must divide `heads`), each run of that many heads goes
  // block by block, all of its heads at one block before the next block: the query
  // heads of a GQA group then follow each other over the same keys.
  BlockGrid(const Problem& p, int64_t heads, int64_t block, bool over_keys, int64_t interleave = 1)
      : p_(p), heads_(heads), block_(block), over_keys_(over_keys), interleave_(interleave) {
    if (p.cu_seqlens_q == nullptr) {
      blocks_per_seq_ = Blocks(over_keys ? p.k.seqlen : p.q.seqlen);
      size_ = p.num_seqs * heads * blocks_per_seq_;
    } else {
      prefix_.assign(1, 0);
      for (int64_t s = 0; s < p.num_seqs; ++s) {
        const Sequence seq = p.Seq(s);
        prefix_.push_back(prefix_.back() + heads * Blocks(over_keys ? seq.lk : seq.lq));
      }
      size_ = prefix_.back();
    }
  }

  int64_t size() const { return size_; }

  BlockTask At(int64_t t) const {
    BlockTask task;
    int64_t within;  // index inside the sequence's heads x blocks
    int64_t blocks;
    if (prefix_.empty()) {
      task.seq = t / (heads_ * blocks_per_seq_);
      within = t % (heads_ * blocks_per_seq_);
      blocks = blocks_per_seq_;
    } else {
      task.seq = std::upper_bound(prefix_.begin(), prefix_.end(), t) - prefix_.begin() - 1;
      within = t - prefix_[task.seq];
      blocks = (prefix_[task.seq + 1] - prefix_[task.seq]) / heads_;
    }
    const Sequence seq = p_.Seq(task.seq);
    const int64_t length = over_keys_ ? seq.lk : seq.lq;
    const int64_t run = within / (blocks * interleave_), in_run = within % (blocks * interleave_);
    task.head = run * interleave_ + in_run % interleave_;
    const int64_t b = blocks - 1 - in_run / interleave_;
    task.begin = b * block_;
    task.end = std::min(length, task.begin + block_);
    return task;
  }

 private:
  int64_t Blocks(int64_t length) const { return (length + block_ - 1) / block_; }

  const Problem& p_;
  int64_t heads_, block_;
  bool over_keys_;
  int64_t interleave_;
  int64_t blocks_per_seq_ = 0;
  int64_t size_ = 0;
  std::vector<int64_t> prefix_;  // varlen: work items before each sequence
};

}  // namespace swa::attention
