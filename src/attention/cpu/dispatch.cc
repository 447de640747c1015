#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/dispatch.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "attention/cpu/dispatch.h"
#include "attention/cpu/tile_ops-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {

int64_t ThisTarget() { return HWY_TARGET; }

void ExpNonPositiveOf(const float* x, float* y, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(ExpNonPositive(d, hn::LoadU(d, x + i)), d, y + i);
  if (i < n) {
    const auto mask = hn::FirstN(d, n - i);
    hn::BlendedStore(ExpNonPositive(d, hn::MaskedLoad(mask, d, x + i)), mask, d, y + i);
  }
}

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::attention::cpu {

HWY_EXPORT(ThisTarget);
HWY_EXPORT(ExpNonPositiveOf);

std::vector<int64_t> RunnableTargets() {
  // HWY_TARGETS here is the library's own set (this file is compiled with the same
  // HWY_DISABLED_TARGETS as the kernels).
  std::vector<int64_t> out;
  const int64_t runnable = hwy::SupportedTargets() & HWY_TARGETS;
  for (int64_t bits = runnable; bits != 0; bits &= bits - 1) out.push_back(bits & -bits);
  return out;
}

std::string TargetName(int64_t target) { return hwy::TargetName(target); }

std::string ActiveTargetName() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(ThisTarget)()); }

void ForceTarget(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

void ExpNonPositiveForTest(const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(ExpNonPositiveOf)(x, y, n); }

}  // namespace swa::attention::cpu
#endif
