// Corpus::Open: the walk (nested directories, byte order of relative paths, several given
// paths, extension filter, symlinks, fifos, empty files) and the mapped contents, checked
// against the files as written and read back with std::ifstream; errors name the path.
#include "train/corpus.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "train_test_util.h"

namespace swa::train {
namespace {

std::vector<std::string> RelativePaths(const Corpus& c) {
  std::vector<std::string> out;
  for (const Document& d : c.documents()) out.push_back(d.relative_path);
  return out;
}

void ExpectContentsEqualFiles(const Corpus& c) {
  for (const Document& d : c.documents()) {
    const std::string want = ReadWhole(d.path);
    ASSERT_EQ(d.size, static_cast<int64_t>(want.size())) << d.path;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(d.data), d.size), want) << d.path;
  }
}

std::string RandomBytes(std::mt19937_64& rng, int64_t n) {
  std::string s(n, '\0');
  for (char& ch : s) ch = static_cast<char>(rng() & 0xff);
  return s;
}

TEST(CorpusTest, WalksNestedDirectoriesInSortedOrderAndSkipsEmptyFiles) {
  TempTree t;
  std::mt19937_64 rng(5);
  // Written out of order; byte order puts 'A' (0x41) before 'a' and '-' (0x2d) before '/'.
  for (const char* name : {"b.txt", "a/z.txt", "a/c/d.bin", "A.txt", "a-b.txt", "deep/1/2/3/4/leaf"})
    t.Write(name, RandomBytes(rng, 1 + static_cast<int64_t>(rng() % 5000)));
  t.Write("empty.txt", "");
  t.Write("a/c/empty", "");
  std::filesystem::create_directories(t.Path("no_files/inside"));

  const Corpus c = Corpus::Open({t.root()});
  EXPECT_EQ(RelativePaths(c), (std::vector<std::string>{"A.txt", "a-b.txt", "a/c/d.bin", "a/z.txt", "b.txt",
                                                        "deep/1/2/3/4/leaf"}));
  int64_t total = 0;
  for (const Document& d : c.documents()) {
    EXPECT_EQ(d.path, t.root() + "/" + d.relative_path);
    total += d.size;
  }
  EXPECT_EQ(c.total_bytes(), total);
  ExpectContentsEqualFiles(c);
}

TEST(CorpusTest, TakesGivenPathsInOrderAndAFilePathIsOneDocument) {
  TempTree t;
  t.Write("dir/x.txt", "xx");
  t.Write("dir/sub/y.txt", "yyy");
  const std::string single = t.Write("single.md", "# title\n");
  const Corpus c = Corpus::Open({single, t.Path("dir")});
  EXPECT_EQ(RelativePaths(c), (std::vector<std::string>{"single.md", "sub/y.txt", "x.txt"}));
  EXPECT_EQ(c.documents()[0].path, single);
  EXPECT_EQ(c.total_bytes(), 8 + 3 + 2);
  ExpectContentsEqualFiles(c);
}

TEST(CorpusTest, ExtensionFilterKeepsOnlyMatchingFiles) {
  TempTree t;
  t.Write("a.py", "print(1)\n");
  t.Write("b.md", "text");
  t.Write("pkg/c.py", "x = 2\n");
  t.Write("pkg/c.pyc", "bytecode");
  t.Write("pkg/d.rs", "fn main() {}");
  EXPECT_EQ(RelativePaths(Corpus::Open({t.root()}, {".py"})), (std::vector<std::string>{"a.py", "pkg/c.py"}));
  EXPECT_EQ(RelativePaths(Corpus::Open({t.root()}, {".py", ".rs"})),
            (std::vector<std::string>{"a.py", "pkg/c.py", "pkg/d.rs"}));
  ExpectErrorMentioning([&] { Corpus::Open({t.root()}, {".cc"}); }, {"no non-empty files", "*.cc", t.root()});
}

TEST(CorpusTest, SymlinkLoopsTerminateAndEachFileIsTakenOnce) {
  TempTree t;
  t.Write("data/a.txt", "alpha");
  t.Write("data/sub/b.txt", "beta");
  std::filesystem::create_directory_symlink("..", t.Path("data/sub/up"));   // a loop
  std::filesystem::create_directory_symlink("sub", t.Path("data/sub2"));    // a second way in
  std::filesystem::create_symlink("a.txt", t.Path("data/c_link.txt"));      // a second link to a file
  std::filesystem::create_symlink("missing", t.Path("data/dangling.txt"));  // skipped
  const Corpus c = Corpus::Open({t.Path("data")});
  EXPECT_EQ(RelativePaths(c), (std::vector<std::string>{"a.txt", "sub/b.txt"}));
  ExpectContentsEqualFiles(c);
}

TEST(CorpusTest, SkipsFifos) {
  TempTree t;
  t.Write("data/a.txt", "alpha");
  ASSERT_EQ(::mkfifo(t.Path("data/pipe").c_str(), 0600), 0);
  const Corpus c = Corpus::Open({t.Path("data")});  // must neither hang nor fail
  EXPECT_EQ(RelativePaths(c), (std::vector<std::string>{"a.txt"}));
}

TEST(CorpusTest, MissingPathIsAnErrorNamingIt) {
  TempTree t;
  t.Write("ok.txt", "fine");
  const std::string missing = t.Path("no/such/dir");
  ExpectErrorMentioning([&] { Corpus::Open({t.Path("ok.txt"), missing}); }, {missing, "no such file"});
}

TEST(CorpusTest, CorpusWithoutBytesIsAnErrorNamingThePath) {
  TempTree t;
  t.Write("empty1", "");
  t.Write("sub/empty2", "");
  ExpectErrorMentioning([&] { Corpus::Open({t.root()}); },
                        {"--data " + t.root(), "no non-empty files under"});
  ExpectErrorMentioning([&] { Corpus::Open({}); }, {"--data"});
}

TEST(CorpusTest, UnreadableFileIsAnErrorNamingIt) {
  TempTree t;
  t.Write("ok.txt", "fine");
  const std::string secret = t.Write("secret.txt", "hidden");
  ASSERT_EQ(::chmod(secret.c_str(), 0), 0);
  // Root reads every file: drop to an unprivileged effective user for the call, and back
  // even if the call throws something unexpected.
  struct EffectiveUser {
    bool dropped = false;
    ~EffectiveUser() {
      if (dropped && ::seteuid(0) != 0) std::abort();
    }
  } user;
  if (::geteuid() == 0) {
    ASSERT_EQ(::chmod(t.root().c_str(), 0755), 0);
    ASSERT_EQ(::seteuid(65534), 0);
    user.dropped = true;
  }
  ExpectErrorMentioning([&] { Corpus::Open({t.root()}); }, {secret, "cannot open"});
}

TEST(CorpusTest, MoveKeepsTheMappings) {
  TempTree t;
  t.Write("a.txt", "some text");
  Corpus a = Corpus::Open({t.root()});
  const uint8_t* data = a.documents()[0].data;
  Corpus b = std::move(a);
  EXPECT_TRUE(a.documents().empty());
  ASSERT_EQ(b.documents().size(), 1u);
  EXPECT_EQ(b.documents()[0].data, data);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(data), 9), "some text");
}

}  // namespace
}  // namespace swa::train
