#include "generate/decoder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"
#include "model/backend.h"
#include "model/row_chunks.h"
#include "ops/layer_math.h"

namespace swa::generate {
namespace {

using B = model::Backend<float>;

void Resize(std::vector<float>* v, int64_t n) { v->resize(static_cast<size_t>(n)); }

std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace

Decoder::Decoder(model::ModelConfig config, std::vector<float> params, const DecoderOptions& options)
    : config_(std::move(config)), params_(std::move(params)), options_(options) {
  model::ValidateConfig(config_);
  if (options_.chunk < 1 || options_.chunk > kMaxChunk) {
    ThrowInvalid("chunk (prefill tokens per piece) must be in [1, " + Str(kMaxChunk) + "], got " +
                 Str(options_.chunk));
  }
  if (options_.threads < 0)
    ThrowInvalid("threads must be >= 0 (0 = all cores), got " + Str(options_.threads));
  StreamingOptions& s = options_.streaming;
  if (s.sinks < -1) ThrowInvalid("stream sinks must be >= 0 (or -1 = off), got " + Str(s.sinks));
  if (s.enabled()) {
    if (s.window == 0) s.window = DefaultStreamWindow(config_);
    if (s.window < 1 || s.window > (int64_t{1} << 30)) {
      ThrowInvalid("stream window must be in [1, 2^30], got " + Str(s.window));
    }
  } else if (s.window != 0) {
    ThrowInvalid("a stream window needs stream sinks (StreamingLLM is off)");
  }
  if (s.context < 0 || s.context > (int64_t{1} << 30)) {
    ThrowInvalid("the evaluation context must be in [1, 2^30] (0 = none), got " + Str(s.context));
  }
  if (s.context > 0 && s.enabled()) ThrowInvalid("an evaluation context does not combine with stream sinks");
  layout_ = model::ParameterLayout(config_);
  const int64_t floats = model::LayoutFloats(config_);
  if (static_cast<int64_t>(params_.size()) != floats) {
    ThrowInvalid("the parameters hold " + Str(static_cast<int64_t>(params_.size())) +
                 " floats but the config's layout needs " + Str(floats));
  }
  weights_ = model::ViewTensors(config_, layout_, static_cast<const float*>(params_.data()));
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    const model::LayerConfig& layer = config_.layers[i];
    int groups = 0;
    group_of_head_.push_back(layer.gated_fusion ? model::GateGroups(layer, &groups) : std::vector<int>());
    gate_groups_.push_back(groups);
    caches_.push_back(std::make_unique<LayerCache>(config_, layer, weights_.layers[i].sinks, options_.chunk,
                                                   options_.threads, options_.streaming));
  }
  const int64_t n = options_.chunk, d = config_.hidden_size, f = config_.intermediate_size;
  const int64_t hqd = config_.num_attention_heads * config_.head_dim;
  const int64_t hkvd = config_.num_key_value_heads * config_.head_dim;
  int64_t most_groups = 0;
  for (int64_t g : gate_groups_) most_groups = std::max(most_groups, g);
  Resize(&ws_.x, n * d);
  Resize(&ws_.h, n * d);
  Resize(&ws_.rstd, n);
  Resize(&ws_.q, n * hqd);
  Resize(&ws_.k, n * hkvd);
  Resize(&ws_.v, n * hkvd);
  Resize(&ws_.attn, n * hqd);
  Resize(&ws_.gated, most_groups > 0 ? n * hqd : 0);
  Resize(&ws_.gate, n * most_groups);
  Resize(&ws_.mlp_gate, n * f);
  Resize(&ws_.up, n * f);
  Resize(&ws_.m, n * f);
  Resize(&ws_.logits, n * config_.vocab_size);
}

void Decoder::CheckTokens(std::span<const int32_t> tokens) const {
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size) {
      ThrowInvalid("token " + Str(tokens[t]) + " at " + Str(static_cast<int64_t>(t)) +
                   " is outside the vocabulary [0, " + Str(config_.vocab_size) + ")");
    }
  }
}

void Decoder::Prefill(std::span<const int32_t> tokens, float* logits) {
  CheckTokens(tokens);
  const int64_t total = static_cast<int64_t>(tokens.size()), v = config_.vocab_size;
  for (int64_t b = 0; b < total; b += options_.chunk) {
    const int64_t n = std::min(options_.chunk, total - b);
    Forward(tokens.data() + b, n, logits != nullptr ? n : 0, logits != nullptr ? logits + b * v : nullptr);
  }
}

std::span<const float> Decoder::PrefillLast(std::span<const int32_t> tokens) {
  if (tokens.empty()) ThrowInvalid("PrefillLast needs at least one token");
  CheckTokens(tokens);
  const int64_t total = static_cast<int64_t>(tokens.size());
  for (int64_t b = 0; b < total; b += options_.chunk) {
    const int64_t n = std::min(options_.chunk, total - b);
    const bool last = b + n == total;
    Forward(tokens.data() + b, n, last ? 1 : 0, last ? ws_.logits.data() : nullptr);
  }
  return std::span<const float>(ws_.logits.data(), static_cast<size_t>(config_.vocab_size));
}

void Decoder::Forward(const int32_t* tokens, int64_t n, int64_t rows, float* logits) {
  const int64_t d = config_.hidden_size, v = config_.vocab_size;
  // x [n, d] = embed_tokens[t]
  for (int64_t t = 0; t < n; ++t) std::copy_n(weights_.embed + tokens[t] * d, d, ws_.x.data() + t * d);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) Layer(i, n);
  position_ += n;
  if (rows == 0) return;
  // xf [rows, d] = rmsnorm(x, model.norm) of the last rows; logits [rows, V] = xf lm_head^T
  const float* x = ws_.x.data() + (n - rows) * d;
  model::ForRowChunks(rows, pool_, options_.threads, [&](int64_t, int64_t b, int64_t e) {
    B::RmsNormForward(x + b * d, weights_.final_norm, config_.rms_norm_eps, e - b, d, ws_.h.data() + b * d,
                      ws_.rstd.data() + b);
  });
  B::Gemm(false, true, rows, v, d, 1, ws_.h.data(), d, weights_.lm_head, d, 0, logits, v);
  // logits = c tanh(logits / c), as model::Model::Logits computes it
  const double cap = config_.final_logit_softcapping;
  if (cap > 0) {
    for (int64_t i = 0; i < rows * v; ++i) logits[i] = static_cast<float>(cap * std::tanh(logits[i] / cap));
  }
}

// One block of docs/MODEL.md for n tokens at the next positions, x [n, d] in place; the
// same steps as model::BlockForward with the attention through the layer's caches.
void Decoder::Layer(int64_t i, int64_t n) {
  const model::LayerTensors<const float>& w = weights_.layers[i];
  const int64_t d = config_.hidden_size, f = config_.intermediate_size, g = gate_groups_[i];
  const int64_t hq = config_.num_attention_heads, dim = config_.head_dim;
  const int64_t hqd = hq * dim, hkvd = config_.num_key_value_heads * dim;
  const double eps = config_.rms_norm_eps;
  float* x = ws_.x.data();  // [n, d]
  float* h = ws_.h.data();  // [n, d]
  // h1 [n, d] = rmsnorm(x, input_layernorm)
  model::ForRowChunks(n, pool_, options_.threads, [&](int64_t, int64_t b, int64_t e) {
    B::RmsNormForward(x + b * d, w.input_norm, eps, e - b, d, h + b * d, ws_.rstd.data() + b);
  });
  // q [n, Hq*D] = h1 q_proj^T; k, v [n, Hkv*D] likewise (the caches rotate q and k)
  B::Gemm(false, true, n, hqd, d, 1, h, d, w.q_proj, d, 0, ws_.q.data(), hqd);
  B::Gemm(false, true, n, hkvd, d, 1, h, d, w.k_proj, d, 0, ws_.k.data(), hkvd);
  B::Gemm(false, true, n, hkvd, d, 1, h, d, w.v_proj, d, 0, ws_.v.data(), hkvd);
  // a [n, Hq*D] = attention(q, k, v) over every position seen
  caches_[i]->AppendAttend(n, ws_.q.data(), ws_.k.data(), ws_.v.data(), ws_.attn.data());
  // o = a, or a_h * sigmoid(h1 gate.weight^T + gate.bias)[group(h)]
  const float* o = ws_.attn.data();
  if (g > 0) {
    float* gate = ws_.gate.data();  // [n, G]
    B::Gemm(false, true, n, g, d, 1, h, d, w.gate_w, d, 0, gate, g);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < g; ++j) gate[t * g + j] = ops::plain::Sigmoid(gate[t * g + j] + w.gate_b[j]);
    }
    const std::vector<int>& group = group_of_head_[i];
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t head = 0; head < hq; ++head) {
        const float s = gate[t * g + group[head]];
        const float* a = ws_.attn.data() + t * hqd + head * dim;
        float* out = ws_.gated.data() + t * hqd + head * dim;
        for (int64_t e = 0; e < dim; ++e) out[e] = a[e] * s;
      }
    }
    o = ws_.gated.data();
  }
  // x_mid [n, d] = x + o o_proj^T (in place)
  B::Gemm(false, true, n, d, hqd, 1, o, hqd, w.o_proj, hqd, 1, x, d);
  // h2 = rmsnorm(x_mid, post_attention_layernorm)
  model::ForRowChunks(n, pool_, options_.threads, [&](int64_t, int64_t b, int64_t e) {
    B::RmsNormForward(x + b * d, w.post_norm, eps, e - b, d, h + b * d, ws_.rstd.data() + b);
  });
  // m [n, F] = silu(h2 gate_proj^T) * (h2 up_proj^T)
  B::Gemm(false, true, n, f, d, 1, h, d, w.mlp_gate, d, 0, ws_.mlp_gate.data(), f);
  B::Gemm(false, true, n, f, d, 1, h, d, w.mlp_up, d, 0, ws_.up.data(), f);
  model::ForRowChunks(n, pool_, options_.threads, [&](int64_t, int64_t b, int64_t e) {
    B::SwiGluForward(ws_.mlp_gate.data() + b * f, ws_.up.data() + b * f, (e - b) * f, ws_.m.data() + b * f);
  });
  // y [n, d] = x_mid + m down_proj^T (in place)
  B::Gemm(false, true, n, d, f, 1, ws_.m.data(), f, w.mlp_down, f, 1, x, d);
}

void Decoder::AdvanceForTiming(int64_t positions) {
  if (positions < 0) ThrowInvalid("AdvanceForTiming: negative position count " + Str(positions));
  for (auto& cache : caches_) cache->AppendBlank(positions);
  position_ += positions;
}

void Decoder::Reset() {
  for (auto& cache : caches_) cache->Reset();
  position_ = 0;
}

int64_t Decoder::CacheBytes() const {
  int64_t bytes = 0;
  for (const auto& cache : caches_) bytes += cache->BytesUsed();
  return bytes;
}

int64_t Decoder::LayerCacheBytes(int64_t layer) const {
  if (layer < 0 || layer >= static_cast<int64_t>(caches_.size())) {
    ThrowInvalid("layer must be in [0, " + std::to_string(caches_.size()) + "), got " + std::to_string(layer));
  }
  return caches_[layer]->BytesUsed();
}

int64_t Decoder::NumCaches() const {
  int64_t count = 0;
  for (const auto& cache : caches_) count += cache->NumCaches();
  return count;
}

bool Decoder::CacheGrows() const {
  return std::any_of(caches_.begin(), caches_.end(), [](const auto& c) { return c->Grows(); });
}

}  // namespace swa::generate
