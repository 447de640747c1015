// The model's configuration (docs/MODEL.md): a decoder-only byte transformer whose
// layers each give every query head its own attention window. Stored as JSON in a
// checkpoint's __metadata__["config"]; the JSON field names are those of section 5.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace swa::model {

// Tokens: the 256 byte values, then three specials; vocab_size may round up past kMinVocab.
constexpr int32_t kBos = 256;
constexpr int32_t kEos = 257;
constexpr int32_t kPad = 258;
constexpr int64_t kMinVocab = 259;

// One query head's window in the convention of docs/ATTENTION.md: key j is visible to
// the query at position p when p - left <= j <= p + right, -1 meaning unbounded. Every
// layer is causal, so [-1, 0] is a global head and [W-1, 0] a window of W tokens.
struct HeadWindow {
  int64_t left = -1, right = 0;
  bool operator==(const HeadWindow&) const = default;
};

struct LayerConfig {
  std::vector<HeadWindow> windows;   // [num_attention_heads]
  std::optional<double> rope_theta;  // overrides ModelConfig::rope_theta in this layer
  int64_t sink_tokens = 0;           // keys j < sink_tokens are always visible
  bool learned_sinks = false;        // per-head sink logit (tensor self_attn.sinks)
  float attn_logit_softcapping = 0;  // 0 = none
  bool alibi = false;                // ALiBi biases instead of RoPE in this layer
  bool gated_fusion = false;         // per-window-group output gates (self_attn.gate)
  bool operator==(const LayerConfig&) const = default;
};

struct ModelConfig {
  int64_t vocab_size = 0;   // V
  int64_t hidden_size = 0;  // d
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;  // Hq
  int64_t num_key_value_heads = 0;  // Hkv
  int64_t head_dim = 0;             // D
  int64_t intermediate_size = 0;    // F
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  float final_logit_softcapping = 0;  // 0 = none
  std::vector<LayerConfig> layers;    // [num_hidden_layers]
  bool operator==(const ModelConfig&) const = default;
};

// Largest accepted sizes. They keep every product the model forms (the parameter count,
// its bytes, Hq * D * d per projection) far inside int64; head_dim is capped at the
// attention kernels' limit.
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxHidden = int64_t{1} << 16;
constexpr int64_t kMaxLayers = int64_t{1} << 12;
constexpr int64_t kMaxHeads = int64_t{1} << 12;
constexpr int64_t kMaxHeadDim = 256;
constexpr int64_t kMaxIntermediate = int64_t{1} << 18;

// Parses and validates a config. Absent optional fields take Llama/Mistral's defaults
// (rms_norm_eps 1e-5, rope_theta 10000, untied, no softcapping; per layer: no sinks, no
// softcap, RoPE, no gates; a layer's rope_theta may also be null); the shape fields and
// each layer's windows are required. An
// unknown key is an error, so a misspelt field never silently becomes a default.
ModelConfig ParseConfig(const std::string& json);

// The config as compact JSON, keys in the order of docs/MODEL.md and every field
// written out (a layer's rope_theta only when set), so that
// ParseConfig(ConfigToJson(c)) == c and ConfigToJson(ParseConfig(ConfigToJson(c))) is
// the same string.
std::string ConfigToJson(const ModelConfig& config);

// Throws swa::Error naming the first bad field and why.
void ValidateConfig(const ModelConfig& config);

// True when the layer applies RoPE (every layer without ALiBi).
inline bool UsesRope(const LayerConfig& layer) { return !layer.alibi; }

// The layer's RoPE base: its own rope_theta, else the model's.
inline double LayerRopeTheta(const ModelConfig& config, const LayerConfig& layer) {
  return layer.rope_theta.value_or(config.rope_theta);
}

// Gated fusion's groups: heads with the same [left, right] share a gate. Returns the group
// of every head ([num heads]); groups are numbered 0, 1, ... in the order of their first
// head. Writes the number of groups G to *num_groups when it is not null.
std::vector<int> GateGroups(const LayerConfig& layer, int* num_groups);

// ALiBi slope of query head h of hq: 2^(-8 (h + 1) / hq).
float AlibiSlope(int64_t h, int64_t hq);

}  // namespace swa::model
