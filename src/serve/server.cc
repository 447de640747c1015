// cpp-httplib (Debian's libcpp-httplib-dev) serves the HTTP side, as in llama.cpp's
// server: one thread per connection, which suits long streamed answers, and chunked
// content providers that write each Server-Sent Event as soon as the scheduler produces
// its text, and report a write to a client that went away, so that its stream is freed.
#include "serve/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "serve/page.h"
#include "serve/stream.h"

namespace swa::serve {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

std::string Dump(const json& j) {
  // The text is valid UTF-8 by construction (generate/utf8_stream.h); replace anyway
  // rather than throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void SendError(httplib::Response& res, int status, const std::string& message, const char* type) {
  res.status = status;
  const json body = {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", status}}}};
  res.set_content(Dump(body), "application/json");
}

const char* EndpointOf(const std::string& path) {
  for (const char* known : {"/", "/health", "/metrics", "/v1/completions"}) {
    if (path == known) return known;
  }
  return "other";
}

}  // namespace

struct Server::Impl {
  Scheduler* scheduler;
  Metrics* metrics;
  ServerOptions options;
  httplib::Server http;
  std::atomic<bool> stopping{false};
  std::atomic<int64_t> open_streams{0};  // streamed responses not yet released
  std::atomic<int64_t> next_id{0};

  json Chunk(const std::string& id, int64_t created, const std::string& text, const char* finish) const {
    json choice = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    if (finish != nullptr) choice["finish_reason"] = finish;
    return {{"id", id},
            {"object", "text_completion"},
            {"created", created},
            {"model", options.model_name},
            {"choices", json::array({choice})}};
  }

  static json Usage(const Stream& s) {
    return {{"prompt_tokens", s.prompt_tokens()},
            {"completion_tokens", s.completion_tokens()},
            {"total_tokens", s.prompt_tokens() + s.completion_tokens()}};
  }

  void Completions(const httplib::Request& req, httplib::Response& res) {
    if (stopping) return SendError(res, 503, "the server is shutting down", "unavailable_error");
    CompletionRequest request;
    try {
      request = ParseCompletionRequest(req.body, options.limits);
    } catch (const Error& e) {
      return SendError(res, 400, e.what(), "invalid_request_error");
    }
    const bool streamed = request.stream;
    auto stream = std::make_shared<Stream>(std::move(request));
    switch (scheduler->Submit(stream)) {
      case SubmitResult::kQueueFull:
        return SendError(res, 429, "too many requests: every stream and queue slot is taken",
                         "rate_limit_error");
      case SubmitResult::kShuttingDown:
        return SendError(res, 503, "the server is shutting down", "unavailable_error");
      case SubmitResult::kQueued:
        break;
    }
    const std::string id = "cmpl-" + std::to_string(next_id++);
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    if (streamed) return StreamAnswer(stream, id, created, res);

    std::string text;
    while (!stream->Wait(milliseconds(200), &text)) {
    }
    if (stream->reason() == FinishReason::kError) {
      return SendError(res, 500, "generation failed: " + stream->error(), "server_error");
    }
    json body = Chunk(id, created, text, FinishReasonName(stream->reason()));
    body["usage"] = Usage(*stream);
    res.set_content(Dump(body), "application/json");
  }

  // Server-Sent Events: each event is `data: JSON\n\n`; the last is `data: [DONE]\n\n`.
  void StreamAnswer(std::shared_ptr<Stream> stream, const std::string& id, int64_t created,
                    httplib::Response& res) {
    ++open_streams;
    auto finished = std::make_shared<bool>(false);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, stream, id, created, finished](size_t, httplib::DataSink& sink) {
          std::string text;
          const bool done = stream->Wait(milliseconds(100), &text);
          std::string events;
          if (!text.empty()) events += "data: " + Dump(Chunk(id, created, text, nullptr)) + "\n\n";
          if (done) {
            json last = Chunk(id, created, "", FinishReasonName(stream->reason()));
            last["usage"] = Usage(*stream);
            if (stream->reason() == FinishReason::kError) last["error"] = {{"message", stream->error()}};
            events += "data: " + Dump(last) + "\n\ndata: [DONE]\n\n";
          }
          if (!events.empty() && !sink.write(events.data(), events.size())) return false;
          if (done) {
            *finished = true;
            sink.done();
          }
          return true;
        },
        // Runs when the response is over, written or not: a client that went away
        // cancels its stream, and the scheduler frees the sequence at its next step.
        [this, stream, finished](bool) {
          if (!*finished) stream->Cancel();
          --open_streams;
        });
  }

  void Install() {
    http.Post("/v1/completions",
              [this](const httplib::Request& req, httplib::Response& res) { Completions(req, res); });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      if (stopping) return SendError(res, 503, "the server is shutting down", "unavailable_error");
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics->Render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      const std::string_view page = IndexPage();
      res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string message = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        message += std::string(": ") + e.what();
      } catch (...) {
      }
      SendError(res, 500, message, "server_error");
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics->CountRequest(EndpointOf(req.path), res.status);
    });
    // A prompt at the limit fits even if every byte is escaped as \u00XX.
    http.set_payload_max_length(static_cast<size_t>(options.limits.max_prompt_bytes) * 6 + (1 << 16));
    const int threads = options.http_threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  }
};

Server::Server(Scheduler* scheduler, Metrics* metrics, ServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (options.http_threads < 1) ThrowInvalid("http threads must be >= 1");
  impl_->scheduler = scheduler;
  impl_->metrics = metrics;
  impl_->options = std::move(options);
  impl_->Install();
}

Server::~Server() = default;

int Server::Bind() {
  const ServerOptions& o = impl_->options;
  if (o.port < 0 || o.port > 65535) ThrowInvalid("port must be in [0, 65535], got " + std::to_string(o.port));
  if (o.port == 0) {
    const int port = impl_->http.bind_to_any_port(o.host);
    if (port <= 0) ThrowInvalid("cannot listen on " + o.host + " (any port)");
    return port;
  }
  if (!impl_->http.bind_to_port(o.host, o.port)) {
    ThrowInvalid("cannot listen on " + o.host + ":" + std::to_string(o.port) + " (in use, or a bad host)");
  }
  return o.port;
}

bool Server::Listen() { return impl_->http.listen_after_bind(); }

void Server::Stop() {
  if (impl_->stopping.exchange(true)) return;
  impl_->scheduler->Shutdown();
  // Every stream is finished now; give the responses a moment to write their last events
  // (httplib stops writing chunked content once the listening socket is closed).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (impl_->open_streams > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  impl_->http.stop();
}

}  // namespace swa::serve
