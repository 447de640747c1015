#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/dispatch.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "attention/cpu/dispatch.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace swa::attention::cpu::HWY_NAMESPACE {

int64_t ThisTarget() { return HWY_TARGET; }

}  // namespace swa::attention::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::attention::cpu {

HWY_EXPORT(ThisTarget);

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

}  // namespace swa::attention::cpu
#endif
