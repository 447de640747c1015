// The training state that sits beside a checkpoint (docs/MODEL.md): a safetensors
// file, DIR/model.state.safetensors next to DIR/model.safetensors, holding what a run
// needs to continue bit-identically besides the weights.
//
// Tensors, for every tensor NAME of ParameterLayout(config):
//   adam.m.NAME, adam.v.NAME   AdamW's first and second moments (F32)
//   master.NAME                the f32 master weights, only when the checkpoint is stored
//                              in a narrower dtype (then the checkpoint cannot give them back)
// Metadata (strings):
//   format       "swa-train-state-1"
//   step         the last completed step
//   batcher      BatcherState::ToString(): where the data stream stands
//   config       ConfigToJson of the model
//   options      JSON of the options that must match on resume (trainer.h)
//   data         JSON of the corpus's paths and fingerprint
//   model_hash   ValuesHash of the weights as the checkpoint stores them (16 hex digits):
//                the state is written first and the checkpoint second, so a crash between
//                the two leaves a new state beside an old checkpoint, whose hash differs
//   tensor_hash  ValuesHash of m, v and master (in that order), so that a flipped byte in
//                the data region is caught, not trained on
//   log_bytes    the size of train.jsonl when the state was written
//   threads      the thread count of the run (bit-identity holds for the same count)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "train/batcher.h"

namespace swa::train {

inline constexpr char kTrainStateFormat[] = "swa-train-state-1";

// FNV-1a over 32-bit words instead of bytes, continuing from `hash`: for each value x,
// hash = (hash ^ bits(x)) * 0x100000001b3. Both steps are bijections, so changing any one
// value always changes the result. Start from kValuesHashSeed.
inline constexpr uint64_t kValuesHashSeed = 0xcbf29ce484222325ull;
uint64_t ValuesHash(const float* values,  // [count]
                    int64_t count, uint64_t hash);

// ValuesHash over the layout's tensors (padding excluded) of `params`
// ([LayoutFloats(config)]) as a checkpoint of `dtype` (kF32 or kBF16) stores them, i.e.
// after rounding to that dtype: equal to the hash of LoadCheckpoint's params.
uint64_t StoredWeightsHash(const model::ModelConfig& config, const float* params, model::StoredDType dtype);

struct TrainStateInfo {
  int64_t step = 0;
  BatcherState batcher;
  std::string options_json;
  std::string data_json;
  uint64_t model_hash = 0;
  int64_t log_bytes = 0;
  int threads = 0;
};

struct TrainState {
  TrainStateInfo info;
  model::ModelConfig config;
  std::vector<float> m, v;    // [LayoutFloats(config)], padding 0
  std::vector<float> master;  // [LayoutFloats(config)] or empty
};

// Writes the file atomically (WriteSafetensors). m, v: [LayoutFloats(config)];
// master: the same, or null when the checkpoint holds the weights in f32.
void SaveTrainState(const std::string& path, const model::ModelConfig& config, const TrainStateInfo& info,
                    const float* m, const float* v, const float* master);

// Reads and checks a file written by SaveTrainState: the format, every metadata field, a
// valid config, every tensor of its layout with the right shape and nothing else, and the
// tensor hash. Anything else is an swa::Error naming the file and the field.
TrainState LoadTrainState(const std::string& path);

}  // namespace swa::train
