// The plain twins of the SIMD ops (ops/kernels.h): one element at a time, in double where
// the op computes, so that ops_test can check every target against them.
#pragma once

#include <cstddef>

#include "common/dtype.h"
#include "ops/kernels.h"

namespace swa::ops::scalar {

double Exp(float x);                 // exp in double
double Tanh(float x);                // tanh in double
double Softcap(float x, float cap);  // cap * tanh(x / cap) in double

void RowToFloat(const void* src, DType dtype, size_t n, size_t n_padded, float* dst);
void RowFromFloat(const float* src, float mul, size_t n, DType dtype, void* dst);
bool AllFinite(const float* rows, size_t stride, size_t count, size_t dim);

// TileGemm's result with double sums, for a target of `lanes` float lanes: C's columns
// [0, n rounded up to lanes) of each row are written (B beyond n reads as 0 unless
// b_padded); with bands, only each group's band is written (TileGemm's other vectors
// are unspecified).
void TileGemm(const GemmArgs& args, size_t lanes);
// DotRows with double sums (only rows < rows are written).
void DotRows(size_t rows, size_t cols, size_t dim, const float* q, size_t ldq, const float* k, size_t ldk,
             float* s, size_t lds);

}  // namespace swa::ops::scalar
