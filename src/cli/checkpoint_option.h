// The --ckpt option of the commands that run a trained model (eval, generate, serve,
// bench generate): the checkpoint, or an error that names the option.
#pragma once

#include <string>

#include "common/error.h"
#include "model/checkpoint.h"

namespace swa::cli {

inline model::Checkpoint LoadCheckpointOption(const std::string& path) {
  try {
    return model::LoadCheckpoint(path);
  } catch (const Error& e) {
    ThrowInvalid(std::string("--ckpt: ") + e.what());
  }
}

}  // namespace swa::cli
