// Named model configurations of the same size that differ only in their attention
// windows, so that training runs compare window patterns and nothing else.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace swa::model {

// The shape shared by every preset. The default has about 9.5M parameters (hidden 384,
// 6 layers of 6 heads of 64 over 2 kv heads, SwiGLU 1024, windows of 256 tokens).
struct PresetSize {
  int64_t hidden = 384;
  int64_t layers = 6;
  int64_t heads = 6;
  int64_t kv_heads = 2;
  int64_t head_dim = 64;
  int64_t intermediate = 1024;
  int64_t window = 256;  // tokens a local head sees, its own included

  // A few thousand parameters, for tests: 3 layers, 6 heads of 8, window 8.
  static PresetSize Tiny();
  // About 1.6M parameters, for the main job's minutes-long comparisons: hidden 192, 4
  // layers of 6 heads of 32 over 2 kv heads, SwiGLU 512, windows of 64 tokens.
  static PresetSize Small();
  // "default", "small" or "tiny"; throws swa::Error for another name.
  static PresetSize Named(const std::string& name);
};

// Presets (every one: vocab_size 259, tied embeddings, rope_theta 10000, RoPE in every layer):
//   "full"          every head global causal [-1, 0]: the full-attention twin of the others.
//   "uniform"       every head [window-1, 0] (Mistral).
//   "local_global"  layer i is global when i % 6 == 5, local [window-1, 0] otherwise: five
//                   local layers to one global (Gemma 2/3); with fewer than 6 layers the
//                   last layer is global, so there is always at least one.
//   "banded_sinks"  even layers banded [window-1, 0], odd layers global, learned sinks in
//                   every layer (gpt-oss).
//   "mixed_gated"   in every layer, heads [0, H/3) narrow [window/4-1, 0], heads
//                   [H/3, 2H/3) wide [window-1, 0], the rest global [-1, 0] (H/3 rounded
//                   down, window/4 at least 1), with gated fusion; needs H >= 3.
// Throws swa::Error for an unknown name (listing the known ones) or a size that does not
// make a valid config.
ModelConfig Preset(const std::string& name, const PresetSize& size = PresetSize());
std::vector<std::string> PresetNames();

}  // namespace swa::model
