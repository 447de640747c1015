// Evaluation of a checkpoint on text (docs/MODEL.md, "Loss"): every byte of each document
// is predicted from BOS and the bytes before it, and scored by its negative log
// probability; bits per byte = mean nats / ln 2. At an evaluation length C, each
// prediction reads at most the last C tokens at every layer (plus a layer's sink tokens,
// which are part of the model's rule): the documents stream through
// the cached decoder (generate/decoder.h) with every head's keys cut to the last C
// (StreamingOptions::context), so that lengths far beyond the training length cost O(C)
// memory. A document of at most C tokens is scored exactly as one forward over it; past C,
// a token's keys still carry what their own earlier context gave them, as in any
// streaming decoder, where recomputing each prediction from the last C tokens alone would
// cost C times more.
//
// Also a synthetic long-range recall probe: a random string of letters, `distance` bytes of
// filler text, then the string's first half again: the share of the second half the model
// predicts (argmax, given the true previous bytes), at distances inside and beyond its
// local windows.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"

namespace swa::generate {

struct ContextScore {
  int64_t context = 0;  // C (0: unbounded)
  double nats = 0;      // summed over the bytes scored
  int64_t bytes = 0;    // bytes scored
  double seconds = 0;   // wall time of this length's pass
  double bits_per_byte() const;
};

// Progress callback: (context, bytes done, bytes total).
using EvalProgress = std::function<void(int64_t, int64_t, int64_t)>;

// Scores every byte of `documents` at each evaluation length of `contexts` (each >= 1).
std::vector<ContextScore> ScoreDocuments(const model::ModelConfig& config, const std::vector<float>& params,
                                         const std::vector<std::span<const uint8_t>>& documents,
                                         const std::vector<int64_t>& contexts, int64_t chunk, int threads,
                                         const EvalProgress& progress);

struct RecallScore {
  int64_t distance = 0;  // filler bytes between the string and its repeat
  int64_t predicted = 0, right = 0;
  double accuracy() const {
    return predicted > 0 ? static_cast<double>(right) / static_cast<double>(predicted) : 0;
  }
};

// The recall probe at each distance, `trials` random strings of `length` letters each
// (the model predicts the last length/2), with filler cut from `filler` (repeated as
// needed; a built-in English text when empty). Seeded, so the same every run.
std::vector<RecallScore> RecallProbe(const model::ModelConfig& config, const std::vector<float>& params,
                                     const std::vector<int64_t>& distances, int64_t trials, int64_t length,
                                     std::span<const uint8_t> filler, int threads, uint64_t seed = 1);

// The widest bounded window of the model (tokens a local head sees), or 0 if none.
int64_t WidestLocalWindow(const model::ModelConfig& config);

}  // namespace swa::generate
