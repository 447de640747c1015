// Validation of a ModelConfig, and the quantities derived from a layer's windows.
#include "model/config.h"

#include <charconv>
#include <cmath>
#include <map>
#include <utility>

#include "common/error.h"

namespace swa::model {
namespace {

// Shortest text that reads back as `value` (1e-05, 10000, 0.5).
std::string Num(double value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}
std::string Num(float value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

void CheckSize(const char* field, int64_t value, int64_t max) {
  if (value < 1 || value > max) {
    ThrowInvalid(std::string(field) + " (" + std::to_string(value) + ") must be in [1, " +
                 std::to_string(max) + "]");
  }
}

void CheckTheta(const std::string& field, double theta) {
  if (!std::isfinite(theta) || !(theta > 1)) {
    ThrowInvalid(field + " (" + Num(theta) + ") must be finite and > 1 (the RoPE frequency base)");
  }
}

void CheckSoftcap(const std::string& field, float cap) {
  if (!std::isfinite(cap) || !(cap >= 0)) {
    ThrowInvalid(field + " (" + Num(cap) + ") must be finite and >= 0 (0 = no softcapping)");
  }
}

void ValidateLayer(const ModelConfig& c, int64_t i) {
  const LayerConfig& layer = c.layers[i];
  const std::string where = "layers[" + std::to_string(i) + "]";
  if (static_cast<int64_t>(layer.windows.size()) != c.num_attention_heads) {
    ThrowInvalid(where + ".windows has " + std::to_string(layer.windows.size()) +
                 " entries but num_attention_heads is " + std::to_string(c.num_attention_heads));
  }
  for (size_t h = 0; h < layer.windows.size(); ++h) {
    const HeadWindow& w = layer.windows[h];
    if (w.left < -1 || w.right < -1) {
      ThrowInvalid(where + ".windows[" + std::to_string(h) + "] = [" + std::to_string(w.left) + ", " +
                   std::to_string(w.right) + "]: entries must be >= -1 (-1 = unbounded)");
    }
  }
  if (layer.rope_theta) CheckTheta(where + ".rope_theta", *layer.rope_theta);
  if (layer.sink_tokens < 0) {
    ThrowInvalid(where + ".sink_tokens (" + std::to_string(layer.sink_tokens) + ") must be >= 0");
  }
  CheckSoftcap(where + ".attn_logit_softcapping", layer.attn_logit_softcapping);
  // Rotate-half RoPE pairs element i with i + D/2.
  if (UsesRope(layer) && c.head_dim % 2 != 0) {
    ThrowInvalid("head_dim (" + std::to_string(c.head_dim) + ") must be even for RoPE (layer " +
                 std::to_string(i) + " uses RoPE)");
  }
}

}  // namespace

void ValidateConfig(const ModelConfig& c) {
  if (c.vocab_size < kMinVocab || c.vocab_size > kMaxVocab) {
    ThrowInvalid("vocab_size (" + std::to_string(c.vocab_size) + ") must be in [" +
                 std::to_string(kMinVocab) + ", " + std::to_string(kMaxVocab) +
                 "] (bytes 0..255, BOS 256, EOS 257, PAD 258)");
  }
  CheckSize("hidden_size", c.hidden_size, kMaxHidden);
  CheckSize("num_hidden_layers", c.num_hidden_layers, kMaxLayers);
  CheckSize("num_attention_heads", c.num_attention_heads, kMaxHeads);
  CheckSize("num_key_value_heads", c.num_key_value_heads, kMaxHeads);
  CheckSize("head_dim", c.head_dim, kMaxHeadDim);
  CheckSize("intermediate_size", c.intermediate_size, kMaxIntermediate);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    ThrowInvalid("num_attention_heads (" + std::to_string(c.num_attention_heads) +
                 ") must be divisible by num_key_value_heads (" + std::to_string(c.num_key_value_heads) +
                 ")");
  }
  if (!std::isfinite(c.rms_norm_eps) || !(c.rms_norm_eps > 0)) {
    ThrowInvalid("rms_norm_eps (" + Num(c.rms_norm_eps) + ") must be finite and > 0");
  }
  CheckTheta("rope_theta", c.rope_theta);
  CheckSoftcap("final_logit_softcapping", c.final_logit_softcapping);
  if (static_cast<int64_t>(c.layers.size()) != c.num_hidden_layers) {
    ThrowInvalid("layers has " + std::to_string(c.layers.size()) + " entries but num_hidden_layers is " +
                 std::to_string(c.num_hidden_layers));
  }
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) ValidateLayer(c, i);
}

std::vector<int> GateGroups(const LayerConfig& layer, int* num_groups) {
  std::map<std::pair<int64_t, int64_t>, int> group_of_window;
  std::vector<int> groups;
  groups.reserve(layer.windows.size());
  for (const HeadWindow& w : layer.windows) {
    // A window seen first gets the next number, so groups are ordered by first head.
    const int next = static_cast<int>(group_of_window.size());
    groups.push_back(group_of_window.try_emplace({w.left, w.right}, next).first->second);
  }
  if (num_groups != nullptr) *num_groups = static_cast<int>(group_of_window.size());
  return groups;
}

float AlibiSlope(int64_t h, int64_t hq) {
  return static_cast<float>(std::exp2(-8.0 * static_cast<double>(h + 1) / static_cast<double>(hq)));
}

}  // namespace swa::model
