// A training corpus: every regular file under the given paths is one document, mapped
// read-only into memory (a corpus larger than RAM is paged in by the kernel on demand,
// never read whole).
//
// Walk: each path is a file or a directory. A directory is walked recursively, following
// symbolic links, and its files are taken in the byte order of their paths relative to it,
// so the corpus is the same on every machine. Each directory and each file is taken once,
// keyed by (device, inode): a symlink loop, or a second link to a file already taken, adds
// nothing. Paths are taken in the order given. Empty files, and entries that are not
// regular files (fifos, sockets, devices, dangling symlinks), are skipped.
//
// Errors (swa::Error, naming the path): a path that does not exist, a file or directory
// that cannot be read, a corpus without a single byte.
//
// The files must not shrink while the corpus is open: reading a page past the new end of
// a mapped file raises SIGBUS (a property of mmap that no check here can rule out).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace swa::train {

struct Document {
  std::string path;           // as opened: the given path joined with relative_path
  std::string relative_path;  // '/'-separated, relative to the given path it was found
                              // under (the file name when the given path is the file)
  const uint8_t* data;        // [size], read-only mapping owned by the Corpus
  int64_t size;               // > 0
};

class Corpus {
 public:
  // `extensions` (e.g. {".py", ".md"}), when not empty, keeps only files whose name ends
  // with one of them (compared byte for byte, case-sensitive).
  static Corpus Open(const std::vector<std::string>& paths, const std::vector<std::string>& extensions = {});

  Corpus(Corpus&& other) noexcept;
  Corpus& operator=(Corpus&& other) noexcept;
  Corpus(const Corpus&) = delete;
  Corpus& operator=(const Corpus&) = delete;
  ~Corpus();

  const std::vector<Document>& documents() const { return documents_; }
  int64_t total_bytes() const { return total_bytes_; }

 private:
  Corpus() = default;
  void Unmap();

  std::vector<Document> documents_;
  int64_t total_bytes_ = 0;
};

}  // namespace swa::train
