#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/layer_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cmath>
#include <limits>

#include "hwy/highway.h"
#include "ops/layer_kernels.h"
#include "ops/math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace swa::ops::HWY_NAMESPACE {
namespace {

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Calls f(offset, mask) for whole vectors of [0, n) and then the masked tail.
template <class F>
HWY_INLINE void ForVectors(size_t n, const F& f) {
  const DF d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) f(i, hn::FirstN(d, L));
  if (i < n) f(i, hn::FirstN(d, n - i));
}

HWY_INLINE VF LoadM(const float* p, hn::Mask<DF> m) { return hn::MaskedLoad(m, DF(), p); }
HWY_INLINE void StoreM(VF v, hn::Mask<DF> m, float* p) { hn::BlendedStore(v, m, DF(), p); }

// sigmoid(g) from the exp of a non-positive argument: e = exp(-|g|) is in (0, 1], and
// sigmoid is 1 / (1 + e) for g >= 0, e / (1 + e) below.
HWY_INLINE VF Sigmoid(VF g) {
  const DF d;
  const VF e = ExpNonPositive(d, hn::Neg(hn::Abs(g)));
  const VF one = hn::Set(d, 1.0f);
  const VF inv = hn::Div(one, hn::Add(one, e));
  return hn::IfThenElse(hn::Ge(g, hn::Zero(d)), inv, hn::Mul(e, inv));
}

}  // namespace

void RmsNormForwardImpl(const float* x, const float* w, double eps, int64_t n, int64_t d, float* y,
                        float* rstd) {
  const DF df;
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * d;
    VF acc = hn::Zero(df);
    ForVectors(static_cast<size_t>(d), [&](size_t i, auto m) {
      const VF v = LoadM(xr + i, m);
      acc = hn::MulAdd(v, v, acc);
    });
    const float s = 1.0f / std::sqrt(hn::GetLane(hn::SumOfLanes(df, acc)) / static_cast<float>(d) +
                                     static_cast<float>(eps));
    rstd[r] = s;
    const VF vs = hn::Set(df, s);
    ForVectors(static_cast<size_t>(d), [&](size_t i, auto m) {
      StoreM(hn::Mul(hn::Mul(LoadM(xr + i, m), vs), LoadM(w + i, m)), m, y + r * d + i);
    });
  }
}

void RmsNormBackwardImpl(const float* x, const float* w, const float* rstd, const float* dy, int64_t n,
                         int64_t d, float* dx, float* dw) {
  const DF df;
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * d;
    const float* dyr = dy + r * d;
    const float s = rstd[r];
    VF acc = hn::Zero(df);
    ForVectors(static_cast<size_t>(d), [&](size_t i, auto m) {
      acc = hn::MulAdd(hn::Mul(LoadM(xr + i, m), LoadM(w + i, m)), LoadM(dyr + i, m), acc);
    });
    const float c = hn::GetLane(hn::SumOfLanes(df, acc)) * s * s / static_cast<float>(d);
    const VF vs = hn::Set(df, s), vc = hn::Set(df, c);
    ForVectors(static_cast<size_t>(d), [&](size_t i, auto m) {
      const VF xv = LoadM(xr + i, m), dyv = LoadM(dyr + i, m);
      // s * (w dy - x c)
      StoreM(hn::Mul(vs, hn::NegMulAdd(xv, vc, hn::Mul(LoadM(w + i, m), dyv))), m, dx + r * d + i);
      StoreM(hn::MulAdd(hn::Mul(dyv, xv), vs, LoadM(dw + i, m)), m, dw + i);
    });
  }
}

void SwiGluForwardImpl(const float* gate, const float* up, int64_t n, float* out) {
  ForVectors(static_cast<size_t>(n), [&](size_t i, auto m) {
    const VF g = LoadM(gate + i, m);
    StoreM(hn::Mul(hn::Mul(g, Sigmoid(g)), LoadM(up + i, m)), m, out + i);
  });
}

void SwiGluBackwardImpl(const float* gate, const float* up, const float* dout, int64_t n, float* dgate,
                        float* dup) {
  const DF df;
  const VF one = hn::Set(df, 1.0f);
  ForVectors(static_cast<size_t>(n), [&](size_t i, auto m) {
    const VF g = LoadM(gate + i, m), u = LoadM(up + i, m), o = LoadM(dout + i, m);
    const VF s = Sigmoid(g);
    // dgate = dout * up * s * (1 + g (1 - s)); dup = dout * g * s
    StoreM(hn::Mul(hn::Mul(hn::Mul(o, u), s), hn::MulAdd(g, hn::Sub(one, s), one)), m, dgate + i);
    StoreM(hn::Mul(o, hn::Mul(g, s)), m, dup + i);
  });
}

double SoftmaxCrossEntropyImpl(const float* z, const int32_t* targets, int64_t n, int64_t v, double cap,
                               int32_t ignore, float scale, float* dz) {
  const DF df;
  const bool capped = cap > 0;
  const VF vcap = hn::Set(df, static_cast<float>(cap)),
           inv_cap = hn::Set(df, capped ? 1.0f / static_cast<float>(cap) : 0.0f);
  const VF neg_inf = hn::Set(df, -std::numeric_limits<float>::infinity());
  const VF one = hn::Set(df, 1.0f);
  const size_t cols = static_cast<size_t>(v);
  double total = 0;
  for (int64_t r = 0; r < n; ++r) {
    const float* zr = z + r * v;
    float* dr = dz + r * v;
    const int32_t t = targets[r];
    if (t == ignore) {
      std::fill(dr, dr + v, 0.0f);
      continue;
    }
    auto capped_of = [&](VF x) { return capped ? Softcap(df, x, vcap, inv_cap) : x; };
    VF vmax = neg_inf;
    ForVectors(cols, [&](size_t i, auto m) {
      vmax = hn::Max(vmax, hn::IfThenElse(m, capped_of(LoadM(zr + i, m)), neg_inf));
    });
    const float mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const VF vm = hn::Set(df, mx);
    VF sum = hn::Zero(df);
    ForVectors(cols, [&](size_t i, auto m) {
      sum = hn::Add(sum, hn::IfThenElseZero(m, ExpNonPositive(df, hn::Sub(capped_of(LoadM(zr + i, m)), vm))));
    });
    const float lse = mx + std::log(hn::GetLane(hn::SumOfLanes(df, sum)));
    const float zt = zr[t];
    const float yt = capped ? static_cast<float>(cap) *
                                  hn::GetLane(TanhApprox(df, hn::Set(df, zt / static_cast<float>(cap))))
                            : zt;
    total += static_cast<double>(lse - yt);
    const VF vl = hn::Set(df, lse), vscale = hn::Set(df, scale);
    ForVectors(cols, [&](size_t i, auto m) {
      const VF x = LoadM(zr + i, m);
      VF g;
      if (capped) {
        const VF th = TanhApprox(df, hn::Mul(x, inv_cap));
        g = hn::Mul(hn::Mul(ExpNonPositive(df, hn::Sub(hn::Mul(vcap, th), vl)), vscale),
                    hn::NegMulAdd(th, th, one));
      } else {
        g = hn::Mul(ExpNonPositive(df, hn::Sub(x, vl)), vscale);
      }
      StoreM(g, m, dr + i);
    });
    // The target's one-hot term, through the cap's derivative.
    const float th_t = capped ? yt / static_cast<float>(cap) : 0.0f;
    dr[t] -= capped ? scale * (1.0f - th_t * th_t) : scale;
  }
  return total;
}

}  // namespace swa::ops::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::ops {

HWY_EXPORT(RmsNormForwardImpl);
HWY_EXPORT(RmsNormBackwardImpl);
HWY_EXPORT(SwiGluForwardImpl);
HWY_EXPORT(SwiGluBackwardImpl);
HWY_EXPORT(SoftmaxCrossEntropyImpl);

void RmsNormForward(const float* x, const float* w, double eps, int64_t n, int64_t d, float* y, float* rstd) {
  HWY_DYNAMIC_DISPATCH(RmsNormForwardImpl)(x, w, eps, n, d, y, rstd);
}
void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int64_t n, int64_t d,
                     float* dx, float* dw) {
  HWY_DYNAMIC_DISPATCH(RmsNormBackwardImpl)(x, w, rstd, dy, n, d, dx, dw);
}
void SwiGluForward(const float* gate, const float* up, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SwiGluForwardImpl)(gate, up, n, out);
}
void SwiGluBackward(const float* gate, const float* up, const float* dout, int64_t n, float* dgate,
                    float* dup) {
  HWY_DYNAMIC_DISPATCH(SwiGluBackwardImpl)(gate, up, dout, n, dgate, dup);
}
double SoftmaxCrossEntropy(const float* z, const int32_t* targets, int64_t n, int64_t v, double cap,
                           int32_t ignore, float scale, float* dz) {
  return HWY_DYNAMIC_DISPATCH(SoftmaxCrossEntropyImpl)(z, targets, n, v, cap, ignore, scale, dz);
}

}  // namespace swa::ops
#endif
