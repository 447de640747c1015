#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "ops/convert-inl.h"
#include "ops/gemm-inl.h"
#include "ops/kernels.h"
#include "ops/math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace swa::ops::HWY_NAMESPACE {

// Applies `op` to whole vectors of x, the last one masked.
template <class Op>
void Elementwise(const float* x, float* y, size_t n, const Op& op) {
  const DF d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(op(d, hn::LoadU(d, x + i)), d, y + i);
  if (i < n) {
    const auto mask = hn::FirstN(d, n - i);
    hn::BlendedStore(op(d, hn::MaskedLoad(mask, d, x + i)), mask, d, y + i);
  }
}

void ExpNonPositiveArray(const float* x, float* y, size_t n) {
  Elementwise(x, y, n, [](DF d, auto v) { return ExpNonPositive(d, v); });
}

void TanhArray(const float* x, float* y, size_t n) {
  Elementwise(x, y, n, [](DF d, auto v) { return TanhApprox(d, v); });
}

void SoftcapArray(const float* x, float cap, float* y, size_t n) {
  const DF d0;
  const auto vcap = hn::Set(d0, cap), inv_cap = hn::Set(d0, 1.0f / cap);
  Elementwise(x, y, n, [&](DF d, auto v) { return Softcap(d, v, vcap, inv_cap); });
}

void RowToFloatArray(const void* src, DType dtype, size_t n, size_t n_padded, float* dst) {
  RowToFloat(src, dtype, n, n_padded, dst);
}

void RowFromFloatArray(const float* src, float mul, size_t n, DType dtype, void* dst) {
  RowFromFloat(src, mul, n, dtype, dst);
}

bool AllFiniteRows(const float* rows, size_t stride, size_t count, size_t dim, bool padded) {
  return AllFinite(FloatRows{rows, stride, padded}, count, dim);
}

void TileGemmOnTarget(const GemmArgs& g) {
  Gemm(g.m, g.n, g.k, g.a, g.a_rs, g.a_cs, g.b, g.ldb, g.c, g.ldc, g.accumulate, g.b_padded, g.bands);
}

void DotRowsOnTarget(size_t rows, size_t cols, size_t dim, const float* q, size_t ldq, const float* k,
                     size_t ldk, bool k_padded, float* s, size_t lds) {
  DotRows(rows, cols, dim, q, ldq, k, ldk, k_padded, s, lds);
}

size_t LanesOnTarget() { return hn::Lanes(DF()); }

}  // namespace swa::ops::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::ops {

HWY_EXPORT(ExpNonPositiveArray);
HWY_EXPORT(TanhArray);
HWY_EXPORT(SoftcapArray);
HWY_EXPORT(RowToFloatArray);
HWY_EXPORT(RowFromFloatArray);
HWY_EXPORT(AllFiniteRows);
HWY_EXPORT(TileGemmOnTarget);
HWY_EXPORT(DotRowsOnTarget);
HWY_EXPORT(LanesOnTarget);

void ExpNonPositive(const float* x, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(ExpNonPositiveArray)(x, y, n);
}
void Tanh(const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(TanhArray)(x, y, n); }
void Softcap(const float* x, float cap, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(SoftcapArray)(x, cap, y, n);
}
void RowToFloat(const void* src, DType dtype, size_t n, size_t n_padded, float* dst) {
  HWY_DYNAMIC_DISPATCH(RowToFloatArray)(src, dtype, n, n_padded, dst);
}
void RowFromFloat(const float* src, float mul, size_t n, DType dtype, void* dst) {
  HWY_DYNAMIC_DISPATCH(RowFromFloatArray)(src, mul, n, dtype, dst);
}
bool AllFinite(const float* rows, size_t stride, size_t count, size_t dim, bool padded) {
  return HWY_DYNAMIC_DISPATCH(AllFiniteRows)(rows, stride, count, dim, padded);
}
void TileGemm(const GemmArgs& args) { HWY_DYNAMIC_DISPATCH(TileGemmOnTarget)(args); }
void DotRows(size_t rows, size_t cols, size_t dim, const float* q, size_t ldq, const float* k, size_t ldk,
             bool k_padded, float* s, size_t lds) {
  HWY_DYNAMIC_DISPATCH(DotRowsOnTarget)(rows, cols, dim, q, ldq, k, ldk, k_padded, s, lds);
}
size_t FloatLanes() { return HWY_DYNAMIC_DISPATCH(LanesOnTarget)(); }

}  // namespace swa::ops
#endif
