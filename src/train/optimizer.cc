#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "common/error.h"

namespace swa::train {
namespace {

// Elements per task: large enough to amortise the scheduling, small enough to balance.
constexpr int64_t kChunk = int64_t{1} << 15;

int64_t Chunks(int64_t n) { return (n + kChunk - 1) / kChunk; }

void CheckLength(int64_t n, const char* what) {
  if (n < 0) ThrowInvalid(std::string(what) + ": negative element count " + std::to_string(n));
}

// One task: elements [begin, end) of one span.
struct ChunkRange {
  int64_t begin, end;
  bool decay;
};

// The chunks of every span, in buffer order; throws on spans that overlap or overflow.
std::vector<ChunkRange> CutSpans(const std::vector<ParamSpan>& spans) {
  std::vector<ParamSpan> sorted = spans;
  std::sort(sorted.begin(), sorted.end(),
            [](const ParamSpan& a, const ParamSpan& b) { return a.offset < b.offset; });
  std::vector<ChunkRange> chunks;
  int64_t previous_end = 0;
  for (const ParamSpan& s : sorted) {
    if (s.offset < 0 || s.count < 0 || s.count > std::numeric_limits<int64_t>::max() - s.offset)
      ThrowInvalid("AdamW: span at offset " + std::to_string(s.offset) + " with count " +
                   std::to_string(s.count) + " is out of range");
    if (s.count == 0) continue;
    if (s.offset < previous_end)
      ThrowInvalid("AdamW: span at offset " + std::to_string(s.offset) + " overlaps the span ending at " +
                   std::to_string(previous_end));
    for (int64_t b = s.offset; b < s.offset + s.count; b += kChunk)
      chunks.push_back({b, std::min(b + kChunk, s.offset + s.count), s.decay});
    previous_end = s.offset + s.count;
  }
  return chunks;
}

}  // namespace

void AdamWStep(const AdamW& cfg, float lr, int64_t step, const std::vector<ParamSpan>& spans, float* params,
               const float* grads, float* m, float* v, ThreadPool& pool, int threads) {
  if (step < 1)
    ThrowInvalid("AdamW: step must be >= 1 (bias correction is 1-based), got " + std::to_string(step));
  if (!(cfg.beta1 >= 0.0f && cfg.beta1 < 1.0f) || !(cfg.beta2 >= 0.0f && cfg.beta2 < 1.0f))
    ThrowInvalid("AdamW: beta1 and beta2 must be in [0, 1)");
  if (!(cfg.eps > 0.0f) || !(cfg.weight_decay >= 0.0f) || !std::isfinite(cfg.weight_decay))
    ThrowInvalid("AdamW: eps must be > 0 and weight_decay finite and >= 0");
  if (!std::isfinite(lr) || lr < 0.0f)
    ThrowInvalid("AdamW: lr must be finite and >= 0, got " + std::to_string(lr));
  const std::vector<ChunkRange> chunks = CutSpans(spans);

  // Bias corrections in double (beta^t underflows gracefully to 0 for large t).
  const double correction1 = 1.0 - std::pow(static_cast<double>(cfg.beta1), static_cast<double>(step));
  const double correction2 = 1.0 - std::pow(static_cast<double>(cfg.beta2), static_cast<double>(step));
  const float step_size = static_cast<float>(lr / correction1);
  const float inv_sqrt_correction2 = static_cast<float>(1.0 / std::sqrt(correction2));
  const float decay_factor = 1.0f - lr * cfg.weight_decay;
  const float b1 = cfg.beta1, b2 = cfg.beta2, one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2,
              eps = cfg.eps;

  pool.ParallelFor(static_cast<int64_t>(chunks.size()), threads, [&](int64_t task, int) {
    const ChunkRange& c = chunks[task];
    const float keep = c.decay ? decay_factor : 1.0f;
    for (int64_t i = c.begin; i < c.end; ++i) {
      const float g = grads[i];
      const float mi = b1 * m[i] + one_minus_b1 * g;
      const float vi = b2 * v[i] + one_minus_b2 * (g * g);
      m[i] = mi;
      v[i] = vi;
      params[i] = params[i] * keep - step_size * (mi / (std::sqrt(vi) * inv_sqrt_correction2 + eps));
    }
  });
}

double GlobalNorm(const float* grads, int64_t n, ThreadPool& pool, int threads) {
  CheckLength(n, "GlobalNorm");
  std::vector<double> partial(static_cast<size_t>(Chunks(n)), 0.0);
  pool.ParallelFor(Chunks(n), threads, [&](int64_t c, int) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    double sum = 0.0;
    for (int64_t i = c * kChunk; i < end; ++i) sum += static_cast<double>(grads[i]) * grads[i];
    partial[c] = sum;
  });
  double total = 0.0;
  for (const double p : partial) total += p;
  return std::sqrt(total);
}

void ScaleGradients(float* grads, int64_t n, float factor, ThreadPool& pool, int threads) {
  CheckLength(n, "ScaleGradients");
  pool.ParallelFor(Chunks(n), threads, [&](int64_t c, int) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) grads[i] *= factor;
  });
}

double ClipGradients(float* grads, int64_t n, double max_norm, ThreadPool& pool, int threads) {
  if (!(max_norm > 0.0))
    ThrowInvalid("gradient clipping: max_norm must be > 0, got " + std::to_string(max_norm));
  const double norm = GlobalNorm(grads, n, pool, threads);
  if (std::isfinite(norm) && norm > max_norm)
    ScaleGradients(grads, n, static_cast<float>(max_norm / norm), pool, threads);
  return norm;
}

}  // namespace swa::train
