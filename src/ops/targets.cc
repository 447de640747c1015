#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/targets.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "ops/targets.h"

HWY_BEFORE_NAMESPACE();
namespace swa::ops::HWY_NAMESPACE {

int64_t ThisTarget() { return HWY_TARGET; }

}  // namespace swa::ops::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace swa::ops {

HWY_EXPORT(ThisTarget);

std::vector<int64_t> RunnableTargets() {
  // HWY_TARGETS here is the library's own set (every file is compiled with the same
  // HWY_DISABLED_TARGETS).
  std::vector<int64_t> out;
  const int64_t runnable = hwy::SupportedTargets() & HWY_TARGETS;
  for (int64_t bits = runnable; bits != 0; bits &= bits - 1) out.push_back(bits & -bits);
  return out;
}

std::string TargetName(int64_t target) { return hwy::TargetName(target); }

std::string ActiveTargetName() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(ThisTarget)()); }

void ForceTarget(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

}  // namespace swa::ops
#endif
