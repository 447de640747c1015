// Packs documents into fixed-size training rows for one varlen attention call.
//
// Each DocumentSpan is the token sequence BOS, its bytes, and EOS when it ends its
// document (split.h). Rows of `seq` tokens are filled with consecutive sequences in the
// epoch's order; a sequence longer than the room left in a row continues at the start of
// the next row (or the next batch) as a new segment. Training rows are always full: the
// stream runs on into the next epoch.
//
// A batch of R rows is one stream of R * seq tokens cut into segments by cu_seqlens
// (FlashAttention's varlen convention): a segment is the part of one sequence inside one
// row, so no attention window crosses a document or a row. positions restart at 0 in each
// segment. targets[t] is the token after tokens[t] in its sequence, looked up in the
// sequence itself, so it exists across a row or batch end when the sequence continues
// there; it is kPad after the last token of a sequence (EOS predicts nothing) and on
// padding.
//
// Epoch order: a Fisher-Yates shuffle of 0..n-1 driven by std::mt19937_64 (whose output
// the standard fixes), seeded with SplitMix64(seed + (epoch + 1) * 0x9E3779B97F4A7C15);
// for i = n-1 down to 1 it swaps entries i and j = Below(i + 1), where Below(b) draws
// r = rng() until r >= 2^64 mod b and returns r mod b. The same (documents, seed) give the
// same batches on every platform.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/split.h"
#include "train/tokens.h"

namespace swa::train {

struct PackedBatch {
  int64_t rows = 0, seq = 0;
  std::vector<int32_t> tokens;      // [rows * seq]
  std::vector<int32_t> targets;     // [rows * seq], kPad where nothing is predicted
  std::vector<int32_t> positions;   // [rows * seq], position inside its segment, from 0
  std::vector<int32_t> cu_seqlens;  // [segments + 1]: 0, segment ends..., rows * seq
  int64_t target_count = 0;         // targets that are not kPad
};

// Where the training stream stands: enough to continue bit-identically.
struct BatcherState {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t cursor = 0;     // index into the epoch's order of the next sequence to emit
  int64_t offset = 0;     // tokens of that sequence already emitted
  int64_t documents = 0;  // number of spans the state belongs to (checked on Restore)

  // "seed=S epoch=E cursor=C offset=O documents=N" (decimal); FromString accepts exactly
  // these five keys, each once, in any order, and throws swa::Error on anything else.
  std::string ToString() const;
  static BatcherState FromString(const std::string& text);
  bool operator==(const BatcherState&) const = default;
};

// The order of epoch `epoch` (a permutation of 0..num_documents-1), as described above.
std::vector<int64_t> EpochOrder(int64_t num_documents, uint64_t seed, int64_t epoch);

class Batcher {
 public:
  // The spans point into memory (a Corpus) that must outlive the batcher.
  Batcher(std::vector<DocumentSpan> docs, uint64_t seed);

  // Fills `out` with the next rows x seq tokens (rows * seq <= 2^31 - 1); reuses its memory.
  void Next(int64_t rows, int64_t seq, PackedBatch* out);

  BatcherState state() const;
  // Continues from `state`, which must come from a batcher over the same spans.
  void Restore(const BatcherState& state);

 private:
  void Advance(int64_t tokens);

  std::vector<DocumentSpan> docs_;
  uint64_t seed_;
  int64_t epoch_ = 0, cursor_ = 0, offset_ = 0;
  std::vector<int64_t> order_;  // [docs_.size()], this epoch's order
};

// The validation stream: the split's validation spans in split order (no shuffle), packed
// as above, at most max_batches batches (0 = all). The last row is padded with kPad tokens
// in a segment of their own, and the last batch holds only the rows that carry text
// (rows <= `rows`). The same split gives the same batches every time.
std::vector<PackedBatch> ValidationBatches(const Split& split, int64_t rows, int64_t seq,
                                           int64_t max_batches);

}  // namespace swa::train
