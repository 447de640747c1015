// The row-wise math of a transformer layer in f32, vectorised per SIMD target (run-time
// dispatch): RMSNorm, SwiGLU and softmax cross-entropy, forward and backward. Each is the
// SIMD version of the plain twin of the same name in ops/layer_math.h (same arguments,
// same results within f32 rounding; ops_test checks them on every target). Callers
// split rows across threads themselves.
#pragma once

#include <cstdint>

namespace swa::ops {

void RmsNormForward(const float* x, const float* w, double eps, int64_t n, int64_t d, float* y, float* rstd);
void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int64_t n, int64_t d,
                     float* dx, float* dw);
void SwiGluForward(const float* gate, const float* up, int64_t n, float* out);
void SwiGluBackward(const float* gate, const float* up, const float* dout, int64_t n, float* dgate,
                    float* dup);
double SoftmaxCrossEntropy(const float* z, const int32_t* targets, int64_t n, int64_t v, double cap,
                           int32_t ignore, float scale, float* dz);

}  // namespace swa::ops
