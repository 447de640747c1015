// Writing safetensors files atomically: temporary file, fsync, rename, fsync directory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>

#include "common/dtype.h"
#include "common/error.h"
#include "model/safetensors.h"
#include "model/strict_json.h"

namespace swa::model {
namespace {

std::string Errno() { return std::strerror(errno); }

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// A file being written under a temporary name next to its target; removed unless
// Commit() renamed it over the target.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    static std::atomic<uint64_t> counter{0};
    const size_t slash = target.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : target.substr(0, slash + 1);
    const std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
    // O_EXCL on a name unique to this process and call; a leftover from a crashed writer
    // with the same pid is skipped by the retry. Mode 0666 lets the umask decide, as for
    // any newly created file.
    for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
      path_ = dir + "." + base + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && errno != EEXIST) break;
    }
    if (fd_ < 0) ThrowInvalid("cannot write " + target + ": cannot create " + path_ + ": " + Errno());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }

  void Write(const void* bytes, size_t size) {
    const char* p = static_cast<const char*>(bytes);
    while (size > 0) {
      const ssize_t n = ::write(fd_, p, std::min<size_t>(size, size_t{1} << 30));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) Fail("cannot write " + path_ + ": " + (n < 0 ? Errno() : "no progress"));
      p += n;
      size -= static_cast<size_t>(n);
    }
  }

  void Commit() {
    if (::fsync(fd_) != 0) Fail("cannot fsync " + path_ + ": " + Errno());
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) Fail("cannot close " + path_ + ": " + Errno());
    if (::rename(path_.c_str(), target_.c_str()) != 0) Fail("cannot rename " + path_ + " to it: " + Errno());
    committed_ = true;
    // The rename is durable only once the directory entry is on disk.
    const std::string dir = DirectoryOf(target_);
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) Fail("written, but cannot open its directory " + dir + " to fsync it: " + Errno());
    // Some file systems cannot fsync a directory (EINVAL); there is nothing more to do there.
    if (::fsync(dir_fd) != 0 && errno != EINVAL) {
      const std::string message = Errno();
      ::close(dir_fd);
      Fail("written, but cannot fsync its directory " + dir + ": " + message);
    }
    ::close(dir_fd);
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    ThrowInvalid("cannot write " + target_ + ": " + what);
  }

  std::string target_, path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Checks one tensor and returns its size in bytes.
int64_t CheckTensor(const std::string& path, const TensorToWrite& t) {
  const std::string where = "cannot write " + path + ": tensor \"" + t.name + "\"";
  if (t.name == "__metadata__") ThrowInvalid(where + ": the name is reserved for the metadata");
  if (t.dtype != StoredDType::kF32 && t.dtype != StoredDType::kBF16) {
    ThrowInvalid(where + ": dtype " + StoredDTypeName(t.dtype) + " cannot be written (F32 or BF16)");
  }
  int64_t count = 1;
  for (int64_t extent : t.shape) {
    if (extent < 0) ThrowInvalid(where + ": negative extent " + std::to_string(extent));
    if (__builtin_mul_overflow(count, extent, &count)) ThrowInvalid(where + ": too many elements");
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(count, StoredDTypeSize(t.dtype), &bytes)) {
    ThrowInvalid(where + ": too many bytes");
  }
  if (count > 0 && t.data == nullptr) ThrowInvalid(where + ": data is null");
  return bytes;
}

// Header JSON, padded with spaces to a multiple of 8 bytes so that the data region (after
// the 8-byte length) starts 8-byte aligned.
std::string BuildHeader(const std::string& path, const std::map<std::string, std::string>& metadata,
                        const std::vector<TensorToWrite>& tensors, const std::vector<int64_t>& bytes) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    int64_t end = 0;
    if (__builtin_add_overflow(offset, bytes[i], &end)) {
      ThrowInvalid("cannot write " + path + ": too many bytes");
    }
    header[tensors[i].name] = {{"dtype", StoredDTypeName(tensors[i].dtype)},
                               {"shape", tensors[i].shape},
                               {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception&) {
    ThrowInvalid("cannot write " + path + ": a tensor name or metadata string is not valid UTF-8");
  }
  text.resize((text.size() + 7) / 8 * 8, ' ');
  return text;
}

void WriteData(TempFile& file, const TensorToWrite& t, int64_t bytes) {
  if (t.dtype == StoredDType::kF32) {
    if (bytes > 0) file.Write(t.data, static_cast<size_t>(bytes));
    return;
  }
  constexpr int64_t kChunk = int64_t{1} << 16;
  std::vector<uint16_t> chunk(kChunk);
  const int64_t count = bytes / 2;
  for (int64_t start = 0; start < count; start += kChunk) {
    const int64_t n = std::min(kChunk, count - start);
    for (int64_t i = 0; i < n; ++i) chunk[i] = FloatToBF16(t.data[start + i]);
    file.Write(chunk.data(), static_cast<size_t>(n) * 2);
  }
}

}  // namespace

void WriteSafetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                      const std::vector<TensorToWrite>& tensors) {
  std::set<std::string> names;
  std::vector<int64_t> bytes;
  for (const TensorToWrite& t : tensors) {
    if (!names.insert(t.name).second) {
      ThrowInvalid("cannot write " + path + ": tensor \"" + t.name + "\" given twice");
    }
    bytes.push_back(CheckTensor(path, t));
  }
  const std::string header = BuildHeader(path, metadata, tensors, bytes);
  const uint64_t header_bytes = header.size();  // little-endian on every supported host
  if (header_bytes > kMaxHeaderBytes) {
    ThrowInvalid("cannot write " + path + ": header exceeds the format's limit");
  }

  TempFile file(path);
  file.Write(&header_bytes, 8);
  file.Write(header.data(), header.size());
  for (size_t i = 0; i < tensors.size(); ++i) WriteData(file, tensors[i], bytes[i]);
  file.Commit();
}

}  // namespace swa::model
