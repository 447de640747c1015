// Per-target tile operations shared by the CPU forward and backward: a register-blocked
// broadcast GEMM micro-kernel, dtype conversion of rows, and a NaN-preserving exp.
// Included once per Highway target (see forward.cc), hence the toggling guard.
#if defined(SWA_ATTENTION_CPU_TILE_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SWA_ATTENTION_CPU_TILE_OPS_INL_H_
#undef SWA_ATTENTION_CPU_TILE_OPS_INL_H_
#else
#define SWA_ATTENTION_CPU_TILE_OPS_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "attention/problem.h"
#include "common/dtype.h"
#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Register tile of the broadcast GEMM: MR rows x NR vectors of accumulators. Sized so
// that accumulators + NR loads + 1 broadcast fit the register file (16 on AVX2, 32 on
// AVX-512) with loads well under the FMA rate.
constexpr size_t kMR = HWY_TARGET == HWY_AVX3 ? 6 : 6;
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

// What one group of kMR rows of a banded GEMM computes (see Gemm): the vectors of C
// [vec_begin, vec_end) and the terms [k_begin, k_end) of the sum (ends past the last
// vector or term mean "to the end"). A group whose range is empty is skipped, and its
// C rows are left as they were.
struct RowGroupBand {
  uint32_t vec_begin, vec_end;
  uint32_t k_begin, k_end;
};

// The visible part of a partial tile of a plain band, from the rows [first[j], last[j]]
// (absolute; both ends non-decreasing in j; first > last when no row does) that see each
// key j of the tile, whose rows start at row0: for each group of kMR keys, the interval
// of tile rows that see one of them, and for each group of kMR rows, the interval of
// keys one of them sees (keys outside it are hidden from the whole group). Half-open;
// empty as [0, 0).
struct TileInterval {
  uint32_t begin = 0, end = 0;
};

HWY_INLINE void TileIntervals(const int64_t* first, const int64_t* last, size_t cols, size_t rows, int64_t row0,
                              TileInterval* key_groups, TileInterval* row_groups) {
  for (size_t j0 = 0, g = 0; j0 < cols; j0 += kMR, ++g) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t j = j0; j < std::min(cols, j0 + kMR); ++j) {
      if (first[j] > last[j]) continue;
      lo = std::min(lo, first[j] - row0);
      hi = std::max(hi, last[j] - row0);
    }
    key_groups[g] = lo > hi ? TileInterval{} : TileInterval{static_cast<uint32_t>(lo), static_cast<uint32_t>(hi + 1)};
  }
  // Both ends being monotone, the keys seen by rows [r0, r1) run from the first key
  // whose last row reaches r0 to the last key whose first row is before r1.
  size_t begin = 0, end = 0;
  for (size_t r0 = 0, g = 0; r0 < rows; r0 += kMR, ++g) {
    const int64_t r_first = row0 + static_cast<int64_t>(r0);
    const int64_t r_last = row0 + static_cast<int64_t>(std::min(rows, r0 + kMR)) - 1;
    while (begin < cols && last[begin] < r_first) ++begin;
    while (end < cols && first[end] <= r_last) ++end;
    row_groups[g] = end > begin ? TileInterval{static_cast<uint32_t>(begin), static_cast<uint32_t>(end)} : TileInterval{};
  }
}

// Bands for a GEMM whose C rows are one side of a tile: the interval as C vectors (an
// operand's lanes) or as terms of the sum.
HWY_INLINE void BandsAsVectors(const TileInterval* groups, size_t count, size_t lanes, RowGroupBand* bands) {
  for (size_t g = 0; g < count; ++g) {
    bands[g] = {static_cast<uint32_t>(groups[g].begin / lanes),
                static_cast<uint32_t>((groups[g].end + lanes - 1) / lanes), 0, UINT32_MAX};
  }
}
HWY_INLINE void BandsAsTerms(const TileInterval* groups, size_t count, RowGroupBand* bands) {
  for (size_t g = 0; g < count; ++g) bands[g] = {0, UINT32_MAX, groups[g].begin, groups[g].end};
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
    switch (m - r) {
#define SWA_TAIL_CASE(R)                                                                                \
  case R:                                                                                               \
    if constexpr (R < MR) MicroKernel<R, NR>(kn, ar, a_rs, a_cs, br, ldb, cr, ldc, accumulate, last_mask); \
    break;
      SWA_TAIL_CASE(1)
      SWA_TAIL_CASE(2)
      SWA_TAIL_CASE(3)
      SWA_TAIL_CASE(4)
      SWA_TAIL_CASE(5)
      SWA_TAIL_CASE(6)
      SWA_TAIL_CASE(7)
#undef SWA_TAIL_CASE
      default:
        break;
    }
  }
}

// C[m x n] (+)= A[m x k] * B[k x n], A broadcast through strides (a_rs, a_cs), B rows
// of stride ldb, C rows of stride ldc padded to a whole number of vectors. If
// `b_padded` is false, B rows are read only up to n (the last vector is masked).
// `bands` (or null: everything) limits each group of MR rows of C to part of its
// vectors and part of the sum, so that the parts of a tile the mask hides are not
// computed; bands[g] describes rows [g * MR, (g + 1) * MR).
template <size_t MR = kMR, size_t NR = kNR>
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

// exp(x), meant for x <= 0 (and -inf), propagating NaN (Highway's Exp maps NaN to 0), in about
// two thirds of the operations of a general exp: exp(x) = 2^n exp(r) with n = round(x /
// ln 2) and |r| <= ln(2) / 2, r = x - n ln 2 in two parts (Cody-Waite: n * kLn2Hi is
// exact, so r is nearly exact with or without FMA), exp(r) from a degree-6 polynomial
// (relative error 1.9e-9, fitted for relative error) and 2^n from exponent bits.
// exp(0) is exactly 1. x < -86.98 (n < -125, results below 2^-125.5) and -inf give 0:
// next to the largest term of a softmax, which is 1, such terms do not count.
template <class V>
HWY_INLINE V ExpNonPositive(DF d, V x) {
  const hn::RebindToSigned<DF> di;
  // n is capped at 128, whose 2^n is +inf: a positive x (the backward's recomputed
  // probabilities, under an lse that does not fit the scores) overflows to +inf, as
  // exp does, instead of wrapping the exponent bits.
  const V n = hn::Min(hn::Round(hn::Mul(x, hn::Set(d, 1.44269504088896341f))), hn::Set(d, 128.0f));
  const V r = hn::NegMulAdd(n, hn::Set(d, 1.428606820286226e-06f), hn::NegMulAdd(n, hn::Set(d, 0.693145751953125f), x));
  V p = hn::Set(d, 1.383677823e-03f);
  p = hn::MulAdd(p, r, hn::Set(d, 8.374802768e-03f));
  p = hn::MulAdd(p, r, hn::Set(d, 4.166822508e-02f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.666641980e-01f));
  p = hn::MulAdd(p, r, hn::Set(d, 4.999999106e-01f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  // 2^n as a float, n in [-125, 128] for every lane kept. A NaN x makes p NaN, and the
  // product stays NaN whatever n converted to.
  const V pow2n = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127))));
  return hn::IfThenZeroElse(hn::Lt(n, hn::Set(d, -125.0f)), hn::Mul(p, pow2n));
}

// Converts n elements of a row of `dtype` to float; writes zeros up to n_padded.
HWY_INLINE void RowToFloat(const void* src, DType dtype, size_t n, size_t n_padded, float* HWY_RESTRICT dst) {
  const DF d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  if (dtype == DType::kF32) {
    const float* s = static_cast<const float*>(src);
    for (; i + L <= n; i += L) hn::StoreU(hn::LoadU(d, s + i), d, dst + i);
    for (; i < n; ++i) dst[i] = s[i];
  } else if (dtype == DType::kBF16) {
    const hn::Rebind<hwy::bfloat16_t, DF> dbf;
    const hwy::bfloat16_t* s = static_cast<const hwy::bfloat16_t*>(src);
    for (; i + L <= n; i += L) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dbf, s + i)), d, dst + i);
    for (; i < n; ++i) dst[i] = BF16ToFloat(static_cast<const uint16_t*>(src)[i]);
  } else {
#if HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
    // Hardware conversion (F16C, AVX-512); the emulated targets' software conversion
    // does not keep NaN, so they use the exact scalar one below.
    const hn::Rebind<hwy::float16_t, DF> dh;
    const hwy::float16_t* s = static_cast<const hwy::float16_t*>(src);
    for (; i + L <= n; i += L) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, s + i)), d, dst + i);
#endif
    for (; i < n; ++i) dst[i] = F16ToFloat(static_cast<const uint16_t*>(src)[i]);
  }
  for (; i < n_padded; ++i) dst[i] = 0.0f;
}

// Stores n floats to a row of `dtype` (round to nearest even), dst[i] = src[i] * mul.
HWY_INLINE void RowFromFloat(const float* HWY_RESTRICT src, float mul, size_t n, DType dtype, void* dst) {
  const DF d;
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

// Finishes query row i of head h of a sequence from its softmax state: out = o / l and
// lse = m + log(l). A row that saw no key (l == 0) writes zeros and +inf (with a learned
// sink, l >= 1 and lse is the sink logit).
HWY_INLINE void FinishRow(const Problem& p, const Sequence& seq, int64_t h, int64_t i, const float* o, float m,
                          float l) {
  void* dst = static_cast<char*>(p.out.data) + p.out.Offset(seq.batch, seq.q_begin + i, h) * DTypeSize(p.dtype);
  RowFromFloat(o, l != 0 ? 1.0f / l : 0.0f, static_cast<size_t>(p.dim), p.dtype, dst);
  if (p.lse) p.lse[p.LseIndex(seq, h, i)] = l != 0 ? m + std::log(l) : std::numeric_limits<float>::infinity();
}

// Rows [row0, row0 + rows) of one head as packed float rows in `buffer` (stride
// dim_padded, zero padding).
struct FloatRows {
  const float* data;
  size_t stride;
  bool padded;  // rows may be read as whole vectors up to dim_padded
};

// Rows of one head to bring into cache while LoadRows copies others: rows of one head
// are strided (a different page each for large H * D), which the hardware prefetchers
// do not follow. LoadRows asks for row r of this block while it copies its own row r,
// so that the requests are spread out and the miss queues do not overflow.
struct PrefetchBlock {
  const TensorRef* tensor = nullptr;  // null: nothing to prefetch
  int64_t row0 = 0, rows = 0;
  int64_t head = -1;  // -1: the head being loaded (or passed to PrefetchRows)
};

// Requests the cache lines of [p, p + bytes).
HWY_INLINE void PrefetchBytes(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t b = 0; b < bytes; b += 64) hwy::Prefetch(c + b);
  hwy::Prefetch(c + bytes - 1);
}

// Requests the cache lines of [p, p + bytes) for writing (prefetchw where the compiler
// has it; a plain prefetch otherwise).
HWY_INLINE void PrefetchBytesForWrite(void* p, size_t bytes) {
  char* c = static_cast<char*>(p);
  for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 1, 3);
  __builtin_prefetch(c + bytes - 1, 1, 3);
}

// Issues the prefetches of one block's rows.
HWY_INLINE void PrefetchRows(const PrefetchBlock& block, DType dtype, int64_t batch, int64_t head) {
  if (block.tensor == nullptr) return;
  const TensorRef& t = *block.tensor;
  const size_t esize = DTypeSize(dtype);
  const size_t bytes = static_cast<size_t>(t.dim) * esize;
  if (block.head >= 0) head = block.head;
  for (int64_t r = 0; r < block.rows; ++r) {
    PrefetchBytes(static_cast<const char*>(t.data) + t.Offset(batch, block.row0 + r, head) * esize, bytes);
  }
}

HWY_INLINE FloatRows LoadRows(const TensorRef& t, DType dtype, int64_t batch, int64_t row0, int64_t rows,
                              int64_t head, size_t dim_padded, float* buffer, PrefetchBlock prefetch = {}) {
  // Rows are copied even for f32: read in place, rows of a [L, H, D] tensor sit
  // H * D * 4 bytes apart (4 KiB for 8 heads of 128), all in the same L1 set, and the
  // micro-kernels thrash; a packed tile also reads as whole vectors (no tail masks).
  const size_t esize = DTypeSize(dtype);
  const int64_t prefetch_rows = prefetch.tensor != nullptr ? prefetch.rows : 0;
  const int64_t prefetch_head = prefetch.head >= 0 ? prefetch.head : head;
  for (int64_t r = 0; r < std::max(rows, prefetch_rows); ++r) {
    if (r < prefetch_rows) {
      const TensorRef& pt = *prefetch.tensor;
      const size_t bytes = static_cast<size_t>(pt.dim) * esize;
      PrefetchBytes(static_cast<const char*>(pt.data) + pt.Offset(batch, prefetch.row0 + r, prefetch_head) * esize,
                    bytes);
    }
    if (r < rows) {
      const void* src = static_cast<const char*>(t.data) + t.Offset(batch, row0 + r, head) * esize;
      RowToFloat(src, dtype, t.dim, dim_padded, buffer + r * dim_padded);
    }
  }
  return {buffer, dim_padded, true};
}

// Whether the first `dim` entries of `count` rows are all finite: x - x is 0 for a
// finite x and NaN otherwise, and a sum of such terms stays NaN.
HWY_INLINE bool AllFinite(const FloatRows& rows, size_t count, size_t dim) {
  const DF d;
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

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
