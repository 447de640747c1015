#include "model/checkpoint.h"

#include <set>

#include "common/error.h"
#include "model/param_layout.h"

namespace swa::model {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

}  // namespace

void SaveCheckpoint(const std::string& path, const ModelConfig& config, const float* params,
                    StoredDType dtype) {
  if (dtype != StoredDType::kF32 && dtype != StoredDType::kBF16) {
    ThrowInvalid("cannot write " + path + ": checkpoints are stored as F32 or BF16, not " +
                 StoredDTypeName(dtype));
  }
  if (params == nullptr) ThrowInvalid("cannot write " + path + ": params is null");
  std::vector<TensorToWrite> tensors;
  for (const ParamInfo& p : ParameterLayout(config)) {
    tensors.push_back(TensorToWrite{p.name, dtype, p.shape, params + p.offset});
  }
  WriteSafetensors(path, {{"format", "pt"}, {"config", ConfigToJson(config)}}, tensors);
}

Checkpoint LoadCheckpoint(const std::string& path) {
  const SafetensorsReader reader = SafetensorsReader::Open(path);
  const auto config_it = reader.metadata().find("config");
  if (config_it == reader.metadata().end()) {
    ThrowInvalid(path + ": no model config (__metadata__[\"config\"] is missing): not a swa checkpoint?");
  }
  Checkpoint ckpt;
  try {
    ckpt.config = ParseConfig(config_it->second);
  } catch (const Error& e) {
    ThrowInvalid(path + ": invalid model config in __metadata__[\"config\"]: " + e.what());
  }
  // Every tensor is checked before the buffer is allocated, so that a config claiming a
  // huge model cannot allocate more than the file holds.
  const std::vector<ParamInfo> layout = ParameterLayout(ckpt.config);
  std::set<std::string> expected;
  for (const ParamInfo& p : layout) {
    expected.insert(p.name);
    const TensorInfo* t = reader.Find(p.name);
    if (t == nullptr) {
      ThrowInvalid(path + ": missing tensor \"" + p.name + "\" (shape " + ShapeText(p.shape) + ")");
    }
    if (t->shape != p.shape) {
      ThrowInvalid(path + ": tensor \"" + p.name + "\" has shape " + ShapeText(t->shape) +
                   ", the config needs " + ShapeText(p.shape));
    }
  }
  for (const std::string& name : reader.names()) {
    if (!expected.count(name)) {
      ThrowInvalid(path + ": unexpected tensor \"" + name + "\" (not in the config's layout)");
    }
  }
  ckpt.params.assign(LayoutFloats(ckpt.config), 0.0f);
  for (const ParamInfo& p : layout) reader.ReadF32(p.name, ckpt.params.data() + p.offset, p.count);
  return ckpt;
}

}  // namespace swa::model
