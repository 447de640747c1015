// Argument validation for the C API. Every check runs before any memory is touched;
// a failure throws swa::Error with a message naming the argument.
#pragma once

#include <memory>

#include "attention/problem.h"
#include "swa/swa.h"

namespace swa::attention {

// A validated problem together with the arrays it owns (sequences, windows, globals).
struct ValidatedProblem {
  Problem problem;
  std::vector<int64_t> global_tokens;  // deduplicated copy; problem.mask points here
  std::vector<int32_t> zero_cu_seqlens_k;  // spanned varlen: no key rows (problem points here)
};

// Validates a forward call.
std::unique_ptr<ValidatedProblem> ValidateForward(const swa_attention_params* params,
                                                  const swa_tensor* q, const swa_tensor* k,
                                                  const swa_tensor* v, const swa_tensor* out,
                                                  const float* lse);

// Validates a forward whose keys and values come as spans (a KV cache) instead of k and
// v tensors: params, q, out and lse as in ValidateForward, with `hkv` kv heads. With
// params->cu_seqlens_q (cu_seqlens_k must be NULL) q is [1, total, Hq, D] packing
// num_seqs sequences, else one sequence per batch entry. The caller sets problem.spanned
// and checks that the spans match q's dtype and head_dim.
std::unique_ptr<ValidatedProblem> ValidateSpannedForward(const swa_attention_params* params,
                                                         const swa_tensor* q, const swa_tensor* out,
                                                         const float* lse, int64_t hkv);

// The checks every entry point applies to one tensor argument (NULL, enums, shape limits,
// strides, alignment, size overflow; an output must not alias itself).
void CheckTensorArgument(const swa_tensor* t, const char* name, bool is_output);

// Validates a backward call; fills `grads` with the gradient views.
std::unique_ptr<ValidatedProblem> ValidateBackward(
    const swa_attention_params* params, const swa_tensor* q, const swa_tensor* k,
    const swa_tensor* v, const swa_tensor* out, const float* lse, const swa_tensor* dout,
    const swa_tensor* dq, const swa_tensor* dk, const swa_tensor* dv, const float* dsink,
    BackwardTensors* grads);

// Largest supported head_dim, and largest value of any single shape entry.
constexpr int64_t kMaxHeadDim = 256;
constexpr int64_t kMaxExtent = int64_t{1} << 40;

}  // namespace swa::attention
