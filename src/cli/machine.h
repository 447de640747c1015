// Measurements of this machine's own ceilings, taken in the same run as a benchmark so
// that results are ratios, not lone absolute numbers.
#pragma once

namespace swa::cli {

// fp32 FMA throughput with independent accumulator chains on `threads` threads, using
// the widest vector unit the CPU has (AVX-512, else AVX2+FMA, else scalar).
double MeasureFmaPeakGflops(int threads);
// Name of the vector unit MeasureFmaPeakGflops used.
const char* FmaPeakIsa();
// STREAM-like triad a = b + s * c over arrays far larger than the caches, counting
// 3 arrays of traffic (GB/s).
double MeasureTriadGBps(int threads);

}  // namespace swa::cli
