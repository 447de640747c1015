// Measurements of this machine's own ceilings, taken in the same run as a benchmark so
// that results are ratios, not lone absolute numbers. The machines are shared and their
// speed drifts by several times within minutes, so benchmarks take a short burst of
// these right before each timed run and report the ratio of the pair.
#pragma once

#include <cstdint>

namespace swa::cli {

// fp32 FMA throughput (GFLOP/s) with independent accumulator chains on `threads`
// threads, using the widest vector unit the CPU has (AVX-512, else AVX2+FMA, else
// scalar). `seconds` is the approximate length of the burst; the best of `reps`.
double FmaPeakGflops(int threads, double seconds = 0.03, int reps = 2);
// Name of the vector unit FmaPeakGflops used.
const char* FmaPeakIsa();

// STREAM-like triad a = b + s * c over arrays far larger than the caches, counting
// three arrays of traffic (GB/s); the best of `reps` passes.
class TriadBench {
 public:
  explicit TriadBench(int threads);
  ~TriadBench();
  TriadBench(const TriadBench&) = delete;
  TriadBench& operator=(const TriadBench&) = delete;
  double GBps(int reps = 2);

 private:
  int threads_;
  int64_t n_;
  float *a_, *b_, *c_;
};

}  // namespace swa::cli
