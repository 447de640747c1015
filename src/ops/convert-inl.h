// Row conversions per Highway target: f32/bf16/f16 rows to packed f32 and back, and a
// finiteness test of packed rows. The plain twins are in ops/scalar.h. Included once per
// target, hence the toggling guard.
#if defined(SWA_OPS_CONVERT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SWA_OPS_CONVERT_INL_H_
#undef SWA_OPS_CONVERT_INL_H_
#else
#define SWA_OPS_CONVERT_INL_H_
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace swa::ops::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Converts n elements of a row of `dtype` to float; writes zeros up to n_padded.
HWY_INLINE void RowToFloat(const void* src, DType dtype, size_t n, size_t n_padded, float* HWY_RESTRICT dst) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  if (dtype == DType::kF32) {
    const float* s = static_cast<const float*>(src);
    for (; i + L <= n; i += L) hn::StoreU(hn::LoadU(d, s + i), d, dst + i);
    for (; i < n; ++i) dst[i] = s[i];
  } else if (dtype == DType::kBF16) {
    const hn::Rebind<hwy::bfloat16_t, decltype(d)> dbf;
    const hwy::bfloat16_t* s = static_cast<const hwy::bfloat16_t*>(src);
    for (; i + L <= n; i += L) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dbf, s + i)), d, dst + i);
    for (; i < n; ++i) dst[i] = BF16ToFloat(static_cast<const uint16_t*>(src)[i]);
  } else {
#if HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
    // Hardware conversion (F16C, AVX-512); the emulated targets' software conversion
    // does not keep NaN, so they use the exact scalar one below.
    const hn::Rebind<hwy::float16_t, decltype(d)> dh;
    const hwy::float16_t* s = static_cast<const hwy::float16_t*>(src);
    for (; i + L <= n; i += L) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, s + i)), d, dst + i);
#endif
    for (; i < n; ++i) dst[i] = F16ToFloat(static_cast<const uint16_t*>(src)[i]);
  }
  for (; i < n_padded; ++i) dst[i] = 0.0f;
}

// Stores n floats to a row of `dtype` (round to nearest even), dst[i] = src[i] * mul.
HWY_INLINE void RowFromFloat(const float* HWY_RESTRICT src, float mul, size_t n, DType dtype, void* dst) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  if (dtype == DType::kF32) {
    float* o = static_cast<float*>(dst);
    const auto vm = hn::Set(d, mul);
    for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::LoadU(d, src + i), vm), d, o + i);
    for (; i < n; ++i) o[i] = src[i] * mul;
    return;
  }
  uint16_t* o = static_cast<uint16_t*>(dst);
  for (; i < n; ++i) o[i] = dtype == DType::kBF16 ? FloatToBF16(src[i] * mul) : FloatToF16(src[i] * mul);
}

// Packed float rows: row r at data + r * stride.
struct FloatRows {
  const float* data;
  size_t stride;
  bool padded;  // rows may be read as whole vectors up to dim_padded
};

// Whether the first `dim` entries of `count` rows are all finite: x - x is 0 for a
// finite x and NaN otherwise, and a sum of such terms stays NaN.
HWY_INLINE bool AllFinite(const FloatRows& rows, size_t count, size_t dim) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const size_t whole = rows.padded ? (dim + L - 1) / L * L : dim / L * L;  // padding is zero
  auto acc = hn::Zero(d);
  for (size_t r = 0; r < count; ++r) {
    const float* x = rows.data + r * rows.stride;
    for (size_t e = 0; e < whole; e += L) {
      const auto v = hn::LoadU(d, x + e);
      acc = hn::Add(acc, hn::Sub(v, v));
    }
    for (size_t e = whole; e < dim; ++e) {
      if (!std::isfinite(x[e])) return false;
    }
  }
  return hn::AllTrue(d, hn::Eq(acc, hn::Zero(d)));
}

}  // namespace swa::ops::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
