// The server's metrics, rendered in the Prometheus text exposition format (version
// 0.0.4) for GET /metrics. Written by hand: a handful of counters, gauges and two
// histograms need no client library.
//
//   swa_http_requests_total{endpoint, status}   counter: answered requests
//   swa_prefill_tokens_total                    counter: prompt tokens run through the model
//   swa_decode_tokens_total                     counter: single-token decode steps
//   swa_generated_tokens_total                  counter: tokens sampled
//   swa_time_to_first_token_seconds             histogram: from enqueue to the first token
//   swa_inter_token_latency_seconds             histogram: between a stream's tokens
//   swa_active_streams, swa_queue_depth         gauges
//   swa_kv_cache_bytes{layer}, swa_kv_cache_bytes_total   gauges: K/V bytes held
//   process_resident_memory_bytes               gauge: from /proc/self/statm
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace swa::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  void Observe(double value);
  // Appends the _bucket, _sum and _count lines of `name`.
  void Render(const std::string& name, std::string* out) const;

 private:
  std::vector<double> bounds_;   // upper bounds, increasing; +Inf is implied
  std::vector<int64_t> counts_;  // [bounds] observations <= each bound (not cumulative)
  int64_t count_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  explicit Metrics(int64_t num_layers);

  void CountRequest(const std::string& endpoint, int status);
  void AddPrefillTokens(int64_t n);
  void AddDecodeTokens(int64_t n);
  void AddGeneratedTokens(int64_t n);
  void ObserveTimeToFirstToken(double seconds);
  void ObserveInterTokenLatency(double seconds);
  void SetStreams(int64_t active, int64_t queued);
  void SetCacheBytes(const std::vector<int64_t>& per_layer);  // [num_layers]

  std::string Render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  int64_t prefill_tokens_ = 0, decode_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, itl_;
  int64_t active_ = 0, queued_ = 0;
  std::vector<int64_t> cache_bytes_;  // [num_layers]
};

// This process's resident memory in bytes (0 where /proc is not readable).
int64_t ResidentMemoryBytes();

}  // namespace swa::serve
