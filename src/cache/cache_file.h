// Saving and loading a KV cache (format: docs/KV_CACHE.md). The loader checks the whole
// file's checksum before it allocates anything, then re-validates every field as if it
// came from the C API, so a truncated or corrupt file is an error, never a crash.
#pragma once

#include <memory>
#include <string>

#include "cache/kv_cache.h"

namespace swa::cache {

constexpr char kFileMagic[8] = {'S', 'W', 'A', 'K', 'V', 'C', 'A', 'C'};
constexpr uint32_t kFileVersion = 1;

// Writes to path + ".tmp", then renames over path, so that a failed save never leaves a
// half-written file under the name.
void SaveCache(const KvCache& cache, const std::string& path);
std::unique_ptr<KvCache> LoadCache(const std::string& path);

}  // namespace swa::cache
