// Shared by the training-loop tests: a small generated corpus, the options of a tiny run,
// and readers for what a run leaves on disk.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "model/presets.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace swa::train {

// `files` documents of a few hundred bytes of word salad over a small vocabulary (so that
// a model can learn something in a few steps), under root/corpus.
inline std::string WriteCorpus(const TempTree& tree, int files = 24) {
  static const char* const kWords[] = {"the ",  "window ",  "slides ",  "over ",  "keys ",
                                       "and ",  "queries ", "attend ",  "to ",    "a ",
                                       "band ", "of ",      "tokens. ", "sinks ", "stay. "};
  std::mt19937_64 rng(12345);
  for (int f = 0; f < files; ++f) {
    std::string text;
    const int words = 40 + static_cast<int>(rng() % 40);
    for (int w = 0; w < words; ++w) text += kWords[rng() % std::size(kWords)];
    tree.Write("corpus/doc_" + std::to_string(f) + ".txt", text + "\n");
  }
  return tree.Path("corpus");
}

// A run of the tiny mixed_gated preset (gates, three window widths) that takes a fraction
// of a second per step.
inline TrainOptions TinyRun(const std::string& data, const std::string& out) {
  TrainOptions o;
  o.config = model::Preset("mixed_gated", model::PresetSize::Tiny());
  o.data = {data};
  o.out_dir = out;
  o.seq = 32;
  o.batch = 2;
  o.steps = 8;
  o.warmup = 2;
  o.threads = 2;
  o.eval_every = 4;
  o.eval_batches = 2;
  o.val_fraction = 0.1;
  return o;
}

// The records of train.jsonl, one JSON object each.
inline std::vector<nlohmann::json> ReadLog(const std::string& out_dir) {
  std::istringstream lines(ReadWhole(out_dir + "/" + kLogFile));
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(lines, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

// The records of one kind ("loss" or "val_loss") as (step, bits of the value).
inline std::vector<std::pair<int64_t, uint64_t>> LossBits(const std::vector<nlohmann::json>& log,
                                                          const std::string& key) {
  std::vector<std::pair<int64_t, uint64_t>> out;
  for (const nlohmann::json& r : log) {
    if (r.contains(key))
      out.emplace_back(r.at("step").get<int64_t>(), std::bit_cast<uint64_t>(r.at(key).get<double>()));
  }
  return out;
}

// Every file of a directory (not recursive) and its bytes.
inline std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    files[entry.path().filename().string()] = ReadWhole(entry.path().string());
  }
  return files;
}

}  // namespace swa::train
