// Model checkpoints: the parameters of ParameterLayout as safetensors tensors under their
// Hugging Face names, the config as JSON in the metadata. A checkpoint with one window
// for every head and no gates or sinks loads unchanged into MistralForCausalLM.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"

namespace swa::model {

// Writes every tensor of ParameterLayout(config), taken from `params` (the flat buffer,
// [LayoutFloats(config)]), stored as `dtype` (kF32, or kBF16 rounded to nearest even),
// with metadata {"format": "pt", "config": ConfigToJson(config)}; Hugging Face's loader
// rejects files without "format". Atomic, as WriteSafetensors.
void SaveCheckpoint(const std::string& path, const ModelConfig& config, const float* params,
                    StoredDType dtype);

struct Checkpoint {
  ModelConfig config;
  std::vector<float> params;  // [LayoutFloats(config)], padding zero
};

// Reads a checkpoint written by SaveCheckpoint or by any safetensors writer that follows
// the same names: the config from __metadata__["config"], then every tensor of its
// layout, which must be present with exactly its shape (stored as F32, BF16, F16 or F64).
// A missing or invalid config, a missing tensor, a wrong shape or an extra tensor is an
// error naming the file and the tensor.
Checkpoint LoadCheckpoint(const std::string& path);

}  // namespace swa::model
