// One attention problem described as a printable value, run through the C API and
// compared with the oracle. The same case list drives the tests, `swa check` and the
// benchmarks (the design of ggml's test-backend-ops, in small).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "harness/guarded_tensor.h"
#include "swa/swa.h"

namespace swa::harness {

struct AttnCase {
  DType dtype = DType::kF32;
  int64_t batch = 1, lq = 16, lk = 16, hq = 2, hkv = 2, dim = 16;
  int64_t left = -1, right = -1;
  bool causal = false;
  std::vector<int64_t> head_left, head_right;  // per-head windows (empty: none)
  float scale = 0.0f, softcap = 0.0f;
  bool alibi = false;
  int64_t sink_tokens = 0;
  bool sink_logits = false;
  int64_t chunk = 0, overlap = 0;
  std::vector<int64_t> globals;
  std::vector<std::pair<int32_t, int32_t>> varlen;  // (lq, lk) per packed sequence
  Layout layout = Layout::kContiguous;
  int threads = 1;
  uint64_t seed = 1;

  std::string Name() const;
  int64_t TotalQ() const;  // rows of q (packed total for varlen)
  int64_t TotalK() const;
  int64_t Batch() const { return varlen.empty() ? batch : 1; }
};

// The tensors, parameters and owned arrays of one case, ready for the C API.
class CaseData {
 public:
  explicit CaseData(const AttnCase& c);
  const AttnCase& spec() const { return spec_; }
  swa_attention_params& params() { return params_; }
  GuardedTensor q, k, v, out;
  GuardedFloats lse;

 private:
  AttnCase spec_;
  swa_attention_params params_{};
  std::vector<int64_t> head_left_, head_right_, globals_;
  std::vector<float> slopes_, sinks_;
  std::vector<int32_t> cu_q_, cu_k_;
};

struct CaseResult {
  int code = 0;            // return code of swa_attention_forward
  std::string message;     // swa_last_error() when code != 0
  double out_err = 0;      // max |out - ref| / max |ref|
  double lse_err = 0;      // max |lse - ref| / max(1, |ref|) over finite entries
  double tolerance = 0;    // allowed out_err for the dtype
  bool nan_parity = true;  // NaN/Inf pattern of out and lse matches the oracle
  bool guards_intact = true;
  std::string first_mismatch;      // where the NaN/Inf pattern first differed
  std::vector<uint8_t> out_bytes;  // for bitwise comparisons across thread counts
  std::vector<uint8_t> lse_bytes;
  bool Passed() const;
  std::string Describe() const;
};

// Relative error allowed against the oracle (f32 2e-5, f16 2e-3,
// bf16 1.6e-2), and for the lse (always float32 arithmetic).
double ForwardTolerance(DType dtype);
constexpr double kLseTolerance = 1e-4;

// Runs the case through swa_attention_forward and the oracle. `prepare` (optional) may
// edit the inputs before the call (e.g. to plant NaNs).
CaseResult RunForwardCase(const AttnCase& c, void (*prepare)(CaseData&) = nullptr);

}  // namespace swa::harness
