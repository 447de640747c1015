// The byte-level decoder of docs/MODEL.md over packed token streams: embedding, the
// blocks (model/block.h), the final norm, the LM head with optional soft-capping, and the
// mean cross-entropy loss, forward and backward. Parameters live in one flat buffer laid
// out by ParameterLayout; gradients use the same layout.
//
// Memory grows linearly in the tokens of a batch: each block keeps O(n * (d + F)) floats
// for its backward, attention keeps no [L, L] tensor, and with `recompute` a block keeps
// only its input and recomputes the rest during the backward.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/parallel.h"
#include "model/block.h"
#include "model/config.h"
#include "model/layer_attention.h"
#include "model/param_layout.h"
#include "model/rope_table.h"

namespace swa::model {

// Documents packed into one stream: segment s is tokens [cu_seqlens[s], cu_seqlens[s+1]),
// attended alone, with positions from 0. targets[t] is the token to predict at t (kPad:
// none); it may be null when no loss is wanted.
struct TokenBatch {
  const int32_t* tokens = nullptr;   // [n]
  const int32_t* targets = nullptr;  // [n] or null
  int64_t n = 0;
  const int32_t* cu_seqlens = nullptr;  // [segments + 1]
  int64_t segments = 0;
};

// Per-call memory, kept between calls of the same size.
template <class T>
struct Workspace {
  std::vector<int32_t> positions;              // [n]
  std::vector<T> x;                            // [n, d] residual stream
  std::vector<BlockActivations<T>> blocks;     // per layer (one when recomputing)
  std::vector<std::vector<T>> block_inputs;    // per layer, when recomputing
  std::vector<T> xf, rstd_f, logits, dlogits;  // [n, d], [n], [n, V], [n, V]
  std::vector<T> dx, dxf, norm_parts;
  BlockScratch<T> scratch;
};

class Model {
 public:
  // `threads`: 0 = all cores. `recompute`: keep only block inputs for the backward.
  explicit Model(ModelConfig config, int threads = 0, bool recompute = false);

  const ModelConfig& config() const { return config_; }
  const std::vector<ParamInfo>& layout() const { return layout_; }
  int64_t param_floats() const { return param_floats_; }
  int threads() const { return threads_; }
  void set_recompute(bool recompute) { recompute_ = recompute; }

  // logits [n, V] (after final soft-capping) for a batch.
  template <class T>
  void Logits(const T* params, const TokenBatch& batch, T* logits, Workspace<T>* ws, ThreadPool& pool) const;

  // Mean cross-entropy over the batch's targets other than kPad (0 when there are none).
  // With `grads` ([param_floats()]), its gradient is added there. Also returns the number
  // of targets counted in *count when count is not null.
  template <class T>
  double Loss(const T* params, const TokenBatch& batch, T* grads, Workspace<T>* ws, ThreadPool& pool,
              int64_t* count = nullptr) const;

 private:
  template <class T>
  void ForwardBlocks(const T* params, const TokenBatch& batch, Workspace<T>* ws, ThreadPool& pool) const;
  template <class T>
  void Head(const T* params, const TokenBatch& batch, Workspace<T>* ws, ThreadPool& pool) const;

  ModelConfig config_;
  std::vector<ParamInfo> layout_;
  int64_t param_floats_ = 0;
  int threads_;
  bool recompute_;
  std::vector<std::unique_ptr<LayerAttention>> attention_;  // per layer
  std::vector<std::unique_ptr<RopeTable>> rope_;            // per layer (null: ALiBi)
  std::vector<BlockSpec> specs_;                            // per layer
};

}  // namespace swa::model
