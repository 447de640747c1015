// The arithmetic the model's layers are written against, for its two scalar types: f32
// (training and inference: OpenBLAS sgemm, the SIMD ops) and f64 (the gradient checks:
// OpenBLAS dgemm, the ops' plain twins). The layer code (model/block.cc, model/model.cc)
// is one template over these, so the double-precision checks difference the same code
// that trains.
//
// Dense layers use OpenBLAS (Debian's libopenblas), chosen by measurement: `swa bench
// train` times the model's up-projection shape through OpenBLAS and through swa's own
// tile GEMM (ops::TileGemm, built for attention tiles, without packing) in the same run
// (docs/BENCHMARKS.md, "Model training"). OpenBLAS was not slower, and it also takes the
// transposed operands the backward needs, which the tile GEMM would need packing for.
#pragma once

#include <cblas.h>

#include <cstdint>

#include "ops/layer_kernels.h"
#include "ops/layer_math.h"

namespace swa::model {

template <class T>
struct Backend;

template <>
struct Backend<float> {
  // C = alpha op(A) op(B) + beta C, row-major; op transposes when the flag is set.
  static void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                   int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (m == 1 && k > 0) {
      // One row (a decode step): a matrix-vector product. Debian's OpenBLAS (0.3.21) sends
      // sgemm with one row through its blocked path, which packs all of B on every call;
      // sgemv streams B once.
      const int x_stride = trans_a ? static_cast<int>(lda) : 1;
      if (trans_b) {  // c = alpha B a + beta c, B [n, k]
        cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), alpha, b,
                    static_cast<int>(ldb), a, x_stride, beta, c, 1);
      } else {  // c = alpha B^T a + beta c, B [k, n]
        cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(k), static_cast<int>(n), alpha, b,
                    static_cast<int>(ldb), a, x_stride, beta, c, 1);
      }
      return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
  }
  static void RmsNormForward(const float* x, const float* w, double eps, int64_t n, int64_t d, float* y,
                             float* rstd) {
    ops::RmsNormForward(x, w, eps, n, d, y, rstd);
  }
  static void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int64_t n,
                              int64_t d, float* dx, float* dw) {
    ops::RmsNormBackward(x, w, rstd, dy, n, d, dx, dw);
  }
  static void SwiGluForward(const float* g, const float* u, int64_t n, float* out) {
    ops::SwiGluForward(g, u, n, out);
  }
  static void SwiGluBackward(const float* g, const float* u, const float* dout, int64_t n, float* dg,
                             float* du) {
    ops::SwiGluBackward(g, u, dout, n, dg, du);
  }
  static double SoftmaxCrossEntropy(const float* z, const int32_t* targets, int64_t n, int64_t v, double cap,
                                    int32_t ignore, float scale, float* dz) {
    return ops::SoftmaxCrossEntropy(z, targets, n, v, cap, ignore, scale, dz);
  }
};

template <>
struct Backend<double> {
  static void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                   int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
  }
  static void RmsNormForward(const double* x, const double* w, double eps, int64_t n, int64_t d, double* y,
                             double* rstd) {
    ops::plain::RmsNormForward(x, w, eps, n, d, y, rstd);
  }
  static void RmsNormBackward(const double* x, const double* w, const double* rstd, const double* dy,
                              int64_t n, int64_t d, double* dx, double* dw) {
    ops::plain::RmsNormBackward(x, w, rstd, dy, n, d, dx, dw);
  }
  static void SwiGluForward(const double* g, const double* u, int64_t n, double* out) {
    ops::plain::SwiGluForward(g, u, n, out);
  }
  static void SwiGluBackward(const double* g, const double* u, const double* dout, int64_t n, double* dg,
                             double* du) {
    ops::plain::SwiGluBackward(g, u, dout, n, dg, du);
  }
  static double SoftmaxCrossEntropy(const double* z, const int32_t* targets, int64_t n, int64_t v, double cap,
                                    int32_t ignore, double scale, double* dz) {
    return ops::plain::SoftmaxCrossEntropy(z, targets, n, v, cap, ignore, scale, dz);
  }
};

}  // namespace swa::model
