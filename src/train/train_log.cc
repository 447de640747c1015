#include "train/train_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace swa::train {

TrainLog::TrainLog(const std::string& path, int64_t keep_bytes) : path_(path) {
  if (keep_bytes < 0) {
    file_ = std::fopen(path.c_str(), "wb");
  } else {
    file_ = std::fopen(path.c_str(), "ab");
    // Only ever shortens: ftruncate would pad a shorter file with zero bytes.
    struct stat info {};
    if (file_ != nullptr && ::fstat(::fileno(file_), &info) == 0 && info.st_size > keep_bytes &&
        ::ftruncate(::fileno(file_), static_cast<off_t>(keep_bytes)) != 0) {
      const std::string why = std::strerror(errno);
      std::fclose(file_);
      ThrowInvalid("cannot cut " + path + " back to " + std::to_string(keep_bytes) + " bytes: " + why);
    }
  }
  if (file_ == nullptr) ThrowInvalid("cannot open " + path + " for writing: " + std::strerror(errno));
}

TrainLog::~TrainLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void TrainLog::Append(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  // Flushed at once, so that the log can be followed while the run works.
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    ThrowInvalid("cannot write " + path_ + ": " + std::strerror(errno));
  }
}

int64_t TrainLog::Flush() {
  if (std::fflush(file_) != 0) ThrowInvalid("cannot write " + path_ + ": " + std::strerror(errno));
  const off_t end = ::lseek(::fileno(file_), 0, SEEK_END);
  if (end < 0) ThrowInvalid("cannot find the size of " + path_ + ": " + std::strerror(errno));
  return static_cast<int64_t>(end);
}

}  // namespace swa::train
