// The training loop: AdamW on the model of docs/MODEL.md over packed byte
// documents, with a warmup-then-cosine schedule, global-norm clipping, periodic
// validation, atomic checkpoints and bit-identical resumption.
//
// A run lives in one directory:
//   model.safetensors        the weights (SaveCheckpoint), stored as options.dtype
//   model.state.safetensors  the training state (train_state.h), written just before them
//   train.jsonl              one JSON object a line:
//     every step   {"step", "loss", "lr", "grad_norm", "tokens", "seconds", "tokens_per_s",
//                   "peak_rss_bytes"}: the loss before the step's update, the gradient norm
//                   before clipping, tokens trained so far (steps * batch * seq), the step's
//                   wall time and its tokens per second, the process's peak RSS so far
//     validation   {"step", "val_loss", "val_bits_per_byte"}: the mean cross-entropy over
//                   the validation batches' targets, and that loss / ln 2
//
// One step: the next batch (batch rows of seq tokens, packed by train/batcher.h, one
// varlen call), the loss and gradient, clipping, the learning rate of the schedule, one
// AdamW step with weight decay on the tensors whose ParamInfo.decay is set. Validation runs
// after steps that are multiples of eval_every and after the schedule's last step.
// Checkpoints are written after multiples of save_every, at the end, when stop_after is
// reached and when *stop_signal becomes nonzero (checked after every step).
//
// Resuming (resume = true) reads the state and the checkpoint, checks that they belong
// together (the state's model_hash), that the options that shape the run (seq, batch,
// steps, lr, min_lr, warmup, weight_decay, clip, val_fraction, seed) and the data are
// those of the run, cuts train.jsonl back to the state's log_bytes (dropping records of
// steps that are about to be redone), and continues. With the same thread count the
// losses are bit-identical to a run that was never interrupted. Nothing is written until
// every check has passed; a fresh run refuses a directory that already holds one.
//
// A loss or gradient norm that is not finite stops the run with an swa::Error before the
// step's update; the last checkpoint on disk is kept as it is.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "train/progress.h"

namespace swa::train {

struct TrainOptions {
  std::optional<model::ModelConfig> config;  // required for a fresh run; on resume, the
                                             // checkpoint's config, which must equal it if set
  std::vector<std::string> data;             // files or directories (corpus.h); on resume, empty
                                             // means the run's own paths
  std::vector<std::string> extensions;       // only files ending so ("py", ".txt"); empty = all;
                                             // on resume, empty means the run's own
  std::string out_dir;
  int64_t seq = 256;       // tokens per row
  int64_t batch = 8;       // rows per step
  int64_t steps = 1000;    // the schedule's length T
  int64_t stop_after = 0;  // stop (with a checkpoint) after this step; 0 = run to `steps`
  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup = -1;  // -1: min(100, steps / 10)
  double weight_decay = 0.1;
  double clip = 1.0;  // global gradient norm bound; 0 = no clipping
  double val_fraction = 0.05;
  uint64_t seed = 1;       // weights and data order
  int threads = 0;         // 0 = all cores
  int64_t eval_every = 0;  // 0 = no validation
  int64_t eval_batches = 8;
  int64_t save_every = 0;  // 0 = only at the end or when stopped
  bool recompute = false;  // keep only block inputs, recompute in the backward
  bool resume = false;
  model::StoredDType dtype = model::StoredDType::kF32;
  // Nonzero asks the run to stop after the current step (set by a signal handler).
  const std::atomic<int>* stop_signal = nullptr;
  // Called after each backward with (step, grads [n], n); tests use it to poison a step.
  std::function<void(int64_t, float*, int64_t)> after_backward;
  Progress* progress = nullptr;  // null: silent
};

enum class StopReason { kFinished, kStopAfter, kSignal };

struct TrainResult {
  int64_t first_step = 0;  // the first step this call ran
  int64_t last_step = 0;   // the last completed step (== the checkpoint's)
  double last_loss = 0;
  double last_val_loss = -1;  // -1: no validation ran
  double seconds = 0;         // wall time of this call
  int64_t tokens = 0;         // tokens trained by this call
  int64_t peak_rss_bytes = 0;
  StopReason reason = StopReason::kFinished;
};

TrainResult Train(const TrainOptions& options);

// options.warmup, or its automatic value when it is -1.
int64_t WarmupSteps(const TrainOptions& options);

// File names inside out_dir.
inline constexpr char kModelFile[] = "model.safetensors";
inline constexpr char kStateFile[] = "model.state.safetensors";
inline constexpr char kLogFile[] = "train.jsonl";

// The process's peak resident set size in bytes (getrusage).
int64_t PeakRssBytes();

}  // namespace swa::train
