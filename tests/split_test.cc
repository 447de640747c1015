// MakeSplit: deterministic, disjoint and complete (every byte of the corpus on exactly one
// side), blind to where the tree lies on disk, and the hash rule of split.h recomputed here
// from its definition (FNV-1a 64, MurmurHash3 fmix64, top 53 bits).
#include "train/split.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <set>
#include <tuple>

#include "train_test_util.h"

namespace swa::train {
namespace {

double PlainUnit(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<double>(h >> 11) / 9007199254740992.0;  // 2^53
}

void WriteFiles(const TempTree& t, int count, uint64_t seed, const std::string& dir = "") {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < count; ++i) {
    std::string name = dir + (i % 3 == 0 ? "nested/" : "") + "file_" + std::to_string(i) + ".txt";
    t.Write(name, std::string(1 + rng() % 300, static_cast<char>('a' + i % 26)));
  }
}

using SpanKey = std::tuple<int64_t, int64_t, int64_t, bool>;

std::vector<SpanKey> Keys(const std::vector<DocumentSpan>& spans) {
  std::vector<SpanKey> out;
  for (const DocumentSpan& s : spans) out.emplace_back(s.document, s.begin, s.size, s.ends_document);
  return out;
}

// Every byte of every document lies in exactly one span, and each span's pointer is its
// document's bytes at `begin`.
void ExpectDisjointAndComplete(const Corpus& c, const Split& split) {
  const auto& docs = c.documents();
  std::vector<std::vector<int>> covered(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) covered[i].assign(docs[i].size, 0);
  for (const auto* side : {&split.train, &split.validation}) {
    for (const DocumentSpan& s : *side) {
      ASSERT_GE(s.document, 0);
      ASSERT_LT(s.document, static_cast<int64_t>(docs.size()));
      const Document& d = docs[s.document];
      ASSERT_GE(s.begin, 0);
      ASSERT_LE(s.begin + s.size, d.size);
      EXPECT_EQ(s.data, d.data + s.begin);
      EXPECT_EQ(s.ends_document, s.begin + s.size == d.size);
      for (int64_t b = s.begin; b < s.begin + s.size; ++b) ++covered[s.document][b];
    }
  }
  for (size_t i = 0; i < docs.size(); ++i)
    for (int64_t b = 0; b < docs[i].size; ++b) ASSERT_EQ(covered[i][b], 1) << docs[i].path << " byte " << b;
}

TEST(SplitTest, ManyDocumentsFollowTheHashRule) {
  TempTree t;
  WriteFiles(t, 60, 1);
  const Corpus c = Corpus::Open({t.root()});
  for (double f : {0.1, 0.25, 0.5}) {
    const Split split = MakeSplit(c, f);
    EXPECT_TRUE(split.by_document);
    ExpectDisjointAndComplete(c, split);
    std::set<int64_t> validation;
    for (const DocumentSpan& s : split.validation) validation.insert(s.document);
    for (size_t i = 0; i < c.documents().size(); ++i) {
      const std::string& rel = c.documents()[i].relative_path;
      EXPECT_EQ(validation.count(i) == 1, PlainUnit(rel) < f) << rel << " fraction " << f;
      EXPECT_EQ(SplitHashUnit(rel), PlainUnit(rel)) << rel;
    }
  }
}

TEST(SplitTest, DeterministicAcrossTwoOpens) {
  TempTree t;
  WriteFiles(t, 40, 2);
  for (double f : {0.0, 0.1, 0.3}) {
    const Split a = MakeSplit(Corpus::Open({t.root()}), f);
    const Split b = MakeSplit(Corpus::Open({t.root()}), f);
    EXPECT_EQ(Keys(a.train), Keys(b.train));
    EXPECT_EQ(Keys(a.validation), Keys(b.validation));
  }
}

TEST(SplitTest, IndependentOfTheTreesLocation) {
  TempTree source, first, second;
  WriteFiles(source, 50, 3);
  std::filesystem::create_directories(first.Path("checkout"));
  std::filesystem::create_directories(second.Path("elsewhere/deeper"));
  std::filesystem::copy(source.root(), first.Path("checkout/data"), std::filesystem::copy_options::recursive);
  std::filesystem::copy(source.root(), second.Path("elsewhere/deeper/copy"),
                        std::filesystem::copy_options::recursive);
  const Corpus a = Corpus::Open({first.Path("checkout/data")});
  const Corpus b = Corpus::Open({second.Path("elsewhere/deeper/copy")});
  const Split sa = MakeSplit(a, 0.2), sb = MakeSplit(b, 0.2);
  ASSERT_FALSE(sa.validation.empty());
  auto names = [](const Corpus& c, const std::vector<DocumentSpan>& spans) {
    std::vector<std::string> out;
    for (const DocumentSpan& s : spans) out.push_back(c.documents()[s.document].relative_path);
    return out;
  };
  EXPECT_EQ(names(a, sa.validation), names(b, sb.validation));
  EXPECT_EQ(names(a, sa.train), names(b, sb.train));
}

TEST(SplitTest, FractionIsRoughlyHonouredOn200SmallFiles) {
  TempTree t;
  WriteFiles(t, 200, 4);
  const Corpus c = Corpus::Open({t.root()});
  ASSERT_EQ(c.documents().size(), 200u);
  for (double f : {0.05, 0.1, 0.2, 0.5}) {
    const Split split = MakeSplit(c, f);
    ExpectDisjointAndComplete(c, split);
    // Binomial(200, f): allow four standard deviations.
    const double expected = 200 * f, sd = std::sqrt(200 * f * (1 - f));
    EXPECT_NEAR(static_cast<double>(split.validation.size()), expected, 4 * sd) << "fraction " << f;
  }
}

TEST(SplitTest, EachSideKeepsAtLeastOneDocument) {
  TempTree t;
  WriteFiles(t, 20, 5);
  const Corpus c = Corpus::Open({t.root()});
  const Split tiny = MakeSplit(c, 1e-12);
  ASSERT_EQ(tiny.validation.size(), 1u);
  double lowest = 2;
  for (const Document& d : c.documents()) lowest = std::min(lowest, PlainUnit(d.relative_path));
  EXPECT_EQ(PlainUnit(c.documents()[tiny.validation[0].document].relative_path), lowest);
  const Split huge = MakeSplit(c, 1.0 - 1e-15);
  EXPECT_EQ(huge.train.size(), 1u);
  ExpectDisjointAndComplete(c, huge);
  EXPECT_TRUE(MakeSplit(c, 0.0).validation.empty());
}

TEST(SplitTest, FewDocumentsAreCutIntoHeadAndTail) {
  TempTree t;
  t.Write("a.txt", std::string(1000, 'a'));
  t.Write("b.txt", std::string(7, 'b'));
  t.Write("c.txt", std::string(2, 'c'));
  t.Write("d.txt", "d");
  const Corpus c = Corpus::Open({t.root()});
  const Split split = MakeSplit(c, 0.1);
  EXPECT_FALSE(split.by_document);
  ExpectDisjointAndComplete(c, split);
  // Tails: round(1000 * 0.1) = 100, round(0.7) = 1, round(0.2) = 0 -> clamped to 1; a
  // one-byte document stays in training.
  std::vector<std::pair<int64_t, int64_t>> tails;
  for (const DocumentSpan& s : split.validation) tails.emplace_back(s.document, s.size);
  EXPECT_EQ(tails, (std::vector<std::pair<int64_t, int64_t>>{{0, 100}, {1, 1}, {2, 1}}));
  for (const DocumentSpan& s : split.train) EXPECT_EQ(s.ends_document, s.document == 3);
}

TEST(SplitTest, RejectsFractionsOutsideTheUnitInterval) {
  TempTree t;
  t.Write("a.txt", "abc");
  const Corpus c = Corpus::Open({t.root()});
  for (double f : {-0.1, 1.0, 2.0, std::nan("")})
    ExpectErrorMentioning([&] { MakeSplit(c, f); }, {"val_fraction"});
}

}  // namespace
}  // namespace swa::train
