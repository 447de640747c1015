// The row-wise math of a transformer layer, written plainly for any floating type: RMSNorm,
// SwiGLU, the sigmoid gate, and softmax cross-entropy (with logit soft-capping), forward
// and backward. These are the scalar twins of the SIMD versions (ops/layer_kernels.h),
// which ops_test checks against them on every target, and the double-precision path of
// the model that its gradient checks difference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace swa::ops::plain {

// y = x / sqrt(mean(x^2) + eps) * w for each of n rows of d; rstd[r] = 1 / sqrt(...).
template <class T>
void RmsNormForward(const T* x, const T* w, double eps, int64_t n, int64_t d, T* y, T* rstd) {
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * d;
    T ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += xr[i] * xr[i];
    const T s = T(1) / std::sqrt(ss / static_cast<T>(d) + static_cast<T>(eps));
    rstd[r] = s;
    for (int64_t i = 0; i < d; ++i) y[r * d + i] = xr[i] * s * w[i];
  }
}

// Gradients of y = x * s * w (s = rstd): dx = s * (w dy - x s^2 mean(x w dy)), and
// dw += sum over rows of dy x s. dx is written, dw accumulated.
template <class T>
void RmsNormBackward(const T* x, const T* w, const T* rstd, const T* dy, int64_t n, int64_t d, T* dx, T* dw) {
  for (int64_t r = 0; r < n; ++r) {
    const T* xr = x + r * d;
    const T* dyr = dy + r * d;
    const T s = rstd[r];
    T dot = 0;
    for (int64_t i = 0; i < d; ++i) dot += xr[i] * w[i] * dyr[i];
    const T c = dot * s * s / static_cast<T>(d);
    for (int64_t i = 0; i < d; ++i) {
      dx[r * d + i] = s * (w[i] * dyr[i] - xr[i] * c);
      dw[i] += dyr[i] * xr[i] * s;
    }
  }
}

template <class T>
T Sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// out = silu(gate) * up elementwise, silu(g) = g * sigmoid(g).
template <class T>
void SwiGluForward(const T* gate, const T* up, int64_t n, T* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] * Sigmoid(gate[i]) * up[i];
}

// d gate = dout * up * s (1 + g (1 - s)), d up = dout * silu(g), s = sigmoid(g).
template <class T>
void SwiGluBackward(const T* gate, const T* up, const T* dout, int64_t n, T* dgate, T* dup) {
  for (int64_t i = 0; i < n; ++i) {
    const T s = Sigmoid(gate[i]);
    dgate[i] = dout[i] * up[i] * s * (T(1) + gate[i] * (T(1) - s));
    dup[i] = dout[i] * gate[i] * s;
  }
}

// Cross-entropy of n rows of v logits against targets (a target equal to `ignore` adds
// nothing), with the logits first soft-capped to c tanh(z / c) when cap > 0. Returns the
// sum of the rows' losses; writes d(sum * scale)/dz to dz (the gradient of the mean when
// scale = 1 / count), through the cap.
template <class T>
double SoftmaxCrossEntropy(const T* z, const int32_t* targets, int64_t n, int64_t v, double cap,
                           int32_t ignore, T scale, T* dz) {
  double total = 0;
  for (int64_t r = 0; r < n; ++r) {
    const T* zr = z + r * v;
    T* dr = dz + r * v;
    if (targets[r] == ignore) {
      std::fill(dr, dr + v, T(0));
      continue;
    }
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < v; ++j)
      m = std::max(m, cap > 0 ? static_cast<T>(cap * std::tanh(zr[j] / cap)) : zr[j]);
    T sum = 0;
    for (int64_t j = 0; j < v; ++j) {
      const T y = cap > 0 ? static_cast<T>(cap * std::tanh(zr[j] / cap)) : zr[j];
      sum += std::exp(y - m);
    }
    const T lse = m + std::log(sum);
    const int32_t t = targets[r];
    const T yt = cap > 0 ? static_cast<T>(cap * std::tanh(zr[t] / cap)) : zr[t];
    total += static_cast<double>(lse - yt);
    for (int64_t j = 0; j < v; ++j) {
      const T th = cap > 0 ? static_cast<T>(std::tanh(zr[j] / cap)) : T(0);
      const T y = cap > 0 ? static_cast<T>(cap) * th : zr[j];
      const T g = (std::exp(y - lse) - (j == t ? T(1) : T(0))) * scale;
      dr[j] = cap > 0 ? g * (T(1) - th * th) : g;
    }
  }
  return total;
}

}  // namespace swa::ops::plain
