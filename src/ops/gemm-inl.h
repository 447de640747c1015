// The broadcast GEMM of the attention tiles, per Highway target: C (+)= A . B with A
// entries broadcast against B's rows, register-blocked (MR rows x NR vectors), with
// optional bands that skip the parts of a tile the mask hides; and the dot-product form
// for a few rows (decode). The plain twins are in ops/scalar.h; ops_test checks them on
// every target. Included once per target, hence the toggling guard.
#if defined(SWA_OPS_GEMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SWA_OPS_GEMM_INL_H_
#undef SWA_OPS_GEMM_INL_H_
#else
#define SWA_OPS_GEMM_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "hwy/highway.h"
#include "ops/gemm.h"

HWY_BEFORE_NAMESPACE();
namespace swa::ops::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Vectors of C per register tile (see kGemmRowTile).
constexpr size_t kNR = HWY_TARGET == HWY_AVX3 ? 4 : 2;

// C[r][0 .. NR*L) (+)= sum_p a(r, p) * B[p][0 .. NR*L) for r < MR, where
// a(r, p) = a[r * a_rs + p * a_cs] is broadcast and B rows are vectors (row stride ldb).
// `last_mask` limits the loads of the last vector of each B row (for row ends that must
// not be read past); C rows are padded and stored whole.
template <size_t MR, size_t NR>
HWY_INLINE void MicroKernel(size_t k, const float* HWY_RESTRICT a, size_t a_rs, size_t a_cs,
                            const float* HWY_RESTRICT b, size_t ldb, float* HWY_RESTRICT c, size_t ldc,
                            bool accumulate, const hn::Mask<DF>* last_mask) {
  const DF d;
  const size_t L = hn::Lanes(d);
  hn::Vec<DF> acc[MR][NR];
  for (size_t r = 0; r < MR; ++r) {
    for (size_t v = 0; v < NR; ++v) {
      acc[r][v] = accumulate ? hn::LoadU(d, c + r * ldc + v * L) : hn::Zero(d);
    }
  }
  for (size_t p = 0; p < k; ++p) {
    const float* brow = b + p * ldb;
    hn::Vec<DF> bv[NR];
    for (size_t v = 0; v < NR; ++v) {
      bv[v] = (last_mask != nullptr && v == NR - 1) ? hn::MaskedLoad(*last_mask, d, brow + v * L)
                                                    : hn::LoadU(d, brow + v * L);
    }
    for (size_t r = 0; r < MR; ++r) {
      const auto av = hn::Set(d, a[r * a_rs + p * a_cs]);
      for (size_t v = 0; v < NR; ++v) acc[r][v] = hn::MulAdd(av, bv[v], acc[r][v]);
    }
  }
  for (size_t r = 0; r < MR; ++r) {
    for (size_t v = 0; v < NR; ++v) hn::StoreU(acc[r][v], d, c + r * ldc + v * L);
  }
}

// The last, shorter row group of a GEMM: MicroKernel<rows, NR> for rows in [1, R].
template <size_t R, size_t NR>
HWY_INLINE void TailKernel(size_t rows, size_t k, const float* a, size_t a_rs, size_t a_cs, const float* b,
                           size_t ldb, float* c, size_t ldc, bool accumulate, const hn::Mask<DF>* last_mask) {
  if constexpr (R > 0) {
    if (rows == R) {
      MicroKernel<R, NR>(k, a, a_rs, a_cs, b, ldb, c, ldc, accumulate, last_mask);
    } else {
      TailKernel<R - 1, NR>(rows, k, a, a_rs, a_cs, b, ldb, c, ldc, accumulate, last_mask);
    }
  }
}

// Rows [0, m) of the column group of vectors [v0, v0 + NR): full MR-row kernels, then
// one shorter kernel; with `bands`, each row group only where its band meets the group.
template <size_t MR, size_t NR>
HWY_INLINE void GemmColumnGroup(size_t m, size_t k, const float* a, size_t a_rs, size_t a_cs, const float* b,
                                size_t ldb, float* c, size_t ldc, bool accumulate,
                                const hn::Mask<DF>* last_mask, size_t v0, const RowGroupBand* bands) {
  for (size_t r = 0, g = 0; r < m; r += MR, ++g) {
    size_t k0 = 0, kn = k;
    if (bands != nullptr) {
      const RowGroupBand& band = bands[g];
      const size_t k_end = std::min<size_t>(band.k_end, k);
      if (band.vec_end <= v0 || band.vec_begin >= v0 + NR || band.k_begin >= k_end) continue;
      k0 = band.k_begin;
      kn = k_end - k0;
    }
    const float* ar = a + r * a_rs + k0 * a_cs;
    const float* br = b + k0 * ldb;
    float* cr = c + r * ldc;
    if (r + MR <= m) {
      MicroKernel<MR, NR>(kn, ar, a_rs, a_cs, br, ldb, cr, ldc, accumulate, last_mask);
      continue;
    }
    TailKernel<MR - 1, NR>(m - r, kn, ar, a_rs, a_cs, br, ldb, cr, ldc, accumulate, last_mask);
  }
}

// C[m x n] (+)= A[m x k] * B[k x n], A broadcast through strides (a_rs, a_cs), B rows
// of stride ldb, C rows of stride ldc padded to a whole number of vectors. If
// `b_padded` is false, B rows are read only up to n (the last vector is masked).
// `bands` (or null: everything) limits each group of MR rows of C to part of its
// vectors and part of the sum, so that the parts of a tile the mask hides are not
// computed; bands[g] describes rows [g * MR, (g + 1) * MR).
template <size_t MR = kGemmRowTile, size_t NR = kNR>
HWY_INLINE void Gemm(size_t m, size_t n, size_t k, const float* a, size_t a_rs, size_t a_cs, const float* b,
                     size_t ldb, float* c, size_t ldc, bool accumulate, bool b_padded,
                     const RowGroupBand* bands = nullptr) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const size_t vectors = (n + L - 1) / L;
  const bool ragged = !b_padded && n % L != 0;
  const auto tail_mask = hn::FirstN(d, n % L);
  size_t v = 0;
  for (; v + NR <= vectors; v += NR) {
    const bool last = ragged && v + NR == vectors;
    GemmColumnGroup<MR, NR>(m, k, a, a_rs, a_cs, b + v * L, ldb, c + v * L, ldc, accumulate,
                            last ? &tail_mask : nullptr, v, bands);
  }
  for (; v < vectors; ++v) {
    const bool last = ragged && v + 1 == vectors;
    GemmColumnGroup<MR, 1>(m, k, a, a_rs, a_cs, b + v * L, ldb, c + v * L, ldc, accumulate,
                           last ? &tail_mask : nullptr, v, bands);
  }
}

// S[r][j] = dot(Q[r], K[j]) for r < rows, j < cols: the dot-product form, for few
// rows (decode), where broadcasting would leave most lanes idle. Rows go in groups of
// four kept in registers: Q and S must have room for rows rounded up to a multiple of
// 4, and those extra Q rows must be zero (their S entries are then meaningless). Q rows
// (stride ldq) are zero-padded to whole vectors; K rows (stride ldk) are read only up to
// dim unless k_padded.
HWY_INLINE void DotRows(size_t rows, size_t cols, size_t dim, const float* HWY_RESTRICT q, size_t ldq,
                        const float* HWY_RESTRICT k, size_t ldk, bool k_padded, float* HWY_RESTRICT s,
                        size_t lds) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const size_t full = dim / L * L;
  const bool ragged = full < dim;
  const auto tail = hn::FirstN(d, dim - full);
  for (size_t r0 = 0; r0 < rows; r0 += 4) {
    const float* q0 = q + r0 * ldq;
    const float* q1 = q0 + ldq;
    const float* q2 = q1 + ldq;
    const float* q3 = q2 + ldq;
    for (size_t j = 0; j < cols; ++j) {
      const float* kr = k + j * ldk;
      auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
      for (size_t e = 0; e < full; e += L) {
        const auto kv = hn::LoadU(d, kr + e);
        a0 = hn::MulAdd(hn::LoadU(d, q0 + e), kv, a0);
        a1 = hn::MulAdd(hn::LoadU(d, q1 + e), kv, a1);
        a2 = hn::MulAdd(hn::LoadU(d, q2 + e), kv, a2);
        a3 = hn::MulAdd(hn::LoadU(d, q3 + e), kv, a3);
      }
      if (ragged) {
        const auto kv = k_padded ? hn::LoadU(d, kr + full) : hn::MaskedLoad(tail, d, kr + full);
        a0 = hn::MulAdd(hn::LoadU(d, q0 + full), kv, a0);
        a1 = hn::MulAdd(hn::LoadU(d, q1 + full), kv, a1);
        a2 = hn::MulAdd(hn::LoadU(d, q2 + full), kv, a2);
        a3 = hn::MulAdd(hn::LoadU(d, q3 + full), kv, a3);
      }
      float* sj = s + r0 * lds + j;
      sj[0] = hn::GetLane(hn::SumOfLanes(d, a0));
      sj[lds] = hn::GetLane(hn::SumOfLanes(d, a1));
      sj[2 * lds] = hn::GetLane(hn::SumOfLanes(d, a2));
      sj[3 * lds] = hn::GetLane(hn::SumOfLanes(d, a3));
    }
  }
}

}  // namespace swa::ops::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
