// One transformer block of docs/MODEL.md, forward and backward, for n tokens of a
// packed stream (llm.c's plan: plain functions, the shapes in comments, the backward
// differentiating the forward line by line):
//
//   h1 = rmsnorm(x, input_layernorm)
//   q, k, v = h1 q_proj^T, h1 k_proj^T, h1 v_proj^T;  RoPE on q and k (unless ALiBi)
//   a = attention(q, k, v)                            (per-head windows, sinks, ...)
//   o = a, or per head a_h * sigmoid(h1 . gate.weight[g] + gate.bias[g]) (gated fusion)
//   x_mid = x + o o_proj^T
//   h2 = rmsnorm(x_mid, post_attention_layernorm)
//   y = x_mid + (silu(h2 gate_proj^T) * (h2 up_proj^T)) down_proj^T
#pragma once

#include <cstdint>
#include <vector>

#include "common/parallel.h"
#include "model/config.h"
#include "model/layer_attention.h"
#include "model/rope_table.h"
#include "model/tensors.h"

namespace swa::model {

// What a block needs besides its weights: sizes, the attention rule, RoPE.
struct BlockSpec {
  int64_t d = 0, hq = 0, hkv = 0, head_dim = 0, ffn = 0;
  double eps = 1e-5;
  int64_t gate_groups = 0;         // G; 0 without gated fusion
  std::vector<int> group_of_head;  // [Hq] gate group of each head
  const LayerAttention* attention = nullptr;
  const RopeTable* rope = nullptr;  // null in an ALiBi layer
  int threads = 0;
};

// The activations a block's backward reads, for n tokens.
template <class T>
struct BlockActivations {
  std::vector<T> x;             // [n, d] block input
  std::vector<T> h1, rstd1;     // [n, d], [n]
  std::vector<T> q, k, v;       // [n, Hq*D], [n, Hkv*D], [n, Hkv*D]; q, k rotated
  std::vector<T> attn, lse;     // [n, Hq*D], [Hq, n]
  std::vector<T> gate;          // [n, G] sigmoid of the gate logits
  std::vector<T> x_mid;         // [n, d]
  std::vector<T> h2, rstd2;     // [n, d], [n]
  std::vector<T> mlp_gate, up;  // [n, F], [n, F]
};

// Working memory of the backward, shared by the blocks of a model.
template <class T>
struct BlockScratch {
  std::vector<T> o, d_o, dq, dk, dv, dh, dm, du, dup, dgate, norm_parts;
};

// y [n, d] from x [n, d]; keeps what the backward needs in *acts (acts->x = x).
template <class T>
void BlockForward(const BlockSpec& spec, const LayerTensors<const T>& w, const Packing& pack,
                  const int32_t* positions, const T* x, BlockActivations<T>* acts, T* y, ThreadPool& pool);

// Given dy [n, d] (the gradient at the block's output), writes dx [n, d] (may be dy) and
// adds the weights' gradients into g.
template <class T>
void BlockBackward(const BlockSpec& spec, const LayerTensors<const T>& w, const Packing& pack,
                   const int32_t* positions, const BlockActivations<T>& acts, const T* dy, T* dx,
                   const LayerTensors<T>& g, BlockScratch<T>* scratch, ThreadPool& pool);

}  // namespace swa::model
