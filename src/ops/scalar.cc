#include "ops/scalar.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace swa::ops::scalar {

double Exp(float x) { return std::exp(static_cast<double>(x)); }

double Tanh(float x) { return std::tanh(static_cast<double>(x)); }

double Softcap(float x, float cap) { return cap * std::tanh(static_cast<double>(x) / cap); }

void RowToFloat(const void* src, DType dtype, size_t n, size_t n_padded, float* dst) {
  for (size_t i = 0; i < n; ++i) dst[i] = LoadAsFloat(src, dtype, static_cast<int64_t>(i));
  for (size_t i = n; i < n_padded; ++i) dst[i] = 0.0f;
}

void RowFromFloat(const float* src, float mul, size_t n, DType dtype, void* dst) {
  for (size_t i = 0; i < n; ++i) StoreFromFloat(dst, dtype, static_cast<int64_t>(i), src[i] * mul);
}

bool AllFinite(const float* rows, size_t stride, size_t count, size_t dim) {
  for (size_t r = 0; r < count; ++r) {
    for (size_t e = 0; e < dim; ++e) {
      if (!std::isfinite(rows[r * stride + e])) return false;
    }
  }
  return true;
}

void TileGemm(const GemmArgs& g, size_t lanes) {
  const size_t vectors = (g.n + lanes - 1) / lanes;
  for (size_t r = 0; r < g.m; ++r) {
    size_t v_begin = 0, v_end = vectors, k_begin = 0, k_end = g.k;
    if (g.bands != nullptr) {
      const RowGroupBand& band = g.bands[r / kGemmRowTile];
      v_begin = band.vec_begin;
      v_end = std::min<size_t>(band.vec_end, vectors);
      k_begin = band.k_begin;
      k_end = std::min<size_t>(band.k_end, g.k);
      if (k_begin >= k_end) continue;
    }
    for (size_t j = v_begin * lanes; j < v_end * lanes; ++j) {
      double sum = g.accumulate ? g.c[r * g.ldc + j] : 0.0;
      for (size_t p = k_begin; p < k_end; ++p) {
        const double b = (j < g.n || g.b_padded) ? g.b[p * g.ldb + j] : 0.0;
        sum += static_cast<double>(g.a[r * g.a_rs + p * g.a_cs]) * b;
      }
      g.c[r * g.ldc + j] = static_cast<float>(sum);
    }
  }
}

void DotRows(size_t rows, size_t cols, size_t dim, const float* q, size_t ldq, const float* k, size_t ldk,
             float* s, size_t lds) {
  for (size_t r = 0; r < rows; ++r) {
    for (size_t j = 0; j < cols; ++j) {
      double sum = 0;
      for (size_t e = 0; e < dim; ++e) sum += static_cast<double>(q[r * ldq + e]) * k[j * ldk + e];
      s[r * lds + j] = static_cast<float>(sum);
    }
  }
}

}  // namespace swa::ops::scalar
