// Synthetic tasks that need no data, to check that a model learns what its windows allow:
//
//   copy:   BOS s_1 .. s_S '|' s_1 .. s_S        predict the second copy of the span; the
//                                                 copy is S + 1 tokens behind: inside a window
//                                                 of more than S + 1 tokens.
//   recall: BOS k v f_1 .. f_G k                  predict v at the final key; v is G + 2
//                                                 tokens behind, farther than every local
//                                                 window (and than the layers' stacked
//                                                 reach), so only a global head can see it.
//
// Span symbols and values are lowercase letters, keys uppercase letters, filler digits,
// drawn uniformly; each row is its own document (segment). Targets are kPad except at the
// predicted positions.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "model/model.h"

namespace swa::train {

struct SyntheticBatch {
  std::vector<int32_t> tokens, targets, cu_seqlens;
  int64_t rows = 0;
  model::TokenBatch View() const {
    return {tokens.data(), targets.data(), static_cast<int64_t>(tokens.size()), cu_seqlens.data(), rows};
  }
};

// `rows` rows of the copy task with spans of `span` symbols from an alphabet of `symbols`
// (at most 26).
SyntheticBatch CopyBatch(int64_t rows, int64_t span, int64_t symbols, std::mt19937_64& rng);

// `rows` rows of the recall task: `keys` keys and `values` values (at most 26 each), a gap
// of `gap` filler tokens between the value and the repeated key.
SyntheticBatch RecallBatch(int64_t rows, int64_t gap, int64_t keys, int64_t values, std::mt19937_64& rng);

// Share of the batch's targets (other than kPad) that are the model's argmax.
double TargetAccuracy(const model::Model& model, const float* params, const SyntheticBatch& batch,
                      model::Workspace<float>* ws, ThreadPool& pool);

}  // namespace swa::train
