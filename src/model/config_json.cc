// ModelConfig <-> JSON (docs/MODEL.md field names).
#include <set>

#include "common/error.h"
#include "model/config.h"
#include "model/strict_json.h"

namespace swa::model {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// The deepest config: root { layers [ { windows [ [left, right] ] } ] }.
constexpr int kConfigDepth = 5;

// Rejects keys of `object` outside `known`, naming the key and where it was found.
void CheckKeys(const Json& object, const std::set<std::string>& known, const std::string& where) {
  for (const auto& [key, value] : object.items()) {
    if (known.count(key)) continue;
    std::string list;
    for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
    ThrowInvalid("unknown key \"" + key + "\" in " + where + " (known keys: " + list + ")");
  }
}

const Json& Required(const Json& object, const std::string& key, const std::string& field) {
  const auto it = object.find(key);
  if (it == object.end()) ThrowInvalid("missing required field " + field);
  return *it;
}

void ReadInt(const Json& object, const std::string& key, const std::string& prefix, int64_t* out) {
  if (const auto it = object.find(key); it != object.end()) *out = JsonInt64(*it, prefix + key);
}
void ReadBool(const Json& object, const std::string& key, const std::string& prefix, bool* out) {
  if (const auto it = object.find(key); it != object.end()) *out = JsonBool(*it, prefix + key);
}
void ReadDouble(const Json& object, const std::string& key, const std::string& prefix, double* out) {
  if (const auto it = object.find(key); it != object.end()) *out = JsonNumber(*it, prefix + key);
}
void ReadFloat(const Json& object, const std::string& key, const std::string& prefix, float* out) {
  if (const auto it = object.find(key); it != object.end()) {
    *out = static_cast<float>(JsonNumber(*it, prefix + key));
  }
}

std::vector<HeadWindow> ParseWindows(const Json& value, const std::string& field) {
  if (!value.is_array()) {
    ThrowInvalid(field + " must be a list of [left, right] pairs, got " + ShortDump(value));
  }
  std::vector<HeadWindow> windows;
  for (size_t h = 0; h < value.size(); ++h) {
    const std::string entry = field + "[" + std::to_string(h) + "]";
    const Json& pair = value[h];
    if (!pair.is_array() || pair.size() != 2) {
      ThrowInvalid(entry + " must be a [left, right] pair, got " + ShortDump(pair));
    }
    windows.push_back(HeadWindow{JsonInt64(pair[0], entry + "[0]"), JsonInt64(pair[1], entry + "[1]")});
  }
  return windows;
}

LayerConfig ParseLayer(const Json& object, const std::string& where) {
  if (!object.is_object()) ThrowInvalid(where + " must be an object, got " + ShortDump(object));
  CheckKeys(object,
            {"windows", "rope_theta", "sink_tokens", "learned_sinks", "attn_logit_softcapping", "alibi",
             "gated_fusion"},
            where);
  const std::string prefix = where + ".";
  LayerConfig layer;
  layer.windows = ParseWindows(Required(object, "windows", prefix + "windows"), prefix + "windows");
  // null, as Python's json.dumps writes None, means "not set": the model's theta applies.
  if (const auto it = object.find("rope_theta"); it != object.end() && !it->is_null()) {
    layer.rope_theta = JsonNumber(*it, prefix + "rope_theta");
  }
  ReadInt(object, "sink_tokens", prefix, &layer.sink_tokens);
  ReadBool(object, "learned_sinks", prefix, &layer.learned_sinks);
  ReadFloat(object, "attn_logit_softcapping", prefix, &layer.attn_logit_softcapping);
  ReadBool(object, "alibi", prefix, &layer.alibi);
  ReadBool(object, "gated_fusion", prefix, &layer.gated_fusion);
  return layer;
}

// A float field as the double it converts to exactly, so that reading it back as double
// and rounding to float gives the same float (a shortest decimal for the float, read as a
// double first, could round twice).
double ExactDouble(float value) { return static_cast<double>(value); }

}  // namespace

ModelConfig ParseConfig(const std::string& json) {
  const Json root = ParseStrictJson(json, "config", kConfigDepth);
  if (!root.is_object()) ThrowInvalid("config must be a JSON object, got " + ShortDump(root));
  CheckKeys(root,
            {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
             "head_dim", "intermediate_size", "rms_norm_eps", "rope_theta", "tie_word_embeddings",
             "final_logit_softcapping", "layers"},
            "config");
  ModelConfig c;
  const auto required_int = [&](const char* key) { return JsonInt64(Required(root, key, key), key); };
  c.vocab_size = required_int("vocab_size");
  c.hidden_size = required_int("hidden_size");
  c.num_hidden_layers = required_int("num_hidden_layers");
  c.num_attention_heads = required_int("num_attention_heads");
  c.num_key_value_heads = required_int("num_key_value_heads");
  c.head_dim = required_int("head_dim");
  c.intermediate_size = required_int("intermediate_size");
  ReadDouble(root, "rms_norm_eps", "", &c.rms_norm_eps);
  ReadDouble(root, "rope_theta", "", &c.rope_theta);
  ReadBool(root, "tie_word_embeddings", "", &c.tie_word_embeddings);
  ReadFloat(root, "final_logit_softcapping", "", &c.final_logit_softcapping);
  const Json& layers = Required(root, "layers", "layers");
  if (!layers.is_array()) ThrowInvalid("layers must be a list of layer objects, got " + ShortDump(layers));
  for (size_t i = 0; i < layers.size(); ++i) {
    c.layers.push_back(ParseLayer(layers[i], "layers[" + std::to_string(i) + "]"));
  }
  ValidateConfig(c);
  return c;
}

std::string ConfigToJson(const ModelConfig& c) {
  OrderedJson root;
  root["vocab_size"] = c.vocab_size;
  root["hidden_size"] = c.hidden_size;
  root["num_hidden_layers"] = c.num_hidden_layers;
  root["num_attention_heads"] = c.num_attention_heads;
  root["num_key_value_heads"] = c.num_key_value_heads;
  root["head_dim"] = c.head_dim;
  root["intermediate_size"] = c.intermediate_size;
  root["rms_norm_eps"] = c.rms_norm_eps;
  root["rope_theta"] = c.rope_theta;
  root["tie_word_embeddings"] = c.tie_word_embeddings;
  root["final_logit_softcapping"] = ExactDouble(c.final_logit_softcapping);
  OrderedJson layers = OrderedJson::array();
  for (const LayerConfig& layer : c.layers) {
    OrderedJson l;
    OrderedJson windows = OrderedJson::array();
    for (const HeadWindow& w : layer.windows) windows.push_back(OrderedJson::array({w.left, w.right}));
    l["windows"] = std::move(windows);
    if (layer.rope_theta) l["rope_theta"] = *layer.rope_theta;
    l["sink_tokens"] = layer.sink_tokens;
    l["learned_sinks"] = layer.learned_sinks;
    l["attn_logit_softcapping"] = ExactDouble(layer.attn_logit_softcapping);
    l["alibi"] = layer.alibi;
    l["gated_fusion"] = layer.gated_fusion;
    layers.push_back(std::move(l));
  }
  root["layers"] = std::move(layers);
  return root.dump();
}

}  // namespace swa::model
