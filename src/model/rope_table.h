// RoPE for whole token streams (docs/MODEL.md, "rotate half" as in Llama): the
// cos/sin of every position up to the longest segment seen, computed once in double, and
// the rotation of q or k rows at per-token positions, or its inverse (the transpose of a
// rotation), which is the backward.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace swa::model {

class RopeTable {
 public:
  // Pairs (x[i], x[i + D/2]) for i < D/2 turn by position * theta^(-2i/D).
  RopeTable(double theta, int64_t head_dim) : theta_(theta), dim_(head_dim) {}

  // Makes positions [0, count) available.
  void Reserve(int64_t count) {
    const int64_t half = dim_ / 2;
    for (int64_t p = static_cast<int64_t>(cos_.size()) / half; p < count; ++p) {
      for (int64_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(p) *
                             std::pow(theta_, -2.0 * static_cast<double>(i) / static_cast<double>(dim_));
        cos_.push_back(std::cos(angle));
        sin_.push_back(std::sin(angle));
      }
    }
  }

  // Rotates `rows` token rows of x ([rows, heads, D], row r at position positions[r]) in
  // place; with `inverse`, turns back by the same angles.
  template <class T>
  void Rotate(T* x, int64_t rows, int64_t heads, const int32_t* positions, bool inverse) const {
    const int64_t half = dim_ / 2;
    for (int64_t r = 0; r < rows; ++r) {
      const double* c = cos_.data() + static_cast<int64_t>(positions[r]) * half;
      const double* s = sin_.data() + static_cast<int64_t>(positions[r]) * half;
      for (int64_t h = 0; h < heads; ++h) {
        T* v = x + (r * heads + h) * dim_;
        for (int64_t i = 0; i < half; ++i) {
          const T a = v[i], b = v[i + half];
          const T ci = static_cast<T>(c[i]), si = static_cast<T>(inverse ? -s[i] : s[i]);
          v[i] = a * ci - b * si;
          v[i + half] = b * ci + a * si;
        }
      }
    }
  }

 private:
  double theta_;
  int64_t dim_;
  std::vector<double> cos_, sin_;  // [positions][D/2]
};

}  // namespace swa::model
