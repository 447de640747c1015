// Elementwise math per Highway target, shared by every kernel so that the forward, the
// decode path and the backward round the same way: the softmax's exp of non-positive
// arguments and the tanh of logit soft-capping. The plain twins are in ops/scalar.h.
// Included once per target, hence the toggling guard.
#if defined(SWA_OPS_MATH_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SWA_OPS_MATH_INL_H_
#undef SWA_OPS_MATH_INL_H_
#else
#define SWA_OPS_MATH_INL_H_
#endif

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace swa::ops::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// exp(x), meant for x <= 0 (and -inf), propagating NaN (Highway's Exp maps NaN to 0), in about
// two thirds of the operations of a general exp: exp(x) = 2^n exp(r) with n = round(x /
// ln 2) and |r| <= ln(2) / 2, r = x - n ln 2 in two parts (Cody-Waite: n * kLn2Hi is
// exact, so r is nearly exact with or without FMA), exp(r) from a degree-6 polynomial
// (relative error 1.9e-9, fitted for relative error) and 2^n from exponent bits.
// exp(0) is exactly 1. x < -86.98 (n < -125, results below 2^-125.5) and -inf give 0:
// next to the largest term of a softmax, which is 1, such terms do not count.
template <class D, class V>
HWY_INLINE V ExpNonPositive(D d, V x) {
  const hn::RebindToSigned<D> di;
  // n is capped at 128, whose 2^n is +inf: a positive x (the backward's recomputed
  // probabilities, under an lse that does not fit the scores) overflows to +inf, as
  // exp does, instead of wrapping the exponent bits.
  const V n = hn::Min(hn::Round(hn::Mul(x, hn::Set(d, 1.44269504088896341f))), hn::Set(d, 128.0f));
  const V r = hn::NegMulAdd(n, hn::Set(d, 1.428606820286226e-06f),
                            hn::NegMulAdd(n, hn::Set(d, 0.693145751953125f), x));
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

// tanh(x), from Highway's contrib math (a rational approximation, within a few ulp).
template <class D, class V>
HWY_INLINE V TanhApprox(D d, V x) {
  return hn::Tanh(d, x);
}

// Logit soft-capping: cap * tanh(x / cap), given cap > 0 and inv_cap = 1 / cap.
template <class D, class V>
HWY_INLINE V Softcap(D d, V x, V cap, V inv_cap) {
  return hn::Mul(cap, TanhApprox(d, hn::Mul(x, inv_cap)));
}

}  // namespace swa::ops::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
