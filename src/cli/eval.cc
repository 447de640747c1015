// `swa eval --ckpt FILE --data PATH... [--contexts 256,1024,8192,65536] [--json]`: bits per
// byte of a checkpoint on text files at each evaluation length (generate/evaluate.h), and
// the long-range recall probe at distances inside and beyond its local windows. The
// table (or, with --json, one JSON document) goes to stdout, progress to stderr.
#include <cblas.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/checkpoint_option.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/parallel.h"
#include "generate/evaluate.h"
#include "train/corpus.h"
#include "train/split.h"

namespace swa::cli {
namespace {

using nlohmann::json;

std::vector<int64_t> ParseLengths(const std::string& text, const std::string& option, int64_t least) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    int64_t c = -1;
    try {
      c = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || c < least) {
      ThrowInvalid(option + ": '" + item + "' is not a length >= " + std::to_string(least) +
                   " (a comma-separated list, e.g. 256,1024)");
    }
    out.push_back(c);
  }
  if (out.empty()) ThrowInvalid(option + ": no length given");
  return out;
}

// The documents to score: every file, or one side of the training split; cut to at most
// max_bytes in all (0 = no bound).
std::vector<std::span<const uint8_t>> Documents(const train::Corpus& corpus, const EvalCommandOptions& o) {
  std::vector<std::span<const uint8_t>> docs;
  if (o.split == "all") {
    for (const train::Document& d : corpus.documents())
      docs.emplace_back(d.data, static_cast<size_t>(d.size));
  } else {
    const train::Split split = train::MakeSplit(corpus, o.val_fraction);
    for (const train::DocumentSpan& s : o.split == "val" ? split.validation : split.train) {
      docs.emplace_back(s.data, static_cast<size_t>(s.size));
    }
  }
  if (o.max_bytes > 0) {
    int64_t left = o.max_bytes;
    std::vector<std::span<const uint8_t>> cut;
    for (const auto& d : docs) {
      if (left <= 0) break;
      cut.push_back(d.first(static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(d.size())))));
      left -= static_cast<int64_t>(cut.back().size());
    }
    docs = std::move(cut);
  }
  return docs;
}

}  // namespace

CLI::App* AddEvalCommand(CLI::App* app, EvalCommandOptions* opt) {
  CLI::App* cmd =
      app->add_subcommand("eval", "Bits per byte of a checkpoint on text, at several context lengths");
  cmd->add_option("--ckpt", opt->ckpt, "Model checkpoint (e.g. RUN/model.safetensors)")->required();
  cmd->add_option("--data", opt->data, "Text files or directories; each file is one document")->required();
  cmd->add_option("--ext", opt->ext, "Only files with these extensions (default: all)");
  cmd->add_option("--split", opt->split,
                  "Score all files, or the validation or training side of swa train's split")
      ->check(CLI::IsMember({"all", "val", "train"}))
      ->capture_default_str();
  cmd->add_option("--val-fraction", opt->val_fraction, "The split's validation share (as in swa train)")
      ->capture_default_str();
  cmd->add_option("--contexts", opt->contexts, "Evaluation lengths, comma-separated")->capture_default_str();
  cmd->add_option("--max-bytes", opt->max_bytes, "Score at most this many bytes (0 = all)")
      ->capture_default_str();
  cmd->add_option("--recall-trials", opt->recall_trials, "Recall probe strings per distance (0 = no probe)")
      ->capture_default_str();
  cmd->add_option(
      "--recall-distances", opt->recall_distances,
      "Recall probe distances in bytes, comma-separated (default: a quarter of and 4x the widest local "
      "window, or 64 and 1024 without one)");
  cmd->add_option("--chunk", opt->chunk, "Tokens per piece through the caches")->capture_default_str();
  cmd->add_option("-t,--threads", opt->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--json", opt->json, "Print one JSON document instead of the table");
  return cmd;
}

int RunEval(const EvalCommandOptions& opt) {
  try {
    const std::vector<int64_t> contexts = ParseLengths(opt.contexts, "--contexts", 1);
    const std::vector<int64_t> distances = opt.recall_distances.empty()
                                               ? std::vector<int64_t>{}
                                               : ParseLengths(opt.recall_distances, "--recall-distances", 0);
    if (opt.max_bytes < 0) ThrowInvalid("--max-bytes must be >= 0 (0 = all)");
    if (opt.recall_trials < 0) ThrowInvalid("--recall-trials must be >= 0");
    if (opt.threads < 0) ThrowInvalid("--threads must be >= 0 (0 = all cores)");
    const model::Checkpoint ckpt = LoadCheckpointOption(opt.ckpt);
    const train::Corpus corpus = train::Corpus::Open(opt.data, opt.ext);
    const std::vector<std::span<const uint8_t>> docs = Documents(corpus, opt);
    const int threads = ThreadPool::ResolveThreads(opt.threads);
    openblas_set_num_threads(threads);
    const bool tty = isatty(STDERR_FILENO) != 0;
    const auto start = std::chrono::steady_clock::now();
    auto last = start;
    auto progress = [&](int64_t context, int64_t done, int64_t total) {
      const auto now = std::chrono::steady_clock::now();
      if (done < total && std::chrono::duration<double>(now - last).count() < (tty ? 0.2 : 5.0)) return;
      last = now;
      const double elapsed = std::chrono::duration<double>(now - start).count();
      std::fprintf(stderr, "%scontext %lld: %lld of %lld bytes (%.0f%%), %.0f s%s", tty ? "\r" : "",
                   static_cast<long long>(context), static_cast<long long>(done),
                   static_cast<long long>(total),
                   total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0,
                   elapsed, tty && done < total ? "" : "\n");
    };
    const std::vector<generate::ContextScore> scores =
        generate::ScoreDocuments(ckpt.config, ckpt.params, docs, contexts, opt.chunk, threads, progress);
    std::vector<generate::RecallScore> recall;
    if (opt.recall_trials > 0) {
      const int64_t widest = generate::WidestLocalWindow(ckpt.config);
      const int64_t reach = widest > 0 ? widest : 256;
      std::vector<uint8_t> filler;
      for (const auto& d : docs)
        filler.insert(filler.end(), d.begin(), d.begin() + std::min<size_t>(d.size(), 1 << 16));
      const std::vector<int64_t> chosen =
          distances.empty() ? std::vector<int64_t>{std::max<int64_t>(4, reach / 4), 4 * reach} : distances;
      recall =
          generate::RecallProbe(ckpt.config, ckpt.params, chosen, opt.recall_trials, 16, filler, threads);
    }
    const int64_t bytes = scores.empty() ? 0 : scores.front().bytes;
    if (opt.json) {
      json doc = {
          {"checkpoint", opt.ckpt}, {"bytes", bytes}, {"documents", static_cast<int64_t>(docs.size())}};
      doc["bits_per_byte"] = json::object();
      doc["contexts"] = json::array();
      for (const auto& s : scores) {
        doc["bits_per_byte"][std::to_string(s.context)] = s.bits_per_byte();
        doc["contexts"].push_back({{"context", s.context},
                                   {"bits_per_byte", s.bits_per_byte()},
                                   {"bytes", s.bytes},
                                   {"seconds", s.seconds}});
      }
      doc["recall"] = json::array();
      for (const auto& r : recall) {
        doc["recall"].push_back(
            {{"distance", r.distance}, {"accuracy", r.accuracy()}, {"predicted", r.predicted}});
      }
      std::printf("%s\n", doc.dump(2).c_str());
      return 0;
    }
    std::printf("%lld bytes in %zu documents\n| context | bits per byte | tokens/s |\n|---|---|---|\n",
                static_cast<long long>(bytes), docs.size());
    for (const auto& s : scores) {
      std::printf("| %lld | %.4f | %.0f |\n", static_cast<long long>(s.context), s.bits_per_byte(),
                  static_cast<double>(s.bytes) / s.seconds);
    }
    for (const auto& r : recall) {
      std::printf("recall at distance %lld: %.3f (%lld predictions)\n", static_cast<long long>(r.distance),
                  r.accuracy(), static_cast<long long>(r.predicted));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swa eval: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace swa::cli
