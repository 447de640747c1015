// AdamW (Loshchilov & Hutter 2019) over one flat float buffer, and global-norm gradient
// clipping. Work is cut into fixed chunks of elements, independent of the thread count, so
// every result is bit-identical for any number of threads.
#pragma once

#include <cstdint>
#include <vector>

#include "common/parallel.h"

namespace swa::train {

struct AdamW {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

// A run of parameters; `decay` says whether weight decay applies (matrices yes, norms and
// biases usually not). Spans must not overlap.
struct ParamSpan {
  int64_t offset, count;
  bool decay;
};

// One step t (1-based) on every element of every span, with g = grads[i]:
//   m = beta1 m + (1 - beta1) g
//   v = beta2 v + (1 - beta2) g^2
//   p = p - lr wd p                                           (decay spans only)
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// i.e. the bias-corrected m_hat / (sqrt(v_hat) + eps) of PyTorch's AdamW, with the decay
// taken from the parameter before the step (decoupled weight decay).
void AdamWStep(const AdamW& cfg, float lr, int64_t step, const std::vector<ParamSpan>& spans,
               float* params,       // [n], n = the end of the last span
               const float* grads,  // [n]
               float* m,            // [n], first moments, zero before step 1
               float* v,            // [n], second moments, zero before step 1
               ThreadPool& pool, int threads);

// sqrt(sum g^2): squares summed in double within chunks of a fixed size, the chunk sums
// added in chunk order.
double GlobalNorm(const float* grads,  // [n]
                  int64_t n, ThreadPool& pool, int threads);

// g *= factor.
void ScaleGradients(float* grads,  // [n]
                    int64_t n, float factor, ThreadPool& pool, int threads);

// Scales grads by max_norm / norm when their global norm exceeds max_norm (> 0) and
// returns the norm before scaling. A norm that is not finite is returned untouched and
// nothing is scaled: the caller should skip that step.
double ClipGradients(float* grads,  // [n]
                     int64_t n, double max_norm, ThreadPool& pool, int threads);

}  // namespace swa::train
