// `swa bench`: times the forward on the shapes of the performance issue and reports
// every result as a ratio measured in the same run: GFLOP/s as a share of this
// machine's FMA peak (a burst measured right before each timed run), time against full
// causal attention at the same length, and decode bandwidth against a STREAM triad.
// Table on stdout, JSON on request.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "attention/rule.h"
#include "attention/validate.h"
#include "cli/bench_util.h"
#include "cli/commands.h"
#include "cli/machine.h"
#include "common/parallel.h"
#include "swa/swa.hpp"

namespace swa::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Shape {
  std::string group;  // which sweep it belongs to
  swa_dtype dtype = SWA_F32;
  int64_t lq = 4096, lk = 4096, hq = 8, hkv = 8, dim = 128;
  int64_t window = 1024;  // causal sliding window of W tokens: (W - 1, 0); -1 = full causal
  bool decode = false;    // report bandwidth instead of FLOP rate
};

// Random inputs for one shape, allocated and touched once.
class Inputs {
 public:
  explicit Inputs(const Shape& s) : s_(s) {
    const size_t esize = s.dtype == SWA_F32 ? 4 : 2;
    q_.resize(s.lq * s.hq * s.dim * esize);
    k_.resize(s.lk * s.hkv * s.dim * esize);
    v_.resize(k_.size());
    out_.resize(q_.size());
    lse_.resize(s.hq * s.lq);
    std::mt19937_64 rng(7);
    FillRandom(q_, s.dtype, rng);
    FillRandom(k_, s.dtype, rng);
    FillRandom(v_, s.dtype, rng);
    params_.Window(s.window < 0 ? -1 : s.window - 1, 0).Causal(true);
  }
  void Run(int threads) {
    params_.Threads(threads);
    swa_tensor q = MakeTensor(q_.data(), s_.dtype, 1, s_.lq, s_.hq, s_.dim);
    swa_tensor k = MakeTensor(k_.data(), s_.dtype, 1, s_.lk, s_.hkv, s_.dim);
    swa_tensor v = MakeTensor(v_.data(), s_.dtype, 1, s_.lk, s_.hkv, s_.dim);
    swa_tensor out = MakeTensor(out_.data(), s_.dtype, 1, s_.lq, s_.hq, s_.dim);
    AttentionForward(params_, q, k, v, out, lse_.data());
  }
  // Visible (query, key) pairs over all heads, from the rule.
  int64_t VisiblePairs() const {
    attention::MaskSpec mask;
    mask.causal = true;
    const attention::BandRule rule(mask, {s_.window < 0 ? -1 : s_.window - 1, 0}, s_.lq, s_.lk);
    return attention::CountVisiblePairs(rule) * s_.hq;
  }

 private:
  Shape s_;
  std::vector<uint8_t> q_, k_, v_, out_;
  std::vector<float> lse_;
  AttentionParams params_;
};

struct Result {
  Shape shape;
  double seconds = 0;     // best (shortest) kernel time
  double gflops = 0;      // at the best time, 4 * D * visible pairs per second
  double peak_share = 0;  // gflops / the run's FMA peak
  double gbps = 0;        // decode: K/V bytes read per second at the best time
  double bw_share = 0;    // decode: gbps / the run's triad bandwidth
  int64_t pairs = 0;
};

// The machine's ceilings as seen during this run: the best of the bursts taken next to
// every timed run. Kernel times are likewise the best of their runs, so that both sides
// of each ratio approach the uncontended figure on a machine shared with others.
struct Ceilings {
  double fma_gflops = 0;
  double triad_gbps = 0;
};

// Times every shape `reps` times, a round over all shapes at a time, so that each shape's
// best run is drawn from the whole length of the benchmark: a slow spell of this shared
// machine then touches every shape alike instead of one shape's whole sample, and ratios
// between shapes (time(2W) / time(W)) stay fair.
std::vector<Result> MeasureAll(const std::vector<Shape>& shapes, int threads, int reps, TriadBench* triad,
                               Ceilings* ceil) {
  std::vector<std::unique_ptr<Inputs>> inputs;
  std::vector<Result> results(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    inputs.push_back(std::make_unique<Inputs>(shapes[i]));
    inputs.back()->Run(threads);  // warm-up: page faults, caches, thread start
    results[i].shape = shapes[i];
    results[i].pairs = inputs.back()->VisiblePairs();
    results[i].seconds = 1e30;
  }
  for (int rep = 0; rep < reps; ++rep) {
    std::fprintf(stderr, "round %d of %d over %zu shapes\n", rep + 1, reps, shapes.size());
    for (size_t i = 0; i < shapes.size(); ++i) {
      const Shape& s = shapes[i];
      Result& r = results[i];
      // A decode step is short and memory-bound: each triad burst is followed by a round
      // of single steps, and the best step counts.
      const int steps_per_round = s.decode ? 16 : 1;
      const double min_seconds = s.decode ? 0.0 : 0.005;
      if (s.decode) {
        ceil->triad_gbps = std::max(ceil->triad_gbps, triad->GBps());
      } else {
        ceil->fma_gflops = std::max(ceil->fma_gflops, FmaPeakGflops(threads));
      }
      for (int step = 0; step < steps_per_round; ++step) {
        const auto t0 = Clock::now();
        int inner = 0;
        do {  // short kernels are repeated to a few milliseconds
          inputs[i]->Run(threads);
          ++inner;
        } while (std::chrono::duration<double>(Clock::now() - t0).count() < min_seconds);
        r.seconds = std::min(r.seconds, std::chrono::duration<double>(Clock::now() - t0).count() / inner);
      }
    }
  }
  for (Result& r : results) {
    const Shape& s = r.shape;
    r.gflops = 4.0 * s.dim * static_cast<double>(r.pairs) / r.seconds * 1e-9;
    // K/V bytes a decode step must read: the visible keys of each kv head, K and V.
    const double kv_bytes =
        static_cast<double>(r.pairs) / s.hq * s.hkv * s.dim * (s.dtype == SWA_F32 ? 4 : 2) * 2;
    r.gbps = s.decode ? kv_bytes / r.seconds * 1e-9 : 0.0;
  }
  return results;
}

void FillShares(const Ceilings& ceil, std::vector<Result>* rs) {
  for (Result& r : *rs) {
    if (r.shape.decode) {
      r.bw_share = ceil.triad_gbps > 0 ? r.gbps / ceil.triad_gbps : 0;
    } else {
      r.peak_share = ceil.fma_gflops > 0 ? r.gflops / ceil.fma_gflops : 0;
    }
  }
}

std::vector<Shape> ForwardShapes(bool quick) {
  std::vector<Shape> shapes;
  const int64_t n_fixed = quick ? 4096 : 16384;
  const int64_t w_fixed = quick ? 256 : 1024;
  auto add = [&](Shape s) { shapes.push_back(s); };
  // Cost against N at a fixed window: linear.
  for (int64_t n : quick ? std::vector<int64_t>{1024, 2048, 4096}
                         : std::vector<int64_t>{2048, 4096, 8192, 16384, 32768}) {
    Shape s;
    s.group = "scale_n";
    s.lq = s.lk = n;
    s.window = w_fixed;
    add(s);
  }
  // Cost against W at a fixed N, up to full causal.
  for (int64_t w : quick ? std::vector<int64_t>{128, 256, 512, -1}
                         : std::vector<int64_t>{256, 512, 1024, 2048, 4096, -1}) {
    Shape s;
    s.group = "scale_w";
    s.lq = s.lk = n_fixed;
    s.window = w;
    add(s);
  }
  for (swa_dtype t : {SWA_BF16, SWA_F16}) {
    Shape s;
    s.group = "dtype";
    s.dtype = t;
    s.lq = s.lk = n_fixed;
    s.window = w_fixed;
    add(s);
  }
  Shape d64;
  d64.group = "head_dim";
  d64.lq = d64.lk = n_fixed;
  d64.window = w_fixed;
  d64.dim = 64;
  add(d64);
  Shape gqa;
  gqa.group = "gqa";
  gqa.lq = gqa.lk = quick ? 2048 : 4096;
  gqa.hq = 32;
  gqa.hkv = 8;
  gqa.window = w_fixed;
  add(gqa);
  Shape dec;
  dec.group = "decode";
  dec.decode = true;
  dec.lq = 1;
  dec.lk = quick ? 8192 : 32768;
  dec.hq = 32;
  dec.hkv = 8;
  dec.window = quick ? 1024 : 4096;
  add(dec);
  return shapes;
}

const Result* Find(const std::vector<Result>& rs, const std::string& group, int64_t n, int64_t window,
                   swa_dtype dtype = SWA_F32, int64_t dim = 128) {
  for (const Result& r : rs) {
    if (r.shape.group == group && r.shape.lk == n && r.shape.window == window && r.shape.dtype == dtype &&
        r.shape.dim == dim) {
      return &r;
    }
  }
  return nullptr;
}

json ToJson(const Result& r) {
  const Shape& s = r.shape;
  return {{"group", s.group},     {"dtype", DtypeName(s.dtype)},
          {"lq", s.lq},           {"lk", s.lk},
          {"hq", s.hq},           {"hkv", s.hkv},
          {"head_dim", s.dim},    {"window", s.window},
          {"seconds", r.seconds}, {"visible_pairs", r.pairs},
          {"gflops", r.gflops},   {"fraction_of_fma_peak", r.peak_share},
          {"kv_gbps", r.gbps},    {"fraction_of_triad_bandwidth", r.bw_share}};
}

// The targets, each computed from ratios measured in this run.
json Targets(const std::vector<Result>& rs, bool quick) {
  json t = json::array();
  const int64_t n = quick ? 4096 : 16384, w = quick ? 256 : 1024;
  auto add = [&](const std::string& name, double value, double bound, bool at_least) {
    t.push_back({{"target", name},
                 {"value", value},
                 {"bound", bound},
                 {"met", at_least ? value >= bound : value <= bound}});
  };
  const Result* f32 = Find(rs, "scale_w", n, w);
  if (f32) add("f32 SWA share of FMA peak", f32->peak_share, 0.50, true);
  if (const Result* d64 = Find(rs, "head_dim", n, w, SWA_F32, 64))
    add("f32 D=64 share of FMA peak", d64->peak_share, 0.40, true);
  if (const Result* bf = Find(rs, "dtype", n, w, SWA_BF16))
    add("bf16 share of fp32 FMA peak", bf->peak_share, 0.75, true);
  const Result* w2 = Find(rs, "scale_w", n, 2 * w);
  if (f32 && w2) add("time(2W) / time(W)", w2->seconds / f32->seconds, 2.1, false);
  const Result* full = Find(rs, "scale_w", n, -1);
  if (f32 && full) {
    const double time_ratio = full->seconds / f32->seconds;
    const double work_ratio = static_cast<double>(full->pairs) / f32->pairs;
    add("full causal time ratio / its work ratio", time_ratio / work_ratio, 0.75, true);
  }
  for (const Result& r : rs) {
    if (r.shape.decode) add("decode K/V read share of triad bandwidth", r.bw_share, 0.50, true);
  }
  return t;
}

}  // namespace

int RunForwardBench(const BenchOptions& opt, json* out) {
  const int threads = ThreadPool::ResolveThreads(opt.threads);
  std::printf(
      "swa bench: %d threads, FMA unit %s. Shares are best kernel rate over the best FMA-peak (or\n"
      "STREAM triad) burst of this run; the bursts are taken right before each timed run.\n\n",
      threads, FmaPeakIsa());
  TriadBench triad(threads);
  Ceilings ceil;
  const int reps = opt.quick ? 3 : 7;
  std::vector<Result> results;
  std::printf("%-8s %-5s %6s %6s %6s %5s %4s %10s %9s %9s\n", "group", "dtype", "Lq", "Lk", "W", "H", "D",
              "best_ms", "GFLOP/s", "KV GB/s");
  results = MeasureAll(ForwardShapes(opt.quick), threads, reps, &triad, &ceil);
  for (const Result& r : results) {
    const Shape& s = r.shape;
    std::printf("%-8s %-5s %6lld %6lld %6lld %2lld/%-2lld %4lld %10.3f %9.1f %9.1f\n", s.group.c_str(),
                DtypeName(s.dtype), static_cast<long long>(s.lq), static_cast<long long>(s.lk),
                static_cast<long long>(s.window), static_cast<long long>(s.hq), static_cast<long long>(s.hkv),
                static_cast<long long>(s.dim), r.seconds * 1e3, r.gflops, r.gbps);
    std::fflush(stdout);
  }
  FillShares(ceil, &results);
  std::printf("\nceilings seen in this run: FMA peak %.1f GFLOP/s, triad %.1f GB/s\n\n", ceil.fma_gflops,
              ceil.triad_gbps);
  std::printf("%-8s %-5s %6s %6s %8s %10s %10s\n", "group", "dtype", "Lk", "W", "D", "%FMA peak", "%triad");
  for (const Result& r : results) {
    std::printf("%-8s %-5s %6lld %6lld %8lld %9.1f%% %9.1f%%\n", r.shape.group.c_str(),
                DtypeName(r.shape.dtype), static_cast<long long>(r.shape.lk),
                static_cast<long long>(r.shape.window), static_cast<long long>(r.shape.dim),
                100 * r.peak_share, 100 * r.bw_share);
  }
  const json targets = Targets(results, opt.quick);
  std::printf("\n%-45s %10s %10s %s\n", "target", "value", "bound", "met");
  for (const json& t : targets) {
    std::printf("%-45s %10.3f %10.3f %s\n", t["target"].get<std::string>().c_str(), t["value"].get<double>(),
                t["bound"].get<double>(), t["met"].get<bool>() ? "yes" : "NO");
  }
  json doc = {{"threads", threads},
              {"fma_isa", FmaPeakIsa()},
              {"quick", opt.quick},
              {"fma_peak_gflops", ceil.fma_gflops},
              {"triad_gbps", ceil.triad_gbps},
              {"targets", targets}};
  doc["results"] = json::array();
  for (const Result& r : results) doc["results"].push_back(ToJson(r));
  *out = std::move(doc);
  return 0;
}

int RunBench(const BenchOptions& opt) {
  const bool all = opt.suite == "all";
  if (!all && opt.suite != "forward" && opt.suite != "backward" && opt.suite != "decode" &&
      opt.suite != "train" && opt.suite != "generate") {
    std::fprintf(stderr, "unknown bench suite '%s' (forward, backward, decode, train, generate or all)\n",
                 opt.suite.c_str());
    return 2;
  }
  json doc = json::object();
  int rc = 0;
  if (all || opt.suite == "forward") {
    std::printf("== forward ==\n");
    rc |= RunForwardBench(opt, &doc["forward"]);
  }
  if (all || opt.suite == "backward") {
    std::printf("\n== backward ==\n");
    rc |= RunBackwardBench(opt, &doc["backward"]);
  }
  if (all || opt.suite == "decode") {
    std::printf("\n== decode (KV cache) ==\n");
    rc |= RunDecodeBench(opt, &doc["decode"]);
  }
  if (all || opt.suite == "train") {
    std::printf("\n== train (model step) ==\n");
    rc |= RunTrainBench(opt, &doc["train"]);
  }
  if (all || opt.suite == "generate") {
    std::printf("\n== generate (whole model, cached decoder) ==\n");
    rc |= RunGenerateBench(opt, &doc["generate"]);
  }
  if (!opt.json_path.empty()) std::ofstream(opt.json_path) << doc.dump(2) << "\n";
  return rc;
}

}  // namespace swa::cli
