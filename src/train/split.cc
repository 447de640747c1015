#include "train/split.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace swa::train {
namespace {

uint64_t Fnv1a64(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (const char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

// MurmurHash3's fmix64: every input bit reaches every output bit.
uint64_t Fmix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

DocumentSpan WholeDocument(const Document& d, int64_t index) { return {d.data, d.size, true, index, 0}; }

}  // namespace

double SplitHashUnit(const std::string& relative_path) {
  return std::ldexp(static_cast<double>(Fmix64(Fnv1a64(relative_path)) >> 11), -53);
}

Split MakeSplit(const Corpus& corpus, double val_fraction) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0))
    ThrowInvalid("val_fraction must be in [0, 1), got " + std::to_string(val_fraction));
  const std::vector<Document>& docs = corpus.documents();
  const int64_t n = static_cast<int64_t>(docs.size());
  Split split;
  if (val_fraction == 0.0) {
    for (int64_t i = 0; i < n; ++i) split.train.push_back(WholeDocument(docs[i], i));
    split.by_document = n >= kMinDocumentsForDocumentSplit;
    return split;
  }

  if (n >= kMinDocumentsForDocumentSplit) {
    split.by_document = true;
    std::vector<double> u(n);
    std::vector<bool> validation(n);
    int64_t num_validation = 0, lowest = 0, highest = 0;
    for (int64_t i = 0; i < n; ++i) {
      u[i] = SplitHashUnit(docs[i].relative_path);
      validation[i] = u[i] < val_fraction;
      num_validation += validation[i];
      // Ties (equal relative paths under different roots) resolve to the first index.
      if (u[i] < u[lowest]) lowest = i;
      if (u[i] > u[highest]) highest = i;
    }
    if (num_validation == 0) validation[lowest] = true;
    if (num_validation == n) validation[highest] = false;
    for (int64_t i = 0; i < n; ++i)
      (validation[i] ? split.validation : split.train).push_back(WholeDocument(docs[i], i));
    return split;
  }

  for (int64_t i = 0; i < n; ++i) {
    const Document& d = docs[i];
    if (d.size < 2) {
      split.train.push_back(WholeDocument(d, i));
      continue;
    }
    const int64_t tail =
        std::clamp<int64_t>(std::llround(static_cast<double>(d.size) * val_fraction), 1, d.size - 1);
    const int64_t head = d.size - tail;
    split.train.push_back({d.data, head, false, i, 0});
    split.validation.push_back({d.data + head, tail, true, i, head});
  }
  return split;
}

}  // namespace swa::train
