// The validated, normalised description of one attention call. Built by
// validate.cc from the C structs; every kernel and the reference read only this.
#pragma once

#include <cstdint>
#include <vector>

#include "common/dtype.h"

namespace swa::attention {

// A BSHD tensor view: [batch, seqlen, heads, dim], strides in elements, last stride 1.
struct TensorRef {
  void* data = nullptr;
  int64_t batch = 0, seqlen = 0, heads = 0, dim = 0;
  int64_t stride_b = 0, stride_l = 0, stride_h = 0;

  // Element offset of row `l` of head `h` in batch `b`.
  int64_t Offset(int64_t b, int64_t l, int64_t h) const { return b * stride_b + l * stride_l + h * stride_h; }
};

// One sequence: a batch entry, or one packed sequence of a varlen call.
struct Sequence {
  int64_t batch = 0;    // batch index in the tensors (0 for varlen)
  int64_t q_begin = 0;  // first row in q/out (cu_seqlens_q[s] for varlen, else 0)
  int64_t lq = 0;
  int64_t k_begin = 0;  // first row in k/v
  int64_t lk = 0;
};

// The head-independent part of the visibility rule (docs/ATTENTION.md).
struct MaskSpec {
  bool causal = false;
  int64_t chunk_size = 0, chunk_overlap = 0;
  int64_t sink_tokens = 0;
  const int64_t* global_tokens = nullptr;  // sorted, non-negative
  int64_t num_global_tokens = 0;
};

struct HeadWindow {
  int64_t left = -1, right = -1;  // -1 = unbounded
};

// A run of keys and values stored contiguously: rows [row0, row0 + length) of batch
// entry `batch` of the views k and v; key row0 sits at absolute position first_position.
struct KeySpan {
  TensorRef k, v;
  int64_t batch = 0, row0 = 0, length = 0;
  int64_t first_position = 0;
};

// Keys given per sequence as spans in absolute positions (a KV cache: pinned sink slots
// and the two halves of a ring), instead of the problem's k and v tensors. Sequence s
// attends spans [span_begin[s], span_begin[s + 1]) and its query row i sits at absolute
// position first_query[s] + i. Spans of one sequence must not share positions.
struct SpannedKeys {
  std::vector<KeySpan> spans;
  std::vector<int64_t> span_begin;   // [num_seqs + 1]
  std::vector<int64_t> first_query;  // [num_seqs]
};

// Where the tensors of a problem live; the entry (attention/entry.h) picks the backend.
enum class Device { kCpu, kCuda };

struct Problem {
  Device device = Device::kCpu;
  DType dtype = DType::kF32;
  int64_t batch = 0, hq = 0, hkv = 0, dim = 0;
  TensorRef q, k, v, out;  // out: the forward's output (an input of the backward)
  float* lse = nullptr;    // [batch, hq, q.seqlen] or null
  // Sequences: batch entries, or the packed sequences of a varlen call (cu_seqlens).
  int64_t num_seqs = 0;
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* cu_seqlens_k = nullptr;
  MaskSpec mask;
  const HeadWindow* windows = nullptr;  // [hq]
  float scale = 1.0f;                   // resolved (never 0)
  double scale_exact = 1.0;             // the same in double (1/sqrt(D) exactly), for the oracle
  float softcap = 0.0f;
  const float* alibi_slopes = nullptr;  // [hq] or null
  const float* sink_logits = nullptr;   // [hq] or null
  int threads = 1;
  const SpannedKeys* spanned = nullptr;  // optional: keys as spans (KV cache)

  int64_t group() const { return hq / hkv; }  // query heads per kv head
  // With spanned keys, cu_seqlens_k may be null: the keys are in the spans.
  Sequence Seq(int64_t s) const {
    if (cu_seqlens_q == nullptr) return Sequence{s, 0, q.seqlen, 0, k.seqlen};
    const int64_t k_begin = cu_seqlens_k ? cu_seqlens_k[s] : 0;
    const int64_t lk = cu_seqlens_k ? cu_seqlens_k[s + 1] - k_begin : 0;
    return Sequence{0, cu_seqlens_q[s], cu_seqlens_q[s + 1] - cu_seqlens_q[s], k_begin, lk};
  }
  // The key spans of sequence s and the absolute position of its query row 0. Without
  // `spanned`, one span: the sequence's keys at positions 0..Lk-1, queries bottom-right
  // aligned.
  void SpansOf(int64_t s, const Sequence& seq, std::vector<KeySpan>* out, int64_t* first_query) const {
    out->clear();
    if (spanned != nullptr) {
      out->assign(spanned->spans.begin() + spanned->span_begin[s],
                  spanned->spans.begin() + spanned->span_begin[s + 1]);
      *first_query = spanned->first_query[s];
      return;
    }
    out->push_back(KeySpan{k, v, seq.batch, seq.k_begin, seq.lk, 0});
    *first_query = seq.lk - seq.lq;
  }
  // lse index of row `i` of sequence `s`, head `h`.
  int64_t LseIndex(const Sequence& s, int64_t h, int64_t i) const {
    return (s.batch * hq + h) * q.seqlen + s.q_begin + i;
  }
};

// Backward-only tensors, validated like the forward ones.
struct BackwardTensors {
  TensorRef dout, dq, dk, dv;
  const float* lse = nullptr;
  float* dsink = nullptr;  // [hq] or null
};

}  // namespace swa::attention
