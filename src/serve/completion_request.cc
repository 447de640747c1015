#include "serve/completion_request.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace swa::serve {
namespace {

using nlohmann::json;

const json* Field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

int64_t IntegerField(const json& body, const char* name, int64_t fallback, int64_t max) {
  const json* v = Field(body, name);
  if (v == nullptr) return fallback;
  if (!v->is_number_integer()) ThrowInvalid(std::string(name) + " must be an integer, got " + v->dump());
  if (v->is_number_unsigned() ? v->get<uint64_t>() > static_cast<uint64_t>(max) : v->get<int64_t>() > max) {
    ThrowInvalid(std::string(name) + " must be <= " + std::to_string(max) + ", got " + v->dump());
  }
  const int64_t value = v->get<int64_t>();
  if (value < 0) ThrowInvalid(std::string(name) + " must be >= 0, got " + v->dump());
  return value;
}

double NumberField(const json& body, const char* name, double fallback) {
  const json* v = Field(body, name);
  if (v == nullptr) return fallback;
  if (!v->is_number()) ThrowInvalid(std::string(name) + " must be a number, got " + v->dump());
  const double value = v->get<double>();
  if (!std::isfinite(value)) ThrowInvalid(std::string(name) + " must be finite");
  return value;
}

std::vector<std::string> StopField(const json& body) {
  const json* v = Field(body, "stop");
  if (v == nullptr) return {};
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const json& s : *v) {
      if (!s.is_string()) ThrowInvalid("stop must be a string or an array of strings, got " + v->dump());
      stops.push_back(s.get<std::string>());
    }
  } else {
    ThrowInvalid("stop must be a string or an array of strings, got " + v->dump());
  }
  if (stops.size() > 16) ThrowInvalid("stop: at most 16 stop strings, got " + std::to_string(stops.size()));
  for (const std::string& s : stops) {
    if (s.empty()) ThrowInvalid("stop strings must not be empty (they would stop before any output)");
  }
  return stops;
}

}  // namespace

CompletionRequest ParseCompletionRequest(std::string_view text, const RequestLimits& limits) {
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) ThrowInvalid("the request body is not valid JSON");
  if (!body.is_object()) ThrowInvalid("the request body must be a JSON object");

  CompletionRequest request;
  generate::GenerateOptions& g = request.generation;
  const json* prompt = Field(body, "prompt");
  if (prompt == nullptr) ThrowInvalid("prompt is required (a string)");
  if (!prompt->is_string()) ThrowInvalid(std::string("prompt must be a string, got ") + prompt->type_name());
  g.prompt = prompt->get<std::string>();
  if (static_cast<int64_t>(g.prompt.size()) > limits.max_prompt_bytes) {
    ThrowInvalid("prompt is " + std::to_string(g.prompt.size()) + " bytes, more than the server's limit of " +
                 std::to_string(limits.max_prompt_bytes));
  }
  g.max_tokens = IntegerField(body, "max_tokens", 16, limits.max_tokens);
  g.sampling.temperature = NumberField(body, "temperature", 1.0);
  if (g.sampling.temperature < 0) ThrowInvalid("temperature must be >= 0 (0 = greedy)");
  g.sampling.top_p = NumberField(body, "top_p", 1.0);
  if (!(g.sampling.top_p > 0 && g.sampling.top_p <= 1)) ThrowInvalid("top_p must be in (0, 1]");
  g.sampling.top_k = IntegerField(body, "top_k", 0, int64_t{1} << 31);
  g.sampling.seed = static_cast<uint64_t>(IntegerField(body, "seed", 0, INT64_MAX));
  g.stop = StopField(body);
  if (const json* stream = Field(body, "stream")) {
    if (!stream->is_boolean()) ThrowInvalid("stream must be a boolean, got " + stream->dump());
    request.stream = stream->get<bool>();
  }
  if (const json* model = Field(body, "model"); model != nullptr && !model->is_string()) {
    ThrowInvalid("model must be a string, got " + model->dump());
  }
  if (IntegerField(body, "n", 1, 1) != 1) ThrowInvalid("n must be 1 (one completion per request)");
  return request;
}

}  // namespace swa::serve
