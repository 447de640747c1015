// Reading safetensors files: map, validate everything, then convert on request.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "common/dtype.h"
#include "common/error.h"
#include "model/safetensors.h"
#include "model/strict_json.h"

namespace swa::model {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

struct DTypeEntry {
  StoredDType dtype;
  const char* name;
  int64_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {StoredDType::kBool, "BOOL", 1},      {StoredDType::kU8, "U8", 1},
    {StoredDType::kI8, "I8", 1},          {StoredDType::kF8E5M2, "F8_E5M2", 1},
    {StoredDType::kF8E4M3, "F8_E4M3", 1}, {StoredDType::kI16, "I16", 2},
    {StoredDType::kU16, "U16", 2},        {StoredDType::kF16, "F16", 2},
    {StoredDType::kBF16, "BF16", 2},      {StoredDType::kI32, "I32", 4},
    {StoredDType::kU32, "U32", 4},        {StoredDType::kF32, "F32", 4},
    {StoredDType::kI64, "I64", 8},        {StoredDType::kU64, "U64", 8},
    {StoredDType::kF64, "F64", 8},
};

const DTypeEntry& Entry(StoredDType dtype) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == dtype) return e;
  }
  ThrowInvalid("unknown stored dtype " + std::to_string(static_cast<int>(dtype)));
}

// The deepest header: root { tensor { shape [ ] } }.
constexpr int kHeaderDepth = 3;

// One header entry, checked against the data region of `data_bytes` bytes.
TensorInfo ParseEntry(const std::string& file, const std::string& name, const nlohmann::json& entry,
                      int64_t data_bytes) {
  const std::string where = file + ": tensor \"" + name + "\"";
  if (!entry.is_object()) ThrowInvalid(where + ": entry must be an object, got " + ShortDump(entry));
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      ThrowInvalid(where + ": unknown key \"" + key + "\" (expected dtype, shape, data_offsets)");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) ThrowInvalid(where + ": missing \"" + key + "\"");
  }
  TensorInfo t;
  t.name = name;
  const nlohmann::json& dtype = entry.at("dtype");
  if (!dtype.is_string() || !ParseStoredDType(dtype.get<std::string>(), &t.dtype)) {
    ThrowInvalid(where + ": unknown dtype " + ShortDump(dtype));
  }
  const nlohmann::json& shape = entry.at("shape");
  if (!shape.is_array()) ThrowInvalid(where + ": shape must be a list of integers, got " + ShortDump(shape));
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t extent = JsonInt64(shape[i], where + ": shape[" + std::to_string(i) + "]");
    if (extent < 0) ThrowInvalid(where + ": shape[" + std::to_string(i) + "] is negative");
    if (__builtin_mul_overflow(count, extent, &count)) {
      ThrowInvalid(where + ": shape " + ShortDump(shape) + " has more elements than fit in 64 bits");
    }
    t.shape.push_back(extent);
  }
  t.count = count;
  int64_t bytes = 0;
  if (__builtin_mul_overflow(count, StoredDTypeSize(t.dtype), &bytes)) {
    ThrowInvalid(where + ": shape " + ShortDump(shape) + " has more bytes than fit in 64 bits");
  }
  const nlohmann::json& offsets = entry.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2) {
    ThrowInvalid(where + ": data_offsets must be [begin, end], got " + ShortDump(offsets));
  }
  t.begin = JsonInt64(offsets[0], where + ": data_offsets[0]");
  t.end = JsonInt64(offsets[1], where + ": data_offsets[1]");
  if (t.begin < 0 || t.end < t.begin) {
    ThrowInvalid(where + ": data_offsets " + ShortDump(offsets) + " must satisfy 0 <= begin <= end");
  }
  if (t.end > data_bytes) {
    ThrowInvalid(where + ": data_offsets " + ShortDump(offsets) + " run past the data region (" +
                 std::to_string(data_bytes) + " bytes; is the file truncated?)");
  }
  if (t.end - t.begin != bytes) {
    ThrowInvalid(where + ": data_offsets " + ShortDump(offsets) + " span " + std::to_string(t.end - t.begin) +
                 " bytes but shape " + ShortDump(shape) + " of " + StoredDTypeName(t.dtype) + " needs " +
                 std::to_string(bytes));
  }
  return t;
}

// The tensors must cover [0, data_bytes) exactly once, as the reference implementation
// requires: sorted by offset, each begins where the one before ends.
void CheckTiling(const std::string& file, const std::map<std::string, TensorInfo>& tensors,
                 int64_t data_bytes) {
  std::vector<const TensorInfo*> order;
  for (const auto& [name, t] : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::pair(a->begin, a->end) < std::pair(b->begin, b->end);
  });
  int64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* t : order) {
    if (t->begin < covered) {
      ThrowInvalid(file + ": tensors \"" + previous->name + "\" and \"" + t->name + "\" overlap");
    }
    if (t->begin > covered) {
      ThrowInvalid(file + ": bytes [" + std::to_string(covered) + ", " + std::to_string(t->begin) +
                   ") of the data region belong to no tensor");
    }
    covered = t->end;
    previous = t;
  }
  if (covered != data_bytes) {
    ThrowInvalid(file + ": " + std::to_string(data_bytes - covered) +
                 " bytes after the last tensor's data (header and size disagree)");
  }
}

uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

const char* StoredDTypeName(StoredDType dtype) { return Entry(dtype).name; }

int64_t StoredDTypeSize(StoredDType dtype) { return Entry(dtype).size; }

bool ParseStoredDType(const std::string& name, StoredDType* dtype) {
  for (const DTypeEntry& e : kDTypes) {
    if (name == e.name) {
      *dtype = e.dtype;
      return true;
    }
  }
  return false;
}

SafetensorsReader SafetensorsReader::Open(const std::string& path) {
  SafetensorsReader r;
  r.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowInvalid("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    ThrowInvalid(path + ": not a regular file");
  }
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < 8) {
    ::close(fd);
    ThrowInvalid(path + ": " + std::to_string(file_bytes) +
                 " bytes is too short for a safetensors file (8-byte header length)");
  }
  void* mapping = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (mapping == MAP_FAILED) ThrowInvalid("cannot map " + path + ": " + std::strerror(map_errno));
  r.mapping_ = mapping;
  r.mapping_bytes_ = file_bytes;
  const uint8_t* bytes = static_cast<const uint8_t*>(mapping);

  uint64_t header_bytes;
  std::memcpy(&header_bytes, bytes, 8);
  if (header_bytes > kMaxHeaderBytes) {
    ThrowInvalid(path + ": header length " + std::to_string(header_bytes) + " exceeds the limit of " +
                 std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file?)");
  }
  if (header_bytes > file_bytes - 8) {
    ThrowInvalid(path + ": header length " + std::to_string(header_bytes) + " runs past the end of the " +
                 std::to_string(file_bytes) + "-byte file (truncated?)");
  }
  const std::string_view header(reinterpret_cast<const char*>(bytes + 8), header_bytes);
  const int64_t data_bytes = static_cast<int64_t>(file_bytes - 8 - header_bytes);
  r.data_ = bytes + 8 + header_bytes;

  const nlohmann::json root = ParseStrictJson(header, path + ": header", kHeaderDepth);
  if (!root.is_object()) ThrowInvalid(path + ": header must be a JSON object, got " + ShortDump(root));
  for (const auto& [name, entry] : root.items()) {
    if (name != "__metadata__") {
      r.tensors_.emplace(name, ParseEntry(path, name, entry, data_bytes));
      continue;
    }
    if (!entry.is_object()) ThrowInvalid(path + ": __metadata__ must be an object, got " + ShortDump(entry));
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string()) {
        ThrowInvalid(path + ": __metadata__[\"" + key + "\"] must be a string, got " + ShortDump(value));
      }
      r.metadata_.emplace(key, value.get<std::string>());
    }
  }
  CheckTiling(path, r.tensors_, data_bytes);
  return r;
}

SafetensorsReader::SafetensorsReader(SafetensorsReader&& other) noexcept { *this = std::move(other); }

SafetensorsReader& SafetensorsReader::operator=(SafetensorsReader&& other) noexcept {
  if (this != &other) {
    Unmap();
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapping_bytes_ = std::exchange(other.mapping_bytes_, 0);
    data_ = std::exchange(other.data_, nullptr);
    tensors_ = std::move(other.tensors_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

SafetensorsReader::~SafetensorsReader() { Unmap(); }

void SafetensorsReader::Unmap() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
  mapping_ = nullptr;
  mapping_bytes_ = 0;
  data_ = nullptr;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors_) names.push_back(name);
  return names;
}

const TensorInfo* SafetensorsReader::Find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void SafetensorsReader::ReadF32(const std::string& name, float* dst, int64_t count) const {
  const TensorInfo* t = Find(name);
  if (t == nullptr) ThrowInvalid(path_ + ": no tensor \"" + name + "\"");
  if (count != t->count) {
    ThrowInvalid(path_ + ": tensor \"" + name + "\" has " + std::to_string(t->count) + " elements, not " +
                 std::to_string(count));
  }
  const uint8_t* src = Bytes(*t);  // may be unaligned: every load goes through memcpy
  switch (t->dtype) {
    case StoredDType::kF32:
      if (count > 0) std::memcpy(dst, src, static_cast<size_t>(count) * 4);
      return;
    case StoredDType::kBF16:
      for (int64_t i = 0; i < count; ++i) dst[i] = BF16ToFloat(LoadU16(src + 2 * i));
      return;
    case StoredDType::kF16:
      for (int64_t i = 0; i < count; ++i) dst[i] = F16ToFloat(LoadU16(src + 2 * i));
      return;
    case StoredDType::kF64:
      for (int64_t i = 0; i < count; ++i) {
        double v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = static_cast<float>(v);
      }
      return;
    default:
      ThrowInvalid(path_ + ": tensor \"" + name + "\" is " + StoredDTypeName(t->dtype) +
                   "; only F32, BF16, F16 and F64 convert to float");
  }
}

}  // namespace swa::model
