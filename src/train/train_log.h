// train.jsonl: an append-only file of JSON lines (trainer.h lists the records).
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace swa::train {

class TrainLog {
 public:
  // Opens `path` for appending. keep_bytes < 0: start a new, empty file; otherwise keep
  // at most the first keep_bytes bytes of the file (a resumed run drops the records
  // written after its checkpoint). Errors name the path.
  TrainLog(const std::string& path, int64_t keep_bytes);
  ~TrainLog();
  TrainLog(const TrainLog&) = delete;
  TrainLog& operator=(const TrainLog&) = delete;

  // One record as one line, flushed to the file; doubles are written with enough digits
  // to read back exactly.
  void Append(const nlohmann::json& record);
  // Flushes to the operating system and returns the file's size in bytes.
  int64_t Flush();

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace swa::train
