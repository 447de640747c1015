// WriteSafetensors replaces its target atomically: when the write fails part way, the
// directory is not writable or the rename fails, the old file keeps its bytes, no
// temporary file is left behind and the error names the path.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include "model/safetensors.h"
#include "model_io_test_util.h"

namespace swa::model {
namespace {

using swa::testing::ErrorOf;
using swa::testing::ReadBytes;
using swa::testing::ScratchDir;

// Writes a small valid file at `path` and returns its bytes.
std::string WriteOld(const std::string& path) {
  const std::vector<float> old = {1, 2, 3};
  WriteSafetensors(path, {{"version", "old"}}, {{"old", StoredDType::kF32, {3}, old.data()}});
  return ReadBytes(path);
}

TEST(SafetensorsAtomicTest, ReplacesTheTarget) {
  ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  WriteOld(path);
  const std::vector<float> v(100, 0.5f);
  WriteSafetensors(path, {{"version", "new"}}, {{"new", StoredDType::kBF16, {10, 10}, v.data()}});
  const SafetensorsReader r = SafetensorsReader::Open(path);
  EXPECT_EQ(r.metadata().at("version"), "new");
  EXPECT_EQ(r.names(), std::vector<std::string>{"new"});
  EXPECT_EQ(dir.List(), std::vector<std::string>{"model.safetensors"});
}

TEST(SafetensorsAtomicTest, FailedWriteLeavesTheOldFile) {
  ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  const std::string old = WriteOld(path);
  // A file-size limit makes write() fail with EFBIG part way through the data (SIGXFSZ,
  // which would end the process, is ignored for the duration).
  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  const sighandler_t old_handler = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::vector<float> big(1 << 14, 1.0f);
  const std::string msg = ErrorOf([&] {
    WriteSafetensors(path, {}, {{"big", StoredDType::kF32, {1 << 14}, big.data()}});
  });
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(msg.find("cannot write " + path), 0u) << msg;
  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  EXPECT_EQ(ReadBytes(path), old);
  EXPECT_EQ(dir.List(), std::vector<std::string>{"model.safetensors"});
}

TEST(SafetensorsAtomicTest, UnwritableDirectoryLeavesTheOldFile) {
  ScratchDir dir;
  const std::string path = dir.File("model.safetensors");
  const std::string old = WriteOld(path);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0555), 0);
  // root ignores permission bits: write as "nobody" for the duration.
  const bool root = ::geteuid() == 0;
  if (root) {
    ASSERT_EQ(::seteuid(65534), 0);
  }
  const std::vector<float> v = {4, 5};
  const std::string msg = ErrorOf([&] {
    WriteSafetensors(path, {}, {{"new", StoredDType::kF32, {2}, v.data()}});
  });
  if (root) {
    ASSERT_EQ(::seteuid(0), 0);
  }
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  EXPECT_EQ(msg.find("cannot write " + path), 0u) << msg;
  EXPECT_NE(msg.find("Permission denied"), std::string::npos) << msg;
  EXPECT_EQ(ReadBytes(path), old);
  EXPECT_EQ(dir.List(), std::vector<std::string>{"model.safetensors"});
}

TEST(SafetensorsAtomicTest, FailedRenameRemovesTheTemporaryFile) {
  ScratchDir dir;
  const std::string path = dir.File("taken");
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);  // renaming a file over a directory fails
  const std::vector<float> v = {4, 5};
  const std::string msg = ErrorOf([&] {
    WriteSafetensors(path, {}, {{"new", StoredDType::kF32, {2}, v.data()}});
  });
  EXPECT_EQ(msg.find("cannot write " + path + ": cannot rename"), 0u) << msg;
  EXPECT_EQ(dir.List(), std::vector<std::string>{"taken"});
  EXPECT_TRUE(std::filesystem::is_directory(path));
}

TEST(SafetensorsAtomicTest, MissingDirectoryIsAnErrorNamingThePath) {
  ScratchDir dir;
  const std::string path = dir.File("no/such/dir/model.safetensors");
  const std::vector<float> v = {4, 5};
  const std::string msg = ErrorOf([&] {
    WriteSafetensors(path, {}, {{"new", StoredDType::kF32, {2}, v.data()}});
  });
  EXPECT_EQ(msg.find("cannot write " + path), 0u) << msg;
  EXPECT_TRUE(dir.List().empty());
}

TEST(SafetensorsAtomicTest, RelativePathWritesInTheWorkingDirectory) {
  ScratchDir dir;
  const std::string cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  const std::vector<float> v = {4, 5};
  WriteSafetensors("rel.safetensors", {}, {{"v", StoredDType::kF32, {2}, v.data()}});
  std::filesystem::current_path(cwd);
  EXPECT_EQ(dir.List(), std::vector<std::string>{"rel.safetensors"});
}

}  // namespace
}  // namespace swa::model
