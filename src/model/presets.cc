#include "model/presets.h"

#include <algorithm>

#include "common/error.h"

namespace swa::model {
namespace {

constexpr HeadWindow kGlobal{-1, 0};

HeadWindow Local(int64_t window) { return HeadWindow{window - 1, 0}; }

LayerConfig SameWindow(int64_t heads, HeadWindow w) {
  LayerConfig layer;
  layer.windows.assign(heads, w);
  return layer;
}

LayerConfig MixedLayer(const PresetSize& s) {
  if (s.heads < 3) {
    ThrowInvalid("preset mixed_gated needs at least 3 heads (narrow, wide and global), got " +
                 std::to_string(s.heads));
  }
  const int64_t third = s.heads / 3;
  LayerConfig layer;
  for (int64_t h = 0; h < s.heads; ++h) {
    if (h < third) {
      layer.windows.push_back(Local(std::max<int64_t>(1, s.window / 4)));
    } else if (h < 2 * third) {
      layer.windows.push_back(Local(s.window));
    } else {
      layer.windows.push_back(kGlobal);
    }
  }
  layer.gated_fusion = true;
  return layer;
}

LayerConfig PresetLayer(const std::string& name, const PresetSize& s, int64_t i) {
  if (name == "full") return SameWindow(s.heads, kGlobal);
  if (name == "uniform") return SameWindow(s.heads, Local(s.window));
  if (name == "local_global") {
    const bool global = i % 6 == 5 || (s.layers < 6 && i == s.layers - 1);
    return SameWindow(s.heads, global ? kGlobal : Local(s.window));
  }
  if (name == "banded_sinks") {
    LayerConfig layer = SameWindow(s.heads, i % 2 == 0 ? Local(s.window) : kGlobal);
    layer.learned_sinks = true;
    return layer;
  }
  return MixedLayer(s);
}

}  // namespace

PresetSize PresetSize::Tiny() {
  PresetSize s;
  s.hidden = 32;
  s.layers = 3;
  s.heads = 6;
  s.kv_heads = 2;
  s.head_dim = 8;
  s.intermediate = 64;
  s.window = 8;
  return s;
}

PresetSize PresetSize::Small() {
  PresetSize s;
  s.hidden = 192;
  s.layers = 4;
  s.heads = 6;
  s.kv_heads = 2;
  s.head_dim = 32;
  s.intermediate = 512;
  s.window = 64;
  return s;
}

PresetSize PresetSize::Named(const std::string& name) {
  if (name == "default" || name.empty()) return PresetSize();
  if (name == "small") return Small();
  if (name == "tiny") return Tiny();
  ThrowInvalid("unknown preset size \"" + name + "\" (known sizes: default, small, tiny)");
}

std::vector<std::string> PresetNames() {
  return {"full", "uniform", "local_global", "banded_sinks", "mixed_gated"};
}

ModelConfig Preset(const std::string& name, const PresetSize& s) {
  const std::vector<std::string> names = PresetNames();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    ThrowInvalid("unknown preset \"" + name + "\" (known presets: " + list + ")");
  }
  if (s.window < 1) ThrowInvalid("preset window (" + std::to_string(s.window) + ") must be >= 1");
  if (s.layers < 1 || s.layers > kMaxLayers) {
    ThrowInvalid("preset layers (" + std::to_string(s.layers) + ") must be in [1, " +
                 std::to_string(kMaxLayers) + "]");
  }
  if (s.heads < 1 || s.heads > kMaxHeads) {
    ThrowInvalid("preset heads (" + std::to_string(s.heads) + ") must be in [1, " +
                 std::to_string(kMaxHeads) + "]");
  }
  ModelConfig c;
  c.vocab_size = kMinVocab;
  c.hidden_size = s.hidden;
  c.num_hidden_layers = s.layers;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.intermediate_size = s.intermediate;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;
  for (int64_t i = 0; i < s.layers; ++i) c.layers.push_back(PresetLayer(name, s, i));
  ValidateConfig(c);
  return c;
}

}  // namespace swa::model
