// `swa check`: runs the fast path against the oracle on one case per form of the rule
// and prints a pass table; with --random N, also N random cases (every form of the rule,
// dtype, layout and thread count) through the forward and the backward, printing the
// failures. Exit status 1 if any case fails.
#include <cstdio>

#include "cli/cases.h"
#include "cli/commands.h"
#include "harness/backward_case.h"
#include "harness/sweeps.h"

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
  if (opt.random > 0) {
    int random_failed = 0;
    for (const harness::AttnCase& c : harness::RandomCases(opt.seed, opt.random, opt.max_len)) {
      const harness::CaseResult f = harness::RunForwardCase(c);
      const harness::BackwardResult b = harness::RunBackwardCase(c);
      if (!f.Passed()) std::printf("forward FAIL %s: %s\n", c.Name().c_str(), f.Describe().c_str());
      if (!b.Passed()) std::printf("backward FAIL %s: %s\n", c.Name().c_str(), b.Describe().c_str());
      random_failed += f.Passed() && b.Passed() ? 0 : 1;
    }
    std::printf("%d random cases (seed %llu, lengths up to %lld), %d failed\n", opt.random,
                static_cast<unsigned long long>(opt.seed), static_cast<long long>(opt.max_len), random_failed);
    failed += random_failed;
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace swa::cli
