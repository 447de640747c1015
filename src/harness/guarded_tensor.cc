#include "harness/guarded_tensor.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace swa::harness {

const char* LayoutName(Layout l) {
  switch (l) {
    case Layout::kContiguous:
      return "contiguous";
    case Layout::kPadded:
      return "padded";
    case Layout::kHeadMajor:
      return "head-major";
  }
  return "?";
}

GuardedTensor::GuardedTensor(DType dtype, int64_t batch, int64_t seqlen, int64_t heads, int64_t dim,
                             Layout layout)
    : dtype_(dtype) {
  view_.dtype = static_cast<swa_dtype>(dtype);
  view_.device = SWA_CPU;
  const int64_t shape[4] = {batch, seqlen, heads, dim};
  std::copy(shape, shape + 4, view_.shape);
  int64_t* st = view_.stride;
  st[3] = 1;
  switch (layout) {
    case Layout::kContiguous:
      st[2] = dim;
      st[1] = heads * dim;
      st[0] = seqlen * st[1];
      break;
    case Layout::kPadded:
      st[2] = dim + 3;
      st[1] = heads * st[2] + 5;
      st[0] = seqlen * st[1] + 7;
      break;
    case Layout::kHeadMajor:
      st[1] = dim + 1;
      st[2] = seqlen * st[1] + 2;
      st[0] = heads * st[2];
      break;
  }
  const int64_t esize = DTypeSize(dtype);
  int64_t span = 0;
  if (batch > 0 && seqlen > 0) {
    span = (st[0] * (batch - 1) + st[1] * (seqlen - 1) + st[2] * (heads - 1) + dim) * esize;
  }
  buffer_.assign(span + 2 * kGuardBytes, kGuardByte);
  is_element_.assign(buffer_.size(), 0);
  view_.data = span > 0 ? buffer_.data() + kGuardBytes : nullptr;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t l = 0; l < seqlen; ++l)
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t first = kGuardBytes + Offset(b, l, h, 0) * esize;
        std::memset(&is_element_[first], 1, dim * esize);
      }
}

float GuardedTensor::Get(int64_t b, int64_t l, int64_t h, int64_t d) const {
  return LoadAsFloat(view_.data, dtype_, Offset(b, l, h, d));
}

void GuardedTensor::Set(int64_t b, int64_t l, int64_t h, int64_t d, float x) {
  StoreFromFloat(view_.data, dtype_, Offset(b, l, h, d), x);
}

void GuardedTensor::FillNormal(std::mt19937_64& rng, float stddev) {
  std::normal_distribution<float> dist(0.0f, stddev);
  ForEachIndex([&](int64_t b, int64_t l, int64_t h, int64_t d) { Set(b, l, h, d, dist(rng)); });
}

void GuardedTensor::Poison() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  ForEachIndex([&](int64_t b, int64_t l, int64_t h, int64_t d) { Set(b, l, h, d, nan); });
}

bool GuardedTensor::GuardsIntact() const {
  for (size_t i = 0; i < buffer_.size(); ++i) {
    if (!is_element_[i] && buffer_[i] != kGuardByte) return false;
  }
  return true;
}

std::vector<uint8_t> GuardedTensor::ElementBytes() const {
  std::vector<uint8_t> bytes;
  const int64_t esize = DTypeSize(dtype_);
  for (int64_t b = 0; b < view_.shape[0]; ++b)
    for (int64_t l = 0; l < view_.shape[1]; ++l)
      for (int64_t h = 0; h < view_.shape[2]; ++h) {
        const uint8_t* p = static_cast<const uint8_t*>(view_.data) + Offset(b, l, h, 0) * esize;
        bytes.insert(bytes.end(), p, p + view_.shape[3] * esize);
      }
  return bytes;
}

GuardedFloats::GuardedFloats(int64_t count, float fill) : count_(count) {
  buffer_.assign(count + 2 * kGuard, 0.0f);
  for (int64_t i = 0; i < kGuard; ++i) {
    buffer_[i] = -12345.0f;
    buffer_[count + kGuard + i] = -12345.0f;
  }
  std::fill(buffer_.begin() + kGuard, buffer_.begin() + kGuard + count, fill);
}

bool GuardedFloats::GuardsIntact() const {
  for (int64_t i = 0; i < kGuard; ++i) {
    if (buffer_[i] != -12345.0f || buffer_[count_ + kGuard + i] != -12345.0f) return false;
  }
  return true;
}

}  // namespace swa::harness
