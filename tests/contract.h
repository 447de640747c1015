// docs/ATTENTION.md, written out literally and independently of src/attention/rule.*,
// so that the library's rule and schedule are checked against the text of the contract.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace swa::testing {

struct ContractRule {
  int64_t lq = 0, lk = 0;
  int64_t left = -1, right = -1;
  bool causal = false;
  int64_t chunk = 0, overlap = 0;
  int64_t sinks = 0;
  std::vector<int64_t> globals;
  // Absolute positions of query row 0 and key 0 (a KV-cache segment); by default the
  // keys are 0..lk-1 and the queries bottom-right aligned.
  bool framed = false;
  int64_t first_query = 0, first_key = 0;

  bool IsGlobal(int64_t pos) const { return std::find(globals.begin(), globals.end(), pos) != globals.end(); }

  bool Visible(int64_t i, int64_t j) const {
    if (j < 0 || j >= lk) return false;
    const int64_t p = framed ? first_query + i : i + (lk - lq);
    const int64_t jj = j;
    j = framed ? first_key + jj : jj;  // from here on, absolute positions
    bool local;
    if (chunk > 0) {
      const int64_t c = static_cast<int64_t>(std::floor(static_cast<double>(p) / static_cast<double>(chunk)));
      local = j >= c * chunk - overlap && j <= (c + 1) * chunk - 1 + overlap;
    } else {
      local = (left < 0 || j >= p - left) && (right < 0 || j <= p + right);
    }
    const bool extra = j < sinks || IsGlobal(j) || IsGlobal(p);
    return (local || extra) && (!causal || j <= p);
  }
};

}  // namespace swa::testing
