// `swa train`: trains a model of docs/MODEL.md on text files (train/trainer.h).
// SIGINT and SIGTERM ask the run to stop after the current step: it writes a checkpoint
// and exits with 128 + the signal number (130, 143). A second signal kills at once
// (SA_RESETHAND), which the atomic checkpoint files survive.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "common/error.h"
#include "model/config.h"
#include "model/presets.h"
#include "train/trainer.h"

namespace swa::cli {
namespace {

// Set by the handler (the signal's number), read by the training loop after each step.
std::atomic<int> stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void OnStopSignal(int signal_number) { stop_signal.store(signal_number); }

// Installs the handler for SIGINT and SIGTERM while it lives.
class StopSignals {
 public:
  StopSignals() {
    struct sigaction action {};
    action.sa_handler = OnStopSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;  // the second signal takes the default action
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ThrowInvalid("--config: cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<model::ModelConfig> ModelOf(const TrainCommandOptions& opt) {
  if (!opt.preset.empty() && !opt.config_path.empty()) ThrowInvalid("give --preset or --config, not both");
  if (!opt.size.empty() && opt.preset.empty()) ThrowInvalid("--size applies to --preset only");
  if (!opt.config_path.empty()) {
    try {
      return model::ParseConfig(ReadFile(opt.config_path));
    } catch (const Error& e) {
      ThrowInvalid("--config " + opt.config_path + ": " + e.what());
    }
  }
  if (opt.preset.empty()) return std::nullopt;
  const model::PresetSize size = model::PresetSize::Named(opt.size);
  return model::Preset(opt.preset, size);
}

train::TrainOptions TrainerOptions(const TrainCommandOptions& opt) {
  train::TrainOptions o;
  o.config = ModelOf(opt);
  o.data = opt.data;
  o.extensions = opt.ext;
  o.out_dir = opt.out;
  o.seq = opt.seq;
  o.batch = opt.batch;
  o.steps = opt.steps;
  o.stop_after = opt.stop_after;
  o.lr = opt.lr;
  o.min_lr = opt.min_lr;
  o.warmup = opt.warmup;
  o.weight_decay = opt.weight_decay;
  o.clip = opt.clip;
  o.val_fraction = opt.val_fraction;
  o.seed = opt.seed;
  o.threads = opt.threads;
  o.eval_every = opt.eval_every;
  o.eval_batches = opt.eval_batches;
  o.save_every = opt.save_every;
  o.recompute = opt.recompute;
  o.resume = opt.resume;
  o.dtype = opt.dtype == "bf16" ? model::StoredDType::kBF16 : model::StoredDType::kF32;
  o.stop_signal = &stop_signal;
  return o;
}

void PrintSummary(const train::TrainOptions& o, const train::TrainResult& r) {
  const char* how = r.reason == train::StopReason::kSignal      ? "stopped by a signal"
                    : r.reason == train::StopReason::kStopAfter ? "stopped as asked (--stop-after)"
                                                                : "done";
  if (r.last_step < r.first_step) {
    std::printf("%s: already at step %lld of %lld, nothing to do\n", o.out_dir.c_str(),
                static_cast<long long>(r.last_step), static_cast<long long>(o.steps));
    return;
  }
  std::printf("%s: steps %lld..%lld of %lld in %.1f s, loss %.4f", how, static_cast<long long>(r.first_step),
              static_cast<long long>(r.last_step), static_cast<long long>(o.steps), r.seconds, r.last_loss);
  if (r.last_val_loss >= 0) {
    std::printf(", val_loss %.4f (%.4f bits per byte)", r.last_val_loss, r.last_val_loss / std::log(2.0));
  }
  std::printf(", %.0f tokens/s, peak RSS %.1f MiB; checkpoint %s/%s at step %lld\n",
              static_cast<double>(r.tokens) / r.seconds, static_cast<double>(r.peak_rss_bytes) / (1 << 20),
              o.out_dir.c_str(), train::kModelFile, static_cast<long long>(r.last_step));
}

}  // namespace

CLI::App* AddTrainCommand(CLI::App* app, TrainCommandOptions* opt) {
  const train::TrainOptions d;  // the defaults
  opt->seq = d.seq;
  opt->batch = d.batch;
  opt->steps = d.steps;
  opt->lr = d.lr;
  opt->min_lr = d.min_lr;
  opt->warmup = d.warmup;
  opt->weight_decay = d.weight_decay;
  opt->clip = d.clip;
  opt->val_fraction = d.val_fraction;
  opt->seed = d.seed;
  opt->threads = d.threads;
  opt->eval_every = d.eval_every;
  opt->eval_batches = d.eval_batches;
  opt->save_every = d.save_every;
  CLI::App* cmd = app->add_subcommand("train", "Train a model on text files (AdamW, checkpoints, resumable)");
  cmd->add_option("--preset", opt->preset, "Model preset")->check(CLI::IsMember(model::PresetNames()));
  cmd->add_option("--config", opt->config_path, "Model config JSON file (instead of --preset)");
  cmd->add_option("--size", opt->size, "Preset size: default (~9.5M parameters), small (~1.6M) or tiny")
      ->check(CLI::IsMember({"default", "small", "tiny"}));
  cmd->add_option("--data", opt->data, "Text files or directories (on --resume: default the run's own)");
  cmd->add_option("--ext", opt->ext, "Only files with these extensions, e.g. --ext py txt (default: all)");
  cmd->add_option("--out", opt->out, "Run directory: model.safetensors, model.state.safetensors, train.jsonl")
      ->required();
  cmd->add_option("--seq", opt->seq, "Tokens per row")->capture_default_str();
  cmd->add_option("--batch", opt->batch, "Rows per step")->capture_default_str();
  cmd->add_option("--steps", opt->steps, "Steps of the schedule")->capture_default_str();
  cmd->add_option("--stop-after", opt->stop_after, "Stop with a checkpoint after this step (0 = at --steps)");
  cmd->add_option("--lr", opt->lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--min-lr", opt->min_lr, "Learning rate at the end of the cosine")->capture_default_str();
  cmd->add_option("--warmup", opt->warmup, "Linear warmup steps (-1 = min(100, steps / 10))")
      ->capture_default_str();
  cmd->add_option("--weight-decay", opt->weight_decay, "AdamW decoupled weight decay (matrices only)")
      ->capture_default_str();
  cmd->add_option("--clip", opt->clip, "Global gradient-norm bound (0 = none)")->capture_default_str();
  cmd->add_option("--val-fraction", opt->val_fraction, "Share of the data held out for validation")
      ->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Seed of the weights and the data order")->capture_default_str();
  cmd->add_option("-t,--threads", opt->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--eval-every", opt->eval_every, "Validate every K steps (0 = never)")
      ->capture_default_str();
  cmd->add_option("--eval-batches", opt->eval_batches, "Validation batches (0 = all)")->capture_default_str();
  cmd->add_option("--save-every", opt->save_every, "Checkpoint every K steps (0 = at the end)")
      ->capture_default_str();
  cmd->add_option("--dtype", opt->dtype, "Dtype of the saved weights")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_flag("--recompute", opt->recompute, "Recompute block activations in the backward (less memory)");
  cmd->add_flag("--resume", opt->resume, "Continue the run in --out");
  return cmd;
}

int RunTrain(const TrainCommandOptions& opt) {
  try {
    train::TrainOptions o = TrainerOptions(opt);
    train::Progress progress = train::Progress::ForStderr();
    o.progress = &progress;
    stop_signal.store(0);
    const StopSignals signals;
    const train::TrainResult result = train::Train(o);
    PrintSummary(o, result);
    return result.reason == train::StopReason::kSignal ? 128 + stop_signal.load() : 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nswa train: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace swa::cli
