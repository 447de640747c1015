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
};

// Validates a forward call.
std::unique_ptr<ValidatedProblem> ValidateForward(const swa_attention_params* params,
                                                  const swa_tensor* q, const swa_tensor* k,
                                                  const swa_tensor* v, const swa_tensor* out,
                                                  const float* lse);

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
