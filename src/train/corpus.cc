#include "train/corpus.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "common/error.h"

namespace swa::train {
namespace {

namespace fs = std::filesystem;

using FileId = std::pair<dev_t, ino_t>;

std::string Why(int err) { return std::generic_category().message(err); }

bool HasExtension(const std::string& name, const std::vector<std::string>& extensions) {
  if (extensions.empty()) return true;
  return std::any_of(extensions.begin(), extensions.end(),
                     [&](const std::string& e) { return name.size() >= e.size() && name.ends_with(e); });
}

struct Candidate {
  std::string path;
  std::string relative_path;
  FileId id;
};

// Collects the files under one given path (`root`, as the user spelled it).
class Walker {
 public:
  Walker(const std::string& root, const std::vector<std::string>& extensions)
      : root_(root), extensions_(extensions) {}

  std::vector<Candidate> Run() {
    struct stat st;
    if (::stat(root_.c_str(), &st) != 0) {
      const int err = errno;
      if (err == ENOENT || err == ENOTDIR) ThrowInvalid("--data " + root_ + ": no such file or directory");
      ThrowInvalid("--data " + root_ + ": cannot access: " + Why(err));
    }
    if (S_ISDIR(st.st_mode)) {
      Directory(fs::path(root_), "", st);
    } else if (S_ISREG(st.st_mode)) {
      const std::string name = fs::path(root_).filename().string();
      if (HasExtension(name, extensions_)) found_.push_back({root_, name, {st.st_dev, st.st_ino}});
    }
    // Sorted by the path relative to the root, so that neither the walk order of the file
    // system nor the root's own location changes the corpus.
    std::sort(found_.begin(), found_.end(),
              [](const Candidate& a, const Candidate& b) { return a.relative_path < b.relative_path; });
    return std::move(found_);
  }

 private:
  void Directory(const fs::path& dir, const std::string& relative, const struct stat& st) {
    if (!seen_dirs_.insert({st.st_dev, st.st_ino}).second) return;  // a symlink loop or a second link
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) ThrowInvalid("--data " + root_ + ": cannot read directory " + dir.string() + ": " + ec.message());
    std::vector<std::string> names;
    for (; it != fs::directory_iterator(); it.increment(ec)) names.push_back(it->path().filename().string());
    if (ec) ThrowInvalid("--data " + root_ + ": cannot read directory " + dir.string() + ": " + ec.message());
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) Entry(dir / name, relative.empty() ? name : relative + "/" + name);
  }

  void Entry(const fs::path& path, const std::string& relative) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      const int err = errno;
      struct stat link;
      if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) return;  // dangling symlink
      ThrowInvalid("--data " + root_ + ": cannot access " + path.string() + ": " + Why(err));
    }
    if (S_ISDIR(st.st_mode)) {
      Directory(path, relative, st);
    } else if (S_ISREG(st.st_mode) && HasExtension(path.filename().string(), extensions_)) {
      found_.push_back({path.string(), relative, {st.st_dev, st.st_ino}});
    }
  }

  const std::string& root_;
  const std::vector<std::string>& extensions_;
  std::set<FileId> seen_dirs_;
  std::vector<Candidate> found_;
};

// Maps `path` read-only; returns nullptr for a file that is empty (or no longer regular)
// by the time it is opened.
const uint8_t* MapFile(const std::string& root, const std::string& path, int64_t* size) {
  // O_NONBLOCK: should the file have become a fifo since the walk, open must not hang.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) ThrowInvalid("--data " + root + ": cannot open " + path + ": " + Why(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    ThrowInvalid("--data " + root + ": cannot stat " + path + ": " + Why(err));
  }
  *size = static_cast<int64_t>(st.st_size);
  if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
    ::close(fd);
    return nullptr;
  }
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED) {
    std::string message = "--data " + root + ": cannot map " + path + ": " + Why(err);
    if (err == ENOMEM) message += " (too many files? each is one mapping; see sysctl vm.max_map_count)";
    ThrowInvalid(message);
  }
  return static_cast<const uint8_t*>(p);
}

}  // namespace

Corpus Corpus::Open(const std::vector<std::string>& paths, const std::vector<std::string>& extensions) {
  if (paths.empty()) ThrowInvalid("--data: no paths given");
  Corpus corpus;
  std::set<FileId> seen_files;
  for (const std::string& root : paths) {
    for (Candidate& c : Walker(root, extensions).Run()) {
      if (!seen_files.insert(c.id).second) continue;
      int64_t size = 0;
      const uint8_t* data = MapFile(root, c.path, &size);
      if (data == nullptr) continue;
      corpus.documents_.push_back({std::move(c.path), std::move(c.relative_path), data, size});
      corpus.total_bytes_ += size;
    }
  }
  if (corpus.total_bytes_ == 0) {
    std::string joined;
    for (const std::string& p : paths) joined += (joined.empty() ? "" : ", ") + p;
    std::string filter;
    for (const std::string& e : extensions) filter += (filter.empty() ? " matching *" : ", *") + e;
    ThrowInvalid("--data " + joined + ": no non-empty files" + filter + " under " + joined);
  }
  return corpus;
}

Corpus::Corpus(Corpus&& other) noexcept
    : documents_(std::move(other.documents_)), total_bytes_(std::exchange(other.total_bytes_, 0)) {
  other.documents_.clear();
}

Corpus& Corpus::operator=(Corpus&& other) noexcept {
  if (this != &other) {
    Unmap();
    documents_ = std::move(other.documents_);
    other.documents_.clear();
    total_bytes_ = std::exchange(other.total_bytes_, 0);
  }
  return *this;
}

Corpus::~Corpus() { Unmap(); }

void Corpus::Unmap() {
  for (const Document& d : documents_) ::munmap(const_cast<uint8_t*>(d.data), static_cast<size_t>(d.size));
  documents_.clear();
  total_bytes_ = 0;
}

}  // namespace swa::train
