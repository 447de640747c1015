#include "generate/layer_cache.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace swa::generate {
namespace {

// A contiguous [num_seqs, T, heads, D] f32 view.
swa_tensor Rows(const float* data, int64_t tokens, int64_t heads, int64_t dim, int64_t num_seqs = 1) {
  return MakeTensor(const_cast<float*>(data), SWA_F32, num_seqs, tokens, heads, dim);
}

void Grow(std::vector<float>* v, int64_t n) {
  if (static_cast<int64_t>(v->size()) < n) v->resize(static_cast<size_t>(n));
}

// Heads of one kind, one part when every kv head they touch serves equally many of them.
void AddKind(int64_t hq, int64_t hkv, const std::vector<bool>& streamed, bool kind,
             std::vector<HeadPart>* parts) {
  const int64_t group = hq / hkv;
  std::vector<std::vector<int64_t>> by_kv(static_cast<size_t>(hkv));
  for (int64_t h = 0; h < hq; ++h) {
    if (streamed[h] == kind) by_kv[h / group].push_back(h);
  }
  size_t count = 0;
  bool equal = true;
  for (const std::vector<int64_t>& heads : by_kv) {
    if (heads.empty()) continue;
    if (count != 0 && heads.size() != count) equal = false;
    count = heads.size();
  }
  if (count == 0) return;
  if (equal) {
    HeadPart part;
    part.streamed = kind;
    for (int64_t j = 0; j < hkv; ++j) {
      if (by_kv[j].empty()) continue;
      part.kv_heads.push_back(j);
      part.q_heads.insert(part.q_heads.end(), by_kv[j].begin(), by_kv[j].end());
    }
    parts->push_back(std::move(part));
    return;
  }
  for (int64_t j = 0; j < hkv; ++j) {
    if (by_kv[j].empty()) continue;
    parts->push_back(HeadPart{by_kv[j], {j}, kind});
  }
}

bool IsIdentity(const HeadPart& p, int64_t hq, int64_t hkv) {
  if (static_cast<int64_t>(p.q_heads.size()) != hq || static_cast<int64_t>(p.kv_heads.size()) != hkv)
    return false;
  for (int64_t h = 0; h < hq; ++h) {
    if (p.q_heads[h] != h) return false;
  }
  for (int64_t j = 0; j < hkv; ++j) {
    if (p.kv_heads[j] != j) return false;
  }
  return true;
}

// The cache of one part: the layer's rule restricted to the part's heads (StreamingLLM
// windows and sinks for streamed parts).
KvCache MakeCache(const model::ModelConfig& config, const model::LayerConfig& layer, const float* sinks,
                  const HeadPart& part, int64_t max_chunk, int threads, const StreamingOptions& streaming) {
  const int64_t heads = static_cast<int64_t>(part.q_heads.size());
  std::vector<int64_t> left(heads), right(heads);
  std::vector<float> slopes(heads), sink_logits(heads);
  for (int64_t i = 0; i < heads; ++i) {
    const int64_t h = part.q_heads[i];
    left[i] = part.streamed ? streaming.window - 1 : layer.windows[h].left;
    if (streaming.context > 0)
      left[i] = left[i] < 0 ? streaming.context - 1 : std::min(left[i], streaming.context - 1);
    right[i] = layer.windows[h].right;
    slopes[i] = model::AlibiSlope(h, config.num_attention_heads);
    sink_logits[i] = sinks != nullptr ? sinks[h] : 0.0f;
  }
  AttentionParams p;
  p.head_window_left = left.data();
  p.head_window_right = right.data();
  p.causal = 1;
  p.softcap = layer.attn_logit_softcapping;
  p.alibi_slopes = layer.alibi ? slopes.data() : nullptr;
  p.sink_tokens = part.streamed ? std::max(layer.sink_tokens, streaming.sinks) : layer.sink_tokens;
  p.sink_logits = sinks != nullptr ? sink_logits.data() : nullptr;
  p.num_threads = threads;
  KvCacheConfig c;
  c.DType(SWA_F32)
      .Heads(heads, static_cast<int64_t>(part.kv_heads.size()), config.head_dim)
      .Attention(p)
      .MaxChunk(max_chunk)
      .Positions(part.streamed ? SWA_POSITIONS_CACHE_RELATIVE : SWA_POSITIONS_ABSOLUTE);
  // The cache's theta is a float: every theta a config is likely to hold (10^4, 5 10^5,
  // 10^6) is exact in float.
  if (model::UsesRope(layer)) c.Rope(static_cast<float>(model::LayerRopeTheta(config, layer)), 0);
  KvCache cache(c);  // copies the arrays above
  cache.AddSequence(0);
  return cache;
}

}  // namespace

int64_t DefaultStreamWindow(const model::ModelConfig& config) {
  int64_t widest = 0;
  for (const model::LayerConfig& layer : config.layers) {
    for (const model::HeadWindow& w : layer.windows) {
      if (w.left >= 0) widest = std::max(widest, w.left + 1);
    }
  }
  return widest > 0 ? 4 * widest : 1024;
}

std::vector<HeadPart> PlanHeadParts(int64_t hq, int64_t hkv, const std::vector<bool>& streamed) {
  if (hq < 1 || hkv < 1 || hq % hkv != 0 || static_cast<int64_t>(streamed.size()) != hq) {
    ThrowInvalid("PlanHeadParts: " + std::to_string(hq) + " query heads over " + std::to_string(hkv) +
                 " kv heads with " + std::to_string(streamed.size()) + " flags");
  }
  std::vector<HeadPart> parts;
  AddKind(hq, hkv, streamed, false, &parts);
  AddKind(hq, hkv, streamed, true, &parts);
  return parts;
}

LayerCache::LayerCache(const model::ModelConfig& config, const model::LayerConfig& layer, const float* sinks,
                       int64_t max_chunk, int threads, const StreamingOptions& streaming)
    : hq_(config.num_attention_heads),
      hkv_(config.num_key_value_heads),
      dim_(config.head_dim),
      max_chunk_(max_chunk) {
  std::vector<bool> streamed(static_cast<size_t>(hq_), false);
  if (streaming.enabled()) {
    for (int64_t h = 0; h < hq_; ++h) streamed[h] = layer.windows[h].left < 0;
  }
  for (HeadPart& heads : PlanHeadParts(hq_, hkv_, streamed)) {
    const bool identity = IsIdentity(heads, hq_, hkv_);
    KvCache cache = MakeCache(config, layer, sinks, heads, max_chunk, threads, streaming);
    parts_.push_back(Part{std::move(heads), identity, std::move(cache)});
  }
}

void LayerCache::AddSequence(int64_t id) {
  for (Part& part : parts_) part.cache.AddSequence(id);
}

void LayerCache::RemoveSequence(int64_t id) {
  for (Part& part : parts_) part.cache.RemoveSequence(id);
}

void LayerCache::AppendAttendSequence(int64_t id, int64_t tokens, const float* q, const float* k,
                                      const float* v, float* out) {
  if (tokens < 1 || tokens > max_chunk_) {
    ThrowInvalid("LayerCache::AppendAttend takes 1 to " + std::to_string(max_chunk_) + " tokens, got " +
                 std::to_string(tokens));
  }
  Run(&id, 1, tokens, q, k, v, out);
}

void LayerCache::AppendAttendBatch(const int64_t* ids, int64_t num_seqs, const float* q, const float* k,
                                   const float* v, float* out) {
  if (num_seqs < 1) ThrowInvalid("LayerCache::AppendAttendBatch needs at least one sequence");
  Run(ids, num_seqs, 1, q, k, v, out);
}

void LayerCache::Run(const int64_t* ids, int64_t num_seqs, int64_t tokens, const float* q, const float* k,
                     const float* v, float* out) {
  const int64_t rows = num_seqs * tokens;
  for (Part& part : parts_) {
    if (part.identity) {
      swa_tensor out_t = Rows(out, tokens, hq_, dim_, num_seqs);
      part.cache.AppendAttend(ids, num_seqs, Rows(q, tokens, hq_, dim_, num_seqs),
                              Rows(k, tokens, hkv_, dim_, num_seqs), Rows(v, tokens, hkv_, dim_, num_seqs),
                              out_t);
      continue;
    }
    // Gather the part's heads into contiguous rows, attend, scatter the outputs back.
    const int64_t pq = static_cast<int64_t>(part.heads.q_heads.size());
    const int64_t pkv = static_cast<int64_t>(part.heads.kv_heads.size());
    Grow(&q_part_, rows * pq * dim_);
    Grow(&out_part_, rows * pq * dim_);
    Grow(&k_part_, rows * pkv * dim_);
    Grow(&v_part_, rows * pkv * dim_);
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t i = 0; i < pq; ++i) {
        std::copy_n(q + (t * hq_ + part.heads.q_heads[i]) * dim_, dim_, q_part_.data() + (t * pq + i) * dim_);
      }
      for (int64_t i = 0; i < pkv; ++i) {
        const int64_t j = part.heads.kv_heads[i];
        std::copy_n(k + (t * hkv_ + j) * dim_, dim_, k_part_.data() + (t * pkv + i) * dim_);
        std::copy_n(v + (t * hkv_ + j) * dim_, dim_, v_part_.data() + (t * pkv + i) * dim_);
      }
    }
    swa_tensor out_t = Rows(out_part_.data(), tokens, pq, dim_, num_seqs);
    part.cache.AppendAttend(ids, num_seqs, Rows(q_part_.data(), tokens, pq, dim_, num_seqs),
                            Rows(k_part_.data(), tokens, pkv, dim_, num_seqs),
                            Rows(v_part_.data(), tokens, pkv, dim_, num_seqs), out_t);
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t i = 0; i < pq; ++i) {
        std::copy_n(out_part_.data() + (t * pq + i) * dim_, dim_,
                    out + (t * hq_ + part.heads.q_heads[i]) * dim_);
      }
    }
  }
}

void LayerCache::AppendBlank(int64_t tokens) {
  if (tokens < 0) ThrowInvalid("LayerCache::AppendBlank: negative token count " + std::to_string(tokens));
  if (blank_.empty()) blank_.assign(static_cast<size_t>(max_chunk_ * hkv_ * dim_), 0.0f);
  for (int64_t done = 0; done < tokens; done += max_chunk_) {
    const int64_t n = std::min(max_chunk_, tokens - done);
    for (Part& part : parts_) {
      const int64_t pkv = static_cast<int64_t>(part.heads.kv_heads.size());
      part.cache.Append(0, Rows(blank_.data(), n, pkv, dim_), Rows(blank_.data(), n, pkv, dim_));
    }
  }
}

void LayerCache::Reset() {
  for (Part& part : parts_) part.cache.ResetSequence(0);
}

int64_t LayerCache::BytesUsed() const {
  int64_t bytes = 0;
  for (const Part& part : parts_) bytes += part.cache.Stats().bytes_used;
  return bytes;
}

bool LayerCache::Grows() const {
  for (const Part& part : parts_) {
    if (part.cache.Stats().capacity < 0) return true;
  }
  return false;
}

}  // namespace swa::generate
