// `swa check`: runs the fast path against the oracle on one case per form of the rule
// and prints a pass table. Exit status 1 if any case fails.
#include <cstdio>

#include "cli/cases.h"
#include "cli/commands.h"

namespace swa::cli {

int RunCheck(const CheckOptions& opt) {
  const auto cases = CheckCases(opt.threads);
  int failed = 0;
  std::printf("%-4s %-70s %-10s %-10s %s\n", "#", "case", "out_err", "tolerance", "result");
  for (size_t i = 0; i < cases.size(); ++i) {
    const harness::CaseResult r = harness::RunForwardCase(cases[i]);
    const bool ok = r.Passed();
    failed += ok ? 0 : 1;
    std::printf("%-4zu %-70s %-10.2e %-10.1e %s\n", i + 1, cases[i].Name().c_str(), r.out_err, r.tolerance,
                ok ? "PASS" : ("FAIL: " + r.Describe()).c_str());
  }
  std::printf("%zu cases, %d failed\n", cases.size(), failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace swa::cli
