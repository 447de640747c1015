// Test-only tool for the Python interop check (safetensors_interop.py).
//   safetensors_tool write PATH   writes, with WriteSafetensors, metadata
//                                 {"format": "pt", "tool": "swa safetensors_tool"} and:
//                                   f32.matrix  F32  [2, 3]  (i - 2.5) * 0.75 for i = 0..5
//                                   bf16.ties   BF16 [6]     1, 1 + 2^-8, 1 + 3 * 2^-8, -2.5,
//                                                            3.14159265, 0.001
//                                   f32.scalar  F32  []      7
//                                   f32.empty   F32  [0, 3]
//   safetensors_tool read PATH    prints "meta KEY VALUE" per metadata entry, then per tensor
//                                 (sorted by name) "tensor NAME DTYPE SHAPE SUM", SHAPE as
//                                 comma-separated extents ("-" for a scalar) and SUM the
//                                 float64 sum, in element order, of the values ReadF32 gives.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace {

using swa::model::StoredDType;

void Write(const std::string& path) {
  std::vector<float> matrix(6);
  for (int i = 0; i < 6; ++i) matrix[i] = (static_cast<float>(i) - 2.5f) * 0.75f;
  const std::vector<float> ties = {1.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.5f, 3.14159265f, 0.001f};
  const float scalar = 7.0f;
  swa::model::WriteSafetensors(path, {{"format", "pt"}, {"tool", "swa safetensors_tool"}},
                               {{"f32.matrix", StoredDType::kF32, {2, 3}, matrix.data()},
                                {"bf16.ties", StoredDType::kBF16, {6}, ties.data()},
                                {"f32.scalar", StoredDType::kF32, {}, &scalar},
                                {"f32.empty", StoredDType::kF32, {0, 3}, nullptr}});
}

void Read(const std::string& path) {
  const auto reader = swa::model::SafetensorsReader::Open(path);
  for (const auto& [key, value] : reader.metadata()) std::printf("meta %s %s\n", key.c_str(), value.c_str());
  for (const std::string& name : reader.names()) {
    const swa::model::TensorInfo* t = reader.Find(name);
    std::vector<float> values(t->count);
    reader.ReadF32(name, values.data(), t->count);
    double sum = 0;
    for (float v : values) sum += v;
    std::string shape;
    for (int64_t e : t->shape) {
      if (!shape.empty()) shape += ',';
      shape += std::to_string(e);
    }
    std::printf("tensor %s %s %s %.17g\n", name.c_str(), swa::model::StoredDTypeName(t->dtype),
                shape.empty() ? "-" : shape.c_str(), sum);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "read")) {
    std::fprintf(stderr, "usage: %s write|read PATH\n", argv[0]);
    return 2;
  }
  try {
    if (std::string(argv[1]) == "write") {
      Write(argv[2]);
    } else {
      Read(argv[2]);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
