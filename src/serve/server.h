// The HTTP side of `swa serve`: parses and checks requests, hands them to the scheduler
// and turns each stream's channel into a response. It never touches the model.
//
//   POST /v1/completions  OpenAI-compatible completions (serve/completion_request.h), a
//                         JSON answer, or with "stream": true Server-Sent Events: one
//                         `data: {chunk}` event per piece of text, a last chunk with the
//                         finish reason, then `data: [DONE]`
//   GET /health           {"status": "ok"} (503 once shutting down)
//   GET /metrics          Prometheus text format (serve/metrics.h)
//   GET /                 a page to try it (serve/page.h)
//
// Errors are JSON, {"error": {"message", "type", "param", "code"}}: 400 for a bad body,
// 429 when the queue is full, 503 while shutting down, 500 if the model fails.
#pragma once

#include <memory>
#include <string>

#include "serve/completion_request.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"

namespace swa::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  RequestLimits limits;
  std::string model_name = "swa";  // the "model" field of the answers
  int http_threads = 16;           // connections served at once (one thread each)
};

class Server {
 public:
  // `scheduler` and `metrics` must outlive the server.
  Server(Scheduler* scheduler, Metrics* metrics, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws swa::Error when it cannot.
  int Bind();
  // Serves until Stop(); returns false if the server failed.
  bool Listen();
  // Thread-safe: refuses new requests (503), ends every stream (finish reason "abort",
  // then [DONE]), waits a little for their last events to be written, then stops
  // listening so that Listen() returns.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace swa::serve
