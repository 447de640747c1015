// Argument validation for the C API. Every check runs before any memory is touched;
// a failure throws swa::Error with a message naming the argument.
#pragma once

#include <memory>
#include <vector>

#include "attention/problem.h"
#include "swa/swa.h"

namespace swa::attention {

// The arrays a validated rule owns, so that it no longer depends on the caller's params:
// per-head windows, deduplicated global tokens, and copies of the per-head float arrays.
// A Problem's rule fields point in here.
struct RuleStorage {
  std::vector<HeadWindow> windows;     // [hq]
  std::vector<int64_t> global_tokens;  // sorted, distinct
  std::vector<float> alibi_slopes;     // [hq] or empty
  std::vector<float> sink_logits;      // [hq] or empty
};

// Validates the rule part of `params` (windows, scale, softcap, ALiBi, sinks, chunks,
// global tokens, threads; not the varlen fields) for problem->hq query heads of
// problem->dim elements, and sets problem's rule fields (mask, windows, scale, softcap,
// alibi_slopes, sink_logits, threads), pointing into *storage.
void ValidateRule(const swa_attention_params* params, RuleStorage* storage, Problem* problem);

// A validated problem together with the arrays it owns.
struct ValidatedProblem {
  Problem problem;
  RuleStorage rule;
};

// Validates a forward call.
std::unique_ptr<ValidatedProblem> ValidateForward(const swa_attention_params* params, const swa_tensor* q,
                                                  const swa_tensor* k, const swa_tensor* v,
                                                  const swa_tensor* out, const float* lse);

// Validates a backward call; fills `grads` with the gradient views.
std::unique_ptr<ValidatedProblem> ValidateBackward(const swa_attention_params* params, const swa_tensor* q,
                                                   const swa_tensor* k, const swa_tensor* v,
                                                   const swa_tensor* out, const float* lse,
                                                   const swa_tensor* dout, const swa_tensor* dq,
                                                   const swa_tensor* dk, const swa_tensor* dv,
                                                   const float* dsink, BackwardTensors* grads);

// The query side of a forward whose keys come from elsewhere (a KV cache): q and out
// (same shape and dtype, Hq a multiple of `hkv`), lse, and the packing: with cu_seqlens_q,
// q is [1, total, Hq, D] holding num_seqs sequences; without, num_seqs must be 0. Outputs
// must not overlap q or each other.
void ValidateQueries(const swa_tensor* q, const swa_tensor* out, const float* lse, int64_t hkv,
                     const int32_t* cu_seqlens_q, int64_t num_seqs);

// The checks every entry point applies to one tensor argument (NULL, enums, shape limits,
// strides, alignment, size overflow; an output must not alias itself).
void CheckTensorArgument(const swa_tensor* t, const char* name, bool is_output);

// cu_seqlens of num_seqs sequences packed in `total` rows: starts at 0, non-decreasing,
// ends at total. `name` names the argument in messages.
void CheckCuSeqlens(const int32_t* cu, int64_t num_seqs, int64_t total, const char* name);

// Largest supported head_dim, and largest value of any single shape entry.
constexpr int64_t kMaxHeadDim = 256;
constexpr int64_t kMaxExtent = int64_t{1} << 40;

}  // namespace swa::attention
