// The backward counterpart of attention_case.h: one case run through
// swa_attention_backward, with guard bands around every buffer, and compared with the
// oracle backward.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/attention_case.h"

namespace swa::harness {

struct BackwardOptions {
  bool pass_dsink = true;             // pass a dsink buffer (zeros expected without sink logits)
  std::optional<Layout> grad_layout;  // layout of dq, dk, dv (default: the case's layout)
  bool check_oracle = true;           // false: only run it (e.g. to compare bits across runs)
};

struct BackwardResult {
  int code = 0;         // return code of swa_attention_backward
  std::string message;  // swa_last_error() when code != 0
  // max |fast - oracle| / max |oracle| per tensor (the absolute error if the oracle is 0).
  double dq_err = 0, dk_err = 0, dv_err = 0, dsink_err = 0;
  double tolerance = 0;
  bool all_finite = true;     // every gradient element was written and is finite
  bool guards_intact = true;  // nothing written outside the outputs' elements
  bool inputs_untouched = true;
  std::string first_bad;                                           // the first non-finite gradient element
  std::vector<uint8_t> dq_bytes, dk_bytes, dv_bytes, dsink_bytes;  // for bitwise comparisons
  bool Passed() const;
  std::string Describe() const;
};

// Relative error allowed against the oracle backward: f32 1e-4, bf16 3e-2, f16 3e-3.
double BackwardTolerance(DType dtype);

// Runs the oracle forward for out and lse (stored in the case's dtype, as a real forward
// would), draws dout, runs swa_attention_backward and compares with the oracle backward.
BackwardResult RunBackwardCase(const AttnCase& c, const BackwardOptions& options = {});

}  // namespace swa::harness
