// `swa bench decode`: streaming decode through the KV cache at growing contexts. One
// stream (Hq=32, Hkv=8, D=128, f32, window of W=4096 tokens, RoPE) is filled to each
// context with large appends (no attend), then timed on single-token append + attend
// steps. A ring cache reads the same W keys per token at any context, so latency and
// memory must stay flat: the run reports latency at the largest context relative to
// 16k, and resident memory at each context relative to the first.
//
// The machine is shared and its speed drifts, so the latency ratio is also measured
// with the two contexts interleaved (a second stream at 16k, timed in alternating
// rounds with the long one), and the K/V bandwidth is reported as a share of STREAM
// triad bursts taken in the same run, alternating with decode steps. The triad's arrays
// (384 MiB) are allocated only after the memory measurements, which they would swamp.
// The interleaved rounds also time swa_attention_forward of one query against W
// contiguous keys, the same attention without a cache: the cache's cost per step.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "cli/machine.h"
#include "common/parallel.h"
#include "swa/kv_cache.hpp"

namespace swa::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int64_t kHq = 32, kHkv = 8, kDim = 128, kWindow = 4096;
constexpr int64_t kFillChunk = 4096;  // rows per append while filling

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

// The inputs of the run: a block of random keys/values reused for every append, and one
// query row.
struct Inputs {
  std::vector<float> k, v;    // [1, kFillChunk, kHkv, kDim]
  std::vector<float> q, out;  // [1, 1, kHq, kDim]
  std::vector<float> lse;     // [1, kHq, 1]

  Inputs() : k(kFillChunk * kHkv * kDim), v(k.size()), q(kHq * kDim), out(q.size()), lse(kHq) {
    std::mt19937_64 rng(17);
    std::normal_distribution<float> normal;
    for (auto* buf : {&k, &v, &q}) {
      for (float& x : *buf) x = normal(rng);
    }
  }
  swa_tensor K(int64_t row0, int64_t rows) {
    return MakeTensor(k.data() + row0 * kHkv * kDim, SWA_F32, 1, rows, kHkv, kDim);
  }
  swa_tensor V(int64_t row0, int64_t rows) {
    return MakeTensor(v.data() + row0 * kHkv * kDim, SWA_F32, 1, rows, kHkv, kDim);
  }
};

// Appends positions to sequence `id` until it has seen `target`.
void Fill(KvCache& cache, int64_t id, int64_t target, Inputs& in) {
  for (int64_t n = cache.Positions(id); n < target;) {
    const int64_t rows = std::min(kFillChunk, target - n);
    cache.Append(id, in.K(0, rows), in.V(0, rows));
    n += rows;
  }
}

// One decode step of sequence `id`: append a key/value, attend one query. Seconds.
double Step(KvCache& cache, int64_t id, Inputs& in) {
  const int64_t row = cache.Positions(id) % kFillChunk;
  swa_tensor q = MakeTensor(in.q.data(), SWA_F32, 1, 1, kHq, kDim);
  swa_tensor out = MakeTensor(in.out.data(), SWA_F32, 1, 1, kHq, kDim);
  const auto t0 = Clock::now();
  cache.Append(id, in.K(row, 1), in.V(row, 1));
  cache.Attend(id, q, out, in.lse.data());
  return Seconds(t0, Clock::now());
}

// The same attention without a cache: one query against W contiguous keys through
// swa_attention_forward (the baseline for the cache's own cost per step).
double PlainForward(const swa_attention_params& params, Inputs& in) {
  swa_tensor q = MakeTensor(in.q.data(), SWA_F32, 1, 1, kHq, kDim);
  swa_tensor out = MakeTensor(in.out.data(), SWA_F32, 1, 1, kHq, kDim);
  const swa_tensor k = in.K(0, kWindow), v = in.V(0, kWindow);
  const auto t0 = Clock::now();
  AttentionForward(params, q, k, v, out, in.lse.data());
  return Seconds(t0, Clock::now());
}

struct ContextResult {
  int64_t context = 0;
  double fill_seconds = 0;
  double median = 0, p10 = 0, p90 = 0;  // step latency (s)
  int64_t rss = 0, peak_rss = 0;
  double kv_bytes = 0;  // K/V bytes a step reads
  double gbps = 0;
  int64_t cache_bytes = 0;  // the cache's own K/V storage
};

}  // namespace

int RunDecodeBench(const BenchOptions& opt, json* out) {
  const int threads = ThreadPool::ResolveThreads(opt.threads);
  const std::vector<int64_t> contexts =
      opt.quick ? std::vector<int64_t>{1024, 16384} : std::vector<int64_t>{1024, 16384, 262144, 1048576};
  const int steps = opt.quick ? 40 : 200, warmup = 10;
  const int rounds = opt.quick ? 4 : 10, round_steps = 20;

  AttentionParams params;
  params.Window(kWindow - 1, 0).Threads(opt.threads);
  KvCacheConfig cfg;
  cfg.DType(SWA_F32).Heads(kHq, kHkv, kDim).Attention(params).MaxChunk(1).Rope();
  Inputs in;
  KvCache cache(cfg);
  cache.AddSequence(0);

  std::printf(
      "swa bench decode: Hq=%lld Hkv=%lld D=%lld f32, window %lld, RoPE, B=1, %d threads; ring of %lld "
      "slots, %.1f MiB per stream\n\n",
      static_cast<long long>(kHq), static_cast<long long>(kHkv), static_cast<long long>(kDim),
      static_cast<long long>(kWindow), threads, static_cast<long long>(cache.Stats().capacity),
      cache.Stats().bytes_used / 1048576.0);
  std::printf("%9s %8s %10s %10s %10s %10s %9s %10s %10s %10s\n", "context", "fill_s", "median_ms", "p10_ms",
              "p90_ms", "KV_MiB/tok", "KV_GB/s", "cache_MiB", "RSS_MiB", "peak_MiB");
  std::vector<ContextResult> results;
  for (int64_t context : contexts) {
    ContextResult r;
    r.context = context;
    const auto f0 = Clock::now();
    Fill(cache, 0, context, in);
    r.fill_seconds = Seconds(f0, Clock::now());
    for (int i = 0; i < warmup; ++i) Step(cache, 0, in);
    std::vector<double> samples;
    for (int i = 0; i < steps; ++i) samples.push_back(Step(cache, 0, in));
    r.median = Median(samples);
    r.p10 = Percentile(samples, 0.1);
    r.p90 = Percentile(samples, 0.9);
    r.rss = CurrentRssBytes();
    r.peak_rss = PeakRssBytes();
    r.cache_bytes = cache.Stats().bytes_used;
    r.kv_bytes = static_cast<double>(std::min(context + 1, kWindow)) * kHkv * kDim * sizeof(float) * 2;
    r.gbps = r.kv_bytes / r.median * 1e-9;
    results.push_back(r);
    std::printf("%9lld %8.2f %10.3f %10.3f %10.3f %10.2f %9.2f %10.1f %10.1f %10.1f\n",
                static_cast<long long>(context), r.fill_seconds, r.median * 1e3, r.p10 * 1e3, r.p90 * 1e3,
                r.kv_bytes / 1048576.0, r.gbps, r.cache_bytes / 1048576.0, r.rss / 1048576.0,
                r.peak_rss / 1048576.0);
    std::fflush(stdout);
  }

  // The same ratio with both contexts timed in alternating rounds (drift cancels): a
  // second stream at the reference context.
  const int64_t ref_context = 16384;
  cache.AddSequence(1);
  Fill(cache, 1, ref_context, in);
  for (int i = 0; i < warmup; ++i) Step(cache, 1, in);
  std::vector<double> near, far, plain;
  for (int round = 0; round < rounds; ++round) {
    for (int i = 0; i < round_steps; ++i) near.push_back(Step(cache, 1, in));
    for (int i = 0; i < round_steps; ++i) far.push_back(Step(cache, 0, in));
    for (int i = 0; i < round_steps; ++i) plain.push_back(PlainForward(params, in));
  }
  const double interleaved_ratio = Median(far) / Median(near);
  const double overhead_ratio = Median(far) / Median(plain);
  // The cache's own cost per step at 16k: append, RoPE, gather and scatter around the
  // same attention entry (the plain forward does no RoPE).
  const double overhead_16k = Median(near) / Median(plain);

  // K/V bandwidth against the machine's: decode rounds at the largest context alternate
  // with triad bursts; both sides take their best.
  const int64_t rss_before_triad = CurrentRssBytes();
  TriadBench triad(threads);
  double triad_gbps = 0;
  std::vector<double> far_again;
  for (int round = 0; round < rounds; ++round) {
    triad_gbps = std::max(triad_gbps, triad.GBps());
    for (int i = 0; i < round_steps; ++i) far_again.push_back(Step(cache, 0, in));
  }
  const double best_step = *std::min_element(far_again.begin(), far_again.end());
  const double best_gbps = results.back().kv_bytes / best_step * 1e-9;

  const ContextResult* ref = nullptr;
  for (const ContextResult& r : results) {
    if (r.context == ref_context) ref = &r;
  }
  const ContextResult& last = results.back();
  int64_t rss_min = results[0].rss, rss_max = results[0].rss;
  for (const ContextResult& r : results) {
    rss_min = std::min(rss_min, r.rss);
    rss_max = std::max(rss_max, r.rss);
  }
  const double sequential_ratio = ref ? last.median / ref->median : 0.0;
  const double rss_ratio = static_cast<double>(rss_max) / static_cast<double>(rss_min);
  const double peak_ratio = static_cast<double>(last.peak_rss) / static_cast<double>(results[0].peak_rss);
  std::printf(
      "\nlatency at %lld / latency at %lld: %.3f sequential, %.3f interleaved (%d rounds of %d steps)\n",
      static_cast<long long>(last.context), static_cast<long long>(ref_context), sequential_ratio,
      interleaved_ratio, rounds, round_steps);
  std::printf("cache step at %lld / plain forward over the same %lld keys: %.3f (medians %.3f / %.3f ms)\n",
              static_cast<long long>(last.context), static_cast<long long>(kWindow), overhead_ratio,
              Median(far) * 1e3, Median(plain) * 1e3);
  std::printf("cache step at %lld / plain forward over the same %lld keys: %.3f (medians %.3f / %.3f ms)\n",
              static_cast<long long>(ref_context), static_cast<long long>(kWindow), overhead_16k,
              Median(near) * 1e3, Median(plain) * 1e3);
  std::printf("RSS max / min over the contexts: %.4f; peak RSS at %lld / at %lld: %.4f\n", rss_ratio,
              static_cast<long long>(last.context), static_cast<long long>(results[0].context), peak_ratio);
  std::printf("RSS growth from %lld to %lld: %.1f MiB (the stream's ring is %.1f MiB)\n",
              static_cast<long long>(results[0].context), static_cast<long long>(last.context),
              (last.rss - results[0].rss) / 1048576.0, results[0].cache_bytes / 1048576.0);
  std::printf("K/V read at %lld: best step %.3f ms = %.2f GB/s, %.1f%% of the best triad burst (%.1f GB/s)\n",
              static_cast<long long>(last.context), best_step * 1e3, best_gbps, 100 * best_gbps / triad_gbps,
              triad_gbps);

  json targets = json::array();
  auto target = [&](const std::string& name, double value, double bound) {
    targets.push_back({{"target", name}, {"value", value}, {"bound", bound}, {"met", value <= bound}});
    std::printf("%-52s %8.3f <= %5.2f %s\n", name.c_str(), value, bound, value <= bound ? "yes" : "NO");
  };
  std::printf("\n");
  target("decode latency ratio, largest context / 16k (interleaved)", interleaved_ratio, 1.1);
  target("RSS max / min over contexts", rss_ratio, 1.05);
  target("peak RSS, largest context / first", peak_ratio, 1.05);
  target("cache step at 16k / plain forward, same keys", overhead_16k, 1.05);

  {
    json doc = {{"suite", "decode"},
                {"threads", threads},
                {"quick", opt.quick},
                {"hq", kHq},
                {"hkv", kHkv},
                {"head_dim", kDim},
                {"window", kWindow},
                {"dtype", "f32"},
                {"rope", true},
                {"ring_slots", cache.Stats().capacity},
                {"latency_ratio_sequential", sequential_ratio},
                {"latency_ratio_interleaved", interleaved_ratio},
                {"step_over_plain_forward", overhead_ratio},
                {"step_over_plain_forward_16k", overhead_16k},
                {"plain_forward_median_seconds", Median(plain)},
                {"rss_ratio", rss_ratio},
                {"peak_rss_ratio", peak_ratio},
                {"rss_before_triad_bytes", rss_before_triad},
                {"triad_gbps", triad_gbps},
                {"best_step_seconds_largest_context", best_step},
                {"best_kv_gbps_largest_context", best_gbps},
                {"fraction_of_triad_bandwidth", best_gbps / triad_gbps},
                {"targets", targets}};
    doc["contexts"] = json::array();
    for (const ContextResult& r : results) {
      doc["contexts"].push_back({{"context", r.context},
                                 {"fill_seconds", r.fill_seconds},
                                 {"median_seconds", r.median},
                                 {"p10_seconds", r.p10},
                                 {"p90_seconds", r.p90},
                                 {"kv_bytes_per_token", r.kv_bytes},
                                 {"kv_gbps", r.gbps},
                                 {"cache_bytes", r.cache_bytes},
                                 {"rss_bytes", r.rss},
                                 {"peak_rss_bytes", r.peak_rss}});
    }
    *out = std::move(doc);
  }
  return 0;
}

}  // namespace swa::cli
