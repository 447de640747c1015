// Row-parallel loops for the model's elementwise work. Rows are cut into fixed chunks
// whatever the thread count, and every sum across rows is taken chunk by chunk in order,
// so that results are the same bits on any number of threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/parallel.h"

namespace swa::model {

constexpr int64_t kRowChunk = 64;

inline int64_t RowChunks(int64_t rows) { return (rows + kRowChunk - 1) / kRowChunk; }

// f(chunk, begin, end) for each chunk of [0, rows).
template <class F>
void ForRowChunks(int64_t rows, ThreadPool& pool, int threads, const F& f) {
  const int64_t chunks = RowChunks(rows);
  const int workers = static_cast<int>(std::min<int64_t>(ThreadPool::ResolveThreads(threads), chunks));
  if (workers <= 1) {
    for (int64_t c = 0; c < chunks; ++c) f(c, c * kRowChunk, std::min(rows, (c + 1) * kRowChunk));
    return;
  }
  pool.ParallelFor(chunks, workers,
                   [&](int64_t c, int) { f(c, c * kRowChunk, std::min(rows, (c + 1) * kRowChunk)); });
}

// acc[0, n) += parts[c][0, n) for every chunk c, in chunk order.
template <class T>
void SumChunks(const std::vector<T>& parts, int64_t chunks, int64_t n, T* acc) {
  for (int64_t c = 0; c < chunks; ++c) {
    for (int64_t i = 0; i < n; ++i) acc[i] += parts[c * n + i];
  }
}

}  // namespace swa::model
