#include "train/batcher.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <utility>

#include "common/error.h"

namespace swa::train {
namespace {

// Tokens of a span's sequence: BOS, its bytes, EOS when it ends its document.
int64_t SequenceLength(const DocumentSpan& s) { return 1 + s.size + (s.ends_document ? 1 : 0); }

int32_t SequenceToken(const DocumentSpan& s, int64_t i) {
  if (i == 0) return kBos;
  if (i <= s.size) return s.data[i - 1];
  return kEos;
}

uint64_t SplitMix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [0, bound): rejecting the lowest 2^64 mod bound outputs leaves a whole number
// of copies of [0, bound) under the modulo.
uint64_t Below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

void CheckShape(int64_t rows, int64_t seq) {
  if (rows < 1) ThrowInvalid("batch rows must be >= 1, got " + std::to_string(rows));
  if (seq < 1) ThrowInvalid("batch seq must be >= 1, got " + std::to_string(seq));
  if (rows > std::numeric_limits<int32_t>::max() / seq)
    ThrowInvalid("batch rows * seq = " + std::to_string(rows) + " * " + std::to_string(seq) +
                 " exceeds 2^31 - 1 (cu_seqlens are int32)");
}

void CheckSpans(const std::vector<DocumentSpan>& docs, const char* what) {
  for (size_t i = 0; i < docs.size(); ++i) {
    if (docs[i].size < 0 || (docs[i].size > 0 && docs[i].data == nullptr))
      ThrowInvalid(std::string(what) + " span " + std::to_string(i) + " has no data or a negative size");
  }
}

void StartBatch(int64_t rows, int64_t seq, PackedBatch* out) {
  out->rows = rows;
  out->seq = seq;
  const size_t n = static_cast<size_t>(rows * seq);
  out->tokens.resize(n);
  out->targets.resize(n);
  out->positions.resize(n);
  out->cu_seqlens.assign(1, 0);
  out->target_count = 0;
}

// Writes tokens [from, from + n) of span's sequence as one segment at stream index `at`.
void WriteSegment(const DocumentSpan& span, int64_t from, int64_t n, int64_t at, PackedBatch* out) {
  const int64_t length = SequenceLength(span);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = from + k;
    out->tokens[at + k] = SequenceToken(span, i);
    const int32_t target = i + 1 < length ? SequenceToken(span, i + 1) : kPad;
    out->targets[at + k] = target;
    out->target_count += target != kPad;
    out->positions[at + k] = static_cast<int32_t>(k);
  }
  out->cu_seqlens.push_back(static_cast<int32_t>(at + n));
}

void WritePadding(int64_t n, int64_t at, PackedBatch* out) {
  for (int64_t k = 0; k < n; ++k) {
    out->tokens[at + k] = kPad;
    out->targets[at + k] = kPad;
    out->positions[at + k] = static_cast<int32_t>(k);
  }
  out->cu_seqlens.push_back(static_cast<int32_t>(at + n));
}

int64_t ParseField(const std::string& key, const std::string& value) {
  int64_t x = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), x);
  if (ec != std::errc() || end != value.data() + value.size() || value.empty() || x < 0)
    ThrowInvalid("batcher state: " + key + "=" + value + " is not a non-negative integer");
  return x;
}

}  // namespace

std::string BatcherState::ToString() const {
  return "seed=" + std::to_string(seed) + " epoch=" + std::to_string(epoch) +
         " cursor=" + std::to_string(cursor) + " offset=" + std::to_string(offset) +
         " documents=" + std::to_string(documents);
}

BatcherState BatcherState::FromString(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::istringstream in(text);
  std::string item;
  while (in >> item) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) ThrowInvalid("batcher state: '" + item + "' is not key=value");
    if (!fields.emplace(item.substr(0, eq), item.substr(eq + 1)).second)
      ThrowInvalid("batcher state: '" + item.substr(0, eq) + "' given twice");
  }
  BatcherState s;
  for (const char* key : {"seed", "epoch", "cursor", "offset", "documents"})
    if (!fields.count(key))
      ThrowInvalid(std::string("batcher state: '") + key + "' is missing in '" + text + "'");
  if (fields.size() != 5) ThrowInvalid("batcher state: unknown keys in '" + text + "'");
  const std::string& seed = fields["seed"];
  const auto [end, ec] = std::from_chars(seed.data(), seed.data() + seed.size(), s.seed);
  if (seed.empty() || ec != std::errc() || end != seed.data() + seed.size())
    ThrowInvalid("batcher state: seed=" + seed + " is not an unsigned 64-bit integer");
  s.epoch = ParseField("epoch", fields["epoch"]);
  s.cursor = ParseField("cursor", fields["cursor"]);
  s.offset = ParseField("offset", fields["offset"]);
  s.documents = ParseField("documents", fields["documents"]);
  return s;
}

std::vector<int64_t> EpochOrder(int64_t num_documents, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(num_documents));
  for (int64_t i = 0; i < num_documents; ++i) order[i] = i;
  std::mt19937_64 rng(SplitMix64(seed + static_cast<uint64_t>(epoch + 1) * 0x9E3779B97F4A7C15ull));
  for (int64_t i = num_documents - 1; i >= 1; --i)
    std::swap(order[i], order[Below(rng, static_cast<uint64_t>(i + 1))]);
  return order;
}

Batcher::Batcher(std::vector<DocumentSpan> docs, uint64_t seed) : docs_(std::move(docs)), seed_(seed) {
  if (docs_.empty()) ThrowInvalid("batcher: no training documents");
  CheckSpans(docs_, "training");
  order_ = EpochOrder(static_cast<int64_t>(docs_.size()), seed_, epoch_);
}

BatcherState Batcher::state() const {
  return {seed_, epoch_, cursor_, offset_, static_cast<int64_t>(docs_.size())};
}

void Batcher::Restore(const BatcherState& s) {
  const int64_t n = static_cast<int64_t>(docs_.size());
  if (s.documents != n)
    ThrowInvalid("batcher state: saved over " + std::to_string(s.documents) + " documents, this data has " +
                 std::to_string(n));
  if (s.epoch < 0 || s.cursor < 0 || s.cursor >= n)
    ThrowInvalid("batcher state: " + s.ToString() + " is out of range");
  std::vector<int64_t> order = EpochOrder(n, s.seed, s.epoch);
  if (s.offset < 0 || s.offset >= SequenceLength(docs_[order[s.cursor]]))
    ThrowInvalid("batcher state: offset " + std::to_string(s.offset) + " lies outside its document");
  seed_ = s.seed;
  epoch_ = s.epoch;
  cursor_ = s.cursor;
  offset_ = s.offset;
  order_ = std::move(order);
}

void Batcher::Advance(int64_t tokens) {
  offset_ += tokens;
  if (offset_ < SequenceLength(docs_[order_[cursor_]])) return;
  offset_ = 0;
  if (++cursor_ < static_cast<int64_t>(docs_.size())) return;
  cursor_ = 0;
  ++epoch_;
  order_ = EpochOrder(static_cast<int64_t>(docs_.size()), seed_, epoch_);
}

void Batcher::Next(int64_t rows, int64_t seq, PackedBatch* out) {
  CheckShape(rows, seq);
  StartBatch(rows, seq, out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t filled = 0; filled < seq;) {
      const DocumentSpan& span = docs_[order_[cursor_]];
      const int64_t n = std::min(SequenceLength(span) - offset_, seq - filled);
      WriteSegment(span, offset_, n, r * seq + filled, out);
      filled += n;
      Advance(n);
    }
  }
}

std::vector<PackedBatch> ValidationBatches(const Split& split, int64_t rows, int64_t seq,
                                           int64_t max_batches) {
  CheckShape(rows, seq);
  if (max_batches < 0) ThrowInvalid("max_batches must be >= 0 (0 = all), got " + std::to_string(max_batches));
  const std::vector<DocumentSpan>& docs = split.validation;
  CheckSpans(docs, "validation");
  std::vector<PackedBatch> batches;
  size_t cursor = 0;
  int64_t offset = 0;
  while (cursor < docs.size() && (max_batches == 0 || static_cast<int64_t>(batches.size()) < max_batches)) {
    PackedBatch& out = batches.emplace_back();
    StartBatch(rows, seq, &out);
    int64_t used_rows = 0;
    for (; used_rows < rows && cursor < docs.size(); ++used_rows) {
      int64_t filled = 0;
      while (filled < seq && cursor < docs.size()) {
        const int64_t n = std::min(SequenceLength(docs[cursor]) - offset, seq - filled);
        WriteSegment(docs[cursor], offset, n, used_rows * seq + filled, &out);
        filled += n;
        offset += n;
        if (offset == SequenceLength(docs[cursor])) {
          offset = 0;
          ++cursor;
        }
      }
      if (filled < seq) WritePadding(seq - filled, used_rows * seq + filled, &out);
    }
    out.rows = used_rows;
    const size_t n = static_cast<size_t>(used_rows * seq);
    out.tokens.resize(n);
    out.targets.resize(n);
    out.positions.resize(n);
  }
  return batches;
}

}  // namespace swa::train
