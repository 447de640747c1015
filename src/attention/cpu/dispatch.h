// Which SIMD target the CPU kernels run on. The kernels are compiled for several
// Highway targets (portable EMU128, AVX2, AVX-512) and the best one the CPU supports is
// chosen at run time; tests force each one in turn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace swa::attention::cpu {

// The compiled targets this CPU can run, best first (Highway target bits).
std::vector<int64_t> RunnableTargets();
std::string TargetName(int64_t target);
// Name of the target the kernels dispatch to now.
std::string ActiveTargetName();
// Restricts dispatch to `target` (0 restores the default). For tests.
void ForceTarget(int64_t target);
// y[i] = the kernels' exp of x[i] <= 0 (tile_ops-inl.h) on the active target. For tests.
void ExpNonPositiveForTest(const float* x, float* y, size_t n);

}  // namespace swa::attention::cpu
