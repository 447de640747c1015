// The `swa` command.
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "swa/swa.h"

int main(int argc, char** argv) {
  CLI::App app{"swa: sliding-window attention engine"};
  app.set_version_flag("--version", std::string(swa_version()));
  app.require_subcommand(1);

  swa::cli::CheckOptions check;
  auto* check_cmd =
      app.add_subcommand("check", "Run the fast path against the oracle and print a pass table");
  check_cmd->add_option("-t,--threads", check.threads, "Threads (0 = all cores)");
  check_cmd->add_option("--random", check.random, "Also run this many random cases, forward and backward")
      ->check(CLI::Range(0, 10000000));
  check_cmd->add_option("--max-len", check.max_len, "Longest sequence of a random case (default 300)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  check_cmd->add_option("--seed", check.seed, "Seed of the random cases (default 1)");

  swa::cli::BenchOptions bench;
  auto* bench_cmd = app.add_subcommand("bench", "Time the kernels against this machine's own peak");
  bench_cmd->add_option("-t,--threads", bench.threads, "Threads (0 = all cores)");
  bench_cmd->add_option("--json", bench.json_path, "Also write the results as JSON to this file");
  bench_cmd->add_flag("--quick", bench.quick, "Small shapes only (a smoke test)");
  bench_cmd->add_option("--ckpt", bench.ckpt,
                        "generate suite: a checkpoint (default: preset uniform, random weights)");
  bench_cmd->add_option("--decode-contexts", bench.decode_contexts,
                        "generate suite: decode contexts, comma-separated (default 1024,65536,1048576)");
  bench_cmd->add_option("--prefill-lengths", bench.prefill_lengths,
                        "generate suite: prefill lengths, comma-separated, 0 = none (default 4096,65536)");
  bench_cmd->add_option("suite", bench.suite, "forward, backward, decode, train, generate or all (default)")
      ->check(CLI::IsMember({"forward", "backward", "decode", "train", "generate", "all"}));

  swa::cli::TrainCommandOptions train;
  CLI::App* train_cmd = swa::cli::AddTrainCommand(&app, &train);
  swa::cli::EvalCommandOptions eval;
  CLI::App* eval_cmd = swa::cli::AddEvalCommand(&app, &eval);
  swa::cli::PresetCommandOptions preset;
  CLI::App* preset_cmd = swa::cli::AddPresetCommand(&app, &preset);

  swa::cli::GenerateCommandOptions generate;
  CLI::App* generate_cmd = swa::cli::AddGenerateCommand(&app, &generate);

  swa::cli::ServeCommandOptions serve;
  CLI::App* serve_cmd = swa::cli::AddServeCommand(&app, &serve);

  CLI11_PARSE(app, argc, argv);
  if (check_cmd->parsed()) return swa::cli::RunCheck(check);
  if (bench_cmd->parsed()) return swa::cli::RunBench(bench);
  if (train_cmd->parsed()) return swa::cli::RunTrain(train);
  if (preset_cmd->parsed()) return swa::cli::RunPreset(preset);
  if (eval_cmd->parsed()) return swa::cli::RunEval(eval);
  if (generate_cmd->parsed()) return swa::cli::RunGenerate(generate);
  if (serve_cmd->parsed()) return swa::cli::RunServe(serve);
  return 1;
}
