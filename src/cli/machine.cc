#include "cli/machine.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace swa::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Each loop keeps 12 independent accumulators in flight (enough to cover FMA latency x
// ports) and returns a value derived from them so the work cannot be elided. They are
// named variables, not an array, so that no optimisation level leaves them in memory.
#define SWA_FMA_LOOP(VEC, SET1, FMA, ADD, STOREU, LANES)                                  \
  VEC a0 = SET1(1.000f), a1 = SET1(1.001f), a2 = SET1(1.002f), a3 = SET1(1.003f);       \
  VEC a4 = SET1(1.004f), a5 = SET1(1.005f), a6 = SET1(1.006f), a7 = SET1(1.007f);       \
  VEC a8 = SET1(1.008f), a9 = SET1(1.009f), a10 = SET1(1.010f), a11 = SET1(1.011f);     \
  const VEC m = SET1(0.999999f), c = SET1(1e-7f);                                       \
  for (int64_t it = 0; it < iters; ++it) {                                              \
    a0 = FMA(a0, m, c);                                                                 \
    a1 = FMA(a1, m, c);                                                                 \
    a2 = FMA(a2, m, c);                                                                 \
    a3 = FMA(a3, m, c);                                                                 \
    a4 = FMA(a4, m, c);                                                                 \
    a5 = FMA(a5, m, c);                                                                 \
    a6 = FMA(a6, m, c);                                                                 \
    a7 = FMA(a7, m, c);                                                                 \
    a8 = FMA(a8, m, c);                                                                 \
    a9 = FMA(a9, m, c);                                                                 \
    a10 = FMA(a10, m, c);                                                               \
    a11 = FMA(a11, m, c);                                                               \
  }                                                                                     \
  const VEC s = ADD(ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7))),  \
                    ADD(ADD(a8, a9), ADD(a10, a11)));                                   \
  float out[LANES];                                                                     \
  STOREU(out, s);                                                                       \
  return out[0] + out[LANES - 1];

__attribute__((target("avx512f"))) float FmaLoopAvx512(int64_t iters) {
  SWA_FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16)
}

__attribute__((target("avx2,fma"))) float FmaLoopAvx2(int64_t iters) {
  SWA_FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8)
}

inline float ScalarSet1(float x) { return x; }
inline float ScalarFma(float a, float b, float c) { return a * b + c; }
inline float ScalarAdd(float a, float b) { return a + b; }
inline void ScalarStore(float* p, float x) { *p = x; }

float FmaLoopScalar(int64_t iters) { SWA_FMA_LOOP(float, ScalarSet1, ScalarFma, ScalarAdd, ScalarStore, 1) }

#undef SWA_FMA_LOOP

int Lanes() {
  static const int lanes = [] {
    if (__builtin_cpu_supports("avx512f")) return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
    return 1;
  }();
  return lanes;
}

float FmaLoop(int64_t iters) {
  switch (Lanes()) {
    case 16:
      return FmaLoopAvx512(iters);
    case 8:
      return FmaLoopAvx2(iters);
    default:
      return FmaLoopScalar(iters);
  }
}

// Runs body(thread) on `threads` threads at once; returns the wall time in seconds.
template <class Body>
double TimeParallel(int threads, Body&& body) {
  std::vector<std::thread> pool;
  const auto t0 = Clock::now();
  for (int t = 1; t < threads; ++t) pool.emplace_back([&, t] { body(t); });
  body(0);
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

volatile float g_sink;

}  // namespace

const char* FmaPeakIsa() {
  switch (Lanes()) {
    case 16:
      return "avx512";
    case 8:
      return "avx2";
    default:
      return "scalar";
  }
}

double FmaPeakGflops(int threads, double seconds, int reps) {
  // Assume ~100 GFLOP/s per thread to size the burst; the measured rate is exact anyway.
  const double flops_per_iter = 2.0 * 12 * Lanes();
  const int64_t iters = std::max<int64_t>(1000, static_cast<int64_t>(seconds * 1e11 / flops_per_iter));
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    const double sec = TimeParallel(threads, [&](int) { g_sink = FmaLoop(iters); });
    best = std::max(best, flops_per_iter * static_cast<double>(iters) * threads / sec * 1e-9);
  }
  return best;
}

TriadBench::TriadBench(int threads) : threads_(threads), n_(int64_t{1} << 25) {
  a_ = new float[n_];
  b_ = new float[n_];
  c_ = new float[n_];
  // First touch from the threads that will run the triad.
  TimeParallel(threads_, [&](int t) {
    const int64_t lo = n_ * t / threads_, hi = n_ * (t + 1) / threads_;
    for (int64_t i = lo; i < hi; ++i) {
      a_[i] = 0.0f;
      b_[i] = 1.0f;
      c_[i] = 2.0f;
    }
  });
}

TriadBench::~TriadBench() {
  delete[] a_;
  delete[] b_;
  delete[] c_;
}

double TriadBench::GBps(int reps) {
  const float s = 0.5f;
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    const double sec = TimeParallel(threads_, [&](int t) {
      const int64_t lo = n_ * t / threads_, hi = n_ * (t + 1) / threads_;
      for (int64_t i = lo; i < hi; ++i) a_[i] = b_[i] + s * c_[i];
    });
    best = std::max(best, 3.0 * static_cast<double>(n_) * sizeof(float) / sec * 1e-9);
  }
  g_sink = a_[n_ / 2];
  return best;
}

}  // namespace swa::cli
