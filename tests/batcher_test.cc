// Batcher and ValidationBatches: the token stream is rebuilt from the segments of many
// batches and checked against the documents written here: every document exactly once per
// epoch, bytes in order, BOS/EOS where they belong, no segment across a row, positions and
// targets as defined in batcher.h; resumed state continues bit-identically.
#include "train/batcher.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "train_test_util.h"

namespace swa::train {
namespace {

struct Docs {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<bool> ends;
  std::vector<DocumentSpan> spans;
};

// Documents of random length (some empty, some many rows long); each starts with a unique
// 2-byte tag so that a rebuilt document identifies itself.
Docs MakeDocs(int count, int64_t max_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Docs d;
  d.bytes.resize(count);
  for (int i = 0; i < count; ++i) {
    const int64_t len = i == 0 ? 0 : static_cast<int64_t>(rng() % max_len) + 2;
    if (len > 0) {
      d.bytes[i] = {static_cast<uint8_t>(i & 0xff), static_cast<uint8_t>(i >> 8)};
      while (static_cast<int64_t>(d.bytes[i].size()) < len) d.bytes[i].push_back(static_cast<uint8_t>(rng()));
    }
    d.ends.push_back(rng() % 4 != 0);
  }
  for (int i = 0; i < count; ++i)
    d.spans.push_back({d.bytes[i].data(), static_cast<int64_t>(d.bytes[i].size()), d.ends[i], i, 0});
  return d;
}

std::vector<int32_t> Sequence(const Docs& d, int i) {
  std::vector<int32_t> s{kBos};
  s.insert(s.end(), d.bytes[i].begin(), d.bytes[i].end());
  if (d.ends[i]) s.push_back(kEos);
  return s;
}

// Structural checks on one batch; appends its tokens to `stream`.
void CheckBatch(const PackedBatch& b, int64_t rows, int64_t seq, std::vector<int32_t>* stream) {
  ASSERT_EQ(b.rows, rows);
  ASSERT_EQ(b.seq, seq);
  const int64_t n = rows * seq;
  ASSERT_EQ(static_cast<int64_t>(b.tokens.size()), n);
  ASSERT_EQ(static_cast<int64_t>(b.targets.size()), n);
  ASSERT_EQ(static_cast<int64_t>(b.positions.size()), n);
  ASSERT_GE(b.cu_seqlens.size(), 2u);
  ASSERT_EQ(b.cu_seqlens.front(), 0);
  ASSERT_EQ(b.cu_seqlens.back(), n);
  for (size_t s = 0; s + 1 < b.cu_seqlens.size(); ++s) {
    const int64_t begin = b.cu_seqlens[s], end = b.cu_seqlens[s + 1];
    ASSERT_LT(begin, end) << "empty segment " << s;
    EXPECT_EQ(begin / seq, (end - 1) / seq) << "segment " << s << " crosses a row";
    for (int64_t t = begin; t < end; ++t) {
      EXPECT_EQ(b.positions[t], t - begin) << "token " << t;
      // A BOS only ever starts a segment: a document never begins mid-segment.
      if (t > begin) {
        EXPECT_NE(b.tokens[t], kBos) << "token " << t;
      }
      if (t + 1 < end) {
        EXPECT_NE(b.tokens[t], kEos) << "EOS mid-segment at " << t;
      }
    }
    // A segment that does not start with BOS continues a document from the previous row.
    if (b.tokens[begin] != kBos && b.tokens[begin] != kPad) {
      EXPECT_EQ(begin % seq, 0) << "segment " << s;
    }
  }
  int64_t count = 0;
  for (int32_t t : b.targets) count += t != kPad;
  EXPECT_EQ(b.target_count, count);
  stream->insert(stream->end(), b.tokens.begin(), b.tokens.end());
}

// Cuts a BOS-delimited stream into sequences (the last may be incomplete).
std::vector<std::vector<int32_t>> CutAtBos(const std::vector<int32_t>& stream) {
  std::vector<std::vector<int32_t>> out;
  for (int32_t t : stream) {
    if (t == kBos) out.emplace_back();
    if (out.empty())
      ADD_FAILURE() << "stream does not start with BOS";
    else
      out.back().push_back(t);
  }
  return out;
}

int Tag(const std::vector<int32_t>& seq) {
  return seq.size() >= 3 && seq[1] < 256 ? seq[1] + 256 * seq[2] : 0;
}

TEST(BatcherTest, EveryDocumentOnceAndInOrderPerEpoch) {
  const Docs d = MakeDocs(37, 300, 1);
  for (const auto& [rows, seq] :
       std::vector<std::pair<int64_t, int64_t>>{{4, 64}, {1, 7}, {3, 1}, {2, 1000}}) {
    Batcher batcher(d.spans, 11);
    std::vector<int32_t> stream;
    std::vector<PackedBatch> batches;
    int64_t total = 0;
    for (int i = 0; i < 37; ++i) total += static_cast<int64_t>(Sequence(d, i).size());
    // Three epochs and some more, so the last complete epoch is followed by tokens.
    const int64_t num_batches = (3 * total) / (rows * seq) + 2;
    for (int64_t i = 0; i < num_batches; ++i) {
      batches.emplace_back();
      batcher.Next(rows, seq, &batches.back());
      CheckBatch(batches.back(), rows, seq, &stream);
    }
    const auto pieces = CutAtBos(stream);
    ASSERT_GE(pieces.size(), 3u * 37u);
    for (int epoch = 0; epoch < 3; ++epoch) {
      std::set<int> seen;
      for (int k = 0; k < 37; ++k) {
        const auto& piece = pieces[epoch * 37 + k];
        const int id = Tag(piece);
        ASSERT_GE(id, 0);
        ASSERT_LT(id, 37);
        EXPECT_TRUE(seen.insert(id).second) << "document " << id << " twice in epoch " << epoch;
        EXPECT_EQ(piece, Sequence(d, id)) << "document " << id << " epoch " << epoch << " rows " << rows;
      }
    }
    // Targets: the next token of the stream when it belongs to the same document.
    int64_t t = 0;
    for (const PackedBatch& b : batches) {
      for (int64_t i = 0; i < rows * seq; ++i, ++t) {
        const bool has_next = t + 1 < static_cast<int64_t>(stream.size());
        if (!has_next) continue;
        const bool same = stream[t] != kEos && stream[t + 1] != kBos;
        ASSERT_EQ(b.targets[i], same ? stream[t + 1] : kPad) << "stream token " << t;
      }
    }
  }
}

TEST(BatcherTest, OrderIsShuffledPerEpochAndBySeed) {
  const int n = 50;
  const Docs d = MakeDocs(n, 20, 2);
  auto first_epoch_ids = [&](uint64_t seed, int epoch) {
    Batcher batcher(d.spans, seed);
    std::vector<int32_t> stream;
    PackedBatch b;
    while (CutAtBos(stream).size() < static_cast<size_t>((epoch + 1) * n + 1)) {
      batcher.Next(2, 128, &b);
      stream.insert(stream.end(), b.tokens.begin(), b.tokens.end());
    }
    std::vector<int> ids;
    const auto pieces = CutAtBos(stream);
    for (int k = 0; k < n; ++k) ids.push_back(Tag(pieces[epoch * n + k]));
    return ids;
  };
  const std::vector<int> a0 = first_epoch_ids(1, 0), a1 = first_epoch_ids(1, 1), b0 = first_epoch_ids(2, 0);
  std::vector<int> identity(n);
  for (int i = 0; i < n; ++i) identity[i] = i;
  EXPECT_NE(a0, identity);
  EXPECT_NE(a0, a1);
  EXPECT_NE(a0, b0);
  EXPECT_EQ(a0, first_epoch_ids(1, 0));
  for (int e = 0; e < 2; ++e)
    EXPECT_EQ(first_epoch_ids(7, e),
              [&] {
                std::vector<int> ids;
                for (int64_t i : EpochOrder(n, 7, e)) ids.push_back(static_cast<int>(i));
                return ids;
              }())
        << "EpochOrder disagrees with the emitted order, epoch " << e;
}

TEST(BatcherTest, EpochOrderIsAUniformPermutation) {
  // 3 documents: 6 orders, each expected 1000 times in 6000 epochs (sd ~ 29).
  std::map<std::vector<int64_t>, int> counts;
  for (int e = 0; e < 6000; ++e) ++counts[EpochOrder(3, 99, e)];
  ASSERT_EQ(counts.size(), 6u);
  for (const auto& [order, count] : counts) {
    EXPECT_NEAR(count, 1000, 150);
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2}));
  }
}

TEST(BatcherTest, RestoredStateContinuesBitIdentically) {
  const Docs d = MakeDocs(23, 500, 3);
  Batcher original(d.spans, 5);
  PackedBatch b;
  for (int i = 0; i < 9; ++i) original.Next(3, 50, &b);
  const BatcherState saved = original.state();
  EXPECT_GT(saved.offset, 0) << "pick sizes that stop mid-document";
  const std::string text = saved.ToString();
  EXPECT_EQ(BatcherState::FromString(text), saved);

  std::vector<PackedBatch> want(6), got(6);
  for (auto& w : want) original.Next(3, 50, &w);
  Batcher resumed(d.spans, 12345);  // the seed comes from the state
  resumed.Restore(BatcherState::FromString(text));
  for (auto& g : got) resumed.Next(3, 50, &g);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "batch " << i;
    EXPECT_EQ(got[i].targets, want[i].targets) << "batch " << i;
    EXPECT_EQ(got[i].positions, want[i].positions) << "batch " << i;
    EXPECT_EQ(got[i].cu_seqlens, want[i].cu_seqlens) << "batch " << i;
  }
  EXPECT_EQ(resumed.state(), original.state());
}

TEST(BatcherTest, BadStateAndShapesAreErrors) {
  const Docs d = MakeDocs(5, 30, 4);
  Batcher batcher(d.spans, 1);
  ExpectErrorMentioning(
      [&] { batcher.Restore(BatcherState::FromString("seed=1 epoch=0 cursor=0 offset=0 documents=6")); },
      {"6 documents"});
  ExpectErrorMentioning([&] { batcher.Restore({1, 0, 5, 0, 5}); }, {"out of range"});
  ExpectErrorMentioning([&] { batcher.Restore({1, 0, 0, 100000, 5}); }, {"offset"});
  for (const char* bad :
       {"", "seed=1 epoch=0 cursor=0 offset=0", "seed=1 epoch=0 cursor=0 offset=0 documents=5 x=1",
        "seed=1 epoch=-1 cursor=0 offset=0 documents=5", "seed=1 epoch=0 cursor=0 offset=0 documents=5a",
        "seed=1 seed=2 epoch=0 cursor=0 offset=0 documents=5", "seed epoch=0"})
    ExpectErrorMentioning([&] { BatcherState::FromString(bad); }, {"batcher state"});
  PackedBatch b;
  ExpectErrorMentioning([&] { batcher.Next(0, 10, &b); }, {"rows"});
  ExpectErrorMentioning([&] { batcher.Next(1, 0, &b); }, {"seq"});
  ExpectErrorMentioning([&] { batcher.Next(1 << 16, 1 << 16, &b); }, {"2^31"});
  ExpectErrorMentioning([&] { Batcher({}, 1); }, {"no training documents"});
}

TEST(ValidationBatchesTest, AllValidationTextInSplitOrderThenPadding) {
  const Docs d = MakeDocs(9, 200, 5);
  Split split;
  split.validation = d.spans;
  std::vector<int32_t> want;
  for (int i = 0; i < 9; ++i) {
    const auto s = Sequence(d, i);
    want.insert(want.end(), s.begin(), s.end());
  }
  const int64_t rows = 3, seq = 40;
  const std::vector<PackedBatch> batches = ValidationBatches(split, rows, seq, 0);
  const int64_t total = static_cast<int64_t>(want.size());
  const int64_t total_rows = (total + seq - 1) / seq;
  ASSERT_EQ(static_cast<int64_t>(batches.size()), (total_rows + rows - 1) / rows);
  std::vector<int32_t> stream, text;
  for (size_t i = 0; i < batches.size(); ++i) {
    const int64_t r = i + 1 < batches.size() ? rows : total_rows - rows * (int64_t(batches.size()) - 1);
    CheckBatch(batches[i], r, seq, &stream);
  }
  // Everything after the text is padding, with nothing to predict.
  ASSERT_EQ(static_cast<int64_t>(stream.size()), total_rows * seq);
  text.assign(stream.begin(), stream.begin() + total);
  EXPECT_EQ(text, want);
  for (int64_t t = total; t < static_cast<int64_t>(stream.size()); ++t) EXPECT_EQ(stream[t], kPad);
  const PackedBatch& last = batches.back();
  for (int64_t i = total - (total_rows - last.rows) * seq; i < last.rows * seq; ++i)
    EXPECT_EQ(last.targets[i], kPad);
  // Fixed: the same batches again, and a limit takes a prefix.
  const std::vector<PackedBatch> again = ValidationBatches(split, rows, seq, 0);
  const std::vector<PackedBatch> two = ValidationBatches(split, rows, seq, 2);
  ASSERT_EQ(two.size(), 2u);
  for (size_t i = 0; i < batches.size(); ++i) {
    EXPECT_EQ(again[i].tokens, batches[i].tokens);
    EXPECT_EQ(again[i].targets, batches[i].targets);
    EXPECT_EQ(again[i].cu_seqlens, batches[i].cu_seqlens);
    if (i < 2) {
      EXPECT_EQ(two[i].tokens, batches[i].tokens);
    }
  }
  EXPECT_TRUE(ValidationBatches(Split{}, rows, seq, 0).empty());
}

}  // namespace
}  // namespace swa::train
