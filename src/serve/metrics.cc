#include "serve/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <numeric>

namespace swa::serve {
namespace {

std::string Number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void Header(const char* name, const char* type, const char* help, std::string* out) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void Sample(const std::string& name, int64_t value, std::string* out) {
  *out += name + " " + std::to_string(value) + "\n";
}

}  // namespace

void Histogram::Observe(double value) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {
      ++counts_[i];
      break;
    }
  }
  ++count_;
  sum_ += value;
}

void Histogram::Render(const std::string& name, std::string* out) const {
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    *out += name + "_bucket{le=\"" + Number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  *out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  *out += name + "_sum " + Number(sum_) + "\n";
  *out += name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics(int64_t num_layers)
    : ttft_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      itl_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      cache_bytes_(num_layers, 0) {}

void Metrics::CountRequest(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::AddPrefillTokens(int64_t n) {
  std::lock_guard lock(mutex_);
  prefill_tokens_ += n;
}

void Metrics::AddDecodeTokens(int64_t n) {
  std::lock_guard lock(mutex_);
  decode_tokens_ += n;
}

void Metrics::AddGeneratedTokens(int64_t n) {
  std::lock_guard lock(mutex_);
  generated_tokens_ += n;
}

void Metrics::ObserveTimeToFirstToken(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.Observe(seconds);
}

void Metrics::ObserveInterTokenLatency(double seconds) {
  std::lock_guard lock(mutex_);
  itl_.Observe(seconds);
}

void Metrics::SetStreams(int64_t active, int64_t queued) {
  std::lock_guard lock(mutex_);
  active_ = active;
  queued_ = queued;
}

void Metrics::SetCacheBytes(const std::vector<int64_t>& per_layer) {
  std::lock_guard lock(mutex_);
  cache_bytes_ = per_layer;
}

std::string Metrics::Render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  Header("swa_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.", &out);
  for (const auto& [key, count] : requests_) {
    out += "swa_http_requests_total{endpoint=\"" + key.first + "\",status=\"" + std::to_string(key.second) +
           "\"} " + std::to_string(count) + "\n";
  }
  Header("swa_prefill_tokens_total", "counter", "Prompt tokens (BOS included) run through the model.", &out);
  Sample("swa_prefill_tokens_total", prefill_tokens_, &out);
  Header("swa_decode_tokens_total", "counter", "Single-token decode steps run through the model.", &out);
  Sample("swa_decode_tokens_total", decode_tokens_, &out);
  Header("swa_generated_tokens_total", "counter", "Tokens sampled (EOS included).", &out);
  Sample("swa_generated_tokens_total", generated_tokens_, &out);
  Header("swa_time_to_first_token_seconds", "histogram",
         "Time from a request's arrival in the queue to its first sampled token.", &out);
  ttft_.Render("swa_time_to_first_token_seconds", &out);
  Header("swa_inter_token_latency_seconds", "histogram", "Time between two tokens of one stream.", &out);
  itl_.Render("swa_inter_token_latency_seconds", &out);
  Header("swa_active_streams", "gauge", "Streams being prefilled or decoded.", &out);
  Sample("swa_active_streams", active_, &out);
  Header("swa_queue_depth", "gauge", "Requests waiting for a stream slot.", &out);
  Sample("swa_queue_depth", queued_, &out);
  Header("swa_kv_cache_bytes", "gauge", "K/V bytes held by the active streams' caches, per layer.", &out);
  for (size_t i = 0; i < cache_bytes_.size(); ++i) {
    out +=
        "swa_kv_cache_bytes{layer=\"" + std::to_string(i) + "\"} " + std::to_string(cache_bytes_[i]) + "\n";
  }
  Header("swa_kv_cache_bytes_total", "gauge", "K/V bytes held by the active streams' caches, all layers.",
         &out);
  Sample("swa_kv_cache_bytes_total", std::accumulate(cache_bytes_.begin(), cache_bytes_.end(), int64_t{0}),
         &out);
  Header("process_resident_memory_bytes", "gauge", "Resident memory of the server process.", &out);
  Sample("process_resident_memory_bytes", ResidentMemoryBytes(), &out);
  return out;
}

int64_t ResidentMemoryBytes() {
  // statm: total program size, then resident pages.
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace swa::serve
