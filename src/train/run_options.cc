#include "train/run_options.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "common/error.h"

namespace swa::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void Require(bool ok, const std::string& message) {
  if (!ok) ThrowInvalid(message);
}

std::string Number(double x) {
  char text[64];
  std::snprintf(text, sizeof(text), "%g", x);
  return text;
}

json ParseRecord(const std::string& text, const std::string& what, const std::string& state_path) {
  try {
    json record = json::parse(text);
    if (record.is_object()) return record;
  } catch (const json::exception&) {
  }
  ThrowInvalid(state_path + ": the \"" + what + "\" field is not a JSON object");
}

uint64_t Fnv1a(const std::string& bytes, uint64_t hash) {
  for (const unsigned char c : bytes) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}

}  // namespace

void CheckOptions(const TrainOptions& o) {
  Require(!o.out_dir.empty(), "--out: an output directory is required");
  Require(o.seq >= 1, "--seq must be >= 1, got " + std::to_string(o.seq));
  Require(o.batch >= 1, "--batch must be >= 1, got " + std::to_string(o.batch));
  Require(o.batch <= std::numeric_limits<int32_t>::max() / o.seq,
          "--batch * --seq must stay below 2^31 tokens, got " + std::to_string(o.batch) + " * " +
              std::to_string(o.seq));
  Require(o.steps >= 1, "--steps must be >= 1, got " + std::to_string(o.steps));
  Require(o.stop_after >= 0, "--stop-after must be >= 0, got " + std::to_string(o.stop_after));
  Require(std::isfinite(o.lr) && o.lr > 0, "--lr must be a finite number > 0, got " + Number(o.lr));
  Require(std::isfinite(o.min_lr) && o.min_lr >= 0 && o.min_lr <= o.lr,
          "--min-lr must be in [0, --lr], got " + Number(o.min_lr));
  Require(o.warmup >= -1 && o.warmup <= o.steps,
          "--warmup must be in [0, --steps] (or -1: automatic), got " + std::to_string(o.warmup));
  Require(std::isfinite(o.weight_decay) && o.weight_decay >= 0 && o.lr * o.weight_decay < 1,
          "--weight-decay must be >= 0 with --lr * --weight-decay < 1, got " + Number(o.weight_decay));
  Require(std::isfinite(o.clip) && o.clip >= 0,
          "--clip must be >= 0 (0 = no clipping), got " + Number(o.clip));
  Require(o.val_fraction >= 0 && o.val_fraction < 1,
          "--val-fraction must be in [0, 1), got " + Number(o.val_fraction));
  Require(o.threads >= 0, "--threads must be >= 0 (0 = all cores), got " + std::to_string(o.threads));
  Require(o.eval_every >= 0, "--eval-every must be >= 0 (0 = never), got " + std::to_string(o.eval_every));
  Require(o.eval_batches >= 0,
          "--eval-batches must be >= 0 (0 = all), got " + std::to_string(o.eval_batches));
  Require(o.save_every >= 0,
          "--save-every must be >= 0 (0 = at the end), got " + std::to_string(o.save_every));
  Require(o.dtype == model::StoredDType::kF32 || o.dtype == model::StoredDType::kBF16,
          std::string("--dtype must be f32 or bf16, got ") + model::StoredDTypeName(o.dtype));
}

json ShapingOptions(const TrainOptions& o) {
  // Through text and back, so that it compares equal to what a state file gives back.
  return json::parse(json{
      {"seq", o.seq},
      {"batch", o.batch},
      {"steps", o.steps},
      {"lr", o.lr},
      {"min_lr", o.min_lr},
      {"warmup", WarmupSteps(o)},
      {"weight_decay", o.weight_decay},
      {"clip", o.clip},
      {"val_fraction", o.val_fraction},
      {"seed", o.seed},
      {"beta1", kBeta1},
      {"beta2", kBeta2},
      {"eps", kEps}}.dump());
}

void CheckSameOptions(const std::string& saved_text, const json& now, const std::string& state_path) {
  const json saved = ParseRecord(saved_text, "options", state_path);
  std::string differences;
  for (const auto& [key, value] : now.items()) {
    const auto it = saved.find(key);
    if (it == saved.end() || *it != value) {
      std::string flag = "--" + key;
      for (char& c : flag) c = c == '_' ? '-' : c;
      differences += "\n  " + flag + " is " + value.dump() + " here, " +
                     (it == saved.end() ? std::string("absent") : it->dump()) + " in the run";
    }
  }
  if (saved.size() != now.size() && differences.empty()) differences = "\n  the run records other options";
  if (!differences.empty()) {
    ThrowInvalid("--resume: these options differ from those the run in " + state_path +
                 " was started with, and the losses depend on them:" + differences);
  }
}

void RefuseExistingRun(const std::string& model_path, const std::string& state_path) {
  for (const std::string& path : {state_path, model_path}) {
    if (fs::exists(path)) {
      ThrowInvalid(path + " already exists: pass --resume to continue that run, or choose another --out");
    }
  }
}

std::vector<std::string> DataPaths(const TrainOptions& o, const TrainStateInfo* resumed) {
  if (!o.data.empty() || resumed == nullptr) {
    Require(!o.data.empty(), "no training data: pass --data with text files or directories");
    return o.data;
  }
  const json data = ParseRecord(resumed->data_json, "data", "the training state");
  std::vector<std::string> paths;
  const auto it = data.find("paths");
  if (it != data.end() && it->is_array()) {
    for (const json& p : *it)
      if (p.is_string()) paths.push_back(p.get<std::string>());
  }
  Require(!paths.empty(), "--resume: the training state records no data paths; pass --data");
  return paths;
}

std::vector<std::string> DataExtensions(const TrainOptions& o, const TrainStateInfo* resumed) {
  if (!o.extensions.empty() || resumed == nullptr) return o.extensions;
  const json data = ParseRecord(resumed->data_json, "data", "the training state");
  std::vector<std::string> extensions;
  const auto it = data.find("extensions");
  if (it != data.end() && it->is_array()) {
    for (const json& e : *it)
      if (e.is_string()) extensions.push_back(e.get<std::string>());
  }
  return extensions;
}

json DataRecord(const std::vector<std::string>& paths, const std::vector<std::string>& extensions,
                const Corpus& corpus) {
  json absolute = json::array();
  for (const std::string& p : paths) absolute.push_back(fs::absolute(p).lexically_normal().string());
  uint64_t hash = 0xcbf29ce484222325ull;
  for (const Document& d : corpus.documents()) {
    hash = Fnv1a(d.relative_path + '\0' + std::to_string(d.size) + '\n', hash);
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return json::parse(json{
      {"paths", absolute},
      {"extensions", extensions},
      {"documents", static_cast<int64_t>(corpus.documents().size())},
      {"bytes", corpus.total_bytes()},
      {"fingerprint",
       hex}}.dump());
}

void CheckSameData(const std::string& saved_text, const json& now, const std::string& state_path) {
  const json saved = ParseRecord(saved_text, "data", state_path);
  for (const char* key : {"documents", "bytes", "fingerprint"}) {
    const auto it = saved.find(key);
    if (it == saved.end() || *it != now.at(key)) {
      ThrowInvalid("--resume: the data differs from the run's in " + state_path + " (" + key + ": " +
                   now.at(key).dump() + " here, " + (it == saved.end() ? "absent" : it->dump()) +
                   " in the run): the same files must be given");
    }
  }
}

}  // namespace swa::train
