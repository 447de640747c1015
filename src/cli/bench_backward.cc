// `swa bench backward`: the backward against the forward at the same shape, in one
// process: each repetition takes an FMA-peak burst, then times a forward and a backward
// back to back. Reports backward/forward time and the backward's share of the FMA peak
// counting 10 * Hq * D FLOPs per visible pair (the five products of FlashAttention-2).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "attention/rule.h"
#include "cli/bench_util.h"
#include "cli/commands.h"
#include "cli/machine.h"
#include "common/parallel.h"
#include "swa/swa.hpp"

namespace swa::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct BackwardShape {
  swa_dtype dtype = SWA_F32;
  int64_t n = 16384, heads = 8, dim = 128, window = 1024;  // causal window of W tokens
};

struct BackwardResult {
  BackwardShape shape;
  double forward_seconds = 0, backward_seconds = 0;  // best of the repetitions
  double ratio = 0;                                  // median of backward / forward per repetition
  double backward_gflops = 0, backward_share = 0;    // at the best time, over the run's best peak
  double forward_share = 0;
};

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

BackwardResult Measure(const BackwardShape& s, int threads, int reps) {
  const size_t bytes = static_cast<size_t>(s.n * s.heads * s.dim) * DtypeBytes(s.dtype);
  std::vector<uint8_t> q(bytes), k(bytes), v(bytes), out(bytes), dout(bytes), dq(bytes), dk(bytes), dv(bytes);
  std::vector<float> lse(s.heads * s.n);
  std::mt19937_64 rng(11);
  for (auto* b : {&q, &k, &v, &dout}) FillRandom(*b, s.dtype, rng);
  auto tensor = [&](std::vector<uint8_t>& b) { return MakeTensor(b.data(), s.dtype, 1, s.n, s.heads, s.dim); };
  swa_tensor tq = tensor(q), tk = tensor(k), tv = tensor(v), to = tensor(out), tdo = tensor(dout);
  swa_tensor tdq = tensor(dq), tdk = tensor(dk), tdv = tensor(dv);
  AttentionParams p;
  p.Window(s.window - 1, 0).Causal(true).Threads(threads);
  attention::MaskSpec mask;
  mask.causal = true;
  const double pairs =
      static_cast<double>(attention::CountVisiblePairs(attention::BandRule(mask, {s.window - 1, 0}, s.n, s.n))) *
      s.heads;

  AttentionForward(p, tq, tk, tv, to, lse.data());  // warm-up
  AttentionBackward(p, tq, tk, tv, to, lse.data(), tdo, tdq, tdk, tdv);
  BackwardResult r;
  r.shape = s;
  double best_fwd = 1e30, best_bwd = 1e30, peak = 0;
  std::vector<double> ratios;
  for (int rep = 0; rep < reps; ++rep) {
    peak = std::max(peak, FmaPeakGflops(threads));
    auto t0 = Clock::now();
    AttentionForward(p, tq, tk, tv, to, lse.data());
    const double fwd = Seconds(t0);
    t0 = Clock::now();
    AttentionBackward(p, tq, tk, tv, to, lse.data(), tdo, tdq, tdk, tdv);
    const double bwd = Seconds(t0);
    best_fwd = std::min(best_fwd, fwd);
    best_bwd = std::min(best_bwd, bwd);
    ratios.push_back(bwd / fwd);
  }
  std::sort(ratios.begin(), ratios.end());
  r.forward_seconds = best_fwd;
  r.backward_seconds = best_bwd;
  r.ratio = ratios[ratios.size() / 2];
  r.backward_gflops = 10.0 * s.dim * pairs / best_bwd * 1e-9;
  r.backward_share = r.backward_gflops / peak;
  r.forward_share = 4.0 * s.dim * pairs / best_fwd * 1e-9 / peak;
  return r;
}

}  // namespace

int RunBackwardBench(const BenchOptions& opt, json* doc) {
  const int threads = ThreadPool::ResolveThreads(opt.threads);
  std::printf("swa bench backward: %d threads; forward and backward timed back to back after an FMA-peak\n"
              "burst; FLOPs 10*Hq*D per visible pair for the backward, 4*Hq*D for the forward.\n\n",
              threads);
  std::vector<BackwardShape> shapes;
  for (swa_dtype t : {SWA_F32, SWA_BF16}) {
    BackwardShape s;
    s.dtype = t;
    if (opt.quick) {
      s.n = 4096;
      s.window = 256;
    }
    shapes.push_back(s);
  }
  std::printf("%-5s %6s %6s %4s %10s %10s %8s %10s %10s\n", "dtype", "N", "W", "D", "fwd_ms", "bwd_ms", "bwd/fwd",
              "%peak bwd", "%peak fwd");
  json results = json::array(), targets = json::array();
  for (const BackwardShape& s : shapes) {
    const BackwardResult r = Measure(s, threads, opt.quick ? 3 : 5);
    std::printf("%-5s %6lld %6lld %4lld %10.1f %10.1f %8.2f %9.1f%% %9.1f%%\n", DtypeName(s.dtype),
                static_cast<long long>(s.n), static_cast<long long>(s.window), static_cast<long long>(s.dim),
                1e3 * r.forward_seconds, 1e3 * r.backward_seconds, r.ratio, 100 * r.backward_share,
                100 * r.forward_share);
    results.push_back({{"dtype", DtypeName(s.dtype)},
                       {"n", s.n},
                       {"heads", s.heads},
                       {"head_dim", s.dim},
                       {"window", s.window},
                       {"forward_seconds", r.forward_seconds},
                       {"backward_seconds", r.backward_seconds},
                       {"backward_over_forward", r.ratio},
                       {"backward_gflops", r.backward_gflops},
                       {"backward_fraction_of_fma_peak", r.backward_share},
                       {"forward_fraction_of_fma_peak", r.forward_share}});
    if (s.dtype == SWA_F32) {
      targets.push_back({{"target", "backward time / forward time (f32)"},
                         {"value", r.ratio},
                         {"bound", 3.0},
                         {"met", r.ratio <= 3.0}});
      targets.push_back({{"target", "backward share of FMA peak (f32)"},
                         {"value", r.backward_share},
                         {"bound", 0.35},
                         {"met", r.backward_share >= 0.35}});
    }
  }
  std::printf("\n");
  for (const json& t : targets) {
    std::printf("%-45s %10.3f %10.3f %s\n", t["target"].get<std::string>().c_str(), t["value"].get<double>(),
                t["bound"].get<double>(), t["met"].get<bool>() ? "yes" : "NO");
  }
  *doc = {{"threads", threads}, {"quick", opt.quick}, {"results", results}, {"targets", targets}};
  return 0;
}

}  // namespace swa::cli
