#include "train/synthetic.h"

#include <algorithm>

#include "common/error.h"
#include "train/tokens.h"

namespace swa::train {
namespace {

int32_t Pick(std::mt19937_64& rng, int64_t n) {
  return static_cast<int32_t>(rng() % static_cast<uint64_t>(n));
}

void EndRow(SyntheticBatch* b) {
  b->cu_seqlens.push_back(static_cast<int32_t>(b->tokens.size()));
  ++b->rows;
}

}  // namespace

SyntheticBatch CopyBatch(int64_t rows, int64_t span, int64_t symbols, std::mt19937_64& rng) {
  if (span < 1 || symbols < 2 || symbols > 26) ThrowInvalid("copy task: span >= 1 and 2 <= symbols <= 26");
  SyntheticBatch b;
  b.cu_seqlens.push_back(0);
  std::vector<int32_t> s(span);
  for (int64_t r = 0; r < rows; ++r) {
    for (int32_t& x : s) x = 'a' + Pick(rng, symbols);
    b.tokens.push_back(kBos);
    b.targets.push_back(kPad);
    for (int64_t i = 0; i < span; ++i) {
      b.tokens.push_back(s[i]);
      b.targets.push_back(kPad);
    }
    // From the separator on, each position predicts the next symbol of the copy.
    b.tokens.push_back('|');
    for (int64_t i = 0; i < span; ++i) {
      b.targets.push_back(s[i]);
      b.tokens.push_back(s[i]);
    }
    b.targets.push_back(kPad);  // after the copy: nothing
    EndRow(&b);
  }
  return b;
}

SyntheticBatch RecallBatch(int64_t rows, int64_t gap, int64_t keys, int64_t values, std::mt19937_64& rng) {
  if (gap < 0 || keys < 1 || keys > 26 || values < 2 || values > 26) {
    ThrowInvalid("recall task: gap >= 0, 1 <= keys <= 26, 2 <= values <= 26");
  }
  SyntheticBatch b;
  b.cu_seqlens.push_back(0);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t key = 'A' + Pick(rng, keys), value = 'a' + Pick(rng, values);
    for (int32_t t : {kBos, key, value}) {
      b.tokens.push_back(t);
      b.targets.push_back(kPad);
    }
    for (int64_t i = 0; i < gap; ++i) {
      b.tokens.push_back('0' + Pick(rng, 10));
      b.targets.push_back(kPad);
    }
    b.tokens.push_back(key);
    b.targets.push_back(value);
    EndRow(&b);
  }
  return b;
}

double TargetAccuracy(const model::Model& model, const float* params, const SyntheticBatch& batch,
                      model::Workspace<float>* ws, ThreadPool& pool) {
  const model::TokenBatch view = batch.View();
  const int64_t v = model.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(view.n * v));
  model.Logits(params, view, logits.data(), ws, pool);
  int64_t right = 0, total = 0;
  for (int64_t t = 0; t < view.n; ++t) {
    if (batch.targets[t] == kPad) continue;
    const float* row = logits.data() + t * v;
    right += std::max_element(row, row + v) - row == batch.targets[t];
    ++total;
  }
  return total > 0 ? static_cast<double>(right) / static_cast<double>(total) : 0.0;
}

}  // namespace swa::train
