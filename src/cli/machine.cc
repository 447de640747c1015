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

// Each loop keeps 12 accumulators in flight (enough to cover FMA latency x ports) and
// returns a value derived from them so the work cannot be elided.
__attribute__((target("avx512f"))) float FmaLoopAvx512(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0] + out[15];
}

__attribute__((target("avx2,fma"))) float FmaLoopAvx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

float FmaLoopScalar(int64_t iters) {
  float acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = 1.0f + i * 1e-3f;
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = acc[i] * 0.999999f + 1e-7f;
  }
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

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
