// `swa serve --ckpt FILE`: an OpenAI-compatible completions server over HTTP
// (serve/server.h) for one checkpoint, its streams run by one scheduler thread
// (serve/scheduler.h). SIGTERM or SIGINT stop it cleanly: new requests are refused, open
// streams end with their last event and [DONE], and the process exits 0.
#include <cblas.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <string>
#include <thread>

#include "cli/checkpoint_option.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/parallel.h"
#include "generate/decoder.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "serve/server.h"

namespace swa::cli {
namespace {

int g_stop_pipe[2] = {-1, -1};  // [read, write]: the signal handler writes the signal number

void OnStopSignal(int signal_number) {
  const char byte = static_cast<char>(signal_number);
  const int saved = errno;
  [[maybe_unused]] const ssize_t written = write(g_stop_pipe[1], &byte, 1);  // nothing else is safe here
  errno = saved;
}

void CheckFlags(const ServeCommandOptions& o) {
  if (o.ckpt.empty()) ThrowInvalid("--ckpt is required (a model checkpoint, e.g. RUN/model.safetensors)");
  if (o.port < 0 || o.port > 65535)
    ThrowInvalid("--port must be in [0, 65535] (0: any free port), got " + std::to_string(o.port));
  if (o.max_streams < 1) ThrowInvalid("--max-streams must be >= 1, got " + std::to_string(o.max_streams));
  if (o.max_queue < 0) ThrowInvalid("--max-queue must be >= 0, got " + std::to_string(o.max_queue));
  if (o.prefill_chunk < 1 || o.prefill_chunk > generate::kMaxChunk) {
    ThrowInvalid("--prefill-chunk must be in [1, " + std::to_string(generate::kMaxChunk) + "], got " +
                 std::to_string(o.prefill_chunk));
  }
  if (o.max_prompt_bytes < 0) {
    ThrowInvalid("--max-prompt-bytes must be >= 0, got " + std::to_string(o.max_prompt_bytes));
  }
  if (o.threads < 0) ThrowInvalid("--threads must be >= 0 (0 = all cores), got " + std::to_string(o.threads));
}

}  // namespace

CLI::App* AddServeCommand(CLI::App* app, ServeCommandOptions* opt) {
  CLI::App* cmd =
      app->add_subcommand("serve", "Serve a checkpoint over HTTP (OpenAI-compatible completions)");
  cmd->add_option("--ckpt", opt->ckpt, "Model checkpoint (e.g. RUN/model.safetensors)");
  cmd->add_option("--host", opt->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", opt->port, "Port to listen on (0: any free port)")->capture_default_str();
  cmd->add_option("--max-streams", opt->max_streams, "Requests generated at once")->capture_default_str();
  cmd->add_option("--max-queue", opt->max_queue, "Requests waiting beyond those (more: 429)")
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", opt->prefill_chunk, "Prompt tokens per stream per scheduler step")
      ->capture_default_str();
  cmd->add_option("--max-prompt-bytes", opt->max_prompt_bytes, "Longest prompt accepted (longer: 400)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", opt->threads, "Threads of the model (0 = all cores)")
      ->capture_default_str();
  return cmd;
}

int RunServe(const ServeCommandOptions& opt) {
  try {
    CheckFlags(opt);
    // SIGTERM and SIGINT wake a watcher thread through a pipe (a handler may run on any
    // thread, OpenBLAS's included, and may only write). A write to a client that went
    // away must fail, not kill the process.
    if (pipe(g_stop_pipe) != 0) ThrowInvalid("cannot create the signal pipe");
    struct sigaction action = {};
    action.sa_handler = OnStopSignal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);
    signal(SIGPIPE, SIG_IGN);

    model::Checkpoint ckpt = LoadCheckpointOption(opt.ckpt);
    const int threads = ThreadPool::ResolveThreads(opt.threads);
    openblas_set_num_threads(threads);
    serve::Metrics metrics(ckpt.config.num_hidden_layers);
    serve::SchedulerOptions s;
    s.max_streams = opt.max_streams;
    s.max_queue = opt.max_queue;
    s.prefill_chunk = opt.prefill_chunk;
    s.threads = threads;
    serve::Scheduler scheduler(std::move(ckpt.config), std::move(ckpt.params), s, &metrics);
    serve::ServerOptions o;
    o.host = opt.host;
    o.port = opt.port;
    o.limits.max_prompt_bytes = opt.max_prompt_bytes;
    o.http_threads = static_cast<int>(opt.max_streams + opt.max_queue + 4);
    serve::Server server(&scheduler, &metrics, o);
    const int port = server.Bind();
    std::fprintf(stderr, "swa serve: listening on http://%s:%d\n", opt.host.c_str(), port);
    std::fflush(stderr);

    std::thread stopper([&] {
      char signal_number = 0;
      while (read(g_stop_pipe[0], &signal_number, 1) < 0 && errno == EINTR) {
      }
      if (signal_number != 0) std::fprintf(stderr, "swa serve: signal %d, stopping\n", signal_number);
      server.Stop();
    });
    const bool ok = server.Listen();
    // Listen returns after Stop, or on a failure: then wake the watcher to join it.
    const char none = 0;
    if (write(g_stop_pipe[1], &none, 1) < 0) std::perror("swa serve: signal pipe");
    stopper.join();
    if (!ok) ThrowInvalid("the HTTP server failed on " + opt.host + ":" + std::to_string(port));
    scheduler.Shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swa serve: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace swa::cli
