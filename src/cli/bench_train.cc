// `swa bench train`: one training step (forward, backward, AdamW) of the ~10M-parameter
// mixed-window model (preset mixed_gated at its default size: narrow, wide and global
// heads, gated fusion) on random tokens, as a share of this machine's FMA peak measured by
// a burst right before each timed step. FLOPs are 6 * parameters * tokens for the dense
// layers plus, for attention, 4 * D per visible (query, key) pair and head forward and 10
// * D backward, counted exactly from the rule.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "cli/machine.h"
#include "common/parallel.h"
#include "model/model.h"
#include "model/presets.h"
#include "ops/kernels.h"
#include "train/optimizer.h"

namespace swa::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The dense layers' choice of GEMM, measured: the model's up-projection shape (tokens x
// F x d) through OpenBLAS's sgemm and through swa's own tile GEMM (ops::TileGemm, the
// attention tiles' register-blocked kernel without packing, on one thread per block of
// rows), each as a share of the FMA peak burst taken right before it.
json GemmChoice(int threads, int64_t m, int64_t n, int64_t k) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const size_t lanes = ops::FloatLanes();
  const int64_t ldc =
      (n + static_cast<int64_t>(lanes) - 1) / static_cast<int64_t>(lanes) * static_cast<int64_t>(lanes);
  std::vector<float> a(m * k), b(k * ldc), c(m * ldc);
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  ThreadPool& pool = ThreadPool::Default();
  auto openblas = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, a.data(), static_cast<int>(k), b.data(), static_cast<int>(ldc),
                0.0f, c.data(), static_cast<int>(ldc));
  };
  constexpr int64_t kRows = 192;  // rows per task of the tile GEMM
  auto tiles = [&] {
    pool.ParallelFor((m + kRows - 1) / kRows, threads, [&](int64_t t, int) {
      ops::GemmArgs g;
      g.m = static_cast<size_t>(std::min(kRows, m - t * kRows));
      g.n = static_cast<size_t>(n);
      g.k = static_cast<size_t>(k);
      g.a = a.data() + t * kRows * k;
      g.a_rs = static_cast<size_t>(k);
      g.a_cs = 1;
      g.b = b.data();
      g.ldb = static_cast<size_t>(ldc);
      g.c = c.data() + t * kRows * ldc;
      g.ldc = static_cast<size_t>(ldc);
      g.b_padded = true;
      ops::TileGemm(g);
    });
  };
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  double best_blas = 0, best_tiles = 0, peak = 0;
  for (int rep = 0; rep < 4; ++rep) {
    peak = std::max(peak, FmaPeakGflops(threads));
    for (int side = 0; side < 2; ++side) {
      const auto t0 = Clock::now();
      side == 0 ? openblas() : tiles();
      const double rate = flops / std::chrono::duration<double>(Clock::now() - t0).count() * 1e-9;
      (side == 0 ? best_blas : best_tiles) = std::max(side == 0 ? best_blas : best_tiles, rate);
    }
  }
  std::printf(
      "dense GEMM %lld x %lld x %lld: OpenBLAS %.3f of the FMA peak, swa's tile GEMM %.3f (peak %.1f "
      "GFLOP/s)\n",
      static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k), best_blas / peak,
      best_tiles / peak, peak);
  return {{"m", m},
          {"n", n},
          {"k", k},
          {"openblas_fraction_of_peak", best_blas / peak},
          {"tile_gemm_fraction_of_peak", best_tiles / peak},
          {"fma_peak_gflops", peak}};
}

}  // namespace

int RunTrainBench(const BenchOptions& opt, json* doc) {
  const int threads = ThreadPool::ResolveThreads(opt.threads);
  openblas_set_num_threads(threads);
  const int64_t seq = opt.quick ? 256 : 2048, rows = opt.quick ? 1 : 4, steps = opt.quick ? 2 : 4;
  model::PresetSize size;
  if (opt.quick) size = model::PresetSize::Tiny();
  const model::ModelConfig config = model::Preset("mixed_gated", size);
  const model::Model m(config, threads);
  const int64_t params = model::ParameterCount(config), tokens = seq * rows;
  const double pairs = AttentionPairs(config, seq, rows);
  const double flops = 6.0 * static_cast<double>(params) * static_cast<double>(tokens) +
                       14.0 * static_cast<double>(config.head_dim) * pairs;

  std::mt19937_64 rng(5);
  std::vector<int32_t> ids(tokens), targets(tokens), cu;
  for (int64_t t = 0; t < tokens; ++t) {
    ids[t] = static_cast<int32_t>(rng() % 256);
    targets[t] = static_cast<int32_t>(rng() % 256);
  }
  for (int64_t r = 0; r <= rows; ++r) cu.push_back(static_cast<int32_t>(r * seq));
  const model::TokenBatch batch{ids.data(), targets.data(), tokens, cu.data(), rows};
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> p(m.param_floats()), g(p.size()), m1(p.size(), 0.0f), m2(p.size(), 0.0f);
  for (float& x : p) x = normal(rng);
  std::vector<train::ParamSpan> spans;
  for (const model::ParamInfo& info : m.layout()) spans.push_back({info.offset, info.count, info.decay});
  ThreadPool& pool = ThreadPool::Default();
  model::Workspace<float> ws;

  std::printf("model mixed_gated: %lld parameters, %lld layers, seq %lld x %lld rows, %d threads\n",
              static_cast<long long>(params), static_cast<long long>(config.num_hidden_layers),
              static_cast<long long>(seq), static_cast<long long>(rows), threads);
  std::printf("FLOPs per step: %.1f G (dense %.1f G, attention %.1f G)\n", flops * 1e-9,
              6.0 * static_cast<double>(params) * static_cast<double>(tokens) * 1e-9,
              14.0 * static_cast<double>(config.head_dim) * pairs * 1e-9);
  double best = 1e30, peak = 0;
  for (int64_t step = 0; step <= steps; ++step) {  // step 0 warms the buffers up
    peak = std::max(peak, FmaPeakGflops(threads));
    const auto t0 = Clock::now();
    std::fill(g.begin(), g.end(), 0.0f);
    const double loss = m.Loss(p.data(), batch, g.data(), &ws, pool);
    train::ClipGradients(g.data(), static_cast<int64_t>(g.size()), 1.0, pool, threads);
    train::AdamWStep(train::AdamW{}, 1e-4f, step + 1, spans, p.data(), g.data(), m1.data(), m2.data(), pool,
                     threads);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("step %lld: loss %.4f, %.3f s, %.1f GFLOP/s (peak burst %.1f)\n",
                static_cast<long long>(step), loss, seconds, flops / seconds * 1e-9, peak);
    std::fflush(stdout);
    if (step > 0) best = std::min(best, seconds);
  }
  const double mfu = flops / best * 1e-9 / peak;
  const double tokens_per_second = static_cast<double>(tokens) / best;
  std::printf(
      "\nbest step %.3f s: %.0f tokens/s, %.1f GFLOP/s = %.3f of the FMA peak (%.1f GFLOP/s); peak RSS %.0f "
      "MiB\n",
      best, tokens_per_second, flops / best * 1e-9, mfu, peak, PeakRssBytes() / 1048576.0);
  const bool met = mfu >= 0.45;
  std::printf("%-52s %8.3f >= %5.2f %s\n", "training step share of FMA peak", mfu, 0.45, met ? "yes" : "NO");
  const json gemm = GemmChoice(threads, tokens, config.intermediate_size, config.hidden_size);
  *doc = {{"preset", "mixed_gated"},
          {"gemm_choice", gemm},
          {"parameters", params},
          {"seq", seq},
          {"rows", rows},
          {"threads", threads},
          {"flops_per_step", flops},
          {"attention_flops_per_step", 14.0 * static_cast<double>(config.head_dim) * pairs},
          {"best_step_seconds", best},
          {"tokens_per_second", tokens_per_second},
          {"fma_peak_gflops", peak},
          {"fraction_of_fma_peak", mfu},
          {"peak_rss_bytes", PeakRssBytes()},
          {"targets", json::array({{{"target", "training step share of FMA peak"},
                                    {"value", mfu},
                                    {"bound", 0.45},
                                    {"met", met}}})}};
  return 0;
}

}  // namespace swa::cli
