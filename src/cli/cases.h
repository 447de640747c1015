// The named cases `swa check` runs: one per form of the rule, small enough to finish
// in seconds against the oracle.
#pragma once

#include <vector>

#include "harness/attention_case.h"

namespace swa::cli {

std::vector<harness::AttnCase> CheckCases(int threads);

}  // namespace swa::cli
