#include "train/train_state.h"

#include <charconv>
#include <cstdio>
#include <set>

#include "common/dtype.h"
#include "common/error.h"
#include "model/param_layout.h"

namespace swa::train {
namespace {

constexpr char kMomentPrefix1[] = "adam.m.";
constexpr char kMomentPrefix2[] = "adam.v.";
constexpr char kMasterPrefix[] = "master.";

std::string Hex64(uint64_t x) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(x));
  return text;
}

const std::string& Field(const model::SafetensorsReader& reader, const std::string& key) {
  const auto it = reader.metadata().find(key);
  if (it == reader.metadata().end())
    ThrowInvalid(reader.path() + ": training state has no \"" + key + "\" field");
  return it->second;
}

template <class Int>
Int ParseNumber(const model::SafetensorsReader& reader, const std::string& key, int base) {
  const std::string& text = Field(reader, key);
  Int x{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x, base);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || x < Int{0}) {
    ThrowInvalid(reader.path() + ": training state field \"" + key + "\" is not a valid number: '" + text +
                 "'");
  }
  return x;
}

// Hashes the moments and master weights of every tensor, in layout order.
uint64_t StateTensorHash(const std::vector<model::ParamInfo>& layout, const float* m, const float* v,
                         const float* master) {
  uint64_t hash = kValuesHashSeed;
  for (const float* buffer : {m, v, master}) {
    if (buffer == nullptr) continue;
    for (const model::ParamInfo& p : layout) hash = ValuesHash(buffer + p.offset, p.count, hash);
  }
  return hash;
}

}  // namespace

uint64_t ValuesHash(const float* values, int64_t count, uint64_t hash) {
  for (int64_t i = 0; i < count; ++i) hash = (hash ^ FloatBits(values[i])) * 0x100000001b3ull;
  return hash;
}

uint64_t StoredWeightsHash(const model::ModelConfig& config, const float* params, model::StoredDType dtype) {
  if (dtype != model::StoredDType::kF32 && dtype != model::StoredDType::kBF16) {
    ThrowInvalid(std::string("checkpoints are stored as F32 or BF16, not ") + model::StoredDTypeName(dtype));
  }
  uint64_t hash = kValuesHashSeed;
  std::vector<float> rounded;
  for (const model::ParamInfo& p : model::ParameterLayout(config)) {
    const float* w = params + p.offset;  // [p.count]
    if (dtype == model::StoredDType::kBF16) {
      rounded.resize(static_cast<size_t>(p.count));
      for (int64_t i = 0; i < p.count; ++i) rounded[i] = BF16ToFloat(FloatToBF16(w[i]));
      w = rounded.data();
    }
    hash = ValuesHash(w, p.count, hash);
  }
  return hash;
}

void SaveTrainState(const std::string& path, const model::ModelConfig& config, const TrainStateInfo& info,
                    const float* m, const float* v, const float* master) {
  if (m == nullptr || v == nullptr) ThrowInvalid("cannot write " + path + ": the moments are null");
  const std::vector<model::ParamInfo> layout = model::ParameterLayout(config);
  std::vector<model::TensorToWrite> tensors;
  for (const model::ParamInfo& p : layout) {
    tensors.push_back({kMomentPrefix1 + p.name, model::StoredDType::kF32, p.shape, m + p.offset});
    tensors.push_back({kMomentPrefix2 + p.name, model::StoredDType::kF32, p.shape, v + p.offset});
    if (master != nullptr)
      tensors.push_back({kMasterPrefix + p.name, model::StoredDType::kF32, p.shape, master + p.offset});
  }
  const std::map<std::string, std::string> metadata = {
      {"format", kTrainStateFormat},
      {"step", std::to_string(info.step)},
      {"batcher", info.batcher.ToString()},
      {"config", model::ConfigToJson(config)},
      {"options", info.options_json},
      {"data", info.data_json},
      {"model_hash", Hex64(info.model_hash)},
      {"tensor_hash", Hex64(StateTensorHash(layout, m, v, master))},
      {"log_bytes", std::to_string(info.log_bytes)},
      {"threads", std::to_string(info.threads)},
  };
  model::WriteSafetensors(path, metadata, tensors);
}

TrainState LoadTrainState(const std::string& path) {
  const model::SafetensorsReader reader = model::SafetensorsReader::Open(path);
  if (Field(reader, "format") != kTrainStateFormat) {
    ThrowInvalid(path + ": format \"" + Field(reader, "format") + "\" is not " + kTrainStateFormat);
  }
  TrainState state;
  try {
    state.config = model::ParseConfig(Field(reader, "config"));
  } catch (const Error& e) {
    ThrowInvalid(path + ": invalid model config in the training state: " + e.what());
  }
  TrainStateInfo& info = state.info;
  info.step = ParseNumber<int64_t>(reader, "step", 10);
  try {
    info.batcher = BatcherState::FromString(Field(reader, "batcher"));
  } catch (const Error& e) {
    ThrowInvalid(path + ": " + e.what());
  }
  info.options_json = Field(reader, "options");
  info.data_json = Field(reader, "data");
  info.model_hash = ParseNumber<uint64_t>(reader, "model_hash", 16);
  const uint64_t tensor_hash = ParseNumber<uint64_t>(reader, "tensor_hash", 16);
  info.log_bytes = ParseNumber<int64_t>(reader, "log_bytes", 10);
  info.threads = ParseNumber<int>(reader, "threads", 10);

  // Every tensor of the layout, each with its shape; the masters all or none.
  const std::vector<model::ParamInfo> layout = model::ParameterLayout(state.config);
  const bool has_master = reader.Find(kMasterPrefix + layout.front().name) != nullptr;
  std::set<std::string> expected;
  for (const model::ParamInfo& p : layout) {
    for (const std::string prefix : {kMomentPrefix1, kMomentPrefix2, has_master ? kMasterPrefix : ""}) {
      if (prefix.empty()) continue;
      const std::string name = prefix + p.name;
      expected.insert(name);
      const model::TensorInfo* t = reader.Find(name);
      if (t == nullptr) ThrowInvalid(path + ": training state lacks tensor \"" + name + "\"");
      if (t->shape != p.shape)
        ThrowInvalid(path + ": tensor \"" + name + "\" has the wrong shape for the config");
    }
  }
  for (const std::string& name : reader.names()) {
    if (!expected.count(name))
      ThrowInvalid(path + ": unexpected tensor \"" + name + "\" in the training state");
  }
  const size_t floats = static_cast<size_t>(model::LayoutFloats(state.config));
  state.m.assign(floats, 0.0f);
  state.v.assign(floats, 0.0f);
  if (has_master) state.master.assign(floats, 0.0f);
  for (const model::ParamInfo& p : layout) {
    reader.ReadF32(kMomentPrefix1 + p.name, state.m.data() + p.offset, p.count);
    reader.ReadF32(kMomentPrefix2 + p.name, state.v.data() + p.offset, p.count);
    if (has_master) reader.ReadF32(kMasterPrefix + p.name, state.master.data() + p.offset, p.count);
  }
  const uint64_t actual =
      StateTensorHash(layout, state.m.data(), state.v.data(), has_master ? state.master.data() : nullptr);
  if (actual != tensor_hash) {
    ThrowInvalid(path + ": the tensors do not match their recorded hash (tensor_hash " + Hex64(tensor_hash) +
                 ", the data gives " + Hex64(actual) + "): the file is corrupt");
  }
  return state;
}

}  // namespace swa::train
