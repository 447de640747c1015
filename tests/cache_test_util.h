// Shared by the KV cache tests: a random stream (a whole sequence of q, k, v), the
// double-precision oracle's output over the whole sequence, and a driver that feeds the
// stream to a cache chunk by chunk.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "attention/reference.h"
#include "attention/validate.h"
#include "harness/attention_case.h"
#include "ops/rope.h"
#include "swa/kv_cache.hpp"

namespace swa::testing {

using harness::AttnCase;
using harness::CaseData;
using harness::GuardedTensor;
using harness::Layout;

// Rows [row0, row0 + count) of a [1, L, H, D] tensor, as a view.
inline swa_tensor Rows(const GuardedTensor& t, int64_t row0, int64_t count) {
  swa_tensor v = t.view();
  v.data = static_cast<char*>(v.data) + row0 * v.stride[1] * DTypeSize(t.dtype());
  v.shape[1] = count;
  return v;
}

// A copy of `src` with row l of every head rotated at position first + l.
inline std::unique_ptr<GuardedTensor> Rotated(const GuardedTensor& src, const ops::RopeSpec& spec,
                                              int64_t first, Layout layout = Layout::kContiguous) {
  const swa_tensor& s = src.view();
  auto out =
      std::make_unique<GuardedTensor>(src.dtype(), s.shape[0], s.shape[1], s.shape[2], s.shape[3], layout);
  ops::RopeAngles angles(spec);
  std::vector<float> row(s.shape[3]);
  for (int64_t l = 0; l < s.shape[1]; ++l) {
    angles.At(first + l);
    for (int64_t h = 0; h < s.shape[2]; ++h) {
      for (int64_t e = 0; e < s.shape[3]; ++e) row[e] = src.Get(0, l, h, e);
      ops::RotateRow(angles, row.data());
      for (int64_t e = 0; e < s.shape[3]; ++e) out->Set(0, l, h, e, row[e]);
    }
  }
  return out;
}

// A stream: the attention case over the whole sequence (lq == lk == length) and the
// cache settings. The case's params are the layer's.
struct Stream {
  AttnCase c;
  int64_t max_chunk = 1;
  bool rope = false;
  swa_position_mode mode = SWA_POSITIONS_ABSOLUTE;
  int64_t rope_dims = 0;

  std::string Name() const {
    std::string n = c.Name() + " max_chunk" + std::to_string(max_chunk);
    if (rope) n += " rope" + (rope_dims ? std::to_string(rope_dims) : std::string());
    if (mode == SWA_POSITIONS_CACHE_RELATIVE) n += " cache-relative";
    return n;
  }
  ops::RopeSpec Rope() const { return ops::RopeSpec{10000.0, rope_dims ? rope_dims : c.dim - c.dim % 2}; }
  KvCacheConfig Config(CaseData& data) const {
    KvCacheConfig cfg;
    cfg.DType(static_cast<swa_dtype>(c.dtype))
        .Heads(c.hq, c.hkv, c.dim)
        .Attention(data.params())
        .MaxChunk(max_chunk);
    cfg.Positions(mode);
    if (rope) cfg.Rope(10000.0f, rope_dims);
    return cfg;
  }
};

// Output rows and lse of a whole sequence.
struct Outputs {
  std::unique_ptr<GuardedTensor> out;
  std::vector<float> lse;  // [hq, length]
};

// The double-precision oracle's out (rounded to f32) and lse of attention over q, k, v
// of batch 1 under `params`.
inline Outputs Oracle(const swa_attention_params& params, const swa_tensor& q, const swa_tensor& k,
                      const swa_tensor& v) {
  const int64_t lq = q.shape[1], hq = q.shape[2], dim = q.shape[3];
  Outputs r;
  r.out = std::make_unique<GuardedTensor>(DType::kF32, 1, lq, hq, dim, Layout::kContiguous);
  r.lse.assign(hq * lq, 0.0f);
  // The oracle reads a problem built by the validation (which writes nothing).
  GuardedTensor unused_out(static_cast<DType>(q.dtype), 1, lq, hq, dim, Layout::kContiguous);
  const auto vp = attention::ValidateForward(&params, &q, &k, &v, &unused_out.view(), nullptr);
  const attention::ReferenceForwardResult ref = attention::ReferenceForward(vp->problem);
  for (int64_t l = 0; l < lq; ++l)
    for (int64_t h = 0; h < hq; ++h)
      for (int64_t e = 0; e < dim; ++e)
        r.out->Set(0, l, h, e, static_cast<float>(ref.out[(l * hq + h) * dim + e]));
  for (int64_t i = 0; i < hq * lq; ++i) r.lse[i] = static_cast<float>(ref.lse[i]);
  return r;
}

// The oracle over the whole sequence (q, k rotated at their absolute positions when the
// stream uses RoPE).
inline Outputs WholeSequenceReference(const Stream& s, CaseData& data) {
  std::unique_ptr<GuardedTensor> q, k;
  if (s.rope) {
    q = Rotated(data.q, s.Rope(), 0);
    k = Rotated(data.k, s.Rope(), 0);
  }
  return Oracle(data.params(), s.rope ? q->view() : data.q.view(), s.rope ? k->view() : data.k.view(),
                data.v.view());
}

// Max |got - want| / max(1, max |want|) over rows [row0, row0 + count), and the lse
// error; non-finite values must match exactly.
struct RowErrors {
  double out = 0, lse = 0;
  bool nonfinite_match = true;
};

inline RowErrors CompareRows(const GuardedTensor& got, const std::vector<float>& got_lse,
                             const GuardedTensor& want, const std::vector<float>& want_lse, int64_t row0,
                             int64_t count) {
  const swa_tensor& g = got.view();
  const int64_t hq = g.shape[2], dim = g.shape[3], length = g.shape[1];
  const int64_t want_length = want.view().shape[1];
  RowErrors e;
  double max_ref = 0, max_diff = 0;
  for (int64_t l = row0; l < row0 + count; ++l)
    for (int64_t h = 0; h < hq; ++h) {
      for (int64_t d = 0; d < dim; ++d) {
        const double a = got.Get(0, l, h, d), b = want.Get(0, l, h, d);
        if (!std::isfinite(a) || !std::isfinite(b)) {
          e.nonfinite_match = e.nonfinite_match && (a == b || (std::isnan(a) && std::isnan(b)));
          continue;
        }
        max_ref = std::max(max_ref, std::abs(b));
        max_diff = std::max(max_diff, std::abs(a - b));
      }
      const double a = got_lse[h * length + l], b = want_lse[h * want_length + l];
      if (!std::isfinite(a) || !std::isfinite(b)) {
        e.nonfinite_match = e.nonfinite_match && a == b;
      } else {
        e.lse = std::max(e.lse, std::abs(a - b) / std::max(1.0, std::abs(b)));
      }
    }
  e.out = max_diff / std::max(1.0, max_ref);
  return e;
}

// Feeds rows [row0, row0 + count) of the stream's q, k, v to sequence `id`: append then
// attend when count <= max_chunk, else append_attend (split inside the cache). Writes
// those rows of `out` and `lse` ([hq, length]).
inline void Feed(KvCache& cache, int64_t id, const Stream& s, CaseData& data, int64_t row0, int64_t count,
                 Outputs* out) {
  const AttnCase& c = s.c;
  swa_tensor q = Rows(data.q, row0, count), k = Rows(data.k, row0, count), v = Rows(data.v, row0, count);
  swa_tensor o = Rows(*out->out, row0, count);
  std::vector<float> lse(c.hq * count);
  if (count <= s.max_chunk) {
    cache.Append(id, k, v);
    cache.Attend(id, q, o, lse.data());
  } else {
    cache.AppendAttend(id, q, k, v, o, lse.data());
  }
  const int64_t length = out->out->view().shape[1];
  for (int64_t h = 0; h < c.hq; ++h)
    for (int64_t i = 0; i < count; ++i) out->lse[h * length + row0 + i] = lse[h * count + i];
}

inline Outputs EmptyOutputs(const AttnCase& c) {
  Outputs r;
  r.out = std::make_unique<GuardedTensor>(c.dtype, 1, c.lq, c.hq, c.dim, Layout::kPadded);
  r.out->Poison();
  r.lse.assign(c.hq * c.lq, std::nanf(""));
  return r;
}

// The tolerance of an output compared with the whole-sequence oracle: f32 2e-5; the
// 16-bit types allow one rounding of the output (the forward's tolerance).
inline double StreamTolerance(DType t) { return harness::ForwardTolerance(t); }

}  // namespace swa::testing
