// bf16 products with AVX-512 BF16 (vdpbf16ps: two bf16 products per f32 lane and
// instruction, twice the f32 FMA rate), for the forward on bf16 inputs. Only the AVX-512
// target has it, and only CPUs with avx512bf16 run it (checked at run time).
//
// Operands are "pair words": 32 bits holding two consecutive elements of the reduction
// axis, the lower-indexed one in the low half, as vdpbf16ps consumes them. A bf16 row
// read as 32-bit words is already in this form; PairRows builds it across two rows.
#if defined(SWA_ATTENTION_CPU_BF16_DOT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SWA_ATTENTION_CPU_BF16_DOT_INL_H_
#undef SWA_ATTENTION_CPU_BF16_DOT_INL_H_
#else
#define SWA_ATTENTION_CPU_BF16_DOT_INL_H_
#endif

#include "hwy/highway.h"

#if HWY_TARGET == HWY_AVX3
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {

#define SWA_BF16_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

// Whether this CPU executes vdpbf16ps.
inline bool HasAvx512Bf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has;
}

// C[r][0 .. 16 NR) (+)= sum_t a(r, t) . B[t][0 .. 16 NR) over pair words: a(r, t) =
// a[r * a_rs + t * a_cs] broadcast, B rows of 16 NR words (stride ldb words).
template <int MR, int NR>
SWA_BF16_ATTR inline void MicroKernelBf16(size_t pairs, const uint32_t* a, size_t a_rs, size_t a_cs,
                                          const uint32_t* b, size_t ldb, float* c, size_t ldc, bool accumulate) {
  __m512 acc[MR][NR];
  for (int r = 0; r < MR; ++r) {
    for (int v = 0; v < NR; ++v) acc[r][v] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
  }
  for (size_t t = 0; t < pairs; ++t) {
    __m512bh bv[NR];
    for (int v = 0; v < NR; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + t * ldb + 16 * v);
    for (int r = 0; r < MR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r * a_rs + t * a_cs]));
      for (int v = 0; v < NR; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    for (int v = 0; v < NR; ++v) _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
  }
}

template <int NR>
SWA_BF16_ATTR inline void GemmColumnGroupBf16(size_t m, size_t pairs, const uint32_t* a, size_t a_rs, size_t a_cs,
                                              const uint32_t* b, size_t ldb, float* c, size_t ldc, bool accumulate) {
  constexpr int kRows = 6;
  size_t r = 0;
  for (; r + kRows <= m; r += kRows) {
    MicroKernelBf16<kRows, NR>(pairs, a + r * a_rs, a_rs, a_cs, b, ldb, c + r * ldc, ldc, accumulate);
  }
  const uint32_t* ar = a + r * a_rs;
  float* cr = c + r * ldc;
  switch (m - r) {
    case 5:
      MicroKernelBf16<5, NR>(pairs, ar, a_rs, a_cs, b, ldb, cr, ldc, accumulate);
      break;
    case 4:
      MicroKernelBf16<4, NR>(pairs, ar, a_rs, a_cs, b, ldb, cr, ldc, accumulate);
      break;
    case 3:
      MicroKernelBf16<3, NR>(pairs, ar, a_rs, a_cs, b, ldb, cr, ldc, accumulate);
      break;
    case 2:
      MicroKernelBf16<2, NR>(pairs, ar, a_rs, a_cs, b, ldb, cr, ldc, accumulate);
      break;
    case 1:
      MicroKernelBf16<1, NR>(pairs, ar, a_rs, a_cs, b, ldb, cr, ldc, accumulate);
      break;
    default:
      break;
  }
}

// C[m x 16 vectors] (+)= A[m x pairs] . B[pairs x 16 vectors] over pair words: the bf16
// counterpart of Gemm (tile_ops-inl.h). B rows hold whole vectors (zero padded); C rows
// are padded to whole vectors.
SWA_BF16_ATTR inline void GemmBf16(size_t m, size_t vectors, size_t pairs, const uint32_t* a, size_t a_rs,
                                   size_t a_cs, const uint32_t* b, size_t ldb, float* c, size_t ldc,
                                   bool accumulate) {
  size_t v = 0;
  for (; v + 4 <= vectors; v += 4) {
    GemmColumnGroupBf16<4>(m, pairs, a, a_rs, a_cs, b + 16 * v, ldb, c + 16 * v, ldc, accumulate);
  }
  for (; v < vectors; ++v) {
    GemmColumnGroupBf16<1>(m, pairs, a, a_rs, a_cs, b + 16 * v, ldb, c + 16 * v, ldc, accumulate);
  }
}

// out[u][e] = x0[e] | x1[e] << 16 for rows x0 = rows[2u], x1 = rows[2u + 1] (a missing
// odd last row is zero): pair words along the row axis, for `n` elements per row,
// zero-filled up to n_padded (a multiple of 16). Rows are bf16 bits.
SWA_BF16_ATTR inline void PairRows(const uint16_t* const* rows, size_t count, size_t n, size_t n_padded,
                                   uint32_t* out, size_t ld_out) {
  for (size_t u = 0; 2 * u < count; ++u) {
    const uint16_t* x0 = rows[2 * u];
    const uint16_t* x1 = 2 * u + 1 < count ? rows[2 * u + 1] : nullptr;
    uint32_t* o = out + u * ld_out;
    for (size_t e = 0; e < n_padded; e += 16) {
      const __mmask16 valid = e + 16 <= n ? static_cast<__mmask16>(0xffff)
                                          : (e < n ? static_cast<__mmask16>((1u << (n - e)) - 1) : 0);
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(valid, x0 + e));
      __m512i word = lo;
      if (x1 != nullptr) {
        const __m512i hi = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(valid, x1 + e));
        word = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
      }
      _mm512_storeu_si512(o + e, word);
    }
  }
}

// out[u][i] = bf16(p[2u][i]) | bf16(p[2u + 1][i]) << 16 for the f32 tile p (rows of
// stride ldp; an odd last row pairs with zero), lanes [0, lanes) (a multiple of 16):
// softmax weights as pair words along the key axis. Rounds to nearest even.
SWA_BF16_ATTR inline void PairWeights(const float* p, size_t rows, size_t ldp, size_t lanes, uint32_t* out,
                                      size_t ld_out) {
  for (size_t u = 0; 2 * u < rows; ++u) {
    const float* p0 = p + 2 * u * ldp;
    const float* p1 = 2 * u + 1 < rows ? p0 + ldp : nullptr;
    for (size_t i = 0; i < lanes; i += 16) {
      const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(p0 + i)));
      __m512i word = lo;
      if (p1 != nullptr) {
        const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(p1 + i)));
        word = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
      }
      _mm512_storeu_si512(out + u * ld_out + i, word);
    }
  }
}

#undef SWA_BF16_ATTR

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3
#endif  // include guard
