// Which SIMD target the kernels run on. Every Highway-based kernel (ops and the CPU
// attention kernels) is compiled for several targets (portable EMU128, AVX2, AVX-512)
// and the best one the CPU supports is chosen at run time; tests force each in turn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace swa::ops {

// The compiled targets this CPU can run, best first (Highway target bits).
std::vector<int64_t> RunnableTargets();
std::string TargetName(int64_t target);
// Name of the target the kernels dispatch to now.
std::string ActiveTargetName();
// Restricts dispatch to `target` (0 restores the default). For tests and benchmarks.
void ForceTarget(int64_t target);

}  // namespace swa::ops
