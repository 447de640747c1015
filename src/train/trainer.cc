#include "train/trainer.h"

#include <cblas.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/parallel.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "train/batcher.h"
#include "train/corpus.h"
#include "train/init.h"
#include "train/optimizer.h"
#include "train/run_options.h"
#include "train/schedule.h"
#include "train/split.h"
#include "train/train_log.h"
#include "train/train_state.h"

namespace swa::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

model::TokenBatch AsTokenBatch(const PackedBatch& b) {
  return model::TokenBatch{b.tokens.data(), b.targets.data(), static_cast<int64_t>(b.tokens.size()),
                           b.cu_seqlens.data(), static_cast<int64_t>(b.cu_seqlens.size()) - 1};
}

// Mean cross-entropy over every target of the validation batches (each batch's mean
// weighted by its count of targets).
double Evaluate(const model::Model& model, const float* params, const std::vector<PackedBatch>& batches,
                model::Workspace<float>* ws, ThreadPool& pool, Progress* progress) {
  double total = 0;
  int64_t count = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    if (progress != nullptr)
      progress->Task("evaluating", static_cast<int64_t>(b), static_cast<int64_t>(batches.size()));
    int64_t targets = 0;
    const double loss =
        model.Loss(params, AsTokenBatch(batches[b]), static_cast<float*>(nullptr), ws, pool, &targets);
    total += loss * static_cast<double>(targets);
    count += targets;
  }
  return count > 0 ? total / static_cast<double>(count) : 0.0;
}

// What Train needs from a run on disk to continue it.
struct Resumed {
  TrainState state;
  model::ModelConfig config;
  std::vector<float> params;  // the f32 master weights
};

Resumed LoadRun(const TrainOptions& o, const std::string& model_path, const std::string& state_path,
                const json& shaping) {
  if (!fs::exists(state_path)) {
    ThrowInvalid("--resume: there is no training state " + state_path +
                 " to resume (start without --resume)");
  }
  Resumed run;
  run.state = LoadTrainState(state_path);
  model::Checkpoint checkpoint = model::LoadCheckpoint(model_path);
  if (!(checkpoint.config == run.state.config)) {
    ThrowInvalid(model_path + " holds another model than its training state " + state_path + " describes");
  }
  if (o.config && !(*o.config == checkpoint.config)) {
    ThrowInvalid("--resume: the model given (--preset/--config/--size) differs from the one in " +
                 model_path + " (leave them out to continue with the checkpoint's)");
  }
  if (StoredWeightsHash(checkpoint.config, checkpoint.params.data(), model::StoredDType::kF32) !=
      run.state.info.model_hash) {
    ThrowInvalid(
        model_path + " does not hold the weights that " + state_path + " was saved with (their hash " +
        "differs): one is corrupt, the run was stopped between writing the two, or a file was replaced; " +
        "refusing to resume from a mismatched pair");
  }
  CheckSameOptions(run.state.info.options_json, shaping, state_path);
  run.config = checkpoint.config;
  run.params = run.state.master.empty() ? std::move(checkpoint.params) : std::move(run.state.master);
  return run;
}

}  // namespace

int64_t WarmupSteps(const TrainOptions& o) {
  return o.warmup >= 0 ? o.warmup : std::min<int64_t>(100, o.steps / 10);
}

int64_t PeakRssBytes() {
  struct rusage usage {};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

TrainResult Train(const TrainOptions& o) {
  const Clock::time_point start = Clock::now();
  CheckOptions(o);
  Progress* progress = o.progress;
  const fs::path dir(o.out_dir);
  const std::string model_path = (dir / kModelFile).string(), state_path = (dir / kStateFile).string(),
                    log_path = (dir / kLogFile).string();
  const json shaping = ShapingOptions(o);

  // Every check comes before the first write, so that bad input loses nothing.
  std::optional<Resumed> resumed;
  model::ModelConfig config;
  std::vector<float> params;  // [LayoutFloats(config)], the f32 master weights
  if (o.resume) {
    resumed = LoadRun(o, model_path, state_path, shaping);
    config = resumed->config;
    params = std::move(resumed->params);
  } else {
    RefuseExistingRun(model_path, state_path);
    if (!o.config) ThrowInvalid("no model given: pass --preset NAME or --config FILE");
    config = *o.config;
    model::ValidateConfig(config);
  }
  const std::vector<std::string> paths = DataPaths(o, resumed ? &resumed->state.info : nullptr);
  const std::vector<std::string> extensions = DataExtensions(o, resumed ? &resumed->state.info : nullptr);
  const Corpus corpus = Corpus::Open(paths, extensions);
  const json data = DataRecord(paths, extensions, corpus);
  if (resumed) CheckSameData(resumed->state.info.data_json, data, state_path);
  const Split split = MakeSplit(corpus, o.val_fraction);
  Batcher batcher(split.train, o.seed);
  if (resumed) {
    try {
      batcher.Restore(resumed->state.info.batcher);
    } catch (const Error& e) {
      ThrowInvalid(state_path + ": " + e.what());
    }
  }
  std::vector<PackedBatch> validation;
  if (o.eval_every > 0) {
    if (split.validation.empty()) ThrowInvalid("--eval-every needs validation text, but --val-fraction is 0");
    validation = ValidationBatches(split, o.batch, o.seq, o.eval_batches);
  }

  const int threads = ThreadPool::ResolveThreads(o.threads);
  openblas_set_num_threads(threads);
  ThreadPool pool;
  const model::Model model(config, threads, o.recompute);
  const int64_t n = model.param_floats();
  std::vector<float> grads(static_cast<size_t>(n)), m(static_cast<size_t>(n), 0.0f), v(m);  // [n] each
  if (resumed) {
    m = std::move(resumed->state.m);
    v = std::move(resumed->state.v);
  } else {
    params.resize(static_cast<size_t>(n));
    InitParameters(config, model.layout(), o.seed, params.data());
  }
  std::vector<ParamSpan> spans;
  for (const model::ParamInfo& p : model.layout()) spans.push_back({p.offset, p.count, p.decay});
  const AdamW adamw{kBeta1, kBeta2, kEps, static_cast<float>(o.weight_decay)};

  // From here on the directory is written.
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) ThrowInvalid("cannot create the output directory " + o.out_dir + ": " + ec.message());
  TrainLog log(log_path, resumed ? resumed->state.info.log_bytes : -1);
  int64_t step = resumed ? resumed->state.info.step : 0;
  const auto save = [&] {
    TrainStateInfo info{step,
                        batcher.state(),
                        shaping.dump(),
                        data.dump(),
                        StoredWeightsHash(config, params.data(), o.dtype),
                        log.Flush(),
                        threads};
    // The state first: a crash before the checkpoint is replaced leaves a pair whose hashes
    // disagree, which --resume refuses.
    SaveTrainState(state_path, config, info, m.data(), v.data(),
                   o.dtype == model::StoredDType::kF32 ? nullptr : params.data());
    model::SaveCheckpoint(model_path, config, params.data(), o.dtype);
  };
  if (resumed) {
    if (progress != nullptr) progress->Note("resuming " + o.out_dir + " at step " + std::to_string(step));
    if (resumed->state.info.threads != threads && progress != nullptr) {
      progress->Note("note: the run used " + std::to_string(resumed->state.info.threads) +
                     " threads, this one " + std::to_string(threads) +
                     "; losses are bit-identical only for the same count");
    }
  } else {
    save();  // step 0: a run always has a good checkpoint to fall back to
  }

  TrainResult result;
  result.first_step = step + 1;
  result.last_step = step;
  const int64_t end = o.stop_after > 0 ? std::min(o.stop_after, o.steps) : o.steps;
  const int64_t step_tokens = o.batch * o.seq;
  model::Workspace<float> ws;
  PackedBatch batch;
  double step_seconds_total = 0;
  while (step < end) {
    const Clock::time_point step_start = Clock::now();
    const int64_t t = step + 1;
    batcher.Next(o.batch, o.seq, &batch);
    std::fill(grads.begin(), grads.end(), 0.0f);
    const double loss = model.Loss(params.data(), AsTokenBatch(batch), grads.data(), &ws, pool);
    if (o.after_backward) o.after_backward(t, grads.data(), n);
    const double norm = o.clip > 0 ? ClipGradients(grads.data(), n, o.clip, pool, threads)
                                   : GlobalNorm(grads.data(), n, pool, threads);
    const double lr = LearningRate(t, WarmupSteps(o), o.steps, o.lr, o.min_lr);
    const bool finite = std::isfinite(loss) && std::isfinite(norm);
    if (finite) {
      AdamWStep(adamw, static_cast<float>(lr), t, spans, params.data(), grads.data(), m.data(), v.data(),
                pool, threads);
    }
    const double seconds = Seconds(step_start);
    log.Append({{"step", t},
                {"loss", loss},
                {"lr", lr},
                {"grad_norm", norm},
                {"tokens", t * step_tokens},
                {"seconds", seconds},
                {"tokens_per_s", static_cast<double>(step_tokens) / seconds},
                {"peak_rss_bytes", PeakRssBytes()}});
    if (!finite) {
      log.Flush();
      if (progress != nullptr) progress->Finish();
      ThrowInvalid("step " + std::to_string(t) + ": the loss (" + std::to_string(loss) +
                   ") or gradient norm (" + std::to_string(norm) +
                   ") is not finite; stopped without applying the step. The checkpoint " + "in " + o.out_dir +
                   " (step " + std::to_string(step) + " or earlier) is kept; lower --lr or " +
                   "raise --warmup or --clip before resuming");
    }
    step = t;
    step_seconds_total += seconds;
    result.last_step = step;
    result.last_loss = loss;
    result.tokens += step_tokens;
    if (progress != nullptr) {
      const double mean = step_seconds_total / static_cast<double>(step - result.first_step + 1);
      progress->Step({step, o.steps, loss, lr, norm, static_cast<double>(step_tokens) / mean,
                      mean * static_cast<double>(end - step)});
    }
    if (o.eval_every > 0 && (step % o.eval_every == 0 || step == o.steps)) {
      const double val = Evaluate(model, params.data(), validation, &ws, pool, progress);
      log.Append({{"step", step}, {"val_loss", val}, {"val_bits_per_byte", val / std::log(2.0)}});
      result.last_val_loss = val;
      if (progress != nullptr) {
        char line[160];
        std::snprintf(line, sizeof(line), "step %lld: val_loss %.4f, %.4f bits per byte",
                      static_cast<long long>(step), val, val / std::log(2.0));
        progress->Note(line);
      }
    }
    const bool signalled = o.stop_signal != nullptr && o.stop_signal->load() != 0;
    if (signalled) result.reason = StopReason::kSignal;
    if (signalled || step == end || (o.save_every > 0 && step % o.save_every == 0)) save();
    if (signalled) break;
  }
  if (result.reason != StopReason::kSignal && end < o.steps && step == end)
    result.reason = StopReason::kStopAfter;
  if (progress != nullptr) progress->Finish();
  result.seconds = Seconds(start);
  result.peak_rss_bytes = PeakRssBytes();
  return result;
}

}  // namespace swa::train
