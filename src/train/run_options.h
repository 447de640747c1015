// The checks a training run makes before it writes anything: its options' ranges, the
// record of the options and data that must match when it is resumed, and the refusal to
// start over a directory that already holds a run.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/corpus.h"
#include "train/train_state.h"
#include "train/trainer.h"

namespace swa::train {

// AdamW's constants (not options; recorded with the options all the same).
inline constexpr float kBeta1 = 0.9f;
inline constexpr float kBeta2 = 0.95f;
inline constexpr float kEps = 1e-8f;

// Throws swa::Error naming the first option (as its command-line flag) out of range.
void CheckOptions(const TrainOptions& options);

// The options that shape the losses, as JSON: seq, batch, steps, lr, min_lr, warmup,
// weight_decay, clip, val_fraction, seed, beta1, beta2, eps.
nlohmann::json ShapingOptions(const TrainOptions& options);

// Throws, listing every difference ("--seq is 64 here, 128 in the run"), when `saved` (the
// state's options JSON) differs from `now`.
void CheckSameOptions(const std::string& saved, const nlohmann::json& now, const std::string& state_path);

// Throws when model_path or state_path exists: a fresh run never overwrites another.
void RefuseExistingRun(const std::string& model_path, const std::string& state_path);

// options.data, or (when it is empty and a run is resumed) the run's own paths.
std::vector<std::string> DataPaths(const TrainOptions& options, const TrainStateInfo* resumed);

// {"paths": absolute paths, "documents", "bytes", "fingerprint"}: the fingerprint is
// FNV-1a 64 over every document's relative path and size, so that a resumed run notices
// files added, removed, renamed or resized.
nlohmann::json DataRecord(const std::vector<std::string>& paths, const std::vector<std::string>& extensions,
                          const Corpus& corpus);
// The file extensions to read: the given ones, or on resume without any, the run's own.
std::vector<std::string> DataExtensions(const TrainOptions& options, const TrainStateInfo* resumed);

// Throws when the data of a resumed run differs from the run's (paths may differ: the
// data may have moved).
void CheckSameData(const std::string& saved, const nlohmann::json& now, const std::string& state_path);

}  // namespace swa::train
