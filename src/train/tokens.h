// The byte-level vocabulary (bytes 0..255, then BOS, EOS, PAD), as the model defines it.
#pragma once

#include "model/config.h"

namespace swa::train {

using model::kBos;  // begins every document
using model::kEos;  // ends every document
using model::kPad;  // fills; as a target it means "nothing is predicted here"

}  // namespace swa::train
