// `swa bench`: times the forward on a few shapes and reports throughput as a share of
// this machine's FMA peak (measured in the same run) and as a ratio against full
// causal attention at the same length. Table on stdout, JSON on request.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "attention/rule.h"
#include "attention/validate.h"
#include "cli/commands.h"
#include "cli/machine.h"
#include "common/parallel.h"
#include "swa/swa.hpp"

namespace swa::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Shape {
  std::string name;
  swa_dtype dtype = SWA_F32;
  int64_t n = 4096, lq = 0, hq = 8, hkv = 8, dim = 128;
  int64_t left = -1, right = -1;
  bool causal = false;
  int64_t Lq() const { return lq > 0 ? lq : n; }
};

struct Timing {
  double seconds = 0;  // median
  int64_t pairs = 0;   // visible (query, key) pairs, all heads
};

std::vector<uint16_t> RandomBits(int64_t count, swa_dtype dtype, std::mt19937_64& rng) {
  // Random normal values stored in the requested dtype (as raw 16-bit words, or two per
  // float for f32).
  std::normal_distribution<float> dist;
  const int64_t words = count * (dtype == SWA_F32 ? 2 : 1);
  std::vector<uint16_t> data(words);
  for (int64_t i = 0; i < count; ++i) {
    const float x = dist(rng);
    if (dtype == SWA_F32) {
      std::memcpy(&data[2 * i], &x, 4);
    } else {
      data[i] = dtype == SWA_BF16 ? FloatToBF16(x) : FloatToF16(x);
    }
  }
  return data;
}

Timing TimeForward(const Shape& s, int threads, double min_seconds) {
  std::mt19937_64 rng(7);
  auto q = RandomBits(s.Lq() * s.hq * s.dim, s.dtype, rng);
  auto k = RandomBits(s.n * s.hkv * s.dim, s.dtype, rng);
  auto v = RandomBits(s.n * s.hkv * s.dim, s.dtype, rng);
  std::vector<uint16_t> out(q.size());
  std::vector<float> lse(s.hq * s.Lq());
  swa_tensor tq = MakeTensor(q.data(), s.dtype, 1, s.Lq(), s.hq, s.dim);
  swa_tensor tk = MakeTensor(k.data(), s.dtype, 1, s.n, s.hkv, s.dim);
  swa_tensor tv = MakeTensor(v.data(), s.dtype, 1, s.n, s.hkv, s.dim);
  swa_tensor to = MakeTensor(out.data(), s.dtype, 1, s.Lq(), s.hq, s.dim);
  AttentionParams p;
  p.Window(s.left, s.right).Causal(s.causal).Threads(threads);

  Timing t;
  const auto vp = attention::ValidateForward(&p, &tq, &tk, &tv, &to, lse.data());
  for (int64_t h = 0; h < s.hq; ++h) {
    t.pairs += attention::CountVisiblePairs(
        attention::BandRule(vp->problem.mask, vp->problem.windows[h], s.Lq(), s.n));
  }
  AttentionForward(p, tq, tk, tv, to, lse.data());  // warm-up: page faults, caches
  std::vector<double> samples;
  const auto start = Clock::now();
  while (samples.size() < 3 || (std::chrono::duration<double>(Clock::now() - start).count() < min_seconds &&
                                samples.size() < 50)) {
    const auto t0 = Clock::now();
    AttentionForward(p, tq, tk, tv, to, lse.data());
    samples.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(samples.begin(), samples.end());
  t.seconds = samples[samples.size() / 2];
  return t;
}

const char* DtypeName(swa_dtype t) { return t == SWA_F32 ? "f32" : t == SWA_BF16 ? "bf16" : "f16"; }

}  // namespace

int RunBench(const BenchOptions& opt) {
  const int threads = ThreadPool::ResolveThreads(opt.threads);
  const double peak = MeasureFmaPeakGflops(threads);
  std::printf("machine: %d threads, fp32 FMA peak %.1f GFLOP/s (%s, measured now)\n", threads, peak,
              FmaPeakIsa());

  const std::vector<int64_t> lengths = opt.quick ? std::vector<int64_t>{2048} : std::vector<int64_t>{4096, 16384};
  const int64_t window = opt.quick ? 256 : 1024;
  std::vector<Shape> shapes;
  for (swa_dtype dt : {SWA_F32, SWA_BF16}) {
    for (int64_t n : lengths) {
      Shape sw;
      sw.dtype = dt;
      sw.n = n;
      sw.left = window - 1;
      sw.right = 0;
      sw.name = "swa W=" + std::to_string(window);
      shapes.push_back(sw);
      Shape full = sw;
      full.left = -1;
      full.causal = true;
      full.name = "full causal";
      shapes.push_back(full);
    }
  }

  nlohmann::json results = nlohmann::json::array();
  std::printf("%-14s %-5s %7s %5s %4s %10s %9s %8s %12s %12s\n", "shape", "dtype", "N", "H", "D", "time_ms",
              "GFLOP/s", "%peak", "time/full", "work/full");
  for (size_t i = 0; i < shapes.size(); i += 2) {
    const Timing swa_t = TimeForward(shapes[i], threads, opt.quick ? 0.2 : 1.0);
    const Timing full_t = TimeForward(shapes[i + 1], threads, opt.quick ? 0.2 : 1.0);
    for (int which = 0; which < 2; ++which) {
      const Shape& s = shapes[i + which];
      const Timing& t = which == 0 ? swa_t : full_t;
      const double gflops = 4.0 * s.dim * static_cast<double>(t.pairs) / t.seconds * 1e-9;
      const double time_ratio = t.seconds / full_t.seconds;
      const double work_ratio = static_cast<double>(t.pairs) / full_t.pairs;
      std::printf("%-14s %-5s %7lld %5lld %4lld %10.2f %9.1f %7.1f%% %12.3f %12.3f\n", s.name.c_str(),
                  DtypeName(s.dtype), static_cast<long long>(s.n), static_cast<long long>(s.hq),
                  static_cast<long long>(s.dim), t.seconds * 1e3, gflops, 100.0 * gflops / peak, time_ratio,
                  work_ratio);
      results.push_back({{"shape", s.name},
                         {"dtype", DtypeName(s.dtype)},
                         {"n", s.n},
                         {"heads", s.hq},
                         {"head_dim", s.dim},
                         {"window_left", s.left},
                         {"window_right", s.right},
                         {"causal", s.causal},
                         {"seconds", t.seconds},
                         {"visible_pairs", t.pairs},
                         {"gflops", gflops},
                         {"fraction_of_peak", gflops / peak},
                         {"time_vs_full_causal", time_ratio},
                         {"work_vs_full_causal", work_ratio}});
    }
  }
  if (!opt.json_path.empty()) {
    nlohmann::json doc = {{"threads", threads},
                          {"fma_peak_gflops", peak},
                          {"fma_isa", FmaPeakIsa()},
                          {"forward", results}};
    std::ofstream(opt.json_path) << doc.dump(2) << "\n";
  }
  return 0;
}

}  // namespace swa::cli
