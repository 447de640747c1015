#include "attention/cpu/forward.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/grid.h"
#include "attention/rule.h"
#include "attention/schedule.h"

namespace swa::attention::cpu {
namespace {

constexpr int64_t kBlockQ = 64;  // query rows per task
constexpr int64_t kBlockK = 64;  // keys per schedule block

// Per-worker scratch, reused across tasks.
struct Scratch {
  std::vector<float> q, o, s, k, v, m, l;
  std::vector<KeyBlock> blocks;
  void Reserve(int64_t dim) {
    q.resize(kBlockQ * dim);
    o.resize(kBlockQ * dim);
    s.resize(kBlockQ * kBlockK);
    k.resize(kBlockK * dim);
    v.resize(kBlockK * dim);
    m.resize(kBlockQ);
    l.resize(kBlockQ);
  }
};

// Converts `rows` rows of one head into a dense f32 tile [rows, dim].
void LoadTile(const TensorRef& t, DType dtype, int64_t b, int64_t row0, int64_t rows, int64_t h,
              float* tile) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t base = t.Offset(b, row0 + r, h);
    float* dst = tile + r * t.dim;
    if (dtype == DType::kF32) {
      std::copy_n(static_cast<const float*>(t.data) + base, t.dim, dst);
    } else {
      for (int64_t d = 0; d < t.dim; ++d) dst[d] = LoadAsFloat(t.data, dtype, base + d);
    }
  }
}

void RunTask(const Problem& p, const BlockTask& task, Scratch& w) {
  const Sequence seq = p.Seq(task.seq);
  const int64_t h = task.head, kvh = h / p.group(), dim = p.dim;
  const int64_t rows = task.end - task.begin;
  const BandRule rule(p.mask, p.windows[h], seq.lq, seq.lk);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const float sink = p.sink_logits ? p.sink_logits[h] : neg_inf;
  const float slope = p.alibi_slopes ? p.alibi_slopes[h] : 0.0f;

  LoadTile(p.q, p.dtype, seq.batch, seq.q_begin + task.begin, rows, h, w.q.data());
  std::fill_n(w.o.begin(), rows * dim, 0.0f);
  // A learned sink is a key with logit `sink` and a zero value: it starts the softmax.
  std::fill_n(w.m.begin(), rows, sink);
  std::fill_n(w.l.begin(), rows, p.sink_logits ? 1.0f : 0.0f);

  ScheduleQueryBlock(rule, task.begin, task.end, kBlockK, &w.blocks);
  for (const KeyBlock& kb : w.blocks) {
    const int64_t cols = kb.end - kb.begin;
    LoadTile(p.k, p.dtype, seq.batch, seq.k_begin + kb.begin, cols, kvh, w.k.data());
    LoadTile(p.v, p.dtype, seq.batch, seq.k_begin + kb.begin, cols, kvh, w.v.data());
    for (int64_t r = 0; r < rows; ++r) {
      const float* qr = &w.q[r * dim];
      float* sr = &w.s[r * kBlockK];
      const int64_t i = task.begin + r, pos = rule.Position(i);
      float row_max = neg_inf;
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t j = kb.begin + c;
        if (!kb.full && !rule.Visible(i, j)) {
          sr[c] = neg_inf;
          continue;
        }
        const float* kc = &w.k[c * dim];
        float dot = 0.0f;
        for (int64_t d = 0; d < dim; ++d) dot += qr[d] * kc[d];
        float s = p.scale * dot;
        if (p.softcap > 0) s = p.softcap * std::tanh(s / p.softcap);
        if (p.alibi_slopes) s -= slope * static_cast<float>(std::abs(pos - j));
        sr[c] = s;
        row_max = std::max(row_max, s);
      }
      // Online softmax: rescale what was accumulated under the old maximum. While no
      // finite score was seen, exponentiate against 0 so that masked keys give 0 and
      // NaN scores still propagate.
      const float m_new = std::max(w.m[r], row_max);
      const float m_use = m_new == neg_inf ? 0.0f : m_new;
      const float alpha = std::exp(w.m[r] - m_use);
      float* orow = &w.o[r * dim];
      float sum = 0.0f;
      for (int64_t d = 0; d < dim; ++d) orow[d] *= alpha;
      for (int64_t c = 0; c < cols; ++c) {
        if (sr[c] == neg_inf) continue;  // masked: must not touch V (0 * NaN is NaN)
        const float e = std::exp(sr[c] - m_use);
        sum += e;
        const float* vc = &w.v[c * dim];
        for (int64_t d = 0; d < dim; ++d) orow[d] += e * vc[d];
      }
      w.l[r] = w.l[r] * alpha + sum;
      w.m[r] = m_new;
    }
  }
  // Normalise and store. A row with no visible key (l == 0) writes zeros and +inf.
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = task.begin + r;
    const float l = w.l[r];
    const float inv = l != 0 ? 1.0f / l : 0.0f;
    const int64_t base = p.out.Offset(seq.batch, seq.q_begin + i, h);
    for (int64_t d = 0; d < dim; ++d) StoreFromFloat(p.out.data, p.dtype, base + d, w.o[r * dim + d] * inv);
    if (p.lse) {
      p.lse[p.LseIndex(seq, h, i)] =
          l != 0 ? w.m[r] + std::log(l) : std::numeric_limits<float>::infinity();
    }
  }
}

}  // namespace

void Forward(const Problem& p, ThreadPool& pool) {
  const BlockGrid grid(p, p.hq, kBlockQ, /*over_keys=*/false);
  const int threads = static_cast<int>(std::min<int64_t>(ThreadPool::ResolveThreads(p.threads), grid.size()));
  if (threads <= 0) return;
  std::vector<Scratch> scratch(threads);
  for (Scratch& s : scratch) s.Reserve(p.dim);
  pool.ParallelFor(grid.size(), threads, [&](int64_t t, int worker) { RunTask(p, grid.At(t), scratch[worker]); });
}

}  // namespace swa::attention::cpu
