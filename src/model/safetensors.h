// The safetensors file format (https://github.com/huggingface/safetensors):
//   8 bytes    N, little-endian uint64
//   N bytes    JSON object {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//              "__metadata__": {string: string}}, padded with spaces
//   the rest   the data region; a tensor's bytes are [begin, end) of it, row-major,
//              little-endian
// The reader maps the file and checks all of it before handing anything out, so that a
// truncated or corrupt file is an error naming the file, never a crash or a read past the
// end. The writer replaces its target atomically.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace swa::model {

// The format's dtypes (names as in the header).
enum class StoredDType {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kI64,
  kU64,
  kF64
};

const char* StoredDTypeName(StoredDType dtype);
int64_t StoredDTypeSize(StoredDType dtype);  // bytes per element
// Parses a header dtype name ("F32"); false when it is not one of the format's dtypes.
bool ParseStoredDType(const std::string& name, StoredDType* dtype);

// Largest header accepted (the reference implementation's limit).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  StoredDType dtype = StoredDType::kF32;
  std::vector<int64_t> shape;
  int64_t count = 0;           // elements: product of shape
  int64_t begin = 0, end = 0;  // bytes [begin, end) of the data region
};

class SafetensorsReader {
 public:
  // Maps `path` read-only and validates it: N within the file and at most
  // kMaxHeaderBytes, a JSON object header without duplicate keys, every entry with a known
  // dtype, a shape of non-negative integers whose element count times the dtype size is
  // end - begin (no overflow), and tensors that tile the data region exactly, in some
  // order, from 0 to its end (as the reference implementation requires: no overlap, no
  // gap, nothing after the last); __metadata__ an object of strings.
  static SafetensorsReader Open(const std::string& path);

  SafetensorsReader(SafetensorsReader&& other) noexcept;
  SafetensorsReader& operator=(SafetensorsReader&& other) noexcept;
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;
  ~SafetensorsReader();

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> names() const;                 // sorted
  const TensorInfo* Find(const std::string& name) const;  // nullptr when absent
  // The tensor's stored bytes (end - begin of them), little-endian, possibly unaligned.
  const uint8_t* Bytes(const TensorInfo& tensor) const { return data_ + tensor.begin; }

  // Converts tensor `name` to float32 into dst ([count], count == the tensor's elements):
  // F32, BF16 and F16 exactly, F64 rounded to nearest. Other dtypes are an error.
  void ReadF32(const std::string& name, float* dst, int64_t count) const;

 private:
  SafetensorsReader() = default;
  void Unmap();

  std::string path_;
  void* mapping_ = nullptr;  // the whole file
  uint64_t mapping_bytes_ = 0;
  const uint8_t* data_ = nullptr;  // the data region, inside mapping_
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  StoredDType dtype = StoredDType::kF32;  // kF32, or kBF16 (rounded to nearest even)
  std::vector<int64_t> shape;
  const float* data = nullptr;  // [product of shape], row-major
};

// Writes a safetensors file: tensors in the given order, metadata under "__metadata__"
// (omitted when empty), the header padded with spaces so that the data region starts at a
// multiple of 8 bytes. Atomic: the bytes go to a temporary file in path's directory, which
// is fsynced and renamed over `path`, and then the directory is fsynced. On any failure the
// temporary file is removed, a file already at `path` is left as it was, and the error
// names `path`.
void WriteSafetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                      const std::vector<TensorToWrite>& tensors);

}  // namespace swa::model
