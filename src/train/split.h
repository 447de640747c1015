// The deterministic train/validation split of a corpus.
//
// With at least kMinDocumentsForDocumentSplit documents, whole documents are split: a
// document goes to validation iff u < val_fraction, where
//   h = fmix64(FNV-1a 64(relative_path))   (relative_path as in Document, '/'-separated)
//   u = (h >> 11) / 2^53                   (exact in double, uniform in [0, 1))
// fmix64 is MurmurHash3's 64-bit finaliser. It is applied because FNV-1a alone barely
// moves its top bits when only the last bytes of a path differ (file_001 .. file_199),
// which would send whole runs of such files to the same side. When val_fraction > 0 both
// sides keep at least one document: if no document falls below, the one with the smallest
// u moves to validation; if all do, the one with the largest u moves to training.
//
// With fewer documents, each document is cut instead: its last round(size * val_fraction)
// bytes, clamped to [1, size - 1] (a one-byte document stays whole in training), become
// validation text, the bytes before them training text.
//
// The rule reads only relative paths, sizes and the fraction, so the split is the same
// wherever the corpus lies on disk. val_fraction = 0 puts everything in training.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/corpus.h"

namespace swa::train {

// Bytes [begin, begin + size) of one document, which the batcher turns into the token
// sequence BOS, bytes, and EOS when the span reaches the end of its document (a training
// head cut off before a validation tail gets no EOS: its file did not end there).
struct DocumentSpan {
  const uint8_t* data;  // [size]
  int64_t size;
  bool ends_document = true;
  int64_t document = -1;  // index in Corpus::documents(), -1 when not from a corpus
  int64_t begin = 0;      // offset of data inside that document
};

struct Split {
  std::vector<DocumentSpan> train;
  std::vector<DocumentSpan> validation;
  bool by_document = false;  // true: whole documents were split, false: each document was cut
};

inline constexpr int64_t kMinDocumentsForDocumentSplit = 20;

// u of the rule above, exposed for tests and tools.
double SplitHashUnit(const std::string& relative_path);

// val_fraction in [0, 1).
Split MakeSplit(const Corpus& corpus, double val_fraction);

}  // namespace swa::train
