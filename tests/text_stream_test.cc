// The text side of generation: UTF-8 streaming (src/generate/utf8_stream.h), stop
// strings (stop_strings.h) and the generation loop (generate.h) on a bigram model whose
// greedy output is known, checking each piece of text as it is emitted.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "generate/decoder.h"
#include "generate/generate.h"
#include "generate/stop_strings.h"
#include "generate/utf8_stream.h"
#include "generate_test_util.h"

namespace swa::generate {
namespace {

using generate_test::BigramConfig;
using generate_test::BigramParams;
using generate_test::Bytes;

const std::string kFffd = "\xEF\xBF\xBD";

// The pieces Utf8Stream emits for `bytes`, one Push per byte, then Finish.
std::vector<std::string> Pieces(const std::string& bytes) {
  Utf8Stream s;
  std::vector<std::string> pieces;
  for (char c : bytes) {
    std::string out;
    s.Push(static_cast<uint8_t>(c), &out);
    pieces.push_back(out);
  }
  std::string out;
  s.Finish(&out);
  pieces.push_back(out);
  return pieces;
}

std::string Joined(const std::vector<std::string>& pieces) {
  std::string all;
  for (const std::string& p : pieces) all += p;
  return all;
}

TEST(Utf8StreamTest, ACharacterSplitOverBytesIsEmittedWholeWhenComplete) {
  // U+1F600 (F0 9F 98 80) between ASCII letters.
  const std::vector<std::string> pieces = Pieces("a\xF0\x9F\x98\x80z");
  const std::vector<std::string> want{"a", "", "", "", "\xF0\x9F\x98\x80", "z", ""};
  EXPECT_EQ(pieces, want);
  // Two- and three-byte characters alike: é (C3 A9), € (E2 82 AC).
  EXPECT_EQ(Pieces("\xC3\xA9\xE2\x82\xAC"),
            (std::vector<std::string>{"", "\xC3\xA9", "", "", "\xE2\x82\xAC", ""}));
}

TEST(Utf8StreamTest, InvalidSequencesBecomeOneReplacementPerMaximalSubpart) {
  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases{
      {"\xFF", kFffd},                                      // never a start
      {"\x80x", kFffd + "x"},                               // a lone continuation byte
      {"\xC0\xAF", kFffd + kFffd},                          // overlong lead, then a lone continuation
      {"\xC3x", kFffd + "x"},                               // a start broken by ASCII, which is kept
      {"\xE2\x82x", kFffd + "x"},                           // a 2-byte maximal subpart: one U+FFFD
      {"\xE0\x80\x80", kFffd + kFffd + kFffd},              // overlong 3-byte form
      {"\xED\xA0\x80", kFffd + kFffd + kFffd},              // a surrogate
      {"\xF4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},  // above U+10FFFF
      {"\xF0\x9F\x98", kFffd},                              // cut off by the end
      {"\xF0\x9F\xC3\xA9", kFffd + "\xC3\xA9"},             // a new start breaks the old one
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Joined(Pieces(c.in)), c.out) << "input bytes " << c.in.size();
  }
}

TEST(StopStringsTest, TheStopStringEndsTheOutputAndIsNotReleased) {
  StopStrings stops({"END", "ab"});
  std::string released;
  bool stopped = false;
  std::vector<std::string> after_each;
  for (char c : std::string("xaEN_aEND")) {
    stopped = stops.Push(static_cast<uint8_t>(c), &released);
    after_each.push_back(released);
    if (stopped) break;
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(released, "xaEN_a");
  // "a" waits (it may begin "ab"), "E" and "EN" wait (they may begin "END").
  EXPECT_EQ(after_each,
            (std::vector<std::string>{"x", "x", "xa", "xa", "xaEN_", "xaEN_", "xaEN_a", "xaEN_a", "xaEN_a"}));
  // Without a match the held bytes are released at the end.
  StopStrings none({"END"});
  released.clear();
  for (char c : std::string("xEN")) EXPECT_FALSE(none.Push(static_cast<uint8_t>(c), &released));
  EXPECT_EQ(released, "x");
  none.Flush(&released);
  EXPECT_EQ(released, "xEN");
  // Two stop strings ending together: the longer one is removed.
  StopStrings nested({"D", "CD"});
  released.clear();
  for (char c : std::string("ABC")) nested.Push(static_cast<uint8_t>(c), &released);
  EXPECT_TRUE(nested.Push('D', &released));
  EXPECT_EQ(released, "AB");
  EXPECT_THROW(StopStrings({"x", ""}), Error);
}

// Greedy generation on the bigram model: the text each chain produces.
class GenerateTest : public ::testing::Test {
 protected:
  GenerateTest()
      : decoder_(BigramConfig(),
                 BigramParams({{'a', 0xF0, 0x9F, 0x98, 0x80, 'b'},  // a -> U+1F600 b
                               {'x', 0xFF, 'y', 0xC3, 'z'},         // invalid bytes
                               {'q', 0xE2, 0x82},                   // cut off by EOS
                               {'k', 'A', 'B', 'C', 'D', 'E'},      // for stop strings
                               {model::kBos, 'H', 'i'},             // the empty prompt
                               {'r', 'R', 'r'}}),                   // a loop
                 DecoderOptions()) {}

  // Generates and returns the emitted pieces.
  std::vector<std::string> Run(const std::string& prompt, std::vector<std::string> stop = {},
                               int64_t max_tokens = 100, GenerateStats* stats = nullptr) {
    GenerateOptions o;
    o.prompt = prompt;
    o.sampling.temperature = 0;
    o.max_tokens = max_tokens;
    o.stop = std::move(stop);
    std::vector<std::string> pieces;
    const GenerateStats s = Generate(&decoder_, o, [&](std::string_view t) { pieces.emplace_back(t); });
    if (stats != nullptr) *stats = s;
    return pieces;
  }

  Decoder decoder_;
};

TEST_F(GenerateTest, AFourByteCharacterOverFourStepsIsEmittedWhole) {
  GenerateStats stats;
  EXPECT_EQ(Run("a", {}, 100, &stats), (std::vector<std::string>{"\xF0\x9F\x98\x80", "b"}));
  EXPECT_EQ(stats.reason, StopReason::kEos);
  EXPECT_EQ(stats.prompt_tokens, 2);     // BOS a
  EXPECT_EQ(stats.generated_tokens, 6);  // four bytes, b, EOS
  EXPECT_EQ(stats.decode_steps, 5);
  EXPECT_GT(stats.cache_bytes, 0);
}

TEST_F(GenerateTest, InvalidBytesAreShownAsReplacementCharacters) {
  EXPECT_EQ(Joined(Run("x")), kFffd + "y" + kFffd + "z");
  EXPECT_EQ(Run("q"), (std::vector<std::string>{kFffd}));  // E2 82 then EOS: flushed at the end
}

TEST_F(GenerateTest, StopStringsEndTheTextUnprinted) {
  GenerateStats stats;
  EXPECT_EQ(Joined(Run("k", {"CD"}, 100, &stats)), "AB");
  EXPECT_EQ(stats.reason, StopReason::kStopString);
  EXPECT_EQ(stats.generated_tokens, 4);
  EXPECT_EQ(Joined(Run("k", {"BX"})), "ABCDE");  // B is held back, then released
  EXPECT_EQ(Joined(Run("k", {"E", "zz"})), "ABCD");
  EXPECT_EQ(Joined(Run("k", {"CD"}, 3)), "ABC");  // max-tokens first: C was held, then flushed
}

TEST_F(GenerateTest, PromptsStartFromBosAndMaxTokensBoundsTheOutput) {
  EXPECT_EQ(PromptTokens("k"), (std::vector<int32_t>{model::kBos, 'k'}));
  EXPECT_EQ(Joined(Run("")), "Hi");
  GenerateStats stats;
  EXPECT_EQ(Joined(Run("r", {}, 7, &stats)), "RrRrRrR");
  EXPECT_EQ(stats.reason, StopReason::kMaxTokens);
  EXPECT_EQ(stats.decode_steps, 6);
  EXPECT_TRUE(Run("r", {}, 0).empty());
  GenerateOptions bad;
  bad.max_tokens = -1;
  EXPECT_THROW(Generate(&decoder_, bad, [](std::string_view) {}), Error);
  bad.max_tokens = 1;
  bad.sampling.top_p = 0;
  EXPECT_THROW(Generate(&decoder_, bad, [](std::string_view) {}), Error);
}

TEST_F(GenerateTest, SameSeedSameTextWhenSampling) {
  GenerateOptions o;
  o.prompt = "r";
  o.max_tokens = 60;
  o.sampling = {30.0, 0, 1.0, 9};  // hot enough to leave the loop
  std::string first, second, other;
  Generate(&decoder_, o, [&](std::string_view t) { first += t; });
  Generate(&decoder_, o, [&](std::string_view t) { second += t; });
  o.sampling.seed = 10;
  Generate(&decoder_, o, [&](std::string_view t) { other += t; });
  EXPECT_EQ(first, second);
  EXPECT_NE(first, other);
}

}  // namespace
}  // namespace swa::generate
