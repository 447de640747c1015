// The SIMD ops as whole-array calls on the active target (run-time dispatch): for callers
// outside the per-target code (the model, the tests). Each has a plain twin in
// ops/scalar.h that ops_test compares it with on every target.
#pragma once

#include <cstddef>

#include "common/dtype.h"
#include "ops/gemm.h"

namespace swa::ops {

// y[i] = exp(x[i]) for x[i] <= 0 (see ExpNonPositive in math-inl.h; positive arguments
// overflow to +inf as exp does, NaN stays NaN).
void ExpNonPositive(const float* x, float* y, size_t n);
// y[i] = tanh(x[i]).
void Tanh(const float* x, float* y, size_t n);
// y[i] = cap * tanh(x[i] / cap), cap > 0.
void Softcap(const float* x, float cap, float* y, size_t n);

// dst[0, n) = src converted from `dtype` to float; dst[n, n_padded) = 0.
void RowToFloat(const void* src, DType dtype, size_t n, size_t n_padded, float* dst);
// dst[0, n) = src * mul, rounded to `dtype` (to nearest even).
void RowFromFloat(const float* src, float mul, size_t n, DType dtype, void* dst);
// Whether rows[r * stride + e] is finite for every r < count, e < dim. With `padded`, rows
// may be read as whole vectors (their padding must be finite).
bool AllFinite(const float* rows, size_t stride, size_t count, size_t dim, bool padded);

// C[m x n] (+)= A[m x k] B[k x n] as the attention tiles compute it (gemm-inl.h): a(r, p)
// = a[r * a_rs + p * a_cs], B rows ldb apart, C rows ldc apart and stored as whole
// vectors (ldc and C's memory must hold n rounded up to the lanes); B rows are read as
// whole vectors when b_padded, else only up to n. `bands` (null: none) limits each group
// of kGemmRowTile rows to part of the sum and to the C vectors of its band: those are
// exact, the group's other vectors may hold partial sums (the attention mask hides them),
// and a group whose band is empty is left as it was.
struct GemmArgs {
  size_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  size_t a_rs = 0, a_cs = 0;
  const float* b = nullptr;
  size_t ldb = 0;
  float* c = nullptr;
  size_t ldc = 0;
  bool accumulate = false, b_padded = false;
  const RowGroupBand* bands = nullptr;
};
void TileGemm(const GemmArgs& args);

// s[r * lds + j] = dot(q[r * ldq, +dim), k[j * ldk, +dim)) for r < rows, j < cols (see
// DotRows in gemm-inl.h: q and s need rows rounded up to 4, the extra q rows zero, q rows
// zero-padded to whole vectors; k rows read up to dim unless k_padded).
void DotRows(size_t rows, size_t cols, size_t dim, const float* q, size_t ldq, const float* k, size_t ldk,
             bool k_padded, float* s, size_t lds);

// Float lanes of one vector on the active target.
size_t FloatLanes();

}  // namespace swa::ops
